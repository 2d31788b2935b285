//! One SoftEther-protocol login, blocking: a TCP socket (optionally bound
//! to a chosen source address), rustls, and ethergate-proto's sans-IO
//! `ClientConnection`, from `connect()` to the welcome or the refusal.
//!
//! Used by the login benchmark (many in parallel) and by the attack tests
//! (password guessing, clients that stop reading), so both speak the
//! protocol exactly as the real client does up to the welcome.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    os::fd::AsRawFd,
    sync::Arc,
    time::{Duration, Instant},
};

use ethergate_proto::{
    ClientAuth, ClientConfig, ClientConnection, ClientEvent, CloseReason, ErrorCode, Frames,
    Timestamp, password::hash_password,
};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// A login that takes longer than this is a failure, not a slow sample.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Where to log in, and as whom.
#[derive(Clone, Debug)]
pub struct Target {
    pub server: SocketAddrV4,
    pub hub: String,
    pub user: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The server answered with an error PACK.
    #[error("the server refused the login: {0}")]
    Refused(ErrorCode),
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddrV4, std::io::Error),
    #[error("I/O during login: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the server closed the connection during login")]
    Closed,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("no welcome within {0:?}")]
    Timeout(Duration),
}

/// An established session, kept open while it lives. It reads only when
/// asked ([`Session::recv_frames`]): a test holding one otherwise is a
/// client that stopped reading.
pub struct Session {
    pub tcp: TcpStream,
    pub tls: rustls::ClientConnection,
    proto: ClientConnection<fn(&mut [u8])>,
    started: Instant,
    /// The UDP socket a UDP acceleration offer named, held open (never
    /// read) for the session's life, as the real client holds its own.
    _udp: Option<std::net::UdpSocket>,
}

impl Session {
    /// Sends Ethernet frames into the hub, as one batch.
    pub fn send_frames(&mut self, frames: &[Vec<u8>]) -> std::io::Result<()> {
        let now = Timestamp::from_elapsed(self.started.elapsed());
        self.proto
            .send_frames(now, frames.iter().map(Vec::as_slice));
        let mut plain = Vec::new();
        self.proto.drain_transmit(&mut plain);
        self.tls.writer().write_all(&plain)?;
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.tcp)?;
        }
        Ok(())
    }

    /// Reads for `window` and returns the frames the hub sent (keep-alives
    /// are not frames). Ends early if the server closes.
    pub fn recv_frames(&mut self, window: Duration) -> std::io::Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + window;
        let mut frames = Frames::new();
        let mut plain = vec![0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.tcp.set_read_timeout(Some(left))?;
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
            self.tls
                .process_new_packets()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            loop {
                match self.tls.reader().read(&mut plain) {
                    Ok(0) => break,
                    Ok(n) => {
                        let now = Timestamp::from_elapsed(self.started.elapsed());
                        self.proto.handle_input(now, &plain[..n], &mut frames);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(frames.iter().map(<[u8]>::to_vec).collect())
    }

    /// TLS close_notify, then FIN (dropping it would only FIN).
    pub fn close(mut self) {
        self.tls.send_close_notify();
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.tcp).is_err() {
                break;
            }
        }
    }
}

/// SoftEther servers present self-signed certificates and SoftEther clients
/// accept any (docs/softether-protocol.md §1.1); the handshake signature
/// is still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that accepts any server certificate, as SoftEther
/// clients do by default.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most the remaining length into our buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
}

/// A TCP connection to `server` from `source` (any port), in the calling
/// thread's network namespace.
pub fn connect_from(source: Ipv4Addr, server: SocketAddrV4) -> Result<TcpStream, LoginError> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| LoginError::Connect(server, e.into()))?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(source, 0)),
    )
    .map_err(|e| LoginError::Connect(server, e.into()))?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(server))
        .map_err(|e| LoginError::Connect(server, e.into()))?;
    Ok(TcpStream::from(fd))
}

/// One login from `source`, from TCP connect to the welcome. Returns the
/// open session and how long it took.
pub fn login(
    target: &Target,
    source: Ipv4Addr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Session, Duration), LoginError> {
    login_with(target, source, tls, false)
}

/// [`login`] with the UDP acceleration offer the Debian client makes by
/// default: a UDP socket bound on `source` (kept with the session, never
/// read) and a random key. What the server then allocates for the session
/// is what it allocates for real clients.
pub fn login_offering_udp(
    target: &Target,
    source: Ipv4Addr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Session, Duration), LoginError> {
    login_with(target, source, tls, true)
}

fn login_with(
    target: &Target,
    source: Ipv4Addr,
    tls: &Arc<rustls::ClientConfig>,
    offer_udp: bool,
) -> Result<(Session, Duration), LoginError> {
    let started = Instant::now();
    let udp = offer_udp
        .then(|| std::net::UdpSocket::bind((source, 0)))
        .transpose()?;
    let mut tcp = connect_from(source, target.server)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(LOGIN_TIMEOUT))?;
    let name = ServerName::IpAddress(std::net::IpAddr::V4(*target.server.ip()).into());
    let mut tls_conn = rustls::ClientConnection::new(Arc::clone(tls), name)?;
    let auth = ClientAuth::Password {
        hash: hash_password(&target.password, &target.user),
    };
    let mut config = ClientConfig::new(
        target.server.ip().to_string(),
        target.hub.clone(),
        target.user.clone(),
        auth,
    );
    if let Some(udp) = &udp {
        let mut client_key = [0u8; ethergate_proto::udp_accel::KEY_LEN];
        random(&mut client_key);
        config.udp_accel = Some(ethergate_proto::udp_accel::Offer {
            max_version: ethergate_proto::udp_accel::VERSION,
            client_ip: Some(std::net::IpAddr::V4(source)),
            client_port: udp.local_addr()?.port(),
            client_key,
            fast_detect: true,
        });
    }
    let mut proto = ClientConnection::new(config, random as fn(&mut [u8]), Timestamp(0));
    let mut frames = Frames::new();
    let mut plain = vec![0u8; 16 * 1024];
    let mut ended = false;
    loop {
        let pending = proto.transmit().len();
        if pending > 0 {
            tls_conn.writer().write_all(proto.transmit())?;
            proto.consume_transmit(pending);
        }
        while tls_conn.wants_write() {
            tls_conn.write_tls(&mut tcp)?;
        }
        while let Some(event) = proto.poll_event() {
            match event {
                ClientEvent::Established { .. } => {
                    let session = Session {
                        tcp,
                        tls: tls_conn,
                        proto,
                        started,
                        _udp: udp,
                    };
                    return Ok((session, started.elapsed()));
                }
                ClientEvent::Closed(CloseReason::Refused(code)) => {
                    return Err(LoginError::Refused(code));
                }
                ClientEvent::Closed(reason) => {
                    return Err(LoginError::Protocol(reason.to_string()));
                }
                ClientEvent::Hello(_) => {}
            }
        }
        // The server's last word (an error PACK) may arrive together with
        // its close: the events above have seen it by now.
        if ended {
            return Err(LoginError::Closed);
        }
        if started.elapsed() > LOGIN_TIMEOUT {
            return Err(LoginError::Timeout(LOGIN_TIMEOUT));
        }
        let n = tls_conn.read_tls(&mut tcp)?;
        if n == 0 {
            ended = true;
            continue;
        }
        tls_conn.process_new_packets()?;
        loop {
            match tls_conn.reader().read(&mut plain) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    let now = Timestamp::from_elapsed(started.elapsed());
                    proto.handle_input(now, &plain[..n], &mut frames);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
