//! Frame classifier: Ethernet, up to two VLAN tags, ARP, IPv4, IPv6 with
//! extension headers, and the first bytes of TCP / UDP / ICMP.
//!
//! Invariant: every read goes through [`PacketBytes`], which returns `None`
//! past the end of the frame, so no input can make the classifier read out of
//! bounds; and every loop has a constant bound, so the eBPF verifier accepts
//! it. L4 headers are checked against the end the IP header declares, not the
//! end of the frame, because Ethernet pads short frames to 60 bytes and that
//! padding is not a transport header.

use crate::counters::{ParseIssue, ProtoClass};

/// Stacked 802.1Q / 802.1ad tags we walk through (QinQ is two).
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers we walk before giving up; real traffic rarely has
/// more than two (hop-by-hop + fragment), and a bound keeps the verifier happy.
pub const MAX_IPV6_EXTENSIONS: usize = 6;

pub const ETH_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ARP_IPV4_LEN: usize = 28;
const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_MIN_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// ICMPv4: type, code, checksum and the 4-byte rest-of-header (RFC 792).
const ICMP4_HEADER_LEN: usize = 8;
/// ICMPv6: type, code, checksum (RFC 4443 §2.1); the body depends on type.
const ICMP6_HEADER_LEN: usize = 4;
const IPV6_FRAGMENT_HEADER_LEN: usize = 8;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still emitted by some switches.
const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

/// Read access to a frame. Implemented over `XdpContext` in the eBPF program
/// and over `&[u8]` for host tests; both return `None` past the end.
///
/// Reads are whole headers (`header::<N>`), one bounds check each, then
/// fields at constant offsets: the pattern the eBPF verifier follows best.
/// There is deliberately no `len()`: in eBPF a length is a plain scalar, and
/// once LLVM sees `len >= n` it deletes later pointer bounds checks it can
/// prove redundant, which the verifier cannot follow.
pub trait PacketBytes {
    /// True when the frame is at least `len` bytes long.
    fn has_bytes(&self, len: usize) -> bool;
    /// The `N` bytes at `offset`, if the frame has them.
    fn header<const N: usize>(&self, offset: usize) -> Option<&[u8; N]>;
}

/// Stand-in end for an IPv6 jumbogram, whose real length we don't read:
/// the per-read bounds checks still stop at the frame's end.
const UNBOUNDED_END: usize = usize::MAX / 2;

impl PacketBytes for [u8] {
    #[inline(always)]
    fn has_bytes(&self, len: usize) -> bool {
        len <= self.len()
    }

    #[inline(always)]
    fn header<const N: usize>(&self, offset: usize) -> Option<&[u8; N]> {
        self.get(offset..offset.checked_add(N)?)?.try_into().ok()
    }
}

#[inline(always)]
const fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

/// What the classifier found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    pub class: ProtoClass,
    /// Set exactly when `class` is [`ProtoClass::Malformed`].
    pub issue: Option<ParseIssue>,
    /// Offset of the network header (after VLAN tags); 0 when there is none.
    pub l3_offset: usize,
    /// Offset of the transport header; 0 when there is none.
    pub l4_offset: usize,
    /// Number of VLAN tags walked.
    pub vlan_tags: u8,
}

impl Classification {
    #[inline(always)]
    const fn new(class: ProtoClass, l3_offset: usize, l4_offset: usize, vlan_tags: u8) -> Self {
        Self {
            class,
            issue: None,
            l3_offset,
            l4_offset,
            vlan_tags,
        }
    }

    #[inline(always)]
    const fn malformed(issue: ParseIssue, l3_offset: usize, vlan_tags: u8) -> Self {
        Self {
            class: ProtoClass::Malformed,
            issue: Some(issue),
            l3_offset,
            l4_offset: 0,
            vlan_tags,
        }
    }
}

