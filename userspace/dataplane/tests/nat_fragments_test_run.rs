//! Fragments and the uplink's egress guard, through BPF_PROG_TEST_RUN with
//! exact bytes: a first fragment is translated like a whole datagram and
//! its later fragments get the same address; a later fragment whose first
//! one was never seen is dropped (never leaked) when it would leave the
//! uplink from a translated subnet; the guard drops whatever would leave
//! the uplink with an untranslated private source, and lets translated,
//! own and DNAT traffic through. Both the XDP and the tc ingress paths.

mod common;

use common::{
    Bench, PRIVATE_HOST, PUBLIC, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS,
    XDP_REDIRECT, public_port,
};
use ethergate_common::{DropReason, NatEvent};
use ethergate_dataplane::{Dataplane, TcProgram};
use ethergate_fixtures::{
    as_ipv4_first_fragment, as_ipv4_later_fragment, fix_ipv4_checksum,
    nat::{Ipv4Flow, L4},
};

const L3: usize = 14;
const PAYLOAD: &[u8] = b"the first part of a datagram too large for one frame";

/// `frame` with IP identification `id`.
fn with_id(frame: &[u8], id: u16) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[L3 + 4..L3 + 6].copy_from_slice(&id.to_be_bytes());
    fix_ipv4_checksum(&mut out);
    out
}

/// What a later fragment looks like once forwarded by the NAT: MACs of
/// the egress hop, TTL − 1, the address at `at` replaced, checksum fixed;
/// everything after the IP header untouched.
fn forwarded(frame: &[u8], macs: ([u8; 6], [u8; 6]), at: usize, addr: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&macs.0);
    out[6..12].copy_from_slice(&macs.1);
    out[L3 + 8] = ttl;
    out[L3 + at..L3 + at + 4].copy_from_slice(&addr);
    fix_ipv4_checksum(&mut out);
    out
}

fn tc(
    bench: &Bench,
    dp: &mut Dataplane,
    program: TcProgram,
    frame: &[u8],
    ifindex: u32,
) -> (u32, Vec<u8>) {
    let outcome = bench
        .topo
        .enter("nat", || dp.test_run_tc(program, frame, ifindex))
        .expect("enter nat")
        .expect("tc test run");
    (outcome.action, outcome.frame)
}

#[test]
fn fragmented_udp_is_translated_both_ways_in_xdp() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let udp = L4::Udp {
        src: 5353,
        dst: 9000,
    };
    let first = with_id(
        &as_ipv4_first_fragment(&bench.sent_by_private(udp).frame(PAYLOAD)),
        0x4242,
    );
    let (action, out) = bench.out(&mut dp, &first);
    assert_eq!(action, XDP_REDIRECT, "first fragment");
    let port = public_port(&out, false);
    let expected = with_id(
        &as_ipv4_first_fragment(
            &bench
                .translated_out(L4::Udp {
                    src: port,
                    dst: 9000,
                })
                .frame(PAYLOAD),
        ),
        0x4242,
    );
    assert_eq!(out, expected, "first fragment after SNAT");

    let later = with_id(
        &as_ipv4_later_fragment(&bench.sent_by_private(udp).frame(PAYLOAD), 185),
        0x4242,
    );
    let (action, out) = bench.out(&mut dp, &later);
    assert_eq!(action, XDP_REDIRECT, "later fragment");
    let remote_mac = common::REMOTE_MAC;
    assert_eq!(
        out,
        forwarded(&later, (remote_mac, bench.pub0.1), 12, PUBLIC, 63),
        "later fragment gets the first one's source"
    );

    // The reply, fragmented too: restored to the private host.
    let reply = L4::Udp {
        src: 9000,
        dst: port,
    };
    let first_back = with_id(
        &as_ipv4_first_fragment(&bench.sent_by_remote(reply).frame(PAYLOAD)),
        0x77,
    );
    let (action, back) = bench.back(&mut dp, &first_back);
    assert_eq!(action, XDP_REDIRECT, "first reply fragment");
    assert_eq!(
        back,
        with_id(
            &as_ipv4_first_fragment(
                &bench
                    .translated_in(L4::Udp {
                        src: 9000,
                        dst: 5353,
                    })
                    .frame(PAYLOAD)
            ),
            0x77
        )
    );
    let later_back = with_id(
        &as_ipv4_later_fragment(&bench.sent_by_remote(reply).frame(PAYLOAD), 185),
        0x77,
    );
    let (action, back) = bench.back(&mut dp, &later_back);
    assert_eq!(action, XDP_REDIRECT, "later reply fragment");
    assert_eq!(
        back,
        forwarded(
            &later_back,
            (common::PRIVATE_MAC, bench.priv0.1),
            16,
            PRIVATE_HOST,
            63
        )
    );

    // A later fragment of a datagram whose first fragment never came:
    // untranslatable, and it must not leave with its private source.
    let orphan = with_id(
        &as_ipv4_later_fragment(&bench.sent_by_private(udp).frame(PAYLOAD), 185),
        0x9999,
    );
    let (action, _) = bench.out(&mut dp, &orphan);
    assert_eq!(action, XDP_DROP, "unmatched later fragment");

    // Private to private: not ours, the kernel's.
    let inside = Ipv4Flow {
        dst: [10, 0, 2, 2],
        ..bench.sent_by_private(udp)
    };
    let inside_later = with_id(&as_ipv4_later_fragment(&inside.frame(PAYLOAD), 185), 0x5);
    bench.assert_xdp_passes_unchanged(&mut dp, "private-to-private fragment", &inside_later);

    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FragmentTranslated), 2);
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 1);
    assert_eq!(c.nat_drop(DropReason::FragmentUnknown), 1);
    assert!(c.nat_event(NatEvent::FragmentPassed) >= 1);
}

