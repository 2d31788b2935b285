//! tc programs on a hub's tap (the local bridge VPN clients' frames enter
//! the kernel through).
//!
//! `tap_ingress` (frames the hub writes, i.e. sent by VPN clients):
//! * DNAT: a flow in `DNAT_OUT`, or a first packet matching a live
//!   `[[nat.dnat]]` rule (TCP: a SYN), gets its destination rewritten;
//! * SNAT: a flow in `NAT_OUT`, or a first packet from a source in a live
//!   SNAT rule that the FIB sends out of the uplink, gets its source
//!   rewritten to a public (address, port), exactly as XDP does for the
//!   private subnet; replies come back through the uplink's XDP program.
//! * (first) a tuple in `NAT_IN` gets its private destination restored:
//!   never true on a tap, but it makes the same path usable as
//!   `nat_ingress`, the tc fallback for the uplink and inside interfaces.
//!
//! Translated frames are routed with `bpf_fib_lookup` and leave with
//! `bpf_redirect` (next hop known) or `bpf_redirect_neigh` (next hop not
//! resolved yet: the kernel's neighbour code resolves it and sends the
//! frame, so tc has no "no neighbour" gap). TTL drops by one, as routed.
//!
//! `tap_egress` (frames the kernel sends to the hub): a reply of a DNAT
//! flow (`DNAT_IN`) gets its source restored to the destination the client
//! used, so the client's socket accepts it; an ICMP error about a DNAT flow
//! gets its embedded header restored too (`tap_icmp`).
//!
//! Fragments: a first fragment is translated like any packet and its
//! rewrite remembered (`FRAGMENTS`); later fragments get the same address
//! rewrite. A later fragment that cannot be matched and would leave the
//! uplink from a source we translate is dropped and counted.
//!
//! Everything else — ARP, DHCP, IPv6, ICMP to the appliance, traffic
//! without a rule — goes on untouched (`TC_ACT_OK`).
//!
//! Invariant: every check that can fail (classification, flow or rule
//! lookup, routing, allocation) happens before the first write.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, TC_ACT_OK, TC_ACT_SHOT},
    cty::c_long,
    macros::classifier,
    programs::TcContext,
};
use ethergate_common::{
    CachedHop, DropReason, NatConfig, NatEvent, ProtoClass, Verdict,
    nat::{
        FRAGMENT_REWRITES_DESTINATION, FRAGMENT_REWRITES_SOURCE, FRAGMENTS_FORWARDED,
        FRAGMENTS_TO_HUB,
    },
    parse::{Classification, ETH_HEADER_LEN, IPPROTO_TCP, IPPROTO_UDP, PacketBytes, classify},
};

use crate::{
    flow::{self, IP_DF, Tuple, read_tuple},
    icmp_quote,
    maps::{self, DNAT_IN, DNAT_OUT, FlowEntry, NAT_IN, NAT_OUT, event, now_ns},
    route::{self, NextHop, Route, SizeCheck},
    tap_icmp,
    tc_frame::TcFrame,
    tc_icmp_error,
    tc_out::{dropped, rewrite_address, send},
    uplink,
};

const IP_SRC_AT: usize = ETH_HEADER_LEN + 12;
const IP_DST_AT: usize = ETH_HEADER_LEN + 16;

#[classifier]
pub fn tap_ingress(ctx: TcContext) -> i32 {
    let Some(config) = maps::config() else {
        return TC_ACT_OK;
    };
    let frame = TcFrame::new(&ctx);
    let seen = classify(&frame);
    ingress(&ctx, &frame, &seen, config)
}

/// The fallback for the uplink and inside interfaces when neither native
/// nor generic XDP attaches: the same ingress path (it restores `NAT_IN`
/// return traffic and SNATs egress as the XDP programs do, and applies
/// DNAT rules as iptables PREROUTING would on any interface).
#[classifier]
pub fn nat_ingress(ctx: TcContext) -> i32 {
    let Some(config) = maps::config() else {
        return TC_ACT_OK;
    };
    let frame = TcFrame::new(&ctx);
    let seen = classify(&frame);
    let action = ingress(&ctx, &frame, &seen, config);
    // The uplink's per-class counters, which the XDP program keeps when
    // the uplink runs in XDP (there this program sees only what XDP
    // passed, already counted).
    // SAFETY: skb is this run's __sk_buff; reading ifindex is always
    // allowed for tc programs.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    if ifindex == config.uplink_ifindex && !maps::xdp_may_transmit(ifindex) {
        let verdict = match action {
            TC_ACT_OK => Verdict::Pass,
            TC_ACT_SHOT => Verdict::Drop,
            // bpf_redirect and bpf_redirect_neigh; a frame sent back out
            // of the uplink (one-armed) counts here too, not as Tx.
            _ => Verdict::Redirect,
        };
        // The class and headers NAT rewrote are what they were: the frame
        // is read again only for the TCP header's length.
        let (frames, bytes) = on_the_wire(&ctx, &frame, &seen);
        uplink::count_frame(&seen, verdict, frames, bytes);
    }
    action
}

