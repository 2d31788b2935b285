//! NAT edge cases through BPF_PROG_TEST_RUN: ICMP errors about SNAT flows
//! (embedded header translated, all four checksums), TCP FIN/RST flag
//! tracking and its effect on expiry, and malformed lengths, which must
//! reach the kernel byte for byte. Expected frames come from etherparse.
//! Needs root.

mod common;

use std::time::Duration;

use common::{
    Bench, PRIVATE_HOST, PUBLIC, REMOTE, REMOTE_MAC, TC_ACT_OK, TC_ACT_REDIRECT, XDP_PASS,
    XDP_REDIRECT, public_port,
};
use ethergate_common::NatEvent;
use ethergate_config::NatTimeouts;
use ethergate_dataplane::TcProgram;
use ethergate_fixtures::nat::{IcmpError, Ipv4Flow, L4};

const IP: usize = 14;

/// An ICMP error the remote (acting as a router) sends about `quoted`.
fn error_from_remote(bench: &Bench, kind: IcmpError, quoted: &[u8]) -> Vec<u8> {
    Ipv4Flow {
        src_mac: REMOTE_MAC,
        dst_mac: bench.pub0.1,
        src: REMOTE,
        dst: PUBLIC,
        ttl: 64,
        l4: L4::Error(kind),
    }
    .frame(quoted)
}

/// The same error as it must reach the private host.
fn error_to_private(bench: &Bench, kind: IcmpError, quoted: &[u8]) -> Vec<u8> {
    Ipv4Flow {
        src_mac: bench.priv0.1,
        dst_mac: common::PRIVATE_MAC,
        src: REMOTE,
        dst: PRIVATE_HOST,
        ttl: 63,
        l4: L4::Error(kind),
    }
    .frame(quoted)
}

/// The datagram as it left the appliance (what a router quotes), and as
/// the private host sent it but with the TTL it had on the wire.
fn quoted_pair(
    bench: &Bench,
    sent: L4,
    public: L4,
    payload: &[u8],
    len: usize,
) -> (Vec<u8>, Vec<u8>) {
    let on_wire = bench.translated_out(public).frame(payload);
    let private = Ipv4Flow {
        src_mac: bench.pub0.1,
        dst_mac: REMOTE_MAC,
        src: PRIVATE_HOST,
        dst: REMOTE,
        ttl: 63,
        l4: sent,
    }
    .frame(payload);
    (
        on_wire[IP..IP + len].to_vec(),
        private[IP..IP + len].to_vec(),
    )
}

