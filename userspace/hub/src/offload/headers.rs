//! Where the IP and TCP headers of an untagged Ethernet frame are, checked
//! against the frame's length. Only what offload needs: IPv4 without
//! fragmentation, IPv6 without extension headers, TCP.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;

pub const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
pub const IPPROTO_TCP: u8 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Ip {
    pub fn pseudo_sum(&self, tcp_len: usize) -> u64 {
        match *self {
            Ip::V4 { src, dst } => checksum::pseudo_v4(src, dst, IPPROTO_TCP, tcp_len),
            Ip::V6 { src, dst } => checksum::pseudo_v6(src, dst, IPPROTO_TCP, tcp_len),
        }
    }
}

/// A TCP/IP frame's layout: offsets into the frame and the fields offload
/// reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrame {
    pub ip: Ip,
    /// Offset of the IP header (after Ethernet and at most one VLAN tag).
    pub ip_at: usize,
    /// Offset of the TCP header (Ethernet, VLAN tag and IP header lengths).
    pub tcp_at: usize,
    pub tcp_header_len: usize,
    /// Where the IP packet ends (IP length, not the frame's: short frames
    /// carry Ethernet padding).
    pub end: usize,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

impl TcpFrame {
    pub fn payload_at(&self) -> usize {
        self.tcp_at + self.tcp_header_len
    }

    pub fn payload_len(&self) -> usize {
        self.end - self.payload_at()
    }

    pub fn is_v4(&self) -> bool {
        matches!(self.ip, Ip::V4 { .. })
    }

    /// Whether `frame`'s IPv4 header checksum (for IPv4) and TCP checksum
    /// are right.
    pub fn checksums_valid(&self, frame: &[u8]) -> bool {
        let ip_ok = !self.is_v4()
            || checksum::fold(checksum::sum(&frame[ETH_LEN..self.tcp_at], 0)) == 0xffff;
        let tcp_len = self.end - self.tcp_at;
        ip_ok
            && checksum::fold(checksum::sum(
                &frame[self.tcp_at..self.end],
                self.ip.pseudo_sum(tcp_len),
            )) == 0xffff
    }

    /// The IPv4 identification of `frame` (the frame this was parsed
    /// from); 0 for IPv6, which has none.
    pub fn ip_id(&self, frame: &[u8]) -> u16 {
        match (self.is_v4(), frame.get(self.ip_at + 4..self.ip_at + 6)) {
            (true, Some(id)) => u16::from_be_bytes([id[0], id[1]]),
            _ => 0,
        }
    }
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    let b = frame.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(frame: &[u8], at: usize) -> Option<u32> {
    let b = frame.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses `frame` as Ethernet (+ one VLAN tag) + IPv4 (no options needed, but allowed; not
/// a fragment) or IPv6 (next header TCP) + TCP. `None` for anything else
/// or anything inconsistent with the frame's length.
pub fn parse_tcp(frame: &[u8]) -> Option<TcpFrame> {
    // One 802.1Q/802.1ad tag is allowed: tun inserts the tag of an skb
    // sent over a VLAN on the tap into the frame it hands us.
    let (ip_at, ethertype) = match frame.get(12..14)? {
        [0x81, 0x00] | [0x88, 0xa8] => (ETH_LEN + 4, frame.get(16..18)?),
        ethertype => (ETH_LEN, ethertype),
    };
    let (ip, tcp_at, end) = if ethertype == ETHERTYPE_IPV4 {
        let v = *frame.get(ip_at)?;
        let ihl = usize::from(v & 0x0f) * 4;
        if v >> 4 != 4 || ihl < 20 {
            return None;
        }
        let total = usize::from(be16(frame, ip_at + 2)?);
        let frag = be16(frame, ip_at + 6)?;
        // MF set or a non-zero offset: a fragment, never segmented or merged.
        if frag & 0x3fff != 0 || *frame.get(ip_at + 9)? != IPPROTO_TCP {
            return None;
        }
        let src = Ipv4Addr::from(be32(frame, ip_at + 12)?);
        let dst = Ipv4Addr::from(be32(frame, ip_at + 16)?);
        (Ip::V4 { src, dst }, ip_at + ihl, ip_at + total)
    } else if ethertype == ETHERTYPE_IPV6 {
        if *frame.get(ip_at)? >> 4 != 6 || *frame.get(ip_at + 6)? != IPPROTO_TCP {
            return None;
        }
        let payload = usize::from(be16(frame, ip_at + 4)?);
        let addr = |at: usize| -> Option<Ipv6Addr> {
            let b: [u8; 16] = frame.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(b))
        };
        let src = addr(ip_at + 8)?;
        let dst = addr(ip_at + 24)?;
        (Ip::V6 { src, dst }, ip_at + 40, ip_at + 40 + payload)
    } else {
        return None;
    };
    let tcp_header_len = usize::from(*frame.get(tcp_at + 12)? >> 4) * 4;
    if tcp_header_len < 20 || end > frame.len() || tcp_at + tcp_header_len > end {
        return None;
    }
    Some(TcpFrame {
        ip,
        ip_at,
        tcp_at,
        tcp_header_len,
        end,
        seq: be32(frame, tcp_at + 4)?,
        ack: be32(frame, tcp_at + 8)?,
        flags: *frame.get(tcp_at + 13)?,
    })
}
