//! SNAT (masquerade) in XDP, both directions, shared by the `uplink` and
//! `inside` programs.
//!
//! * Reverse first: a TCP/UDP/ICMP-echo-reply frame whose tuple is in
//!   `NAT_IN` gets its destination restored, is routed with
//!   `bpf_fib_lookup`, and leaves through `bpf_redirect` (or `XDP_TX` when
//!   it goes back out the interface it came in on: one-armed mode).
//! * Then forward: a frame from a source in `SNAT_RULES` that the FIB sends
//!   out of the uplink gets its source rewritten to a public (address,
//!   port) — the existing one from `NAT_OUT`, or a newly allocated one —
//!   and is redirected the same way.
//! * Everything else is [`Nat::NotOurs`]: the caller hands it to the kernel
//!   byte for byte. Fragments, VLAN-tagged frames, options we do not
//!   rewrite, expiring TTLs and ICMP other than echo always are.
//!
//! Invariant: a frame is either forwarded fully translated (addresses,
//! ports, TTL, MACs and every checksum updated) or not modified at all. All
//! checks that can fail happen before the first write.

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
        BPF_NOEXIST, bpf_fib_lookup as FibParams, xdp_action,
    },
    helpers::generated::{bpf_fib_lookup, bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_redirect},
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use ethergate_common::{
    DropReason, FlowKey, NatBinding, NatConfig, NatEvent, ProtoClass, SnatAddresses, checksum,
    nat::{MAX_PORT_PROBES, MAX_SNAT_ADDRESSES, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    parse::{Classification, ETH_HEADER_LEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PacketBytes},
};

use crate::packet::XdpFrame;

/// Default flow-table size; userspace resizes both maps to
/// `[nat.limits].max_flows` before loading.
const DEFAULT_MAX_FLOWS: u32 = 262_144;
/// SNAT rules: one per `[[nat.snat]]` entry, far more than a config holds.
const MAX_SNAT_RULES: u32 = 256;

#[map]
static NAT_OUT: LruHashMap<FlowKey, NatBinding> =
    LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

#[map]
static NAT_IN: LruHashMap<FlowKey, NatBinding> = LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

/// Private source prefix (network byte order) → public addresses.
#[map]
static SNAT_RULES: LpmTrie<[u8; 4], SnatAddresses> = LpmTrie::with_max_entries(MAX_SNAT_RULES, 0);

#[map]
static NAT_CONFIG: Array<NatConfig> = Array::with_max_entries(1, 0);

#[map]
static NAT_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NatEvent::COUNT, 0);

#[map]
static NAT_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

const AF_INET: u8 = 2;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
/// IPv4 flags/fragment-offset word: MF flag and the 13-bit offset.
const IP_MF_OR_OFFSET: u16 = 0x3fff;
const IP_DF: u16 = 0x4000;
const TCP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const ICMP_HEADER_LEN: usize = 8;

/// What the NAT path decided.
pub enum Nat {
    /// Not a translated flow: hand the untouched frame to the kernel.
    NotOurs,
    /// Translated; this is the XDP action (`XDP_TX` or `XDP_REDIRECT`).
    Forwarded(u32),
    /// Dropped, reason already counted.
    Dropped,
}

/// The L4 fields NAT looks at and rewrites.
#[derive(Clone, Copy)]
struct Tuple {
    protocol: u8,
    src_addr: u32,
    dst_addr: u32,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    /// ICMP echo reply: may only match `NAT_IN`, never start a flow.
    echo_reply: bool,
}

