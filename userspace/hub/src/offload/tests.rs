//! Offload checked against etherparse (an independent header and checksum
//! implementation) and against itself: coalescing then segmenting must give
//! back exactly the frames that went in.

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;

use super::*;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const MSS: usize = 1448;

#[derive(Debug, Clone, Copy)]
struct Flow {
    v6: bool,
    port: u16,
}

fn tcp_frame(flow: Flow, id: u16, seq: u32, push: bool, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let ip = if flow.v6 {
        eth.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, [192, 168, 30, 10], [10, 0, 1, 26])
            .expect("header");
        h.identification = id;
        h.dont_fragment = false;
        eth.ip(IpHeaders::Ipv4(h, Default::default()))
    };
    let mut tcp = ip.tcp(flow.port, 5201, seq, 502).ack(77);
    if push {
        tcp = tcp.psh();
    }
    let mut out = Vec::new();
    tcp.write(&mut out, payload).expect("write");
    out
}

/// The frames of a bulk transfer on `flow`: `lens` payload lengths, the
/// sequence and IP ID following on.
fn stream(flow: Flow, lens: &[usize], push_last: bool) -> Vec<Vec<u8>> {
    let mut seq = 1000u32;
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let payload: Vec<u8> = (0..len).map(|b| (b as u8) ^ (i as u8)).collect();
            let f = tcp_frame(
                flow,
                300 + i as u16,
                seq,
                push_last && i + 1 == lens.len(),
                &payload,
            );
            seq = seq.wrapping_add(len as u32);
            f
        })
        .collect()
}

fn coalesce_all(frames: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut c = Coalescer::new();
    let mut out = Vec::new();
    let mut emit = |h: &VnetHdr, f: &[u8]| out.push((*h, f.to_vec()));
    for f in frames {
        c.push(f, &mut emit);
    }
    c.flush(&mut emit);
    out
}

fn segment_all(units: &[(VnetHdr, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (hdr, bytes) in units {
        let mut bytes = bytes.clone();
        segment(*hdr, &mut bytes, &mut out).expect("segment");
    }
    out
}

/// etherparse's verdict on a frame's TCP checksum.
fn tcp_checksum_ok(frame: &[u8]) -> bool {
    let p = SlicedPacket::from_ethernet(frame).expect("parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP");
    };
    let expected = match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .expect("sum"),
        Some(etherparse::NetSlice::Ipv6(ip)) => tcp
            .to_header()
            .calc_checksum_ipv6(&ip.header().to_header(), tcp.payload())
            .expect("sum"),
        _ => panic!("not IP"),
    };
    expected == tcp.checksum()
}

#[test]
fn a_bulk_run_becomes_one_gso_frame_and_splits_back_exactly() {
    for v6 in [false, true] {
        let flow = Flow { v6, port: 40000 };
        let frames = stream(flow, &[MSS, MSS, MSS, MSS, 700], true);
        let units = coalesce_all(&frames);
        assert_eq!(units.len(), 1, "v6={v6}");
        let (hdr, merged) = &units[0];
        assert_eq!(hdr.flags, F_NEEDS_CSUM);
        assert_eq!(hdr.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
        assert_eq!(usize::from(hdr.gso_size), MSS);
        assert_eq!(merged.len(), frames[0].len() + 3 * MSS + 700);
        // The merged frame's headers are consistent for etherparse.
        let p = SlicedPacket::from_ethernet(merged).expect("merged frame parses");
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("merged frame is not TCP");
        };
        assert!(tcp.psh(), "PSH of the last segment is kept");
        assert_eq!(tcp.payload().len(), 4 * MSS + 700);
        // Completing the partial checksum as the kernel would gives a valid
        // checksum over the whole super-frame.
        let mut completed = merged.clone();
        segment(
            VnetHdr {
                gso_type: GSO_NONE,
                ..*hdr
            },
            &mut completed,
            &mut Vec::<Vec<u8>>::new(),
        )
        .expect("complete");
        assert!(tcp_checksum_ok(&completed), "v6={v6}");
        assert_eq!(segment_all(&units), frames, "v6={v6}");
    }
}

