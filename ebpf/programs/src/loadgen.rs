//! Bench-only programs for `cargo xtask bench`'s NAT rows, which need a
//! packet source that costs the sender almost nothing and a sink that
//! counts without a socket.
//!
//! * `loadgen` is run with BPF_PROG_TEST_RUN in live-frames mode on the
//!   sending host's interface (`BPF_F_TEST_XDP_LIVE_FRAMES`, what
//!   xdp-trafficgen does): every run takes the template frame (a 64-byte
//!   UDP datagram from the private subnet), gives it the next flow's source
//!   address and port, and returns `XDP_TX`, which sends it.
//! * `sink` runs on the receiving host's interface: counts and drops.
//!
//! Flow `i` (0 ≤ i < `LOADGEN_FLOWS`, a power of two) leaves from port
//! 1024 + (i mod 32768) of the template's source address + i / 32768, so a
//! million flows take 32 addresses.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use ethergate_common::checksum;

use crate::packet::XdpFrame;

const PORTS_PER_ADDRESS: u32 = 32_768;

/// [0]: flows − 1 (flows a power of two).
#[map]
static LOADGEN_FLOWS: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static LOADGEN_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
#[map]
static SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn loadgen(ctx: XdpContext) -> u32 {
    let mask = LOADGEN_FLOWS.get(0).copied().unwrap_or(0);
    let Some(seq) = LOADGEN_SEQ.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: per-CPU slot, written only by this CPU.
    let i = unsafe {
        let i = *seq & mask;
        *seq = i.wrapping_add(1);
        i
    };
    let mut frame = XdpFrame::new(&ctx);
    let Some(ip) = frame.header_mut::<20>(14) else {
        return xdp_action::XDP_ABORTED;
    };
    let old = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    // The template carries the base address; flow i adds i / 32768.
    let base = old & !0xff;
    let new = base + (i / PORTS_PER_ADDRESS);
    let check = checksum::replace4(u16::from_be_bytes([ip[10], ip[11]]), old, new);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    ip[12..16].copy_from_slice(&new.to_be_bytes());
    let Some(udp) = frame.header_mut::<8>(34) else {
        return xdp_action::XDP_ABORTED;
    };
    let port = 1024 + (i % PORTS_PER_ADDRESS) as u16;
    udp[0..2].copy_from_slice(&port.to_be_bytes());
    // No UDP checksum (RFC 768 allows it for IPv4): nothing to recompute.
    udp[6..8].copy_from_slice(&[0, 0]);
    xdp_action::XDP_TX
}

#[xdp]
pub fn sink(_ctx: XdpContext) -> u32 {
    if let Some(count) = SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, written only by this CPU.
        unsafe { *count += 1 };
    }
    xdp_action::XDP_DROP
}
