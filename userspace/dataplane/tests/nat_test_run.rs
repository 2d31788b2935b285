//! NAT fixtures through BPF_PROG_TEST_RUN: bytes in → exact bytes and XDP
//! action out. The expected frames are built independently with etherparse
//! (which computes every checksum itself), so a byte-equal output proves the
//! incremental checksum updates too.
//!
//! The programs route with `bpf_fib_lookup`, so the runs happen inside a
//! namespace `nat` with real interfaces (priv0 10.0.0.1/16, pub0
//! 203.0.113.1/24) and permanent neighbour entries. Needs root.

mod common;

use std::time::Duration;

use common::{Bench, XDP_DROP, XDP_PASS, XDP_REDIRECT, public_port};
use ethergate_common::{DropReason, NatEvent};
use ethergate_config::NatTimeouts;
use ethergate_dataplane::XdpProgram;
use ethergate_fixtures::{
    arp_request, lldp,
    nat::{Ipv4Flow, L4, UDP4_CHECKSUM},
    tcp6_syn,
};

#[test]
fn tcp_snat_out_and_reverse_in_are_exact() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let syn = bench
        .sent_by_private(L4::Tcp {
            src: 40000,
            dst: 80,
            flags: 0x02,
        })
        .frame(b"");
    let (action, out) = bench.out(&mut dp, &syn);
    assert_eq!(action, XDP_REDIRECT);
    let port = public_port(&out, false);
    assert!(port >= ethergate_dataplane::SNAT_PORT_MIN);
    let expected = bench
        .translated_out(L4::Tcp {
            src: port,
            dst: 80,
            flags: 0x02,
        })
        .frame(b"");
    assert_eq!(out, expected, "SYN after SNAT");

    // The same flow again keeps its port, and carries a payload.
    let data = bench
        .sent_by_private(L4::Tcp {
            src: 40000,
            dst: 80,
            flags: 0x10,
        })
        .frame(b"GET / HTTP/1.0\r\n\r\n");
    let (action, out) = bench.out(&mut dp, &data);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        out,
        bench
            .translated_out(L4::Tcp {
                src: port,
                dst: 80,
                flags: 0x10
            })
            .frame(b"GET / HTTP/1.0\r\n\r\n")
    );

    let synack = bench
        .sent_by_remote(L4::Tcp {
            src: 80,
            dst: port,
            flags: 0x12,
        })
        .frame(b"");
    let (action, back) = bench.back(&mut dp, &synack);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        back,
        bench
            .translated_in(L4::Tcp {
                src: 80,
                dst: 40000,
                flags: 0x12
            })
            .frame(b"")
    );

    // A reply to a port nobody allocated is the kernel's, untouched.
    let stray = bench
        .sent_by_remote(L4::Tcp {
            src: 80,
            dst: port.wrapping_add(1).max(1024),
            flags: 0x12,
        })
        .frame(b"");
    assert_eq!(bench.back(&mut dp, &stray), (XDP_PASS, stray.clone()));

    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 1);
    assert_eq!(c.nat_event(NatEvent::TranslatedOut), 2);
    assert_eq!(c.nat_event(NatEvent::TranslatedIn), 1);
    let flows = dp.nat_flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].public.port(), port);
    assert_eq!(flows[0].tcp_flags_out, 0x12);
    assert_eq!(flows[0].tcp_flags_in, Some(0x12));
}

#[test]
fn udp_snat_both_ways_and_zero_checksum_stays_zero() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let query = bench
        .sent_by_private(L4::Udp { src: 5353, dst: 53 })
        .frame(b"query");
    let (action, out) = bench.out(&mut dp, &query);
    assert_eq!(action, XDP_REDIRECT);
    let port = public_port(&out, false);
    assert_eq!(
        out,
        bench
            .translated_out(L4::Udp { src: port, dst: 53 })
            .frame(b"query")
    );
    let answer = bench
        .sent_by_remote(L4::Udp { src: 53, dst: port })
        .frame(b"answer");
    let (action, back) = bench.back(&mut dp, &answer);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        back,
        bench
            .translated_in(L4::Udp { src: 53, dst: 5353 })
            .frame(b"answer")
    );

    // RFC 768: checksum 0 = "none"; it must not become a "computed" value.
    let mut unchecked = bench
        .sent_by_private(L4::Udp { src: 5353, dst: 53 })
        .frame(b"again");
    unchecked[UDP4_CHECKSUM..UDP4_CHECKSUM + 2].copy_from_slice(&[0, 0]);
    let (action, out) = bench.out(&mut dp, &unchecked);
    assert_eq!(action, XDP_REDIRECT);
    let mut expected = bench
        .translated_out(L4::Udp { src: port, dst: 53 })
        .frame(b"again");
    expected[UDP4_CHECKSUM..UDP4_CHECKSUM + 2].copy_from_slice(&[0, 0]);
    assert_eq!(out, expected);
}

