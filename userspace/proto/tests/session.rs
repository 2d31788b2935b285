//! A client and a server state machine talking in memory on a virtual
//! clock: probe, signature, hello, login, welcome, frames both ways,
//! keep-alives and timeouts — plus the refusal paths with real codes.

use std::collections::HashMap;

use ethergate_proto::http;
use ethergate_proto::messages::{Welcome, authtype};
use ethergate_proto::pack::{Pack, PackLimits};
use ethergate_proto::password::hash_password;
use ethergate_proto::{
    Authenticator, ClientAuth, ClientConfig, ClientConnection, ClientEvent, ClientMode,
    CloseReason, Credentials, Direction, ErrorCode, Established, Frames, LoginRequest,
    ServerConfig, ServerConnection, ServerEvent, SessionGrant, TestRng, Timestamp, TunnelError,
};

/// A toy hub directory: hub name → (user → stored hash, or None for anonymous).
struct Hubs(HashMap<String, HashMap<String, Option<[u8; 20]>>>);

impl Hubs {
    fn new() -> Self {
        let mut users = HashMap::new();
        users.insert("alice".to_owned(), Some(hash_password("secret", "alice")));
        users.insert("guest".to_owned(), None);
        let mut hubs = HashMap::new();
        hubs.insert("TEST".to_owned(), users);
        Hubs(hubs)
    }
}

impl Authenticator for Hubs {
    fn authenticate(
        &mut self,
        req: &LoginRequest,
        random: &[u8; 20],
    ) -> Result<SessionGrant, ErrorCode> {
        let hub = self.0.get(&req.hubname).ok_or(ErrorCode::HUB_NOT_FOUND)?;
        let user = hub
            .get(&req.username.to_ascii_lowercase())
            .ok_or(ErrorCode::AUTH_FAILED)?;
        let ok = match (&req.credentials, user) {
            (Credentials::Anonymous, None) => true,
            (Credentials::Unsupported { .. }, _) => return Err(ErrorCode::AUTHTYPE_NOT_SUPPORTED),
            (_, Some(h)) => req.verify_password(h, random),
            _ => false,
        };
        if !ok {
            return Err(ErrorCode::AUTH_FAILED);
        }
        Ok(SessionGrant::new(
            format!("SID-{}-1", req.username.to_ascii_uppercase()),
            "CID-1",
        ))
    }
}

struct Pair {
    c: ClientConnection<TestRng>,
    s: ServerConnection<TestRng>,
    hubs: Hubs,
    now: Timestamp,
    c_frames: Frames,
    s_frames: Frames,
    c_events: Vec<ClientEvent>,
    s_events: Vec<ServerEvent>,
    /// Drop client→server bytes (a dead client).
    cut_c2s: bool,
    /// Bytes the server sent, by time, for keep-alive spacing checks.
    s_sends: Vec<(u64, usize)>,
}

/// The first of `events` that matches `pattern`, as `out`.
macro_rules! first {
    ($events:expr, $pattern:pat => $out:expr) => {
        $events.iter().find_map(|e| match e {
            $pattern => Some($out),
            _ => None,
        })
    };
}

impl Pair {
    /// The welcome the client was established with.
    fn welcome(&self) -> Welcome {
        first!(self.c_events, ClientEvent::Established { welcome } => welcome.clone())
            .flatten()
            .expect("client established with a welcome")
    }

    fn new(cfg: ClientConfig) -> Self {
        Pair::with_server(cfg, ServerConfig::default())
    }

    fn with_server(cfg: ClientConfig, scfg: ServerConfig) -> Self {
        let now = Timestamp(1_000);
        Pair {
            c: ClientConnection::new(cfg, TestRng::new(1), now),
            s: ServerConnection::new(scfg, TestRng::new(2), now),
            hubs: Hubs::new(),
            now,
            c_frames: Frames::new(),
            s_frames: Frames::new(),
            c_events: Vec::new(),
            s_events: Vec::new(),
            cut_c2s: false,
            s_sends: Vec::new(),
        }
    }

