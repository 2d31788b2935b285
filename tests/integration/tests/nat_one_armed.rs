//! One-armed SNAT with real traffic, as on a cloud NAT instance: the
//! appliance has a single interface; the VPC router sends the private
//! subnet's default route to it, and translated packets leave through the
//! same interface (`XDP_TX` both ways).
//!
//! ```text
//! private (10.0.1.26) — vpcrouter (10.0.1.1 | 203.0.113.254 | 198.18.0.1) — internet (198.18.0.10)
//!                                        │
//!                                 nat (eth0 203.0.113.1, the only interface)
//! ```
//!
//! No ping warms the neighbour cache first: the gateway's managed
//! neighbour entry (made by `apply_nat`) must be enough, and no new flow
//! may be dropped as `no_neighbour`. `iptables-save` and
//! `nft list ruleset` in `nat` stay empty.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_no_kernel_nat, assert_no_nat_drops, curl, http_peer_server, offloads_off, snat_config,
};
use ethergate_common::NatEvent;
use ethergate_config::SnatTarget;
use ethergate_dataplane::Dataplane;
use ethergate_netns::{Endpoint, Topology};

fn topology() -> Topology {
    let topo = Topology::builder()
        .namespace("private")
        .namespace("vpcrouter")
        .namespace("nat")
        .namespace("internet")
        .sysctl_everywhere("net.ipv6.conf.default.disable_ipv6", "1")
        .sysctl("nat", "net.ipv4.ip_forward", "1")
        .sysctl("vpcrouter", "net.ipv4.ip_forward", "1")
        // The router sends the appliance's own translated packets back out
        // of the interface they came in on: no redirects, please.
        .sysctl("vpcrouter", "net.ipv4.conf.all.send_redirects", "0")
        .veth(
            Endpoint::new("private", "eth0", &["10.0.1.26/24"]),
            Endpoint::new("vpcrouter", "priv", &["10.0.1.1/24"]),
        )
        .veth(
            Endpoint::new("nat", "eth0", &["203.0.113.1/24"]),
            Endpoint::new("vpcrouter", "pub", &["203.0.113.254/24"]),
        )
        .veth(
            Endpoint::new("internet", "eth0", &["198.18.0.10/24"]),
            Endpoint::new("vpcrouter", "inet", &["198.18.0.1/24"]),
        )
        .route("private", "default via 10.0.1.1")
        .route("internet", "default via 198.18.0.1")
        .route("nat", "default via 203.0.113.254")
        .route("nat", "10.0.1.0/24 via 203.0.113.254")
        .build()
        .expect("build topology (run as root)");
    // The private subnet's route table (a VPC router routes by the
    // subnet a packet comes from): everything not local goes to the NAT.
    topo.ip(
        "vpcrouter",
        &[
            "route",
            "add",
            "default",
            "via",
            "203.0.113.1",
            "table",
            "100",
        ],
    )
    .expect("private subnet route table");
    topo.ip(
        "vpcrouter",
        &["rule", "add", "iif", "priv", "lookup", "100"],
    )
    .expect("private subnet rule");
    topo
}

/// Waits until the kernel has resolved `gateway` in `nat` (the managed
/// entry's first probe is asynchronous). Polls; asserts nothing about time.
fn wait_resolved(topo: &Topology, gateway: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let neigh = topo
            .exec("nat", &["ip", "neigh", "show", gateway])
            .expect("ip neigh")
            .stdout;
        if neigh.contains("lladdr") {
            assert!(neigh.contains("managed"), "not a managed entry: {neigh}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{gateway} never resolved: {neigh}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// curl (the server must see the public address) and two pings from the
/// private host to the internet host.
fn curl_and_ping(topo: &Topology) {
    let server = http_peer_server(topo, "internet", "198.18.0.10:8080");
    let seen = curl(topo, "private", "http://198.18.0.10:8080/");
    server.join().expect("server");
    assert_eq!(seen.trim(), "203.0.113.1");
    topo.exec(
        "private",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.10"],
    )
    .expect("ping through one-armed SNAT");
}

#[test]
fn private_reaches_internet_through_one_interface() {
    let topo = topology();
    offloads_off(&topo, &["private", "internet"]);
    let mut dp = Dataplane::load().expect("load eBPF (run as root)");
    let mut nat = snat_config("eth0", &[], SnatTarget::Masquerade);
    // The special case: XDP forced on a veth, XDP_TX needing XDP on the
    // peer. Auto mode (tc) on the same topology: nat_plain_veth.rs.
    nat.mode = ethergate_config::NatMode::Xdp;
    topo.enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat]");
    // XDP_TX on a veth delivers only if the peer runs XDP (decision 0003).
    topo.enter("vpcrouter", || dp.attach_redirect_peer("pub"))
        .expect("enter")
        .expect("redirect_peer");
    assert_eq!(
        dp.gateway_neighbours().expect("managed neighbours"),
        ["203.0.113.254".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    wait_resolved(&topo, "203.0.113.254");

    curl_and_ping(&topo);

    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 2, "tcp + echo");
    assert!(c.nat_event(NatEvent::TranslatedOut) >= 6);
    assert!(c.nat_event(NatEvent::TranslatedIn) >= 6);
    assert_no_nat_drops(&c);
    // Both directions left by XDP_TX: nothing was redirected elsewhere.
    assert!(
        c.total(
            ethergate_common::ProtoClass::Tcp4,
            ethergate_common::Verdict::Tx
        )
        .packets
            >= 6
    );
    assert_no_kernel_nat(&topo);
}

/// The same topology as a new user has it: `[nat] mode` left at auto (tc
/// on the veth), default offloads, nothing attached to the router's end,
/// no warm-up. Translated packets go back out of the one interface with
/// `bpf_redirect`; a sniffer on the internet host sees no private source.
#[test]
fn plain_veth_one_armed_auto_mode() {
    let topo = topology();
    let mut dp = Dataplane::load().expect("load eBPF (run as root)");
    let nat = snat_config("eth0", &[], SnatTarget::Masquerade);
    topo.enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat]");
    let uplink = dp.uplink_attachment().expect("uplink");
    assert_eq!(
        uplink.mode,
        ethergate_dataplane::AttachMode::Tc,
        "{}",
        uplink.reason
    );
    let sniffer = common::Sniffer::start(&topo, "internet", "eth0", "10.0.0.0/8");

    curl_and_ping(&topo);
    let peer = common::udp_round_trip(
        &topo,
        ("private", "10.0.1.26:0"),
        ("internet", "198.18.0.10:5300"),
        b"one arm",
    );
    assert_eq!(peer.ip().to_string(), "203.0.113.1");
    common::iperf3(
        &topo,
        ("internet", "198.18.0.10"),
        ("private", "198.18.0.10"),
        "203.0.113.1",
        "one-armed, auto (tc), private → internet",
    );
    common::iperf3_reverse(
        &topo,
        ("internet", "198.18.0.10"),
        ("private", "198.18.0.10"),
        "203.0.113.1",
        "one-armed, auto (tc), internet → private",
    );

    common::assert_no_private_sources(&sniffer.stop(), 1000);
    let c = dp.counters().expect("counters");
    assert_no_nat_drops(&c);
    assert!(c.nat_event(NatEvent::TranslatedOut) > 100);
    assert_no_kernel_nat(&topo);
}