#[test]
fn icmp_echo_identifier_is_mapped_both_ways() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let request = bench
        .sent_by_private(L4::EchoRequest { id: 77, seq: 1 })
        .frame(b"ping-payload");
    let (action, out) = bench.out(&mut dp, &request);
    assert_eq!(action, XDP_REDIRECT);
    let id = public_port(&out, true);
    assert_eq!(
        out,
        bench
            .translated_out(L4::EchoRequest { id, seq: 1 })
            .frame(b"ping-payload")
    );
    let reply = bench
        .sent_by_remote(L4::EchoReply { id, seq: 1 })
        .frame(b"ping-payload");
    let (action, back) = bench.back(&mut dp, &reply);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        back,
        bench
            .translated_in(L4::EchoReply { id: 77, seq: 1 })
            .frame(b"ping-payload")
    );
    // An echo *request* from outside to the public address is the
    // appliance's own business (it answers pings): untouched.
    let inbound_ping = bench
        .sent_by_remote(L4::EchoRequest { id, seq: 9 })
        .frame(b"");
    assert_eq!(
        bench.back(&mut dp, &inbound_ping),
        (XDP_PASS, inbound_ping.clone())
    );
    // A reply from a private host never starts a flow.
    let private_reply = bench
        .sent_by_private(L4::EchoReply { id: 5, seq: 1 })
        .frame(b"");
    assert_eq!(
        bench.out(&mut dp, &private_reply),
        (XDP_PASS, private_reply.clone())
    );
}

#[test]
fn everything_else_passes_untouched() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let tcp = bench.sent_by_private(L4::Tcp {
        src: 40001,
        dst: 443,
        flags: 0x02,
    });
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("arp", arp_request()),
        ("lldp", lldp()),
        ("ipv6", tcp6_syn(40000, 80)),
        ("ttl 1", Ipv4Flow { ttl: 1, ..tcp }.frame(b"")),
        (
            "tcp without a flow that is not a SYN (reply of an inbound connection)",
            Ipv4Flow {
                l4: L4::Tcp {
                    src: 40001,
                    dst: 443,
                    flags: 0x12,
                },
                ..tcp
            }
            .frame(b""),
        ),
        (
            "source not in a rule",
            Ipv4Flow {
                src: [192, 168, 5, 5],
                ..tcp
            }
            .frame(b""),
        ),
        (
            "private to private",
            Ipv4Flow {
                dst: [10, 0, 2, 2],
                ..tcp
            }
            .frame(b""),
        ),
        (
            "to the appliance",
            Ipv4Flow {
                dst: [10, 0, 0, 1],
                ..tcp
            }
            .frame(b""),
        ),
    ];
    // Truncated TCP header: the IP header claims 40 bytes, 30 are there.
    let mut truncated = tcp.frame(b"");
    truncated.truncate(14 + 30);
    cases.push(("truncated tcp", truncated));
    for (name, frame) in &cases {
        bench.assert_xdp_passes_unchanged(&mut dp, name, frame);
    }
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 0);
    assert_eq!(c.nat_event(NatEvent::TtlPassed), 2);
    assert!(dp.nat_flows().is_empty());
}