/// Classifies one Ethernet frame. Never fails: problems become
/// [`ProtoClass::Malformed`] with the reason in `issue`.
#[inline(always)]
pub fn classify<P: PacketBytes + ?Sized>(frame: &P) -> Classification {
    let Some(eth) = frame.header::<ETH_HEADER_LEN>(0) else {
        return Classification::malformed(ParseIssue::TruncatedEthernet, 0, 0);
    };
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut l3 = ETH_HEADER_LEN;
    let mut tags: u8 = 0;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan_tpid(ethertype) {
            break;
        }
        // The inner ethertype sits in the last two bytes of the 4-byte tag.
        let Some(tag) = frame.header::<VLAN_TAG_LEN>(l3) else {
            return Classification::malformed(ParseIssue::TruncatedVlan, 0, tags);
        };
        ethertype = be16([tag[2], tag[3]]);
        l3 += VLAN_TAG_LEN;
        tags += 1;
    }
    if is_vlan_tpid(ethertype) {
        return Classification::malformed(ParseIssue::TooManyVlanTags, 0, tags);
    }
    match ethertype {
        ETHERTYPE_IPV4 => classify_ipv4(frame, l3, tags),
        ETHERTYPE_IPV6 => classify_ipv6(frame, l3, tags),
        ETHERTYPE_ARP => {
            if frame.header::<ARP_IPV4_LEN>(l3).is_none() {
                Classification::malformed(ParseIssue::TruncatedArp, l3, tags)
            } else {
                Classification::new(ProtoClass::Arp, l3, 0, tags)
            }
        }
        _ => Classification::new(ProtoClass::NonIp, 0, 0, tags),
    }
}

#[inline(always)]
const fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY
    )
}

#[inline(always)]
fn classify_ipv4<P: PacketBytes + ?Sized>(frame: &P, l3: usize, tags: u8) -> Classification {
    let Some(ip) = frame.header::<IPV4_MIN_HEADER_LEN>(l3) else {
        return Classification::malformed(ParseIssue::TruncatedIpv4, l3, tags);
    };
    let version_ihl = ip[0];
    let total_len = be16([ip[2], ip[3]]);
    let frag = be16([ip[6], ip[7]]);
    let proto = ip[9];
    let header_len = ((version_ihl & 0x0f) as usize) * 4;
    let total_len = total_len as usize;
    if version_ihl >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN || total_len < header_len {
        return Classification::malformed(ParseIssue::BadIpv4Header, l3, tags);
    }
    let end = l3 + total_len;
    if !frame.has_bytes(end) {
        return Classification::malformed(ParseIssue::TruncatedIpv4, l3, tags);
    }
    // Fragment offset (low 13 bits) non-zero: a later fragment, no L4 header.
    if frag & 0x1fff != 0 {
        return Classification::new(ProtoClass::Ipv4Fragment, l3, 0, tags);
    }
    let l4 = l3 + header_len;
    match proto {
        IPPROTO_TCP => classify_tcp(frame, l3, l4, end, ProtoClass::Tcp4, tags),
        IPPROTO_UDP => classify_fixed(
            frame,
            l3,
            l4,
            end,
            UDP_HEADER_LEN,
            ProtoClass::Udp4,
            ParseIssue::TruncatedUdp,
            tags,
        ),
        IPPROTO_ICMP => classify_fixed(
            frame,
            l3,
            l4,
            end,
            ICMP4_HEADER_LEN,
            ProtoClass::Icmp4,
            ParseIssue::TruncatedIcmp,
            tags,
        ),
        _ => Classification::new(ProtoClass::Ipv4Other, l3, l4, tags),
    }
}

