//! Writes the checked-in seed corpora of `fuzz/` from real-looking
//! handshakes and the spec's hex dumps. Run after changing a message shape:
//! `cargo test -p ethergate-proto --test fuzz_seeds -- --ignored`.
//! The non-ignored test checks that the session seed still reaches the
//! tunnel, so the corpus keeps covering the deep states.

mod common;

use std::path::PathBuf;

use ethergate_fixtures::softether::debian_like_login;
use ethergate_proto::data::DataEncoder;
use ethergate_proto::http;
use ethergate_proto::messages::error_reply;
use ethergate_proto::pack::Pack;
use ethergate_proto::password::{hash_password, secure_password};
use ethergate_proto::{
    ClientConnection, ClientEvent, Credentials, Frames, Hello, ServerConfig, ServerConnection,
    ServerEvent, SessionGrant, TestRng, Timestamp, Welcome,
};

/// Must match `SERVER_RNG_SEED` in fuzz/fuzz_targets/server_handshake.rs.
const SERVER_RNG_SEED: u64 = 7;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const EXAMPLE_A: &str = "00000004000000066275696c640000000000000001000025ca0000000668656c6c6f000000020000000100000004546573740000000772616e646f6d000000010000000100000014000102030405060708090a0b0c0d0e0f101112130000000876657273696f6e0000000000000001000001f5";
const EXAMPLE_B: &str = "00000003000000046d736700000003000000010000000448c3a90000000004743634000000040000000101020304050607080000000461727200000000000000020000000100000002";

fn server_random() -> [u8; 20] {
    *ServerConnection::new(
        ServerConfig::default(),
        TestRng::new(SERVER_RNG_SEED),
        Timestamp(0),
    )
    .server_random()
}

fn pack_request(p: &Pack) -> Vec<u8> {
    let mut v = Vec::new();
    http::write_pack_request(
        &mut v,
        "10.77.0.1",
        &p.to_bytes().expect("encode"),
        Some("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    v
}

fn preamble(probe: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if probe {
        http::write_probe_request(&mut v, "10.77.0.1");
    }
    http::write_signature_request(&mut v, "10.77.0.1");
    v
}

fn data_stream(compress: bool) -> Vec<u8> {
    let mut enc = DataEncoder::new(compress);
    let mut v = Vec::new();
    enc.encode_keepalive(&mut v, &mut TestRng::new(3));
    let arp: Vec<u8> = (0..60u8).collect();
    let big = vec![0x45u8; 1514];
    enc.encode_batch(&mut v, [arp.as_slice(), big.as_slice(), arp.as_slice()]);
    enc.encode_keepalive(&mut v, &mut TestRng::new(4));
    v
}

fn password_login() -> Credentials {
    Credentials::Password {
        secure_password: secure_password(&hash_password("secret", "alice"), &server_random()),
    }
}

/// ctl byte 0x7f → one chunk per 128 bytes, no compression allowed.
fn session_seed(compress: bool) -> Vec<u8> {
    let mut v = vec![if compress { 0xff } else { 0x7f }];
    v.extend(preamble(true));
    v.extend(pack_request(&debian_like_login(
        password_login(),
        "TEST",
        "alice",
        compress,
    )));
    v.extend(data_stream(compress));
    v
}

#[test]
fn session_seed_reaches_the_tunnel() {
    let seed = session_seed(false);
    let mut s = ServerConnection::new(
        ServerConfig::default(),
        TestRng::new(SERVER_RNG_SEED),
        Timestamp(0),
    );
    let mut frames = Frames::new();
    s.handle_input(Timestamp(1), &seed[1..], &mut frames);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::LoginRequested(_))
    ));
    let login = s.pending_login().expect("pending").clone();
    assert!(login.verify_password(&hash_password("secret", "alice"), s.server_random()));
    s.accept_login(Timestamp(1), ethergate_proto::SessionGrant::new("S", "C"));
    s.handle_input(Timestamp(2), &[], &mut frames);
    assert_eq!(frames.len(), 3);
}

