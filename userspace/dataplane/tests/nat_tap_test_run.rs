//! The hub-tap tc programs through BPF_PROG_TEST_RUN: DNAT (the recipe's
//! `192.168.0.0/16 tcp 80 → 10.0.1.26:80`), its reverse on tap egress, SNAT
//! of VPN-client traffic toward the uplink and its return through the
//! uplink's XDP, an unresolved next hop, and an atomic rule swap that keeps
//! established flows. Expected frames are built independently with
//! etherparse, so byte equality proves every checksum. Needs root.

mod common;

use std::{net::SocketAddrV4, str::FromStr};

use common::{
    Bench, PRIVATE_HOST, PRIVATE_MAC, PUBLIC, REMOTE, REMOTE_MAC, TC_ACT_OK, TC_ACT_REDIRECT,
    XDP_PASS, XDP_REDIRECT, public_port,
};
use ethergate_common::{DropReason, NatEvent};
use ethergate_config::{L4Protocol, Nat};
use ethergate_dataplane::{Dataplane, TcProgram};
use ethergate_fixtures::{
    arp_request,
    nat::{IcmpError, Ipv4Flow, L4},
    nat_config::{cidr, hub_dnat},
    tcp6_syn,
};

const CLIENT: [u8; 4] = [192, 168, 30, 10];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x30, 0x10];
const TAP_ADDRESS: [u8; 4] = [192, 168, 30, 1];

/// The recipe's rules: SNAT for the private subnet and the hub subnet,
/// DNAT of the hub's HTTP to the private web server.
fn recipe_nat() -> Nat {
    let mut nat = common::config();
    ethergate_fixtures::nat_config::add_hub_rules(&mut nat);
    nat
}

fn dataplane(bench: &Bench, nat: &Nat) -> Dataplane {
    bench
        .topo
        .enter("nat", || {
            let mut dp = Dataplane::load().expect("load eBPF");
            dp.configure_nat(nat).expect("configure nat");
            dp
        })
        .expect("enter nat")
}

/// What a VPN client sends into the hub (and so into the tap).
fn from_client(bench: &Bench, dst: [u8; 4], l4: L4) -> Ipv4Flow {
    Ipv4Flow {
        src_mac: CLIENT_MAC,
        dst_mac: bench.tap0.1,
        src: CLIENT,
        dst,
        ttl: 64,
        l4,
    }
}

/// What the tap sends to the VPN client after a hop through the appliance.
fn to_client(bench: &Bench, src: [u8; 4], l4: L4) -> Ipv4Flow {
    Ipv4Flow {
        src_mac: bench.tap0.1,
        dst_mac: CLIENT_MAC,
        src,
        dst: CLIENT,
        ttl: 63,
        l4,
    }
}

/// A client's packet after DNAT to the private web server.
fn dnated(bench: &Bench, l4: L4) -> Ipv4Flow {
    Ipv4Flow {
        src_mac: bench.priv0.1,
        dst_mac: PRIVATE_MAC,
        src: CLIENT,
        dst: PRIVATE_HOST,
        ttl: 63,
        l4,
    }
}

fn tcp(src: u16, dst: u16, flags: u8) -> L4 {
    L4::Tcp { src, dst, flags }
}

