//! The datagram an ICMP error quotes (RFC 792): where it sits and its
//! first bytes, shared by the uplink's SNAT reverse (`icmp_error`) and the
//! tap's DNAT restore (`tap_icmp`). Reads only, through [`PacketBytes`]
//! header-sized reads (decision 0001), so it serves XDP and tc frames alike.

use ethergate_common::parse::{ETH_HEADER_LEN, PacketBytes};

const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// ICMP header (type, code, checksum, 4 bytes of type-specific data)
/// before the embedded datagram.
pub const ICMP_ERROR_HEADER_LEN: usize = 8;
pub const INNER_IP_LEN: usize = 20;
/// RFC 792: an error carries at least the embedded IP header and the first
/// 8 bytes of its payload — ports, or the echo identifier.
pub const INNER_L4_LEN: usize = 8;

/// True for the ICMP types that embed the datagram they are about.
#[inline(always)]
pub fn is_error<F: PacketBytes>(frame: &F, l4: usize) -> bool {
    match frame.header::<2>(l4) {
        Some(&[kind, _]) => matches!(
            kind,
            ICMP_DEST_UNREACHABLE | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM
        ),
        None => false,
    }
}

/// The quoted datagram of the error whose ICMP header is at `l4`.
pub struct Quote {
    /// Its IP header (no options), and its first 8 L4 bytes.
    pub ip: [u8; INNER_IP_LEN],
    pub l4: [u8; INNER_L4_LEN],
    /// Frame offset of its L4 part.
    pub l4_at: usize,
    /// Where the outer datagram ends (by its IP total length).
    pub outer_end: usize,
}

impl Quote {
    /// Embedded source and destination addresses.
    #[inline(always)]
    pub fn addrs(&self) -> (u32, u32) {
        let ip = &self.ip;
        (
            u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
            u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]),
        )
    }
}

/// The quote, if the outer datagram (IP header `ip`) holds at least its IP
/// header and 8 L4 bytes and that header has no options. Options would
/// move its L4 part; errors about such datagrams are rare enough to leave
/// to the kernel.
#[inline(always)]
pub fn quote<F: PacketBytes>(frame: &F, ip: &[u8; 20], l4: usize) -> Option<Quote> {
    let outer_end = ETH_HEADER_LEN + u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let ip_at = l4 + ICMP_ERROR_HEADER_LEN;
    let l4_at = ip_at + INNER_IP_LEN;
    if l4_at + INNER_L4_LEN > outer_end {
        return None;
    }
    let inner = *frame.header::<INNER_IP_LEN>(ip_at)?;
    if inner[0] != 0x45 {
        return None;
    }
    let ports = *frame.header::<INNER_L4_LEN>(l4_at)?;
    Some(Quote {
        ip: inner,
        l4: ports,
        l4_at,
        outer_end,
    })
}
