//! What protects a connection's bytes once the TLS handshake is done:
//! rustls in userspace (socket bytes are TLS records) or kernel TLS (socket
//! bytes are plaintext; the kernel encrypts and decrypts).
//!
//! [`establish`] decides per connection. With offload off it hands the
//! fresh rustls session straight to the connection (the handshake then
//! runs inside the normal reader/writer loop, as it always has). With
//! offload on it runs the handshake itself, feeding rustls exactly one
//! record at a time so that when the handshake ends we know precisely which
//! socket bytes rustls has seen; then it flushes rustls's output (Finished,
//! tickets), decrypts any complete records the client pipelined behind its
//! Finished, and moves the session into the kernel ([`ktls::offload`]).
//!
//! Invariant: no byte is lost or seen twice across the switch. Plaintext
//! rustls already decrypted travels in [`Handover::plaintext`]; socket
//! bytes rustls has not seen travel in [`Handover::unread`]; the kernel
//! only gets the session when the last byte read ends a record. A partial
//! record already read keeps the connection in userspace (counted as
//! `fell_back`).

use std::{
    io::{BufRead, Write},
    time::Instant,
};

use compio::{
    BufResult,
    io::{AsyncRead, AsyncWriteExt},
    net::TcpStream,
};
use tracing::{debug, warn};

use crate::ktls::{self, Offload, OffloadFailure, TlsModeCounters};

/// Socket read size during the handshake.
const READ_CHUNK: usize = 16 * 1024;
/// Largest TLS record body (TLS 1.2 ciphertext: 2^14 + 2048).
const MAX_RECORD_BODY: usize = 16 * 1024 + 2048;
const RECORD_HEADER: usize = 5;

pub enum Transport {
    /// rustls in userspace.
    Userspace(Box<rustls::ServerConnection>),
    /// Kernel TLS: reads and writes on the socket are plaintext.
    Kernel,
}

/// The outcome of feeding socket bytes to the transport.
#[derive(Debug)]
pub enum Received {
    Open,
    /// The peer closed the TLS session (close_notify).
    PeerClosed,
    /// TLS failed; rustls may have queued an alert for the writer.
    Failed(TlsError),
}

