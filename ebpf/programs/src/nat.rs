//! SNAT (masquerade) in XDP, both directions, shared by the `uplink` and
//! `inside` programs.
//!
//! * Reverse first: a TCP/UDP/ICMP-echo-reply frame whose tuple is in
//!   `NAT_IN` gets its destination restored, is routed with
//!   `bpf_fib_lookup`, and leaves through `bpf_redirect` (or `XDP_TX` when
//!   it goes back out the interface it came in on: one-armed mode). If the
//!   next hop's MAC is not known yet, the translated frame goes to the
//!   kernel, which resolves the neighbour (safe: its source is the remote).
//!   ICMP errors about a flow go to `icmp_error`.
//! * Then forward: a frame from a source in the live SNAT rules that the
//!   FIB sends out of the uplink gets its source rewritten to a public
//!   (address, port) — the existing one from `NAT_OUT`, or a newly
//!   allocated one — and is redirected the same way.
//! * Fragments: a first fragment is translated like any packet, and the
//!   address it got is remembered (`FRAGMENTS`) for the later fragments,
//!   which carry no ports.
//! * What XDP cannot finish itself — the next hop is not resolved yet, or
//!   the egress interface runs the tc path (veth) — it passes untouched:
//!   the tc program on the same interface translates it and sends it with
//!   `bpf_redirect_neigh`. Nothing is dropped for want of a neighbour.
//! * Everything else is [`Nat::NotOurs`]: the caller hands it to the kernel
//!   byte for byte. VLAN-tagged frames, expiring TTLs and ICMP other than
//!   echo and errors about our flows always are; the uplink's egress guard
//!   (`guard.rs`) makes sure none of them leaves with a private source.
//!
//! Invariant: a frame is either forwarded fully translated (addresses,
//! ports, TTL, MACs and every checksum updated), passed fully translated
//! (addresses, ports, checksums; the kernel does TTL and MACs), or not
//! modified at all. All checks that can fail happen before the first write.

use aya_ebpf::programs::XdpContext;
use ethergate_common::{
    CachedHop, DropReason, NatConfig, NatEvent, ProtoClass, SnatAddresses, checksum,
    nat::{FRAGMENT_REWRITES_DESTINATION, FRAGMENT_REWRITES_SOURCE, FRAGMENTS_FORWARDED},
    parse::{Classification, ETH_HEADER_LEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    flow::{self, ICMP_HEADER_LEN, IP_DF, TCP_HEADER_LEN, Tuple, UDP_HEADER_LEN, read_tuple},
    icmp_error, icmp_quote,
    maps::{self, NAT_IN, NAT_OUT, event, now_ns, xdp_may_transmit},
    packet::XdpFrame,
    route::{self, NextHop, Route, SizeCheck},
    xdp_out::{Nat, dropped, rewrite_ip, transmit},
};

/// Which program runs: on the uplink or on an inside interface.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ArrivedOn {
    Uplink,
    Inside,
}

#[inline(always)]
pub fn process(
    ctx: &XdpContext,
    frame: &mut XdpFrame,
    seen: &Classification,
    arrived_on: ArrivedOn,
) -> Nat {
    let Some(config) = maps::config() else {
        return Nat::NotOurs;
    };
    // Tagged frames would have to be re-tagged for the egress side; the
    // kernel's VLAN devices do that, so they take the slow path.
    if seen.vlan_tags != 0 || seen.l3_offset != ETH_HEADER_LEN {
        return Nat::NotOurs;
    }
    if seen.class == ProtoClass::Ipv4Fragment {
        return later_fragment(ctx, frame, config);
    }
    if !matches!(
        seen.class,
        ProtoClass::Tcp4 | ProtoClass::Udp4 | ProtoClass::Icmp4
    ) {
        return Nat::NotOurs;
    }
    // The classifier sent later fragments elsewhere: this is a whole
    // datagram or a first fragment, which holds the L4 header.
    let Some(ip) = flow::ipv4_header(frame, true) else {
        return Nat::NotOurs;
    };
    let l4 = seen.l4_offset;
    if ip[9] == IPPROTO_ICMP && !flow::is_first_fragment(&ip) && icmp_quote::is_error(frame, l4) {
        return icmp_error::reverse(ctx, frame, &ip, l4);
    }
    let Some(tuple) = read_tuple(frame, &ip, l4) else {
        return Nat::NotOurs;
    };
    let now = now_ns();
    // Look where this interface's traffic usually is first: return traffic
    // arrives on the uplink, egress on the inside interfaces. (No tuple is
    // in both maps, so the order changes only the cost.)
    let reverse_first = arrived_on == ArrivedOn::Uplink;
    let packet = Packet {
        ip: &ip,
        l4,
        tuple: &tuple,
    };
    for reverse in [reverse_first, !reverse_first] {
        // Echo replies only ever match a reverse entry.
        if !reverse && tuple.echo_reply {
            continue;
        }
        if let Some(nat) = known_flow(ctx, frame, &packet, config, now, reverse) {
            return nat;
        }
    }
    if tuple.echo_reply {
        return Nat::NotOurs;
    }
    if !tuple.may_open() {
        return Nat::NotOurs;
    }
    let Some(rule) = maps::snat_rule(config, tuple.src_addr) else {
        return Nat::NotOurs;
    };
    let rewrite = Rewrite::NewSource(rule, now);
    forward(ctx, frame, &packet, config, rewrite, None)
}

