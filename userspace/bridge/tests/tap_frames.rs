//! Real frames through the tap: a VPN client's ARP request and ping, as the
//! hub would write them into a queue, answered by the kernel of the `nat`
//! namespace and read back from the queues.
//!
//! Also pins down how the kernel spreads what it sends over the queues
//! (see [`steady_flows_come_back_on_the_queue_that_writes_them`]).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{HUB, TAP, hub_config, read_until, topology};
use ethergate_bridge::{MacAddr, Tap, TapQueue};
use etherparse::{
    ArpEthIpv4Packet, ArpOperation, Icmpv4Type, LinkSlice, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice,
};

/// The fake VPN client behind the hub.
const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0x00, 0x00, 0x02];
const CLIENT_IP: [u8; 4] = [192, 168, 30, 2];
const TAP_IP: [u8; 4] = [192, 168, 30, 1];
const TIMEOUT: Duration = Duration::from_secs(5);

fn arp_frame(
    op: ArpOperation,
    dst_mac: [u8; 6],
    target_mac: [u8; 6],
    target_ip: [u8; 4],
) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: op,
        sender_mac: CLIENT_MAC,
        sender_ipv4: CLIENT_IP,
        target_mac,
        target_ipv4: target_ip,
    };
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, dst_mac).arp(arp.into());
    let mut frame = Vec::with_capacity(builder.size());
    builder.write(&mut frame).expect("building ARP frame");
    frame
}

fn echo_request(tap_mac: [u8; 6], id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, tap_mac)
        .ipv4(CLIENT_IP, TAP_IP, 64)
        .icmpv4_echo_request(id, seq);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut frame, payload)
        .expect("building echo request");
    frame
}

/// The ARP packet in `frame`, with the frame's Ethernet source and
/// destination, if it is one.
fn as_arp(frame: &[u8]) -> Option<([u8; 6], [u8; 6], ArpEthIpv4Packet)> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(LinkSlice::Ethernet2(eth)) = &sliced.link else {
        return None;
    };
    let Some(NetSlice::Arp(arp)) = &sliced.net else {
        return None;
    };
    let arp = arp.to_packet().try_eth_ipv4().ok()?;
    Some((eth.source(), eth.destination(), arp))
}

/// Answers the kernel's ARP request for the client, should it ask (it
/// normally learnt the client from our request already).
fn answer_arp_for_client(queue: &TapQueue, frame: &[u8]) {
    if let Some((src, _, arp)) = as_arp(frame)
        && arp.operation == ArpOperation::REQUEST
        && arp.target_ipv4 == CLIENT_IP
    {
        let reply = arp_frame(ArpOperation::REPLY, src, arp.sender_mac, arp.sender_ipv4);
        queue
            .write(&reply)
            .expect("writing ARP reply for the client");
    }
}

/// Pings the tap from queue `from` and returns the queue the reply came
/// out of, after checking the reply.
fn ping(tap: &Tap, tap_mac: [u8; 6], from: usize, id: u16, seq: u16) -> usize {
    let payload: Vec<u8> = (0..56u8).collect();
    let request = echo_request(tap_mac, id, seq, &payload);
    tap.queues()[from]
        .write(&request)
        .expect("writing echo request");
    let ((), queue) = read_until(tap.queues(), TIMEOUT, "ICMP echo reply", |q, frame| {
        answer_arp_for_client(&tap.queues()[q], frame);
        let sliced = SlicedPacket::from_ethernet(frame).ok()?;
        let Some(TransportSlice::Icmpv4(icmp)) = &sliced.transport else {
            return None;
        };
        let Icmpv4Type::EchoReply(echo) = icmp.icmp_type() else {
            return None;
        };
        if echo.id != id || echo.seq != seq {
            return None;
        }
        let Some(LinkSlice::Ethernet2(eth)) = &sliced.link else {
            panic!("reply without Ethernet header");
        };
        let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("echo reply without IPv4");
        };
        assert_eq!(eth.source(), tap_mac, "reply's source MAC");
        assert_eq!(eth.destination(), CLIENT_MAC, "reply's destination MAC");
        assert_eq!(ip.header().source_addr(), Ipv4Addr::from(TAP_IP));
        assert_eq!(ip.header().destination_addr(), Ipv4Addr::from(CLIENT_IP));
        assert_eq!(icmp.payload(), &payload[..], "echo payload");
        Some(())
    });
    queue
}

