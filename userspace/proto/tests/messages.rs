//! Handshake message rules: welcome negotiation as `ServerAccept` computes
//! it (§5) and the client's welcome/hello checks.

use ethergate_proto::messages::{error_code_of, negotiate_welcome};
use ethergate_proto::pack::{Pack, PackError};
use ethergate_proto::{
    Credentials, ErrorCode, HandshakeError, Hello, LoginRequest, NegotiationLimits, SessionGrant,
    Welcome,
};

fn login(max: u32, qos: bool, half: bool, compress: bool) -> LoginRequest {
    LoginRequest {
        hubname: "TEST".into(),
        username: "alice".into(),
        credentials: Credentials::Anonymous,
        client_str: String::new(),
        client_ver: 0,
        client_build: 0,
        max_connection: max,
        use_encrypt: false,
        use_compress: compress,
        half_connection: half,
        qos,
        require_bridge_routing_mode: false,
        require_monitor_mode: false,
        unique_id: None,
        udp_accel: None,
    }
}

fn all_allowed(max: u32) -> NegotiationLimits {
    NegotiationLimits {
        max_connection: max,
        allow_compress: true,
        allow_qos: true,
        allow_half_connection: true,
    }
}

#[test]
fn timeout_is_clamped_to_5_60_seconds() {
    let mut g = SessionGrant::new("S", "C");
    for (policy, want) in [(0, 5_000), (20_000, 20_000), (600_000, 60_000)] {
        g.timeout_ms = policy;
        let w = negotiate_welcome(
            &login(1, false, false, false),
            &g,
            &NegotiationLimits::default(),
            [0; 20],
            0,
        );
        assert_eq!(w.timeout_ms, want);
        assert!(w.use_encrypt, "always 1");
    }
}

#[test]
fn max_connection_rules() {
    let g = SessionGrant::new("S", "C");
    let cases = [
        // (client max, server max, qos, half) -> expected
        (8, 1, false, false, 1),
        (8, 32, false, false, 8),
        (0, 32, false, false, 1),
        (100, 100, false, false, 32),
        (1, 32, true, false, 2),
        (1, 32, true, true, 4),
        (1, 32, false, true, 2),
        (8, 0, false, false, 1),
    ];
    for (client, server, qos, half, want) in cases {
        let w = negotiate_welcome(
            &login(client, qos, half, false),
            &g,
            &all_allowed(server),
            [0; 20],
            0,
        );
        assert_eq!(w.max_connection, want, "{client} {server} {qos} {half}");
    }
    let mut g = SessionGrant::new("S", "C");
    g.max_connection = 2;
    let w = negotiate_welcome(
        &login(8, false, false, false),
        &g,
        &all_allowed(32),
        [0; 20],
        0,
    );
    assert_eq!(w.max_connection, 2, "policy MaxConnection");
    // Defaults refuse qos and half-connection, keeping max_connection at 1.
    let w = negotiate_welcome(
        &login(8, true, true, true),
        &SessionGrant::new("S", "C"),
        &NegotiationLimits::default(),
        [0; 20],
        0,
    );
    assert_eq!(
        (w.max_connection, w.qos, w.half_connection, w.use_compress),
        (1, false, false, true)
    );
}

#[test]
fn welcome_round_trip_and_required_fields() {
    let mut g = SessionGrant::new("SID-ALICE-2", "CID-14");
    g.policies.push(("MaxConnection".into(), 32));
    g.message = Some("hello".into());
    let w = negotiate_welcome(
        &login(1, false, false, false),
        &g,
        &NegotiationLimits::default(),
        [3; 20],
        9,
    );
    let p = w.to_pack();
    assert_eq!(p.int("policy:Access").expect("Access"), 1);
    assert_eq!(p.int("policy:Ver3").expect("Ver3"), 1);
    assert!(!p.contains("use_udp_acceleration"));
    let back = Welcome::from_pack(
        &Pack::decode(
            &p.to_bytes().expect("enc"),
            &ethergate_proto::PackLimits::HANDSHAKE,
        )
        .expect("dec"),
    )
    .expect("welcome");
    assert_eq!(back, w);

    for missing in ["session_name", "connection_name", "session_key", "timeout"] {
        let mut q = p.clone();
        q.remove(missing);
        assert!(
            matches!(
                Welcome::from_pack(&q),
                Err(HandshakeError::Pack(PackError::Missing { .. }))
            ),
            "{missing}"
        );
    }
    let mut q = p.clone();
    q.set_data("session_key", &[0; 19]);
    assert!(matches!(
        Welcome::from_pack(&q),
        Err(HandshakeError::Pack(PackError::WrongLength {
            expected: 20,
            found: 19,
            ..
        }))
    ));
    q = p.clone();
    q.set_int("timeout", 1);
    assert_eq!(Welcome::from_pack(&q), Err(HandshakeError::BadTimeout(1)));
    q = p.clone();
    q.set_int("error", 9);
    assert_eq!(
        Welcome::from_pack(&q),
        Err(HandshakeError::Remote(ErrorCode::AUTH_FAILED))
    );
    assert_eq!(error_code_of(&q), ErrorCode(9));
}

#[test]
fn hello_requires_str_and_20_byte_random() {
    let h = Hello {
        server_str: "x".into(),
        version: 501,
        build: 9674,
        random: [1; 20],
    };
    let p = h.to_pack();
    assert_eq!(Hello::from_pack(&p).expect("hello"), h);
    let mut q = p.clone();
    q.set_unistr("hello", "x");
    assert!(Hello::from_pack(&q).is_err(), "hello must be a STR");
    q = p.clone();
    q.set_data("random", &[0; 16]);
    assert!(Hello::from_pack(&q).is_err());
    q = p.clone();
    q.set_int("error", 16);
    assert_eq!(
        Hello::from_pack(&q),
        Err(HandshakeError::Remote(ErrorCode::HUB_IS_BUSY))
    );
}

#[test]
fn login_credentials_by_authtype() {
    let mut p = login(1, false, false, false).to_pack();
    p.set_int("authtype", 3);
    assert_eq!(
        LoginRequest::from_pack(&p)
            .expect("cert login parses")
            .credentials,
        Credentials::Unsupported { authtype: 3 }
    );
    p.set_int("authtype", 1);
    assert!(
        LoginRequest::from_pack(&p).is_err(),
        "password login needs secure_password"
    );
    p.set_data("secure_password", &[0; 20]);
    assert!(matches!(
        LoginRequest::from_pack(&p).expect("ok").credentials,
        Credentials::Password { .. }
    ));
    // Secrets never reach Debug output.
    let dbg = format!("{:?}", LoginRequest::from_pack(&p).expect("ok"));
    assert!(dbg.contains("Password{..}"));
}
