//! WireGuard peers as hub members (docs/wireguard.md, decision 0010): a
//! hub's UDP endpoint, its configured peers, and the per-worker tasks that
//! move their packets.
//!
//! Each worker owns one SO_REUSEPORT socket of the hub's listen address
//! (the same source-address steering as the TLS listeners, so a peer's
//! datagrams land on one worker) and runs its receive loop
//! ([`receive`]); a peer whose handshake is confirmed becomes a session in
//! the [`Directory`](crate::Directory) with a port on the hub, and a sender
//! task on the worker that confirmed it drains the port's outbox
//! ([`send`]). Handshake state and keys are per peer, behind the peer's own
//! lock: a peer's packets are handled by one worker at a time in practice,
//! so that lock is uncontended; no lock is shared by all peers on the
//! transport path except the read side of the index map.
//!
//! Invariants: a session index maps to exactly the peer holding a session
//! under it (indices a peer gives up are removed in the same step that
//! hands them back); a peer removed by a reload answers nothing; every
//! datagram is answered, delivered, or counted as dropped with a reason.

mod counters;
pub(crate) mod peer_link;
mod ratelimit;
pub(crate) mod receive;
mod send;

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use ethergate_hub::{IpPort, IpPortConfig, MacAddr};
use ethergate_net::{ClasslessRoute, Ipv4Cidr};
use ethergate_wireguard::{Peer, PresharedKey, PrivateKey, PublicKey, Responder};

pub use counters::{WireguardCounters, WireguardDrop};

use crate::directory::SessionShared;
use peer_link::PeerLink;

use crate::udp::pktinfo::PeerAddr;

/// What a hub's WireGuard endpoint is configured with.
pub struct WireguardSetup {
    pub listen: SocketAddr,
    pub private_key: PrivateKey,
    pub peers: Vec<PeerSetup>,
    pub addressing: Addressing,
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSetup {
    pub user: String,
    pub public_key: PublicKey,
    pub address: Ipv4Addr,
    /// `None`: the protocol's all-zero key, as a device without one uses.
    pub preshared_key: Option<PresharedKey>,
}

/// What a peer's adapter needs to know of the hub's IP layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    pub subnet: Ipv4Cidr,
    pub routes: Vec<ClasslessRoute>,
    pub router: Option<Ipv4Addr>,
}

/// Initiations per second (per hub) above which the endpoint is under
/// load and asks for cookies: far above what real peers do (one
/// handshake per peer every two minutes), far below what one core can
/// answer.
pub const UNDER_LOAD_INITIATIONS_PER_SEC: u64 = 1_000;

/// A configured peer and its protocol state.
pub struct WgPeer {
    pub setup: PeerSetup,
    /// DH(hub's static key, peer's static key), computed once: one X25519
    /// fewer per handshake. `None` for a low-order key (never handshakes).
    static_shared: Option<[u8; 32]>,
    pub link: Arc<PeerLink>,
    state: Mutex<PeerState>,
}

struct PeerState {
    peer: Peer,
    port: IpPort,
    /// The session while the peer has confirmed keys.
    session: Option<Arc<SessionShared>>,
    /// Where the last authenticated datagram came from, and which of our
    /// addresses it reached: what the sender sends to (and from), read and
    /// written under this lock; the link's copy of the address (for
    /// status) is written only when it changes.
    endpoint: Option<PeerAddr>,
}

impl PeerState {
    /// The peer spoke from `from` (roaming follows it).
    fn heard_from(&mut self, from: PeerAddr, link: &PeerLink) {
        if self.endpoint != Some(from) {
            if self.endpoint.is_none_or(|e| e.remote != from.remote) {
                link.set_endpoint(from.remote);
            }
            self.endpoint = Some(from);
        }
    }
}

