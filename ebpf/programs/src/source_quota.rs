//! The per-source flow quota (`max_flows_per_source`): how many flows
//! each inside source holds, counted up when a pair is created and down
//! when its timer expires it.

use aya_ebpf::bindings::BPF_NOEXIST;
use ethergate_common::NatConfig;

use crate::maps::SOURCE_FLOWS;

/// Whether `src` may open another flow under `max_flows_per_source`.
#[inline(always)]
pub fn has_room(config: &NatConfig, src: u32) -> bool {
    let quota = config.max_flows_per_source;
    if quota == 0 {
        return true;
    }
    match SOURCE_FLOWS.get_ptr(src) {
        Some(count) => {
            // SAFETY: pointer from a successful lookup, read once.
            let held = unsafe { core::ptr::read_volatile(count) };
            held < quota
        }
        None => true,
    }
}

/// One more flow held by `src`.
#[inline(always)]
pub fn count(src: u32) {
    if let Some(count) = SOURCE_FLOWS.get_ptr_mut(src) {
        // SAFETY: pointer from a successful lookup. Two CPUs creating flows
        // for one source at the same instant may lose an increment (no
        // atomics on this target); the sweeper rewrites the true count.
        unsafe { *count += 1 };
        return;
    }
    // First flow of this source (or another CPU inserted it just now, in
    // which case the count is off by one until the next sweep rewrites it).
    let _ = SOURCE_FLOWS.insert(src, 1, BPF_NOEXIST as u64);
}

/// One flow fewer held by `src` (its pair expired).
#[inline(always)]
pub fn uncount(src: u32) {
    if let Some(count) = SOURCE_FLOWS.get_ptr_mut(src) {
        // SAFETY: pointer from a successful lookup; see count_source_flow.
        unsafe { *count = (*count).saturating_sub(1) };
    }
}
