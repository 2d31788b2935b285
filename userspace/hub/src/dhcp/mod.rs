//! The hub's virtual DHCP server (RFC 2131), SecureNAT-style but with the
//! addresses of the local bridge.
//!
//! **Server identifier and router.** SoftEther's SecureNAT runs a virtual
//! host with its own IP (192.168.30.1) that answers ARP, DHCP and NAT. We
//! have no virtual host: the kernel side of the tap (`bridge_address`,
//! 192.168.30.1 in the recipe) is the host that routes for VPN clients. So
//! the server identifier (option 54) is the bridge address — an address on
//! the hub's subnet that really answers ARP — and that is also what the
//! recipe uses as router and DNS. The consequence: a client that renews
//! unicasts its REQUEST to 192.168.30.1, its kernel ARPs for that address,
//! the tap answers, and the REQUEST travels towards the bridge port. The
//! kernel has no DHCP server, so [`crate::Hub::forward`] intercepts every
//! frame to UDP/67 from *any* port (sessions and the bridge) before
//! switching it, whatever its destination MAC or IP, and hands it to this
//! server; replies go back out of the ingress port only. While the hub
//! runs DHCP it also drops DHCP server replies (UDP 67 → 68) coming from
//! ports, so a stray server on a client or on the kernel side cannot hand
//! out conflicting leases.
//!
//! The Ethernet source of our replies is [`DhcpServerConfig::server_mac`]:
//! by default a locally administered MAC derived from the hub name; the
//! server can set it to the tap's MAC so the client sees one host behind
//! 192.168.30.1.
//!
//! **Identity.** A client is its option 61 when sent, else its MAC. The
//! lease MAC must equal the frame's Ethernet source (there are no relays on
//! a hub; `giaddr` ≠ 0 is ignored), so the hub's per-port MAC limit also
//! bounds how many leases one session can take; the per-port lease limit
//! ([`LeaseHolder`]) bounds it directly, also across MACs that aged out of
//! the MAC table while their leases live on.

mod persist;
mod pool;
mod server;

// The wire format lives in ethergate-dhcp, shared with the client.
pub use ethergate_dhcp::*;
pub use persist::{LeaseFileError, LeaseLineError, format_leases, parse_leases};
pub use pool::{
    BindingState, ClientKey, DhcpLease, LeasePool, MAX_BINDINGS, MAX_LEASES_PER_MAC, RestoreReport,
};
pub use server::{
    DECLINE_HOLD, DhcpCounters, DhcpOutcome, DhcpReply, DhcpServer, DhcpServerConfig, IgnoreReason,
    LeaseEvent, LeaseEventKind, LeaseHolder, MIN_MESSAGE_SIZE, OFFER_HOLD,
};
