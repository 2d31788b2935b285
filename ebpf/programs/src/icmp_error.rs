//! ICMP errors about SNAT flows, coming back from outside (RFC 5508
//! REQ-3/REQ-4): a router's "port unreachable", "fragmentation needed" or
//! "time exceeded" names the *public* tuple in its embedded header. The
//! error goes to the private host with the outer destination, the embedded
//! source address and port (or echo identifier), and all four checksums it
//! touches (outer IP, ICMP, embedded IP, embedded L4) restored.
//!
//! Invariant: an error is translated only when its embedded tuple is a
//! live `NAT_IN` flow and the outer destination is that flow's public
//! address; anything else (errors about the appliance's own traffic) goes
//! to the kernel untouched. Errors never refresh a flow's idle timer.

use aya_ebpf::programs::XdpContext;
use ethergate_common::{
    DropReason, FlowKey, NatEvent, checksum,
    parse::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PacketBytes},
};

use crate::{
    flow::{ICMP_ECHO_REQUEST, TCP_HEADER_LEN},
    icmp_quote::{self, ICMP_ERROR_HEADER_LEN, INNER_IP_LEN},
    maps::{NAT_IN, event, xdp_may_transmit},
    packet::XdpFrame,
    route::{self, Route},
    xdp_out::{Nat, dropped, rewrite_ip, transmit},
};

/// What changes in the embedded datagram.
pub struct Embedded {
    pub protocol: u8,
    /// Public (address, port) the flow used, and the private one to put
    /// back.
    pub public: (u32, u16),
    pub private: (u32, u16),
    /// Whether the embedded L4 checksum is present and must be updated.
    pub l4_check: bool,
}

#[inline(always)]
pub fn reverse(ctx: &XdpContext, frame: &mut XdpFrame, ip: &[u8; 20], l4: usize) -> Nat {
    let Some(embedded) = lookup(frame, ip, l4) else {
        return Nat::NotOurs;
    };
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let ingress = ctx.ingress_ifindex() as u32;
    // SAFETY: ctx.ctx is this program's xdp_md.
    let route = unsafe {
        route::lookup(
            ctx.ctx.cast(),
            ingress,
            ip,
            u16::from_be_bytes([ip[2], ip[3]]),
            src,
            embedded.private.0,
        )
    };
    let (fib, egress) = match route {
        Route::Resolved(fib) if xdp_may_transmit(fib.ifindex) => (Some(fib), fib.ifindex),
        // Next hop unresolved, or a tc-path egress: translated here, and
        // the kernel forwards it (its source is the remote router).
        Route::Resolved(_) | Route::NoNeighbour { .. } => (None, 0),
        Route::FragNeeded | Route::Elsewhere => return Nat::NotOurs,
    };
    if rewrite(frame, l4, &embedded, fib.as_ref().map(|f| (f.dmac, f.smac))).is_none() {
        return dropped(DropReason::RedirectFailed);
    }
    event(NatEvent::IcmpErrorTranslated);
    if fib.is_none() {
        event(NatEvent::TranslatedInPassed);
        return Nat::Passed;
    }
    transmit(ctx, egress)
}

/// The flow the error is about, if it is one of ours (XDP and tc).
#[inline(always)]
pub fn lookup<F: PacketBytes>(frame: &F, ip: &[u8; 20], l4: usize) -> Option<Embedded> {
    let quote = icmp_quote::quote(frame, ip, l4)?;
    let (public_addr, remote_addr) = quote.addrs();
    let outer_dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    if public_addr != outer_dst {
        return None;
    }
    let ports = quote.l4;
    let protocol = quote.ip[9];
    let (public_port, remote_port, l4_check) = match protocol {
        IPPROTO_TCP => (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
            // The TCP checksum sits at bytes 16-17, beyond the 8 bytes an
            // error must carry; update it only when it is there.
            quote.l4_at + TCP_HEADER_LEN <= quote.outer_end
                && frame.header::<TCP_HEADER_LEN>(quote.l4_at).is_some(),
        ),
        IPPROTO_UDP => (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
            // RFC 768: zero means "no checksum"; it stays zero.
            ports[6] != 0 || ports[7] != 0,
        ),
        IPPROTO_ICMP if ports[0] == ICMP_ECHO_REQUEST && ports[1] == 0 => {
            (u16::from_be_bytes([ports[4], ports[5]]), 0, true)
        }
        _ => return None,
    };
    let key = FlowKey::new(protocol, remote_addr, remote_port, public_addr, public_port);
    let private = NAT_IN.get_ptr(key)?;
    // SAFETY: pointer from a successful lookup, valid for this run.
    let private = unsafe { ((*private).binding.addr, (*private).binding.port) };
    Some(Embedded {
        protocol,
        public: (public_addr, public_port),
        private,
        l4_check,
    })
}