    /// Move bytes and answer events until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            let mut buf = Vec::new();
            self.c.drain_transmit(&mut buf);
            if !buf.is_empty() && !self.cut_c2s {
                moved = true;
                // Deliver in odd-sized chunks to exercise reassembly.
                for chunk in buf.chunks(37) {
                    self.s.handle_input(self.now, chunk, &mut self.s_frames);
                }
            }
            let mut buf = Vec::new();
            self.s.drain_transmit(&mut buf);
            if !buf.is_empty() {
                moved = true;
                self.s_sends.push((self.now.0, buf.len()));
                for chunk in buf.chunks(101) {
                    self.c.handle_input(self.now, chunk, &mut self.c_frames);
                }
            }
            while let Some(e) = self.s.poll_event() {
                moved = true;
                if matches!(e, ServerEvent::LoginRequested(_)) {
                    self.s.authenticate_with(self.now, &mut self.hubs);
                }
                self.s_events.push(e);
            }
            while let Some(e) = self.c.poll_event() {
                moved = true;
                self.c_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Advance the virtual clock to `until`, firing timers as they fall due.
    fn run_until(&mut self, until: u64) {
        loop {
            let next = [self.c.poll_timeout(), self.s.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map_or(until, |t| t.0.max(self.now.0));
            if next > until {
                self.now = Timestamp(until);
                return;
            }
            self.now = Timestamp(next);
            self.c.handle_timeout(self.now);
            self.s.handle_timeout(self.now);
            self.pump();
            if self.c.is_closed() && self.s.is_closed() {
                return;
            }
        }
    }

    fn client_close(&self) -> Option<&CloseReason> {
        first!(self.c_events, ClientEvent::Closed(r) => r)
    }

    fn server_close(&self) -> Option<&CloseReason> {
        first!(self.s_events, ServerEvent::Closed(r) => r)
    }
}

fn alice(auth: ClientAuth) -> ClientConfig {
    ClientConfig::new("10.77.0.1", "TEST", "alice", auth)
}

fn password_auth() -> ClientAuth {
    ClientAuth::Password {
        hash: hash_password("secret", "alice"),
    }
}

#[test]
fn full_session_probe_login_frames_keepalives_timeout() {
    let mut cfg = alice(password_auth());
    cfg.send_probe = true;
    let mut p = Pair::new(cfg);
    p.pump();

    // Handshake completed on both sides.
    assert!(p.c.is_established(), "client events: {:?}", p.c_events);
    assert!(p.s.is_established(), "server events: {:?}", p.s_events);
    assert!(matches!(p.c_events[0], ClientEvent::Hello(_)));
    let welcome = p.welcome();
    assert_eq!(welcome.session_name, "SID-ALICE-1");
    assert_eq!(welcome.connection_name, "CID-1");
    assert_eq!(welcome.timeout_ms, 20_000);
    assert_eq!(welcome.max_connection, 1);
    assert!(welcome.use_encrypt && !welcome.use_compress && !welcome.qos);
    let est =
        first!(p.s_events, ServerEvent::Established(x) => x.clone()).expect("server established");
    let Established::Login {
        hubname,
        username,
        welcome: server_welcome,
        ..
    } = est
    else {
        panic!("a login establishes a Login session: {est:?}");
    };
    assert_eq!(hubname, "TEST");
    assert_eq!(username, "alice");
    assert_eq!(server_welcome.session_key, welcome.session_key);

    // Frames both ways, many per batch.
    let f1: Vec<u8> = (0..60u8).collect();
    let f2 = vec![0x5a; 1514];
    assert_eq!(p.c.send_frames(p.now, [f1.as_slice(), f2.as_slice()]), 2);
    p.pump();
    assert_eq!(
        p.s_frames.iter().collect::<Vec<_>>(),
        vec![f1.as_slice(), f2.as_slice()]
    );
    assert_eq!(p.s.send_frames(p.now, [f2.as_slice()]), 1);
    p.pump();
    assert_eq!(p.c_frames.iter().collect::<Vec<_>>(), vec![f2.as_slice()]);
    let st = p.s.tunnel_stats().expect("tunnel");
    assert_eq!((st.frames_received, st.frames_dropped), (2, 0));
    assert!(st.keepalives_received >= 1, "client's first keep-alive");

    // Two minutes of silence apart from keep-alives: the session survives,
    // and the server's keep-alives are spaced within [timeout/5, timeout/2).
    let start = p.now.0;
    p.s_sends.clear();
    p.run_until(start + 120_000);
    assert!(
        p.client_close().is_none(),
        "client closed: {:?}",
        p.c_events
    );
    assert!(
        p.server_close().is_none(),
        "server closed: {:?}",
        p.s_events
    );
    let times: Vec<u64> = p.s_sends.iter().map(|(t, _)| *t).collect();
    assert!(times.len() >= 10, "only {} server keep-alives", times.len());
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!((4_000..10_000).contains(&gap), "keep-alive gap {gap}");
    }

    // The client dies silently: the server gives up after `timeout`.
    p.cut_c2s = true;
    let dead_from = p.now.0;
    p.run_until(dead_from + 30_000);
    match p.server_close() {
        Some(r @ CloseReason::Tunnel(TunnelError::Timeout(ms))) => {
            assert!(*ms >= 20_000);
            assert_eq!(r.code(), ErrorCode::SESSION_TIMEOUT);
        }
        other => panic!("server should time out, got {other:?}"),
    }
    // The server stopped talking too, so the client times out as well.
    p.run_until(dead_from + 60_000);
    assert!(matches!(
        p.client_close(),
        Some(CloseReason::Tunnel(TunnelError::Timeout(_)))
    ));
}

#[test]
fn wrong_password_is_error_9() {
    let mut p = Pair::new(alice(ClientAuth::Password {
        hash: hash_password("wrong", "alice"),
    }));
    p.pump();
    assert_eq!(
        p.client_close(),
        Some(&CloseReason::Refused(ErrorCode::AUTH_FAILED))
    );
    assert_eq!(
        p.server_close(),
        Some(&CloseReason::Refused(ErrorCode::AUTH_FAILED))
    );
    assert_eq!(ErrorCode::AUTH_FAILED.0, 9);
}

#[test]
fn unknown_hub_is_error_8() {
    let mut cfg = alice(password_auth());
    cfg.hubname = "NOPE".into();
    let mut p = Pair::new(cfg);
    p.pump();
    assert_eq!(p.client_close(), Some(&CloseReason::Refused(ErrorCode(8))));
}

#[test]
fn plain_password_and_anonymous_logins() {
    let mut p = Pair::new(alice(ClientAuth::PlainPassword {
        password: "secret".into(),
    }));
    p.pump();
    assert!(p.c.is_established());

    let mut p = Pair::new(alice(ClientAuth::PlainPassword {
        password: "Secret".into(),
    }));
    p.pump();
    assert_eq!(
        p.client_close(),
        Some(&CloseReason::Refused(ErrorCode::AUTH_FAILED))
    );

    let mut p = Pair::new(ClientConfig::new(
        "h",
        "TEST",
        "guest",
        ClientAuth::Anonymous,
    ));
    p.pump();
    assert!(p.c.is_established());

    // Anonymous is not a way around a password.
    let mut p = Pair::new(alice(ClientAuth::Anonymous));
    p.pump();
    assert_eq!(
        p.client_close(),
        Some(&CloseReason::Refused(ErrorCode::AUTH_FAILED))
    );
}

#[test]
fn compression_is_negotiated_and_works() {
    let mut cfg = alice(password_auth());
    cfg.use_compress = true;
    let mut p = Pair::new(cfg);
    p.pump();
    let welcome = p.welcome();
    assert!(welcome.use_compress);
    let f = vec![7u8; 1500];
    p.c.send_frames(p.now, [f.as_slice()]);
    p.s.send_frames(p.now, [f.as_slice(), f.as_slice()]);
    p.pump();
    assert_eq!(p.s_frames.len(), 1);
    assert_eq!(p.c_frames.len(), 2);
    assert_eq!(p.c_frames.get(1).expect("frame"), f.as_slice());

    // A server that disallows compression answers use_compress=0.
    let mut cfg = alice(password_auth());
    cfg.use_compress = true;
    let mut scfg = ServerConfig::default();
    scfg.negotiation.allow_compress = false;
    let mut p = Pair::with_server(cfg, scfg);
    p.pump();
    assert!(
        p.c_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Established { welcome: Some(w) } if !w.use_compress))
    );
}