#[test]
fn fragmented_echo_is_translated_in_tc() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let echo = L4::EchoRequest { id: 77, seq: 1 };
    let first = with_id(
        &as_ipv4_first_fragment(&bench.sent_by_private(echo).frame(PAYLOAD)),
        0x1234,
    );
    let (action, out) = tc(
        &bench,
        &mut dp,
        TcProgram::NatIngress,
        &first,
        bench.priv0.0,
    );
    assert_eq!(action, TC_ACT_REDIRECT, "first fragment");
    let id = public_port(&out, true);
    assert_eq!(
        out,
        with_id(
            &as_ipv4_first_fragment(
                &bench
                    .translated_out(L4::EchoRequest { id, seq: 1 })
                    .frame(PAYLOAD)
            ),
            0x1234
        ),
        "first fragment after SNAT in tc"
    );
    let later = with_id(
        &as_ipv4_later_fragment(&bench.sent_by_private(echo).frame(PAYLOAD), 185),
        0x1234,
    );
    let (action, out) = tc(
        &bench,
        &mut dp,
        TcProgram::NatIngress,
        &later,
        bench.priv0.0,
    );
    assert_eq!(action, TC_ACT_REDIRECT, "later fragment");
    assert_eq!(
        out,
        forwarded(&later, (common::REMOTE_MAC, bench.pub0.1), 12, PUBLIC, 63)
    );
    let orphan = with_id(&later, 0x4321);
    let (action, _) = tc(
        &bench,
        &mut dp,
        TcProgram::NatIngress,
        &orphan,
        bench.priv0.0,
    );
    assert_eq!(action, TC_ACT_SHOT, "unmatched later fragment");
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FragmentTranslated), 1);
    assert_eq!(c.nat_drop(DropReason::FragmentUnknown), 1);
}

#[test]
fn the_uplink_guard_stops_untranslated_private_sources() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let guard = |dp: &mut Dataplane, frame: &[u8]| {
        tc(&bench, dp, TcProgram::UplinkEgress, frame, bench.pub0.0).0
    };
    let udp = L4::Udp {
        src: 5353,
        dst: 9000,
    };
    let leaving = |src: [u8; 4]| Ipv4Flow {
        src,
        ..bench.translated_out(udp)
    };
    // Translated (the public address), and a source no rule covers.
    assert_eq!(guard(&mut dp, &leaving(PUBLIC).frame(b"ok")), TC_ACT_OK);
    assert_eq!(
        guard(&mut dp, &leaving([198, 51, 100, 7]).frame(b"ok")),
        TC_ACT_OK
    );
    // The appliance's own address inside the subnet (priv0's).
    assert_eq!(
        guard(&mut dp, &leaving([10, 0, 0, 1]).frame(b"own")),
        TC_ACT_OK
    );
    // Untranslated: whole, a later fragment, an unknown protocol.
    let private = leaving(PRIVATE_HOST).frame(b"leak");
    assert_eq!(guard(&mut dp, &private), TC_ACT_SHOT);
    assert_eq!(
        guard(&mut dp, &as_ipv4_later_fragment(&private, 100)),
        TC_ACT_SHOT
    );
    let mut gre = private.clone();
    gre[L3 + 9] = 47;
    fix_ipv4_checksum(&mut gre);
    assert_eq!(guard(&mut dp, &gre), TC_ACT_SHOT);
    // VLAN-tagged.
    let mut tagged = private[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&private[12..]);
    assert_eq!(guard(&mut dp, &tagged), TC_ACT_SHOT);
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_drop(DropReason::UntranslatedEgress), 4);
}

/// A new flow toward a next hop the kernel has not resolved: XDP does not
/// drop it (it used to, as `no_neighbour`) and does not translate or
/// allocate anything; it passes the frame untouched to the tc program
/// behind it, which translates it and sends it with `bpf_redirect_neigh`.
#[test]
fn an_unresolved_next_hop_is_handed_from_xdp_to_tc() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let udp = L4::Udp {
        src: 5353,
        dst: 9000,
    };
    // On pub0's subnet, never resolved.
    let unresolved = Ipv4Flow {
        dst: [203, 0, 113, 77],
        ..bench.sent_by_private(udp)
    }
    .frame(PAYLOAD);
    let (action, out) = bench.out(&mut dp, &unresolved);
    assert_eq!(action, XDP_PASS, "handed over, not dropped");
    assert_eq!(out, unresolved, "untouched");
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::HandedToTc), 1);
    assert_eq!(
        c.nat_event(NatEvent::FlowCreated),
        0,
        "XDP allocated nothing"
    );
    assert_eq!(c.nat_drop(DropReason::NoNeighbour), 0);

    let (action, out) = tc(
        &bench,
        &mut dp,
        TcProgram::NatIngress,
        &unresolved,
        bench.priv0.0,
    );
    assert_eq!(
        action, TC_ACT_REDIRECT,
        "tc sends it with bpf_redirect_neigh"
    );
    assert_eq!(&out[L3 + 12..L3 + 16], &PUBLIC, "translated source");
    assert_eq!(out[L3 + 8], 63, "TTL − 1");
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 1);
}