/// Why a connection's TLS ended it: during the handshake, in the data
/// phase, or when moving into the kernel.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS handshake deadline passed")]
    HandshakeDeadline,
    #[error("peer closed during the TLS handshake")]
    ClosedInHandshake,
    #[error("socket {op}: {source}")]
    Socket {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS read: {0}")]
    Read(#[source] std::io::Error),
    #[error("TLS write: {0}")]
    Write(#[source] std::io::Error),
    #[error("TLS error: {0}")]
    Protocol(#[from] rustls::Error),
    #[error("TLS plaintext: {0}")]
    Plaintext(#[source] std::io::Error),
    #[error("kTLS setup failed after the keys left rustls: {0}")]
    KernelLost(#[source] ktls::KtlsError),
}

impl Transport {
    pub fn mode(&self) -> &'static str {
        match self {
            Transport::Userspace(_) => ktls::MODE_USERSPACE,
            Transport::Kernel => ktls::MODE_KERNEL,
        }
    }

    pub fn is_kernel(&self) -> bool {
        matches!(self, Transport::Kernel)
    }

    /// Consumes bytes read from the socket (all of them, or one rustls
    /// read's worth: call again while `bytes` is not empty) and hands the
    /// plaintext to `deliver`.
    pub fn receive(&mut self, bytes: &mut &[u8], mut deliver: impl FnMut(&[u8])) -> Received {
        let tls = match self {
            Transport::Kernel => {
                deliver(bytes);
                *bytes = &[];
                return Received::Open;
            }
            Transport::Userspace(tls) => tls,
        };
        if let Err(e) = tls.read_tls(bytes) {
            return Received::Failed(TlsError::Read(e));
        }
        if let Err(e) = tls.process_new_packets() {
            return Received::Failed(TlsError::Protocol(e));
        }
        drain_plaintext(tls, &mut deliver)
    }

    /// Appends what goes on the wire for `plain` — plus anything TLS itself
    /// wants to send — to `out`, leaving `plain` empty.
    pub fn send(&mut self, plain: &mut Vec<u8>, out: &mut Vec<u8>) {
        match self {
            Transport::Userspace(tls) => {
                // rustls buffers at most its buffer limit (64 KiB) of
                // plaintext; a larger batch is fed in pieces, each sealed
                // into `out` before the next (`write_all` would silently
                // drop the rest — the tunnel's TCP then crawls on
                // retransmits).
                let mut rest = &plain[..];
                loop {
                    while tls.wants_write() {
                        if tls.write_tls(out).is_err() {
                            break;
                        }
                    }
                    if rest.is_empty() {
                        break;
                    }
                    match tls.writer().write(rest) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => rest = &rest[n..],
                    }
                }
                plain.clear();
            }
            Transport::Kernel if out.is_empty() => std::mem::swap(plain, out),
            Transport::Kernel => {
                out.extend_from_slice(plain);
                plain.clear();
            }
        }
    }

    /// A TLS close_notify, to go before the TCP FIN, after everything
    /// queued before it: in userspace it is appended to `out` (write it
    /// next); with kernel TLS the kernel seals and sends it on `socket`
    /// now, so `out` must have been written already.
    /// SoftEther's client (OpenSSL 3) takes a FIN without one as an error
    /// and leaves that error on its session thread's OpenSSL error queue,
    /// where it fails every connection the same client session opens
    /// afterwards (decision 0002, "the real client's automatic retry").
    /// rustls skips it after a fatal alert.
    pub fn close_notify(&mut self, socket: &impl std::os::fd::AsFd, out: &mut Vec<u8>) {
        match self {
            Transport::Userspace(tls) => {
                tls.send_close_notify();
                while tls.wants_write() {
                    if tls.write_tls(out).is_err() {
                        break;
                    }
                }
            }
            Transport::Kernel => {
                if let Err(e) = ktls::send_close_notify(socket) {
                    tracing::debug!("kTLS close_notify: {e}");
                }
            }
        }
    }

    /// Says why a socket read failed. On a kTLS socket `EIO` means the next
    /// record is not application data (an alert, a KeyUpdate…): read it
    /// and name it. Every such record ends the connection.
    pub fn explain_read_error(&self, socket: &TcpStream, error: &std::io::Error) -> String {
        if self.is_kernel() && error.raw_os_error() == Some(nix::libc::EIO) {
            match ktls::read_control_record(socket) {
                Ok(record) => format!("kTLS: {record}"),
                Err(why) => format!("kTLS: non-data record, unreadable: {why}"),
            }
        } else {
            format!("socket read: {error}")
        }
    }
}

fn drain_plaintext(
    tls: &mut rustls::ServerConnection,
    deliver: &mut impl FnMut(&[u8]),
) -> Received {
    // Handed over where rustls decrypted it: no copy, no scratch buffer.
    loop {
        let mut reader = tls.reader();
        match reader.fill_buf() {
            Ok([]) => return Received::PeerClosed,
            Ok(chunk) => {
                let n = chunk.len();
                deliver(chunk);
                reader.consume(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Received::Open,
            Err(e) => return Received::Failed(TlsError::Plaintext(e)),
        }
    }
}

/// A connection's transport plus the bytes that crossed the switch.
pub struct Handover {
    pub transport: Transport,
    /// Application plaintext already decrypted (feed to the protocol first).
    pub plaintext: Vec<u8>,
    /// Socket bytes the transport has not seen yet (feed next).
    pub unread: Vec<u8>,
}

impl Handover {
    fn userspace(tls: rustls::ServerConnection, plaintext: Vec<u8>, unread: Vec<u8>) -> Self {
        Self {
            transport: Transport::Userspace(Box::new(tls)),
            plaintext,
            unread,
        }
    }
}

/// Chooses the connection's transport; see the module comment. An error
/// means the connection is over (handshake failure, deadline, or kTLS
/// refused the keys after they left rustls); any alert has been sent.
pub async fn establish(
    socket: &mut TcpStream,
    tls: rustls::ServerConnection,
    deadline: Option<Instant>,
    offload: &Offload,
    id: u64,
) -> Result<Handover, TlsError> {
    if !offload.attempts() {
        TlsModeCounters::bump(&offload.counters.userspace);
        return Ok(Handover::userspace(tls, Vec::new(), Vec::new()));
    }
    let work = handshake_then_offload(socket, tls, offload, id);
    match deadline {
        Some(at) => compio::time::timeout_at(at, work)
            .await
            .map_err(|_| TlsError::HandshakeDeadline)?,
        None => work.await,
    }
}

async fn handshake_then_offload(
    socket: &mut TcpStream,
    mut tls: rustls::ServerConnection,
    offload: &Offload,
    id: u64,
) -> Result<Handover, TlsError> {
    let counters = &offload.counters;
    let mut inbox = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::new();
    while tls.is_handshaking() {
        match next_record(&inbox) {
            Some(len) => {
                let fed = feed(&mut tls, &inbox[..len]);
                inbox.drain(..len);
                // The reply, or rustls's alert when the record was refused.
                flush(socket, &mut tls, &mut out).await?;
                fed?;
            }
            None => read_more(socket, &mut inbox).await?,
        }
    }
    flush(socket, &mut tls, &mut out).await?;

    // Bytes the client sent behind its Finished.
    let mut plaintext = Vec::new();
    let whole = whole_records(&inbox);
    if whole < inbox.len() {
        TlsModeCounters::bump(&counters.fell_back);
        debug!(
            id,
            buffered = inbox.len() - whole,
            "kTLS not used: part of a record past the handshake was already read; rustls keeps the session"
        );
        return Ok(Handover::userspace(tls, plaintext, inbox));
    }
    let mut rest = &inbox[..];
    while let Some(len) = next_record(rest) {
        let fed = feed(&mut tls, &rest[..len]);
        rest = &rest[len..];
        flush(socket, &mut tls, &mut out).await?;
        fed?;
        if let Received::Failed(why) =
            drain_plaintext(&mut tls, &mut |p: &[u8]| plaintext.extend_from_slice(p))
        {
            return Err(why);
        }
    }
    if tls.process_new_packets().is_ok_and(|s| s.peer_has_closed()) {
        TlsModeCounters::bump(&counters.fell_back);
        debug!(id, "kTLS not used: the peer already closed");
        return Ok(Handover::userspace(tls, plaintext, Vec::new()));
    }

    match ktls::offload(&*socket, tls) {
        Ok(version) => {
            TlsModeCounters::bump(&counters.kernel);
            debug!(id, ?version, "TLS session moved into the kernel (kTLS)");
            Ok(Handover {
                transport: Transport::Kernel,
                plaintext,
                unread: Vec::new(),
            })
        }
        Err(OffloadFailure::Kept(tls, why)) => {
            TlsModeCounters::bump(&counters.fell_back);
            debug!(id, "kTLS not used ({why}); rustls keeps the session");
            Ok(Handover {
                transport: Transport::Userspace(tls),
                plaintext,
                unread: Vec::new(),
            })
        }
        Err(OffloadFailure::Lost(why)) => {
            TlsModeCounters::bump(&counters.failed);
            warn!(
                id,
                "kTLS setup failed after the keys left rustls: {why}; closing"
            );
            Err(TlsError::KernelLost(why))
        }
    }
}

/// The length of the first record in `bytes` if it is complete. A header
/// that can't start a TLS record (wrong content type or version, oversized)
/// counts as "everything we have": rustls then rejects it and queues the
/// alert, as the userspace path would.
fn next_record(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < RECORD_HEADER {
        return None;
    }
    let body = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    if !(20..=24).contains(&bytes[0]) || bytes[1] != 3 || body > MAX_RECORD_BODY {
        return Some(bytes.len());
    }
    let len = RECORD_HEADER + body;
    (bytes.len() >= len).then_some(len)
}

/// How many leading bytes of `bytes` are whole records.
fn whole_records(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = next_record(&bytes[at..]) {
        at += len;
    }
    at
}

fn feed(tls: &mut rustls::ServerConnection, mut record: &[u8]) -> Result<(), TlsError> {
    while !record.is_empty() {
        tls.read_tls(&mut record).map_err(TlsError::Read)?;
    }
    tls.process_new_packets().map(drop)?;
    Ok(())
}

async fn flush(
    socket: &mut TcpStream,
    tls: &mut rustls::ServerConnection,
    out: &mut Vec<u8>,
) -> Result<(), TlsError> {
    out.clear();
    while tls.wants_write() {
        tls.write_tls(out).map_err(TlsError::Write)?;
    }
    if out.is_empty() {
        return Ok(());
    }
    let BufResult(result, returned) = socket.write_all(std::mem::take(out)).await;
    *out = returned;
    result.map_err(|source| TlsError::Socket {
        op: "write",
        source,
    })
}

async fn read_more(socket: &mut TcpStream, inbox: &mut Vec<u8>) -> Result<(), TlsError> {
    let chunk = Vec::with_capacity(READ_CHUNK);
    let BufResult(result, chunk) = socket.read(chunk).await;
    match result {
        Ok(0) => Err(TlsError::ClosedInHandshake),
        Ok(n) => {
            inbox.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(source) => Err(TlsError::Socket { op: "read", source }),
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, sync::Arc};

    use super::*;

    #[test]
    fn record_framing() {
        let mut two = vec![23, 3, 3, 0, 2, 0xaa, 0xbb];
        two.extend_from_slice(&[21, 3, 3, 0, 2, 1, 0]);
        assert_eq!(next_record(&two), Some(7));
        assert_eq!(whole_records(&two), 14);
        assert_eq!(whole_records(&two[..12]), 7);
        assert_eq!(next_record(&two[..4]), None);
        // Not TLS: handed to rustls whole, so it refuses with an alert.
        assert_eq!(next_record(b"GET / HTTP/1.1\r\n"), Some(16));
        assert_eq!(next_record(&[22, 3, 1, 0xff, 0xff, 0]), Some(6));
    }

    /// A batch far beyond rustls's 64 KiB plaintext buffer arrives whole
    /// (it used to be cut at the limit, silently).
    #[test]
    fn userspace_send_delivers_a_batch_larger_than_the_rustls_buffer() {
        let state = std::env::temp_dir().join(format!("eg-transport-{}", std::process::id()));
        let (key, _) = crate::tls::self_signed(&state).expect("self-signed pair");
        // The client trusts exactly the certificate just made (its names
        // include "ethergate").
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(key.cert[0].clone())
            .expect("self-signed certificate as a root");
        let server_config = crate::tls::server_config(crate::tls::CurrentCertificate::new(key))
            .expect("server config");
        let mut server = rustls::ServerConnection::new(server_config).expect("server");
        let mut client = rustls::ClientConnection::new(
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ),
            "ethergate".try_into().expect("server name"),
        )
        .expect("client");
        // Handshake in memory.
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).expect("client tls");
            server.read_tls(&mut buf.as_slice()).expect("server read");
            server.process_new_packets().expect("server process");
            let mut back = Vec::new();
            server.write_tls(&mut back).expect("server tls");
            client.read_tls(&mut back.as_slice()).expect("client read");
            client.process_new_packets().expect("client process");
        }
        assert!(!server.is_handshaking() && !client.is_handshaking());

        let mut transport = Transport::Userspace(Box::new(server));
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut plain = big.clone();
        let mut out = Vec::new();
        transport.send(&mut plain, &mut out);
        assert!(plain.is_empty());
        let mut got = Vec::new();
        let mut wire = out.as_slice();
        while !wire.is_empty() {
            client.read_tls(&mut wire).expect("client read");
            client.process_new_packets().expect("client process");
            let _ = client.reader().read_to_end(&mut got);
        }
        let _ = std::fs::remove_dir_all(&state);
        assert_eq!(got.len(), big.len());
        assert!(got == big);
    }

    #[test]
    fn kernel_send_moves_the_buffer_without_copying() {
        let mut t = Transport::Kernel;
        let mut plain = b"frame".to_vec();
        let mut out = Vec::new();
        t.send(&mut plain, &mut out);
        assert_eq!((out.as_slice(), plain.is_empty()), (&b"frame"[..], true));
        let mut more = b"+more".to_vec();
        t.send(&mut more, &mut out);
        assert_eq!(out, b"frame+more");
        let mut bytes = &b"abc"[..];
        let mut got = Vec::new();
        let received = t.receive(&mut bytes, |p| got.extend_from_slice(p));
        assert!(matches!(received, Received::Open), "{received:?}");
        assert_eq!((got.as_slice(), bytes.is_empty()), (&b"abc"[..], true));
    }
}