fn fuzz_client(probe: bool) -> ClientConnection<TestRng> {
    ClientConnection::new(
        common::fuzz_client_config(probe),
        TestRng::new(1),
        Timestamp(0),
    )
}

/// What a server sends that client through a whole login granting UDP
/// acceleration, then three frames: recorded from our server talking to
/// it, prefixed with the fuzz target's control byte (chunks of 128 bytes,
/// with the probe).
fn client_seed() -> Vec<u8> {
    let mut c = fuzz_client(true);
    let mut s = ServerConnection::new(ServerConfig::default(), TestRng::new(2), Timestamp(0));
    let mut recorded = vec![0xff];
    let (mut c_frames, mut s_frames) = (Frames::new(), Frames::new());
    let now = Timestamp(1);
    for _ in 0..20 {
        let mut up = Vec::new();
        c.drain_transmit(&mut up);
        s.handle_input(now, &up, &mut s_frames);
        while let Some(event) = s.poll_event() {
            if let ServerEvent::LoginRequested(_) = event {
                let mut grant = SessionGrant::new("SID-ALICE-1", "CID-1");
                grant.udp_accel_port = Some(40_001);
                s.accept_login(now, grant);
            }
        }
        if s.is_established() && c.is_established() {
            s.send_frames(now, [&[0xaa; 60][..], &[0xbb; 1514][..], &[0xcc; 64][..]]);
        }
        let mut down = Vec::new();
        s.drain_transmit(&mut down);
        recorded.extend_from_slice(&down);
        c.handle_input(now, &down, &mut c_frames);
        if !c_frames.is_empty() {
            break;
        }
    }
    recorded
}