#[test]
fn dnat_rewrites_destination_and_tap_egress_restores_the_reply() {
    let bench = Bench::new();
    let mut dp = dataplane(&bench, &recipe_nat());
    // Any destination matches (the rule has no `destination`): the tap's
    // own address and an arbitrary one, each its own flow.
    for (dst, sport) in [(TAP_ADDRESS, 40000), ([198, 51, 100, 77], 40001)] {
        let syn = from_client(&bench, dst, tcp(sport, 80, 0x02)).frame(b"");
        let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &syn);
        assert_eq!(action, TC_ACT_REDIRECT, "SYN to {dst:?}");
        let expected = dnated(&bench, tcp(sport, 80, 0x02)).frame(b"");
        assert_eq!(out, expected, "SYN to {dst:?} after DNAT");

        // The server's answer, as the kernel sends it out of the tap.
        let synack = to_client(&bench, PRIVATE_HOST, tcp(80, sport, 0x12)).frame(b"");
        let (action, back) = bench.tap(&mut dp, TcProgram::TapEgress, &synack);
        assert_eq!(action, TC_ACT_OK);
        let restored = to_client(&bench, dst, tcp(80, sport, 0x12)).frame(b"");
        assert_eq!(back, restored, "reply source restored to {dst:?}");
    }
    // The established flow keeps its translation, with a payload.
    let data =
        from_client(&bench, TAP_ADDRESS, tcp(40000, 80, 0x10)).frame(b"GET / HTTP/1.0\r\n\r\n");
    let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &data);
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(
        out,
        dnated(&bench, tcp(40000, 80, 0x10)).frame(b"GET / HTTP/1.0\r\n\r\n")
    );

    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::DnatCreated), 2);
    assert_eq!(c.nat_event(NatEvent::DnatTranslated), 3);
    assert_eq!(c.nat_event(NatEvent::DnatRestored), 2);
    let mut flows = dp.dnat_flows();
    flows.sort_by_key(|f| f.client.port());
    assert_eq!(flows.len(), 2, "{flows:#?}");
    assert_eq!(flows[0].original.to_string(), "192.168.30.1:80");
    assert_eq!(flows[0].translated.to_string(), "10.0.1.26:80");
    assert_eq!(flows[0].client.to_string(), "192.168.30.10:40000");
    assert_eq!(flows[0].tcp_flags_out, 0x12);
    assert_eq!(flows[0].tcp_flags_in, Some(0x12));
    assert_eq!(flows[1].original.to_string(), "198.51.100.77:80");
}

#[test]
fn tap_passes_what_is_not_a_translated_flow() {
    let bench = Bench::new();
    let mut dp = dataplane(&bench, &recipe_nat());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("arp", arp_request()),
        ("ipv6", tcp6_syn(40000, 80)),
        (
            "tcp to another port, to the private subnet (routed, not NATed)",
            from_client(&bench, PRIVATE_HOST, tcp(40002, 8080, 0x02)).frame(b""),
        ),
        (
            "port 80 but not a SYN (no flow)",
            from_client(&bench, TAP_ADDRESS, tcp(40003, 80, 0x10)).frame(b""),
        ),
        (
            "udp 80 (the rule is tcp) to the appliance",
            from_client(&bench, TAP_ADDRESS, L4::Udp { src: 5000, dst: 80 }).frame(b"x"),
        ),
        (
            "ttl 1",
            Ipv4Flow {
                ttl: 1,
                ..from_client(&bench, TAP_ADDRESS, tcp(40004, 80, 0x02))
            }
            .frame(b""),
        ),
        (
            "source outside the rule",
            Ipv4Flow {
                src: [172, 16, 0, 5],
                ..from_client(&bench, TAP_ADDRESS, tcp(40005, 80, 0x02))
            }
            .frame(b""),
        ),
    ];
    for (name, frame) in &cases {
        for program in [TcProgram::TapIngress, TcProgram::TapEgress] {
            let (action, out) = bench.tap(&mut dp, program, frame);
            assert_eq!(action, TC_ACT_OK, "{name} via {program:?}");
            assert_eq!(&out, frame, "{name} via {program:?} changed");
        }
    }
    assert!(dp.dnat_flows().is_empty());
    assert!(dp.nat_flows().is_empty());
}

