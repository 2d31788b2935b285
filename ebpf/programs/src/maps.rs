//! The NAT maps, and the small helpers every NAT path uses to count.
//!
//! Rule maps come in two sets (`*_RULES_0`, `*_RULES_1`); `NAT_CONFIG`
//! names the live one. Userspace fills the idle set and flips the index, so
//! a reload changes every rule at once and never touches a flow map.

use aya_ebpf::{
    bindings::bpf_timer,
    btf_maps,
    helpers::generated::bpf_ktime_get_coarse_ns,
    macros::{btf_map, map},
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
};
use ethergate_common::{
    CachedHop, DnatTarget, DropReason, FlowKey, FragmentKey, FragmentRewrite, NatBinding,
    NatConfig, NatEvent, SnatAddresses, dnat::dnat_rule_key,
};

/// Default flow-table size; userspace resizes the flow maps to
/// `[nat.limits].max_flows` before loading.
const DEFAULT_MAX_FLOWS: usize = ethergate_common::nat::DEFAULT_MAX_FLOWS as usize;
/// Rules per set: one per `[[nat.snat]]` / `[[nat.dnat]]` entry, far more
/// than a config holds.
const MAX_RULES: u32 = 256;

/// Datagrams whose later fragments are still expected.
const MAX_FRAGMENTED_DATAGRAMS: u32 = 16_384;
/// Inside sources whose flows are counted for the per-source quota.
const MAX_COUNTED_SOURCES: u32 = 65_536;
/// ifindexes `TC_INTERFACES` covers; a higher one is treated as tc mode.
const TC_INTERFACE_SLOTS: u32 = 4096;

/// A flow map's value: the binding, and the expiry timer. Only the
/// forward half's timer is armed (`expiry.rs`); it expires the pair. The
/// same layout as `ethergate_common::FlowEntry`, whose timer is opaque
/// bytes; here it must be the kernel's `struct bpf_timer`, which the
/// verifier finds by its BTF name.
#[repr(C)]
pub struct FlowEntry {
    pub binding: NatBinding,
    pub timer: bpf_timer,
    pub hop: CachedHop,
}

const _: () = assert!(
    core::mem::size_of::<FlowEntry>() == core::mem::size_of::<ethergate_common::FlowEntry>()
);

impl FlowEntry {
    /// A new entry: the timer zeroed, as the kernel requires on insert.
    #[inline(always)]
    pub fn new(binding: NatBinding) -> Self {
        // SAFETY: all-zero is a valid bpf_timer (an unset one).
        let timer = unsafe { core::mem::zeroed() };
        Self {
            binding,
            timer,
            hop: CachedHop::default(),
        }
    }
}

pub type FlowMap = btf_maps::HashMap<FlowKey, FlowEntry, DEFAULT_MAX_FLOWS>;

// Flow maps are plain (preallocated) hash maps, not LRU: when the table is
// full a *new* flow is refused and counted (`table_full`), and no
// established flow is ever evicted to make room for a flood. BTF-defined,
// because their values hold a bpf_timer.

#[btf_map]
pub static NAT_OUT: FlowMap = FlowMap::new();

#[btf_map]
pub static NAT_IN: FlowMap = FlowMap::new();

#[btf_map]
pub static DNAT_OUT: FlowMap = FlowMap::new();

#[btf_map]
pub static DNAT_IN: FlowMap = FlowMap::new();

/// Live flow pairs (SNAT and DNAT): +1 when a pair is created, −1 when its
/// timer expires it; summed over CPUs by userspace. Pinned with the flows.
#[map]
pub static ACTIVE_FLOWS: PerCpuArray<i64> = PerCpuArray::with_max_entries(1, 0);

/// First fragment's tuple → the address its translation wrote, for the
/// later fragments of the same datagram. LRU: an entry is only needed for
/// the few milliseconds a datagram's fragments take, and losing one costs
/// that datagram (counted as `fragment_unknown`), never a flow.
#[map]
pub static FRAGMENTS: LruHashMap<FragmentKey, FragmentRewrite> =
    LruHashMap::with_max_entries(MAX_FRAGMENTED_DATAGRAMS, 0);

/// Inside source address → flows it holds, for `max_flows_per_source`.
/// The kernel counts up as flows are created; the userspace sweeper writes
/// the true count after every sweep. LRU: a source evicted from here starts
/// again from zero, which errs on the side of letting traffic through.
#[map]
pub static SOURCE_FLOWS: LruHashMap<u32, u32> =
    LruHashMap::with_max_entries(MAX_COUNTED_SOURCES, 0);

