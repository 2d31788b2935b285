//! The metrics endpoint's request-head parser must be total: any bytes give
//! a route or an error, and a route only for a well-formed GET/HEAD line.
#![no_main]

use ethergate_admin::http::{MAX_HEAD_BYTES, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse_head(data) {
        assert!(data.starts_with(b"GET ") || data.starts_with(b"HEAD "));
        let _ = request;
    } else if data.len() > MAX_HEAD_BYTES + 4 {
        // Oversized input is refused, never parsed past the bound.
        let _ = parse_head(&data[..MAX_HEAD_BYTES]);
    }
});
