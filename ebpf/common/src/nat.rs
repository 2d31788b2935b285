//! NAT map keys, values and counter slots, shared by the XDP programs and the
//! userspace loader.
//!
//! Flow state is two hash maps that always hold a flow as a *pair*:
//! * `NAT_OUT`: key = the tuple a private host sends (private source,
//!   remote destination) → value = the public (address, port) it is
//!   rewritten to;
//! * `NAT_IN`: key = the tuple the remote side sends back (remote source,
//!   public destination) → value = the private (address, port) to restore.
//!
//! Invariant: addresses and ports in keys and values are *numbers*
//! (`u32::from_be_bytes` of the wire bytes), so userspace prints them with
//! `Ipv4Addr::from(u32)` and both sides agree without byte-order games.
//! ICMP echo uses the identifier as the port of the side that chose it:
//! requests are keyed `(src_port = id, dst_port = 0)`, replies
//! `(src_port = 0, dst_port = id)`.

/// TCP flag bits as they sit in byte 13 of the TCP header (RFC 9293 §3.1).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Flow pairs the table holds when `[nat.limits] max_flows` does not say:
/// 2^18, several times the AWS NAT gateway's 55,000 connections per
/// destination, at a map size that preallocates comfortably. The one
/// definition: config, data plane and programs all use this.
pub const DEFAULT_MAX_FLOWS: u32 = 262_144;

/// Random ports tried for a new flow before it counts as exhausted. With
/// 64,512 ports per (public address, remote address, remote port,
/// protocol), N uniform probes fail with probability fill^N; 256 probes:
/// 0.0002 % at 95 % fill, 7.6 % at 99 % (64 probes: 3.8 % and 53 %). Only
/// new flows probe, and only a nearly full tuple needs many; the probes
/// run in `bpf_loop`, so their number does not weigh on the verifier.
pub const MAX_PORT_PROBES: u32 = 256;

/// Public addresses one SNAT rule can spread flows over.
pub const MAX_SNAT_ADDRESSES: usize = 8;

/// One direction of a flow, as it appears on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src_addr: u32,
    pub dst_addr: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number (6, 17, 1).
    pub protocol: u8,
    /// Always zero: hash keys compare every byte, padding included.
    /// Two scalars, not `[u8; 3]`: the BPF build turns an array's zeroing
    /// into a call of the byte-wise `memset` subprogram, on every packet.
    pub pad_byte: u8,
    pub pad_half: u16,
}

impl FlowKey {
    #[inline(always)]
    pub const fn new(
        protocol: u8,
        src_addr: u32,
        src_port: u16,
        dst_addr: u32,
        dst_port: u16,
    ) -> Self {
        Self {
            src_addr,
            dst_addr,
            src_port,
            dst_port,
            protocol,
            pad_byte: 0,
            pad_half: 0,
        }
    }
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 16);
const _: () = assert!(core::mem::align_of::<FlowKey>() == 4);

/// Where one direction of a flow is rewritten to, and when it was last used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatBinding {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the last packet in this
    /// direction; the userspace sweeper expires idle pairs.
    pub last_seen_ns: u64,
    /// In `NAT_OUT`: the public address; in `NAT_IN`: the private address.
    pub addr: u32,
    pub port: u16,
    /// Union of the TCP flags seen in this direction (0 for UDP/ICMP);
    /// decides between the established and the transitory timeout.
    pub tcp_flags: u8,
    pub pad: u8,
}

const _: () = assert!(core::mem::size_of::<NatBinding>() == 16);
const _: () = assert!(core::mem::align_of::<NatBinding>() == 8);

/// `SNAT_RULES` value (an LPM trie keyed by private source prefix): the
/// public addresses a matching source is translated to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnatAddresses {
    /// Valid entries at the front of `addrs`, 1..=[`MAX_SNAT_ADDRESSES`].
    pub count: u32,
    pub addrs: [u32; MAX_SNAT_ADDRESSES],
}

const _: () = assert!(core::mem::size_of::<SnatAddresses>() == 36);

/// `FRAGMENTS` key: one IPv4 datagram as its fragments carry it on the wire
/// (before translation). Only the first fragment holds the ports, so the
/// later ones are matched to its translation by (source, destination,
/// protocol, IP identification), as RFC 791 reassembly does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src_addr: u32,
    pub dst_addr: u32,
    pub id: u16,
    pub protocol: u8,
    /// Which translation the entry belongs to: [`FRAGMENTS_FORWARDED`] (the
    /// ingress NAT paths, XDP and tc) or [`FRAGMENTS_TO_HUB`] (DNAT replies
    /// restored on a hub tap's egress). A datagram crosses both on its way
    /// from a DNAT target to a VPN client, and each must see only its own.
    pub scope: u8,
}

pub const FRAGMENTS_FORWARDED: u8 = 0;
pub const FRAGMENTS_TO_HUB: u8 = 1;