/// What an skb is on the wire: a GRO/GSO skb stands for `gso_segs` frames,
/// each with its own copy of the headers (what XDP, which sees frames,
/// would have counted). Headers we cannot read count once.
#[inline(always)]
fn on_the_wire(ctx: &TcContext, frame: &TcFrame, seen: &Classification) -> (u64, usize) {
    let len = ctx.len() as usize;
    // SAFETY: skb is this run's __sk_buff; gso_segs is readable by tc.
    let segments = unsafe { (*ctx.skb.skb).gso_segs }.max(1);
    if segments == 1 {
        return (1, len);
    }
    let l4 = seen.l4_offset;
    let headers = match seen.class {
        ProtoClass::Tcp4 | ProtoClass::Tcp6 => frame
            .header::<13>(l4)
            .map_or(0, |tcp| l4 + usize::from(tcp[12] >> 4) * 4),
        ProtoClass::Udp4 | ProtoClass::Udp6 => l4 + 8,
        _ => 0,
    };
    (u64::from(segments), len + (segments as usize - 1) * headers)
}

#[classifier]
pub fn tap_egress(ctx: TcContext) -> i32 {
    egress(&ctx)
}

/// A translated IPv4 packet as read before any write.
struct Seen {
    ip: [u8; 20],
    l4: usize,
    tuple: Tuple,
}

/// The IPv4 TCP/UDP/ICMP-echo packet NAT may translate (a whole datagram
/// or a first fragment), or `None` (the kernel's). Counts expiring TTLs
/// when `forwarding`. Untagged later fragments go to [`later_fragment`]
/// before this is asked.
#[inline(always)]
fn read(frame: &TcFrame, seen: &Classification, forwarding: bool) -> Option<Seen> {
    if seen.vlan_tags != 0 || seen.l3_offset != ETH_HEADER_LEN {
        return None;
    }
    if !matches!(
        seen.class,
        ProtoClass::Tcp4 | ProtoClass::Udp4 | ProtoClass::Icmp4
    ) {
        return None;
    }
    let ip = flow::ipv4_header(frame, forwarding)?;
    let tuple = read_tuple(frame, &ip, seen.l4_offset)?;
    Some(Seen {
        ip,
        l4: seen.l4_offset,
        tuple,
    })
}

#[inline(always)]
/// The NAT path for a frame `classified` as it arrived on a tap, the
/// uplink or an inside interface.
fn ingress(
    ctx: &TcContext,
    frame: &TcFrame,
    classified: &Classification,
    config: &NatConfig,
) -> i32 {
    if is_later_fragment(classified) {
        return later_fragment(ctx, frame, config, true);
    }
    if let Some(ip) = icmp_error_header(frame, classified) {
        if !flow::is_first_fragment(&ip)
            && let Some(action) = tc_icmp_error::reverse(ctx, frame, &ip, classified.l4_offset)
        {
            return action;
        }
        return TC_ACT_OK;
    }
    let Some(seen) = read(frame, classified, true) else {
        return TC_ACT_OK;
    };
    let tuple = seen.tuple;
    let now = now_ns();
    // SAFETY: skb is this run's __sk_buff.
    let on_uplink = unsafe { (*ctx.skb.skb).ifindex } == config.uplink_ifindex;
    match known_flow(&tuple, now, on_uplink) {
        Some((translation, hop)) => {
            return forward(ctx, &seen, config, translation, Some((hop, now)));
        }
        // Echo replies only ever match a reverse entry.
        None if tuple.echo_reply => return TC_ACT_OK,
        None => {}
    }
    if !tuple.may_open() {
        return TC_ACT_OK;
    }
    if (tuple.protocol == IPPROTO_TCP || tuple.protocol == IPPROTO_UDP)
        && let Some(target) = maps::dnat_rule(
            config,
            tuple.protocol,
            tuple.dst_port,
            tuple.src_addr,
            tuple.dst_addr,
        )
    {
        return forward(ctx, &seen, config, Translation::NewDnat(target, now), None);
    }
    if let Some(rule) = maps::snat_rule(config, tuple.src_addr) {
        return forward(ctx, &seen, config, Translation::NewSnat(rule, now), None);
    }
    TC_ACT_OK
}

