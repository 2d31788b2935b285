//! Admin-socket requests: decoding is total, and whatever decodes encodes
//! back to something that decodes to the same request.
#![no_main]

use ethergate_admin::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        let again = Request::decode(request.encode().as_bytes());
        assert_eq!(again.ok(), Some(request));
    }
});