#[test]
fn vpn_client_snat_out_of_the_uplink_and_back_into_the_tap() {
    let bench = Bench::new();
    let mut dp = dataplane(&bench, &recipe_nat());
    let syn = from_client(&bench, REMOTE, tcp(40010, 443, 0x02)).frame(b"");
    let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &syn);
    assert_eq!(action, TC_ACT_REDIRECT);
    let port = public_port(&out, false);
    assert_eq!(
        out,
        Ipv4Flow {
            src_mac: bench.pub0.1,
            dst_mac: REMOTE_MAC,
            src: PUBLIC,
            dst: REMOTE,
            ttl: 63,
            l4: tcp(port, 443, 0x02),
        }
        .frame(b"")
    );
    let synack = bench.sent_by_remote(tcp(443, port, 0x12)).frame(b"");
    // The appliance never talked to the client itself, so its MAC is not
    // known: the uplink translates and hands the frame to the kernel,
    // which resolves the client and forwards it (TTL and MACs its job).
    let (action, back) = bench.back(&mut dp, &synack);
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        back,
        Ipv4Flow {
            dst: CLIENT,
            ..bench.sent_by_remote(tcp(443, 40010, 0x12))
        }
        .frame(b"")
    );
    // Once the neighbour is known the uplink redirects into the tap.
    bench.neighbour("192.168.30.10", "02:00:00:00:30:10", "tap0");
    let (action, back) = bench.back(&mut dp, &synack);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        back,
        to_client(&bench, REMOTE, tcp(443, 40010, 0x12)).frame(b"")
    );
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 1);
    assert_eq!(c.nat_event(NatEvent::TranslatedInPassed), 1);
    assert_eq!(c.nat_event(NatEvent::TranslatedIn), 1);
    for reason in DropReason::ALL {
        assert_eq!(c.nat_drop(reason), 0, "{reason:?}");
    }
}

#[test]
fn dnat_to_an_unresolved_next_hop_uses_redirect_neigh() {
    let bench = Bench::new();
    let mut nat = recipe_nat();
    // 10.0.1.27 has no neighbour entry: bpf_redirect_neigh lets the
    // kernel resolve it, so the frame is translated (MACs left for the
    // neighbour code to write) and redirected, never dropped.
    nat.dnat[0].to = SocketAddrV4::from_str("10.0.1.27:8080").expect("addr");
    let mut dp = dataplane(&bench, &nat);
    let syn = from_client(&bench, TAP_ADDRESS, tcp(40020, 80, 0x02));
    let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &syn.frame(b""));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(
        out,
        Ipv4Flow {
            dst: [10, 0, 1, 27],
            ttl: 63,
            l4: tcp(40020, 8080, 0x02),
            ..syn
        }
        .frame(b"")
    );
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_drop(DropReason::NoNeighbour), 0);
}

#[test]
fn rule_swap_is_atomic_and_keeps_established_flows() {
    let bench = Bench::new();
    let nat = recipe_nat();
    let mut dp = dataplane(&bench, &nat);
    let old_syn = from_client(&bench, TAP_ADDRESS, tcp(40030, 80, 0x02)).frame(b"");
    assert_eq!(
        bench.tap(&mut dp, TcProgram::TapIngress, &old_syn).0,
        TC_ACT_REDIRECT
    );
    let snat_syn = bench.sent_by_private(tcp(41030, 80, 0x02)).frame(b"");
    let (action, out) = bench.out(&mut dp, &snat_syn);
    assert_eq!(action, XDP_REDIRECT);
    let snat_port = public_port(&out, false);

    // Reload: DNAT now goes to 10.0.1.27:8080, and the private subnet's
    // SNAT rule is gone.
    let mut changed = nat.clone();
    changed.dnat[0].to = SocketAddrV4::from_str("10.0.1.27:8080").expect("addr");
    changed.snat.retain(|r| r.source != cidr("10.0.0.0/16"));
    let before = bench
        .topo
        .enter("nat", || dp.replace_nat_rules(&nat))
        .expect("enter")
        .expect("same rules again");
    let after = bench
        .topo
        .enter("nat", || dp.replace_nat_rules(&changed))
        .expect("enter")
        .expect("swap rules");
    assert_ne!(before, after, "each swap makes the other set live");

    // The established DNAT flow still goes to 10.0.1.26:80 ...
    let old_ack = from_client(&bench, TAP_ADDRESS, tcp(40030, 80, 0x10)).frame(b"x");
    let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &old_ack);
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[30..34], &PRIVATE_HOST, "old flow keeps its target");
    // ... a new one follows the new rule.
    let new_syn = from_client(&bench, TAP_ADDRESS, tcp(40031, 80, 0x02)).frame(b"");
    let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &new_syn);
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[30..34], &[10, 0, 1, 27]);
    assert_eq!(&out[36..38], &8080u16.to_be_bytes());

    // The established SNAT flow keeps its port; a new flow from the
    // subnet whose rule was removed is no longer translated.
    let old_data = bench.sent_by_private(tcp(41030, 80, 0x10)).frame(b"y");
    let (action, out) = bench.out(&mut dp, &old_data);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(public_port(&out, false), snat_port);
    let new_snat = bench.sent_by_private(tcp(41031, 80, 0x02)).frame(b"");
    assert_eq!(bench.out(&mut dp, &new_snat), (XDP_PASS, new_snat.clone()));
}