/// The translation of an existing flow, its entry refreshed. Looks where
/// this interface's traffic usually is first: return traffic of SNAT flows
/// arrives on the uplink, new connections everywhere else (a tuple is in
/// one map at most, so the order changes only the cost; a lookup that
/// misses still reads a random bucket of a large table).
#[inline(always)]
fn known_flow(tuple: &Tuple, now: u64, on_uplink: bool) -> Option<(Translation, *mut CachedHop)> {
    let key = tuple.key();
    let reverse_first = on_uplink || tuple.echo_reply;
    if reverse_first {
        if let Some(entry) = NAT_IN.get_ptr_mut(key) {
            let (to, hop) = refresh(entry, now, tuple);
            return Some((Translation::Restore(to), hop));
        }
        if tuple.echo_reply {
            return None;
        }
    }
    if let Some(entry) = NAT_OUT.get_ptr_mut(key) {
        let (to, hop) = refresh(entry, now, tuple);
        return Some((Translation::Snat(to), hop));
    }
    if let Some(entry) = DNAT_OUT.get_ptr_mut(key) {
        let (to, hop) = refresh(entry, now, tuple);
        return Some((Translation::Dnat(to), hop));
    }
    if !reverse_first && let Some(entry) = NAT_IN.get_ptr_mut(key) {
        let (to, hop) = refresh(entry, now, tuple);
        return Some((Translation::Restore(to), hop));
    }
    None
}

/// A flow half found: its entry refreshed; its (address, port) and its
/// cached route.
#[inline(always)]
fn refresh(entry: *mut FlowEntry, now: u64, tuple: &Tuple) -> ((u32, u16), *mut CachedHop) {
    // SAFETY: `entry` is from a successful lookup in this run.
    let to = unsafe { flow::touch(entry, now, tuple.tcp_flags) };
    // SAFETY: as above; the field of a live map value.
    let hop = unsafe { &raw mut (*entry).hop };
    (to, hop)
}

enum Translation {
    /// Private destination of an SNAT flow's return traffic.
    Restore((u32, u16)),
    /// Destination of a known DNAT flow.
    Dnat((u32, u16)),
    /// First packet of a DNAT flow: pair created once routing succeeds.
    NewDnat(ethergate_common::DnatTarget, u64),
    /// Source of a known SNAT flow.
    Snat((u32, u16)),
    /// First packet of an SNAT flow: port allocated once routing succeeds.
    NewSnat(ethergate_common::SnatAddresses, u64),
}

/// Routes the frame as it will be after the translation (through the flow
/// half's cached route, `cache`, for a known flow), then rewrites and sends
/// it.
#[inline(always)]
fn forward(
    ctx: &TcContext,
    seen: &Seen,
    config: &NatConfig,
    translation: Translation,
    cache: Option<(*mut CachedHop, u64)>,
) -> i32 {
    let tuple = &seen.tuple;
    let dst_after = match &translation {
        Translation::Dnat((addr, _)) | Translation::Restore((addr, _)) => *addr,
        Translation::NewDnat(target, _) => target.to_addr,
        _ => tuple.dst_addr,
    };
    // SAFETY: skb is this run's __sk_buff; reading ifindex and gso_segs
    // is always allowed for tc programs.
    let (ingress, gso_segs) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).gso_segs) };
    // One packet may take the cached route if it fits; a GSO skb is always
    // looked up (the kernel sizes its segments).
    let size =
        SizeCheck::Skb((gso_segs <= 1).then(|| u16::from_be_bytes([seen.ip[2], seen.ip[3]])));
    // SAFETY: ctx.skb.skb is this program's context; `cache` is from a
    // successful lookup in this run.
    let route = unsafe {
        route::route_flow(
            ctx.skb.skb.cast(),
            ingress,
            &seen.ip,
            tuple.src_addr,
            dst_after,
            size,
            cache,
        )
    };
    let (fib, egress): (Option<NextHop>, u32) = match route {
        Route::Resolved(fib) => (Some(fib), fib.ifindex),
        Route::NoNeighbour { ifindex } => (None, ifindex),
        Route::FragNeeded => {
            // With DF the kernel answers "fragmentation needed" to the
            // client (PMTUD); without, it would fragment untranslated.
            if u16::from_be_bytes([seen.ip[6], seen.ip[7]]) & IP_DF != 0 {
                return TC_ACT_OK;
            }
            return dropped(DropReason::FragmentationNeeded);
        }
        Route::Elsewhere => {
            event(NatEvent::NotRoutedPassed);
            return TC_ACT_OK;
        }
    };
    let translation_kind = match translation {
        Translation::Snat(_) | Translation::NewSnat(..) => Kind::Snat,
        Translation::Restore(_) => Kind::Restore,
        _ => Kind::Dnat,
    };
    let snat = translation_kind == Kind::Snat;
    if snat && egress != config.uplink_ifindex {
        // Hub to private subnet (or back into the hub): plain routing,
        // no source translation; the kernel does it.
        event(NatEvent::NotRoutedPassed);
        return TC_ACT_OK;
    }
    let (side, new_addr, new_port) = match translation {
        Translation::Dnat((addr, port)) | Translation::Restore((addr, port)) => {
            (Side::Destination, addr, port)
        }
        Translation::NewDnat(target, now) => match flow::open_dnat(tuple, &target, config, now) {
            Ok((addr, port)) => (Side::Destination, addr, port),
            Err(reason) => return dropped(reason),
        },
        Translation::Snat((addr, port)) => (Side::Source, addr, port),
        Translation::NewSnat(rule, now) => match flow::allocate(tuple, &rule, config, now) {
            Ok((addr, port)) => (Side::Source, addr, port),
            Err(reason) => return dropped(reason),
        },
    };
    let ttl_proto = [seen.ip[8], seen.ip[9]];
    if rewrite(
        ctx,
        seen.l4,
        tuple,
        side,
        new_addr,
        new_port,
        Some(ttl_proto),
    )
    .is_err()
    {
        return dropped(DropReason::RedirectFailed);
    }
    if flow::is_first_fragment(&seen.ip) {
        let side = match side {
            Side::Source => FRAGMENT_REWRITES_SOURCE,
            Side::Destination => FRAGMENT_REWRITES_DESTINATION,
        };
        flow::remember_fragmented(FRAGMENTS_FORWARDED, &seen.ip, side, new_addr);
    }
    event(match translation_kind {
        Kind::Snat => NatEvent::TranslatedOut,
        Kind::Restore => NatEvent::TranslatedIn,
        Kind::Dnat => NatEvent::DnatTranslated,
    });
    send(ctx, fib.as_ref(), egress)
}

