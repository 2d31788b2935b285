//! `[nat]`: the uplink, SNAT (masquerade or fixed addresses), DNAT port
//! forwards, flow timeouts and table sizes, for the eBPF data plane.
//!
//! Invariants of a validated [`Nat`]: interface names are valid and
//! distinct, every rule's source/destination is a network (no host bits),
//! no two rules match the same traffic identically, translated-to
//! addresses are unicast, and timeouts and limits lie within the bounds
//! below. Overlapping but different SNAT sources are allowed; the data
//! plane picks the longest prefix, as an LPM trie lookup does.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::diagnostic::Report;
use crate::ifname::InterfaceName;
use crate::reader::{At, OneOrMany, Section};
use ethergate_net::Ipv4Cidr;

/// Established TCP idle timeout. RFC 5382 REQ-5 says a NAT MUST NOT expire
/// an established TCP flow sooner than 2 h 4 min. The AWS NAT gateway uses
/// 350 s, which silently kills idle SSH sessions and database pools; we
/// follow the RFC; the table size (`max_flows`) bounds the memory that
/// costs.
pub const DEFAULT_TCP_ESTABLISHED_SECS: u32 = 7440;
/// Half-open, closing and closed TCP flows: RFC 5382 REQ-5's 4 minutes
/// (2 × MSL), long enough for TIME_WAIT retransmissions.
pub const DEFAULT_TCP_TRANSITORY_SECS: u32 = 240;
/// RFC 4787 REQ-5: UDP mappings MUST last at least 2 min and SHOULD last
/// 5 min; 300 s also covers the AWS NAT gateway's 350 s-ish behaviour for
/// DNS and QUIC clients well enough.
pub const DEFAULT_UDP_SECS: u32 = 300;
/// RFC 5508 REQ-1: ICMP query mappings MUST last at least 60 s.
pub const DEFAULT_ICMP_SECS: u32 = 60;
/// Longest idle timeout accepted: one week. Longer values only keep dead
/// flows pinned in the table.
pub const MAX_TIMEOUT_SECS: u32 = 7 * 24 * 3600;

pub use ethergate_common::nat::DEFAULT_MAX_FLOWS;
/// Below this an ordinary office fills the table.
pub const MIN_MAX_FLOWS: u32 = 1024;
/// 2^24. BPF hash maps preallocate every entry; the cap keeps a typo from
/// asking the kernel for gigabytes.
pub const MAX_MAX_FLOWS: u32 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Protocol {
    Tcp,
    Udp,
}

impl std::fmt::Display for L4Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            L4Protocol::Tcp => "tcp",
            L4Protocol::Udp => "udp",
        })
    }
}

/// What an SNAT rule rewrites the source address to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnatTarget {
    /// The uplink's primary IPv4 address, looked up at run time.
    Masquerade,
    /// Fixed public addresses; flows are spread over them. Never empty.
    Addresses(Vec<Ipv4Addr>),
}

/// `[[nat.snat]]`: egress of a private subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnatRule {
    /// A network (no host bits).
    pub source: Ipv4Cidr,
    pub to: SnatTarget,
}

/// `[[nat.dnat]]`: a port forward, as `iptables -s SOURCE [-d DESTINATION]
/// -p PROTOCOL --dport PORT -j DNAT --to-destination TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnatRule {
    /// A network (no host bits).
    pub source: Ipv4Cidr,
    /// Original destination to match; `0.0.0.0/0` (the default) matches any,
    /// as the recipe's iptables rule did.
    pub destination: Ipv4Cidr,
    pub protocol: L4Protocol,
    pub port: u16,
    pub to: SocketAddrV4,
}

/// `[nat.timeouts]`: idle time after which a flow is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatTimeouts {
    pub tcp_established_secs: u32,
    /// SYN seen but not yet established, or FIN/RST seen.
    pub tcp_transitory_secs: u32,
    pub udp_secs: u32,
    pub icmp_secs: u32,
}

impl Default for NatTimeouts {
    fn default() -> Self {
        Self {
            tcp_established_secs: DEFAULT_TCP_ESTABLISHED_SECS,
            tcp_transitory_secs: DEFAULT_TCP_TRANSITORY_SECS,
            udp_secs: DEFAULT_UDP_SECS,
            icmp_secs: DEFAULT_ICMP_SECS,
        }
    }
}

