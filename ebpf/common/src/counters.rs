//! Counter indices and values for the per-CPU counter maps.
//!
//! The `COUNTERS` map is a per-CPU array of [`PacketCounter`] with one slot per
//! (protocol class, verdict) pair, laid out by [`counter_index`]. The
//! `PARSE_ISSUES` map is a per-CPU array of `u64` with one slot per
//! [`ParseIssue`]. Both enums are dense, start at 0 and end just below their
//! `COUNT`, so every valid value is a valid array index.

crate::counter_enum! {
    /// The deepest protocol layer the classifier understood in a frame.
    pub enum ProtoClass {
        /// An ethertype we do not parse (LLDP, MPLS, ...).
        NonIp = 0 => "non_ip",
        Arp = 1 => "arp",
        /// IPv4 carrying something other than TCP, UDP or ICMP (GRE, ESP, ...).
        Ipv4Other = 2 => "ipv4_other",
        /// IPv4 non-first fragment: there is no L4 header to classify.
        Ipv4Fragment = 3 => "ipv4_fragment",
        Tcp4 = 4 => "tcp4",
        Udp4 = 5 => "udp4",
        Icmp4 = 6 => "icmp4",
        Ipv6Other = 7 => "ipv6_other",
        /// IPv6 non-first fragment.
        Ipv6Fragment = 8 => "ipv6_fragment",
        Tcp6 = 9 => "tcp6",
        Udp6 = 10 => "udp6",
        Icmp6 = 11 => "icmp6",
        /// A header was cut short or inconsistent; see the matching [`ParseIssue`].
        Malformed = 12 => "malformed",
    }
}

crate::counter_enum! {
    /// What a program decided for a frame. Mirrors the XDP actions.
    pub enum Verdict {
        Aborted = 0 => "aborted",
        Drop = 1 => "drop",
        Pass = 2 => "pass",
        Tx = 3 => "tx",
        Redirect = 4 => "redirect",
    }
}

impl Verdict {
    /// The XDP action code (`enum xdp_action` in the kernel's uapi), which
    /// is also this enum's discriminant.
    pub const fn xdp_action(self) -> u32 {
        self as u32
    }
}

crate::counter_enum! {
    /// Why the classifier stopped early. A frame with an issue is still handed
    /// to the kernel (which applies its own checks and counters); the issue is
    /// counted so an operator sees malformed traffic hitting the uplink.
    pub enum ParseIssue {
        TruncatedEthernet = 0 => "truncated_ethernet",
        TruncatedVlan = 1 => "truncated_vlan",
        /// More than [`crate::parse::MAX_VLAN_TAGS`] stacked tags.
        TooManyVlanTags = 2 => "too_many_vlan_tags",
        TruncatedArp = 3 => "truncated_arp",
        TruncatedIpv4 = 4 => "truncated_ipv4",
        /// IHL below 5 words, or a version field that is not 4.
        BadIpv4Header = 5 => "bad_ipv4_header",
        TruncatedIpv6 = 6 => "truncated_ipv6",
        /// A version field that is not 6.
        BadIpv6Header = 7 => "bad_ipv6_header",
        TruncatedIpv6Extension = 8 => "truncated_ipv6_extension",
        /// More than [`crate::parse::MAX_IPV6_EXTENSIONS`] extension headers.
        TooManyIpv6Extensions = 9 => "too_many_ipv6_extensions",
        TruncatedTcp = 10 => "truncated_tcp",
        /// TCP data offset below 5 words.
        BadTcpHeader = 11 => "bad_tcp_header",
        TruncatedUdp = 12 => "truncated_udp",
        TruncatedIcmp = 13 => "truncated_icmp",
    }
}

/// Number of slots in the `COUNTERS` map.
pub const COUNTER_SLOTS: u32 = ProtoClass::COUNT * Verdict::COUNT;

/// Slot of `(class, verdict)` in the `COUNTERS` map; always `< COUNTER_SLOTS`.
#[inline(always)]
pub const fn counter_index(class: ProtoClass, verdict: Verdict) -> u32 {
    class as u32 * Verdict::COUNT + verdict as u32
}

/// One per-CPU counter slot: frames and bytes (L2 length as the program saw
/// it, without FCS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounter {
    pub packets: u64,
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<PacketCounter>() == 16);
const _: () = assert!(core::mem::align_of::<PacketCounter>() == 8);

// SAFETY: PacketCounter is repr(C), has no padding (two u64s, size asserted
// above) and every bit pattern is a valid value.
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for PacketCounter {}