#[test]
fn segments_of_a_tso_frame_carry_valid_checksums_and_flags() {
    let flow = Flow {
        v6: false,
        port: 40001,
    };
    let frames = stream(flow, &[MSS; 10], true);
    let units = coalesce_all(&frames);
    let out = segment_all(&units);
    assert_eq!(out.len(), 10);
    for (i, f) in out.iter().enumerate() {
        assert!(tcp_checksum_ok(f), "segment {i}");
        let p = SlicedPacket::from_ethernet(f).expect("parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("v4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "segment {i}");
        assert_eq!(h.identification, 300 + i as u16);
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("tcp")
        };
        assert_eq!(tcp.psh(), i == 9, "PSH only on the last segment");
    }
}

#[test]
fn frames_that_must_not_merge_pass_through_unchanged() {
    let a = Flow { v6: false, port: 1 };
    let b = Flow { v6: false, port: 2 };
    let mut frames = stream(a, &[MSS, MSS], false);
    // Another flow in between, a short segment followed by a full one, a
    // sequence gap.
    frames.insert(1, stream(b, &[MSS], false).remove(0));
    let short_then_full = stream(a, &[500, MSS], false);
    frames.extend(short_then_full);
    let mut gap = stream(b, &[MSS, MSS], false);
    gap.remove(0);
    frames.extend(gap);
    let units = coalesce_all(&frames);
    assert!(units.iter().all(|(h, _)| *h == VnetHdr::NONE));
    let passed: Vec<Vec<u8>> = units.into_iter().map(|(_, f)| f).collect();
    assert_eq!(passed, frames);
}

#[test]
fn a_segment_with_a_bad_checksum_is_never_merged() {
    let flow = Flow { v6: false, port: 3 };
    let mut frames = stream(flow, &[MSS, MSS, MSS], false);
    let last = frames[1].len() - 1;
    frames[1][last] ^= 0xff;
    let units = coalesce_all(&frames);
    assert!(units.iter().all(|(h, _)| *h == VnetHdr::NONE), "{units:?}");
    let passed: Vec<Vec<u8>> = units.into_iter().map(|(_, f)| f).collect();
    assert_eq!(passed, frames);
}

#[test]
fn a_partial_udp_checksum_is_completed() {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5353, 53)
        .write(&mut frame, b"a datagram of some length")
        .expect("write");
    let good = frame.clone();
    let udp_at = ETH_LEN_FOR_TESTS + 20;
    let len = frame.len() - udp_at;
    let pseudo = checksum::fold(checksum::pseudo_v4(
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        17,
        len,
    ));
    frame[udp_at + 6..udp_at + 8].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: udp_at as u16,
        csum_offset: 6,
        ..VnetHdr::NONE
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    segment(hdr, &mut frame, &mut out).expect("segment");
    assert_eq!(out, vec![good]);
}

#[test]
fn bad_headers_are_errors_not_panics() {
    let mut tiny = vec![0u8; 20];
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 18,
        csum_offset: 6,
        ..VnetHdr::NONE
    };
    assert!(segment(hdr, &mut tiny, &mut Vec::<Vec<u8>>::new()).is_err());
    let gso = VnetHdr {
        gso_type: GSO_TCPV4,
        gso_size: 0,
        ..VnetHdr::NONE
    };
    let mut frame = stream(Flow { v6: false, port: 4 }, &[MSS], false).remove(0);
    assert_eq!(
        segment(gso, &mut frame, &mut Vec::<Vec<u8>>::new()),
        Err(SegmentError::Malformed)
    );
    let udp = VnetHdr {
        gso_type: GSO_UDP_L4,
        gso_size: 100,
        ..VnetHdr::NONE
    };
    assert_eq!(
        segment(udp, &mut frame, &mut Vec::<Vec<u8>>::new()),
        Err(SegmentError::Unsupported(GSO_UDP_L4))
    );
}

const ETH_LEN_FOR_TESTS: usize = 14;

#[test]
fn header_bytes_round_trip() {
    let h = VnetHdr {
        flags: 1,
        gso_type: GSO_TCPV6 | GSO_ECN,
        hdr_len: 74,
        gso_size: 1428,
        csum_start: 54,
        csum_offset: 16,
    };
    let bytes = h.to_bytes();
    let mut read = bytes.to_vec();
    read.extend_from_slice(b"frame");
    assert_eq!(VnetHdr::parse(&read), Some((h, &b"frame"[..])));
    assert_eq!(VnetHdr::parse(&bytes[..9]), None);
}