#[test]
fn port_exhaustion_drops_new_flows_and_keeps_old_ones() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    dp.set_snat_port_range(2000, 2003)
        .expect("narrow port range");
    let mut ports = Vec::new();
    // Four ports for one (public address, remote, remote port, protocol):
    // random probing finds each free one within 32 tries with
    // overwhelming probability (the last: 1 - (3/4)^32 ≈ 0.9999).
    for src in 0..4u16 {
        let syn = bench
            .sent_by_private(L4::Tcp {
                src: 41000 + src,
                dst: 80,
                flags: 0x02,
            })
            .frame(b"");
        let (action, out) = bench.out(&mut dp, &syn);
        assert_eq!(action, XDP_REDIRECT, "flow {src}");
        ports.push(public_port(&out, false));
    }
    ports.sort_unstable();
    assert_eq!(ports, [2000, 2001, 2002, 2003]);
    let fifth = bench
        .sent_by_private(L4::Tcp {
            src: 41004,
            dst: 80,
            flags: 0x02,
        })
        .frame(b"");
    assert_eq!(bench.out(&mut dp, &fifth).0, XDP_DROP);
    // A different remote port is a different tuple: ports are free there.
    let other = bench
        .sent_by_private(L4::Tcp {
            src: 41004,
            dst: 8080,
            flags: 0x02,
        })
        .frame(b"");
    assert_eq!(bench.out(&mut dp, &other).0, XDP_REDIRECT);
    // Existing flows are unharmed.
    let old = bench
        .sent_by_private(L4::Tcp {
            src: 41000,
            dst: 80,
            flags: 0x10,
        })
        .frame(b"x");
    assert_eq!(bench.out(&mut dp, &old).0, XDP_REDIRECT);
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_drop(DropReason::PortsExhausted), 1);
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 5);
    assert!(c.nat_event(NatEvent::PortCollision) >= 32);
}

#[test]
fn idle_flows_expire_in_pairs() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let udp = bench
        .sent_by_private(L4::Udp { src: 6000, dst: 53 })
        .frame(b"q");
    assert_eq!(bench.out(&mut dp, &udp).0, XDP_REDIRECT);
    let timeouts = NatTimeouts::default();
    let udp_timeout = Duration::from_secs(u64::from(timeouts.udp_secs));
    assert_eq!(dp.sweep_nat_flows(&timeouts, udp_timeout / 2).expired, 0);
    assert_eq!(dp.sweep_nat_flows(&timeouts, udp_timeout * 2).expired, 1);
    assert!(dp.nat_flows().is_empty());
    // Both halves went: the old reply port no longer translates.
    let port = {
        let (_, out) = bench.out(&mut dp, &udp);
        public_port(&out, false)
    };
    assert_eq!(dp.nat_flows().len(), 1, "a fresh flow ({port})");
}

/// Not a pass/fail test: kernel-measured cost of the established-flow fast
/// path (printed with --nocapture).
#[test]
fn fast_path_cost() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let frame = bench
        .sent_by_private(L4::Tcp {
            src: 42000,
            dst: 80,
            flags: 0x10,
        })
        .frame(&[0u8; 1400]);
    bench.out(&mut dp, &frame);
    let runs = 2000u32;
    let total: Duration = (0..runs)
        .map(|_| {
            bench
                .topo
                .enter("nat", || {
                    dp.test_run(XdpProgram::Inside, &frame, Some(bench.priv0.0))
                })
                .expect("enter")
                .expect("run")
                .duration
        })
        .sum();
    eprintln!(
        "inside, established TCP flow, 1454-byte frame: {} ns/packet (BPF_PROG_TEST_RUN, {runs} runs)",
        (total / runs).as_nanos()
    );
}

/// Thousands of flows: every one is seen by the sweeper's walk, counted
/// live while fresh, and expired with its reverse half once idle.
#[test]
fn the_sweeper_sees_every_one_of_thousands_of_flows() {
    const FLOWS: u16 = 6000;
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    for i in 0..FLOWS {
        let udp = bench
            .sent_by_private(L4::Udp {
                src: 10_000 + i,
                dst: 53,
            })
            .frame(b"q");
        assert_eq!(bench.out(&mut dp, &udp).0, XDP_REDIRECT, "flow {i}");
    }
    let timeouts = NatTimeouts::default();
    let udp_timeout = Duration::from_secs(u64::from(timeouts.udp_secs));
    let fresh = dp.sweep_nat_flows(&timeouts, udp_timeout / 2);
    assert_eq!((fresh.expired, fresh.active), (0, usize::from(FLOWS)));
    assert_eq!(dp.nat_flows().len(), usize::from(FLOWS));
    let idle = dp.sweep_nat_flows(&timeouts, udp_timeout * 2);
    assert_eq!(
        (idle.expired, idle.orphans, idle.active),
        (usize::from(FLOWS), 0, 0)
    );
    assert!(dp.nat_flows().is_empty());
}
