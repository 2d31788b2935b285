//! Kernel TLS: detection at start, the move of a finished rustls session
//! into the kernel, and what a kTLS socket's non-application records mean.
//!
//! kTLS needs the `tls` upper-layer protocol, a module (`CONFIG_TLS`) some
//! kernels lack — this machine's among them. [`probe`] asks the kernel
//! directly, once per process: it sets `TCP_ULP "tls"` on a connected
//! loopback socket, exactly what offloading a real session does first.
//!
//! When the probe succeeds, each connection runs its TLS handshake in
//! rustls, then [`offload`] attaches the ULP, takes the traffic secrets out
//! of rustls and hands them to the kernel (`SOL_TLS`, `TLS_TX` and
//! `TLS_RX`); from then on the socket carries plaintext for us and records
//! on the wire ([`crate::transport`] has the record-exact handshake that
//! makes this safe). When it fails, sessions stay in userspace rustls.
//!
//! The `ktls` crate was not used: its 6.x release depends on tokio,
//! tokio-rustls and futures-util unconditionally (it wraps tokio streams),
//! and a second nix. `nix` — already a dependency — wraps both setsockopts
//! and the `TLS_GET_RECORD_TYPE` control message, and `libc` has the
//! linux/tls.h structs, so [`crypto_info`] is the only new code. Sending
//! needs one raw `sendmsg` ([`send_close_notify`]): nix has no
//! `TLS_SET_RECORD_TYPE` control message.
//!
//! A TLS 1.3 KeyUpdate from the peer ends a kTLS connection: the kernel
//! hands it to us as a control record, and re-keying (Linux ≥ 6.14) would
//! need the next traffic secret, which rustls does not give out after the
//! handover. The client reconnects; OpenSSL-based clients such as
//! SoftEther's send no KeyUpdate unless told to.

pub mod crypto_info;

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::fd::{AsFd, AsRawFd},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, TlsGetRecordType, sockopt};

use self::crypto_info::{Direction, TlsVersion};

/// What the kernel offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KtlsSupport {
    /// The `tls` ULP attached: the kernel can take over record encryption.
    Available,
    /// Why not (e.g. "TCP_ULP tls: No such file or directory (no CONFIG_TLS)").
    Unavailable(String),
}

impl KtlsSupport {
    /// The TLS mode sessions run in by default (offload policy `Auto`), for
    /// status and metrics. Individual connections may still fall back; see
    /// [`TlsModeCounters`].
    pub fn session_mode(&self) -> &'static str {
        match self {
            KtlsSupport::Available => MODE_KERNEL,
            KtlsSupport::Unavailable(_) => MODE_USERSPACE,
        }
    }

    pub fn is_available(&self) -> bool {
        *self == KtlsSupport::Available
    }
}

/// Mode names shown by `ethergate status`.
pub const MODE_KERNEL: &str = "kernel-tls";
pub const MODE_USERSPACE: &str = "rustls-userspace";

/// Probes for the `tls` ULP on a throwaway loopback connection, once per
/// process; later calls return the first answer.
pub fn probe() -> KtlsSupport {
    static DETECTED: OnceLock<KtlsSupport> = OnceLock::new();
    DETECTED
        .get_or_init(|| match try_attach_ulp() {
            Ok(()) => KtlsSupport::Available,
            Err(reason) => KtlsSupport::Unavailable(reason.to_string()),
        })
        .clone()
}

fn try_attach_ulp() -> Result<(), KtlsError> {
    let probe = |step| move |source| KtlsError::Probe { step, source };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(probe("bind"))?;
    let addr = listener.local_addr().map_err(probe("address"))?;
    // The ULP can only be set on an established socket.
    let client = TcpStream::connect(addr).map_err(probe("connect"))?;
    let (_server, _) = listener.accept().map_err(probe("accept"))?;
    attach_ulp(&client)
}

/// `setsockopt(TCP_ULP, "tls")`; the error names the kernel's reason.
pub fn attach_ulp(fd: &impl AsFd) -> Result<(), KtlsError> {
    socket::setsockopt(fd, sockopt::TcpUlp::default(), b"tls").map_err(|source| KtlsError::Ulp {
        fd: fd.as_fd().as_raw_fd(),
        source,
    })
}