proptest! {
    /// The eight-bytes-at-a-time sum folds to what the definition does,
    /// for any length and alignment.
    #[test]
    fn checksum_sum_matches_the_definition(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        skip in 0usize..8,
        initial in 0u64..(1 << 40),
    ) {
        let bytes = &bytes[skip.min(bytes.len())..];
        prop_assert_eq!(
            checksum::fold(checksum::sum(bytes, initial)),
            checksum::fold(checksum::sum_reference(bytes, initial))
        );
    }
}

proptest! {
    /// Any mix of flows, segment sizes, PSH marks: what comes out of
    /// coalesce + segment is exactly what went in, in order.
    #[test]
    fn coalesce_then_segment_is_the_identity(
        script in prop::collection::vec((0usize..3, 1usize..=MSS, any::<bool>(), any::<bool>()), 1..60)
    ) {
        let flows = [
            Flow { v6: false, port: 10 },
            Flow { v6: true, port: 11 },
            Flow { v6: false, port: 12 },
        ];
        let mut seq = [5u32; 3];
        let mut id = [9u16; 3];
        let mut frames = Vec::new();
        for (f, len, full, push) in script {
            let len = if full { MSS } else { len };
            let payload: Vec<u8> = (0..len).map(|b| (b * 7) as u8).collect();
            frames.push(tcp_frame(flows[f], id[f], seq[f], push, &payload));
            seq[f] = seq[f].wrapping_add(len as u32);
            id[f] = id[f].wrapping_add(1);
        }
        let units = coalesce_all(&frames);
        prop_assert!(units.len() <= frames.len());
        for (hdr, bytes) in &units {
            if *hdr != VnetHdr::NONE {
                prop_assert!(bytes.len() - ETH_LEN_FOR_TESTS <= MAX_COALESCED_LEN);
            }
        }
        prop_assert_eq!(segment_all(&units), frames);
    }

    /// Arbitrary bytes with an arbitrary header: an error or frames, never
    /// a panic; every emitted frame fits what was read.
    #[test]
    fn segment_never_panics(
        hdr in prop::array::uniform10(any::<u8>()),
        mut frame in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut read = hdr.to_vec();
        read.append(&mut frame);
        if let Some((h, f)) = VnetHdr::parse_mut(&mut read) {
            let _ = segment(h, f, &mut Vec::<Vec<u8>>::new());
        }
    }

    #[test]
    fn coalesce_never_panics(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20)) {
        let mut c = Coalescer::new();
        for f in &frames {
            c.push(f, &mut |_, _| {});
        }
        c.flush(&mut |_, _| {});
    }
}

#[test]
fn a_vlan_tagged_tso_frame_is_cut_with_its_tag() {
    for v6 in [false, true] {
        let payload: Vec<u8> = (0..3 * MSS + 100).map(|b| (b % 251) as u8).collect();
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B).single_vlan(42.try_into().expect("vid"));
        let ip = if v6 {
            eth.ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            eth.ipv4([192, 168, 30, 10], [10, 0, 1, 26], 64)
        };
        let mut frame = Vec::new();
        ip.tcp(40000, 5201, 7, 502)
            .ack(77)
            .psh()
            .write(&mut frame, &payload)
            .expect("write");
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            gso_size: MSS as u16,
            ..VnetHdr::NONE
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        let n = segment(hdr, &mut frame, &mut out).expect("segment");
        assert_eq!(n, 4, "v6={v6}");
        let mut joined = Vec::new();
        for (i, f) in out.iter().enumerate() {
            let p = SlicedPacket::from_ethernet(f).expect("parses");
            assert_eq!(
                p.vlan_ids().first().map(|v| v.value()),
                Some(42),
                "tag kept"
            );
            assert!(tcp_checksum_ok(f), "v6={v6} segment {i}");
            let Some(TransportSlice::Tcp(tcp)) = p.transport else {
                panic!("tcp")
            };
            assert_eq!(tcp.sequence_number(), 7 + (i * MSS) as u32);
            assert_eq!(tcp.psh(), i == 3);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, payload, "v6={v6}");
    }
}

