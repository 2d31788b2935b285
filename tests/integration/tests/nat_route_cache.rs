//! Both paths cache each flow's next hop (decision 0006, "Route cache"):
//! a change of routing must still be followed by established flows, at
//! once, not when the cache's epoch runs out.
//!
//! ```text
//! private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```
//!
//! A UDP flow private → internet runs through SNAT: once in the plain setup
//! (auto mode, which takes tc on veths) and once with XDP forced on the
//! veths (the special case of `nat_snat.rs`). Mid-flow, `internet` gets a new MAC address and `nat` learns it
//! (`ip neigh replace`, what a gratuitous ARP does). A cache that kept the
//! old MAC would send every datagram to an address nobody has until its
//! epoch (about a second) ran out.

mod common;

use std::{
    collections::BTreeSet,
    net::UdpSocket,
    time::{Duration, Instant},
};

use common::{forced_xdp_two_armed, snat_config, two_armed_topology};
use ethergate_config::SnatTarget;
use ethergate_dataplane::{AttachMode, Dataplane};
use ethergate_netns::Topology;

/// Datagrams are sent this often...
const EVERY: Duration = Duration::from_millis(10);
/// ...and from this long after the change on, every one must arrive: far
/// less than the cache's epoch (2^30 ns), so only the routing watcher can
/// have made the flow look its route up again.
const SETTLE: Duration = Duration::from_millis(250);
const NEW_MAC: &str = "02:00:00:00:99:01";

#[test]
fn a_next_hop_that_changes_its_mac_is_followed_at_once_on_the_xdp_path() {
    let (topo, dataplane) = forced_xdp_two_armed(SnatTarget::Masquerade);
    follows_a_new_mac(&topo, &dataplane);
}

#[test]
fn a_next_hop_that_changes_its_mac_is_followed_at_once_on_the_tc_path() {
    let topo = two_armed_topology();
    let mut dataplane = Dataplane::load().expect("load eBPF (run as root)");
    let nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    topo.enter("nat", || dataplane.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat]");
    let inside = &dataplane.inside_attachments()[0];
    assert_eq!(inside.mode, AttachMode::Tc, "{}", inside.reason);
    follows_a_new_mac(&topo, &dataplane);
}

/// A UDP flow private → internet, established and cached; then
/// `internet` gets a new MAC that `nat` learns: every datagram from a
/// moment later on must arrive.
fn follows_a_new_mac(topo: &Topology, dataplane: &Dataplane) {
    let receiver = topo
        .enter("internet", || {
            UdpSocket::bind("203.0.113.10:5400").expect("bind receiver")
        })
        .expect("enter internet");
    receiver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let sender = topo
        .enter("private", || {
            UdpSocket::bind("10.0.1.26:0").expect("bind sender")
        })
        .expect("enter private");
    sender.connect("203.0.113.10:5400").expect("connect");
    let received = std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = receiver.recv(&mut buf) {
            if let Some(seq) = buf.get(..n).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                seen.insert(u32::from_be_bytes(seq));
            }
        }
        seen
    });

    let send_for = |from: u32, how_long: Duration| -> u32 {
        let started = Instant::now();
        let mut seq = from;
        while started.elapsed() < how_long {
            sender.send(&seq.to_be_bytes()).expect("send");
            seq += 1;
            std::thread::sleep(EVERY);
        }
        seq
    };
    // Established and cached: a second of traffic first.
    let before_change = send_for(0, Duration::from_secs(1));
    let changes_before = dataplane.route_changes();

    topo.exec(
        "internet",
        &["ip", "link", "set", "dev", "eth0", "address", NEW_MAC],
    )
    .expect("new MAC");
    topo.exec(
        "nat",
        &[
            "ip",
            "neigh",
            "replace",
            "203.0.113.10",
            "lladdr",
            NEW_MAC,
            "dev",
            "pub0",
            "nud",
            "reachable",
        ],
    )
    .expect("nat learns the new MAC");
    let settled = send_for(before_change, SETTLE);
    let end = send_for(settled, Duration::from_millis(500));
    let seen = received.join().expect("receiver");

    assert!(
        dataplane.route_changes() > changes_before,
        "the routing watcher never heard of the neighbour change"
    );
    let lost_before: Vec<u32> = (0..before_change).filter(|s| !seen.contains(s)).collect();
    assert!(
        lost_before.len() <= 2,
        "the flow was not working before the change: lost {lost_before:?}"
    );
    let lost_after: Vec<u32> = (settled..end).filter(|s| !seen.contains(s)).collect();
    assert!(
        lost_after.is_empty(),
        "datagrams sent {SETTLE:?}+ after the MAC change were lost (sent {settled}..{end}): \
         {lost_after:?}; the cached next hop was not dropped"
    );
    let flows = dataplane.nat_flows();
    assert_eq!(flows.len(), 1, "one flow throughout: {flows:#?}");
}