/// `[nat.limits]`: table sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatLimits {
    /// Capacity of the flow table. When it is full, new flows are refused
    /// (and counted); established flows are never evicted.
    pub max_flows: u32,
    /// Flows one inside source (a private host or VPN client) may hold at
    /// once, so one host cannot take the whole table; 0 = no limit.
    pub max_flows_per_source: u32,
}

/// Unless configured, one source may hold a quarter of the table: a busy
/// host (a crawler, a proxy) gets plenty, and three more such hosts still
/// find room.
pub const fn default_max_flows_per_source(max_flows: u32) -> u32 {
    max_flows / 4
}

impl Default for NatLimits {
    fn default() -> Self {
        Self {
            max_flows: DEFAULT_MAX_FLOWS,
            max_flows_per_source: default_max_flows_per_source(DEFAULT_MAX_FLOWS),
        }
    }
}

/// `[nat] mode`: how the NAT programs attach to the uplink and inside
/// interfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NatMode {
    /// Native XDP on devices whose driver runs it (ENA, virtio-net, mlx5…),
    /// tc on virtual devices (veth) and wherever native XDP is refused.
    #[default]
    Auto,
    /// Native XDP everywhere; an interface that refuses it is an error.
    Xdp,
    /// tc everywhere.
    Tc,
}

impl NatMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::Tc => "tc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat {
    /// Toward the router / outside.
    pub uplink: InterfaceName,
    pub mode: NatMode,
    /// Interfaces facing the private subnet (two-armed). Empty: one-armed,
    /// the uplink does both. Hub taps are always inside and are not listed.
    pub inside: Vec<InterfaceName>,
    pub snat: Vec<SnatRule>,
    pub dnat: Vec<DnatRule>,
    pub timeouts: NatTimeouts,
    pub limits: NatLimits,
}

pub(crate) const NAT_KEYS: &[&str] = &[
    "uplink", "mode", "inside", "snat", "dnat", "timeouts", "limits",
];
const SNAT_KEYS: &[&str] = &["source", "to"];
const DNAT_KEYS: &[&str] = &["source", "destination", "protocol", "port", "to"];
const TIMEOUT_KEYS: &[&str] = &[
    "tcp_established_secs",
    "tcp_transitory_secs",
    "udp_secs",
    "icmp_secs",
];
const LIMIT_KEYS: &[&str] = &["max_flows", "max_flows_per_source"];

/// `[nat]` as read: the validated value if everything was right, and the
/// interface names that were valid (with positions) for the caller's
/// cross-checks against hub bridges, which run even when other parts of
/// `[nat]` are wrong.
pub(crate) struct NatRead {
    pub nat: Option<Nat>,
    pub uplink: Option<(InterfaceName, usize)>,
    pub inside: Vec<(InterfaceName, usize)>,
}

/// A rule as read: `key` is what duplicate detection compares, known even
/// when another field of the rule is wrong.
struct RuleRead<R, K> {
    rule: Option<R>,
    key: Option<K>,
    pos: usize,
}

type DnatKey = (Ipv4Cidr, Ipv4Cidr, L4Protocol, u16);

fn interface(report: &mut Report, what: &str, at: At<&str>) -> Option<InterfaceName> {
    InterfaceName::new(at.value)
        .map_err(|why| report.error(at.pos, format!("{what} {:?} {why}", at.value)))
        .ok()
}

/// A rule's source or destination: a network without host bits.
fn network(report: &mut Report, what: &str, at: At<&str>) -> Option<Ipv4Cidr> {
    match at.value.parse::<Ipv4Cidr>() {
        Ok(c) if c.is_network() => Some(c),
        Ok(c) => {
            report.error(
                at.pos,
                format!(
                    "{what} {c} has host bits set; write the network, {}",
                    c.trunc()
                ),
            );
            None
        }
        Err(why) => {
            report.error(at.pos, format!("{what} {:?}: {why}", at.value));
            None
        }
    }
}

/// An address we may put on the wire as a source or destination.
fn unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

