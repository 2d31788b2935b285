//! What a hub's WireGuard endpoint did, for status and metrics: relaxed
//! atomics written by the workers, one slot per drop reason.

use std::sync::atomic::{AtomicU64, Ordering};

use ethergate_hub::IpDrop;

ethergate_common::counter_enum! {
    /// Why a datagram or a packet in it was dropped.
    pub enum WireguardDrop {
        /// Not a WireGuard message (type, length, reserved bytes).
        Malformed = 0 => "malformed",
        /// Handshake message without a valid mac1: not meant for this key.
        BadMac1 = 1 => "bad_mac1",
        /// Initiation that did not decrypt.
        HandshakeDecrypt = 2 => "handshake_decrypt",
        /// Initiation from a key no user has.
        UnknownKey = 3 => "unknown_key",
        /// Initiation replayed (timestamp not newer) or too frequent.
        ReplayedInitiation = 4 => "replayed_initiation",
        /// Transport message for a session index nobody holds.
        UnknownIndex = 5 => "unknown_index",
        /// Transport message that did not authenticate, was replayed, or
        /// used expired keys.
        Rejected = 6 => "rejected",
        /// Message a responder never receives (responses, cookie replies).
        Unexpected = 7 => "unexpected_message",
        /// Packet from a peer with no session to carry it (the hub refused
        /// it, or it ended).
        NoSession = 8 => "no_session",
        /// Packet for a peer whose keys are not confirmed or have expired.
        NoKeys = 9 => "no_keys",
        /// A decrypted packet that is not a well-formed IPv4 packet.
        IpMalformed = 10 => "ip_malformed",
        /// A decrypted packet whose source is not the peer's address.
        SpoofedSource = 11 => "spoofed_source",
        /// No route on the hub to the packet's destination.
        NoRoute = 12 => "no_route",
        /// The next hop never answered ARP, or its queue was full.
        UnresolvedNeighbour = 13 => "unresolved_neighbour",
        /// Under load, an initiation past its source's 20 a second.
        RateLimited = 14 => "rate_limited",
    }
}

impl From<IpDrop> for WireguardDrop {
    fn from(why: IpDrop) -> Self {
        match why {
            IpDrop::Malformed => WireguardDrop::IpMalformed,
            IpDrop::SpoofedSource => WireguardDrop::SpoofedSource,
            IpDrop::NoRoute => WireguardDrop::NoRoute,
            IpDrop::Unresolved => WireguardDrop::UnresolvedNeighbour,
        }
    }
}

const REASONS: usize = WireguardDrop::COUNT as usize;

#[derive(Debug)]
pub struct WireguardCounters {
    pub handshakes: AtomicU64,
    pub cookie_replies: AtomicU64,
    pub keepalives_sent: AtomicU64,
    /// Datagrams with data in, and out.
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    /// sendto(2) failures (no route to the peer, buffer full).
    pub send_errors: AtomicU64,
    drops: crate::counters::ReasonCounts<REASONS>,
}

impl Default for WireguardCounters {
    fn default() -> Self {
        Self {
            handshakes: AtomicU64::new(0),
            cookie_replies: AtomicU64::new(0),
            keepalives_sent: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            drops: crate::counters::ReasonCounts::default(),
        }
    }
}

impl WireguardCounters {
    pub fn drop(&self, why: WireguardDrop) {
        self.drop_n(why, 1);
    }

    pub fn drop_n(&self, why: WireguardDrop, n: u64) {
        self.drops.add(why as usize, n);
    }

    /// Every reason with its count, zeros included.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        self.drops
            .named(WireguardDrop::ALL.map(WireguardDrop::name))
    }

    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bump_by(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_name() {
        let all: Vec<_> = WireguardDrop::ALL.to_vec();
        assert_eq!(all.len(), REASONS);
        let mut names: Vec<_> = all.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REASONS);
        let c = WireguardCounters::default();
        for (i, r) in all.iter().enumerate() {
            c.drop_n(*r, i as u64 + 1);
        }
        for (i, (_, n)) in c.drops().into_iter().enumerate() {
            assert_eq!(n, i as u64 + 1);
        }
        let mapped: std::collections::HashSet<_> =
            IpDrop::ALL.into_iter().map(WireguardDrop::from).collect();
        assert_eq!(
            mapped.len(),
            IpDrop::ALL.len(),
            "each adapter drop keeps its own slot"
        );
    }
}
