//! Drives the server state machine with arbitrary client bytes, split into
//! chunks, on a virtual clock, answering its events like a hub would.
//! Invariants: no panic; once closed, nothing more is transmitted; the
//! pre-auth buffer stays bounded.
#![no_main]

use ethergate_proto::password::hash_password;
use ethergate_proto::{
    Authenticator, Credentials, Direction, ErrorCode, Frames, LoginRequest, ServerConfig,
    ServerConnection, ServerEvent, SessionGrant, TestRng, Timestamp,
};
use libfuzzer_sys::fuzz_target;

/// Must match the seed generator in tests/fuzz_seeds.rs.
pub const SERVER_RNG_SEED: u64 = 7;

struct Hub;

impl Authenticator for Hub {
    fn authenticate(
        &mut self,
        req: &LoginRequest,
        random: &[u8; 20],
    ) -> Result<SessionGrant, ErrorCode> {
        if req.hubname != "TEST" {
            return Err(ErrorCode::HUB_NOT_FOUND);
        }
        let ok = match &req.credentials {
            Credentials::Anonymous => req.username == "guest",
            Credentials::Unsupported { .. } => return Err(ErrorCode::AUTHTYPE_NOT_SUPPORTED),
            _ => req.verify_password(&hash_password("secret", "alice"), random),
        };
        if ok {
            let mut g = SessionGrant::new("SID-FUZZ-1", "CID-1");
            g.timeout_ms = 5_000;
            Ok(g)
        } else {
            Err(ErrorCode::AUTH_FAILED)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(ctl & 0x7f) + 1;
    let mut cfg = ServerConfig::default();
    cfg.negotiation.allow_compress = ctl & 0x80 != 0;
    let mut s = ServerConnection::new(cfg, TestRng::new(SERVER_RNG_SEED), Timestamp(0));
    let mut frames = Frames::new();
    let mut now = 0u64;
    let mut sink = Vec::new();
    for c in stream.chunks(chunk) {
        now += 250;
        let was_closed = s.is_closed();
        s.handle_input(Timestamp(now), c, &mut frames);
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::LoginRequested(_) => s.authenticate_with(Timestamp(now), &mut Hub),
                ServerEvent::AdditionalConnectRequested(a) => {
                    if a.session_key[0] % 2 == 0 {
                        s.accept_additional(
                            Timestamp(now),
                            Direction::Both,
                            5_000,
                            a.session_key[1] % 2 == 0,
                        );
                    } else {
                        s.reject_additional(Timestamp(now), ErrorCode::TOO_MANY_CONNECTION);
                    }
                }
                ServerEvent::Established(_) | ServerEvent::Closed(_) => {}
            }
        }
        if s.is_established() && !frames.is_empty() {
            // Echo what arrived, as a bridge would.
            let echo: Vec<Vec<u8>> = frames.iter().map(<[u8]>::to_vec).collect();
            s.send_frames(Timestamp(now), echo.iter().map(Vec::as_slice));
        }
        frames.clear();
        if let Some(t) = s.poll_timeout() {
            if t.0 <= now {
                s.handle_timeout(Timestamp(now));
            }
        }
        if was_closed {
            assert!(s.transmit().is_empty(), "closed connections stay silent");
        }
        sink.clear();
        s.drain_transmit(&mut sink);
    }
});