/// Why a connection's TLS could not move into the kernel, or why kernel
/// TLS failed it.
#[derive(Debug, thiserror::Error)]
pub enum KtlsError {
    #[error("probing kernel TLS on loopback ({step}): {source}")]
    Probe {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS ULP unavailable: TCP_ULP \"tls\" on fd {fd}: {source}{}", ulp_hint(*.source))]
    Ulp {
        fd: i32,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("handshake unfinished or output unflushed")]
    Unfinished,
    #[error("protocol version has no kernel TLS")]
    Version,
    #[error("cipher suite {0:?} has no kernel TLS")]
    Cipher(Option<rustls::CipherSuite>),
    #[error("extracting TLS secrets: {0}")]
    Secrets(#[source] rustls::Error),
    #[error("{direction:?} crypto info: {source}")]
    CryptoInfo {
        direction: Direction,
        #[source]
        source: crypto_info::CryptoInfoError,
    },
    #[error("setsockopt(SOL_TLS, {which}): {source}")]
    SetKeys {
        which: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("sendmsg of the close_notify alert: {0}")]
    SendAlert(#[source] std::io::Error),
    #[error("recvmsg for the control record: {0}")]
    ReadRecord(#[source] nix::errno::Errno),
    #[error("control messages of the record: {0}")]
    ControlMessages(#[source] nix::errno::Errno),
    #[error("no TLS_GET_RECORD_TYPE on the record")]
    NoRecordType,
}

fn ulp_hint(errno: nix::errno::Errno) -> &'static str {
    if errno == nix::errno::Errno::ENOENT {
        " (the kernel has no TLS module: CONFIG_TLS)"
    } else {
        ""
    }
}

/// Whether sessions try to move into kernel TLS after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadPolicy {
    /// When [`probe`] found the ULP (the default).
    Auto,
    /// Never: rustls in userspace for every connection.
    Never,
    /// Even when the probe failed: every connection runs the offload
    /// handshake and falls back per connection. For tests of the fallback.
    Always,
}

/// Per-connection outcomes, for `ethergate status` and metrics.
#[derive(Debug, Default)]
pub struct TlsModeCounters {
    /// Connections whose data phase runs in kernel TLS (TX and RX).
    pub kernel: AtomicU64,
    /// Connections served by userspace rustls without trying (offload off).
    pub userspace: AtomicU64,
    /// Tried and stayed in userspace rustls: the kernel refused the ULP,
    /// or bytes of a record past the handshake were already read.
    pub fell_back: AtomicU64,
    /// Tried and lost the connection: the kernel refused the keys after
    /// they had left rustls (logged with the kernel's error).
    pub failed: AtomicU64,
}

/// A copy of [`TlsModeCounters`] at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsModeSnapshot {
    pub kernel: u64,
    pub userspace: u64,
    pub fell_back: u64,
    pub failed: u64,
}

