//! The running server as plain numbers and names, read at one instant:
//! what `ethergate status`, the admin socket and the metrics endpoint
//! show. Building a snapshot only loads atomics and takes the registry's
//! locks briefly; nothing here is kept alive by holding a snapshot.

use std::{net::SocketAddr, time::Instant};

use ethergate_admin::WireguardStatus;
use ethergate_proto::ErrorCode;

use crate::{
    counters::HubCounts,
    directory::{Directory, SessionView},
    hub_plane::HubPlane,
    ktls::KtlsSupport,
    wireguard::WireguardHub,
};

/// The listeners, the front door and the logins.
#[derive(Debug, Clone)]
pub struct ServerSnapshot {
    pub workers: usize,
    /// "kernel", "userspace" or "kernel where possible".
    pub tls_mode: &'static str,
    /// Whether the kernel offers TLS offload, and why not.
    pub ktls: KtlsSupport,
    /// Connections by the TLS mode they ended up in: kernel, userspace,
    /// fell back, failed.
    pub tls_connections: [(&'static str, u64); 4],
    /// Connections still in their handshake.
    pub pending_handshakes: u64,
    /// Connections refused at the door, by reason name.
    pub connections_refused: Vec<(&'static str, u64)>,
    pub write_timeouts: u64,
    pub logins_ok: u64,
    /// Refused logins by the SoftEther error code they were given.
    pub logins_failed: Vec<(ErrorCode, u64)>,
    /// Logins refused by the throttle before any password check, by reason
    /// name (zeros left out).
    pub logins_throttled: Vec<(&'static str, u64)>,
    /// Every registered hub, in name order.
    pub hubs: Vec<HubSnapshot>,
    /// Every session, oldest first.
    pub sessions: Vec<SessionSnapshot>,
    /// UDP acceleration's counters; `None` when it is off.
    pub udp_acceleration: Option<UdpAccelSnapshot>,
}

/// SoftEther UDP acceleration, server-wide.
#[derive(Debug, Clone)]
pub struct UdpAccelSnapshot {
    pub datagrams_received: u64,
    pub frames_received: u64,
    pub frames_sent: u64,
    pub keepalives_sent: u64,
    pub send_errors: u64,
    /// Every drop reason with its count.
    pub drops: Vec<(&'static str, u64)>,
}

/// A session's UDP acceleration path.
#[derive(Debug, Clone)]
pub struct SessionUdpSnapshot {
    pub sending_by_udp: bool,
    pub endpoint: SocketAddr,
    pub frames_received: u64,
    pub frames_sent: u64,
}

/// One hub: its traffic, its users and sessions, its tap readers.
#[derive(Debug, Clone)]
pub struct HubSnapshot {
    pub name: String,
    pub users: usize,
    pub sessions: usize,
    pub counts: HubCounts,
    /// The local bridge's tap queues, and how many a worker reads.
    pub tap_queues: usize,
    pub tap_queues_read: usize,
    pub closed: bool,
    /// Its WireGuard endpoint, in the form status shows.
    pub wireguard: Option<WireguardStatus>,
}

impl HubSnapshot {
    /// Open, and every tap queue is being read (a tap read that failed for
    /// good stops its reader).
    pub fn is_running(&self) -> bool {
        !self.closed && self.tap_queues_read == self.tap_queues
    }
}

/// Which protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionProtocol {
    Softether,
    Wireguard,
}

impl SessionProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SessionProtocol::Softether => "softether",
            SessionProtocol::Wireguard => "wireguard",
        }
    }
}

/// One session.
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub name: String,
    pub hub: String,
    pub user: String,
    pub protocol: SessionProtocol,
    /// Where the login came from; a WireGuard peer's current endpoint.
    pub client: SocketAddr,
    /// Unix seconds of a WireGuard peer's last handshake.
    pub last_handshake_unix: Option<u64>,
    pub connections: u32,
    pub max_connections: u32,
    pub established: Instant,
    /// No connection right now; resumable until its timeout.
    pub orphaned: bool,
    /// The worker thread its login ran on.
    pub worker: usize,
    /// (frames, bytes) client → hub.
    pub received: (u64, u64),
    /// (frames, bytes) hub → client.
    pub sent: (u64, u64),
    /// Set when the session was granted UDP acceleration.
    pub udp_acceleration: Option<SessionUdpSnapshot>,
}

pub(crate) fn hub(directory: &Directory, plane: &HubPlane) -> HubSnapshot {
    let entry = directory.hub(&plane.name);
    let (tap_queues_read, tap_queues) = plane.tap_readers();
    HubSnapshot {
        name: plane.name.clone(),
        users: entry.as_ref().map_or(0, |e| e.user_count()),
        sessions: entry.as_ref().map_or(0, |e| e.session_count()),
        counts: plane.counters.snapshot(),
        tap_queues,
        tap_queues_read,
        closed: plane.is_closed(),
        wireguard: plane.wireguard().map(|wg| wireguard(wg)),
    }
}

fn wireguard(wg: &WireguardHub) -> WireguardStatus {
    let c = &wg.counters;
    WireguardStatus {
        listen: wg.listen.to_string(),
        public_key: wg.public_key.to_base64(),
        peers: wg.peer_count(),
        handshakes: c.get(&c.handshakes),
        cookie_replies: c.get(&c.cookie_replies),
        keepalives_sent: c.get(&c.keepalives_sent),
        packets_received: c.get(&c.packets_received),
        packets_sent: c.get(&c.packets_sent),
        send_errors: c.get(&c.send_errors),
        drops: c
            .drops()
            .into_iter()
            .map(|(reason, n)| (reason.to_owned(), n))
            .collect(),
    }
}

pub(crate) fn session(view: &SessionView) -> SessionSnapshot {
    let s = &view.shared;
    let (protocol, client) = match &s.wireguard {
        Some(link) => (SessionProtocol::Wireguard, link.endpoint()),
        None => (SessionProtocol::Softether, s.client),
    };
    SessionSnapshot {
        name: s.session_name.clone(),
        hub: s.hub.name.clone(),
        user: s.user.clone(),
        protocol,
        client,
        last_handshake_unix: s.wireguard.as_ref().map(|l| l.last_handshake_unix()),
        connections: s.connections(),
        max_connections: s.max_connections,
        established: s.established,
        orphaned: view.orphaned,
        worker: s.worker,
        received: s.counters.received.get(),
        sent: s.counters.sent.get(),
        udp_acceleration: s.udp_accel.as_ref().map(|path| SessionUdpSnapshot {
            sending_by_udp: path.sending_by_udp(),
            endpoint: path.destination(),
            frames_received: path.frames_in.load(std::sync::atomic::Ordering::Relaxed),
            frames_sent: path.frames_out.load(std::sync::atomic::Ordering::Relaxed),
        }),
    }
}

pub(crate) fn udp_acceleration(c: &crate::udp_accel::UdpAccelCounters) -> UdpAccelSnapshot {
    let get = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    UdpAccelSnapshot {
        datagrams_received: get(&c.datagrams_received),
        frames_received: get(&c.frames_received),
        frames_sent: get(&c.frames_sent),
        keepalives_sent: get(&c.keepalives_sent),
        send_errors: get(&c.send_errors),
        drops: c.drops(),
    }
}
