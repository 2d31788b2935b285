//! Replays every checked-in fuzz seed (and crash reproducer) under
//! `fuzz/corpus/<target>/` through the same invariants the fuzz targets
//! assert, so they run in plain `cargo test` without nightly.

mod common;

use std::path::PathBuf;

use ethergate_proto::data::{DataDecoder, MAX_PACKET_SIZE};
use ethergate_proto::http;
use ethergate_proto::pack::{Pack, PackLimits};
use ethergate_proto::{Frames, ServerConfig, ServerConnection, TestRng, Timestamp};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| {
            let p = e.expect("dir entry").path();
            (
                p.display().to_string(),
                std::fs::read(&p).expect("read seed"),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "empty corpus {target}");
    v
}

#[test]
fn pack_decode_corpus() {
    for (name, data) in corpus("pack_decode") {
        if let Ok(p) = Pack::decode(&data, &PackLimits::AUTHENTICATED) {
            assert_eq!(p.to_bytes().expect("encodes"), data, "{name}");
        }
    }
}

#[test]
fn http_preamble_corpus() {
    for (name, data) in corpus("http_preamble") {
        for max in [0, http::MAX_SIGNATURE_BODY, http::MAX_PACK_BODY] {
            if let Ok(Some((m, used))) = http::parse_request(&data, max) {
                assert!(used <= data.len(), "{name}");
                assert_eq!(
                    http::parse_request(&data[..used], max),
                    Ok(Some((m, used))),
                    "{name}"
                );
            }
            let _ = http::parse_response(&data, max);
        }
    }
}

#[test]
fn data_phase_decode_corpus() {
    for (name, data) in corpus("data_phase_decode") {
        let Some((&ctl, stream)) = data.split_first() else {
            continue;
        };
        let compressed = ctl & 1 == 1;
        let chunk = usize::from(ctl >> 1) + 1;
        let run = |chunk: usize| {
            let mut dec = DataDecoder::new(compressed);
            let mut frames = Vec::new();
            for c in stream.chunks(chunk.max(1)) {
                let r = dec.decode(c, &mut |f: &[u8]| {
                    assert!(f.len() <= MAX_PACKET_SIZE);
                    frames.push(f.to_vec());
                });
                if r.is_err() {
                    return (frames, true);
                }
            }
            (frames, false)
        };
        assert_eq!(run(stream.len()), run(chunk), "{name}");
    }
}

#[test]
fn client_handshake_corpus() {
    use ethergate_proto::ClientConnection;
    for (name, data) in corpus("client_handshake") {
        let Some((&ctl, stream)) = data.split_first() else {
            continue;
        };
        let cfg = common::fuzz_client_config(ctl & 0x80 != 0);
        let mut c = ClientConnection::new(cfg, TestRng::new(1), Timestamp(0));
        let mut frames = Frames::new();
        for (i, piece) in stream.chunks(usize::from(ctl & 0x7f) + 1).enumerate() {
            let now = Timestamp(i as u64 * 250);
            let was_closed = c.is_closed();
            c.handle_input(now, piece, &mut frames);
            while c.poll_event().is_some() {}
            c.handle_timeout(now);
            let mut out = Vec::new();
            c.drain_transmit(&mut out);
            assert!(!was_closed || out.is_empty(), "{name}: closed and talking");
            frames.clear();
        }
    }
}

#[test]
fn server_handshake_corpus() {
    for (_name, data) in corpus("server_handshake") {
        let Some((&ctl, stream)) = data.split_first() else {
            continue;
        };
        let chunk = usize::from(ctl & 0x7f) + 1;
        let mut s = ServerConnection::new(ServerConfig::default(), TestRng::new(7), Timestamp(0));
        let mut frames = Frames::new();
        for (i, c) in stream.chunks(chunk).enumerate() {
            let now = Timestamp(i as u64 * 250);
            s.handle_input(now, c, &mut frames);
            while let Some(ev) = s.poll_event() {
                if let ethergate_proto::ServerEvent::LoginRequested(_) = ev {
                    s.accept_login(now, ethergate_proto::SessionGrant::new("S", "C"));
                }
            }
            s.handle_timeout(now);
            let mut out = Vec::new();
            s.drain_transmit(&mut out);
            frames.clear();
        }
    }
}