impl TlsModeCounters {
    pub fn snapshot(&self) -> TlsModeSnapshot {
        TlsModeSnapshot {
            kernel: self.kernel.load(Ordering::Relaxed),
            userspace: self.userspace.load(Ordering::Relaxed),
            fell_back: self.fell_back.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The offload decision made at start plus its counters, shared by all
/// workers.
#[derive(Debug)]
pub struct Offload {
    attempt: bool,
    pub support: KtlsSupport,
    pub counters: TlsModeCounters,
}

impl Offload {
    pub fn new(policy: OffloadPolicy, support: KtlsSupport) -> Self {
        let attempt = match policy {
            OffloadPolicy::Auto => support.is_available(),
            OffloadPolicy::Never => false,
            OffloadPolicy::Always => true,
        };
        Self {
            attempt,
            support,
            counters: TlsModeCounters::default(),
        }
    }

    /// Whether connections run the offload handshake.
    pub fn attempts(&self) -> bool {
        self.attempt
    }

    /// The mode new sessions are meant to run in.
    pub fn mode(&self) -> &'static str {
        if self.attempt && self.support.is_available() {
            MODE_KERNEL
        } else {
            MODE_USERSPACE
        }
    }

    /// The rustls config connections use: secret extraction is switched on
    /// only when connections will offload (it exposes key material, so it
    /// stays off otherwise). TLS 1.3 tickets are left as configured: they
    /// are written (and counted in the sequence number) before the secrets
    /// are taken, because extraction refuses while rustls has output queued.
    pub fn server_config(&self, config: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
        if !self.attempt || config.enable_secret_extraction {
            return config;
        }
        let mut config = (*config).clone();
        config.enable_secret_extraction = true;
        Arc::new(config)
    }
}

/// Why a connection did not move into the kernel.
#[derive(Debug)]
pub enum OffloadFailure {
    /// Nothing changed on the socket: carry on with this rustls session.
    Kept(Box<rustls::ServerConnection>, KtlsError),
    /// The secrets left rustls but the kernel refused them: the
    /// connection can't continue.
    Lost(KtlsError),
}

/// Moves a finished, flushed rustls session into the kernel: attach the
/// ULP, extract the secrets, `TLS_TX`, `TLS_RX`. The caller must have fed
/// rustls exactly up to a record boundary and drained its plaintext: the
/// kernel decrypts from the next byte in the socket on.
pub fn offload(
    fd: &impl AsFd,
    tls: rustls::ServerConnection,
) -> Result<crypto_info::TlsVersion, OffloadFailure> {
    let kept = |tls, why| Err(OffloadFailure::Kept(Box::new(tls), why));
    if tls.is_handshaking() || tls.wants_write() {
        return kept(tls, KtlsError::Unfinished);
    }
    let Some(version) = tls.protocol_version().and_then(TlsVersion::from_rustls) else {
        return kept(tls, KtlsError::Version);
    };
    let suite = tls.negotiated_cipher_suite().map(|s| s.suite());
    if !suite.is_some_and(kernel_has_cipher) {
        return kept(tls, KtlsError::Cipher(suite));
    }
    if let Err(why) = attach_ulp(fd) {
        return kept(tls, why);
    }
    // From here on the session can only move forward.
    let lost = OffloadFailure::Lost;
    let secrets = tls
        .dangerous_extract_secrets()
        .map_err(|e| lost(KtlsError::Secrets(e)))?;
    let (tx_seq, tx) = &secrets.tx;
    let (rx_seq, rx) = &secrets.rx;
    let info = |direction, seq, secrets| {
        crypto_info::crypto_info(version, direction, seq, secrets)
            .map_err(|source| lost(KtlsError::CryptoInfo { direction, source }))
    };
    let tx = info(Direction::Tx, *tx_seq, tx)?;
    let rx = info(Direction::Rx, *rx_seq, rx)?;
    let set_keys = |which| move |source| lost(KtlsError::SetKeys { which, source });
    socket::setsockopt(fd, sockopt::TcpTlsTx, &tx).map_err(set_keys("TLS_TX"))?;
    socket::setsockopt(fd, sockopt::TcpTlsRx, &rx).map_err(set_keys("TLS_RX"))?;
    Ok(version)
}

fn kernel_has_cipher(suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite as S;
    matches!(
        suite,
        S::TLS13_AES_128_GCM_SHA256
            | S::TLS13_AES_256_GCM_SHA384
            | S::TLS13_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// A record a kTLS socket would not return as data.
#[derive(Debug, PartialEq, Eq)]
pub enum ControlRecord {
    CloseNotify,
    /// Any other alert: (level, description).
    Alert(u8, u8),
    /// TLS 1.3 KeyUpdate: the kernel can't rekey RX here; we close.
    KeyUpdate,
    /// Another handshake message (type): NewSessionTicket, renegotiation…
    Handshake(u8),
    /// Some other content type.
    Other(u8),
}

impl ControlRecord {
    /// Classifies a record by content type and its first bytes.
    pub fn classify(content_type: u8, body: &[u8]) -> Self {
        const ALERT: u8 = 21;
        const HANDSHAKE: u8 = 22;
        const KEY_UPDATE: u8 = 24;
        match (content_type, body) {
            (ALERT, [_, 0, ..]) => ControlRecord::CloseNotify,
            (ALERT, [level, description, ..]) => ControlRecord::Alert(*level, *description),
            (HANDSHAKE, [KEY_UPDATE, ..]) => ControlRecord::KeyUpdate,
            (HANDSHAKE, [kind, ..]) => ControlRecord::Handshake(*kind),
            (other, _) => ControlRecord::Other(other),
        }
    }
}

impl std::fmt::Display for ControlRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlRecord::CloseNotify => write!(f, "peer sent close_notify"),
            ControlRecord::Alert(level, description) => {
                write!(f, "peer sent alert level {level} description {description}")
            }
            ControlRecord::KeyUpdate => write!(
                f,
                "peer sent a TLS 1.3 KeyUpdate, which this kTLS path does not follow; \
                 closing (the client reconnects)"
            ),
            ControlRecord::Handshake(kind) => write!(
                f,
                "peer sent handshake message type {kind} after the handshake; closing"
            ),
            ControlRecord::Other(kind) => write!(f, "peer sent a record of content type {kind}"),
        }
    }
}

/// `TLS_SET_RECORD_TYPE` (linux/tls.h): the control message that makes the
/// kernel seal a `sendmsg`'s bytes as a record of the given content type.
const TLS_SET_RECORD_TYPE: libc::c_int = 1;
/// TLS content type "alert".
const CONTENT_ALERT: u8 = 21;

/// Sends a close_notify alert (warning, close_notify) on a kTLS socket:
/// one `sendmsg` of the two alert bytes with a `TLS_SET_RECORD_TYPE`
/// control message, which the kernel seals with the next TX sequence
/// number. Never waits: a socket whose send buffer is full gets an error
/// here, and its connection ends with the FIN alone.
pub fn send_close_notify(fd: &impl AsFd) -> Result<(), KtlsError> {
    const WARNING: u8 = 1;
    const CLOSE_NOTIFY: u8 = 0;
    let mut alert = [WARNING, CLOSE_NOTIFY];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(1) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: alert.as_mut_ptr().cast(),
        iov_len: alert.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes `control`, which has room for one header and
    // one byte of data (CMSG_SPACE(1)); CMSG_FIRSTHDR is non-null for a
    // buffer that large, and CMSG_DATA points inside it.
    let rc = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = CONTENT_ALERT;
        libc::sendmsg(fd.as_fd().as_raw_fd(), &raw const msg, libc::MSG_DONTWAIT)
    };
    if rc < 0 {
        return Err(KtlsError::SendAlert(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// After a read on a kTLS socket failed with `EIO` — the kernel's way of
/// saying the next record is not application data — reads that record with
/// its `TLS_GET_RECORD_TYPE` control message (non-blocking: it is already
/// queued) and says what it was.
pub fn read_control_record(fd: &impl AsFd) -> Result<ControlRecord, KtlsError> {
    let mut body = [0u8; 64];
    let mut cmsg = nix::cmsg_space!(u8);
    let mut iov = [std::io::IoSliceMut::new(&mut body)];
    let msg = socket::recvmsg::<()>(
        fd.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(KtlsError::ReadRecord)?;
    let len = msg.bytes;
    let mut content_type = None;
    for c in msg.cmsgs().map_err(KtlsError::ControlMessages)? {
        if let ControlMessageOwned::TlsGetRecordType(t) = c {
            content_type = Some(match t {
                TlsGetRecordType::ChangeCipherSpec => 20,
                TlsGetRecordType::Alert => 21,
                TlsGetRecordType::Handshake => 22,
                TlsGetRecordType::ApplicationData => 23,
                TlsGetRecordType::Unknown(t) => t,
                _ => 0,
            });
        }
    }
    let content_type = content_type.ok_or(KtlsError::NoRecordType)?;
    Ok(ControlRecord::classify(
        content_type,
        &body[..len.min(body.len())],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_records_are_classified() {
        assert_eq!(
            ControlRecord::classify(21, &[1, 0]),
            ControlRecord::CloseNotify
        );
        assert_eq!(
            ControlRecord::classify(21, &[2, 40]),
            ControlRecord::Alert(2, 40)
        );
        assert_eq!(
            ControlRecord::classify(22, &[24, 0, 0, 1, 0]),
            ControlRecord::KeyUpdate
        );
        assert_eq!(
            ControlRecord::classify(22, &[4, 0, 0, 9]),
            ControlRecord::Handshake(4)
        );
        assert_eq!(ControlRecord::classify(20, &[1]), ControlRecord::Other(20));
        assert_eq!(ControlRecord::classify(21, &[]), ControlRecord::Other(21));
    }

    #[test]
    fn policy_and_mode() {
        let absent = KtlsSupport::Unavailable("test".into());
        assert!(!Offload::new(OffloadPolicy::Auto, absent.clone()).attempts());
        assert!(Offload::new(OffloadPolicy::Always, absent.clone()).attempts());
        assert_eq!(
            Offload::new(OffloadPolicy::Always, absent.clone()).mode(),
            MODE_USERSPACE
        );
        assert!(Offload::new(OffloadPolicy::Auto, KtlsSupport::Available).attempts());
        assert_eq!(
            Offload::new(OffloadPolicy::Auto, KtlsSupport::Available).mode(),
            MODE_KERNEL
        );
        assert!(!Offload::new(OffloadPolicy::Never, KtlsSupport::Available).attempts());
    }
}