const _: () = assert!(core::mem::size_of::<FragmentKey>() == 12);

/// `FRAGMENTS` value: the address the first fragment's translation wrote,
/// to be written into the later ones too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentRewrite {
    pub new_addr: u32,
    /// [`FRAGMENT_REWRITES_SOURCE`] or [`FRAGMENT_REWRITES_DESTINATION`].
    pub side: u8,
    pub pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<FragmentRewrite>() == 8);

pub const FRAGMENT_REWRITES_SOURCE: u8 = 0;
pub const FRAGMENT_REWRITES_DESTINATION: u8 = 1;

impl FragmentKey {
    #[inline(always)]
    pub const fn new(scope: u8, protocol: u8, src_addr: u32, dst_addr: u32, id: u16) -> Self {
        Self {
            src_addr,
            dst_addr,
            id,
            protocol,
            scope,
        }
    }
}

/// `NAT_CONFIG[0]`: what the programs need to know about the appliance.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// ifindex of the uplink; 0 = NAT off (every frame passes untouched).
    pub uplink_ifindex: u32,
    /// Inclusive range SNAT ports (and ICMP identifiers) are drawn from.
    pub port_min: u16,
    pub port_max: u16,
    /// Which of the two rule-map sets (`*_RULES_0` / `*_RULES_1`) is live.
    /// A reload fills the other set, then flips this one word: a program
    /// run reads it once, so it sees either the old rules or the new ones,
    /// never a mix. Flow maps are not part of a set and survive.
    pub rule_set: u32,
    /// Flows one inside source (a private host, a VPN client) may hold at
    /// once; 0 = no limit. Keeps one host from taking the whole table.
    pub max_flows_per_source: u32,
    /// Idle timeouts in seconds (`[nat.timeouts]`), read by the flows'
    /// expiry timers: TCP established (both sides ACKed, no FIN/RST),
    /// TCP otherwise, UDP, ICMP.
    pub tcp_established_secs: u32,
    pub tcp_transitory_secs: u32,
    pub udp_secs: u32,
    pub icmp_secs: u32,
}

const _: () = assert!(core::mem::size_of::<NatConfig>() == 32);

/// A flow map's value as userspace sees it: the binding, the space of the
/// kernel's expiry timer (`struct bpf_timer`, opaque: the kernel zeroes it
/// in every copy it hands out; only the forward half's timer runs, and it
/// expires the pair), and this half's cached route. 64 bytes: one cache
/// line of value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry {
    pub binding: NatBinding,
    pub timer: [u64; 2],
    pub hop: CachedHop,
}

const _: () = assert!(core::mem::size_of::<FlowEntry>() == 64);

/// Where the XDP path last routed this flow half (a `bpf_fib_lookup`
/// result), so that an established flow's packets skip the lookup: about
/// half of the XDP program's cost when measured. Valid while all of these
/// hold, else the packet is looked up again and the cache rewritten:
/// * `generation` is the current [`ROUTE_GENERATION`](crate) value, which
///   userspace bumps on every route, link, address, rule and next-hop
///   change and every neighbour whose address changed or failed (so a
///   change is followed at once);
/// * `epoch` is the current `now_ns >> ROUTE_EPOCH_SHIFT` (about a second:
///   a change userspace missed — a lost netlink message, a process between
///   stop and start — is followed within two epochs at most);
/// * the packet arrived on `ingress_ifindex` (policy routing by interface);
/// * it is no longer than `max_len`, the longest packet a lookup of this
///   route allowed (the MTU check the lookup does).
///
/// `generation` 0 means empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedHop {
    pub generation: u32,
    pub epoch: u32,
    pub ingress_ifindex: u32,
    pub egress_ifindex: u32,
    pub max_len: u16,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub pad: u16,
}

const _: () = assert!(core::mem::size_of::<CachedHop>() == 32);

/// `now_ns >> ROUTE_EPOCH_SHIFT` is a [`CachedHop`]'s epoch: 2^30 ns,
/// about 1.07 s.
pub const ROUTE_EPOCH_SHIFT: u32 = 30;

/// The timeout a flow gets while no config has been written (all zeros).
pub const DEFAULT_TIMEOUT_SECS: u32 = 300;

/// The idle timeout of a flow whose halves saw `flags_out` / `flags_in`
/// (unions of TCP flags), in seconds. TCP is established only when both
/// sides have ACKed and neither has sent FIN or RST (RFC 5382).
#[inline(always)]
pub fn idle_timeout_secs(config: &NatConfig, protocol: u8, flags_out: u8, flags_in: u8) -> u32 {
    match protocol {
        6 => {
            let both = flags_out | flags_in;
            if both & (TCP_FIN | TCP_RST) == 0
                && flags_out & TCP_ACK != 0
                && flags_in & TCP_ACK != 0
            {
                config.tcp_established_secs
            } else {
                config.tcp_transitory_secs
            }
        }
        1 => config.icmp_secs,
        _ => config.udp_secs,
    }
}