fn snat_address(report: &mut Report, what: &str, at: At<&str>) -> Option<Ipv4Addr> {
    match at.value.parse::<Ipv4Addr>() {
        Ok(ip) if unicast(ip) => Some(ip),
        Ok(ip) => {
            report.error(at.pos, format!("{what} {ip} is not a unicast address"));
            None
        }
        Err(_) => {
            report.error(
                at.pos,
                format!(
                    "{what} {:?} is neither \"masquerade\" nor an IPv4 address",
                    at.value
                ),
            );
            None
        }
    }
}

fn read_snat(report: &mut Report, mut s: Section<'_, '_>) -> RuleRead<SnatRule, Ipv4Cidr> {
    let source_at = s.required_string(report, "source", "\"10.0.0.0/16\"");
    let to_at = s.string_or_list(report, "to");
    if to_at.is_none() && !s.has("to") {
        s.missing(report, "to", "\"masquerade\"");
    }
    let source = source_at.and_then(|a| network(report, &s.name("source"), a));
    let to = to_at.and_then(|to| match to {
        OneOrMany::One(one) if one.value == "masquerade" => Some(SnatTarget::Masquerade),
        OneOrMany::One(one) => {
            snat_address(report, &s.name("to"), one).map(|ip| SnatTarget::Addresses(vec![ip]))
        }
        OneOrMany::Many(list) => {
            if list.value.is_empty() {
                report.error(
                    list.pos,
                    format!(
                        "{} is an empty list; give one or more addresses, or \"masquerade\"",
                        s.name("to")
                    ),
                );
                return None;
            }
            let mut addresses = Vec::new();
            let mut ok = true;
            for item in list.value {
                if item.value == "masquerade" {
                    report.error(
                        item.pos,
                        format!(
                            "{} mixes \"masquerade\" with addresses; write to = \"masquerade\" alone",
                            s.name("to")
                        ),
                    );
                    ok = false;
                } else if let Some(ip) = snat_address(report, &s.name("to"), item) {
                    if addresses.contains(&ip) {
                        report.error(item.pos, format!("{} lists {ip} twice", s.name("to")));
                        ok = false;
                    }
                    addresses.push(ip);
                } else {
                    ok = false;
                }
            }
            ok.then_some(SnatTarget::Addresses(addresses))
        }
    });
    let pos = source_at.map_or(s.pos(), |a| a.pos);
    s.finish(report);
    RuleRead {
        rule: source.zip(to).map(|(source, to)| SnatRule { source, to }),
        key: source,
        pos,
    }
}

fn read_dnat(report: &mut Report, mut s: Section<'_, '_>) -> RuleRead<DnatRule, DnatKey> {
    let source_at = s.required_string(report, "source", "\"192.168.0.0/16\"");
    let destination_at = s.string(report, "destination");
    let protocol_at = s.required_string(report, "protocol", "\"tcp\"");
    let port_at = s.integer(report, "port");
    if port_at.is_none() && !s.has("port") {
        s.missing(report, "port", "80");
    }
    let to_at = s.required_string(report, "to", "\"10.0.1.26:80\"");

    let source = source_at.and_then(|a| network(report, &s.name("source"), a));
    let destination = match destination_at {
        None => Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
        Some(d) => network(report, &s.name("destination"), d),
    };
    let protocol = protocol_at.and_then(|p| match p.value {
        "tcp" => Some(L4Protocol::Tcp),
        "udp" => Some(L4Protocol::Udp),
        other => {
            report.error(
                p.pos,
                format!("{} {other:?} is not \"tcp\" or \"udp\"", s.name("protocol")),
            );
            None
        }
    });
    let port = port_at.and_then(|p| match u16::try_from(p.value) {
        Ok(port) if port != 0 => Some(port),
        _ => {
            report.error(
                p.pos,
                format!(
                    "{} = {} is not a port from 1 to 65535",
                    s.name("port"),
                    p.value
                ),
            );
            None
        }
    });
    let to = to_at.and_then(|t| match t.value.parse::<SocketAddrV4>() {
        Ok(a) if a.port() != 0 && unicast(*a.ip()) => Some(a),
        Ok(a) => {
            report.error(
                t.pos,
                format!(
                    "{} {a} needs a unicast address and a port other than 0",
                    s.name("to")
                ),
            );
            None
        }
        Err(_) => {
            report.error(
                t.pos,
                format!(
                    "{} {:?} is not an IPv4 address with a port, like \"10.0.1.26:80\"",
                    s.name("to"),
                    t.value
                ),
            );
            None
        }
    });
    let pos = source_at.map_or(s.pos(), |a| a.pos);
    s.finish(report);
    let key = (|| Some((source?, destination?, protocol?, port?)))();
    RuleRead {
        rule: key
            .zip(to)
            .map(|((source, destination, protocol, port), to)| DnatRule {
                source,
                destination,
                protocol,
                port,
                to,
            }),
        key,
        pos,
    }
}

