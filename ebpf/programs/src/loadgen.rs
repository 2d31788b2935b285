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
//! * `forward_lookup` is `forward` after one lookup of the packet's flow
//!   in a hash map of NAT-sized entries (`FLOOR_FLOWS`: the NAT's key,
//!   64-byte values), inserting it when absent: the least any NAT that
//!   keeps per-flow state does per packet, so its loss from 1 to 2^20
//!   flows is the floor of what a flow table costs on this machine.
//!
//! Flow `i` (0 ≤ i < `LOADGEN_FLOWS`, a power of two) goes from port
//! 1024 + (i mod 32768) of the template's source address + i / 32768 to
//! port 1024 + (i mod 32768) of the template's destination: a million
//! flows take 32 source addresses, and spread over 32,768 destination
//! ports, as real traffic spreads over destinations (a NAT has 64,512
//! public ports per destination address and port, so a million flows to
//! one destination could not exist behind any NAT).

use aya_ebpf::{
    bindings::{BPF_NOEXIST, xdp_action},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use ethergate_common::{
    FlowKey, ProtoClass, checksum,
    parse::{ETH_HEADER_LEN, IPPROTO_UDP, PacketBytes, classify},
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
/// `forward_lookup`'s flow table: one entry here, so that the data plane,
/// which loads the same object, pays nothing for it; the benchmark sizes
/// it at load.
#[map]
static FLOOR_FLOWS: HashMap<FlowKey, [u64; 8]> = HashMap::with_max_entries(1, 0);

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
    route_and_transmit(&ctx, &mut frame)
}

#[xdp]
pub fn forward_lookup(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame::new(&ctx);
    let seen = classify(&frame);
    if seen.class != ProtoClass::Udp4 {
        return xdp_action::XDP_PASS;
    }
    let (Some(&ip), Some(&ports)) = (
        frame.header::<20>(ETH_HEADER_LEN),
        frame.header::<4>(seen.l4_offset),
    ) else {
        return xdp_action::XDP_PASS;
    };
    let key = FlowKey::new(
        IPPROTO_UDP,
        u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
        u16::from_be_bytes([ports[0], ports[1]]),
        u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    );
    match FLOOR_FLOWS.get_ptr(key) {
        // SAFETY: a value of a live map, for this run; read as the NAT
        // reads its binding.
        Some(value) => unsafe {
            core::ptr::read_volatile(value.cast::<u64>());
        },
        None => {
            let _ = FLOOR_FLOWS.insert(key, [0; 8], BPF_NOEXIST as u64);
        }
    }
    route_and_transmit(&ctx, &mut frame)
}

/// Routes a classified UDP frame by the kernel's FIB and sends it on: what
/// any forwarder does, translation or not.
#[inline(always)]
fn route_and_transmit(ctx: &XdpContext, frame: &mut XdpFrame) -> u32 {
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
    if rewrite_ip(frame, 16, dst, dst, Some((hop.dmac, hop.smac))).is_none() {
        return xdp_action::XDP_PASS;
    }
    match transmit(ctx, hop.ifindex) {
        Nat::Forwarded(action) => action,
        _ => xdp_action::XDP_DROP,
    }
}
