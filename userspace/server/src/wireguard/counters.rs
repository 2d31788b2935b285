//! What a hub's WireGuard endpoint did, for status and metrics: relaxed
//! atomics written by the workers, one slot per drop reason.

use std::sync::atomic::{AtomicU64, Ordering};

use ethergate_hub::IpDrop;

/// Why a datagram or a packet in it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireguardDrop {
    /// Not a WireGuard message (type, length, reserved bytes).
    Malformed,
    /// Handshake message without a valid mac1: not meant for this key.
    BadMac1,
    /// Initiation that did not decrypt.
    HandshakeDecrypt,
    /// Initiation from a key no user has.
    UnknownKey,
    /// Initiation replayed (timestamp not newer) or too frequent.
    ReplayedInitiation,
    /// Transport message for a session index nobody holds.
    UnknownIndex,
    /// Transport message that did not authenticate, was replayed, or used
    /// expired keys.
    Rejected,
    /// Message a responder never receives (responses, cookie replies).
    Unexpected,
    /// Packet from a peer with no session to carry it (the hub refused it).
    NoSession,
    /// Packet for a peer whose keys are not confirmed or have expired.
    NoKeys,
    /// A decrypted packet the peer's adapter refused.
    Ip(IpDrop),
}

const REASONS: usize = 10 + IpDrop::ALL.len();

impl WireguardDrop {
    pub fn all() -> impl Iterator<Item = WireguardDrop> {
        [
            WireguardDrop::Malformed,
            WireguardDrop::BadMac1,
            WireguardDrop::HandshakeDecrypt,
            WireguardDrop::UnknownKey,
            WireguardDrop::ReplayedInitiation,
            WireguardDrop::UnknownIndex,
            WireguardDrop::Rejected,
            WireguardDrop::Unexpected,
            WireguardDrop::NoSession,
            WireguardDrop::NoKeys,
        ]
        .into_iter()
        .chain(IpDrop::ALL.into_iter().map(WireguardDrop::Ip))
    }

    pub fn name(self) -> &'static str {
        match self {
            WireguardDrop::Malformed => "malformed",
            WireguardDrop::BadMac1 => "bad_mac1",
            WireguardDrop::HandshakeDecrypt => "handshake_decrypt",
            WireguardDrop::UnknownKey => "unknown_key",
            WireguardDrop::ReplayedInitiation => "replayed_initiation",
            WireguardDrop::UnknownIndex => "unknown_index",
            WireguardDrop::Rejected => "rejected",
            WireguardDrop::Unexpected => "unexpected_message",
            WireguardDrop::NoSession => "no_session",
            WireguardDrop::NoKeys => "no_keys",
            WireguardDrop::Ip(IpDrop::Malformed) => "ip_malformed",
            WireguardDrop::Ip(IpDrop::SpoofedSource) => "spoofed_source",
            WireguardDrop::Ip(IpDrop::NoRoute) => "no_route",
            WireguardDrop::Ip(IpDrop::Unresolved) => "unresolved_neighbour",
        }
    }

    fn index(self) -> usize {
        match self {
            WireguardDrop::Malformed => 0,
            WireguardDrop::BadMac1 => 1,
            WireguardDrop::HandshakeDecrypt => 2,
            WireguardDrop::UnknownKey => 3,
            WireguardDrop::ReplayedInitiation => 4,
            WireguardDrop::UnknownIndex => 5,
            WireguardDrop::Rejected => 6,
            WireguardDrop::Unexpected => 7,
            WireguardDrop::NoSession => 8,
            WireguardDrop::NoKeys => 9,
            WireguardDrop::Ip(ip) => 10 + ip.index(),
        }
    }
}

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
    drops: [AtomicU64; REASONS],
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
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl WireguardCounters {
    pub fn drop(&self, why: WireguardDrop) {
        self.drops[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn drop_n(&self, why: WireguardDrop, n: u64) {
        if n > 0 {
            self.drops[why.index()].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Every reason with its count, zeros included.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        WireguardDrop::all()
            .map(|r| (r.name(), self.drops[r.index()].load(Ordering::Relaxed)))
            .collect()
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
        let all: Vec<_> = WireguardDrop::all().collect();
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
    }
}