fn read_timeouts(report: &mut Report, s: Option<Section<'_, '_>>) -> NatTimeouts {
    let mut t = NatTimeouts::default();
    let Some(mut s) = s else { return t };
    fn field(
        report: &mut Report,
        s: &mut Section,
        key: &'static str,
        slot: &mut u32,
    ) -> Option<usize> {
        if let Some(v) = s.integer(report, key) {
            match u32::try_from(v.value) {
                Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => *slot = secs,
                _ => report.error(
                    v.pos,
                    format!(
                        "{} = {} is out of range; use 1 to {MAX_TIMEOUT_SECS} seconds",
                        s.name(key),
                        v.value
                    ),
                ),
            }
            Some(v.pos)
        } else {
            None
        }
    }
    field(
        report,
        &mut s,
        "tcp_established_secs",
        &mut t.tcp_established_secs,
    );
    let transitory_pos = field(
        report,
        &mut s,
        "tcp_transitory_secs",
        &mut t.tcp_transitory_secs,
    );
    field(report, &mut s, "udp_secs", &mut t.udp_secs);
    field(report, &mut s, "icmp_secs", &mut t.icmp_secs);
    if t.tcp_transitory_secs > t.tcp_established_secs {
        report.error(
            transitory_pos.unwrap_or(s.pos()),
            format!(
                "{} ({}) is longer than tcp_established_secs ({}); a closing flow would \
                 outlive an open one",
                s.name("tcp_transitory_secs"),
                t.tcp_transitory_secs,
                t.tcp_established_secs
            ),
        );
    }
    s.finish(report);
    t
}

fn read_limits(report: &mut Report, s: Option<Section<'_, '_>>) -> NatLimits {
    let mut limits = NatLimits::default();
    let Some(mut s) = s else { return limits };
    if let Some(v) = s.integer(report, "max_flows") {
        match u32::try_from(v.value) {
            Ok(n) if (MIN_MAX_FLOWS..=MAX_MAX_FLOWS).contains(&n) => limits.max_flows = n,
            _ => report.error(
                v.pos,
                format!(
                    "{} = {} is out of range; use {MIN_MAX_FLOWS} to {MAX_MAX_FLOWS} \
                     (default {DEFAULT_MAX_FLOWS})",
                    s.name("max_flows"),
                    v.value
                ),
            ),
        }
    }
    limits.max_flows_per_source = default_max_flows_per_source(limits.max_flows);
    if let Some(v) = s.integer(report, "max_flows_per_source") {
        match u32::try_from(v.value) {
            Ok(n) if n <= limits.max_flows => limits.max_flows_per_source = n,
            _ => report.error(
                v.pos,
                format!(
                    "{} = {} is out of range; use 0 (no limit) to max_flows ({}); \
                     the default is a quarter of max_flows",
                    s.name("max_flows_per_source"),
                    v.value,
                    limits.max_flows
                ),
            ),
        }
    }
    s.finish(report);
    limits
}

fn read_mode(report: &mut Report, s: &mut Section<'_, '_>) -> Option<NatMode> {
    let Some(at) = s.string(report, "mode") else {
        return Some(NatMode::Auto);
    };
    let mode = [NatMode::Auto, NatMode::Xdp, NatMode::Tc]
        .into_iter()
        .find(|m| m.name() == at.value);
    if mode.is_none() {
        report.error(
            at.pos,
            format!(
                "{} = {:?}: use \"auto\" (XDP where the driver supports it, tc elsewhere), \
                 \"xdp\" or \"tc\"",
                s.name("mode"),
                at.value
            ),
        );
    }
    mode
}

