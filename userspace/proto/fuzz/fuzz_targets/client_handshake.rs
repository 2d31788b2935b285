//! Drives the client state machine with arbitrary server bytes (what a
//! hostile or broken server could send after TLS), split into chunks, on a
//! virtual clock, offering UDP acceleration as `ethergate client` does.
//! Invariants: no panic; once closed, nothing more is transmitted; a
//! granted UDP path comes with non-zero cookies.
#![no_main]

use ethergate_proto::password::hash_password;
use ethergate_proto::udp_accel::Offer;
use ethergate_proto::{
    ClientAuth, ClientConfig, ClientConnection, ClientEvent, Frames, TestRng, Timestamp,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(ctl & 0x7f) + 1;
    // The same client as tests/common/mod.rs's `fuzz_client_config`.
    let mut cfg = ClientConfig::new(
        "10.77.0.1",
        "TEST",
        "alice",
        ClientAuth::Password {
            hash: hash_password("secret", "alice"),
        },
    );
    cfg.send_probe = ctl & 0x80 != 0;
    cfg.udp_accel = Some(Offer {
        max_version: 2,
        client_ip: None,
        client_port: 40_000,
        client_key: [9; 32],
        fast_detect: true,
    });
    let mut c = ClientConnection::new(cfg, TestRng::new(1), Timestamp(0));
    let mut frames = Frames::new();
    let mut sink = Vec::new();
    let mut now = 0u64;
    for piece in stream.chunks(chunk) {
        now += 250;
        let was_closed = c.is_closed();
        c.handle_input(Timestamp(now), piece, &mut frames);
        while let Some(event) = c.poll_event() {
            if let ClientEvent::Established {
                welcome: Some(welcome),
            } = event
                && let Some(grant) = welcome.udp_accel
            {
                assert!(grant.server_cookie != 0 && grant.client_cookie != 0);
                let _ = grant.server_key();
            }
        }
        if c.is_established() && !frames.is_empty() {
            // Send back what arrived, as a bridged tap would.
            let echo: Vec<Vec<u8>> = frames.iter().map(<[u8]>::to_vec).collect();
            c.send_frames(Timestamp(now), echo.iter().map(Vec::as_slice));
        }
        frames.clear();
        if let Some(t) = c.poll_timeout()
            && t.0 <= now
        {
            c.handle_timeout(Timestamp(now));
        }
        sink.clear();
        c.drain_transmit(&mut sink);
        if was_closed {
            assert!(sink.is_empty(), "closed connections stay silent");
        }
    }
});
