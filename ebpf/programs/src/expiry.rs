//! Flow expiry in the kernel: every flow pair has a `bpf_timer` in its
//! forward half (`NAT_OUT` / `DNAT_OUT`), armed when the pair is created
//! for the pair's idle timeout. When it fires, the callback compares the
//! later of the two halves' `last_seen_ns` with the timeout for the pair's
//! state (`idle_timeout_secs`: TCP established or not, UDP, ICMP) and
//! either re-arms for the time left or removes both halves (reverse half
//! first, so no reply is restored for a flow being removed), counts the
//! expiry and gives the source its quota back. Nothing walks the maps.
//!
//! Callbacks must be private functions (BTF linkage static, or the
//! verifier refuses them). A timer keeps its program alive: after a
//! restart, flows adopted from the previous process keep expiring through
//! that process's callback until they go, which the same map layout makes
//! correct.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_timer_init, bpf_timer_set_callback, bpf_timer_start},
};
use ethergate_common::{
    FlowKey, NatConfig, NatEvent,
    nat::{DEFAULT_TIMEOUT_SECS, idle_timeout_secs},
};

use crate::{
    maps::{self, DNAT_IN, DNAT_OUT, FlowEntry, FlowMap, NAT_IN, NAT_OUT, count_active, event},
    source_quota,
};

const CLOCK_MONOTONIC: u64 = 1;
const NS_PER_SEC: u64 = 1_000_000_000;

/// Arms the expiry timer of the SNAT pair just created for `tuple`.
#[inline(always)]
pub fn arm_snat(key: FlowKey, tcp_flags: u8, config: &NatConfig) {
    arm(&NAT_OUT, key, tcp_flags, config, expire_snat as *mut c_void);
}

/// Arms the expiry timer of the DNAT pair just created for `tuple`.
#[inline(always)]
pub fn arm_dnat(key: FlowKey, tcp_flags: u8, config: &NatConfig) {
    arm(
        &DNAT_OUT,
        key,
        tcp_flags,
        config,
        expire_dnat as *mut c_void,
    );
}

#[inline(always)]
fn arm(
    map: &'static FlowMap,
    key: FlowKey,
    tcp_flags: u8,
    config: &NatConfig,
    callback: *mut c_void,
) {
    let Some(entry) = map.get_ptr_mut(key) else {
        return;
    };
    let secs = timeout_secs(config, key.protocol, tcp_flags, 0);
    // SAFETY: `entry` points at a live element of `map`, whose timer field
    // the verifier knows from the map's BTF; a second init of the same
    // timer (another CPU won a race) fails harmlessly and is not started
    // twice.
    unsafe {
        let timer = &raw mut (*entry).timer;
        if bpf_timer_init(
            timer,
            core::ptr::from_ref(map).cast_mut().cast(),
            CLOCK_MONOTONIC,
        ) != 0
        {
            return;
        }
        bpf_timer_set_callback(timer, callback);
        bpf_timer_start(timer, u64::from(secs) * NS_PER_SEC, 0);
    }
}

/// The timeout for a pair in this state, never 0 (a config not written
/// yet reads as zeros).
#[inline(always)]
fn timeout_secs(config: &NatConfig, protocol: u8, flags_out: u8, flags_in: u8) -> u32 {
    match idle_timeout_secs(config, protocol, flags_out, flags_in) {
        0 => DEFAULT_TIMEOUT_SECS,
        secs => secs,
    }
}

extern "C" fn expire_snat(_map: *mut c_void, key: *mut FlowKey, entry: *mut FlowEntry) -> i32 {
    // SAFETY: the kernel calls this with the key and value of the element
    // whose timer fired, both valid for the call.
    unsafe { expire(&NAT_OUT, &NAT_IN, &*key, entry, false) };
    0
}

extern "C" fn expire_dnat(_map: *mut c_void, key: *mut FlowKey, entry: *mut FlowEntry) -> i32 {
    // SAFETY: as for expire_snat.
    unsafe { expire(&DNAT_OUT, &DNAT_IN, &*key, entry, true) };
    0
}

/// # Safety
/// `entry` is the live element of `forward` at `key`.
#[inline(always)]
unsafe fn expire(
    forward: &FlowMap,
    reverse: &FlowMap,
    key: &FlowKey,
    entry: *mut FlowEntry,
    dnat: bool,
) {
    let key = *key;
    // SAFETY: per the contract.
    let (fwd_last, fwd_flags, addr, port) = unsafe {
        let b = &(*entry).binding;
        (b.last_seen_ns, b.tcp_flags, b.addr, b.port)
    };
    let back_key = reverse_key(&key, addr, port, dnat);
    let (last, back_flags) = match reverse.get_ptr(back_key) {
        // SAFETY: pointer from a successful lookup, read once.
        Some(back) => unsafe {
            let b = &(*back).binding;
            (b.last_seen_ns.max(fwd_last), b.tcp_flags)
        },
        None => (fwd_last, 0),
    };
    let secs = match maps::config() {
        Some(config) => timeout_secs(config, key.protocol, fwd_flags, back_flags),
        None => DEFAULT_TIMEOUT_SECS,
    };
    let timeout = u64::from(secs) * NS_PER_SEC;
    let idle = maps::now_ns().saturating_sub(last);
    if idle < timeout {
        // SAFETY: the timer of a live element, initialised when armed.
        unsafe { bpf_timer_start(&raw mut (*entry).timer, timeout - idle, 0) };
        return;
    }
    let _ = reverse.remove(back_key);
    source_quota::uncount(key.src_addr);
    count_active(-1);
    event(NatEvent::FlowExpired);
    // Removing the element whose timer is running is allowed: the kernel
    // cancels the timer once this callback returns.
    let _ = forward.remove(key);
}

/// The reverse half's key of the pair whose forward half is `key` →
/// (`addr`, `port`): SNAT replies come from the remote to the public
/// address; DNAT replies from the rule's target to the client.
#[inline(always)]
fn reverse_key(key: &FlowKey, addr: u32, port: u16, dnat: bool) -> FlowKey {
    if dnat {
        FlowKey::new(key.protocol, addr, port, key.src_addr, key.src_port)
    } else {
        FlowKey::new(key.protocol, key.dst_addr, key.dst_port, addr, port)
    }
}