crate::counter_enum! {
    /// Things the NAT path did, one per-CPU `u64` slot each in `NAT_EVENTS`.
    pub enum NatEvent {
        /// A new flow pair was created (public port allocated).
        FlowCreated = 0 => "flow_created",
        /// A private → public packet was rewritten and forwarded.
        TranslatedOut = 1 => "translated_out",
        /// A public → private packet was rewritten and forwarded.
        TranslatedIn = 2 => "translated_in",
        /// IPv4 fragment of a datagram that is not a translated flow (private
        /// to private, to the appliance, an inbound connection): handed to the
        /// kernel untouched.
        FragmentPassed = 3 => "fragment_passed",
        /// TTL would expire here: handed to the kernel, which answers with
        /// ICMP time exceeded.
        TtlPassed = 4 => "ttl_passed",
        /// Matched an SNAT rule but does not leave through the uplink (or the
        /// route lookup said "local" / "unreachable"): handed to the kernel.
        NotRoutedPassed = 5 => "not_routed_passed",
        /// A port probe hit an allocated port (allocator quality: probes per
        /// created flow = 1 + collisions / created).
        PortCollision = 6 => "port_collision",
        /// A new DNAT flow pair was created (a `[[nat.dnat]]` rule matched).
        DnatCreated = 7 => "dnat_created",
        /// A VPN client's packet had its destination rewritten and was
        /// forwarded.
        DnatTranslated = 8 => "dnat_translated",
        /// A reply of a DNAT flow had its source restored on its way into the
        /// hub's tap.
        DnatRestored = 9 => "dnat_restored",
        /// An ICMP error about a translated flow was translated, embedded
        /// header included (RFC 5508 REQ-4).
        IcmpErrorTranslated = 10 => "icmp_error_translated",
        /// Return traffic was translated but the next hop's MAC is unknown:
        /// handed to the kernel, which resolves the neighbour and forwards it.
        /// Safe in this direction: the source is the remote, nothing private
        /// leaks.
        TranslatedInPassed = 11 => "translated_in_passed",
        /// A later fragment of a translated datagram got the first fragment's
        /// address rewrite.
        FragmentTranslated = 12 => "fragment_translated",
        /// XDP could not finish this frame itself (next hop not resolved yet,
        /// or the egress interface runs the tc path) and passed it, untouched,
        /// to the tc program on the same interface, which translates it.
        HandedToTc = 13 => "handed_to_tc",
        /// A flow pair was idle past its timeout and its timer removed it.
        FlowExpired = 14 => "flow_expired",
    }
}

crate::counter_enum! {
    /// Why the NAT path dropped a frame, one per-CPU `u64` slot each in
    /// `NAT_DROPS` (cilium's `drop.h` idea: no silent drops).
    pub enum DropReason {
        /// Every probed public port was taken: the new flow is dropped;
        /// existing flows are untouched.
        PortsExhausted = 0 => "ports_exhausted",
        /// The next hop's MAC is not resolved and no tc program could take the
        /// frame over. Passing it would send it out with its private source.
        /// The XDP programs hand such frames to the tc path instead, so this
        /// stays zero whenever ethergate attached the interface itself.
        NoNeighbour = 1 => "no_neighbour",
        /// Larger than the egress MTU without DF: the kernel would fragment it
        /// untranslated.
        FragmentationNeeded = 2 => "fragmentation_needed",
        /// Another CPU created the same flow at the same instant and its pair
        /// could not be read back.
        FlowRace = 3 => "flow_race",
        /// `bpf_redirect` refused the egress interface.
        RedirectFailed = 4 => "redirect_failed",
        /// The flow table is full: the new flow is dropped; established flows
        /// are never evicted to make room.
        TableFull = 5 => "table_full",
        /// The inside source already holds `max_flows_per_source` flows.
        SourceQuota = 6 => "source_quota",
        /// A later fragment from a source NAT translates whose first fragment
        /// was not seen (lost, reordered, or its entry expired): it cannot be
        /// translated, and untranslated it would leak the private source.
        FragmentUnknown = 7 => "fragment_unknown",
        /// The uplink's egress guard stopped a packet whose source lies in an
        /// SNAT'd subnet and that was not translated (anything the kernel would
        /// otherwise have forwarded with a private source).
        UntranslatedEgress = 8 => "untranslated_egress",
    }
}

// SAFETY (all of them): repr(C), no implicit padding (explicit `pad` fields,
// sizes asserted above), and every bit pattern is a valid value.
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for FlowKey {}
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for NatBinding {}
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for SnatAddresses {}
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for NatConfig {}
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for FragmentKey {}
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for FlowEntry {}
#[cfg(feature = "user")]
#[allow(unsafe_code)]
unsafe impl aya::Pod for FragmentRewrite {}
