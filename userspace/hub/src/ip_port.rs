//! A hub port for a client that speaks IP instead of Ethernet (a WireGuard
//! peer): the adapter between its IPv4 packets and the hub's frames
//! (docs/wireguard.md §8).
//!
//! Toward the hub the port behaves like a host on the hub's subnet with its
//! own MAC and the client's tunnel address: it answers ARP for that
//! address, resolves its next hops with ARP (the destination on the
//! subnet, else the route's gateway, else the router), and frames the
//! client's packets as Ethernet. Toward the client it unwraps IPv4 frames
//! addressed to it. Cryptokey routing's inbound rule is enforced here: a
//! packet whose source is not the client's own address is dropped.
//!
//! Invariants: every packet from the client is framed, queued for a
//! neighbour being resolved (bounded), or dropped with an [`IpDrop`]; no
//! frame leaves with a source MAC or IP other than the port's own.

use std::{
    collections::{HashMap, VecDeque},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use ethergate_net::{ClasslessRoute, Ipv4Cidr, MacAddr};

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETH_HEADER: usize = 14;
const ARP_LEN: usize = 28;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// A resolved neighbour is used this long without being asked again...
const NEIGHBOUR_FRESH: Duration = Duration::from_secs(240);
/// ...and until this old, while a refreshing request is out.
const NEIGHBOUR_STALE: Duration = Duration::from_secs(300);
/// One ARP request per address per this interval.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// Packets held per unresolved neighbour, and neighbours being resolved.
const PENDING_PER_NEIGHBOUR: usize = 16;
const PENDING_NEIGHBOURS: usize = 16;
/// An unresolved neighbour's packets are dropped after this long.
const PENDING_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a packet from the client was not framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpDrop {
    /// Not an IPv4 packet, or its header does not fit the packet.
    Malformed,
    /// Its source is not the client's tunnel address.
    SpoofedSource,
    /// No route to its destination on this hub.
    NoRoute,
    /// Its next hop is unresolved and the queue for it is full (or the
    /// neighbour never answered).
    Unresolved,
}

impl IpDrop {
    pub const ALL: [IpDrop; 4] = [
        IpDrop::Malformed,
        IpDrop::SpoofedSource,
        IpDrop::NoRoute,
        IpDrop::Unresolved,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IpDrop::Malformed => "malformed",
            IpDrop::SpoofedSource => "spoofed_source",
            IpDrop::NoRoute => "no_route",
            IpDrop::Unresolved => "unresolved",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where an IP client sits on its hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPortConfig {
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    /// The hub's subnet: destinations in it are on-link.
    pub subnet: Ipv4Cidr,
    /// Routes the hub pushes (RFC 3442) and the router, tried in that
    /// order (longest prefix first among the routes).
    pub routes: Vec<ClasslessRoute>,
    pub router: Option<Ipv4Addr>,
}

struct Neighbour {
    mac: MacAddr,
    learned: Instant,
    asked: Option<Instant>,
}

struct Pending {
    since: Instant,
    asked: Instant,
    packets: VecDeque<Vec<u8>>,
}

pub struct IpPort {
    cfg: IpPortConfig,
    neighbours: HashMap<Ipv4Addr, Neighbour>,
    pending: HashMap<Ipv4Addr, Pending>,
    scratch: Vec<u8>,
}

/// The packet's length from its IPv4 header, if it is a well-formed one.
fn ipv4_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    let header = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    (first >> 4 == 4 && header >= 20 && total >= header && total <= packet.len()).then_some(total)
}

fn ipv4_at(packet: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3])
}

impl IpPort {
    pub fn new(cfg: IpPortConfig) -> Self {
        Self {
            cfg,
            neighbours: HashMap::new(),
            pending: HashMap::new(),
            scratch: Vec::with_capacity(ETH_HEADER + 1500),
        }
    }

    pub fn config(&self) -> &IpPortConfig {
        &self.cfg
    }

    /// New routes and router (a reload of the hub's DHCP settings); the
    /// neighbours learned stay.
    pub fn set_routes(&mut self, routes: Vec<ClasslessRoute>, router: Option<Ipv4Addr>) {
        self.cfg.routes = routes;
        self.cfg.router = router;
    }

