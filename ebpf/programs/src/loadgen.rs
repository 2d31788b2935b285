//! Bench-only programs for `cargo xtask bench`'s NAT rows, which need a
//! packet source that costs the sender almost nothing and a sink that
//! counts without a socket.
//!
//! * `loadgen` is run with BPF_PROG_TEST_RUN in live-frames mode on the
//!   sending host's interface (`BPF_F_TEST_XDP_LIVE_FRAMES`, what
//!   xdp-trafficgen does): every run writes the headers of the template
//!   (`LOADGEN_HEADERS`: Ethernet, IPv4, UDP of a datagram from the private
//!   subnet) into the frame, gives it the next flow's addresses and ports,
//!   and returns `XDP_TX`, which sends it. The whole header is
//!   written each time because the kernel recycles the pages of frames
//!   that went through the stack, with whatever the stack wrote into them
//!   (MACs of the next hop, a decremented TTL).
//! * `sink` runs on the receiving host's interface: counts and drops IPv4
//!   UDP (the generated datagrams) and passes the rest, so ARP and pings
//!   still work there.
//! * `forward` is the rows' ceiling for any XDP NAT: a minimal XDP router
//!   on the NAT's inside interface (the kernel's FIB, TTL and Ethernet
//!   addresses rewritten, `bpf_redirect`), with nothing translated and no
//!   flow kept. What it reaches is what the topology allows an XDP
//!   program that does any work at all.
//!
//! Flow `i` (0 ≤ i < `LOADGEN_FLOWS`, a power of two) goes from port
//! 1024 + (i mod 32768) of the template's source address + i / 32768 to
//! port 1024 + (i mod 32768) of the template's destination: a million
//! flows take 32 source addresses, and spread over 32,768 destination
//! ports, as real traffic spreads over destinations (a NAT has 64,512
//! public ports per destination address and port, so a million flows to
//! one destination could not exist behind any NAT).

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use ethergate_common::{
    ProtoClass, checksum,
    parse::{ETH_HEADER_LEN, PacketBytes, classify},
};

use crate::{
    packet::XdpFrame,
    route::{self, Route},
    xdp_out::{Nat, rewrite_ip, transmit},
};

const PORTS_PER_ADDRESS: u32 = 32_768;

/// Ethernet + IPv4 (no options) + UDP.
const HEADERS: usize = 14 + 20 + 8;

/// [0]: flows − 1 (flows a power of two).
#[map]
static LOADGEN_FLOWS: Array<u32> = Array::with_max_entries(1, 0);
/// [0]: the template's headers, source address ending in .0.
#[map]
static LOADGEN_HEADERS: Array<[u8; HEADERS]> = Array::with_max_entries(1, 0);
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
    let Some(template) = LOADGEN_HEADERS.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let mut frame = XdpFrame::new(&ctx);
    let Some(headers) = frame.header_mut::<HEADERS>(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // A non-overlapping copy: the plain assignment compiled to a call of
    // the byte-wise `memmove` subprogram (~20 ns a frame, the generator's
    // largest cost after the test run itself); this one is inlined.
    // SAFETY: two distinct live buffers of HEADERS bytes (a map value and
    // the frame).
    unsafe {
        core::ptr::copy_nonoverlapping(template.as_ptr(), headers.as_mut_ptr(), HEADERS);
    }
    let ip = &mut headers[14..34];
    // The template carries the base address; flow i adds i / 32768.
    let base = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let new = base + (i / PORTS_PER_ADDRESS);
    let check = checksum::replace4(u16::from_be_bytes([ip[10], ip[11]]), base, new);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    ip[12..16].copy_from_slice(&new.to_be_bytes());
    // The template's UDP checksum is zero ("none", RFC 768): nothing to
    // recompute.
    let port = (1024 + (i % PORTS_PER_ADDRESS) as u16).to_be_bytes();
    headers[34..36].copy_from_slice(&port);
    headers[36..38].copy_from_slice(&port);
    xdp_action::XDP_TX
}

#[xdp]
pub fn sink(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    if classify(&frame).class != ProtoClass::Udp4 {
        return xdp_action::XDP_PASS;
    }
    if let Some(count) = SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, written only by this CPU.
        unsafe { *count += 1 };
    }
    xdp_action::XDP_DROP
}

#[xdp]
pub fn forward(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame::new(&ctx);
    if classify(&frame).class != ProtoClass::Udp4 {
        return xdp_action::XDP_PASS;
    }
    let Some(&ip) = frame.header::<20>(ETH_HEADER_LEN) else {
        return xdp_action::XDP_PASS;
    };
    // No options, and a TTL that survives the hop; the rest is the
    // kernel's (ICMP time exceeded and the like).
    if ip[0] != 0x45 || ip[8] <= 1 {
        return xdp_action::XDP_PASS;
    }
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let tot_len = u16::from_be_bytes([ip[2], ip[3]]);
    // SAFETY: the running program's own context.
    let route = unsafe {
        route::lookup(
            ctx.ctx.cast(),
            ctx.ingress_ifindex() as u32,
            &ip,
            tot_len,
            src,
            dst,
        )
    };
    let Route::Resolved(hop) = route else {
        return xdp_action::XDP_PASS;
    };
    // The destination stays: only the TTL and the MACs change.
    if rewrite_ip(&mut frame, 16, dst, dst, Some((hop.dmac, hop.smac))).is_none() {
        return xdp_action::XDP_PASS;
    }
    match transmit(&ctx, hop.ifindex) {
        Nat::Forwarded(action) => action,
        _ => xdp_action::XDP_DROP,
    }
}