/// The packet being translated: its IPv4 header, where its L4 header
/// starts, and its flow tuple.
#[derive(Clone, Copy)]
struct Packet<'a> {
    ip: &'a [u8; 20],
    l4: usize,
    tuple: &'a Tuple,
}

/// The translation of an existing flow, if `tuple` is in `NAT_IN`
/// (`reverse`) or `NAT_OUT`.
#[inline(always)]
fn known_flow(
    ctx: &XdpContext,
    frame: &mut XdpFrame,
    packet: &Packet,
    config: &NatConfig,
    now: u64,
    reverse: bool,
) -> Option<Nat> {
    let tuple = packet.tuple;
    let key = tuple.key();
    let entry = if reverse {
        NAT_IN.get_ptr_mut(key)
    } else {
        NAT_OUT.get_ptr_mut(key)
    }?;
    // SAFETY: pointer from a successful lookup.
    let (addr, port) = unsafe { flow::touch(entry, now, tuple.tcp_flags) };
    let rewrite = if reverse {
        Rewrite::Destination(addr, port)
    } else {
        Rewrite::Source(addr, port)
    };
    // SAFETY: as above; the field of a live map value.
    let hop = unsafe { &raw mut (*entry).hop };
    Some(forward(
        ctx,
        frame,
        packet,
        config,
        rewrite,
        Some((hop, now)),
    ))
}

enum Rewrite {
    /// Reverse direction: restore the private destination.
    Destination(u32, u16),
    /// Forward direction of a known flow.
    Source(u32, u16),
    /// Forward direction, first packet: allocate after routing succeeds.
    NewSource(SnatAddresses, u64),
}

/// Routes the frame as it will be after the rewrite, then (only if routing
/// succeeded) rewrites and redirects it. `cache`: the flow half's cached
/// route and the time, for a known flow.
#[inline(always)]
fn forward(
    ctx: &XdpContext,
    frame: &mut XdpFrame,
    packet: &Packet,
    config: &NatConfig,
    rewrite: Rewrite,
    cache: Option<(*mut CachedHop, u64)>,
) -> Nat {
    let Packet { ip, l4, tuple } = *packet;
    let dst_after = match rewrite {
        Rewrite::Destination(addr, _) => addr,
        _ => tuple.dst_addr,
    };
    let route = route_flow(ctx, ip, tuple.src_addr, dst_after, cache);
    let fib = match route {
        Route::Resolved(fib) => fib,
        Route::NoNeighbour { ifindex } => {
            return match rewrite {
                Rewrite::Destination(addr, port) => {
                    // Return traffic toward a host the kernel has not
                    // talked to yet (a VPN client behind the tap, a quiet
                    // private host): translate it and let the kernel
                    // resolve the neighbour and forward it.
                    if rewrite_frame(frame, l4, tuple, addr, port, true, None).is_none() {
                        return dropped(DropReason::RedirectFailed);
                    }
                    event(NatEvent::TranslatedInPassed);
                    Nat::Passed
                }
                // Private to private: the kernel resolves and forwards it.
                _ if ifindex != config.uplink_ifindex => {
                    event(NatEvent::NotRoutedPassed);
                    Nat::NotOurs
                }
                // Passing it to the kernel untranslated would leak the
                // private source; the tc program behind us translates it
                // and lets `bpf_redirect_neigh` resolve the next hop.
                _ => handed_to_tc(),
            };
        }
        Route::FragNeeded => {
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            // With DF the kernel answers "fragmentation needed" (PMTUD),
            // which is right; without it, it would fragment untranslated.
            if frag & IP_DF != 0 {
                return Nat::NotOurs;
            }
            return dropped(DropReason::FragmentationNeeded);
        }
        Route::Elsewhere => {
            event(NatEvent::NotRoutedPassed);
            return Nat::NotOurs;
        }
    };
    let egress = fib.ifindex;
    if !xdp_may_transmit(egress) {
        // A veth or other device whose NAT runs in tc: an XDP redirect into
        // it could be lost without a trace. tc sends it as an skb.
        return handed_to_tc();
    }
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
            match flow::allocate(tuple, &rule, config, now) {
                Ok((addr, port)) => (addr, port, false),
                Err(reason) => return dropped(reason),
            }
        }
    };
    if rewrite_frame(frame, l4, tuple, new_addr, new_port, reverse, Some(&fib)).is_none() {
        // Headers were all read before; unreachable in practice, and the
        // frame is unmodified if the IP header itself was not writable.
        return dropped(DropReason::RedirectFailed);
    }
    if flow::is_first_fragment(ip) {
        let side = if reverse {
            FRAGMENT_REWRITES_DESTINATION
        } else {
            FRAGMENT_REWRITES_SOURCE
        };
        flow::remember_fragmented(FRAGMENTS_FORWARDED, ip, side, new_addr);
    }
    event(if reverse {
        NatEvent::TranslatedIn
    } else {
        NatEvent::TranslatedOut
    });
    transmit(ctx, egress)
}

