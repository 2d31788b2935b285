//! Counter indices and values for the per-CPU counter maps.
//!
//! The `COUNTERS` map is a per-CPU array of [`PacketCounter`] with one slot per
//! (protocol class, verdict) pair, laid out by [`counter_index`]. The
//! `PARSE_ISSUES` map is a per-CPU array of `u64` with one slot per
//! [`ParseIssue`]. Both enums are dense, start at 0 and end just below their
//! `COUNT`, so every valid value is a valid array index.

/// The deepest protocol layer the classifier understood in a frame.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtoClass {
    /// An ethertype we do not parse (LLDP, MPLS, ...).
    NonIp = 0,
    Arp = 1,
    /// IPv4 carrying something other than TCP, UDP or ICMP (GRE, ESP, ...).
    Ipv4Other = 2,
    /// IPv4 non-first fragment: there is no L4 header to classify.
    Ipv4Fragment = 3,
    Tcp4 = 4,
    Udp4 = 5,
    Icmp4 = 6,
    Ipv6Other = 7,
    /// IPv6 non-first fragment.
    Ipv6Fragment = 8,
    Tcp6 = 9,
    Udp6 = 10,
    Icmp6 = 11,
    /// A header was cut short or inconsistent; see the matching [`ParseIssue`].
    Malformed = 12,
}

impl ProtoClass {
    pub const COUNT: u32 = 13;

    pub const ALL: [ProtoClass; Self::COUNT as usize] = [
        Self::NonIp,
        Self::Arp,
        Self::Ipv4Other,
        Self::Ipv4Fragment,
        Self::Tcp4,
        Self::Udp4,
        Self::Icmp4,
        Self::Ipv6Other,
        Self::Ipv6Fragment,
        Self::Tcp6,
        Self::Udp6,
        Self::Icmp6,
        Self::Malformed,
    ];

    /// Stable, metric-friendly name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NonIp => "non_ip",
            Self::Arp => "arp",
            Self::Ipv4Other => "ipv4_other",
            Self::Ipv4Fragment => "ipv4_fragment",
            Self::Tcp4 => "tcp4",
            Self::Udp4 => "udp4",
            Self::Icmp4 => "icmp4",
            Self::Ipv6Other => "ipv6_other",
            Self::Ipv6Fragment => "ipv6_fragment",
            Self::Tcp6 => "tcp6",
            Self::Udp6 => "udp6",
            Self::Icmp6 => "icmp6",
            Self::Malformed => "malformed",
        }
    }
}

/// What a program decided for a frame. Mirrors the XDP actions.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    Tx = 3,
    Redirect = 4,
}

impl Verdict {
    pub const COUNT: u32 = 5;

    pub const ALL: [Verdict; Self::COUNT as usize] = [
        Self::Aborted,
        Self::Drop,
        Self::Pass,
        Self::Tx,
        Self::Redirect,
    ];

    /// The XDP action code (`enum xdp_action` in the kernel's uapi), which
    /// is also this enum's discriminant.
    pub const fn xdp_action(self) -> u32 {
        self as u32
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Aborted => "aborted",
            Self::Drop => "drop",
            Self::Pass => "pass",
            Self::Tx => "tx",
            Self::Redirect => "redirect",
        }
    }
}

/// Why the classifier stopped early. A frame with an issue is still handed
/// to the kernel (which applies its own checks and counters); the issue is
/// counted so an operator sees malformed traffic hitting the uplink.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParseIssue {
    TruncatedEthernet = 0,
    TruncatedVlan = 1,
    /// More than [`crate::parse::MAX_VLAN_TAGS`] stacked tags.
    TooManyVlanTags = 2,
    TruncatedArp = 3,
    TruncatedIpv4 = 4,
    /// IHL below 5 words, or a version field that is not 4.
    BadIpv4Header = 5,
    TruncatedIpv6 = 6,
    /// A version field that is not 6.
    BadIpv6Header = 7,
    TruncatedIpv6Extension = 8,
    /// More than [`crate::parse::MAX_IPV6_EXTENSIONS`] extension headers.
    TooManyIpv6Extensions = 9,
    TruncatedTcp = 10,
    /// TCP data offset below 5 words.
    BadTcpHeader = 11,
    TruncatedUdp = 12,
    TruncatedIcmp = 13,
}

impl ParseIssue {
    pub const COUNT: u32 = 14;

    pub const ALL: [ParseIssue; Self::COUNT as usize] = [
        Self::TruncatedEthernet,
        Self::TruncatedVlan,
        Self::TooManyVlanTags,
        Self::TruncatedArp,
        Self::TruncatedIpv4,
        Self::BadIpv4Header,
        Self::TruncatedIpv6,
        Self::BadIpv6Header,
        Self::TruncatedIpv6Extension,
        Self::TooManyIpv6Extensions,
        Self::TruncatedTcp,
        Self::BadTcpHeader,
        Self::TruncatedUdp,
        Self::TruncatedIcmp,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::TruncatedEthernet => "truncated_ethernet",
            Self::TruncatedVlan => "truncated_vlan",
            Self::TooManyVlanTags => "too_many_vlan_tags",
            Self::TruncatedArp => "truncated_arp",
            Self::TruncatedIpv4 => "truncated_ipv4",
            Self::BadIpv4Header => "bad_ipv4_header",
            Self::TruncatedIpv6 => "truncated_ipv6",
            Self::BadIpv6Header => "bad_ipv6_header",
            Self::TruncatedIpv6Extension => "truncated_ipv6_extension",
            Self::TooManyIpv6Extensions => "too_many_ipv6_extensions",
            Self::TruncatedTcp => "truncated_tcp",
            Self::BadTcpHeader => "bad_tcp_header",
            Self::TruncatedUdp => "truncated_udp",
            Self::TruncatedIcmp => "truncated_icmp",
        }
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