/// A client asking to join the session of `key` as another connection,
/// pumped until it waits for the server's answer.
fn additional_connection(key: [u8; 20]) -> Pair {
    let mut cfg = alice(password_auth());
    cfg.mode = ClientMode::AdditionalConnect {
        session_key: key,
        timeout_ms: 20_000,
        use_compress: false,
    };
    let mut p = Pair::new(cfg);
    p.pump();
    p
}

#[test]
fn additional_connect_accept_and_refuse() {
    let key = [9u8; 20];
    let mut p = additional_connection(key);
    let ev = first!(p.s_events, ServerEvent::AdditionalConnectRequested(a) => a.clone())
        .expect("additional_connect event");
    assert_eq!(ev.session_key, key);
    p.s.accept_additional(p.now, Direction::Both, 20_000, false);
    p.pump();
    assert!(p.c.is_established() && p.s.is_established());
    assert!(
        p.c_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Established { welcome: None }))
    );
    p.c.send_frames(p.now, [&[1u8, 2, 3][..]]);
    p.pump();
    assert_eq!(p.s_frames.len(), 1);

    let mut p = additional_connection(key);
    p.s.reject_additional(p.now, ErrorCode::TOO_MANY_CONNECTION);
    p.pump();
    assert_eq!(p.client_close(), Some(&CloseReason::Refused(ErrorCode(15))));
}

