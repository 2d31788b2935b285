//! Flow snapshots for status, and `sweep`: a walk that expires idle pairs
//! from userspace. The data plane does not need it (each pair's timer
//! expires it in the kernel, `ebpf/programs/src/expiry.rs`); it remains
//! for tests that jump ahead in time and for a one-off cleanup.
//!
//! Invariants:
//! * Rules are replaced entry by entry (new and changed prefixes written
//!   first, stale ones removed after), and the flow maps are never touched
//!   by a rule change: a reload keeps established flows.
//! * A flow is a pair (`NAT_OUT` entry + `NAT_IN` entry); a sweep removes
//!   both halves together, judging idleness by the *later* of the two
//!   last-seen stamps (as the kernel timers do), so a one-way stream (a
//!   download) is not expired because the other direction is quiet.
//! * After a sweep `SOURCE_FLOWS` holds the true number of live flows per
//!   inside source.

#[cfg(feature = "test-hooks")]
use std::collections::{BTreeMap, BTreeSet};
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use aya::maps::{HashMap, MapData};
use ethergate_common::{FlowEntry, FlowKey, NatBinding};
// The userspace sweep's (tests only; the programs' timers expire flows).
#[cfg(feature = "test-hooks")]
use ethergate_common::{
    nat::{TCP_ACK, TCP_FIN, TCP_RST},
    parse::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
};
#[cfg(feature = "test-hooks")]
use ethergate_config::NatTimeouts;

use crate::DataplaneError;

/// First port SNAT hands out: below it live the well-known services of the
/// appliance itself (443, 992), whose return traffic must never be taken
/// for a NAT flow.
pub const SNAT_PORT_MIN: u16 = 1024;
pub const SNAT_PORT_MAX: u16 = 65535;

pub(crate) type FlowMap = HashMap<MapData, FlowKey, FlowEntry>;
/// Inside source address → flows it holds.
#[cfg(feature = "test-hooks")]
pub(crate) type SourceMap = HashMap<MapData, u32, u32>;

/// The flow maps: the SNAT
/// pair and the DNAT pair.
pub(crate) struct FlowMaps {
    pub(crate) out: FlowMap,
    pub(crate) inbound: FlowMap,
    pub(crate) dnat_out: FlowMap,
    pub(crate) dnat_in: FlowMap,
    #[cfg(feature = "test-hooks")]
    pub(crate) sources: SourceMap,
}

/// One translated flow, as a snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatFlow {
    /// 6 (TCP), 17 (UDP) or 1 (ICMP echo; "ports" are identifiers, the
    /// remote's is 0).
    pub protocol: u8,
    pub private: SocketAddrV4,
    pub public: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Since the last packet in either direction (`None` if the reverse
    /// half is missing, e.g. evicted by the LRU).
    pub idle: Duration,
    /// TCP flags seen leaving / coming back.
    pub tcp_flags_out: u8,
    pub tcp_flags_in: Option<u8>,
}

/// One DNAT (port-forward) flow, as a snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnatFlow {
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    /// The VPN client (or other inside host) that opened the flow.
    pub client: SocketAddrV4,
    /// The destination it used, restored as the source of replies.
    pub original: SocketAddrV4,
    /// The rule's `to`: where the flow really goes.
    pub translated: SocketAddrV4,
    /// Since the last packet in either direction.
    pub idle: Duration,
    pub tcp_flags_out: u8,
    pub tcp_flags_in: Option<u8>,
}

#[cfg(feature = "test-hooks")]
/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Flow pairs idle past their timeout.
    pub expired: usize,
    /// `NAT_IN` halves whose `NAT_OUT` half was gone and that were idle.
    pub orphans: usize,
    /// Flow pairs (SNAT and DNAT) still live after the sweep.
    pub active: usize,
}

/// The first IPv4 address of `interface` in the calling thread's network
/// namespace (what `MASQUERADE` uses).
pub fn interface_ipv4(interface: &str) -> Result<Ipv4Addr, DataplaneError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| DataplaneError::Interface {
        interface: interface.to_owned(),
        source: std::io::Error::from(e),
    })?;
    addrs
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
        .ok_or_else(|| DataplaneError::NoIpv4Address(interface.to_owned()))
}

