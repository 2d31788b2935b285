//! Hub ports — sessions and the local bridge — and what is counted per port.
//!
//! Invariant: every frame the hub sees is counted exactly once on its
//! ingress port, either as forwarded (`frames_in`) or under one
//! [`FrameDrop`]; copies the hub decides to send are counted on the egress
//! port (`frames_out`), at decision time.

/// A hub port: a session (ids from 1) or the local bridge (0). Same shape as
/// the server's port ids so the server can pass them straight through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u64);

impl PortId {
    /// The hub's local bridge (its tap).
    pub const BRIDGE: PortId = PortId(0);

    pub const fn is_bridge(self) -> bool {
        self.0 == 0
    }
}

/// Per-port policy, fixed when the port is added.
///
/// Who may use a MAC address: a port owns the source MACs it has learned
/// (see [`crate::MacTable`]). A session port may not take over a MAC that
/// the bridge owns (pinned or learned) or that another session port owns
/// while that entry is fresh — such frames are dropped as
/// [`FrameDrop::MacSpoof`] and the table is unchanged — unless both
/// session ports have the same [`PortPolicy::owner`] (the same hub user):
/// a client that reconnects gets a new port while the server still keeps
/// its old session for resumption (up to the session timeout), and its MAC
/// must follow it at once. A detached port's MACs are forgotten and an
/// aged-out entry is free, so either may be learned anew by anyone. The
/// bridge, which stands for the LAN, may take over any MAC except one
/// pinned to another port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortPolicy {
    /// SoftEther's policy `MaxMac`: how many source MACs this port may own.
    /// `None` means only the hub-wide table cap applies (the bridge, which
    /// stands for a whole LAN, and sessions without the policy).
    pub max_macs: Option<u32>,
    /// How many DHCP leases (offered or bound, unexpired) clients behind
    /// this port may hold at once. `None`: no limit beyond the pool's.
    pub max_leases: Option<u32>,
    /// Who the port belongs to (an id the caller derives from the hub
    /// user). Session ports with the same owner may take each other's MACs
    /// (a reconnecting client); `None` shares with nobody.
    pub owner: Option<u64>,
}

/// Why the switch dropped a frame (not the NAT programs' `DropReason`). Each
/// has its own counter per port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameDrop {
    /// Shorter than an Ethernet header (14 bytes).
    Runt,
    /// Longer than [`crate::MAX_FRAME_LEN`].
    Oversize,
    /// The source MAC is multicast/broadcast (or all zeroes): no real
    /// station sends from one, and learning it would poison the table.
    BadSourceMac,
    /// The port already owns its policy's number of MACs.
    MacLimit,
    /// The hub-wide MAC table is full (even after evicting aged entries).
    MacTableFull,
    /// The destination was learned on the ingress port: the frame would go
    /// back where it came from.
    Hairpin,
    /// The ingress port is not attached to the hub.
    UnknownPort,
    /// A DHCP server message (UDP 67 → 68) from a port while the hub runs
    /// its own DHCP server: a rogue server would hand out wrong leases.
    ForeignDhcpServer,
    /// A frame to UDP/67 that the DHCP server could not decode.
    MalformedDhcp,
    /// A well-formed DHCP message the server declines to answer (pool
    /// exhausted, not for this server, unknown message type).
    DhcpIgnored,
    /// The source MAC belongs to the bridge or to another live session
    /// port (see the module docs): a session tried to take it over.
    MacSpoof,
    /// A DHCP request that would give the port more leases than its
    /// [`PortPolicy::max_leases`].
    LeaseLimit,
}

impl FrameDrop {
    pub const ALL: [FrameDrop; 12] = [
        FrameDrop::Runt,
        FrameDrop::Oversize,
        FrameDrop::BadSourceMac,
        FrameDrop::MacLimit,
        FrameDrop::MacTableFull,
        FrameDrop::Hairpin,
        FrameDrop::UnknownPort,
        FrameDrop::ForeignDhcpServer,
        FrameDrop::MalformedDhcp,
        FrameDrop::DhcpIgnored,
        FrameDrop::MacSpoof,
        FrameDrop::LeaseLimit,
    ];

    /// A short stable name for metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            FrameDrop::Runt => "runt",
            FrameDrop::Oversize => "oversize",
            FrameDrop::BadSourceMac => "bad_source_mac",
            FrameDrop::MacLimit => "mac_limit",
            FrameDrop::MacTableFull => "mac_table_full",
            FrameDrop::Hairpin => "hairpin",
            FrameDrop::UnknownPort => "unknown_port",
            FrameDrop::ForeignDhcpServer => "foreign_dhcp_server",
            FrameDrop::MalformedDhcp => "malformed_dhcp",
            FrameDrop::DhcpIgnored => "dhcp_ignored",
            FrameDrop::MacSpoof => "mac_spoof",
            FrameDrop::LeaseLimit => "lease_limit",
        }
    }

    /// This reason's position in [`FrameDrop::ALL`], for per-reason
    /// counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Traffic counters of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PortCounters {
    /// Frames accepted from the port (forwarded, flooded or answered).
    pub frames_in: u64,
    pub bytes_in: u64,
    /// Copies the hub decided to send to the port.
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Frames from this port that the hub answered itself (DHCP).
    pub frames_local: u64,
    drops: [u64; FrameDrop::ALL.len()],
}

impl PortCounters {
    pub fn dropped(&self, reason: FrameDrop) -> u64 {
        self.drops[reason.index()]
    }

    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn count_drop(&mut self, reason: FrameDrop) {
        self.drops[reason.index()] += 1;
    }

    pub(crate) fn count_in(&mut self, len: usize) {
        self.frames_in += 1;
        self.bytes_in += len as u64;
    }

    pub(crate) fn count_out(&mut self, len: usize) {
        self.frames_out += 1;
        self.bytes_out += len as u64;
    }
}
