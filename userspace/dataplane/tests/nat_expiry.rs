//! Flow expiry in the kernel: each pair's timer removes it once it has
//! been idle for its timeout, re-arms while traffic flows, and counts.
//! Real time, short timeouts (the shortest the config allows: 1 s).

mod common;

use std::time::{Duration, Instant};

use common::{Bench, XDP_REDIRECT};
use ethergate_common::NatEvent;
use ethergate_config::NatTimeouts;
use ethergate_dataplane::Dataplane;
use ethergate_fixtures::nat::L4;

fn short_timeouts(bench: &Bench) -> Dataplane {
    let mut config = common::config();
    config.timeouts = NatTimeouts {
        tcp_established_secs: 3,
        tcp_transitory_secs: 1,
        udp_secs: 1,
        icmp_secs: 1,
    };
    bench
        .topo
        .enter("nat", || {
            let mut dp = Dataplane::load().expect("load eBPF");
            dp.configure_nat(&config).expect("configure nat");
            dp
        })
        .expect("enter nat")
}

#[test]
fn idle_pairs_expire_in_the_kernel_and_busy_ones_do_not() {
    let bench = Bench::new();
    let mut dp = short_timeouts(&bench);
    let quiet = bench
        .sent_by_private(L4::Udp { src: 5000, dst: 53 })
        .frame(b"q");
    let busy = bench
        .sent_by_private(L4::Udp { src: 5001, dst: 53 })
        .frame(b"b");
    assert_eq!(bench.out(&mut dp, &quiet).0, XDP_REDIRECT);
    assert_eq!(bench.out(&mut dp, &busy).0, XDP_REDIRECT);
    assert_eq!(dp.nat_flows().len(), 2);
    assert_eq!(dp.active_flows(), 2);

    // The busy flow sends every 300 ms for 3 s; the quiet one never again.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(bench.out(&mut dp, &busy).0, XDP_REDIRECT);
    }
    let left: Vec<u16> = dp.nat_flows().iter().map(|f| f.private.port()).collect();
    assert_eq!(left, [5001], "only the busy flow is left");
    assert_eq!(dp.active_flows(), 1);

    // Then it goes quiet too, and goes.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(dp.nat_flows().is_empty(), "{:#?}", dp.nat_flows());
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowExpired), 2);
    assert_eq!(dp.expired_flows(), 2);
    assert_eq!(dp.active_flows(), 0);
}