#[test]
fn icmp_errors_about_dnat_flows_are_restored_on_the_way_to_the_client() {
    let bench = Bench::new();
    let mut nat = recipe_nat();
    nat.dnat
        .push(hub_dnat(L4Protocol::Udp, 53, "10.0.1.26:5353"));
    let mut dp = dataplane(&bench, &nat);
    let query = from_client(&bench, TAP_ADDRESS, L4::Udp { src: 5000, dst: 53 });
    let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, &query.frame(b"query"));
    assert_eq!(action, TC_ACT_REDIRECT);
    // What the server quotes: the datagram as it arrived (after DNAT);
    // what the client must see: its own datagram (the TTL stays as
    // quoted: 63).
    let quoted_wire = out[14..14 + 28].to_vec();
    let client_sent = Ipv4Flow { ttl: 63, ..query }.frame(b"query");
    let quoted_client = client_sent[14..14 + 28].to_vec();
    let error_to_client = |src: [u8; 4], quoted: &[u8]| {
        Ipv4Flow {
            src_mac: bench.tap0.1,
            dst_mac: CLIENT_MAC,
            src,
            dst: CLIENT,
            ttl: 63,
            l4: L4::Error(IcmpError::PortUnreachable),
        }
        .frame(quoted)
    };
    // From the server itself: the outer source is restored too.
    let (action, back) = bench.tap(
        &mut dp,
        TcProgram::TapEgress,
        &error_to_client(PRIVATE_HOST, &quoted_wire),
    );
    assert_eq!(action, TC_ACT_OK);
    assert_eq!(
        back,
        error_to_client(TAP_ADDRESS, &quoted_client),
        "from the server"
    );
    // From a router on the way: its address stays.
    let router = [10, 0, 0, 254];
    let (action, back) = bench.tap(
        &mut dp,
        TcProgram::TapEgress,
        &error_to_client(router, &quoted_wire),
    );
    assert_eq!(action, TC_ACT_OK);
    assert_eq!(
        back,
        error_to_client(router, &quoted_client),
        "from a router"
    );

    // TCP with the whole header quoted (its checksum updated as well).
    let syn = from_client(&bench, TAP_ADDRESS, tcp(40040, 80, 0x02));
    let (_, out) = bench.tap(&mut dp, TcProgram::TapIngress, &syn.frame(b""));
    let error = error_to_client(PRIVATE_HOST, &out[14..14 + 40]);
    let (action, back) = bench.tap(&mut dp, TcProgram::TapEgress, &error);
    assert_eq!(action, TC_ACT_OK);
    let client_sent = Ipv4Flow { ttl: 63, ..syn }.frame(b"");
    assert_eq!(
        back,
        error_to_client(TAP_ADDRESS, &client_sent[14..14 + 40]),
        "tcp"
    );

    // An error about something else passes untouched.
    let stranger = Ipv4Flow {
        ttl: 63,
        ..from_client(&bench, PRIVATE_HOST, L4::Udp { src: 6000, dst: 53 })
    }
    .frame(b"x");
    let unrelated = error_to_client(PRIVATE_HOST, &stranger[14..14 + 28]);
    assert_eq!(
        bench.tap(&mut dp, TcProgram::TapEgress, &unrelated),
        (TC_ACT_OK, unrelated.clone())
    );
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::IcmpErrorTranslated), 3);
}