pub(crate) fn read_nat(report: &mut Report, mut s: Section<'_, '_>) -> NatRead {
    let uplink_at = s.required_string(report, "uplink", "\"eth0\"");
    let uplink = uplink_at.and_then(|u| interface(report, &s.name("uplink"), u));
    let mode = read_mode(report, &mut s);
    let mut ok = uplink.is_some() && mode.is_some();

    let mut inside: Vec<(InterfaceName, usize)> = Vec::new();
    if let Some(list) = s.string_list(report, "inside") {
        for item in list.value {
            let Some(name) = interface(report, &s.name("inside"), item) else {
                ok = false;
                continue;
            };
            if uplink.as_ref() == Some(&name) {
                report.error(
                    item.pos,
                    format!(
                        "{} lists the uplink {name}; omit inside for one-armed mode instead",
                        s.name("inside")
                    ),
                );
                ok = false;
            } else if inside.iter().any(|(n, _)| *n == name) {
                report.error(item.pos, format!("{} lists {name} twice", s.name("inside")));
                ok = false;
            } else {
                inside.push((name, item.pos));
            }
        }
    }

    let mut snat: Vec<SnatRule> = Vec::new();
    let mut snat_keys: Vec<(Ipv4Cidr, usize)> = Vec::new();
    let snat_tables = s.tables(report, "snat");
    let snat_count = snat_tables.len();
    for (i, (table, pos)) in snat_tables.into_iter().enumerate() {
        let n = i + 1;
        let section = Section::new(
            table,
            pos,
            format!("nat.snat[{n}]: "),
            "nat.snat",
            SNAT_KEYS,
        );
        let read = read_snat(report, section);
        if let Some(source) = read.key {
            if let Some((_, first)) = snat_keys.iter().find(|(k, _)| *k == source) {
                report.error(
                    read.pos,
                    format!(
                        "nat.snat[{n}]: source {source} is already handled by nat.snat[{first}]; \
                         merge the two rules"
                    ),
                );
                ok = false;
            }
            snat_keys.push((source, n));
        }
        ok &= read.rule.is_some();
        snat.extend(read.rule);
    }

    let mut dnat: Vec<DnatRule> = Vec::new();
    let mut dnat_keys: Vec<(DnatKey, usize)> = Vec::new();
    let dnat_tables = s.tables(report, "dnat");
    let dnat_count = dnat_tables.len();
    for (i, (table, pos)) in dnat_tables.into_iter().enumerate() {
        let n = i + 1;
        let section = Section::new(
            table,
            pos,
            format!("nat.dnat[{n}]: "),
            "nat.dnat",
            DNAT_KEYS,
        );
        let read = read_dnat(report, section);
        if let Some(key) = read.key {
            if let Some((_, first)) = dnat_keys.iter().find(|(k, _)| *k == key) {
                report.error(
                    read.pos,
                    format!(
                        "nat.dnat[{n}]: matches the same {} port {} traffic as nat.dnat[{first}]; \
                         keep one",
                        key.2, key.3
                    ),
                );
                ok = false;
            }
            dnat_keys.push((key, n));
        }
        ok &= read.rule.is_some();
        dnat.extend(read.rule);
    }

    let timeouts_section = s.table(report, "timeouts", TIMEOUT_KEYS);
    let timeouts = read_timeouts(report, timeouts_section);
    let limits_section = s.table(report, "limits", LIMIT_KEYS);
    let limits = read_limits(report, limits_section);

    if snat_count == 0 && dnat_count == 0 {
        report.warn(
            s.pos(),
            "[nat] has no [[nat.snat]] or [[nat.dnat]] rules, so it translates nothing",
        );
    }
    s.finish(report);

    let nat = match &uplink {
        Some(uplink) if ok => Some(Nat {
            uplink: uplink.clone(),
            mode: mode.unwrap_or_default(),
            inside: inside.iter().map(|(n, _)| n.clone()).collect(),
            snat,
            dnat,
            timeouts,
            limits,
        }),
        _ => None,
    };
    NatRead {
        nat,
        uplink: uplink.zip(uplink_at.map(|u| u.pos)),
        inside,
    }
}