#[test]
fn client_seed_reaches_the_tunnel_with_a_udp_grant() {
    let seed = client_seed();
    let mut c = fuzz_client(true);
    let mut frames = Frames::new();
    c.handle_input(Timestamp(1), &seed[1..], &mut frames);
    let granted = std::iter::from_fn(|| c.poll_event()).any(
        |e| matches!(e, ClientEvent::Established { welcome: Some(w) } if w.udp_accel.is_some()),
    );
    assert!(granted, "established with a UDP grant");
    assert_eq!(frames.len(), 3);
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_fuzz_seeds() {
    // pack_decode
    write("pack_decode", "example_a", &unhex(EXAMPLE_A));
    write("pack_decode", "example_b", &unhex(EXAMPLE_B));
    let login = debian_like_login(password_login(), "TEST", "alice", false);
    write(
        "pack_decode",
        "login_debian_like",
        &login.to_bytes().expect("encode"),
    );
    let hello = Hello {
        server_str: "SoftEther VPN Server".into(),
        version: 501,
        build: 9674,
        random: [7; 20],
    };
    write(
        "pack_decode",
        "hello",
        &hello.to_pack().to_bytes().expect("encode"),
    );
    let welcome = Welcome {
        session_name: "SID-ALICE-2".into(),
        connection_name: "CID-14".into(),
        session_key: [5; 20],
        session_key_32: 77,
        max_connection: 1,
        use_encrypt: true,
        use_compress: false,
        half_connection: false,
        qos: false,
        timeout_ms: 20_000,
        policies: vec![("MaxConnection".into(), 32), ("TimeOut".into(), 20)],
        message: Some("hi".into()),
        udp_accel: None,
    };
    write(
        "pack_decode",
        "welcome",
        &welcome.to_pack().to_bytes().expect("encode"),
    );
    write(
        "pack_decode",
        "error9",
        &error_reply(ethergate_proto::ErrorCode(9), false)
            .to_bytes()
            .expect("encode"),
    );

    // http_preamble
    write(
        "http_preamble",
        "probe",
        &preamble(true)[..preamble(true).len() - preamble(false).len()],
    );
    write("http_preamble", "signature", &preamble(false));
    write("http_preamble", "login_post", &pack_request(&login));
    let mut r = Vec::new();
    http::write_forbidden(&mut r, "/");
    write("http_preamble", "forbidden", &r);
    let mut r = Vec::new();
    http::write_pack_response(
        &mut r,
        &hello.to_pack().to_bytes().expect("encode"),
        Some("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    write("http_preamble", "hello_response", &r);
    let mut wm = http::WATERMARK_PREFIX.to_vec();
    wm.resize(http::WATERMARK_LEN + 100, 0);
    let mut r = format!(
        "POST /vpnsvc/connect.cgi HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: image/jpeg\r\nHost: 10.77.0.1\r\n\r\n",
        wm.len()
    )
    .into_bytes();
    r.extend_from_slice(&wm);
    write("http_preamble", "watermark_signature", &r);

    // client_handshake
    write("client_handshake", "login_udp_grant_frames", &client_seed());

    // server_handshake
    write("server_handshake", "session_password", &session_seed(false));
    write(
        "server_handshake",
        "session_compressed",
        &session_seed(true),
    );
    let mut v = vec![3u8];
    v.extend(preamble(false));
    v.extend(pack_request(&debian_like_login(
        Credentials::PlainPassword {
            password: "secret".into(),
        },
        "TEST",
        "alice",
        false,
    )));
    v.extend(data_stream(false));
    write("server_handshake", "session_plain_password", &v);
    let mut v = vec![200u8];
    v.extend(preamble(false));
    v.extend(pack_request(&debian_like_login(
        Credentials::Anonymous,
        "TEST",
        "guest",
        false,
    )));
    write("server_handshake", "anonymous", &v);
    let mut v = vec![0x7f];
    v.extend(preamble(false));
    v.extend(pack_request(&debian_like_login(
        password_login(),
        "NOPE",
        "alice",
        false,
    )));
    write("server_handshake", "unknown_hub", &v);
    let mut admin = Pack::new();
    admin
        .set_str("method", "admin")
        .set_int("accept_empty_password", 1);
    let mut v = vec![0x7f];
    v.extend(preamble(false));
    v.extend(pack_request(&admin));
    write("server_handshake", "admin", &v);
    let mut noop = Pack::new();
    noop.set_int("error", 0).set_int("noop", 1);
    let ac = ethergate_proto::messages::AdditionalConnect {
        session_key: [2; 20],
        client_str: "SoftEther VPN Client Developer Edition".into(),
        client_ver: 501,
        client_build: 9674,
    };
    let mut v = vec![0x10];
    v.extend(preamble(false));
    v.extend(pack_request(&noop));
    v.extend(pack_request(&ac.to_pack()));
    v.extend(data_stream(false));
    write("server_handshake", "noop_then_additional_connect", &v);

    // data_phase_decode: ctl byte (bit 0 = compressed, rest = chunk size).
    let mut v = vec![0x00];
    v.extend(unhex("000000010000003c"));
    v.extend(0..60u8);
    v.extend(unhex("ffffffff00000003aabbcc"));
    write("data_phase_decode", "spec_examples", &v);
    let mut v = vec![0x20];
    v.extend(data_stream(false));
    write("data_phase_decode", "mixed_plain", &v);
    let mut v = vec![0x21];
    v.extend(data_stream(true));
    write("data_phase_decode", "mixed_compressed", &v);

    // udp_accel_record: control byte, then (u16 length, u16 clock step, record)…
    use ethergate_proto::udp_accel::{Liveness, Record};
    let mut v = vec![0x01];
    for i in 0..24u64 {
        let mut record = Vec::new();
        let frame = [0x5au8; 60];
        Record {
            cookie: 0x0102_0304,
            sender_tick: 100 + i * 500,
            echoed_tick: Liveness::own_tick(Timestamp(1_000 + i * 500)),
            compressed: false,
            frame: if i % 2 == 0 { &[] } else { &frame },
        }
        .encode(&mut record);
        v.extend((record.len() as u16).to_be_bytes());
        v.extend(500u16.to_be_bytes());
        v.extend(record);
    }
    write(
        "udp_accel_record",
        "twelve_seconds_of_keepalives_and_frames",
        &v,
    );
}
