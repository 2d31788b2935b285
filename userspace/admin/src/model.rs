//! The status of a running appliance, as the daemon reports it.
//!
//! Counters are totals since start (Prometheus counters); gauges are values
//! at the time of the snapshot. Maps are `BTreeMap`s so JSON, text and
//! metrics come out in a stable order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub config: ConfigStatus,
    pub server: ServerStatus,
    pub hubs: Vec<HubStatus>,
    pub sessions: Vec<SessionStatus>,
    /// `None` when the config has no `[nat]` section.
    pub nat: Option<NatStatus>,
    pub ready: Readiness,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// `None`: the embedded default config.
    pub path: Option<String>,
    /// Successful reloads since start.
    pub reloads: u64,
    pub reload_failures: u64,
    /// Why the last reload was refused, until one succeeds.
    pub last_reload_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// The subject's common name.
    pub subject: String,
    /// SHA-256 of the DER, what a client pins.
    pub sha256: String,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// Whole days left at the time of the status; negative once expired.
    pub days_left: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub listen: Vec<String>,
    pub workers: usize,
    /// How session bytes are encrypted: "userspace (rustls)" or "kernel (kTLS)".
    pub tls_mode: String,
    /// Why kTLS is or is not used, as detected at start.
    pub ktls: String,
    /// Connections by the TLS mode they ended up in ("kernel",
    /// "userspace", "fell_back", "failed").
    pub tls_connections: BTreeMap<String, u64>,
    pub certificate: String,
    /// The certificate new handshakes present (`None` if unreadable).
    #[serde(default)]
    pub tls_certificate: Option<CertificateStatus>,
    pub pending_handshakes: u64,
    /// Connections closed before their handshake, by reason (per-address,
    /// per-prefix or server-wide pending cap, or evicted for fairness).
    #[serde(default)]
    pub connections_refused: BTreeMap<String, u64>,
    /// Connections closed because the peer stopped reading.
    #[serde(default)]
    pub write_timeouts: u64,
    pub logins_ok: u64,
    /// Refused logins by reason ("auth_failed", "hub_not_found", …,
    /// "throttled_source" and "throttled_user" for those refused before a
    /// password check).
    pub logins_failed: BTreeMap<String, u64>,
    /// SoftEther UDP acceleration; `None` when it is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_acceleration: Option<UdpAccelerationStatus>,
}

/// SoftEther UDP acceleration, server-wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UdpAccelerationStatus {
    /// Sessions granted UDP acceleration, and those whose frames leave by
    /// UDP now (the path has worked both ways for 10 s).
    pub sessions: u64,
    pub sessions_sending_by_udp: u64,
    pub datagrams_received: u64,
    pub frames_received: u64,
    pub frames_sent: u64,
    pub keepalives_sent: u64,
    pub send_errors: u64,
    /// Datagrams not delivered (and frames not sent), by reason.
    pub drops: BTreeMap<String, u64>,
}

/// A session's UDP acceleration path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionUdpStatus {
    /// Its frames leave by UDP now (otherwise by TLS).
    pub sending_by_udp: bool,
    /// Where its datagrams go (the client's address as its NAT shows it).
    pub endpoint: String,
    pub frames_received: u64,
    pub frames_sent: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HubStatus {
    pub name: String,
    pub bridge: String,
    pub bridge_address: String,
    pub users: usize,
    pub sessions: usize,
    pub mac_entries: u64,
    /// Bound leases; `None` when the hub has no DHCP server.
    pub dhcp_leases: Option<u64>,
    /// Addresses the hub's DHCP range holds (`None` without DHCP).
    #[serde(default)]
    pub dhcp_pool_size: Option<u64>,
    pub from_sessions: Traffic,
    pub to_sessions: Traffic,
    pub from_bridge: Traffic,
    pub to_bridge: Traffic,
    /// Frames for a session dropped because its queue was full.
    #[serde(default)]
    pub session_frames_dropped: u64,
    /// Frames read from the tap by one worker for a session another
    /// worker serves (handed across threads); the rest never left the
    /// worker that read them.
    #[serde(default)]
    pub to_sessions_other_worker: u64,
    /// TCP segmentation/coalescing offload on the bridge's tap.
    #[serde(default)]
    pub tap_offload: bool,
    /// read(2) and write(2) calls on the bridge's tap; with offload, the
    /// ratio to frames is the offload's batching factor.
    #[serde(default)]
    pub bridge_reads: u64,
    #[serde(default)]
    pub bridge_writes: u64,
    /// Pure TCP ACKs not written to the tap because a newer ACK of the
    /// same flow followed in the same batch (it acknowledges all they did).
    #[serde(default)]
    pub tcp_acks_thinned: u64,
    /// Frames the hub's switch dropped, by reason: `mac_limit` (a session
    /// past its max_macs_per_session), `mac_spoof` (a session sending from
    /// the bridge's or another session's MAC), `lease_limit` (past
    /// max_leases_per_session), malformed frames, rogue DHCP servers, ….
    #[serde(default)]
    pub frames_dropped: BTreeMap<String, u64>,
    /// The hub's WireGuard endpoint; absent without `[hub.wireguard]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireguardStatus>,
}

