//! ICMP errors about SNAT flows on the tc ingress path (`nat_ingress`, so
//! interfaces in tc mode and what XDP hands over): the translation
//! `icmp_error.rs` does in XDP — outer destination, embedded source address
//! and port (or echo identifier), embedded IP and L4 checksums, and the
//! ICMP checksum that covers them — written with the skb helpers, which
//! keep the skb's checksum state right. Then routed and sent like any
//! translated packet (TTL − 1, `bpf_redirect` or `bpf_redirect_neigh`).
//!
//! Invariant: only errors whose embedded tuple is a live `NAT_IN` flow and
//! whose outer destination is that flow's public address are touched; all
//! reads happen before the first write.

use aya_ebpf::{cty::c_long, programs::TcContext};
use ethergate_common::{
    NatEvent, checksum,
    parse::{ETH_HEADER_LEN, IPPROTO_TCP, IPPROTO_UDP, PacketBytes},
};

use crate::{
    flow::TCP_HEADER_LEN,
    icmp_error::{self, Embedded},
    icmp_quote::{ICMP_ERROR_HEADER_LEN, INNER_IP_LEN},
    maps::event,
    route::{self, Route},
    tc_frame::TcFrame,
};

/// Old and new values of every word the translation changes inside the
/// ICMP message, read before any write.
struct Plan {
    embedded: Embedded,
    /// Embedded L4 checksum: frame offset, old, new.
    l4_check: Option<(usize, u16, u16)>,
    /// Embedded IP checksum: old, new.
    ip_check: (u16, u16),
}

/// Translates an error about an SNAT flow and sends it on; `None` when it
/// is not about one of ours (the kernel's, untouched).
#[inline(always)]
pub fn reverse(ctx: &TcContext, frame: &TcFrame, ip: &[u8; 20], l4: usize) -> Option<i32> {
    let plan = plan(frame, ip, l4)?;
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    // SAFETY: skb is this run's __sk_buff; ctx.skb.skb is the context.
    let route = unsafe {
        let ingress = (*ctx.skb.skb).ifindex;
        route::lookup(
            ctx.skb.skb.cast(),
            ingress,
            ip,
            0,
            src,
            plan.embedded.private.0,
        )
    };
    let (fib, egress) = match route {
        Route::Resolved(fib) => (Some(fib), fib.ifindex),
        Route::NoNeighbour { ifindex } => (None, ifindex),
        Route::FragNeeded | Route::Elsewhere => return None,
    };
    if write(ctx, l4, &plan, [ip[8], ip[9]]).is_err() {
        return Some(crate::tc_out::dropped(
            ethergate_common::DropReason::RedirectFailed,
        ));
    }
    event(NatEvent::IcmpErrorTranslated);
    Some(crate::tc_out::send(ctx, fib.as_ref(), egress))
}

#[inline(always)]
fn plan(frame: &TcFrame, ip: &[u8; 20], l4: usize) -> Option<Plan> {
    if ip[8] <= 1 {
        return None;
    }
    let embedded = icmp_error::lookup(frame, ip, l4)?;
    let inner_ip_at = l4 + ICMP_ERROR_HEADER_LEN;
    let inner_l4_at = inner_ip_at + INNER_IP_LEN;
    let (old_addr, old_port) = embedded.public;
    let (new_addr, new_port) = embedded.private;
    let inner = frame.header::<INNER_IP_LEN>(inner_ip_at)?;
    let old_ip_check = u16::from_be_bytes([inner[10], inner[11]]);
    let ip_check = (
        old_ip_check,
        checksum::replace4(old_ip_check, old_addr, new_addr),
    );
    let pseudo = |old: u16| {
        checksum::replace2(
            checksum::replace4(old, old_addr, new_addr),
            old_port,
            new_port,
        )
    };
    let l4_check = match embedded.protocol {
        IPPROTO_TCP if embedded.l4_check => {
            let tcp = frame.header::<TCP_HEADER_LEN>(inner_l4_at)?;
            let old = u16::from_be_bytes([tcp[16], tcp[17]]);
            Some((inner_l4_at + 16, old, pseudo(old)))
        }
        IPPROTO_UDP if embedded.l4_check => {
            let udp = frame.header::<8>(inner_l4_at)?;
            let old = u16::from_be_bytes([udp[6], udp[7]]);
            Some((inner_l4_at + 6, old, checksum::udp_nonzero(pseudo(old))))
        }
        IPPROTO_TCP | IPPROTO_UDP => None,
        _ => {
            // Embedded echo request: no pseudo-header, only the id word.
            let echo = frame.header::<8>(inner_l4_at)?;
            let old = u16::from_be_bytes([echo[2], echo[3]]);
            Some((
                inner_l4_at + 2,
                old,
                checksum::replace2(old, old_port, new_port),
            ))
        }
    };
    Some(Plan {
        embedded,
        l4_check,
        ip_check,
    })
}

#[inline(always)]
fn write(ctx: &TcContext, l4: usize, plan: &Plan, ttl_proto: [u8; 2]) -> Result<(), c_long> {
    let icmp_check = l4 + 2;
    let inner_ip_at = l4 + ICMP_ERROR_HEADER_LEN;
    let inner_l4_at = inner_ip_at + INNER_IP_LEN;
    let e = &plan.embedded;
    let (old_addr, old_port) = e.public;
    let (new_addr, new_port) = e.private;
    let be4 = |v: u32| u64::from(v.to_be());
    let be2 = |v: u16| u64::from(v.to_be());

    // Each change inside the quote is also a change of the ICMP message.
    if let Some((at, old, new)) = plan.l4_check
        && old != new
    {
        ctx.l4_csum_replace(icmp_check, be2(old), be2(new), 2)?;
        ctx.store(at, &new.to_be_bytes(), 0)?;
    }
    let port_at = if e.protocol == IPPROTO_TCP || e.protocol == IPPROTO_UDP {
        inner_l4_at
    } else {
        inner_l4_at + 4
    };
    ctx.l4_csum_replace(icmp_check, be2(old_port), be2(new_port), 2)?;
    ctx.store(port_at, &new_port.to_be_bytes(), 0)?;
    let (old, new) = plan.ip_check;
    if old != new {
        ctx.l4_csum_replace(icmp_check, be2(old), be2(new), 2)?;
        ctx.store(inner_ip_at + 10, &new.to_be_bytes(), 0)?;
    }
    ctx.l4_csum_replace(icmp_check, be4(old_addr), be4(new_addr), 4)?;
    ctx.store(inner_ip_at + 12, &new_addr.to_be_bytes(), 0)?;
    // Outer destination (ICMP has no pseudo-header), and TTL − 1.
    crate::tc_out::rewrite_address(
        ctx,
        ETH_HEADER_LEN + 16,
        old_addr,
        new_addr,
        Some(ttl_proto),
    )
}
