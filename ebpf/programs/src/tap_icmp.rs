//! ICMP errors about DNAT flows on their way to a VPN client (tap egress),
//! RFC 5508 REQ-4: the embedded datagram is the client's packet *after*
//! DNAT (destination = the rule's target), which the client never sent;
//! its destination address and port go back to the original ones, and so
//! does the outer source when the target itself sent the error (e.g. port
//! unreachable from the server). Embedded IP and L4 checksums are
//! recomputed incrementally; the ICMP checksum, which covers the quote, is
//! updated with `bpf_l4_csum_replace` for every changed word.
//!
//! Invariant: only errors whose embedded tuple is a live `DNAT_IN` flow
//! and whose outer destination is that flow's client are touched; all
//! reads happen before the first write.

use aya_ebpf::{bindings::TC_ACT_OK, cty::c_long, programs::TcContext};
use ethergate_common::{
    FlowKey, NatEvent, checksum,
    parse::{ETH_HEADER_LEN, IPPROTO_TCP, IPPROTO_UDP, PacketBytes},
};

use crate::{
    flow::TCP_HEADER_LEN,
    icmp_quote::{self, ICMP_ERROR_HEADER_LEN, INNER_IP_LEN},
    maps::{DNAT_IN, event},
    tc_frame::TcFrame,
};

/// Everything the rewrite needs, read before any write.
struct Plan {
    /// The rule's target (embedded destination now) and the original.
    target: (u32, u16),
    original: (u32, u16),
    /// Embedded IP checksum before and after.
    ip_check: (u16, u16),
    /// Embedded L4 checksum offset (in the frame) and values, if present.
    l4_check: Option<(usize, u16, u16)>,
    /// Whether the outer source is the target (the server sent the error).
    outer_source: bool,
}

/// Restores an error about a DNAT flow; `TC_ACT_OK` either way (a failed
/// helper leaves a frame the client drops on a bad checksum, and counts
/// nothing: the helpers only fail on an skb they could not make writable).
#[inline(always)]
pub fn restore(ctx: &TcContext, frame: &TcFrame, ip: &[u8; 20], l4: usize) -> i32 {
    if let Some(plan) = plan(frame, ip, l4)
        && write(ctx, l4, &plan).is_ok()
    {
        event(NatEvent::IcmpErrorTranslated);
    }
    TC_ACT_OK
}

#[inline(always)]
fn plan(frame: &TcFrame, ip: &[u8; 20], l4: usize) -> Option<Plan> {
    let quote = icmp_quote::quote(frame, ip, l4)?;
    let inner = quote.ip;
    let protocol = inner[9];
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return None;
    }
    let (client, target_addr) = quote.addrs();
    let outer_src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let outer_dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    if outer_dst != client {
        return None;
    }
    let (inner_l4_at, outer_end, ports) = (quote.l4_at, quote.outer_end, quote.l4);
    let client_port = u16::from_be_bytes([ports[0], ports[1]]);
    let target_port = u16::from_be_bytes([ports[2], ports[3]]);
    let key = FlowKey::new(protocol, target_addr, target_port, client, client_port);
    let original = DNAT_IN.get_ptr(key)?;
    // SAFETY: pointer from a successful lookup, valid for this run.
    let original = unsafe { ((*original).binding.addr, (*original).binding.port) };

    let old_ip_check = u16::from_be_bytes([inner[10], inner[11]]);
    let new_ip_check = checksum::replace4(old_ip_check, target_addr, original.0);
    let update = |old: u16| {
        checksum::replace2(
            checksum::replace4(old, target_addr, original.0),
            target_port,
            original.1,
        )
    };
    let l4_check = if protocol == IPPROTO_UDP {
        let old = u16::from_be_bytes([ports[6], ports[7]]);
        // RFC 768: zero means "no checksum" and stays zero.
        (old != 0).then(|| (inner_l4_at + 6, old, checksum::udp_nonzero(update(old))))
    } else if inner_l4_at + TCP_HEADER_LEN <= outer_end {
        // The TCP checksum is beyond the 8 bytes an error must carry.
        let tcp = frame.header::<TCP_HEADER_LEN>(inner_l4_at)?;
        let old = u16::from_be_bytes([tcp[16], tcp[17]]);
        Some((inner_l4_at + 16, old, update(old)))
    } else {
        None
    };
    Some(Plan {
        target: (target_addr, target_port),
        original,
        ip_check: (old_ip_check, new_ip_check),
        l4_check,
        outer_source: outer_src == target_addr,
    })
}

#[inline(always)]
fn write(ctx: &TcContext, l4: usize, plan: &Plan) -> Result<(), c_long> {
    let icmp_check = l4 + 2;
    let inner_ip_at = l4 + ICMP_ERROR_HEADER_LEN;
    let inner_l4_at = inner_ip_at + INNER_IP_LEN;
    let (target_addr, target_port) = plan.target;
    let (original_addr, original_port) = plan.original;
    let be4 = |v: u32| u64::from(v.to_be());
    let be2 = |v: u16| u64::from(v.to_be());

    // Embedded destination address, IP checksum and port; each change is
    // also a change of the ICMP message.
    ctx.l4_csum_replace(icmp_check, be4(target_addr), be4(original_addr), 4)?;
    ctx.store(inner_ip_at + 16, &original_addr.to_be_bytes(), 0)?;
    let (old, new) = plan.ip_check;
    ctx.l4_csum_replace(icmp_check, be2(old), be2(new), 2)?;
    ctx.store(inner_ip_at + 10, &new.to_be_bytes(), 0)?;
    ctx.l4_csum_replace(icmp_check, be2(target_port), be2(original_port), 2)?;
    ctx.store(inner_l4_at + 2, &original_port.to_be_bytes(), 0)?;
    if let Some((at, old, new)) = plan.l4_check {
        ctx.l4_csum_replace(icmp_check, be2(old), be2(new), 2)?;
        ctx.store(at, &new.to_be_bytes(), 0)?;
    }
    if plan.outer_source {
        // ICMP has no pseudo-header: only the IP checksum changes.
        ctx.l3_csum_replace(ETH_HEADER_LEN + 10, be4(target_addr), be4(original_addr), 4)?;
        ctx.store(ETH_HEADER_LEN + 12, &original_addr.to_be_bytes(), 0)?;
    }
    Ok(())
}
