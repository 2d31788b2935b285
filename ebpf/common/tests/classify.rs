//! Host tests of the frame classifier: the shared case table, truncation at
//! every offset, and arbitrary bytes.

use ethergate_common::{ProtoClass, parse::classify};
use ethergate_fixtures::{L3, classifier_cases, tcp4_syn, udp6};
use proptest::prelude::*;

#[test]
fn every_case_classifies_as_expected() {
    for case in classifier_cases() {
        let seen = classify(case.frame.as_slice());
        assert_eq!(
            (seen.class, seen.issue),
            (case.class, case.issue),
            "case {:?}",
            case.name
        );
    }
}

#[test]
fn offsets_point_at_the_headers() {
    let tcp = classify(tcp4_syn(1, 2).as_slice());
    assert_eq!(
        (tcp.l3_offset, tcp.l4_offset, tcp.vlan_tags),
        (L3, L3 + 20, 0)
    );
    let udp = classify(udp6(1, 2, b"x").as_slice());
    assert_eq!((udp.l3_offset, udp.l4_offset), (L3, L3 + 40));
}

#[test]
fn every_truncation_of_an_ip_frame_is_malformed() {
    // IP frames from the table are unpadded, so the IP length field covers
    // the whole frame and any cut must be noticed.
    for case in classifier_cases() {
        let is_ip = !matches!(
            case.class,
            ProtoClass::Malformed | ProtoClass::Arp | ProtoClass::NonIp
        );
        if !is_ip || case.name.contains("padded") {
            continue;
        }
        for cut in 0..case.frame.len() {
            let seen = classify(&case.frame[..cut]);
            assert_eq!(
                seen.class,
                ProtoClass::Malformed,
                "case {:?} cut at {cut} classified {:?}",
                case.name,
                seen.class
            );
            assert!(seen.issue.is_some(), "malformed without an issue");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_in_bounds(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let seen = classify(frame.as_slice());
        prop_assert_eq!(seen.class == ProtoClass::Malformed, seen.issue.is_some());
        prop_assert!(seen.l3_offset <= frame.len());
        prop_assert!(seen.l4_offset <= frame.len());
    }

    #[test]
    fn bit_flips_in_a_valid_frame_never_panic(flip in 0usize..(54 * 8)) {
        let mut frame = tcp4_syn(40000, 80);
        frame[flip / 8] ^= 1 << (flip % 8);
        let seen = classify(frame.as_slice());
        prop_assert_eq!(seen.class == ProtoClass::Malformed, seen.issue.is_some());
    }
}
