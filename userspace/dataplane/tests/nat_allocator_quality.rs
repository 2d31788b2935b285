//! Allocator quality, measured through the real program
//! (BPF_PROG_TEST_RUN): one destination tuple, a port range of [`RANGE`]
//! ports, new flows until the range is full. Reports, for the attempts
//! made while the range was 0–75 %, 75–95 %, 95–99 % and 99–100 % full,
//! how many were refused (`ports_exhausted`), plus cilium's cumulative
//! measure (failures among the first 75 % and 100 % of RANGE attempts) and
//! the probes per created flow. Asserts no failure below 75 % fill and
//! cilium's bounds for its own allocator (under 7 % at 75 %, under 16 % at
//! 100 %). Needs root.

mod common;

use common::{Bench, XDP_DROP, XDP_REDIRECT};
use ethergate_common::{DropReason, NatEvent};
use ethergate_fixtures::nat::L4;

const PORT_MIN: u16 = 20000;
const RANGE: u16 = 1024;
/// Fill buckets, in per cent of RANGE: [from, to).
const BUCKETS: [(u32, u32); 4] = [(0, 75), (75, 95), (95, 99), (99, 100)];

#[test]
fn failure_rate_by_fill() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    dp.set_snat_port_range(PORT_MIN, PORT_MIN + RANGE - 1)
        .expect("narrow port range");
    let range = u32::from(RANGE);
    let mut created = 0u32;
    let mut failed = 0u32;
    // (attempts, failures) per bucket, by the fill before the attempt.
    let mut buckets = [(0u32, 0u32); BUCKETS.len()];
    let mut cumulative = Vec::new();
    let mut attempt = 0u32;
    while created < range && attempt < 4 * range {
        attempt += 1;
        let fill = created * 100 / range;
        let syn = bench
            .sent_by_private(L4::Tcp {
                src: 10000 + attempt as u16,
                dst: 443,
                flags: 0x02,
            })
            .frame(b"");
        let ok = match bench.out(&mut dp, &syn).0 {
            XDP_REDIRECT => true,
            XDP_DROP => false,
            other => panic!("attempt {attempt}: action {other}"),
        };
        if ok {
            created += 1;
        } else {
            failed += 1;
        }
        if let Some(slot) = BUCKETS
            .iter()
            .position(|(lo, hi)| (*lo..*hi).contains(&fill))
        {
            buckets[slot].0 += 1;
            buckets[slot].1 += u32::from(!ok);
        }
        if attempt == range * 3 / 4 || attempt == range {
            cumulative.push((attempt, failed));
        }
    }
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_drop(DropReason::PortsExhausted), u64::from(failed));
    assert_eq!(c.nat_event(NatEvent::FlowCreated), u64::from(created));
    let collisions = c.nat_event(NatEvent::PortCollision);
    let pct = |failed: u32, attempts: u32| f64::from(failed) / f64::from(attempts.max(1)) * 100.0;
    let mut report = format!(
        "allocator quality ({RANGE} ports, one destination tuple, {} probes max):",
        ethergate_common::nat::MAX_PORT_PROBES
    );
    for ((lo, hi), (attempts, failures)) in BUCKETS.iter().zip(buckets) {
        report.push_str(&format!(
            " {lo}-{hi}% full: {failures}/{attempts} refused ({:.2}%);",
            pct(failures, attempts)
        ));
    }
    let (at75, at100) = (
        pct(cumulative[0].1, cumulative[0].0),
        pct(cumulative[1].1, cumulative[1].0),
    );
    report.push_str(&format!(
        " cumulative (cilium): {at75:.2}% of the first 75%, {at100:.2}% of the first 100% of \
         attempts; {:.2} probes per created flow; full after {attempt} attempts",
        1.0 + collisions as f64 / f64::from(created.max(1)),
    ));
    eprintln!("{report}");
    assert_eq!(buckets[0].1, 0, "refusals below 75% fill: {report}");
    // 256 probes fail at 95 % fill with probability 0.95^256 ≈ 2e-6.
    assert_eq!(buckets[1].1, 0, "refusals at 75-95% fill: {report}");
    assert!(at75 < 7.0, "{report}");
    assert!(at100 < 16.0, "{report}");
    assert_eq!(created, range, "the range filled up: {report}");
}
