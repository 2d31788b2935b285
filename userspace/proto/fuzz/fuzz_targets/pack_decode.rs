//! PACK decoding of arbitrary bytes: never panics, and anything accepted
//! re-encodes to exactly the same bytes and decodes to the same PACK.
#![no_main]

use ethergate_proto::pack::{Pack, PackLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limits in [PackLimits::HANDSHAKE, PackLimits::AUTHENTICATED] {
        if let Ok(p) = Pack::decode(data, &limits) {
            let bytes = p.to_bytes().expect("a decoded PACK encodes");
            assert_eq!(bytes, data, "decode/encode is byte-exact");
            assert_eq!(p.encoded_len(), data.len());
            // Exercise the typed getters on whatever names exist.
            for e in p.elements() {
                let n = e.name();
                let _ = (
                    p.int(n),
                    p.int64(n),
                    p.data(n),
                    p.str(n),
                    p.unistr(n),
                    p.ip(n),
                );
            }
            // The UDP acceleration parts of a login and a welcome.
            let _ = ethergate_proto::udp_accel::Offer::from_login(&p);
            let _ = ethergate_proto::udp_accel::Grant::from_welcome(&p);
        }
    }
});
