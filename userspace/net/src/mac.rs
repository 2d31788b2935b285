//! `MacAddr`: a 48-bit Ethernet address and the bits the switch cares about.
//!
//! Invariant: a plain 6-byte value; parsing accepts only the canonical
//! `aa:bb:cc:dd:ee:ff` form (either case) so persisted leases read back
//! exactly.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Group bit (IEEE 802 I/G): set for multicast and broadcast.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    pub const fn is_zero(&self) -> bool {
        matches!(self.0, [0, 0, 0, 0, 0, 0])
    }

    /// The one way ethergate derives a MAC from a name: a stable, locally
    /// administered unicast address from `seed` (a hub's name, say), so
    /// the hub's tap and its DHCP server use the same address and it
    /// survives restarts (VPN clients' ARP caches stay valid). FNV-1a,
    /// spelled out rather than taken from `std::hash` (whose output may
    /// change between Rust releases): stability matters, not secrecy.
    pub const fn local_from_seed(seed: &[u8]) -> MacAddr {
        const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = FNV_OFFSET;
        let mut i = 0;
        while i < seed.len() {
            hash = (hash ^ seed[i] as u64).wrapping_mul(FNV_PRIME);
            i += 1;
        }
        let b = hash.to_be_bytes();
        // IEEE 802 first octet: bit 0 clear = unicast, bit 1 set = locally
        // administered, so it can never collide with a vendor's address.
        MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }

    /// Reads the first six bytes of `bytes`; `None` if shorter.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        let b: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(b))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address like 02:00:5e:10:00:01")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let m = MacAddr([0x02, 0xab, 0, 1, 0xfe, 0xff]);
        assert_eq!(m.to_string(), "02:ab:00:01:fe:ff");
        assert_eq!("02:AB:00:01:fe:ff".parse::<MacAddr>(), Ok(m));
        for bad in [
            "02:ab:00:01:fe",
            "02:ab:00:01:fe:ff:00",
            "2:ab:00:01:fe:ff",
            "+2:ab:00:01:fe:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn derived_mac_is_local_unicast_and_stable() {
        let a = MacAddr::local_from_seed(b"mikalab");
        assert_eq!(a, MacAddr::local_from_seed(b"mikalab"));
        assert_ne!(a, MacAddr::local_from_seed(b"other"));
        assert_eq!(
            a.0[0] & 0x03,
            0x02,
            "{a} must be locally administered unicast"
        );
        // Pinned: a changed derivation would change every deployed tap's MAC.
        assert_eq!(a.to_string(), "c2:80:1d:a6:87:ca");
    }
}
