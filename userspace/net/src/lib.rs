//! The small network types every ethergate crate shares: an Ethernet
//! address ([`MacAddr`], and the one way a MAC is derived from a name), an
//! IPv4 prefix ([`Ipv4Cidr`]) and a classless static route
//! ([`ClasslessRoute`]), and the bounded byte [`Reader`] the wire formats
//! (PACK, DHCP) parse with. One home, so the config, the hub, the
//! tap, the client and the NAT loader cannot disagree about what a MAC or a
//! prefix is.
#![forbid(unsafe_code)]

mod cidr;
mod mac;
mod reader;
mod route;

pub use cidr::{CidrError, Ipv4Cidr};
pub use mac::{MacAddr, MacParseError};
pub use reader::{Reader, Short};
pub use route::{ClasslessRoute, RouteError};
