//! Errors of the two layers: creating/attaching the tap ([`TapError`]) and
//! configuring a link over rtnetlink ([`LinkError`]). Every variant names
//! the interface and the operation, so a log line alone says what failed.

use nix::errno::Errno;

use crate::netlink::NetlinkError;
use ethergate_net::Ipv4Cidr;

/// Creating or attaching to the bridge's tap device.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap name {name:?} is not usable: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("tap {name}: {queues} queues requested; a tap has 1 to {max}")]
    InvalidQueueCount {
        name: String,
        queues: usize,
        max: usize,
    },

    #[error("tap {name}: opening /dev/net/tun for queue {queue}: {source}")]
    OpenDevice {
        name: String,
        queue: usize,
        source: Errno,
    },

    #[error(
        "tap {name}: an interface with that name exists already as {found}, \
         not a multi-queue tap; rename or delete it, or configure another tap name"
    )]
    NotATap { name: String, found: String },

    #[error("tap {name}: attaching queue {queue} (TUNSETIFF): {source}")]
    Attach {
        name: String,
        queue: usize,
        source: Errno,
    },

    #[error("tap {name}: the kernel named the device {got:?} instead")]
    Renamed { name: String, got: String },

    #[error("tap {name}: setting persistence to {persistent} (TUNSETPERSIST): {source}")]
    SetPersist {
        name: String,
        persistent: bool,
        source: Errno,
    },

    #[error("tap {name}: enabling checksum and TCP segmentation offload (TUNSETOFFLOAD): {source}")]
    SetOffload { name: String, source: Errno },

    #[error("tap {name}: looking up its ifindex: {source}")]
    Ifindex { name: String, source: Errno },
}

/// Configuring a link (MAC, MTU, address, up) over rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{interface}: no such interface in this network namespace")]
    NotFound { interface: String },

    #[error("{interface}: looking up its ifindex: {source}")]
    Lookup {
        interface: String,
        source: NetlinkError,
    },

    #[error("{interface}: opening an rtnetlink socket: {source}")]
    Netlink {
        interface: String,
        source: NetlinkError,
    },

    #[error("{interface}: setting {what}: {source}")]
    SetLink {
        interface: String,
        what: String,
        source: NetlinkError,
    },

    #[error("{interface}: listing its IPv4 addresses: {source}")]
    ListAddresses {
        interface: String,
        source: NetlinkError,
    },

    #[error("{interface}: removing the old address {address}: {source}")]
    RemoveAddress {
        interface: String,
        address: Ipv4Cidr,
        source: NetlinkError,
    },

    #[error("{interface}: adding address {address}: {source}")]
    AddAddress {
        interface: String,
        address: Ipv4Cidr,
        source: NetlinkError,
    },

    #[error("{interface}: bringing the link up: {source}")]
    Up {
        interface: String,
        source: NetlinkError,
    },
}
