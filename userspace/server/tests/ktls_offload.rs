//! kTLS offload, as far as this machine's kernel allows.
//!
//! 1. Real rustls handshakes for TLS 1.2 and 1.3 × AES-128-GCM, AES-256-GCM
//!    and ChaCha20-Poly1305; the server's secrets go through the same
//!    `crypto_info` mapping the offload uses, and a stand-in for the kernel
//!    (aws-lc-rs, following net/tls's nonce and AAD rules) seals records
//!    from the TX info that the real rustls client must accept, and opens
//!    records from the client with the RX info. This checks keys, IV/salt
//!    split and sequence numbers against a real peer without the kernel.
//! 2. The offload handshake over loopback on the io_uring runtime, with the
//!    client pipelining data behind its Finished: the kernel takes the
//!    session where the `tls` ULP exists; where it doesn't (this machine:
//!    CONFIG_TLS is not set) the connection must fall back to rustls with
//!    no byte lost, and the test says that the kernel data phase was
//!    skipped and why.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    sync::Arc,
};

use aws_lc_rs::aead::{
    AES_128_GCM, AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use ethergate_server::{
    ktls::{
        self, KtlsSupport, Offload, OffloadPolicy,
        crypto_info::{Direction, TlsVersion, crypto_info},
    },
    transport::{self, Received, Transport},
};
use nix::sys::socket::sockopt::TlsCryptoInfo;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
    SupportedCipherSuite,
    crypto::{CryptoProvider, aws_lc_rs as provider},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};

struct Identity {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn identity() -> Identity {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf cert");
    Identity {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

fn cases() -> Vec<(TlsVersion, SupportedCipherSuite)> {
    use provider::cipher_suite as cs;
    vec![
        (TlsVersion::Tls13, cs::TLS13_AES_128_GCM_SHA256),
        (TlsVersion::Tls13, cs::TLS13_AES_256_GCM_SHA384),
        (TlsVersion::Tls13, cs::TLS13_CHACHA20_POLY1305_SHA256),
        (
            TlsVersion::Tls12,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            TlsVersion::Tls12,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            TlsVersion::Tls12,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

fn configs(
    id: &Identity,
    version: TlsVersion,
    suite: SupportedCipherSuite,
) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let provider = Arc::new(CryptoProvider {
        cipher_suites: vec![suite],
        ..provider::default_provider()
    });
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .expect("server versions")
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .expect("server cert");
    server.enable_secret_extraction = true;
    let mut roots = RootCertStore::empty();
    roots.add(id.ca.clone()).expect("root");
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("client versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Moves bytes between the two in memory until neither has anything to say.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) {
    loop {
        let mut moved = false;
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).expect("client write");
        }
        if !buf.is_empty() {
            moved = true;
            server.read_tls(&mut &buf[..]).expect("server read");
            server.process_new_packets().expect("server process");
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).expect("server write");
        }
        if !buf.is_empty() {
            moved = true;
            client.read_tls(&mut &buf[..]).expect("client read");
            client.process_new_packets().expect("client process");
        }
        if !moved {
            return;
        }
    }
}

/// The kernel's view of one direction: cipher, key, 12-byte nonce base,
/// explicit-nonce counter (TLS 1.2 GCM) and record sequence number.
struct KernelDirection {
    version: TlsVersion,
    key: LessSafeKey,
    gcm12: bool,
    salt: [u8; 4],
    iv: Vec<u8>,
    seq: u64,
}

impl KernelDirection {
    fn new(version: TlsVersion, info: &TlsCryptoInfo) -> Self {
        let (alg, key, salt, iv, rec_seq): (_, &[u8], [u8; 4], Vec<u8>, [u8; 8]) = match info {
            TlsCryptoInfo::Aes128Gcm(i) => (&AES_128_GCM, &i.key, i.salt, i.iv.to_vec(), i.rec_seq),
            TlsCryptoInfo::Aes256Gcm(i) => (&AES_256_GCM, &i.key, i.salt, i.iv.to_vec(), i.rec_seq),
            TlsCryptoInfo::Chacha20Poly1305(i) => {
                (&CHACHA20_POLY1305, &i.key, [0; 4], i.iv.to_vec(), i.rec_seq)
            }
        };
        let gcm12 = version == TlsVersion::Tls12 && iv.len() == 8;
        Self {
            version,
            key: LessSafeKey::new(UnboundKey::new(alg, key).expect("key")),
            gcm12,
            salt,
            iv,
            seq: u64::from_be_bytes(rec_seq),
        }
    }

    /// (salt ‖ iv) XOR seq, as net/tls does for TLS 1.3 and ChaCha20.
    fn xor_nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        if self.iv.len() == 12 {
            n.copy_from_slice(&self.iv);
        } else {
            n[..4].copy_from_slice(&self.salt);
            n[4..].copy_from_slice(&self.iv);
        }
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn aad12(&self, len: usize) -> [u8; 13] {
        let mut aad = [0u8; 13];
        aad[..8].copy_from_slice(&self.seq.to_be_bytes());
        aad[8..].copy_from_slice(&[23, 3, 3, (len >> 8) as u8, len as u8]);
        aad
    }

    /// One application-data record, as tls_sw would put it on the wire.
    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let record = match self.version {
            TlsVersion::Tls13 => {
                let mut body = plain.to_vec();
                body.push(23);
                let len = body.len() + 16;
                let header = [23, 3, 3, (len >> 8) as u8, len as u8];
                let nonce = Nonce::assume_unique_for_key(self.xor_nonce());
                self.key
                    .seal_in_place_append_tag(nonce, Aad::from(header), &mut body)
                    .expect("seal");
                [header.to_vec(), body].concat()
            }
            TlsVersion::Tls12 => {
                let mut body = plain.to_vec();
                let aad = self.aad12(plain.len());
                let (nonce, explicit) = if self.gcm12 {
                    let mut n = [0u8; 12];
                    n[..4].copy_from_slice(&self.salt);
                    n[4..].copy_from_slice(&self.iv);
                    (n, self.iv.clone())
                } else {
                    (self.xor_nonce(), Vec::new())
                };
                self.key
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut body,
                    )
                    .expect("seal");
                let len = explicit.len() + body.len();
                [vec![23, 3, 3, (len >> 8) as u8, len as u8], explicit, body].concat()
            }
        };
        if self.gcm12 {
            // tls_advance_record_sn: the explicit nonce counts up.
            let next = u64::from_be_bytes(self.iv[..].try_into().expect("8")).wrapping_add(1);
            self.iv = next.to_be_bytes().to_vec();
        }
        self.seq += 1;
        record
    }