#[test]
fn icmp_errors_about_snat_flows_are_translated_with_their_embedded_header() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();

    // UDP, port unreachable, quoting IP header + 8 bytes (RFC 792).
    let query = L4::Udp { src: 5353, dst: 53 };
    let (_, out) = bench.out(&mut dp, &bench.sent_by_private(query).frame(b"query"));
    let port = public_port(&out, false);
    let (wire, private) = quoted_pair(&bench, query, L4::Udp { src: port, dst: 53 }, b"query", 28);
    let error = error_from_remote(&bench, IcmpError::PortUnreachable, &wire);
    let (action, back) = bench.back(&mut dp, &error);
    assert_eq!(action, XDP_REDIRECT, "udp port unreachable");
    let expected = error_to_private(&bench, IcmpError::PortUnreachable, &private);
    assert_eq!(back, expected);
    // The tc path (tc mode on veths) writes the same bytes.
    assert_eq!(bench.back_tc(&mut dp, &error), (TC_ACT_REDIRECT, expected));

    // TCP, fragmentation needed, quoting the whole header (its checksum
    // is in the quote and must be updated too).
    let syn = L4::Tcp {
        src: 40100,
        dst: 80,
        flags: 0x02,
    };
    let (_, out) = bench.out(&mut dp, &bench.sent_by_private(syn).frame(b""));
    let port = public_port(&out, false);
    let public = L4::Tcp {
        src: port,
        dst: 80,
        flags: 0x02,
    };
    let kind = IcmpError::FragmentationNeeded { mtu: 1400 };
    let (wire, private) = quoted_pair(&bench, syn, public, b"", 40);
    let error = error_from_remote(&bench, kind, &wire);
    let (action, back) = bench.back(&mut dp, &error);
    assert_eq!(action, XDP_REDIRECT, "tcp frag needed");
    let expected = error_to_private(&bench, kind, &private);
    assert_eq!(back, expected);
    assert_eq!(bench.back_tc(&mut dp, &error), (TC_ACT_REDIRECT, expected));

    // TCP quoted with only 8 bytes: no checksum to update.
    let (wire, private) = quoted_pair(&bench, syn, public, b"", 28);
    let error = error_from_remote(&bench, IcmpError::TtlExceeded, &wire);
    let (action, back) = bench.back(&mut dp, &error);
    assert_eq!(action, XDP_REDIRECT, "tcp ttl exceeded, short quote");
    let expected = error_to_private(&bench, IcmpError::TtlExceeded, &private);
    assert_eq!(back, expected);
    assert_eq!(bench.back_tc(&mut dp, &error), (TC_ACT_REDIRECT, expected));

    // ICMP echo, time exceeded (traceroute -I through the NAT).
    let echo = L4::EchoRequest { id: 77, seq: 3 };
    let (_, out) = bench.out(&mut dp, &bench.sent_by_private(echo).frame(b"ping"));
    let id = public_port(&out, true);
    let (wire, private) = quoted_pair(&bench, echo, L4::EchoRequest { id, seq: 3 }, b"ping", 28);
    let error = error_from_remote(&bench, IcmpError::TtlExceeded, &wire);
    let (action, back) = bench.back(&mut dp, &error);
    assert_eq!(action, XDP_REDIRECT, "echo ttl exceeded");
    let expected = error_to_private(&bench, IcmpError::TtlExceeded, &private);
    assert_eq!(back, expected);
    assert_eq!(bench.back_tc(&mut dp, &error), (TC_ACT_REDIRECT, expected));

    let c = dp.counters().expect("counters");
    assert_eq!(
        c.nat_event(NatEvent::IcmpErrorTranslated),
        8,
        "4 in XDP, 4 in tc"
    );

    // An error about a flow we do not have, or naming another address
    // than the outer destination, is the kernel's, untouched.
    let stranger = L4::Udp { src: 1111, dst: 53 };
    let (wire, _) = quoted_pair(&bench, stranger, stranger, b"x", 28);
    let unknown = error_from_remote(&bench, IcmpError::PortUnreachable, &wire);
    assert_eq!(bench.back(&mut dp, &unknown), (XDP_PASS, unknown.clone()));
    assert_eq!(
        bench.back_tc(&mut dp, &unknown),
        (TC_ACT_OK, unknown.clone())
    );
    let (mut wire, _) = quoted_pair(&bench, query, L4::Udp { src: port, dst: 53 }, b"query", 28);
    wire[12..16].copy_from_slice(&[203, 0, 113, 99]);
    let mismatched = error_from_remote(&bench, IcmpError::PortUnreachable, &wire);
    assert_eq!(
        bench.back(&mut dp, &mismatched),
        (XDP_PASS, mismatched.clone())
    );
    // A quote too short to hold the embedded ports.
    let (wire, _) = quoted_pair(&bench, query, L4::Udp { src: port, dst: 53 }, b"query", 24);
    let short = error_from_remote(&bench, IcmpError::PortUnreachable, &wire);
    assert_eq!(bench.back(&mut dp, &short), (XDP_PASS, short.clone()));
    assert_eq!(
        dp.counters()
            .expect("counters")
            .nat_event(NatEvent::IcmpErrorTranslated),
        8,
        "only the four errors above, each through XDP and tc"
    );
}