#[inline(always)]
pub fn process(ctx: &XdpContext, frame: &mut XdpFrame, seen: &Classification) -> Nat {
    let Some(config) = NAT_CONFIG.get(0) else {
        return Nat::NotOurs;
    };
    if config.uplink_ifindex == 0 {
        return Nat::NotOurs;
    }
    if seen.class == ProtoClass::Ipv4Fragment {
        event(NatEvent::FragmentPassed);
        return Nat::NotOurs;
    }
    // Tagged frames would have to be re-tagged for the egress side; the
    // kernel's VLAN devices do that, so they take the slow path.
    if seen.vlan_tags != 0 || seen.l3_offset != ETH_HEADER_LEN {
        return Nat::NotOurs;
    }
    if !matches!(
        seen.class,
        ProtoClass::Tcp4 | ProtoClass::Udp4 | ProtoClass::Icmp4
    ) {
        return Nat::NotOurs;
    }
    let Some(ip) = frame.header::<20>(ETH_HEADER_LEN) else {
        return Nat::NotOurs;
    };
    let ip = *ip;
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & IP_MF_OR_OFFSET != 0 {
        // First fragments too: the later ones carry no ports, so only the
        // kernel (which reassembles) can translate them consistently.
        event(NatEvent::FragmentPassed);
        return Nat::NotOurs;
    }
    let l4 = seen.l4_offset;
    let Some(tuple) = read_tuple(frame, &ip, l4) else {
        return Nat::NotOurs;
    };
    if ip[8] <= 1 {
        event(NatEvent::TtlPassed);
        return Nat::NotOurs;
    }
    let now = now_ns();
    let in_key = FlowKey::new(
        tuple.protocol,
        tuple.src_addr,
        tuple.src_port,
        tuple.dst_addr,
        tuple.dst_port,
    );
    if let Some(binding) = NAT_IN.get_ptr_mut(in_key) {
        // SAFETY: pointer from a successful lookup; LRU values stay valid
        // for the program run (RCU). Racing writers only store timestamps
        // and flag unions, where a lost update is harmless.
        let (addr, port) = unsafe {
            touch(binding, now, tuple.tcp_flags);
            ((*binding).addr, (*binding).port)
        };
        return forward(
            ctx,
            frame,
            &ip,
            l4,
            &tuple,
            config,
            Rewrite::Destination(addr, port),
        );
    }
    // Only echo requests start a flow; a stray reply is the kernel's.
    if tuple.echo_reply {
        return Nat::NotOurs;
    }
    let out_key = in_key;
    let public = match NAT_OUT.get_ptr_mut(out_key) {
        // SAFETY: as above.
        Some(binding) => unsafe {
            touch(binding, now, tuple.tcp_flags);
            Some(((*binding).addr, (*binding).port))
        },
        None => None,
    };
    match public {
        Some((addr, port)) => forward(
            ctx,
            frame,
            &ip,
            l4,
            &tuple,
            config,
            Rewrite::Source(addr, port),
        ),
        None => {
            // TCP flows start with a SYN. Anything else without a flow is a
            // reply of a connection that came *in* (a routed or port-forwarded
            // service in the private subnet answering an outside client), or
            // a stray: like iptables MASQUERADE (which only sees NEW
            // connections), leave it to the kernel.
            if tuple.protocol == IPPROTO_TCP && tuple.tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
                return Nat::NotOurs;
            }
            let rule_key = Key::new(32, tuple.src_addr.to_be_bytes());
            let Some(rule) = SNAT_RULES.get(&rule_key) else {
                return Nat::NotOurs;
            };
            let rule = *rule;
            forward(
                ctx,
                frame,
                &ip,
                l4,
                &tuple,
                config,
                Rewrite::NewSource(rule, now),
            )
        }
    }
}

enum Rewrite {
    /// Reverse direction: restore the private destination.
    Destination(u32, u16),
    /// Forward direction of a known flow.
    Source(u32, u16),
    /// Forward direction, first packet: allocate after routing succeeds.
    NewSource(SnatAddresses, u64),
}