#[test]
fn handshake_times_out() {
    let mut s = ServerConnection::new(ServerConfig::default(), TestRng::new(3), Timestamp(0));
    s.handle_input(Timestamp(100), b"GET / HTTP/1.1\r\n", &mut Frames::new());
    assert_eq!(s.poll_timeout(), Some(Timestamp(15_000)));
    s.handle_timeout(Timestamp(14_999));
    assert!(!s.is_closed());
    s.handle_timeout(Timestamp(15_000));
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Closed(CloseReason::HandshakeTimeout))
    );
}

// ---- Raw-server helpers: drive the server with hand-made requests. ----

fn raw_server() -> ServerConnection<TestRng> {
    ServerConnection::new(ServerConfig::default(), TestRng::new(4), Timestamp(0))
}

fn take_response(s: &mut ServerConnection<TestRng>) -> http::Message {
    let mut out = Vec::new();
    s.drain_transmit(&mut out);
    let (resp, used) = http::parse_response(&out, 1 << 20)
        .expect("valid response")
        .expect("complete response");
    assert_eq!(used, out.len(), "exactly one response");
    resp
}

fn post_pack(s: &mut ServerConnection<TestRng>, p: &Pack) {
    let mut req = Vec::new();
    http::write_pack_request(&mut req, "h", &p.to_bytes().expect("encode"), None);
    s.handle_input(Timestamp(1), &req, &mut Frames::new());
}

fn after_hello() -> ServerConnection<TestRng> {
    let mut s = raw_server();
    let mut req = Vec::new();
    http::write_signature_request(&mut req, "h");
    s.handle_input(Timestamp(1), &req, &mut Frames::new());
    let hello = take_response(&mut s);
    let p = Pack::decode(&hello.body, &PackLimits::HANDSHAKE).expect("hello pack");
    assert_eq!(p.data("random").expect("random"), s.server_random());
    s
}

fn response_pack(s: &mut ServerConnection<TestRng>) -> Pack {
    let r = take_response(s);
    http::check_pack_response(&r).expect("pack response");
    Pack::decode(&r.body, &PackLimits::HANDSHAKE).expect("pack")
}

#[test]
fn admin_method_is_error_33() {
    let mut s = after_hello();
    let mut p = Pack::new();
    p.set_str("method", "admin")
        .set_int("accept_empty_password", 1);
    post_pack(&mut s, &p);
    let r = response_pack(&mut s);
    assert_eq!(r.int("error").expect("error"), 33);
    assert_eq!(r.int("no_save_password").expect("no_save_password"), 0);
    assert!(s.is_closed());
}

