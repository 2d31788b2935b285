//! XDP program for the uplink: classify, count, pass.
//!
//! Today it hands every frame to the kernel; it is the skeleton the NAT fast
//! path grows in (SNAT/DNAT will return `Tx`/`Redirect`/`Drop` verdicts with
//! their own counters). Every frame lands in exactly one `COUNTERS` slot, and
//! every malformed frame additionally in one `PARSE_ISSUES` slot.

use aya_ebpf::{macros::map, macros::xdp, maps::PerCpuArray, programs::XdpContext};
use ethergate_common::{
    PacketCounter, ParseIssue, Verdict,
    counters::{COUNTER_SLOTS, counter_index},
    parse::classify,
};

use crate::packet::XdpFrame;

#[map]
static COUNTERS: PerCpuArray<PacketCounter> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
static PARSE_ISSUES: PerCpuArray<u64> = PerCpuArray::with_max_entries(ParseIssue::COUNT, 0);

#[xdp]
pub fn uplink(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let seen = classify(&frame);
    let verdict = Verdict::Pass;
    if let Some(issue) = seen.issue
        && let Some(slot) = PARSE_ISSUES.get_ptr_mut(issue as u32)
    {
        // SAFETY: per-CPU slot, so no other CPU writes it concurrently; the
        // pointer comes from a successful map lookup.
        unsafe { *slot += 1 };
    }
    count(
        counter_index(seen.class, verdict),
        ctx.data_end() - ctx.data(),
    );
    verdict.xdp_action()
}

#[inline(always)]
fn count(index: u32, bytes: usize) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, written only by this CPU with preemption
        // disabled; the pointer comes from a successful map lookup.
        unsafe {
            (*slot).packets += 1;
            (*slot).bytes += bytes as u64;
        }
    }
}
