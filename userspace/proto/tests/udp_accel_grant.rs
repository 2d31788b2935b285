//! The UDP acceleration grant through a server connection, from the login
//! the Debian client sends: granted in the welcome (with the eleven
//! elements the client checks) when the driver names a port, and left out
//! otherwise; the session's parameters reach the driver either way they
//! must.

use ethergate_fixtures::softether::debian_like_login;
use ethergate_proto::http;
use ethergate_proto::pack::{Pack, PackLimits};
use ethergate_proto::udp_accel::Grant;
use ethergate_proto::{
    Credentials, Established, Frames, ServerConfig, ServerConnection, ServerEvent, SessionGrant,
    TestRng, Timestamp,
};

/// Logs in with the Debian-shaped login and accepts it with `port`;
/// returns the welcome PACK and the session's UDP parameters.
fn login(port: Option<u16>) -> (Pack, Option<Box<ethergate_proto::udp_accel::Session>>) {
    let mut s = ServerConnection::new(ServerConfig::default(), TestRng::new(1), Timestamp(0));
    let mut input = Vec::new();
    http::write_signature_request(&mut input, "10.77.0.1");
    let login = debian_like_login(Credentials::Anonymous, "TEST", "alice", false);
    http::write_pack_request(
        &mut input,
        "10.77.0.1",
        &login.to_bytes().expect("encode"),
        None,
    );
    let mut frames = Frames::new();
    s.handle_input(Timestamp(1), &input, &mut frames);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::LoginRequested(_))
    ));
    let mut out = Vec::new();
    s.drain_transmit(&mut out);
    s.accept_login(
        Timestamp(2),
        SessionGrant {
            udp_accel_port: port,
            ..SessionGrant::new("SID-ALICE-1", "CID-1")
        },
    );
    let Some(ServerEvent::Established(Established::Login { udp_accel, .. })) = s.poll_event()
    else {
        panic!("not established");
    };
    out.clear();
    s.drain_transmit(&mut out);
    let response = http::parse_response(&out, http::MAX_PACK_BODY)
        .expect("a response")
        .expect("complete");
    let welcome = Pack::decode(&response.0.body, &PackLimits::HANDSHAKE).expect("a PACK");
    (welcome, udp_accel)
}

#[test]
fn a_port_grants_version_two_with_fresh_keys_and_cookies() {
    let (welcome, session) = login(Some(443));
    let grant = Grant::from_welcome(&welcome).expect("granted as the client reads it");
    assert_eq!(grant.server_port, 443);
    assert_eq!(welcome.int_or_zero("udp_acceleration_version"), 2);
    assert!(welcome.bool_or_false("udp_acceleration_use_encryption"));
    let session = session.expect("the driver gets the session's parameters");
    assert_eq!(session.grant, grant, "the driver's keys are the welcome's");
    assert_eq!(session.offer.client_key, [2; 32], "the login's key");
    assert_eq!(session.offer.client_port, 40_000);
}

#[test]
fn no_port_no_grant() {
    let (welcome, session) = login(None);
    assert!(!welcome.contains("use_udp_acceleration"));
    assert!(session.is_none());
}
