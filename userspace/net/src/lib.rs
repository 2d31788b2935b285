//! The small network types every ethergate crate shares: an Ethernet
//! address ([`MacAddr`], and the one way a MAC is derived from a name) and
//! an IPv4 prefix ([`Ipv4Cidr`]). One home, so the config, the hub, the
//! tap, the client and the NAT loader cannot disagree about what a MAC or a
//! prefix is.
#![forbid(unsafe_code)]

mod cidr;
mod mac;

pub use cidr::{CidrError, Ipv4Cidr};
pub use mac::{MacAddr, MacParseError};
