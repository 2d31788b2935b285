//! DHCPv4 over the tunnel: a sans-IO client state machine ([`DhcpClient`])
//! and Ethernet/IPv4/UDP framing ([`frame`]); messages are encoded and
//! decoded by the DHCP codec ([`ethergate_dhcp`]), the one the
//! server side uses (and fuzzes). The driver feeds received frames and `now`, sends what
//! [`DhcpClient::poll_transmit`] returns into the tunnel, and applies the
//! [`DhcpEvent`]s (address and routes on the tap).

mod client;
pub mod frame;

pub use client::{DhcpClient, DhcpEvent, Lease};
pub use ethergate_dhcp::{DhcpError, DhcpMessage, DhcpOptions, MessageType};
pub use ethergate_net::ClasslessRoute;
