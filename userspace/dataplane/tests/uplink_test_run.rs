//! The uplink XDP program, run by the kernel on hand-made frames through
//! BPF_PROG_TEST_RUN: the same case table the host classifier is held to,
//! plus checks that the frame comes back untouched and that exactly one
//! counter slot moves per frame. Needs root (CAP_BPF).

use ethergate_common::{ProtoClass, Verdict};
use ethergate_dataplane::Dataplane;
use ethergate_fixtures::{classifier_cases, tcp4_syn};

const XDP_PASS: u32 = 2;

#[test]
fn every_case_is_passed_unchanged_and_counted_once() {
    let mut dataplane = Dataplane::load().expect("load eBPF (run as root)");
    for case in classifier_cases() {
        if case.frame.len() < 14 {
            // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet
            // header (EINVAL); the kernel never delivers such frames either.
            continue;
        }
        let before = dataplane.counters().expect("read counters");
        let outcome = dataplane
            .test_run_uplink(&case.frame)
            .unwrap_or_else(|e| panic!("test run of {:?}: {e}", case.name));
        let delta = dataplane.counters().expect("read counters").since(&before);

        assert_eq!(outcome.action, XDP_PASS, "case {:?}", case.name);
        assert_eq!(
            outcome.frame, case.frame,
            "case {:?} changed the frame",
            case.name
        );
        assert_eq!(delta.all_packets(), 1, "case {:?}", case.name);
        let slot = delta.total(case.class, Verdict::Pass);
        assert_eq!(
            (slot.packets, slot.bytes),
            (1, case.frame.len() as u64),
            "case {:?} expected class {:?}",
            case.name,
            case.class
        );
        let issues: u64 = ethergate_common::ParseIssue::ALL
            .iter()
            .map(|&i| delta.parse_issue(i))
            .sum();
        match case.issue {
            Some(issue) => {
                assert_eq!(delta.parse_issue(issue), 1, "case {:?}", case.name);
                assert_eq!(issues, 1, "case {:?}", case.name);
            }
            None => assert_eq!(issues, 0, "case {:?}", case.name),
        }
    }
}

#[test]
fn counters_accumulate_over_repeated_frames() {
    let mut dataplane = Dataplane::load().expect("load eBPF (run as root)");
    let frame = tcp4_syn(1234, 443);
    for _ in 0..25 {
        dataplane.test_run_uplink(&frame).expect("test run");
    }
    let counters = dataplane.counters().expect("read counters");
    let tcp = counters.total(ProtoClass::Tcp4, Verdict::Pass);
    assert_eq!(tcp.packets, 25);
    assert_eq!(tcp.bytes, 25 * frame.len() as u64);
    assert_eq!(counters.all_packets(), 25);
}