#[inline(always)]
fn classify_ipv6<P: PacketBytes + ?Sized>(frame: &P, l3: usize, tags: u8) -> Classification {
    let Some(ip) = frame.header::<IPV6_HEADER_LEN>(l3) else {
        return Classification::malformed(ParseIssue::TruncatedIpv6, l3, tags);
    };
    let version = ip[0];
    let payload_len = be16([ip[4], ip[5]]);
    let first_next = ip[6];
    if version >> 4 != 6 {
        return Classification::malformed(ParseIssue::BadIpv6Header, l3, tags);
    }
    // Payload length 0 means a jumbogram (RFC 2675); its real length is in a
    // hop-by-hop option we don't read, so bound by the frame instead.
    let end = if payload_len == 0 {
        UNBOUNDED_END
    } else {
        l3 + IPV6_HEADER_LEN + payload_len as usize
    };
    if payload_len != 0 && !frame.has_bytes(end) {
        return Classification::malformed(ParseIssue::TruncatedIpv6, l3, tags);
    }
    let mut next = first_next;
    let mut off = l3 + IPV6_HEADER_LEN;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                let Some(&[n, len_field]) = frame.header::<2>(off) else {
                    return Classification::malformed(ParseIssue::TruncatedIpv6Extension, l3, tags);
                };
                // RFC 8200 §4.3: length in 8-octet units, not counting the
                // first 8; AH (RFC 4302 §2.2) counts 4-octet units minus 2.
                let len = if next == IPPROTO_AH {
                    (len_field as usize + 2) * 4
                } else {
                    (len_field as usize + 1) * 8
                };
                if off + len > end {
                    return Classification::malformed(ParseIssue::TruncatedIpv6Extension, l3, tags);
                }
                next = n;
                off += len;
            }
            IPPROTO_FRAGMENT => {
                let Some(fragment) = frame.header::<IPV6_FRAGMENT_HEADER_LEN>(off) else {
                    return Classification::malformed(ParseIssue::TruncatedIpv6Extension, l3, tags);
                };
                let n = fragment[0];
                let offset_flags = be16([fragment[2], fragment[3]]);
                if off + IPV6_FRAGMENT_HEADER_LEN > end {
                    return Classification::malformed(ParseIssue::TruncatedIpv6Extension, l3, tags);
                }
                if offset_flags >> 3 != 0 {
                    return Classification::new(ProtoClass::Ipv6Fragment, l3, 0, tags);
                }
                next = n;
                off += IPV6_FRAGMENT_HEADER_LEN;
            }
            _ => return classify_ipv6_l4(frame, l3, off, end, next, tags),
        }
    }
    match next {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT => {
            Classification::malformed(ParseIssue::TooManyIpv6Extensions, l3, tags)
        }
        _ => classify_ipv6_l4(frame, l3, off, end, next, tags),
    }
}

#[inline(always)]
fn classify_ipv6_l4<P: PacketBytes + ?Sized>(
    frame: &P,
    l3: usize,
    l4: usize,
    end: usize,
    next: u8,
    tags: u8,
) -> Classification {
    match next {
        IPPROTO_TCP => classify_tcp(frame, l3, l4, end, ProtoClass::Tcp6, tags),
        IPPROTO_UDP => classify_fixed(
            frame,
            l3,
            l4,
            end,
            UDP_HEADER_LEN,
            ProtoClass::Udp6,
            ParseIssue::TruncatedUdp,
            tags,
        ),
        IPPROTO_ICMPV6 => classify_fixed(
            frame,
            l3,
            l4,
            end,
            ICMP6_HEADER_LEN,
            ProtoClass::Icmp6,
            ParseIssue::TruncatedIcmp,
            tags,
        ),
        _ => Classification::new(ProtoClass::Ipv6Other, l3, l4, tags),
    }
}

#[inline(always)]
fn classify_tcp<P: PacketBytes + ?Sized>(
    frame: &P,
    l3: usize,
    l4: usize,
    end: usize,
    class: ProtoClass,
    tags: u8,
) -> Classification {
    if l4 + TCP_MIN_HEADER_LEN > end {
        return Classification::malformed(ParseIssue::TruncatedTcp, l3, tags);
    }
    let Some(tcp) = frame.header::<TCP_MIN_HEADER_LEN>(l4) else {
        return Classification::malformed(ParseIssue::TruncatedTcp, l3, tags);
    };
    let data_offset = tcp[12];
    let header_len = ((data_offset >> 4) as usize) * 4;
    if header_len < TCP_MIN_HEADER_LEN {
        return Classification::malformed(ParseIssue::BadTcpHeader, l3, tags);
    }
    if l4 + header_len > end {
        return Classification::malformed(ParseIssue::TruncatedTcp, l3, tags);
    }
    Classification::new(class, l3, l4, tags)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn classify_fixed<P: PacketBytes + ?Sized>(
    frame: &P,
    l3: usize,
    l4: usize,
    end: usize,
    header_len: usize,
    class: ProtoClass,
    issue: ParseIssue,
    tags: u8,
) -> Classification {
    if l4 + header_len > end || !frame.has_bytes(l4 + header_len) {
        return Classification::malformed(issue, l3, tags);
    }
    Classification::new(class, l3, l4, tags)
}
