//! How the tc programs end a packet's path: drop it with its reason
//! counted, send it with the next hop's MACs or through the kernel's
//! neighbour resolution, and rewrite an IPv4 address with its checksum.
//! Shared by the NAT path (`tap.rs`) and the ICMP-error path
//! (`tc_icmp_error.rs`), which both end packets this way.

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    cty::c_long,
    helpers::generated::{bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use ethergate_common::{DropReason, parse::ETH_HEADER_LEN};

use crate::{maps::count_drop, route::NextHop};

pub const IP_CHECK_AT: usize = ETH_HEADER_LEN + 10;
pub const IP_TTL_AT: usize = ETH_HEADER_LEN + 8;

#[inline(always)]
pub fn dropped(reason: DropReason) -> i32 {
    count_drop(reason);
    TC_ACT_SHOT
}

/// Sends a translated (and TTL-decremented) frame out of `egress`: with
/// the MACs the FIB gave, or through `bpf_redirect_neigh` when the next hop
/// is not resolved yet.
#[inline(always)]
pub fn send(ctx: &TcContext, fib: Option<&NextHop>, egress: u32) -> i32 {
    let action = match fib {
        Some(fib) => {
            if ctx.store(0, &fib.dmac, 0).is_err() || ctx.store(6, &fib.smac, 0).is_err() {
                return dropped(DropReason::RedirectFailed);
            }
            // SAFETY: plain helper call; flags 0 = egress of `egress`.
            unsafe { bpf_redirect(egress, 0) }
        }
        // SAFETY: plain helper call; no nexthop given, so the kernel routes
        // the (translated) destination itself and resolves its neighbour.
        None => unsafe { bpf_redirect_neigh(egress, core::ptr::null_mut(), 0, 0) },
    };
    if action == TC_ACT_SHOT as c_long {
        return dropped(DropReason::RedirectFailed);
    }
    action as i32
}

/// The IPv4 header's address at `addr_at` from `old_addr` to `new_addr`,
/// checksum updated; with `ttl_proto` (we route it) the TTL drops by one.
#[inline(always)]
pub fn rewrite_address(
    ctx: &TcContext,
    addr_at: usize,
    old_addr: u32,
    new_addr: u32,
    ttl_proto: Option<[u8; 2]>,
) -> Result<(), c_long> {
    let (from_addr, to_addr) = (u64::from(old_addr.to_be()), u64::from(new_addr.to_be()));
    ctx.l3_csum_replace(IP_CHECK_AT, from_addr, to_addr, 4)?;
    ctx.store(addr_at, &new_addr.to_be_bytes(), 0)?;
    if let Some([ttl, proto]) = ttl_proto {
        let old = u16::from_be_bytes([ttl, proto]);
        let new = old - 0x0100;
        ctx.l3_csum_replace(
            IP_CHECK_AT,
            u64::from(old.to_be()),
            u64::from(new.to_be()),
            2,
        )?;
        ctx.store(IP_TTL_AT, &[ttl - 1], 0)?;
    }
    Ok(())
}
