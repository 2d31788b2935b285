//! ethergate's virtual hub, sans-IO: the MAC-learning switch of one
//! SoftEther-style virtual hub and its virtual DHCP server.
//!
//! No sockets, no clock, no threads: the caller (the hub plane in
//! `ethergate-server`, on whichever worker holds a frame) passes each frame with its ingress [`PortId`] and
//! the current [`WallTime`] to [`Hub::forward`], and gets back a
//! [`Forward`] decision — unicast, flood, a reply frame the hub produced
//! itself (DHCP), or a drop with a [`FrameDrop`]. Leases are handed out as
//! values ([`DhcpServer::snapshot`]) and text ([`format_leases`]); writing
//! them to `state_dir` is the caller's job.

#![forbid(unsafe_code)]

/// The config types this crate's API takes (`DhcpConfig`, `Hub`, …).
pub use ethergate_config as config;

pub mod dhcp;
mod hub;
pub mod ip_port;
mod mac_table;
pub mod offload;
mod port;
mod wall_time;

pub use dhcp::{
    DhcpLease, DhcpServer, DhcpServerConfig, LeaseFileError, format_leases, parse_leases,
};
pub use ethergate_net::{MacAddr, MacParseError};
pub use hub::{ETH_HEADER_LEN, FloodPorts, Forward, Hub, HubError, HubOptions, MAX_FRAME_LEN};
pub use ip_port::{IpDrop, IpPort, IpPortConfig};
pub use mac_table::{
    DEFAULT_MAC_AGING, FORCED_SWEEP_INTERVAL, LearnError, MAX_MAC_ENTRIES, MIN_MAC_LIMIT, MacTable,
};
pub use port::{FrameDrop, PortCounters, PortId, PortPolicy};
pub use wall_time::WallTime;