    /// Opens one application-data record from the peer.
    fn open(&mut self, record: &[u8]) -> Vec<u8> {
        assert_eq!(record[0], 23, "outer type is application data");
        let body = &record[5..];
        let plain = match self.version {
            TlsVersion::Tls13 => {
                let mut buf = body.to_vec();
                let nonce = Nonce::assume_unique_for_key(self.xor_nonce());
                let plain = self
                    .key
                    .open_in_place(nonce, Aad::from(&record[..5]), &mut buf)
                    .expect("kernel-side decrypt (TLS 1.3)");
                let (kind, inner) = plain.split_last().expect("inner type");
                assert_eq!(*kind, 23);
                inner.to_vec()
            }
            TlsVersion::Tls12 => {
                let (nonce, mut buf) = if self.gcm12 {
                    let mut n = [0u8; 12];
                    n[..4].copy_from_slice(&self.salt);
                    n[4..].copy_from_slice(&body[..8]);
                    (n, body[8..].to_vec())
                } else {
                    (self.xor_nonce(), body.to_vec())
                };
                let aad = self.aad12(buf.len() - 16);
                self.key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut buf,
                    )
                    .expect("kernel-side decrypt (TLS 1.2)")
                    .to_vec()
            }
        };
        self.seq += 1;
        plain
    }
}

#[test]
fn crypto_info_from_real_handshakes_is_what_the_peer_expects() {
    let id = identity();
    for (version, suite) in cases() {
        let (server_config, client_config) = configs(&id, version, suite);
        let mut server = ServerConnection::new(server_config).expect("server");
        let mut client = ClientConnection::new(
            client_config,
            ServerName::try_from("localhost").expect("name"),
        )
        .expect("client");
        pump(&mut client, &mut server);
        assert!(!server.is_handshaking() && !client.is_handshaking());
        // Some traffic in both directions first, so sequence numbers are
        // not all zero when the kernel would take over.
        server.writer().write_all(b"before").expect("write");
        client.writer().write_all(b"before").expect("write");
        pump(&mut client, &mut server);
        let mut got = [0u8; 6];
        server
            .reader()
            .read_exact(&mut got)
            .expect("server plaintext");
        client
            .reader()
            .read_exact(&mut got)
            .expect("client plaintext");

        let secrets = server.dangerous_extract_secrets().expect("secrets");
        let tx = crypto_info(version, Direction::Tx, secrets.tx.0, &secrets.tx.1).expect("tx");
        let rx = crypto_info(version, Direction::Rx, secrets.rx.0, &secrets.rx.1).expect("rx");
        let mut kernel_tx = KernelDirection::new(version, &tx);
        let mut kernel_rx = KernelDirection::new(version, &rx);

        // "Kernel" → real client, two records (sequence and counter move).
        for message in [&b"first record from the kernel"[..], b"second"] {
            let record = kernel_tx.seal(message);
            client.read_tls(&mut &record[..]).expect("client read");
            client
                .process_new_packets()
                .unwrap_or_else(|e| panic!("{version:?} {suite:?}: client rejects: {e}"));
            let mut plain = vec![0u8; message.len()];
            client
                .reader()
                .read_exact(&mut plain)
                .expect("client plaintext");
            assert_eq!(plain, message, "{version:?} {suite:?}");
        }
        // Real client → "kernel".
        for message in [&b"first record to the kernel"[..], b"second"] {
            client.writer().write_all(message).expect("write");
            let mut record = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut record).expect("client write");
            }
            assert_eq!(kernel_rx.open(&record), message, "{version:?} {suite:?}");
        }
        eprintln!(
            "{version:?} {:?}: crypto info accepted by the peer both ways",
            suite.suite()
        );
    }
}