/// What a pure ACK carries besides its acknowledgement number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckKind {
    /// Timestamps only: may be thinned.
    Plain,
    /// A SACK block: never thinned, never replaces one.
    Sack,
    /// ECN echo: never thinned.
    Ece,
}

fn pure_ack(flow: Flow, ack: u32, kind: AckKind, tsval: u32) -> Vec<u8> {
    use etherparse::TcpOptionElement::{SelectiveAcknowledgement, Timestamp};
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let ip = if flow.v6 {
        eth.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        eth.ipv4([192, 168, 30, 10], [10, 0, 1, 26], 64)
    };
    let mut tcp = ip.tcp(flow.port, 5201, 1, 502).ack(ack);
    tcp = match kind {
        AckKind::Plain => tcp.options(&[Timestamp(tsval, 7)]).expect("options"),
        AckKind::Sack => tcp
            .options(&[
                Timestamp(tsval, 7),
                SelectiveAcknowledgement((ack + 1000, ack + 2000), [None, None, None]),
            ])
            .expect("options"),
        AckKind::Ece => tcp.ece().options(&[Timestamp(tsval, 7)]).expect("options"),
    };
    let mut out = Vec::new();
    tcp.write(&mut out, &[]).expect("write");
    out
}

/// What came out of the coalescer (all unmerged here), and how many ACKs
/// it says it thinned.
fn pass(frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, u64) {
    let mut c = Coalescer::new();
    let mut out = Vec::new();
    let mut emit = |h: &VnetHdr, f: &[u8]| {
        assert_eq!(*h, VnetHdr::NONE);
        out.push(f.to_vec());
    };
    for f in frames {
        c.push(f, &mut emit);
    }
    c.flush(&mut emit);
    let thinned = c.take_thinned();
    assert_eq!(c.take_thinned(), 0, "taken once");
    (out, thinned)
}

#[test]
fn consecutive_acks_of_a_flow_leave_only_the_newest() {
    for v6 in [false, true] {
        let flow = Flow { v6, port: 20 };
        let acks: Vec<Vec<u8>> = (1..=5)
            .map(|i| pure_ack(flow, 1000 * i, AckKind::Plain, i))
            .collect();
        let (out, thinned) = pass(&acks);
        assert_eq!((out, thinned), (vec![acks[4].clone()], 4), "v6={v6}");
    }
    // Across the sequence-number wrap.
    let flow = Flow {
        v6: false,
        port: 21,
    };
    let acks = [
        pure_ack(flow, u32::MAX - 10, AckKind::Plain, 1),
        pure_ack(flow, 5, AckKind::Plain, 2),
    ];
    assert_eq!(pass(&acks), (vec![acks[1].clone()], 1));
}

#[test]
fn the_sender_never_sees_more_than_the_span_acknowledged_at_once() {
    let flow = Flow {
        v6: false,
        port: 26,
    };
    let step = 20_000;
    let acks: Vec<Vec<u8>> = (0..6)
        .map(|i| pure_ack(flow, 1000 + step * i, AckKind::Plain, i))
        .collect();
    let (out, thinned) = pass(&acks);
    // 1000 → 61000 fits in one span; 81000 does not, so 61000 is written
    // and a new run starts from it (81000, 101000).
    assert_eq!(out, vec![acks[3].clone(), acks[5].clone()]);
    assert_eq!(thinned, 4);
    let acked = |f: &[u8]| u32::from_be_bytes([f[42], f[43], f[44], f[45]]);
    let mut last = 1000;
    for f in &out {
        assert!(acked(f) - last <= MAX_THINNED_SPAN + step, "{}", acked(f));
        last = acked(f);
    }
}

