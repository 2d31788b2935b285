//! SNAT (masquerade) in XDP, two-armed, with real traffic. The special
//! case: `[nat] mode = "xdp"` forced on veths, which needs XDP on the far
//! ends (`redirect_peer`) and offloads off there (decision 0003); the plain
//! setup a new user has is `nat_plain_veth.rs`.
//!
//! ```text
//! private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```
//!
//! `internet` has no route back to 10.0.0.0/16, so a reply can only arrive
//! if the source was translated. Servers in `internet` report the peer
//! address they saw; it must be 203.0.113.1. `iptables-save` and
//! `nft list ruleset` in `nat` stay empty: the kernel's NAT is not involved.

mod common;

use std::{net::Ipv4Addr, time::Duration};

use common::{assert_no_kernel_nat, assert_no_nat_drops, curl, http_peer_server};
use ethergate_common::{NatEvent, ProtoClass, Verdict};
use ethergate_config::{NatTimeouts, SnatTarget};
use ethergate_dataplane::Dataplane;
use ethergate_netns::Topology;

const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const PRIVATE_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 26);

/// The topology with NAT forced into XDP (see the module comment).
fn nat_topology(snat_to: SnatTarget) -> (Topology, Dataplane) {
    common::forced_xdp_two_armed(snat_to)
}

#[test]
fn private_reaches_internet_through_xdp_masquerade() {
    let (topo, dataplane) = nat_topology(SnatTarget::Masquerade);
    assert_no_kernel_nat(&topo);
    let before = dataplane.counters().expect("counters");

    // curl (TCP) from private; the server reports who it saw.
    let server = http_peer_server(&topo, "internet", "203.0.113.10:8080");
    let seen = curl(&topo, "private", "http://203.0.113.10:8080/");
    assert_eq!(seen.trim(), PUBLIC.to_string());
    assert_eq!(server.join().expect("server"), PUBLIC.to_string());

    // ping (ICMP echo, identifier mapping) from private.
    topo.exec(
        "private",
        &["ping", "-c", "3", "-i", "0.1", "-W", "2", "203.0.113.10"],
    )
    .expect("ping through SNAT");

    // UDP request/response, Rust sockets.
    let udp_peer = common::udp_round_trip(
        &topo,
        ("private", "10.0.1.26:0"),
        ("internet", "203.0.113.10:5300"),
        b"through ethergate",
    );
    assert_eq!(udp_peer.ip().to_string(), PUBLIC.to_string());

    let seen = dataplane.counters().expect("counters").since(&before);
    let events = seen.nat_events.clone();
    // At least: TCP SYN, ACK, request, FIN (4) + 3 echo requests + 1 UDP.
    assert!(seen.nat_event(NatEvent::TranslatedOut) >= 8, "{events:?}");
    assert!(seen.nat_event(NatEvent::TranslatedIn) >= 8, "{events:?}");
    // curl + 3 pings (one ICMP flow) + one UDP flow.
    assert_eq!(seen.nat_event(NatEvent::FlowCreated), 3, "{events:?}");
    assert_no_nat_drops(&seen);
    // Return traffic was redirected by the uplink program, not passed.
    assert!(seen.total(ProtoClass::Tcp4, Verdict::Redirect).packets >= 3);
    assert_eq!(seen.total(ProtoClass::Udp4, Verdict::Redirect).packets, 1);
    assert_eq!(seen.total(ProtoClass::Tcp4, Verdict::Pass).packets, 0);
    assert_eq!(
        seen.total(ProtoClass::Icmp4, Verdict::Redirect).packets,
        3,
        "echo replies"
    );

    let flows = dataplane.nat_flows();
    assert_eq!(flows.len(), 3, "{flows:#?}");
    for flow in &flows {
        assert_eq!(*flow.private.ip(), PRIVATE_HOST);
        assert_eq!(*flow.public.ip(), PUBLIC);
        assert_eq!(flow.remote.ip().to_string(), "203.0.113.10");
        assert!(flow.public.port() >= ethergate_dataplane::SNAT_PORT_MIN);
    }
    assert_no_kernel_nat(&topo);

    // Idle expiry: nothing is idle yet; an hour from now everything is.
    let timeouts = NatTimeouts::default();
    assert_eq!(
        dataplane.sweep_nat_flows(&timeouts, Duration::ZERO).expired,
        0
    );
    let swept = dataplane.sweep_nat_flows(&timeouts, Duration::from_secs(3 * 3600));
    assert_eq!(swept.expired, 3);
    assert!(dataplane.nat_flows().is_empty());
}

#[test]
fn iperf3_through_xdp_masquerade() {
    let (topo, dataplane) = nat_topology(SnatTarget::Masquerade);
    common::iperf3(
        &topo,
        ("internet", "203.0.113.10"),
        ("private", "203.0.113.10"),
        "203.0.113.1",
        "veth, XDP SNAT both ways",
    );
    let seen = dataplane.counters().expect("counters");
    assert!(seen.nat_event(NatEvent::TranslatedOut) > 1000);
    assert_no_nat_drops(&seen);
    assert_no_kernel_nat(&topo);
}

#[test]
fn explicit_public_address_is_used() {
    // An explicit address the uplink also carries (a secondary address, as
    // with an Elastic IP): the server must see it, not the primary.
    let (topo, _dataplane) =
        nat_topology(SnatTarget::Addresses(vec![Ipv4Addr::new(203, 0, 113, 5)]));
    topo.ip("nat", &["addr", "add", "203.0.113.5/24", "dev", "pub0"])
        .expect("secondary address");
    let server = http_peer_server(&topo, "internet", "203.0.113.10:8081");
    let seen = curl(&topo, "private", "http://203.0.113.10:8081/");
    assert_eq!(seen.trim(), "203.0.113.5");
    assert_eq!(server.join().expect("server"), "203.0.113.5");
}