#[inline(always)]
fn read_tuple(frame: &XdpFrame, ip: &[u8; 20], l4: usize) -> Option<Tuple> {
    let protocol = ip[9];
    let src_addr = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst_addr = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let mut is_reply = false;
    let (src_port, dst_port, tcp_flags) = match protocol {
        IPPROTO_TCP => {
            let tcp = frame.header::<TCP_HEADER_LEN>(l4)?;
            (
                u16::from_be_bytes([tcp[0], tcp[1]]),
                u16::from_be_bytes([tcp[2], tcp[3]]),
                tcp[13],
            )
        }
        IPPROTO_UDP => {
            let udp = frame.header::<UDP_HEADER_LEN>(l4)?;
            (
                u16::from_be_bytes([udp[0], udp[1]]),
                u16::from_be_bytes([udp[2], udp[3]]),
                0,
            )
        }
        IPPROTO_ICMP => {
            let icmp = frame.header::<ICMP_HEADER_LEN>(l4)?;
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            match icmp[0] {
                ICMP_ECHO_REQUEST if icmp[1] == 0 => (id, 0, 0),
                ICMP_ECHO_REPLY if icmp[1] == 0 => {
                    is_reply = true;
                    (0, id, 0)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Tuple {
        protocol,
        src_addr,
        dst_addr,
        src_port,
        dst_port,
        tcp_flags,
        echo_reply: protocol == IPPROTO_ICMP && src_port == 0 && is_reply,
    })
}

/// Refreshes a binding's timestamp and TCP flag union.
///
/// # Safety
/// `binding` comes from a successful map lookup in this program run.
#[inline(always)]
unsafe fn touch(binding: *mut NatBinding, now: u64, tcp_flags: u8) {
    let seen = tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK);
    // SAFETY: per the function's contract.
    unsafe {
        (*binding).last_seen_ns = now;
        if (*binding).tcp_flags & seen != seen {
            (*binding).tcp_flags |= seen;
        }
    }
}

/// Routes the frame as it will be after the rewrite, then (only if routing
/// succeeded) rewrites and redirects it.
#[inline(always)]
fn forward(
    ctx: &XdpContext,
    frame: &mut XdpFrame,
    ip: &[u8; 20],
    l4: usize,
    tuple: &Tuple,
    config: &NatConfig,
    rewrite: Rewrite,
) -> Nat {
    let total_len = u16::from_be_bytes([ip[2], ip[3]]);
    let dst_after = match rewrite {
        Rewrite::Destination(addr, _) => addr,
        _ => tuple.dst_addr,
    };
    // SAFETY: all-zero is a valid bpf_fib_lookup (plain integers/unions).
    let mut fib: FibParams = unsafe { core::mem::zeroed() };
    fib.family = AF_INET;
    fib.l4_protocol = tuple.protocol;
    fib.__bindgen_anon_1.tot_len = total_len;
    fib.ifindex = ctx.ingress_ifindex() as u32;
    fib.__bindgen_anon_2.tos = ip[1];
    fib.__bindgen_anon_3.ipv4_src = tuple.src_addr.to_be();
    fib.__bindgen_anon_4.ipv4_dst = dst_after.to_be();
    // SAFETY: ctx is this program's context; fib is a live, correctly sized
    // bpf_fib_lookup the helper may write.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            &mut fib,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    } as u32;
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => {}
        BPF_FIB_LKUP_RET_NO_NEIGH => {
            // The helper fills in the egress ifindex before it looks for the
            // neighbour. Forward traffic that does not leave through the
            // uplink is not ours (private to private: the kernel resolves
            // and forwards it).
            let forward = !matches!(rewrite, Rewrite::Destination(..));
            if forward && fib.ifindex != config.uplink_ifindex {
                event(NatEvent::NotRoutedPassed);
                return Nat::NotOurs;
            }
            return dropped(DropReason::NoNeighbour);
        }
        BPF_FIB_LKUP_RET_FRAG_NEEDED => {
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            // With DF the kernel answers "fragmentation needed" (PMTUD),
            // which is right; without it, it would fragment untranslated.
            if frag & IP_DF != 0 {
                return Nat::NotOurs;
            }
            return dropped(DropReason::FragmentationNeeded);
        }
        _ => {
            event(NatEvent::NotRoutedPassed);
            return Nat::NotOurs;
        }
    }
    let egress = fib.ifindex;
    let (new_addr, new_port, reverse) = match rewrite {
        Rewrite::Destination(addr, port) => (addr, port, true),
        Rewrite::Source(addr, port) => {
            if egress != config.uplink_ifindex {
                event(NatEvent::NotRoutedPassed);
                return Nat::NotOurs;
            }
            (addr, port, false)
        }
        Rewrite::NewSource(rule, now) => {
            if egress != config.uplink_ifindex {
                event(NatEvent::NotRoutedPassed);
                return Nat::NotOurs;
            }
            match allocate(tuple, &rule, config, now) {
                Ok((addr, port)) => (addr, port, false),
                Err(reason) => return dropped(reason),
            }
        }
    };
    if rewrite_frame(frame, l4, tuple, new_addr, new_port, reverse, &fib).is_none() {
        // Headers were all read before; unreachable in practice, and the
        // frame is unmodified if the IP header itself was not writable.
        return dropped(DropReason::RedirectFailed);
    }
    if reverse {
        event(NatEvent::TranslatedIn);
    } else {
        event(NatEvent::TranslatedOut);
    }
    if egress == ctx.ingress_ifindex() as u32 {
        return Nat::Forwarded(xdp_action::XDP_TX);
    }
    // SAFETY: plain helper call; flags 0.
    let action = unsafe { bpf_redirect(egress, 0) } as u32;
    if action != xdp_action::XDP_REDIRECT {
        return dropped(DropReason::RedirectFailed);
    }
    Nat::Forwarded(action)
}

/// Picks a free public (address, port) by random probing and installs the
/// flow pair. `NAT_IN` is claimed first with `BPF_NOEXIST`, so two flows can
/// never share a reverse tuple, even when CPUs race.
#[inline(always)]
fn allocate(
    tuple: &Tuple,
    rule: &SnatAddresses,
    config: &NatConfig,
    now: u64,
) -> Result<(u32, u16), DropReason> {
    let span = u32::from(config.port_max).saturating_sub(u32::from(config.port_min)) + 1;
    let count = if rule.count == 0 || rule.count as usize > MAX_SNAT_ADDRESSES {
        1
    } else {
        rule.count
    };
    let private = NatBinding {
        last_seen_ns: now,
        addr: tuple.src_addr,
        port: tuple.src_port,
        tcp_flags: 0,
        pad: 0,
    };
    for _ in 0..MAX_PORT_PROBES {
        // `(r * n) >> 32` maps a uniform u32 onto 0..n without a division:
        // a `%` by a map value would need a divide-by-zero panic path,
        // which the verifier rejects ("last insn is not an exit or jmp").
        // SAFETY: plain helper calls.
        let (r1, r2) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
        let index = ((u64::from(r1) * u64::from(count)) >> 32) as usize;
        let Some(&addr) = rule.addrs.get(index) else {
            continue;
        };
        let port = (u64::from(config.port_min) + ((u64::from(r2) * u64::from(span)) >> 32)) as u16;
        // The reply's tuple: ICMP replies carry the identifier as dst_port.
        let (remote_port, public_port) = (tuple.dst_port, port);
        let in_key = FlowKey::new(
            tuple.protocol,
            tuple.dst_addr,
            remote_port,
            addr,
            public_port,
        );
        if NAT_IN.insert(in_key, private, BPF_NOEXIST as u64).is_err() {
            event(NatEvent::PortCollision);
            continue;
        }
        let public = NatBinding {
            last_seen_ns: now,
            addr,
            port,
            tcp_flags: tuple.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK),
            pad: 0,
        };
        let out_key = FlowKey::new(
            tuple.protocol,
            tuple.src_addr,
            tuple.src_port,
            tuple.dst_addr,
            tuple.dst_port,
        );
        if NAT_OUT.insert(out_key, public, BPF_NOEXIST as u64).is_ok() {
            event(NatEvent::FlowCreated);
            return Ok((addr, port));
        }
        // Another CPU created this flow a moment ago: use its binding.
        let _ = NAT_IN.remove(in_key);
        return match NAT_OUT.get_ptr(out_key) {
            // SAFETY: pointer from a successful lookup.
            Some(existing) => unsafe { Ok(((*existing).addr, (*existing).port)) },
            None => Err(DropReason::FlowRace),
        };
    }
    Err(DropReason::PortsExhausted)
}