#[test]
fn duplicate_acks_sacks_and_ecn_echoes_are_all_kept() {
    let flow = Flow {
        v6: false,
        port: 22,
    };
    // Three duplicate ACKs: the sender's fast-retransmit signal.
    let dups: Vec<Vec<u8>> = (0..4)
        .map(|i| pure_ack(flow, 5000, AckKind::Plain, i))
        .collect();
    assert_eq!(pass(&dups), (dups.clone(), 0));
    for kind in [AckKind::Sack, AckKind::Ece] {
        let frames = vec![
            pure_ack(flow, 100, AckKind::Plain, 1),
            pure_ack(flow, 200, kind, 2),
            pure_ack(flow, 300, kind, 3),
            pure_ack(flow, 400, AckKind::Plain, 4),
        ];
        assert_eq!(pass(&frames), (frames.clone(), 0), "{kind:?}");
    }
}

#[test]
fn acks_are_thinned_only_back_to_back_and_order_is_kept() {
    let a = Flow {
        v6: false,
        port: 23,
    };
    let b = Flow {
        v6: false,
        port: 24,
    };
    let data = stream(a, &[100], true).remove(0);
    let frames = vec![
        pure_ack(a, 100, AckKind::Plain, 1),
        pure_ack(b, 100, AckKind::Plain, 1),
        pure_ack(a, 200, AckKind::Plain, 2),
        data.clone(),
        pure_ack(a, 300, AckKind::Plain, 3),
        pure_ack(a, 400, AckKind::Plain, 4),
    ];
    let (out, thinned) = pass(&frames);
    assert_eq!(thinned, 1);
    assert_eq!(
        out,
        vec![
            frames[0].clone(),
            frames[1].clone(),
            frames[2].clone(),
            data,
            frames[5].clone()
        ]
    );
}

#[test]
fn a_corrupt_ack_never_replaces_a_good_one() {
    let flow = Flow {
        v6: false,
        port: 25,
    };
    let good = pure_ack(flow, 100, AckKind::Plain, 1);
    let mut bad = pure_ack(flow, 200, AckKind::Plain, 2);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let frames = vec![good, bad];
    assert_eq!(pass(&frames), (frames.clone(), 0));
}

proptest! {
    /// Against a model: an ACK is left out exactly when the frame right
    /// after it is a plain ACK of the same flow acknowledging more (and it
    /// is plain itself); everything else comes out, in order.
    #[test]
    fn thinning_matches_the_model(
        script in prop::collection::vec((0usize..2, 0u32..3, 0usize..4), 1..80)
    ) {
        let flows = [Flow { v6: false, port: 30 }, Flow { v6: true, port: 31 }];
        let mut acked = [1000u32; 2];
        // (frame, flow, ack, thinnable)
        let mut frames: Vec<(Vec<u8>, usize, u32, bool)> = Vec::new();
        for (i, (f, advance, what)) in script.into_iter().enumerate() {
            // At most 16,000 bytes in all: the span bound never applies
            // (it has its own test).
            acked[f] = acked[f].wrapping_add(advance * 100);
            let frame = match what {
                0 | 1 => (pure_ack(flows[f], acked[f], AckKind::Plain, i as u32), true),
                2 => (pure_ack(flows[f], acked[f], AckKind::Sack, i as u32), false),
                _ => (stream(flows[f], &[64], true).remove(0), false),
            };
            frames.push((frame.0, f, acked[f], frame.1));
        }
        let expected: Vec<Vec<u8>> = frames
            .iter()
            .enumerate()
            .filter(|(i, (_, flow, ack, thinnable))| {
                let superseded = frames.get(i + 1).is_some_and(|(_, f2, a2, t2)| {
                    *t2 && f2 == flow && (a2.wrapping_sub(*ack) as i32) > 0
                });
                !(*thinnable && superseded)
            })
            .map(|(_, (frame, ..))| frame.clone())
            .collect();
        let input: Vec<Vec<u8>> = frames.iter().map(|(f, ..)| f.clone()).collect();
        let (out, thinned) = pass(&input);
        prop_assert_eq!(thinned as usize, input.len() - expected.len());
        prop_assert_eq!(out, expected);
    }
}

fn syn(flow: Flow, mss: u16, ack: bool) -> Vec<u8> {
    use etherparse::TcpOptionElement::{
        MaximumSegmentSize, Noop, SelectiveAcknowledgementPermitted, WindowScale,
    };
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let ip = if flow.v6 {
        eth.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        eth.ipv4([192, 168, 30, 10], [10, 0, 1, 26], 64)
    };
    let mut tcp = ip.tcp(flow.port, 80, 1, 64_240).syn();
    if ack {
        tcp = tcp.ack(9);
    }
    let tcp = tcp
        .options(&[
            MaximumSegmentSize(mss),
            SelectiveAcknowledgementPermitted,
            Noop,
            WindowScale(7),
        ])
        .expect("options");
    let mut out = Vec::new();
    tcp.write(&mut out, &[]).expect("write");
    out
}