/// The IPv4 header of an untagged ICMP error (an error quotes the
/// datagram it is about), or `None`.
#[inline(always)]
fn icmp_error_header(frame: &TcFrame, seen: &Classification) -> Option<[u8; 20]> {
    if seen.class != ProtoClass::Icmp4
        || seen.vlan_tags != 0
        || seen.l3_offset != ETH_HEADER_LEN
        || !icmp_quote::is_error(frame, seen.l4_offset)
    {
        return None;
    }
    frame.header::<20>(ETH_HEADER_LEN).copied()
}

#[inline(always)]
fn is_later_fragment(seen: &Classification) -> bool {
    seen.class == ProtoClass::Ipv4Fragment
        && seen.vlan_tags == 0
        && seen.l3_offset == ETH_HEADER_LEN
}

/// A later fragment on the ingress path (`forwarding`: we route it) gets
/// its first fragment's address rewrite; see the module docs.
#[inline(always)]
fn later_fragment(ctx: &TcContext, frame: &TcFrame, config: &NatConfig, forwarding: bool) -> i32 {
    let Some(ip) = flow::ipv4_header(frame, forwarding) else {
        return TC_ACT_OK;
    };
    let fragment = flow::forwarded_fragment(&ip);
    // SAFETY: skb is this run's __sk_buff.
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: ctx.skb.skb is this program's context.
    let route = unsafe {
        route::lookup(
            ctx.skb.skb.cast(),
            ingress,
            &ip,
            0,
            fragment.src,
            fragment.route_dst,
        )
    };
    let Some(change) = fragment.change else {
        return match flow::untranslated_fragment(&route, config, fragment.src) {
            Ok(()) => TC_ACT_OK,
            Err(reason) => dropped(reason),
        };
    };
    let (fib, egress) = match route {
        Route::Resolved(fib) => (Some(fib), fib.ifindex),
        Route::NoNeighbour { ifindex } => (None, ifindex),
        Route::FragNeeded => return dropped(DropReason::FragmentationNeeded),
        Route::Elsewhere => {
            event(NatEvent::NotRoutedPassed);
            return TC_ACT_OK;
        }
    };
    let at = if change.destination {
        IP_DST_AT
    } else {
        IP_SRC_AT
    };
    if rewrite_address(ctx, at, change.old, change.new, Some([ip[8], ip[9]])).is_err() {
        return dropped(DropReason::RedirectFailed);
    }
    event(NatEvent::FragmentTranslated);
    send(ctx, fib.as_ref(), egress)
}