    /// The next hop toward `dst`, and the MAC to use without ARP when it
    /// is a broadcast or multicast address.
    fn next_hop(&self, dst: Ipv4Addr) -> Result<(Ipv4Addr, Option<MacAddr>), IpDrop> {
        if dst.is_broadcast() || dst == self.cfg.subnet.broadcast() {
            return Ok((dst, Some(MacAddr::BROADCAST)));
        }
        if dst.is_multicast() {
            let o = dst.octets();
            return Ok((
                dst,
                Some(MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])),
            ));
        }
        if self.cfg.subnet.contains(dst) {
            return Ok((dst, None));
        }
        let route = self
            .cfg
            .routes
            .iter()
            .filter(|r| r.destination.contains(dst))
            .max_by_key(|r| r.destination.prefix_len());
        match (route, self.cfg.router) {
            (Some(r), _) => Ok((r.gateway, None)),
            (None, Some(router)) => Ok((router, None)),
            (None, None) => Err(IpDrop::NoRoute),
        }
    }

    /// A packet from the client: framed into `to_hub` (with any ARP the
    /// port needs to send first), held for an unresolved neighbour, or
    /// dropped. `packet` may carry trailing padding (WireGuard pads to 16).
    pub fn from_client(
        &mut self,
        now: Instant,
        packet: &[u8],
        to_hub: &mut dyn FnMut(&[u8]),
    ) -> Result<(), IpDrop> {
        let len = ipv4_len(packet).ok_or(IpDrop::Malformed)?;
        let packet = &packet[..len];
        if ipv4_at(packet, 12) != self.cfg.address {
            return Err(IpDrop::SpoofedSource);
        }
        let (hop, fixed) = self.next_hop(ipv4_at(packet, 16))?;
        if let Some(mac) = fixed {
            self.emit_ipv4(mac, packet, to_hub);
            return Ok(());
        }
        if let Some(n) = self.neighbours.get_mut(&hop) {
            let age = now.saturating_duration_since(n.learned);
            if age < NEIGHBOUR_STALE {
                let mac = n.mac;
                if age >= NEIGHBOUR_FRESH
                    && n.asked
                        .is_none_or(|t| now.saturating_duration_since(t) >= ASK_EVERY)
                {
                    n.asked = Some(now);
                    self.ask_for(hop, to_hub);
                }
                self.emit_ipv4(mac, packet, to_hub);
                return Ok(());
            }
            self.neighbours.remove(&hop);
        }
        self.expire_pending(now);
        if !self.pending.contains_key(&hop) && self.pending.len() >= PENDING_NEIGHBOURS {
            return Err(IpDrop::Unresolved);
        }
        let entry = self.pending.entry(hop).or_insert_with(|| Pending {
            since: now,
            // Far enough back that the first request goes out now.
            asked: now.checked_sub(ASK_EVERY).unwrap_or(now),
            packets: VecDeque::new(),
        });
        let ask =
            now.saturating_duration_since(entry.asked) >= ASK_EVERY || entry.packets.is_empty();
        if entry.packets.len() >= PENDING_PER_NEIGHBOUR {
            return Err(IpDrop::Unresolved);
        }
        entry.packets.push_back(packet.to_vec());
        if ask {
            entry.asked = now;
            self.ask_for(hop, to_hub);
        }
        Ok(())
    }

    /// Forgets neighbours being resolved for too long; returns how many
    /// packets that dropped.
    pub fn expire_pending(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        self.pending.retain(|_, p| {
            let keep = now.saturating_duration_since(p.since) < PENDING_TIMEOUT;
            if !keep {
                dropped += p.packets.len();
            }
            keep
        });
        dropped
    }

    /// A frame the hub delivered to this port. An IPv4 packet for the
    /// client is returned (trimmed to its length); ARP is answered or
    /// learned from (answers and held packets go to `to_hub`); anything
    /// else is not for the client (`None`).
    pub fn from_hub<'f>(
        &mut self,
        now: Instant,
        frame: &'f [u8],
        to_hub: &mut dyn FnMut(&[u8]),
    ) -> Option<&'f [u8]> {
        if frame.len() < ETH_HEADER {
            return None;
        }
        let dst = MacAddr::from_slice(&frame[..6])?;
        let ethertype = [frame[12], frame[13]];
        let payload = &frame[ETH_HEADER..];
        if ethertype == ETHERTYPE_ARP {
            self.handle_arp(now, payload, to_hub);
            return None;
        }
        if ethertype != ETHERTYPE_IPV4 || dst != self.cfg.mac {
            return None;
        }
        let len = ipv4_len(payload)?;
        let packet = &payload[..len];
        (ipv4_at(packet, 16) == self.cfg.address).then_some(packet)
    }

    fn handle_arp(&mut self, now: Instant, arp: &[u8], to_hub: &mut dyn FnMut(&[u8])) {
        if arp.len() < ARP_LEN || arp[..6] != [0, 1, 8, 0, 6, 4] {
            return;
        }
        let op = u16::from_be_bytes([arp[6], arp[7]]);
        let Some(sender_mac) = MacAddr::from_slice(&arp[8..14]) else {
            return;
        };
        let sender_ip = ipv4_at(arp, 14);
        let target_ip = ipv4_at(arp, 24);
        let for_us = target_ip == self.cfg.address;
        let known =
            self.neighbours.contains_key(&sender_ip) || self.pending.contains_key(&sender_ip);
        if self.cfg.subnet.contains(sender_ip)
            && sender_ip != self.cfg.address
            && !sender_mac.is_multicast()
            && (for_us || known)
        {
            self.neighbours.insert(
                sender_ip,
                Neighbour {
                    mac: sender_mac,
                    learned: now,
                    asked: None,
                },
            );
            if let Some(pending) = self.pending.remove(&sender_ip) {
                for packet in pending.packets {
                    self.emit_ipv4(sender_mac, &packet, to_hub);
                }
            }
        }
        if op == ARP_REQUEST && for_us {
            self.emit_arp(ARP_REPLY, sender_mac, sender_mac, sender_ip, to_hub);
        }
    }

    /// Starts a frame from this port in the scratch buffer.
    fn start_frame(&mut self, dst: MacAddr, ethertype: [u8; 2]) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&dst.0);
        self.scratch.extend_from_slice(&self.cfg.mac.0);
        self.scratch.extend_from_slice(&ethertype);
    }

    fn emit_ipv4(&mut self, dst: MacAddr, packet: &[u8], to_hub: &mut dyn FnMut(&[u8])) {
        self.start_frame(dst, ETHERTYPE_IPV4);
        self.scratch.extend_from_slice(packet);
        to_hub(&self.scratch);
    }

    /// Broadcasts "who has `hop`?".
    fn ask_for(&mut self, hop: Ipv4Addr, to_hub: &mut dyn FnMut(&[u8])) {
        self.emit_arp(
            ARP_REQUEST,
            MacAddr::BROADCAST,
            MacAddr([0; 6]),
            hop,
            to_hub,
        );
    }

    fn emit_arp(
        &mut self,
        op: u16,
        eth_dst: MacAddr,
        target_mac: MacAddr,
        target_ip: Ipv4Addr,
        to_hub: &mut dyn FnMut(&[u8]),
    ) {
        self.start_frame(eth_dst, ETHERTYPE_ARP);
        self.scratch.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        self.scratch.extend_from_slice(&op.to_be_bytes());
        self.scratch.extend_from_slice(&self.cfg.mac.0);
        self.scratch.extend_from_slice(&self.cfg.address.octets());
        self.scratch.extend_from_slice(&target_mac.0);
        self.scratch.extend_from_slice(&target_ip.octets());
        // Minimum Ethernet payload.
        self.scratch.resize(60, 0);
        to_hub(&self.scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PORT_MAC: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 1]);
    const TAP_MAC: MacAddr = MacAddr([2, 0xbb, 0, 0, 0, 1]);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 201);
    const TAP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);

    fn port() -> IpPort {
        IpPort::new(IpPortConfig {
            mac: PORT_MAC,
            address: PEER,
            subnet: "192.168.30.0/24".parse().expect("cidr"),
            routes: vec!["10.0.0.0/16 via 192.168.30.1".parse().expect("route")],
            router: None,
        })
    }

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> Vec<u8> {
        let total = 20 + payload;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p
    }

    fn arp_reply_from_tap() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&PORT_MAC.0);
        f.extend_from_slice(&TAP_MAC.0);
        f.extend_from_slice(&ETHERTYPE_ARP);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&TAP_MAC.0);
        f.extend_from_slice(&TAP.octets());
        f.extend_from_slice(&PORT_MAC.0);
        f.extend_from_slice(&PEER.octets());
        f
    }

    fn collect(
        port: &mut IpPort,
        now: Instant,
        packet: &[u8],
    ) -> (Result<(), IpDrop>, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let r = port.from_client(now, packet, &mut |f| out.push(f.to_vec()));
        (r, out)
    }

    #[test]
    fn packets_wait_for_arp_then_leave_framed() {
        let mut p = port();
        let now = Instant::now();
        // Padded as WireGuard delivers it.
        let mut packet = ipv4(PEER, Ipv4Addr::new(10, 0, 1, 26), 10);
        packet.resize(32, 0);
        let (r, out) = collect(&mut p, now, &packet);
        assert_eq!(r, Ok(()));
        assert_eq!(out.len(), 1, "one ARP request for the gateway");
        assert_eq!(&out[0][..6], &MacAddr::BROADCAST.0);
        assert_eq!(&out[0][12..14], &ETHERTYPE_ARP);
        assert_eq!(
            &out[0][14 + 24..14 + 28],
            &TAP.octets(),
            "asks for the route's gateway"
        );
        let mut released = Vec::new();
        assert_eq!(
            p.from_hub(now, &arp_reply_from_tap(), &mut |f| released
                .push(f.to_vec())),
            None
        );
        assert_eq!(released.len(), 1, "the held packet leaves once resolved");
        assert_eq!(&released[0][..6], &TAP_MAC.0);
        assert_eq!(&released[0][6..12], &PORT_MAC.0);
        assert_eq!(released[0].len(), 14 + 30, "trimmed to the IPv4 length");
        let (r, out) = collect(&mut p, now, &packet);
        assert_eq!(r, Ok(()));
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..6], &TAP_MAC.0, "resolved: no more ARP");
    }

    #[test]
    fn spoofed_and_malformed_packets_are_dropped() {
        let mut p = port();
        let now = Instant::now();
        let spoofed = ipv4(Ipv4Addr::new(192, 168, 30, 50), TAP, 8);
        assert_eq!(collect(&mut p, now, &spoofed).0, Err(IpDrop::SpoofedSource));
        assert_eq!(collect(&mut p, now, &[0x60; 40]).0, Err(IpDrop::Malformed));
        let mut short = ipv4(PEER, TAP, 8);
        short[3] = 200;
        assert_eq!(collect(&mut p, now, &short).0, Err(IpDrop::Malformed));
        let no_route = ipv4(PEER, Ipv4Addr::new(8, 8, 8, 8), 8);
        assert_eq!(collect(&mut p, now, &no_route).0, Err(IpDrop::NoRoute));
    }

    #[test]
    fn arp_for_the_client_is_answered_and_its_frames_unwrapped() {
        let mut p = port();
        let now = Instant::now();
        let mut request = Vec::new();
        request.extend_from_slice(&MacAddr::BROADCAST.0);
        request.extend_from_slice(&TAP_MAC.0);
        request.extend_from_slice(&ETHERTYPE_ARP);
        request.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        request.extend_from_slice(&TAP_MAC.0);
        request.extend_from_slice(&TAP.octets());
        request.extend_from_slice(&[0; 6]);
        request.extend_from_slice(&PEER.octets());
        let mut out = Vec::new();
        assert_eq!(
            p.from_hub(now, &request, &mut |f| out.push(f.to_vec())),
            None
        );
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..6], &TAP_MAC.0);
        assert_eq!(u16::from_be_bytes([out[0][20], out[0][21]]), ARP_REPLY);
        assert_eq!(&out[0][22..28], &PORT_MAC.0);
        let mut frame = Vec::new();
        frame.extend_from_slice(&PORT_MAC.0);
        frame.extend_from_slice(&TAP_MAC.0);
        frame.extend_from_slice(&ETHERTYPE_IPV4);
        frame.extend_from_slice(&ipv4(TAP, PEER, 4));
        frame.extend_from_slice(&[0; 6]); // Ethernet padding
        let packet = p
            .from_hub(now, &frame, &mut |_| {})
            .expect("for the client");
        assert_eq!(packet.len(), 24);
        frame[30..34].copy_from_slice(&[192, 168, 30, 7]);
        assert_eq!(
            p.from_hub(now, &frame, &mut |_| {}),
            None,
            "not its address"
        );
    }

    #[test]
    fn an_unanswered_neighbour_costs_bounded_memory() {
        let mut p = port();
        let now = Instant::now();
        let packet = ipv4(PEER, Ipv4Addr::new(192, 168, 30, 99), 8);
        for _ in 0..PENDING_PER_NEIGHBOUR {
            assert_eq!(collect(&mut p, now, &packet).0, Ok(()));
        }
        assert_eq!(collect(&mut p, now, &packet).0, Err(IpDrop::Unresolved));
        assert_eq!(
            p.expire_pending(now + PENDING_TIMEOUT),
            PENDING_PER_NEIGHBOUR
        );
    }

    proptest! {
        /// Whatever the client sends, every frame the port emits carries
        /// the port's own MAC and, for IPv4, the client's own address.
        #[test]
        fn frames_never_carry_another_source(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..20)) {
            let mut p = port();
            let now = Instant::now();
            for mut packet in packets {
                if packet.len() > 20 && packet[0] & 1 == 1 {
                    packet[0] = 0x45;
                    let len = packet.len() as u16;
                    packet[2..4].copy_from_slice(&len.to_be_bytes());
                    packet[12..16].copy_from_slice(&PEER.octets());
                }
                let mut frames = Vec::new();
                let _ = p.from_client(now, &packet, &mut |f| frames.push(f.to_vec()));
                let _ = p.from_hub(now, &arp_reply_from_tap(), &mut |f| frames.push(f.to_vec()));
                for f in frames {
                    prop_assert_eq!(&f[6..12], &PORT_MAC.0);
                    if f[12..14] == ETHERTYPE_IPV4 {
                        prop_assert_eq!(&f[26..30], &PEER.octets());
                    }
                }
            }
        }
    }
}