fn mss_of(frame: &[u8]) -> u16 {
    let p = SlicedPacket::from_ethernet(frame).expect("parses");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP");
    };
    tcp.options_iterator()
        .find_map(|o| match o {
            Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
        .expect("an MSS option")
}

#[test]
fn syns_above_the_limit_are_clamped_with_a_valid_checksum() {
    for v6 in [false, true] {
        for ack in [false, true] {
            let flow = Flow { v6, port: 40_000 };
            let mut f = syn(flow, 1460, ack);
            assert!(clamp_mss(&mut f, 1309));
            assert_eq!(mss_of(&f), 1309);
            assert!(tcp_checksum_ok(&f), "v6 {v6} ack {ack}");
            let mut small = syn(flow, 1200, ack);
            let before = small.clone();
            assert!(!clamp_mss(&mut small, 1309), "already below");
            assert_eq!(small, before);
        }
    }
    let mut data = tcp_frame(Flow { v6: false, port: 1 }, 1, 1, true, &[0; 100]);
    let before = data.clone();
    assert!(!clamp_mss(&mut data, 500), "not a SYN");
    assert_eq!(data, before);
}

proptest! {
    /// Whatever the bytes, clamping never panics, and changes nothing
    /// but the two MSS bytes and the two checksum bytes.
    #[test]
    fn clamp_never_panics_and_touches_at_most_four_bytes(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..120),
        syn_prefix in any::<bool>(),
    ) {
        if syn_prefix && bytes.len() >= 60 {
            let f = syn(Flow { v6: false, port: 7 }, 1460, false);
            bytes[..f.len().min(60)].copy_from_slice(&f[..f.len().min(60)]);
        }
        let before = bytes.clone();
        clamp_mss(&mut bytes, 1000);
        let changed = before.iter().zip(&bytes).filter(|(a, b)| a != b).count();
        prop_assert!(changed <= 4);
    }
}

/// One batch written: merged behind a header with a coalescer, frame by
/// frame without one, every frame and byte counted, refused writes
/// counted with their reason.
#[test]
fn a_batch_is_written_merged_or_frame_by_frame_and_counted() {
    let frames = stream(
        Flow {
            v6: false,
            port: 40100,
        },
        &[MSS, MSS, MSS, 500],
        true,
    );
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let mut written: Vec<(Option<Vec<u8>>, Vec<u8>)> = Vec::new();
    let mut coalescer = Coalescer::new();
    let merged = write_batch(
        frames.iter().map(Vec::as_slice),
        Some(&mut coalescer),
        &mut |header, frame| {
            written.push((header.map(<[u8]>::to_vec), frame.to_vec()));
            Ok(frame.len())
        },
    );
    assert_eq!((merged.frames, merged.bytes, merged.writes), (4, bytes, 1));
    assert_eq!((merged.failed, merged.last_error.is_none()), (0, true));
    let (header, frame) = &written[0];
    let hdr = VnetHdr::parse(header.as_deref().expect("a header"))
        .expect("10 bytes")
        .0;
    assert_eq!(hdr.gso_type, GSO_TCPV4);
    assert_eq!(segment_all(&[(hdr, frame.clone())]), frames);

    written.clear();
    let plain = write_batch(
        frames.iter().map(Vec::as_slice),
        None,
        &mut |header, frame| {
            written.push((header.map(<[u8]>::to_vec), frame.to_vec()));
            Err(std::io::Error::other("queue full"))
        },
    );
    assert_eq!((plain.frames, plain.bytes, plain.writes), (4, bytes, 4));
    assert_eq!(plain.failed, 4);
    assert_eq!(
        plain.last_error.map(|e| e.to_string()).as_deref(),
        Some("queue full")
    );
    assert!(written.iter().all(|(h, _)| h.is_none()));
    assert_eq!(
        written.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
        frames
    );
}
