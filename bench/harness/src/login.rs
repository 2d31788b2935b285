//! A login driver for SoftEther-protocol servers: many parallel clients,
//! each a blocking TCP socket + rustls + ethergate-proto's sans-IO
//! `ClientConnection`, timing from `connect()` to the welcome (session
//! established). Used for the login rate and for holding idle sessions
//! while the server's memory is read.
//!
//! Source addresses rotate over several client addresses, so per-IP
//! connection caps (SoftEther's MaxConnectionsPerIP) are not what is
//! measured.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use ethergate_proto::{
    ClientAuth, ClientConfig, ClientConnection, ClientEvent, Frames, Timestamp,
    password::hash_password,
};
use hdrhistogram::Histogram;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// A login that takes longer than this is a failure, not a slow sample.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Target {
    pub server: SocketAddrV4,
    pub hub: String,
    pub user: String,
    pub password: String,
    pub sources: Vec<Ipv4Addr>,
}

/// An established session, kept open (idle) while it lives.
pub struct Session {
    _tcp: TcpStream,
    _tls: rustls::ClientConnection,
}

/// SoftEther servers present self-signed certificates and SoftEther clients
/// accept any (softether-protocol.md §1.1); the handshake signature is
/// still checked.
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

fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
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

/// One login, from TCP connect to the welcome. Returns the open session
/// and how long it took.
fn login(
    target: &Target,
    source: Ipv4Addr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Session, Duration)> {
    let started = Instant::now();
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(source, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(target.server))
        .with_context(|| format!("connecting to {}", target.server))?;
    let mut tcp = TcpStream::from(fd);
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(LOGIN_TIMEOUT))?;
    let name = ServerName::IpAddress(std::net::IpAddr::V4(*target.server.ip()).into());
    let mut tls_conn = rustls::ClientConnection::new(Arc::clone(tls), name)?;
    let auth = ClientAuth::Password {
        hash: hash_password(&target.password, &target.user),
    };
    let config = ClientConfig::new(
        target.server.ip().to_string(),
        target.hub.clone(),
        target.user.clone(),
        auth,
    );
    let mut proto = ClientConnection::new(config, random as fn(&mut [u8]), Timestamp(0));
    let mut frames = Frames::new();
    let mut plain = vec![0u8; 16 * 1024];
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
                    return Ok((
                        Session {
                            _tcp: tcp,
                            _tls: tls_conn,
                        },
                        started.elapsed(),
                    ));
                }
                ClientEvent::Closed(reason) => bail!("server refused the login: {reason}"),
                ClientEvent::Hello(_) => {}
            }
        }
        if started.elapsed() > LOGIN_TIMEOUT {
            bail!("no welcome within {LOGIN_TIMEOUT:?}");
        }
        let n = tls_conn
            .read_tls(&mut tcp)
            .context("reading from the server")?;
        if n == 0 {
            bail!("the server closed the connection during login");
        }
        tls_conn.process_new_packets()?;
        loop {
            match tls_conn.reader().read(&mut plain) {
                Ok(0) => bail!("the server closed TLS during login"),
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

pub struct Logins {
    pub sessions: Vec<Session>,
    /// connect → welcome, µs.
    pub latency: Histogram<u64>,
    pub failures: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// `total` logins over `parallel` threads on the calling thread's network
/// namespace. With `keep`, every session stays open in the result;
/// otherwise each is closed (TLS close_notify, then FIN) once established.
pub fn run(target: &Target, total: usize, parallel: usize, keep: bool) -> Result<Logins> {
    let tls = tls_config()?;
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Vec::new(), Vec::new(), 0usize, None::<String>));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || crate::sys::interrupted() {
                        return;
                    }
                    let source = target.sources[i % target.sources.len()];
                    let outcome = login(target, source, &tls);
                    let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok((session, took)) => {
                            r.1.push(took);
                            if keep {
                                r.0.push(session);
                            } else {
                                drop(r);
                                close(session);
                            }
                        }
                        Err(e) => {
                            r.2 += 1;
                            r.3.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let (sessions, latencies, failures, first_error) =
        results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    for took in latencies {
        latency.record((took.as_micros() as u64).max(1))?;
    }
    if latency.is_empty() {
        return Err(anyhow!(
            "no login succeeded ({failures} failed): {}",
            first_error.unwrap_or_default()
        ));
    }
    Ok(Logins {
        sessions,
        latency,
        failures,
        first_error,
        elapsed,
    })
}

fn close(session: Session) {
    let Session {
        _tcp: mut tcp,
        _tls: mut tls,
    } = session;
    tls.send_close_notify();
    while tls.wants_write() {
        if tls.write_tls(&mut tcp).is_err() {
            break;
        }
    }
}
