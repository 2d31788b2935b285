//! DNAT (port forward) rule and flow types, shared by the tap programs and
//! the userspace loader.
//!
//! Rules live in an LPM trie keyed by (protocol, destination port, source
//! prefix): one lookup finds the most specific rule for a packet, however
//! many rules there are. The key's first 32 bits (protocol, a zero byte,
//! the port) are always matched exactly, so the trie's prefix length is
//! `32 + source prefix length`.
//!
//! Flow state is a pair of LRU hash maps like SNAT's, with [`crate::FlowKey`]
//! keys and [`crate::NatBinding`] values:
//! * `DNAT_OUT`: the tuple the VPN client sends → the (address, port) the
//!   destination is rewritten to;
//! * `DNAT_IN`: the tuple the server answers with (server → client) → the
//!   original destination, which is restored as the reply's *source*.

/// Bits of a DNAT rule key that are always matched exactly: protocol (8),
/// a zero byte (8) and the destination port (16).
pub const DNAT_KEY_FIXED_BITS: u32 = 32;

/// Data of a `DNAT_RULES` trie key: protocol, 0, destination port (network
/// order), source address (network order).
#[inline(always)]
pub const fn dnat_rule_key(protocol: u8, port: u16, source: u32) -> [u8; 8] {
    let p = port.to_be_bytes();
    let s = source.to_be_bytes();
    [protocol, 0, p[0], p[1], s[0], s[1], s[2], s[3]]
}

/// `DNAT_RULES` value: what a matching packet's destination becomes, and
/// the original destination it must have (`iptables -d`; 0/0 = any).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnatTarget {
    /// Original destination network and mask, as numbers
    /// (`u32::from_be_bytes`); a packet matches when
    /// `dst & dst_mask == dst_network`.
    pub dst_network: u32,
    pub dst_mask: u32,
    /// The translated destination.
    pub to_addr: u32,
    pub to_port: u16,
    pub pad: u16,
}

const _: () = assert!(core::mem::size_of::<DnatTarget>() == 16);

impl DnatTarget {
    #[inline(always)]
    pub const fn matches_destination(&self, dst: u32) -> bool {
        dst & self.dst_mask == self.dst_network
    }
}

// SAFETY: repr(C), no implicit padding (explicit `pad`, size asserted), and
// every bit pattern is a valid value.
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for DnatTarget {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_is_protocol_zero_port_source() {
        assert_eq!(
            dnat_rule_key(6, 80, 0xc0a8_0000),
            [6, 0, 0, 80, 192, 168, 0, 0]
        );
    }

    #[test]
    fn destination_match_uses_the_mask() {
        let any = DnatTarget::default();
        assert!(any.matches_destination(0x0a00_0001));
        let one = DnatTarget {
            dst_network: 0xc0a8_1e01,
            dst_mask: 0xffff_ffff,
            ..DnatTarget::default()
        };
        assert!(one.matches_destination(0xc0a8_1e01));
        assert!(!one.matches_destination(0xc0a8_1e02));
    }
}