/// Writes the translation. `macs` = (destination, source) when we forward.
#[inline(always)]
fn rewrite(
    frame: &mut XdpFrame,
    l4: usize,
    e: &Embedded,
    macs: Option<([u8; 6], [u8; 6])>,
) -> Option<()> {
    let inner_ip_at = l4 + ICMP_ERROR_HEADER_LEN;
    let inner_l4_at = inner_ip_at + INNER_IP_LEN;
    let (old_addr, old_port) = e.public;
    let (new_addr, new_port) = e.private;

    // Embedded L4: the port (or identifier) and, if present, its checksum.
    // Every change is also a change of the ICMP message, whose checksum
    // covers the embedded bytes (all at even offsets: plain word updates).
    let mut icmp_delta: [(u16, u16); 3] = [(0, 0); 3];
    match e.protocol {
        IPPROTO_TCP => {
            if e.l4_check {
                let tcp = frame.header_mut::<TCP_HEADER_LEN>(inner_l4_at)?;
                let old = u16::from_be_bytes([tcp[16], tcp[17]]);
                let new = checksum::replace2(
                    checksum::replace4(old, old_addr, new_addr),
                    old_port,
                    new_port,
                );
                tcp[16..18].copy_from_slice(&new.to_be_bytes());
                icmp_delta[0] = (old, new);
            }
            let tcp = frame.header_mut::<8>(inner_l4_at)?;
            tcp[0..2].copy_from_slice(&new_port.to_be_bytes());
        }
        IPPROTO_UDP => {
            let udp = frame.header_mut::<8>(inner_l4_at)?;
            if e.l4_check {
                let old = u16::from_be_bytes([udp[6], udp[7]]);
                let new = checksum::udp_nonzero(checksum::replace2(
                    checksum::replace4(old, old_addr, new_addr),
                    old_port,
                    new_port,
                ));
                udp[6..8].copy_from_slice(&new.to_be_bytes());
                icmp_delta[0] = (old, new);
            }
            udp[0..2].copy_from_slice(&new_port.to_be_bytes());
        }
        _ => {
            // Embedded echo request: no pseudo-header, only the id word.
            let echo = frame.header_mut::<8>(inner_l4_at)?;
            let old = u16::from_be_bytes([echo[2], echo[3]]);
            let new = checksum::replace2(old, old_port, new_port);
            echo[2..4].copy_from_slice(&new.to_be_bytes());
            echo[4..6].copy_from_slice(&new_port.to_be_bytes());
            icmp_delta[0] = (old, new);
        }
    }
    icmp_delta[1] = (old_port, new_port);

    // Embedded IP header: source address and its checksum.
    let inner = frame.header_mut::<INNER_IP_LEN>(inner_ip_at)?;
    let old_inner_check = u16::from_be_bytes([inner[10], inner[11]]);
    let new_inner_check = checksum::replace4(old_inner_check, old_addr, new_addr);
    inner[10..12].copy_from_slice(&new_inner_check.to_be_bytes());
    inner[12..16].copy_from_slice(&new_addr.to_be_bytes());
    icmp_delta[2] = (old_inner_check, new_inner_check);

    let icmp = frame.header_mut::<4>(l4)?;
    let mut check = u16::from_be_bytes([icmp[2], icmp[3]]);
    check = checksum::replace4(check, old_addr, new_addr);
    for (old, new) in icmp_delta {
        // Unchanged words are skipped rather than "replaced": replacing 0
        // by 0 would turn a 0xffff checksum into its other zero, 0x0000.
        if old != new {
            check = checksum::replace2(check, old, new);
        }
    }
    icmp[2..4].copy_from_slice(&check.to_be_bytes());

    // Outer IP: destination (the public address) back to the private one.
    rewrite_ip(frame, 16, old_addr, new_addr, macs)
}
