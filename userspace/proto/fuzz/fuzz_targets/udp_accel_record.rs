//! UDP acceleration records (the plaintext of a datagram) of arbitrary
//! bytes, fed through the liveness state on a virtual clock: decoding
//! never panics, stays within the input, re-encodes to the same record;
//! frames are never "usable" before ten seconds of confirmed reception.
//! Input: one control byte (bit 0: fast timers), then records, each
//! prefixed by a u16 length and a u16 clock step in milliseconds.
#![no_main]

use ethergate_proto::Timestamp;
use ethergate_proto::udp_accel::{Liveness, Received, Record, STABLE_MS, Timers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let mut liveness = Liveness::new(Timers::new(control & 1 == 1), 0x0102_0304);
    let mut now = Timestamp(1_000);
    let mut first_accepted: Option<Timestamp> = None;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let step = u64::from(u16::from_be_bytes([rest[2], rest[3]]));
        rest = &rest[4..];
        let bytes = &rest[..len.min(rest.len())];
        rest = &rest[bytes.len()..];
        now = now.plus_ms(step);
        if let Ok(record) = Record::decode(bytes) {
            let mut again = Vec::new();
            record.encode(&mut again);
            let round = Record::decode(&again).expect("an encoded record decodes");
            assert_eq!(round.frame, record.frame);
            assert_eq!(round.cookie, record.cookie);
            if let Received::Accepted { .. } = liveness.receive(now, &record) {
                first_accepted.get_or_insert(now);
            }
        }
        if liveness.usable(now) {
            let since = first_accepted.expect("usable only after an accepted record");
            assert!(now.since(since) >= STABLE_MS);
        }
    }
});
