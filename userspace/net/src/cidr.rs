//! `Ipv4Cidr`: an IPv4 address with a prefix length, as written in the
//! config (`192.168.30.1/24`, `10.0.0.0/16`).
//!
//! The address keeps its host bits: `192.168.30.1/24` is both "the tap's
//! address" and "the subnet it sits in". Whether host bits are allowed is a
//! question for the caller (a bridge address needs them, a route destination
//! must not have them), answered with [`Ipv4Cidr::is_network`]. The invariant
//! is only `prefix_len() <= 32`. The config, the DHCP server, the NAT
//! loader, the tap's link setup and the client all use this one type.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why a string is not an IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("missing \"/prefix\" (write it like 10.0.0.0/16)")]
    MissingPrefix,
    #[error("\"{0}\" is not an IPv4 address")]
    BadAddress(String),
    #[error("prefix length \"{0}\" is not a number from 0 to 32")]
    BadPrefix(String),
}

/// An IPv4 address and prefix length; host bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// `None` when `prefix_len > 32`.
    pub const fn new(address: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        if prefix_len > 32 {
            None
        } else {
            Some(Self {
                address,
                prefix_len,
            })
        }
    }

    /// The address as written, host bits included.
    pub const fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask as a host-order integer (`/24` → `0xffff_ff00`).
    pub const fn mask_bits(&self) -> u32 {
        // A shift by 32 overflows, hence the special case for /0.
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    pub const fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask_bits())
    }

    /// The first address of the subnet (host bits cleared).
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.address.to_bits() & self.mask_bits())
    }

    /// The last address of the subnet (host bits set).
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.address.to_bits() | !self.mask_bits())
    }

    /// This prefix with the host bits cleared (`192.168.30.1/24` →
    /// `192.168.30.0/24`).
    pub const fn trunc(&self) -> Self {
        Self {
            address: self.network(),
            prefix_len: self.prefix_len,
        }
    }

    /// True when no host bits are set, i.e. this names a network rather
    /// than an interface address.
    pub const fn is_network(&self) -> bool {
        self.address.to_bits() & !self.mask_bits() == 0
    }

    /// True when `ip` is inside the subnet (network and broadcast addresses
    /// included).
    pub const fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & self.mask_bits() == self.network().to_bits()
    }

    /// True when `ip` can be given to a host on this subnet: inside it and
    /// neither the network nor the broadcast address. /31 (RFC 3021) and /32
    /// have no such reserved addresses.
    pub const fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        if self.prefix_len >= 31 {
            return true;
        }
        ip.to_bits() != self.network().to_bits() && ip.to_bits() != self.broadcast().to_bits()
    }

    /// True when the two subnets share at least one address.
    pub const fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        // Two prefixes overlap exactly when the shorter one contains the
        // other's network address.
        if self.prefix_len <= other.prefix_len {
            self.contains(other.network())
        } else {
            other.contains(self.network())
        }
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = s.trim().split_once('/').ok_or(CidrError::MissingPrefix)?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| CidrError::BadAddress(address.to_owned()))?;
        // `u8::from_str` accepts a leading '+'; a prefix is plain digits.
        let prefix_len = if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) {
            prefix.parse::<u8>().ok()
        } else {
            None
        };
        prefix_len
            .and_then(|p| Self::new(address, p))
            .ok_or_else(|| CidrError::BadPrefix(prefix.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect("test CIDR parses")
    }

    #[test]
    fn parses_and_displays() {
        let c = cidr("192.168.30.1/24");
        assert_eq!(c.address(), Ipv4Addr::new(192, 168, 30, 1));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.to_string(), "192.168.30.1/24");
        assert_eq!(c.network(), Ipv4Addr::new(192, 168, 30, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(192, 168, 30, 255));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.trunc(), cidr("192.168.30.0/24"));
        assert!(!c.is_network());
        assert!(c.trunc().is_network());
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            "10.0.0.0".parse::<Ipv4Cidr>(),
            Err(CidrError::MissingPrefix)
        );
        assert_eq!(
            "10.0.0/8".parse::<Ipv4Cidr>(),
            Err(CidrError::BadAddress("10.0.0".into()))
        );
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/x"] {
            assert!(
                matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::BadPrefix(_))),
                "{bad} must be rejected"
            );
        }
    }

    #[test]
    fn edge_prefixes() {
        let all = cidr("0.0.0.0/0");
        assert!(all.contains(Ipv4Addr::new(203, 0, 113, 10)));
        assert!(all.is_network());
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        let host = cidr("10.0.1.26/32");
        assert!(host.is_network());
        assert!(host.is_host_address(Ipv4Addr::new(10, 0, 1, 26)));
        assert!(!host.contains(Ipv4Addr::new(10, 0, 1, 27)));
        let p2p = cidr("10.0.0.0/31");
        assert!(p2p.is_host_address(Ipv4Addr::new(10, 0, 0, 0)));
    }

    #[test]
    fn contains_and_host_addresses() {
        let c = cidr("192.168.30.1/24");
        assert!(c.contains(Ipv4Addr::new(192, 168, 30, 200)));
        assert!(!c.contains(Ipv4Addr::new(192, 168, 31, 1)));
        assert!(!c.is_host_address(Ipv4Addr::new(192, 168, 30, 0)));
        assert!(!c.is_host_address(Ipv4Addr::new(192, 168, 30, 255)));
        assert!(c.is_host_address(Ipv4Addr::new(192, 168, 30, 254)));
    }

    #[test]
    fn overlaps_is_symmetric() {
        let a = cidr("10.0.0.0/16");
        let b = cidr("10.0.1.0/24");
        let c = cidr("10.1.0.0/16");
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        assert!(cidr("0.0.0.0/0").overlaps(&c));
    }
}