pub(crate) fn ifindex(interface: &str) -> Result<u32, DataplaneError> {
    nix::net::if_::if_nametoindex(interface).map_err(|e| DataplaneError::Interface {
        interface: interface.to_owned(),
        source: std::io::Error::from(e),
    })
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts)
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The `NAT_IN` key of the pair whose `NAT_OUT` half is (`key`, `public`).
pub(crate) fn reverse_key(key: &FlowKey, public: &NatBinding) -> FlowKey {
    FlowKey::new(
        key.protocol,
        key.dst_addr,
        key.dst_port,
        public.addr,
        public.port,
    )
}

/// The `DNAT_IN` key of the pair whose `DNAT_OUT` half is (`key`, `to`):
/// the server answers from the translated destination to the client.
pub(crate) fn dnat_reverse_key(key: &FlowKey, to: &NatBinding) -> FlowKey {
    FlowKey::new(key.protocol, to.addr, to.port, key.src_addr, key.src_port)
}

#[cfg(feature = "test-hooks")]
fn timeout(protocol: u8, flags_out: u8, flags_in: u8, t: &NatTimeouts) -> Duration {
    let secs = match protocol {
        IPPROTO_TCP => {
            let both = flags_out | flags_in;
            if both & (TCP_FIN | TCP_RST) == 0
                && flags_out & TCP_ACK != 0
                && flags_in & TCP_ACK != 0
            {
                t.tcp_established_secs
            } else {
                t.tcp_transitory_secs
            }
        }
        IPPROTO_UDP => t.udp_secs,
        IPPROTO_ICMP => t.icmp_secs,
        _ => t.udp_secs,
    };
    Duration::from_secs(u64::from(secs))
}

pub(crate) fn flows(maps: &FlowMaps, now_ns: u64) -> Vec<NatFlow> {
    let mut out = Vec::new();
    for (key, public) in maps
        .out
        .iter()
        .filter_map(Result::ok)
        .map(|(k, e)| (k, e.binding))
    {
        let back = maps
            .inbound
            .get(&reverse_key(&key, &public), 0)
            .ok()
            .map(|e| e.binding);
        let last = back.map_or(public.last_seen_ns, |b| {
            b.last_seen_ns.max(public.last_seen_ns)
        });
        out.push(NatFlow {
            protocol: key.protocol,
            private: SocketAddrV4::new(Ipv4Addr::from(key.src_addr), key.src_port),
            public: SocketAddrV4::new(Ipv4Addr::from(public.addr), public.port),
            remote: SocketAddrV4::new(Ipv4Addr::from(key.dst_addr), key.dst_port),
            idle: Duration::from_nanos(now_ns.saturating_sub(last)),
            tcp_flags_out: public.tcp_flags,
            tcp_flags_in: back.map(|b| b.tcp_flags),
        });
    }
    out
}

pub(crate) fn dnat_flows(maps: &FlowMaps, now_ns: u64) -> Vec<DnatFlow> {
    let mut out = Vec::new();
    for (key, to) in maps
        .dnat_out
        .iter()
        .filter_map(Result::ok)
        .map(|(k, e)| (k, e.binding))
    {
        let back = maps
            .dnat_in
            .get(&dnat_reverse_key(&key, &to), 0)
            .ok()
            .map(|e| e.binding);
        let last = back.map_or(to.last_seen_ns, |b| b.last_seen_ns.max(to.last_seen_ns));
        out.push(DnatFlow {
            protocol: key.protocol,
            client: SocketAddrV4::new(Ipv4Addr::from(key.src_addr), key.src_port),
            original: SocketAddrV4::new(Ipv4Addr::from(key.dst_addr), key.dst_port),
            translated: SocketAddrV4::new(Ipv4Addr::from(to.addr), to.port),
            idle: Duration::from_nanos(now_ns.saturating_sub(last)),
            tcp_flags_out: to.tcp_flags,
            tcp_flags_in: back.map(|b| b.tcp_flags),
        });
    }
    out
}

