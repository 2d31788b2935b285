//! HTTP preamble parsing and writing (§1): exact header rules, caps, and
//! robustness of the server handshake against arbitrary bytes.

use ethergate_proto::http::{self, HttpError, MAX_HEADERS, MAX_LINE};
use ethergate_proto::{Frames, ServerConfig, ServerConnection, TestRng, Timestamp};
use proptest::prelude::*;

#[test]
fn pack_request_round_trips_and_passes_server_checks() {
    let mut req = Vec::new();
    http::write_pack_request(
        &mut req,
        "10.0.0.1",
        b"\x00\x00\x00\x00",
        Some(&http::http_date(0)),
    );
    let (m, used) = http::parse_request(&req, http::MAX_PACK_BODY)
        .expect("ok")
        .expect("complete");
    assert_eq!(used, req.len());
    assert_eq!(
        (m.method(), m.target(), m.version()),
        ("POST", "/vpnsvc/vpn.cgi", "HTTP/1.1")
    );
    assert_eq!(m.head.header("date"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
    assert_eq!(m.head.header("KEEP-ALIVE"), Some("timeout=15; max=19"));
    http::check_pack_request(&m).expect("server accepts");
    // Every strict prefix is incomplete, not an error.
    for cut in 0..req.len() {
        assert_eq!(
            http::parse_request(&req[..cut], http::MAX_PACK_BODY),
            Ok(None),
            "cut {cut}"
        );
    }
}

#[test]
fn pack_response_rules() {
    let mut resp = Vec::new();
    http::write_pack_response(&mut resp, b"abcd", None);
    let (m, _) = http::parse_response(&resp, 100)
        .expect("ok")
        .expect("complete");
    http::check_pack_response(&m).expect("client accepts");
    assert!(!String::from_utf8_lossy(&resp).contains("charset"));

    let with_charset = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream; charset=utf-8\r\nContent-Length: 1\r\n\r\nx";
    let (m, _) = http::parse_response(with_charset, 100)
        .expect("ok")
        .expect("complete");
    assert!(matches!(
        http::check_pack_response(&m),
        Err(HttpError::BadContentType(_))
    ));
    let not_200 = b"http/1.1 500 Oops\r\nContent-Type: APPLICATION/OCTET-STREAM\r\nContent-Length: 1\r\n\r\nx";
    let (m, _) = http::parse_response(not_200, 100)
        .expect("ok")
        .expect("complete");
    assert!(matches!(
        http::check_pack_response(&m),
        Err(HttpError::BadStatus(_))
    ));
    assert_eq!(
        http::parse_response(b"HTTP/1.1 200 OK\r\n\r\n", 100),
        Err(HttpError::MissingContentLength)
    );
}

#[test]
fn server_request_checks() {
    let cases: [(&[u8], bool); 4] = [
        (b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\r\nx", true),
        (b"POST /vpnsvc/vpn.cgi HTTP/1.0\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\r\nx", false),
        (b"POST /other HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\r\nx", false),
        (b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx", false),
    ];
    for (raw, ok) in cases {
        let (m, _) = http::parse_request(raw, 100)
            .expect("parse")
            .expect("complete");
        assert_eq!(
            http::check_pack_request(&m).is_ok(),
            ok,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn header_caps() {
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_LINE));
    assert_eq!(
        http::parse_request(long.as_bytes(), 0),
        Err(HttpError::LineTooLong { max: MAX_LINE })
    );
    // An unterminated over-long line is refused before it completes.
    let partial = vec![b'a'; MAX_LINE + 10];
    assert_eq!(
        http::parse_request(&partial, 0),
        Err(HttpError::LineTooLong { max: MAX_LINE })
    );
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        http::parse_request(many.as_bytes(), 0),
        Err(HttpError::TooManyHeaders { max: MAX_HEADERS })
    );
    let big = b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Length: 65537\r\n\r\n";
    assert!(matches!(
        http::parse_request(big, http::MAX_PACK_BODY),
        Err(HttpError::BodyTooLarge { .. })
    ));
    let dup = b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx";
    assert_eq!(
        http::parse_request(dup, 10),
        Err(HttpError::DuplicateContentLength)
    );
    for bad in ["-1", "+1", "1 1", "", "99999999999"] {
        let r = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(
            http::parse_request(r.as_bytes(), 10),
            Err(HttpError::BadContentLength),
            "{bad:?}"
        );
    }
    let te = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        http::parse_request(te, 10),
        Err(HttpError::TransferEncoding)
    );
    assert_eq!(
        http::parse_request(b"GET /\r\n\r\n", 10),
        Err(HttpError::BadStartLine)
    );
    assert_eq!(
        http::parse_request(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 10),
        Err(HttpError::BadHeader)
    );
}

#[test]
fn signature_bodies() {
    assert!(http::is_valid_signature(b"VPNCONNECT"));
    assert!(!http::is_valid_signature(b"VPNCONNECTX"));
    let mut wm = http::WATERMARK_PREFIX.to_vec();
    wm.resize(http::WATERMARK_LEN - 1, 0);
    assert!(!http::is_valid_signature(&wm));
    wm.push(0);
    assert!(http::is_valid_signature(&wm));
    wm.resize(http::MAX_SIGNATURE_BODY + 1, 0);
    assert!(!http::is_valid_signature(&wm));
}

#[test]
fn probe_answer_detection() {
    let mut resp = Vec::new();
    http::write_forbidden(&mut resp, "/<script>");
    let (m, _) = http::parse_response(&resp, 1 << 16)
        .expect("ok")
        .expect("complete");
    assert!(http::is_softether_probe_answer(&m));
    assert!(!String::from_utf8_lossy(&m.body).contains("<script>"));
    let body = format!("<p>{}</p>", http::SERVER_TAG);
    let tagged = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (m, _) = http::parse_response(tagged.as_bytes(), 100)
        .expect("ok")
        .expect("complete");
    assert!(http::is_softether_probe_answer(&m));
    let plain = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";
    let (m, _) = http::parse_response(plain, 100)
        .expect("ok")
        .expect("complete");
    assert!(!http::is_softether_probe_answer(&m));
}

#[test]
fn http_date_format() {
    assert_eq!(
        http::http_date(784_111_777),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(
        http::http_date(1_709_251_200),
        "Fri, 01 Mar 2024 00:00:00 GMT"
    );
}

proptest! {
    #[test]
    fn server_survives_arbitrary_bytes(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..10)) {
        let mut s = ServerConnection::new(ServerConfig::default(), TestRng::new(5), Timestamp(0));
        let mut frames = Frames::new();
        for (i, c) in chunks.iter().enumerate() {
            s.handle_input(Timestamp(i as u64), c, &mut frames);
            s.handle_timeout(Timestamp(i as u64 * 1000));
        }
        while s.poll_event().is_some() {}
    }

    #[test]
    fn server_handshake_is_chunking_invariant(cuts in prop::collection::vec(0usize..400, 0..6)) {
        // Same input, different TCP segmentation: identical output.
        let mut input = Vec::new();
        http::write_probe_request(&mut input, "h");
        http::write_signature_request(&mut input, "h");
        let run = |cuts: &[usize]| {
            let mut s = ServerConnection::new(ServerConfig::default(), TestRng::new(6), Timestamp(0));
            let mut frames = Frames::new();
            let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut pos = 0;
            for c in cuts.into_iter().chain([input.len()]) {
                s.handle_input(Timestamp(1), &input[pos..c.max(pos)], &mut frames);
                pos = c.max(pos);
            }
            s.transmit().to_vec()
        };
        prop_assert_eq!(run(&cuts), run(&[]));
    }
}