/// The route of a packet `src → dst` (after translation), through the
/// flow half's cache when it has one ([`route::route_flow`]).
#[inline(always)]
fn route_flow(
    ctx: &XdpContext,
    ip: &[u8; 20],
    src: u32,
    dst: u32,
    cache: Option<(*mut CachedHop, u64)>,
) -> Route {
    let ingress = ctx.ingress_ifindex() as u32;
    let size = SizeCheck::Length(u16::from_be_bytes([ip[2], ip[3]]));
    // SAFETY: ctx.ctx is this program's xdp_md; `cache` is from a
    // successful lookup in this run.
    unsafe { route::route_flow(ctx.ctx.cast(), ingress, ip, src, dst, size, cache) }
}

/// Passed untouched to the tc program on the same interface.
#[inline(always)]
fn handed_to_tc() -> Nat {
    event(NatEvent::HandedToTc);
    Nat::NotOurs
}

/// A later fragment (no L4 header): gets the address rewrite its first
/// fragment got. One whose first fragment was not seen is dropped and
/// counted if it would leave the uplink from a source we translate (it
/// cannot be translated, and must not leak); anything else is the kernel's.
#[inline(always)]
fn later_fragment(ctx: &XdpContext, frame: &mut XdpFrame, config: &NatConfig) -> Nat {
    let Some(ip) = flow::ipv4_header(frame, true) else {
        return Nat::NotOurs;
    };
    let fragment = flow::forwarded_fragment(&ip);
    let ingress = ctx.ingress_ifindex() as u32;
    // SAFETY: ctx.ctx is this program's xdp_md.
    let route = unsafe {
        route::lookup(
            ctx.ctx.cast(),
            ingress,
            &ip,
            u16::from_be_bytes([ip[2], ip[3]]),
            fragment.src,
            fragment.route_dst,
        )
    };
    let Some(change) = fragment.change else {
        return match flow::untranslated_fragment(&route, config, fragment.src) {
            Ok(()) => Nat::NotOurs,
            Err(reason) => dropped(reason),
        };
    };
    let at = if change.destination { 16 } else { 12 };
    let fib = match route {
        Route::Resolved(fib) if xdp_may_transmit(fib.ifindex) => fib,
        Route::Resolved(_) => return handed_to_tc(),
        Route::NoNeighbour { .. } if change.destination => {
            // As for whole packets: translated, the kernel forwards it.
            if rewrite_ip(frame, at, change.old, change.new, None).is_none() {
                return dropped(DropReason::RedirectFailed);
            }
            event(NatEvent::FragmentTranslated);
            event(NatEvent::TranslatedInPassed);
            return Nat::Passed;
        }
        Route::NoNeighbour { .. } => return handed_to_tc(),
        Route::FragNeeded => return dropped(DropReason::FragmentationNeeded),
        Route::Elsewhere => {
            event(NatEvent::NotRoutedPassed);
            return Nat::NotOurs;
        }
    };
    if rewrite_ip(
        frame,
        at,
        change.old,
        change.new,
        Some((fib.dmac, fib.smac)),
    )
    .is_none()
    {
        return dropped(DropReason::RedirectFailed);
    }
    event(NatEvent::FragmentTranslated);
    transmit(ctx, fib.ifindex)
}

/// Writes the translation: `reverse` rewrites the destination, otherwise
/// the source. With `fib` the frame is forwarded by us (TTL − 1, MACs);
/// without, the kernel forwards it and does both. Returns `None` (frame
/// untouched) only if a header that was readable a moment ago is not
/// writable.
#[inline(always)]
fn rewrite_frame(
    frame: &mut XdpFrame,
    l4: usize,
    tuple: &Tuple,
    new_addr: u32,
    new_port: u16,
    reverse: bool,
    fib: Option<&NextHop>,
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
    let at = if reverse { 16 } else { 12 };
    rewrite_ip(frame, at, old_addr, new_addr, fib.map(|f| (f.dmac, f.smac)))
}
