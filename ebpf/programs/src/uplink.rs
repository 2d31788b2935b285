//! XDP program for the uplink: classify, NAT (return traffic of SNAT flows;
//! in one-armed mode also the private subnet's egress), count. When the
//! uplink runs in tc, `nat_ingress` counts into the same maps.
//!
//! Frames that are not a translated flow go to the kernel untouched. Every
//! frame lands in exactly one `COUNTERS` slot under the verdict it got
//! (`Redirect`/`Tx` when translated, `Drop` when NAT dropped it), and every
//! malformed frame additionally in one `PARSE_ISSUES` slot.

use aya_ebpf::{macros::map, macros::xdp, maps::PerCpuArray, programs::XdpContext};
use ethergate_common::{
    PacketCounter, ParseIssue, Verdict,
    counters::{COUNTER_SLOTS, counter_index},
    parse::{Classification, classify},
};

use crate::{nat, packet::XdpFrame, xdp_out::Nat};

#[map]
static COUNTERS: PerCpuArray<PacketCounter> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
static PARSE_ISSUES: PerCpuArray<u64> = PerCpuArray::with_max_entries(ParseIssue::COUNT, 0);

#[xdp]
pub fn uplink(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame::new(&ctx);
    let seen = classify(&frame);
    let (verdict, action) = match nat::process(&ctx, &mut frame, &seen, nat::ArrivedOn::Uplink) {
        Nat::NotOurs | Nat::Passed => (Verdict::Pass, Verdict::Pass.xdp_action()),
        Nat::Dropped => (Verdict::Drop, Verdict::Drop.xdp_action()),
        Nat::Forwarded(action) if action == Verdict::Tx.xdp_action() => (Verdict::Tx, action),
        Nat::Forwarded(action) => (Verdict::Redirect, action),
    };
    count_frame(&seen, verdict, 1, ctx.data_end() - ctx.data());
    action
}

/// Counts what the uplink received under its class and verdict — `frames`
/// frames of `bytes` together (more than one when the tc path sees a
/// GRO/GSO skb) — and its parse issue if it has one. Called by this
/// program, and by the tc path when the uplink runs in tc.
#[inline(always)]
pub fn count_frame(seen: &Classification, verdict: Verdict, frames: u64, bytes: usize) {
    if let Some(issue) = seen.issue
        && let Some(slot) = PARSE_ISSUES.get_ptr_mut(issue as u32)
    {
        // SAFETY: per-CPU slot, so no other CPU writes it concurrently; the
        // pointer comes from a successful map lookup.
        unsafe { *slot += 1 };
    }
    count(counter_index(seen.class, verdict), frames, bytes);
}

#[inline(always)]
fn count(index: u32, frames: u64, bytes: usize) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, written only by this CPU with preemption
        // disabled; the pointer comes from a successful map lookup.
        unsafe {
            (*slot).packets += frames;
            (*slot).bytes += bytes as u64;
        }
    }
}