#[inline(always)]
fn egress(ctx: &TcContext) -> i32 {
    if maps::config().is_none() {
        return TC_ACT_OK;
    }
    let frame = TcFrame::new(ctx);
    let classified = classify(&frame);
    if is_later_fragment(&classified) {
        return later_fragment_to_hub(ctx, &frame);
    }
    if let Some(ip) = icmp_error_header(&frame, &classified) {
        return tap_icmp::restore(ctx, &frame, &ip, classified.l4_offset);
    }
    let Some(seen) = read(&frame, &classified, false) else {
        return TC_ACT_OK;
    };
    let tuple = seen.tuple;
    let Some(binding) = DNAT_IN.get_ptr_mut(tuple.key()) else {
        return TC_ACT_OK;
    };
    // SAFETY: pointer from a successful lookup.
    let (addr, port) = unsafe { flow::touch(binding, now_ns(), tuple.tcp_flags) };
    // The kernel routed this reply already (TTL and MACs are its business).
    if rewrite(ctx, seen.l4, &tuple, Side::Source, addr, port, None).is_err() {
        return dropped(DropReason::RedirectFailed);
    }
    if flow::is_first_fragment(&seen.ip) {
        flow::remember_fragmented(FRAGMENTS_TO_HUB, &seen.ip, FRAGMENT_REWRITES_SOURCE, addr);
    }
    event(NatEvent::DnatRestored);
    TC_ACT_OK
}

/// A later fragment of a DNAT reply on its way to a VPN client: the source
/// its first fragment got restored to.
#[inline(always)]
fn later_fragment_to_hub(ctx: &TcContext, frame: &TcFrame) -> i32 {
    let Some(ip) = frame.header::<20>(ETH_HEADER_LEN) else {
        return TC_ACT_OK;
    };
    let ip = *ip;
    let Some(rewrite) = flow::fragment_rewrite(FRAGMENTS_TO_HUB, &ip) else {
        return TC_ACT_OK;
    };
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    if rewrite_address(ctx, IP_SRC_AT, src, rewrite.new_addr, None).is_err() {
        return dropped(DropReason::RedirectFailed);
    }
    event(NatEvent::FragmentTranslated);
    TC_ACT_OK
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Snat,
    Restore,
    Dnat,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// Rewrites one side's address and port (or echo identifier) with the
/// checksum helpers; with `ttl_proto`, also decrements the TTL.
#[inline(always)]
fn rewrite(
    ctx: &TcContext,
    l4: usize,
    tuple: &Tuple,
    side: Side,
    new_addr: u32,
    new_port: u16,
    ttl_proto: Option<[u8; 2]>,
) -> Result<(), c_long> {
    let (old_addr, old_port, addr_at, port_at) = match side {
        Side::Source => (tuple.src_addr, tuple.src_port, IP_SRC_AT, 0),
        Side::Destination => (tuple.dst_addr, tuple.dst_port, IP_DST_AT, 2),
    };
    // The helpers take values as they sit in memory (network order).
    let (from_addr, to_addr) = (u64::from(old_addr.to_be()), u64::from(new_addr.to_be()));
    let (from_port, to_port) = (u64::from(old_port.to_be()), u64::from(new_port.to_be()));
    match tuple.protocol {
        IPPROTO_TCP => {
            let check = l4 + 16;
            ctx.l4_csum_replace(check, from_addr, to_addr, u64::from(BPF_F_PSEUDO_HDR) | 4)?;
            ctx.l4_csum_replace(check, from_port, to_port, 2)?;
            ctx.store(l4 + port_at, &new_port.to_be_bytes(), 0)?;
        }
        IPPROTO_UDP => {
            // MARK_MANGLED_0: a zero checksum ("none", RFC 768) stays zero
            // and a computed zero is sent as 0xffff.
            let check = l4 + 6;
            let mangled = u64::from(BPF_F_MARK_MANGLED_0);
            ctx.l4_csum_replace(
                check,
                from_addr,
                to_addr,
                u64::from(BPF_F_PSEUDO_HDR) | mangled | 4,
            )?;
            ctx.l4_csum_replace(check, from_port, to_port, mangled | 2)?;
            ctx.store(l4 + port_at, &new_port.to_be_bytes(), 0)?;
        }
        _ => {
            // ICMP echo: the identifier (request: our "source port";
            // reply: our "destination port") at byte 4; no pseudo-header.
            ctx.l4_csum_replace(l4 + 2, from_port, to_port, 2)?;
            ctx.store(l4 + 4, &new_port.to_be_bytes(), 0)?;
        }
    }
    rewrite_address(ctx, addr_at, old_addr, new_addr, ttl_proto)
}
