//! HTTP request and response parsing of arbitrary bytes: never panics,
//! consumes no more than it was given, and a complete message is stable
//! under any further bytes appended.
#![no_main]

use ethergate_proto::http;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for max_body in [0, http::MAX_SIGNATURE_BODY, http::MAX_PACK_BODY] {
        if let Ok(Some((m, used))) = http::parse_request(data, max_body) {
            assert!(used <= data.len());
            assert!(m.body.len() <= max_body);
            let _ = http::check_pack_request(&m);
            let _ = http::is_signature_request(&m) && http::is_valid_signature(&m.body);
            // Re-parsing only the consumed prefix gives the same message.
            assert_eq!(
                http::parse_request(&data[..used], max_body),
                Ok(Some((m, used)))
            );
        }
        if let Ok(Some((m, used))) = http::parse_response(data, max_body) {
            assert!(used <= data.len());
            let _ = http::check_pack_response(&m);
            let _ = http::is_softether_probe_answer(&m);
        }
    }
});