impl WgPeer {
    fn new(
        setup: PeerSetup,
        hub: &str,
        addressing: &Addressing,
        identity: &ethergate_wireguard::Identity,
    ) -> Self {
        let mac = MacAddr::local_from_seed(
            format!("wireguard/{hub}/{}", setup.user.to_ascii_lowercase()).as_bytes(),
        );
        let port = IpPort::new(IpPortConfig {
            mac,
            address: setup.address,
            subnet: addressing.subnet,
            routes: addressing.routes.clone(),
            router: addressing.router,
        });
        Self {
            static_shared: identity.static_shared(&setup.public_key).ok(),
            link: Arc::new(PeerLink::new()),
            state: Mutex::new(PeerState {
                peer: Peer::new(
                    setup.public_key,
                    setup
                        .preshared_key
                        .as_ref()
                        .map_or([0; 32], |k| *k.as_bytes()),
                ),
                port,
                session: None,
                endpoint: None,
            }),
            setup,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PeerState> {
        // Each step leaves the state consistent; a panic on one worker
        // must not take the peer down on the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One hub's WireGuard endpoint, shared by the workers.
pub struct WireguardHub {
    pub hub: String,
    pub listen: SocketAddr,
    pub public_key: PublicKey,
    /// For the Curve25519 work, done without a lock.
    identity: ethergate_wireguard::Identity,
    /// mac1/mac2 checks and cookie replies (its cookie secret rotates).
    responder: Mutex<Responder>,
    addressing: RwLock<Addressing>,
    peers: RwLock<HashMap<PublicKey, Arc<WgPeer>>>,
    by_index: RwLock<HashMap<u32, Arc<WgPeer>>>,
    /// One bound socket per worker, taken by that worker's receive loop.
    sockets: Mutex<Vec<Option<std::net::UdpSocket>>>,
    /// Initiations per source address while under load.
    limiter: ratelimit::SourceLimiter,
    /// (second, initiations in it), for [`Self::under_load`].
    load: Mutex<(u64, u64)>,
    /// The second (since the epoch) from which the endpoint no longer
    /// counts as under load for a backlogged socket; 0: never was.
    backlogged_until: AtomicU64,
    pub counters: WireguardCounters,
}

impl WireguardHub {
    /// The endpoint with its sockets already bound (one per worker).
    pub fn new(hub: &str, setup: WireguardSetup, sockets: Vec<std::net::UdpSocket>) -> Self {
        let responder = Responder::new(&setup.private_key);
        let identity = ethergate_wireguard::Identity::new(&setup.private_key);
        let wg = Self {
            hub: hub.to_owned(),
            listen: setup.listen,
            public_key: identity.public,
            identity,
            responder: Mutex::new(responder),
            addressing: RwLock::new(setup.addressing),
            peers: RwLock::default(),
            by_index: RwLock::default(),
            sockets: Mutex::new(sockets.into_iter().map(Some).collect()),
            limiter: ratelimit::SourceLimiter::default(),
            load: Mutex::default(),
            backlogged_until: AtomicU64::new(0),
            counters: WireguardCounters::default(),
        };
        wg.set_peers(setup.peers);
        wg
    }

    /// Replaces the configured peers (start, reload). Peers whose key and
    /// address are unchanged keep their state; the others are dropped with
    /// their session indices (their sessions are ended by the caller, as
    /// for SoftEther users). Returns the users whose peers were dropped.
    pub fn set_peers(&self, peers: Vec<PeerSetup>) -> Vec<String> {
        let addressing = self
            .addressing
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut current = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::new();
        for setup in peers {
            let kept = current
                .get(&setup.public_key)
                .filter(|p| p.setup == setup)
                .cloned();
            let peer = kept.unwrap_or_else(|| {
                Arc::new(WgPeer::new(
                    setup.clone(),
                    &self.hub,
                    &addressing,
                    &self.identity,
                ))
            });
            next.insert(setup.public_key, peer);
        }
        let mut dropped = Vec::new();
        for (key, old) in current.iter() {
            if next.get(key).is_some_and(|new| Arc::ptr_eq(new, old)) {
                continue;
            }
            dropped.push(old.setup.user.clone());
            let mut retired = Vec::new();
            old.lock().peer.clear(&mut retired);
            self.forget_indices(&retired);
        }
        *current = next;
        dropped
    }

    /// New routes and router (reload): every peer's adapter takes them.
    pub fn set_addressing(&self, addressing: Addressing) {
        for peer in self.peers() {
            peer.lock()
                .port
                .set_routes(addressing.routes.clone(), addressing.router);
        }
        *self
            .addressing
            .write()
            .unwrap_or_else(PoisonError::into_inner) = addressing;
    }

    pub fn peer_count(&self) -> usize {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The configured peers, for status.
    pub fn peers(&self) -> Vec<Arc<WgPeer>> {
        let mut peers: Vec<_> = self
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        peers.sort_by(|a, b| a.setup.user.cmp(&b.setup.user));
        peers
    }

    /// The socket bound for `worker`, once.
    pub(crate) fn take_socket(&self, worker: usize) -> Option<std::net::UdpSocket> {
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(worker)
            .and_then(Option::take)
    }

    /// A worker read a full burst: datagrams arrive faster than it
    /// handles them. Handshakes need cookies for the next second — the
    /// measure that holds whatever a handshake costs on this machine.
    pub(crate) fn note_backlog(&self, now: Instant) {
        let second = now.duration_since(crate::worker_context::epoch()).as_secs();
        // This second and the next.
        self.backlogged_until
            .fetch_max(second + 2, Ordering::Relaxed);
    }

    /// Counts an initiation and says whether the endpoint is under load:
    /// more than [`UNDER_LOAD_INITIATIONS_PER_SEC`] initiations a second,
    /// or a backlogged socket ([`Self::note_backlog`]).
    fn under_load(&self, now: Instant) -> bool {
        let second = now.duration_since(crate::worker_context::epoch()).as_secs();
        let backlogged = self.backlogged_until.load(Ordering::Relaxed) > second;
        let mut load = self.load.lock().unwrap_or_else(PoisonError::into_inner);
        if load.0 != second {
            // Still under load in the second after a loaded one.
            let previous = if load.0 + 1 == second { load.1 } else { 0 };
            *load = (second, previous.min(UNDER_LOAD_INITIATIONS_PER_SEC + 1) / 2);
        }
        load.1 += 1;
        backlogged || load.1 > UNDER_LOAD_INITIATIONS_PER_SEC
    }

    /// The precomputed static-static DH of a configured peer.
    fn static_shared(&self, key: &PublicKey) -> Option<[u8; 32]> {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(|p| p.static_shared)
    }

    fn peer_by_key(&self, key: &PublicKey) -> Option<Arc<WgPeer>> {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn peer_by_index(&self, index: u32) -> Option<Arc<WgPeer>> {
        self.by_index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&index)
            .cloned()
    }

    /// A fresh index, registered for `peer`.
    fn new_index(&self, peer: &Arc<WgPeer>) -> u32 {
        let mut map = self
            .by_index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            let mut bytes = [0u8; 4];
            crate::random::system_random(&mut bytes);
            let index = u32::from_le_bytes(bytes);
            if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(index) {
                slot.insert(Arc::clone(peer));
                return index;
            }
        }
    }

    fn forget_indices(&self, retired: &[u32]) {
        if retired.is_empty() {
            return;
        }
        let mut map = self
            .by_index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for index in retired {
            map.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> WireguardHub {
        WireguardHub::new(
            "hub",
            WireguardSetup {
                listen: "127.0.0.1:51820".parse().expect("addr"),
                private_key: PrivateKey::from_bytes([2; 32]),
                peers: Vec::new(),
                addressing: Addressing {
                    subnet: "192.168.30.1/24".parse().expect("cidr"),
                    routes: Vec::new(),
                    router: None,
                },
            },
            Vec::new(),
        )
    }

    /// Cookies only under load: not at start, yes after a backlog or past
    /// the initiation rate, and not once it has passed.
    #[test]
    fn load_comes_and_goes() {
        let wg = endpoint();
        let start = crate::worker_context::epoch();
        assert!(!wg.under_load(start), "a fresh endpoint is not under load");
        wg.note_backlog(start);
        assert!(wg.under_load(start + std::time::Duration::from_millis(1500)));
        assert!(!wg.under_load(start + std::time::Duration::from_secs(3)));
        let later = start + std::time::Duration::from_secs(10);
        let loaded = (0..=UNDER_LOAD_INITIATIONS_PER_SEC)
            .map(|_| wg.under_load(later))
            .filter(|l| *l)
            .count();
        assert_eq!(loaded, 1, "only past the rate");
        assert!(!wg.under_load(later + std::time::Duration::from_secs(3)));
    }

    #[test]
    fn peers_keep_their_state_across_an_unchanged_reload() {
        let wg = endpoint();
        let setup = PeerSetup {
            user: "phone".into(),
            public_key: PrivateKey::from_bytes([7; 32]).public_key(),
            address: "192.168.30.201".parse().expect("ip"),
            preshared_key: None,
        };
        assert!(wg.set_peers(vec![setup.clone()]).is_empty());
        let before = wg.peers();
        assert!(wg.set_peers(vec![setup.clone()]).is_empty());
        assert!(Arc::ptr_eq(&before[0], &wg.peers()[0]));
        let moved = PeerSetup {
            address: "192.168.30.202".parse().expect("ip"),
            ..setup
        };
        assert_eq!(wg.set_peers(vec![moved.clone()]), vec!["phone".to_owned()]);
        let with_psk = PeerSetup {
            preshared_key: Some(PresharedKey::from_bytes([9; 32])),
            ..moved
        };
        assert_eq!(wg.set_peers(vec![with_psk]), vec!["phone".to_owned()]);
        assert_eq!(wg.set_peers(Vec::new()), vec!["phone".to_owned()]);
        assert_eq!(wg.peer_count(), 0);
    }
}
