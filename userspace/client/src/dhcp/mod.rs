//! DHCPv4 over the tunnel: a sans-IO client state machine ([`DhcpClient`]),
//! its message codec ([`message`]) and Ethernet/IPv4/UDP framing
//! ([`frame`]). The driver feeds received frames and `now`, sends what
//! [`DhcpClient::poll_transmit`] returns into the tunnel, and applies the
//! [`DhcpEvent`]s (address and routes on the tap).

mod client;
pub mod frame;
pub mod message;

pub use client::{DhcpClient, DhcpEvent, Lease};
pub use message::{ClasslessRoute, DhcpError, DhcpMessage, MessageType};