/// [ifindex] = 1 for every interface whose NAT runs in tc (veth and other
/// devices XDP cannot redirect into reliably). XDP never redirects or
/// transmits into these; it passes the frame to the tc program instead. An
/// array, not a hash: the JIT inlines its lookup, and it is on every
/// forwarded packet's path. An ifindex beyond it counts as tc (safe, and
/// rare: the kernel hands out small ifindexes first).
#[map]
pub static TC_INTERFACES: Array<u8> = Array::with_max_entries(TC_INTERFACE_SLOTS, 0);

/// Private source prefix (network byte order) → public addresses.
#[map]
static SNAT_RULES_0: LpmTrie<[u8; 4], SnatAddresses> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map]
static SNAT_RULES_1: LpmTrie<[u8; 4], SnatAddresses> = LpmTrie::with_max_entries(MAX_RULES, 0);

/// (protocol, port, source prefix) → DNAT target; see `ethergate_common::dnat`.
#[map]
static DNAT_RULES_0: LpmTrie<[u8; 8], DnatTarget> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map]
static DNAT_RULES_1: LpmTrie<[u8; 8], DnatTarget> = LpmTrie::with_max_entries(MAX_RULES, 0);

#[map]
pub static NAT_CONFIG: Array<NatConfig> = Array::with_max_entries(1, 0);

/// The route generation a [`CachedHop`] must carry to be used. Userspace
/// starts it at a random non-zero value (so that a cache written under
/// another process's generation is never taken for current) and bumps it
/// on every routing change it hears of; 0 (nothing written yet) turns the
/// cache off.
#[map]
static ROUTE_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

#[map]
static NAT_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NatEvent::COUNT, 0);

#[map]
static NAT_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

/// The current route generation (see [`ROUTE_GENERATION`]).
#[inline(always)]
pub fn route_generation() -> u32 {
    ROUTE_GENERATION.get(0).copied().unwrap_or(0)
}

/// The live config, or `None` when NAT is off (no uplink configured).
#[inline(always)]
pub fn config() -> Option<&'static NatConfig> {
    let config = NAT_CONFIG.get(0)?;
    (config.uplink_ifindex != 0).then_some(config)
}

/// The SNAT rule (longest prefix) for a private source.
#[inline(always)]
pub fn snat_rule(config: &NatConfig, src: u32) -> Option<SnatAddresses> {
    let key = Key::new(32, src.to_be_bytes());
    let rule = if config.rule_set == 0 {
        SNAT_RULES_0.get(&key)
    } else {
        SNAT_RULES_1.get(&key)
    };
    rule.copied()
}

/// The DNAT rule for (protocol, destination port, source), if its
/// destination condition holds too.
#[inline(always)]
pub fn dnat_rule(
    config: &NatConfig,
    protocol: u8,
    port: u16,
    src: u32,
    dst: u32,
) -> Option<DnatTarget> {
    let key = Key::new(64, dnat_rule_key(protocol, port, src));
    let rule = if config.rule_set == 0 {
        DNAT_RULES_0.get(&key)
    } else {
        DNAT_RULES_1.get(&key)
    };
    let rule = *rule?;
    rule.matches_destination(dst).then_some(rule)
}

/// Whether XDP may `bpf_redirect` (or `XDP_TX`) a frame into `ifindex`.
#[inline(always)]
pub fn xdp_may_transmit(ifindex: u32) -> bool {
    TC_INTERFACES.get(ifindex).is_some_and(|tc| *tc == 0)
}

/// CLOCK_MONOTONIC at tick resolution: the coarse clock is a load of the
/// time the last tick wrote, where `bpf_ktime_get_ns` reads the clock
/// source (a TSC read and its conversion: about 3 % of a forwarding core
/// measured). Flow timeouts are seconds; a few ms of
/// lag never matters, and the coarse clock never runs ahead of the fine
/// one, so `now - last_seen` stays non-negative for either.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_coarse_ns() }
}

#[inline(always)]
pub fn event(event: NatEvent) {
    bump(&NAT_EVENTS, event as u32);
}

/// Counts a drop; the caller drops the frame.
#[inline(always)]
pub fn count_drop(reason: DropReason) {
    bump(&NAT_DROPS, reason as u32);
}

/// One more (`delta` = 1) or one fewer (−1) live flow pair.
#[inline(always)]
pub fn count_active(delta: i64) {
    if let Some(slot) = ACTIVE_FLOWS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, written only by this CPU with preemption
        // disabled (timer callbacks too).
        unsafe { *slot += delta };
    }
}

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, written only by this CPU with preemption
        // disabled; the pointer comes from a successful map lookup.
        unsafe { *slot += 1 };
    }
}
