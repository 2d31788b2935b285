//! How the XDP programs end a packet's path: the outcome ([`Nat`]), a
//! drop with its reason counted, `XDP_TX` or a redirect, and the IPv4
//! address rewrite that forwarding needs. Shared by the NAT path
//! (`nat.rs`) and the ICMP-error path (`icmp_error.rs`).

use aya_ebpf::{bindings::xdp_action, helpers::generated::bpf_redirect, programs::XdpContext};
use ethergate_common::{DropReason, checksum, parse::ETH_HEADER_LEN};

use crate::{maps::count_drop, packet::XdpFrame};

/// What the NAT path decided.
pub enum Nat {
    /// Not a translated flow: hand the untouched frame to the kernel.
    NotOurs,
    /// Translated, and handed to the kernel to route (`XDP_PASS`).
    Passed,
    /// Translated; this is the XDP action (`XDP_TX` or `XDP_REDIRECT`).
    Forwarded(u32),
    /// Dropped, reason already counted.
    Dropped,
}

/// The frame dropped, with its reason counted.
#[inline(always)]
pub fn dropped(reason: DropReason) -> Nat {
    count_drop(reason);
    Nat::Dropped
}

/// `XDP_TX` back out of the ingress interface, `bpf_redirect` otherwise.
#[inline(always)]
pub fn transmit(ctx: &XdpContext, egress: u32) -> Nat {
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

/// Outer IPv4 header: the address at `at` (12 source, 16 destination)
/// goes from `old_addr` to `new_addr`, checksum updated. `macs` =
/// (destination, source) when we forward: then the TTL drops by one too
/// and the Ethernet addresses are written.
#[inline(always)]
pub fn rewrite_ip(
    frame: &mut XdpFrame,
    at: usize,
    old_addr: u32,
    new_addr: u32,
    macs: Option<([u8; 6], [u8; 6])>,
) -> Option<()> {
    let ip = frame.header_mut::<20>(ETH_HEADER_LEN)?;
    let mut check = u16::from_be_bytes([ip[10], ip[11]]);
    check = checksum::replace4(check, old_addr, new_addr);
    if macs.is_some() {
        // We route, so TTL drops by one (RFC 1812 §5.3.1); TTL and
        // protocol share a 16-bit word.
        let ttl_proto = u16::from_be_bytes([ip[8], ip[9]]);
        check = checksum::replace2(check, ttl_proto, ttl_proto - 0x0100);
        ip[8] -= 1;
    }
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    ip[at..at + 4].copy_from_slice(&new_addr.to_be_bytes());
    if let Some((dmac, smac)) = macs {
        let eth = frame.header_mut::<12>(0)?;
        eth[0..6].copy_from_slice(&dmac);
        eth[6..12].copy_from_slice(&smac);
    }
    Some(())
}