#[test]
fn unknown_method_and_missing_fields_are_error_4() {
    let mut s = after_hello();
    let mut p = Pack::new();
    p.set_str("method", "enum_hub");
    post_pack(&mut s, &p);
    assert_eq!(response_pack(&mut s).int("error").expect("error"), 4);

    // A login whose username is a UNISTR, not a STR: PackGetStr fails.
    let mut s = after_hello();
    let mut p = Pack::new();
    p.set_str("method", "login")
        .set_str("hubname", "TEST")
        .set_unistr("username", "alice")
        .set_int("authtype", authtype::ANONYMOUS);
    post_pack(&mut s, &p);
    assert_eq!(response_pack(&mut s).int("error").expect("error"), 4);
}

#[test]
fn noop_is_answered_and_noop_ignore_is_skipped() {
    let mut s = after_hello();
    let mut p = Pack::new();
    p.set_int("error", 0).set_int("noop", 1);
    post_pack(&mut s, &p);
    let r = response_pack(&mut s);
    assert_eq!(
        (r.int("error").expect("e"), r.int("noop").expect("n")),
        (0, 1)
    );
    p.set_int("noop", 2);
    post_pack(&mut s, &p);
    assert!(s.transmit().is_empty());
    assert!(!s.is_closed());
}

#[test]
fn probe_gets_403_page_and_loop_is_capped_at_19() {
    let mut s = raw_server();
    let mut req = Vec::new();
    http::write_probe_request(&mut req, "10.77.0.1");
    s.handle_input(Timestamp(1), &req, &mut Frames::new());
    let r = take_response(&mut s);
    assert_eq!(r.status(), "403");
    assert!(http::is_softether_probe_answer(&r));
    assert_eq!(
        r.head.header("content-type"),
        Some("text/html; charset=iso-8859-1")
    );
    for _ in 1..19 {
        s.handle_input(Timestamp(1), &req, &mut Frames::new());
    }
    assert!(!s.is_closed());
    s.handle_input(Timestamp(1), &req, &mut Frames::new());
    assert!(s.is_closed());
}

#[test]
fn bad_signature_gets_403_and_watermark_shape_is_accepted() {
    let mut s = raw_server();
    let bad = b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    s.handle_input(Timestamp(1), bad, &mut Frames::new());
    assert_eq!(take_response(&mut s).status(), "403");
    // A GIF89a-prefixed body of watermark length plus padding, as the real
    // client sends it.
    let mut body = http::WATERMARK_PREFIX.to_vec();
    body.resize(http::WATERMARK_LEN + 500, 0x11);
    let mut req = format!(
        "POST /VPNSVC/CONNECT.CGI HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: image/jpeg\r\nHost: 10.77.0.1\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    s.handle_input(Timestamp(1), &req, &mut Frames::new());
    let hello = take_response(&mut s);
    assert_eq!(hello.status(), "200");
    let p = Pack::decode(&hello.body, &PackLimits::HANDSHAKE).expect("hello");
    assert!(p.str("hello").is_ok());
}

#[test]
fn login_pack_as_the_real_client_sends_it_verifies() {
    // Rebuild the authentication part of §4.1 by hand and check the proof.
    let random: [u8; 20] = std::array::from_fn(|i| i as u8);
    let mut p = Pack::new();
    p.set_str("method", "login")
        .set_str("hubname", "TEST")
        .set_str("username", "alice")
        .set_int("authtype", authtype::PASSWORD)
        .set_data(
            "secure_password",
            &ethergate_proto::password::secure_password(&hash_password("secret", "alice"), &random),
        )
        .set_int("max_connection", 1)
        .set_int("qos", 1);
    let login = LoginRequest::from_pack(&p).expect("login");
    assert!(login.verify_password(&hash_password("secret", "alice"), &random));
    assert!(!login.verify_password(&hash_password("secret", "bob"), &random));
    assert!(login.qos);
}