#[test]
fn fin_and_rst_are_tracked_and_shorten_the_timeout() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let timeouts = NatTimeouts::default();
    // Past the transitory timeout, well inside the established one.
    let later = Duration::from_secs(u64::from(timeouts.tcp_transitory_secs) + 60);
    let mut ports = Vec::new();
    for src in [42000u16, 42001, 42002] {
        let (action, out) = bench.out(
            &mut dp,
            &bench
                .sent_by_private(L4::Tcp {
                    src,
                    dst: 80,
                    flags: 0x02,
                })
                .frame(b""),
        );
        assert_eq!(action, XDP_REDIRECT);
        let port = public_port(&out, false);
        let synack = bench.sent_by_remote(L4::Tcp {
            src: 80,
            dst: port,
            flags: 0x12,
        });
        assert_eq!(bench.back(&mut dp, &synack.frame(b"")).0, XDP_REDIRECT);
        let ack = bench.sent_by_private(L4::Tcp {
            src,
            dst: 80,
            flags: 0x10,
        });
        assert_eq!(bench.out(&mut dp, &ack.frame(b"")).0, XDP_REDIRECT);
        ports.push(port);
    }
    // 42001 closes with a FIN from inside, 42002 is reset from outside.
    let fin = bench.sent_by_private(L4::Tcp {
        src: 42001,
        dst: 80,
        flags: 0x11,
    });
    assert_eq!(bench.out(&mut dp, &fin.frame(b"")).0, XDP_REDIRECT);
    let rst = bench.sent_by_remote(L4::Tcp {
        src: 80,
        dst: ports[2],
        flags: 0x14,
    });
    assert_eq!(bench.back(&mut dp, &rst.frame(b"")).0, XDP_REDIRECT);

    let mut flows = dp.nat_flows();
    flows.sort_by_key(|f| f.private.port());
    let flags: Vec<(u8, Option<u8>)> = flows
        .iter()
        .map(|f| (f.tcp_flags_out, f.tcp_flags_in))
        .collect();
    assert_eq!(
        flags,
        [(0x12, Some(0x12)), (0x13, Some(0x12)), (0x12, Some(0x16))]
    );
    let swept = dp.sweep_nat_flows(&timeouts, later);
    assert_eq!(swept.expired, 2, "the FIN and the RST flow");
    let left = dp.nat_flows();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].private.port(), 42000, "the established flow stays");
}

#[test]
fn malformed_lengths_reach_the_kernel_untouched() {
    let bench = Bench::new();
    let mut dp = bench.dataplane();
    let udp = bench
        .sent_by_private(L4::Udp { src: 5000, dst: 53 })
        .frame(b"0123456789");
    let set_total_len = |frame: &[u8], len: u16| {
        let mut f = frame.to_vec();
        f[IP + 2..IP + 4].copy_from_slice(&len.to_be_bytes());
        f
    };
    let real_len = u16::from_be_bytes([udp[IP + 2], udp[IP + 3]]);
    let mut bad_ihl = udp.clone();
    bad_ihl[IP] = 0x44;
    let mut bad_version = udp.clone();
    bad_version[IP] = 0x65;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "ip total length past the frame",
            set_total_len(&udp, real_len + 20),
        ),
        ("ip total length below the header", set_total_len(&udp, 10)),
        (
            "ip total length cuts the udp header",
            set_total_len(&udp, 24),
        ),
        ("ihl 4", bad_ihl),
        ("version 6 in an ipv4 frame", bad_version),
        ("frame cut inside the ip header", udp[..IP + 12].to_vec()),
        ("empty ipv4 payload", udp[..IP + 20].to_vec()),
    ];
    for (name, frame) in &cases {
        bench.assert_xdp_passes_unchanged(&mut dp, name, frame);
        // BPF_PROG_TEST_RUN refuses IPv4 skbs shorter than Ethernet + IPv4
        // headers (EINVAL), so those two cuts are XDP-only here.
        if frame.len() >= IP + 20 {
            let (action, out) = bench.tap(&mut dp, TcProgram::TapIngress, frame);
            assert_eq!(action, TC_ACT_OK, "{name} via tap");
            assert_eq!(&out, frame, "{name} via tap changed");
        }
    }
    assert!(dp.nat_flows().is_empty());
    let c = dp.counters().expect("counters");
    assert_eq!(c.nat_event(NatEvent::FlowCreated), 0);
}