#[test]
fn kernel_answers_arp_and_ping_through_the_queues() {
    let topo = topology();
    let tap_mac = MacAddr::local_from_seed(HUB.as_bytes()).0;
    topo.enter("nat", || {
        let tap = Tap::create(TAP, 2).expect("creating tap_00");
        tap.configure(&hub_config()).expect("configuring tap_00");

        // Who has 192.168.30.1? Tell 192.168.30.2.
        let request = arp_frame(ArpOperation::REQUEST, [0xff; 6], [0; 6], TAP_IP);
        tap.queues()[0]
            .write(&request)
            .expect("writing ARP request");
        let ((eth_src, eth_dst, arp), arp_queue) =
            read_until(tap.queues(), TIMEOUT, "ARP reply", |_, frame| {
                as_arp(frame).filter(|(_, _, arp)| arp.operation == ArpOperation::REPLY)
            });
        assert_eq!(eth_src, tap_mac, "ARP reply's Ethernet source");
        assert_eq!(eth_dst, CLIENT_MAC, "ARP reply goes to the asker only");
        assert_eq!(arp.sender_mac, tap_mac);
        assert_eq!(arp.sender_ipv4, TAP_IP);
        assert_eq!(arp.target_mac, CLIENT_MAC);
        assert_eq!(arp.target_ipv4, CLIENT_IP);
        eprintln!("ARP request written to queue 0 came back on queue {arp_queue}");

        // Ping 192.168.30.1: the kernel knows the client's MAC from the
        // ARP request (or asks, and read_until's callback answers).
        let queue = ping(&tap, tap_mac, 0, 0x4501, 1);
        eprintln!("echo request written to queue 0 came back on queue {queue}");
    })
    .expect("entering nat");
}

/// tun's automatic queue selection (`tun_automq_select_queue`,
/// `drivers/net/tun.c`): the kernel hashes each frame it sends to the tap
/// with a symmetric flow hash (for ping: the address pair) and sends it out
/// of the queue that most recently *wrote* a frame of that flow; unknown
/// flows go to `hash * queues >> 32`. The flow table is updated only after
/// the written frame has gone through the stack, and a local reply (ARP,
/// echo reply, TCP ACK) is generated inside that same write — so it follows
/// the queue of the flow's *previous* write. In steady state a flow's
/// frames come back to the core that writes it; the first reply, and the
/// first after a flow moves to another core, may come out of any queue.
/// Cores must therefore accept any frame on their queue (the hub's MAC
/// table, not the queue, decides where a frame goes).
#[test]
fn steady_flows_come_back_on_the_queue_that_writes_them() {
    let topo = topology();
    let tap_mac = MacAddr::local_from_seed(HUB.as_bytes()).0;
    topo.enter("nat", || {
        let tap = Tap::create(TAP, 2).expect("creating tap_00");
        tap.configure(&hub_config()).expect("configuring tap_00");
        let mut log = Vec::new();
        let mut seq = 0u16;
        for from in [0usize, 1, 0, 1] {
            // The first write moves the flow to `from`, the second's reply
            // shows where the flow now lives.
            seq += 1;
            let moved = ping(&tap, tap_mac, from, 7, seq);
            seq += 1;
            let steady = ping(&tap, tap_mac, from, 7, seq);
            log.push((from, moved, steady));
        }
        eprintln!("(written to, first reply on, second reply on): {log:?}");
        for &(from, _, steady) in &log {
            assert_eq!(steady, from, "steady flow written to queue {from}: {log:?}");
        }
    })
    .expect("entering nat");
}