#[cfg(feature = "test-hooks")]
pub(crate) fn sweep(maps: &mut FlowMaps, now_ns: u64, timeouts: &NatTimeouts) -> SweepStats {
    let mut per_source = BTreeMap::new();
    let snat = sweep_pairs(
        &mut maps.out,
        &mut maps.inbound,
        reverse_key,
        now_ns,
        timeouts,
        &mut per_source,
    );
    let dnat = sweep_pairs(
        &mut maps.dnat_out,
        &mut maps.dnat_in,
        dnat_reverse_key,
        now_ns,
        timeouts,
        &mut per_source,
    );
    write_source_counts(&mut maps.sources, &per_source);
    SweepStats {
        expired: snat.expired + dnat.expired,
        orphans: snat.orphans + dnat.orphans,
        active: snat.active + dnat.active,
    }
}

#[cfg(feature = "test-hooks")]
/// Replaces the programs' running counts with the live ones: sources
/// with flows get their count, sources without lose their entry.
fn write_source_counts(sources: &mut SourceMap, live: &BTreeMap<u32, u32>) {
    let stale: Vec<u32> = sources
        .keys()
        .filter_map(Result::ok)
        .filter(|src| !live.contains_key(src))
        .collect();
    for src in stale {
        let _ = sources.remove(&src);
    }
    for (src, count) in live {
        let _ = sources.insert(src, count, 0);
    }
}

#[cfg(feature = "test-hooks")]
/// Expires idle pairs of one (forward, reverse) map pair, and idle
/// reverse halves whose forward half is gone; counts the live pairs per
/// source into `per_source`.
fn sweep_pairs(
    out: &mut FlowMap,
    inbound: &mut FlowMap,
    reverse: fn(&FlowKey, &NatBinding) -> FlowKey,
    now_ns: u64,
    timeouts: &NatTimeouts,
    per_source: &mut BTreeMap<u32, u32>,
) -> SweepStats {
    let mut stats = SweepStats::default();
    let mut paired = BTreeSet::new();
    let mut expired = Vec::new();
    for (key, forward) in out
        .iter()
        .filter_map(Result::ok)
        .map(|(k, e)| (k, e.binding))
    {
        let back_key = reverse(&key, &forward);
        let back = inbound.get(&back_key, 0).ok().map(|e| e.binding);
        let last = back.map_or(forward.last_seen_ns, |b| {
            b.last_seen_ns.max(forward.last_seen_ns)
        });
        let limit = timeout(
            key.protocol,
            forward.tcp_flags,
            back.map_or(0, |b| b.tcp_flags),
            timeouts,
        );
        if Duration::from_nanos(now_ns.saturating_sub(last)) > limit {
            expired.push((key, back_key));
        } else {
            paired.insert(key_bytes(&back_key));
            stats.active += 1;
            *per_source.entry(key.src_addr).or_insert(0) += 1;
        }
    }
    for (key, back_key) in expired {
        // Reverse half first: once it is gone no reply can be restored to a
        // flow that is being removed.
        let _ = inbound.remove(&back_key);
        let _ = out.remove(&key);
        stats.expired += 1;
    }
    let mut orphans = Vec::new();
    for (key, back) in inbound
        .iter()
        .filter_map(Result::ok)
        .map(|(k, e)| (k, e.binding))
    {
        if paired.contains(&key_bytes(&key)) {
            continue;
        }
        let limit = timeout(key.protocol, 0, back.tcp_flags, timeouts);
        if Duration::from_nanos(now_ns.saturating_sub(back.last_seen_ns)) > limit {
            orphans.push(key);
        }
    }
    for key in orphans {
        let _ = inbound.remove(&key);
        stats.orphans += 1;
    }
    stats
}

#[cfg(feature = "test-hooks")]
fn key_bytes(k: &FlowKey) -> (u8, u32, u16, u32, u16) {
    (k.protocol, k.src_addr, k.src_port, k.dst_addr, k.dst_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_is_established_only_with_acks_both_ways_and_no_fin() {
        let t = NatTimeouts::default();
        let est = Duration::from_secs(u64::from(t.tcp_established_secs));
        let tr = Duration::from_secs(u64::from(t.tcp_transitory_secs));
        assert_eq!(timeout(IPPROTO_TCP, 0x02, 0, &t), tr);
        assert_eq!(timeout(IPPROTO_TCP, 0x12, 0x12, &t), est);
        assert_eq!(timeout(IPPROTO_TCP, 0x13, 0x10, &t), tr);
        assert_eq!(timeout(IPPROTO_TCP, 0x10, 0x14, &t), tr);
    }
}