/// A hub's WireGuard endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireguardStatus {
    pub listen: String,
    pub public_key: String,
    /// Users with a WireGuard key.
    pub peers: usize,
    /// Handshakes answered, cookie replies sent (under load), keepalives.
    pub handshakes: u64,
    pub cookie_replies: u64,
    pub keepalives_sent: u64,
    /// Datagrams carrying packets, each way.
    pub packets_received: u64,
    pub packets_sent: u64,
    pub send_errors: u64,
    /// Datagrams or packets dropped, by reason: `bad_mac1`, `unknown_key`,
    /// `unknown_index`, `rejected`, `spoofed_source`, …; every reason.
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub frames: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub name: String,
    pub hub: String,
    pub user: String,
    /// The address the first connection came from.
    pub client: String,
    pub connections: u32,
    pub max_connections: u32,
    /// Seconds since the session was established.
    pub age_secs: u64,
    /// No TCP connection right now; resumable until its timeout.
    pub orphaned: bool,
    /// The worker thread serving the session (all connections from one
    /// client address go to one worker).
    #[serde(default)]
    pub worker: usize,
    /// Client → hub.
    pub received: Traffic,
    /// Hub → client.
    pub sent: Traffic,
    /// `softether` or `wireguard`.
    #[serde(default = "softether")]
    pub protocol: String,
    /// WireGuard: Unix seconds of the last confirmed handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handshake_unix: Option<u64>,
    /// SoftEther sessions granted UDP acceleration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_acceleration: Option<SessionUdpStatus>,
}

fn softether() -> String {
    "softether".to_owned()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NatStatus {
    pub uplink: String,
    /// How each program is attached, e.g. "xdp native", "xdp generic", "tc".
    pub attachments: Vec<Attachment>,
    /// Live flows as of the idle sweeper's last pass (O(1) to read).
    pub active_flows: u64,
    pub max_flows: u64,
    /// Packets and bytes by (class, verdict) as the uplink classifier saw them.
    pub uplink_packets: Vec<ClassCounter>,
    /// Translation events (flows created, translated out/in, …).
    pub events: BTreeMap<String, u64>,
    /// Drops by reason (ports exhausted, no neighbour, …).
    pub drops: BTreeMap<String, u64>,
    /// Flows removed by the idle sweeper.
    pub idle_timeouts: u64,
    /// The kernel's own counters of the uplink interface (every packet,
    /// translated or not), from /proc/net/dev of serve's namespace.
    #[serde(default)]
    pub uplink_interface: Option<InterfaceCounters>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub interface: String,
    pub role: String,
    pub mode: String,
    /// Why this mode (the config, or what auto mode saw on the device).
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounter {
    pub class: String,
    pub verdict: String,
    pub packets: u64,
    pub bytes: u64,
}

/// What `/readyz` checks: every part the config asks for is up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Reasons the appliance is not ready; empty when it is.
    pub problems: Vec<String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty()
    }
}
