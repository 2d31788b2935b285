//! SoftEther's UDP acceleration on the server (docs/udp-acceleration.md):
//! a session whose client offers it gets a UDP path beside its TLS
//! connections, and once the path has worked both ways for ten seconds
//! its frames leave as ChaCha20-Poly1305 datagrams instead of TLS records —
//! no TCP-over-TCP, which is what SoftEther's own users get by default.
//!
//! Per core like the TLS path: each worker owns one SO_REUSEPORT socket
//! of every listen address (port for port: TLS on TCP 443, acceleration
//! on UDP 443), steered by source address like the listeners, so a
//! client's datagrams reach the worker that holds its connections. A
//! datagram is matched to its session by source address once learned;
//! from an unknown source it is tried against the sessions whose TCP peer
//! has the same IP address (the Poly1305 tag says which, if any).
//!
//! Invariants: nothing is delivered before its tag verifies and its
//! cookie matches; every datagram is delivered or counted as dropped with
//! a reason; a session's TLS connections and their keep-alives are never
//! touched by the state of its UDP path.

pub(crate) mod keepalive;
mod path;
pub(crate) mod receive;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, PoisonError, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

pub use path::UdpPath;

use crate::directory::SessionShared;

/// The MSS announced in TCP SYNs through a session with UDP acceleration
/// (SoftEther's value for IPv4): segments then fit one datagram on a
/// 1500-byte path, with room for a client's padding and a VLAN tag,
/// instead of being fragmented by IP.
pub const CLAMPED_MSS: u16 = 1309;

/// Lowers the MSS of the TCP SYNs among `frames` to [`CLAMPED_MSS`]. Done
/// both ways for every session granted UDP acceleration, from the login
/// on (as SoftEther does): a connection opened while the session is still
/// on TLS may later move to UDP.
pub fn clamp_mss(frames: &mut ethergate_proto::data::Frames) {
    frames.for_each_mut(|frame| {
        ethergate_hub::offload::clamp_mss(frame, CLAMPED_MSS);
    });
}

ethergate_common::counter_enum! {
    /// Why a datagram sent to the acceleration port was not delivered.
    pub enum UdpAccelDrop {
        /// From an address with no session that uses UDP acceleration.
        UnknownSource = 0 => "unknown_source",
        /// No session's key opens it (forged, corrupted, or a session that
        /// ended).
        Undecryptable = 1 => "undecryptable",
        /// Opened, but not a well-formed record.
        Malformed = 2 => "malformed",
        /// Opened, but carrying another cookie than the session's.
        WrongCookie = 3 => "wrong_cookie",
        /// A replay: 30 s older than the newest datagram of the session.
        Stale = 4 => "stale",
        /// A compressed frame that did not inflate to a valid frame.
        BadCompression = 5 => "bad_compression",
        /// Outgoing: the socket's send buffer was full.
        SocketFull = 6 => "socket_full",
        /// From a source not matched yet, past this worker's budget of
        /// trial decryptions for the second (a flood).
        SearchLimited = 7 => "search_limited",
    }
}

const REASONS: usize = UdpAccelDrop::COUNT as usize;

/// What the acceleration path did, server-wide, for status and metrics.
#[derive(Debug)]
pub struct UdpAccelCounters {
    pub datagrams_received: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_sent: AtomicU64,
    pub keepalives_sent: AtomicU64,
    /// sendto(2) failures other than a full buffer (no route to the client).
    pub send_errors: AtomicU64,
    drops: crate::counters::ReasonCounts<REASONS>,
}

impl Default for UdpAccelCounters {
    fn default() -> Self {
        Self {
            datagrams_received: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            keepalives_sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            drops: crate::counters::ReasonCounts::default(),
        }
    }
}

impl UdpAccelCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, why: UdpAccelDrop) {
        self.drop_n(why, 1);
    }

    pub fn drop_n(&self, why: UdpAccelDrop, n: u64) {
        self.drops.add(why as usize, n);
    }

    /// Every reason with its count (zeros included), for metrics.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        self.drops.named(UdpAccelDrop::ALL.map(UdpAccelDrop::name))
    }
}

/// The sessions that use UDP acceleration, by their client's address,
/// for datagrams from a source not seen yet.
#[derive(Default)]
pub struct Registry {
    /// Read by every worker for each datagram from a new source; written
    /// only at login and session end.
    by_client: RwLock<HashMap<IpAddr, Vec<Weak<SessionShared>>>>,
    pub counters: Arc<UdpAccelCounters>,
}

impl Registry {
    pub fn add(&self, session: &Arc<SessionShared>) {
        let mut map = self
            .by_client
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let list = map.entry(session.client.ip()).or_default();
        list.retain(|s| s.strong_count() > 0);
        list.push(Arc::downgrade(session));
    }

    pub fn remove(&self, session: &SessionShared) {
        let mut map = self
            .by_client
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let ip = session.client.ip();
        if let Some(list) = map.get_mut(&ip) {
            list.retain(|s| s.strong_count() > 0 && !std::ptr::eq(s.as_ptr(), session));
            if list.is_empty() {
                map.remove(&ip);
            }
        }
    }

    /// The live sessions whose client is at `ip`.
    pub fn candidates(&self, ip: IpAddr, into: &mut Vec<Arc<SessionShared>>) {
        into.clear();
        let map = self
            .by_client
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = map.get(&ip) {
            into.extend(
                list.iter()
                    .filter_map(Weak::upgrade)
                    .filter(|s| !s.is_closed()),
            );
        }
    }
}

/// One worker's socket on one listen address.
pub struct WorkerSocket {
    /// The address it is bound to (the listener's).
    pub bound: SocketAddr,
    pub socket: Arc<std::net::UdpSocket>,
}

/// The socket to grant a session that connected to `local`: the one
/// bound to that address, or to the unspecified address on its port.
pub fn socket_for(sockets: &[WorkerSocket], local: SocketAddr) -> Option<&WorkerSocket> {
    sockets.iter().find(|s| {
        s.bound.port() == local.port()
            && (s.bound.ip() == local.ip()
                || (s.bound.ip().is_unspecified() && s.bound.is_ipv4() == local.is_ipv4()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_gets_the_socket_of_the_address_it_connected_to() {
        let socket = || Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"));
        let sockets = [
            WorkerSocket {
                bound: "0.0.0.0:443".parse().expect("addr"),
                socket: socket(),
            },
            WorkerSocket {
                bound: "198.51.100.1:992".parse().expect("addr"),
                socket: socket(),
            },
        ];
        let pick = |local: &str| {
            socket_for(&sockets, local.parse().expect("addr")).map(|s| s.bound.port())
        };
        assert_eq!(pick("198.51.100.1:443"), Some(443), "the wildcard address");
        assert_eq!(pick("198.51.100.1:992"), Some(992));
        assert_eq!(pick("198.51.100.2:992"), None, "another address");
        assert_eq!(pick("[2001:db8::1]:443"), None, "another family");
        assert_eq!(pick("198.51.100.1:5555"), None, "no socket on that port");
    }
}