/// The client: connects, completes the handshake, sends `request` at once
/// (pipelined behind its Finished), reads the reply.
fn client(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    request: Vec<u8>,
    reply_len: usize,
) -> Vec<u8> {
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    let conn = ClientConnection::new(config, ServerName::try_from("localhost").expect("name"))
        .expect("client");
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(&request).expect("client write");
    stream.flush().expect("flush");
    let mut reply = vec![0u8; reply_len];
    stream.read_exact(&mut reply).expect("client reply");
    // Then a clean end: rustls reads 0 only after a close_notify (a bare
    // FIN is an UnexpectedEof error).
    let mut more = [0u8; 16];
    match stream.read(&mut more) {
        Ok(0) => {}
        other => panic!("expected close_notify after the reply, got {other:?}"),
    }
    reply
}

#[test]
fn offload_over_loopback_or_fall_back_without_losing_bytes() {
    let support = ktls::probe();
    let id = identity();
    let request: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let reply = b"reply from the server".to_vec();
    for (version, suite) in cases() {
        let (server_config, client_config) = configs(&id, version, suite);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (request2, reply_len) = (request.clone(), reply.len());
        let client = std::thread::spawn(move || client(addr, client_config, request2, reply_len));

        let offload = Offload::new(OffloadPolicy::Always, support.clone());
        let (received, mode) = compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                use compio::{
                    BufResult,
                    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
                };
                let (std_tcp, _) = listener.accept().expect("accept");
                let mut tcp = compio::net::TcpStream::from_std(std_tcp).expect("tcp");
                let tls = ServerConnection::new(server_config).expect("server");
                let handover = transport::establish(&mut tcp, tls, None, &offload, 1)
                    .await
                    .expect("handshake");
                let mut transport = handover.transport;
                let mut received = handover.plaintext;
                let mut unread = handover.unread;
                loop {
                    let mut bytes = &unread[..];
                    while !bytes.is_empty() {
                        let r = transport.receive(&mut bytes, |p| received.extend_from_slice(p));
                        assert!(matches!(r, Received::Open), "{r:?}");
                    }
                    if received.len() >= request.len() {
                        break;
                    }
                    let BufResult(r, buf) = tcp.read(Vec::with_capacity(64 * 1024)).await;
                    match r {
                        Ok(n) if n > 0 => unread = buf,
                        other => panic!("socket read: {other:?}"),
                    }
                }
                let mut plain = reply.clone();
                let mut out = Vec::new();
                transport.send(&mut plain, &mut out);
                let BufResult(r, mut out) = tcp.write_all(out).await;
                r.expect("server write");
                // close_notify, as a closing connection sends it: in the
                // kernel's own record when the kernel has the session.
                out.clear();
                transport.close_notify(&tcp, &mut out);
                if !out.is_empty() {
                    let BufResult(r, _) = tcp.write_all(out).await;
                    r.expect("close_notify write");
                }
                let _ = tcp.shutdown().await;
                (received, transport.mode())
            });
        assert_eq!(
            received, request,
            "{version:?} {suite:?}: every byte crossed the switch"
        );
        assert_eq!(client.join().expect("client thread"), reply);
        let counts = offload.counters.snapshot();
        match &support {
            KtlsSupport::Available => {
                assert_eq!((mode, counts.kernel), (ktls::MODE_KERNEL, 1), "{counts:?}");
            }
            KtlsSupport::Unavailable(reason) => {
                assert_eq!(
                    (mode, counts.fell_back),
                    (ktls::MODE_USERSPACE, 1),
                    "{counts:?}"
                );
                assert!(reason.contains("TLS ULP unavailable"), "{reason}");
                eprintln!(
                    "{version:?} {:?}: handshake, flush and pipelined bytes checked; \
                     SKIPPED the kernel data phase: {reason}",
                    suite.suite()
                );
            }
        }
        let _ = Transport::Kernel; // both variants are part of the API under test
    }
}