/// Writes the translation. Returns `None` (frame untouched) only if a
/// header that was readable a moment ago is not writable.
#[inline(always)]
fn rewrite_frame(
    frame: &mut XdpFrame,
    l4: usize,
    tuple: &Tuple,
    new_addr: u32,
    new_port: u16,
    reverse: bool,
    fib: &FibParams,
) -> Option<()> {
    let (old_addr, old_port) = if reverse {
        (tuple.dst_addr, tuple.dst_port)
    } else {
        (tuple.src_addr, tuple.src_port)
    };
    // L4 first: it is the write that needs its own bounds check.
    match tuple.protocol {
        IPPROTO_TCP => {
            let tcp = frame.header_mut::<TCP_HEADER_LEN>(l4)?;
            let port_at = if reverse { 2 } else { 0 };
            let check = u16::from_be_bytes([tcp[16], tcp[17]]);
            let check = checksum::replace4(check, old_addr, new_addr);
            let check = checksum::replace2(check, old_port, new_port);
            tcp[16..18].copy_from_slice(&check.to_be_bytes());
            tcp[port_at..port_at + 2].copy_from_slice(&new_port.to_be_bytes());
        }
        IPPROTO_UDP => {
            let udp = frame.header_mut::<UDP_HEADER_LEN>(l4)?;
            let port_at = if reverse { 2 } else { 0 };
            let check = u16::from_be_bytes([udp[6], udp[7]]);
            if check != 0 {
                let check = checksum::replace4(check, old_addr, new_addr);
                let check = checksum::udp_nonzero(checksum::replace2(check, old_port, new_port));
                udp[6..8].copy_from_slice(&check.to_be_bytes());
            }
            udp[port_at..port_at + 2].copy_from_slice(&new_port.to_be_bytes());
        }
        _ => {
            // ICMP echo: no pseudo-header; only the identifier changes.
            let icmp = frame.header_mut::<ICMP_HEADER_LEN>(l4)?;
            let check = u16::from_be_bytes([icmp[2], icmp[3]]);
            let check = checksum::replace2(check, old_port, new_port);
            icmp[2..4].copy_from_slice(&check.to_be_bytes());
            icmp[4..6].copy_from_slice(&new_port.to_be_bytes());
        }
    }
    let ip = frame.header_mut::<20>(ETH_HEADER_LEN)?;
    let check = u16::from_be_bytes([ip[10], ip[11]]);
    let check = checksum::replace4(check, old_addr, new_addr);
    // We route, so TTL drops by one (RFC 1812 §5.3.1); TTL and protocol
    // share a 16-bit word.
    let ttl_proto = u16::from_be_bytes([ip[8], ip[9]]);
    let check = checksum::replace2(check, ttl_proto, ttl_proto - 0x0100);
    ip[8] -= 1;
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let at = if reverse { 16 } else { 12 };
    ip[at..at + 4].copy_from_slice(&new_addr.to_be_bytes());
    let eth = frame.header_mut::<12>(0)?;
    eth[0..6].copy_from_slice(&fib.dmac);
    eth[6..12].copy_from_slice(&fib.smac);
    Some(())
}

#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn event(event: NatEvent) {
    bump(&NAT_EVENTS, event as u32);
}

#[inline(always)]
fn dropped(reason: DropReason) -> Nat {
    bump(&NAT_DROPS, reason as u32);
    Nat::Dropped
}

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, written only by this CPU with preemption
        // disabled; the pointer comes from a successful map lookup.
        unsafe { *slot += 1 };
    }
}
