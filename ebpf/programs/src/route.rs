//! Routing a frame as it will be after translation (`bpf_fib_lookup`),
//! for both the XDP and the tc programs.
//!
//! The lookup runs on the *post-translation* destination and the
//! pre-translation source, before anything is written: a frame is only
//! rewritten once it is known where it goes.

use ethergate_common::{CachedHop, ROUTE_EPOCH_SHIFT};

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
        bpf_fib_lookup as FibParams,
    },
    cty::c_void,
    helpers::generated::bpf_fib_lookup,
    macros::map,
    maps::PerCpuArray,
};

const AF_INET: u8 = 2;

/// The helper's in/out parameter block, one per CPU. On the stack it would
/// have to be zeroed first, and the BPF build turns that into a call of
/// the byte-wise `memset` subprogram (bpf-linker expands memcpy but leaves
/// memset a call: about 4 % of a forwarding core, ~45 ns a packet, when
/// measured); here only the inputs the helper reads are written. Programs
/// do not nest on one CPU, so one block per CPU is enough.
#[map]
static FIB_PARAMS: PerCpuArray<FibParams> = PerCpuArray::with_max_entries(1, 0);

/// Where a routed packet goes: the egress interface and the Ethernet
/// addresses to write.
#[derive(Clone, Copy)]
pub struct NextHop {
    pub ifindex: u32,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
}

/// What the FIB said.
pub enum Route {
    /// Next hop resolved.
    Resolved(NextHop),
    /// A route out of `ifindex`, but the next hop's MAC is unknown.
    NoNeighbour { ifindex: u32 },
    /// Larger than the egress MTU.
    FragNeeded,
    /// Local, unreachable, blackhole, forwarding off...: the kernel's.
    Elsewhere,
}

impl Route {
    /// Whether the packet would leave through `ifindex` (one too large
    /// for the egress MTU counts: it would, fragmented by the kernel).
    #[inline(always)]
    pub fn leaves_through(&self, ifindex: u32) -> bool {
        match self {
            Route::Resolved(fib) => fib.ifindex == ifindex,
            Route::NoNeighbour { ifindex: out } => *out == ifindex,
            Route::FragNeeded => true,
            Route::Elsewhere => false,
        }
    }
}

/// Looks up `src → dst` as received on `ingress_ifindex`. `tot_len` is
/// the IP length to check against the egress MTU; tc passes 0 instead,
/// which makes the kernel check the skb itself (`is_skb_forwardable`,
/// which knows that a 64 KiB GSO skb leaves as MTU-sized segments; with a
/// length given it would answer FRAG_NEEDED for every GSO skb).
///
/// # Safety
/// `ctx` is the running program's context pointer (`xdp_md` or
/// `__sk_buff`).
#[inline(always)]
pub unsafe fn lookup(
    ctx: *mut c_void,
    ingress_ifindex: u32,
    ip: &[u8; 20],
    tot_len: u16,
    src: u32,
    dst: u32,
) -> Route {
    let Some(fib) = FIB_PARAMS.get_ptr_mut(0) else {
        return Route::Elsewhere;
    };
    // SAFETY: this CPU's block, which nothing else uses while the program
    // runs.
    let fib = unsafe { &mut *fib };
    // Every input of an IPv4 lookup without flags; the rest is output.
    fib.family = AF_INET;
    fib.l4_protocol = ip[9];
    fib.sport = 0;
    fib.dport = 0;
    fib.__bindgen_anon_1.tot_len = tot_len;
    fib.ifindex = ingress_ifindex;
    fib.__bindgen_anon_2.flowinfo = 0;
    fib.__bindgen_anon_2.tos = ip[1];
    fib.__bindgen_anon_3.ipv4_src = src.to_be();
    fib.__bindgen_anon_4.ipv4_dst = dst.to_be();
    // SAFETY: ctx per the contract; fib is a live, correctly sized
    // bpf_fib_lookup the helper may write.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx,
            fib as *mut FibParams,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    } as u32;
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => Route::Resolved(NextHop {
            ifindex: fib.ifindex,
            dmac: fib.dmac,
            smac: fib.smac,
        }),
        // The helper fills in the egress ifindex before it looks for the
        // neighbour.
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::NoNeighbour {
            ifindex: fib.ifindex,
        },
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Route::FragNeeded,
        _ => Route::Elsewhere,
    }
}

/// How a packet's size is checked against the egress MTU.
#[derive(Clone, Copy)]
pub enum SizeCheck {
    /// XDP: the lookup checks this IP length; a cached route holds for
    /// packets no longer than one that was looked up.
    Length(u16),
    /// tc: the kernel checks the skb itself (lookup length 0); a cached
    /// route holds for a single packet of this IP length that fits the
    /// egress MTU. `None` (a GSO skb, whose segments only the kernel's own
    /// check can size): always looked up.
    Skb(Option<u16>),
}

/// The route of a packet `src → dst` (after translation) of a known flow:
/// from the flow half's cache (`cache`: the entry's [`CachedHop`] and the
/// time) when it still holds, else from the FIB, whose success is then
/// cached. Without `cache` (a new flow), a plain [`lookup`].
///
/// # Safety
/// As [`lookup`]; `cache`'s pointer is into a flow entry from a successful
/// lookup in this program run.
#[inline(always)]
pub unsafe fn route_flow(
    ctx: *mut c_void,
    ingress: u32,
    ip: &[u8; 20],
    src: u32,
    dst: u32,
    size: SizeCheck,
    cache: Option<(*mut CachedHop, u64)>,
) -> Route {
    let (lookup_len, cached_len) = match size {
        SizeCheck::Length(len) => (len, Some(len)),
        SizeCheck::Skb(len) => (0, len),
    };
    let generation = crate::maps::route_generation();
    if let (Some((hop, now)), Some(len)) = (cache, cached_len) {
        let epoch = (now >> ROUTE_EPOCH_SHIFT) as u32;
        // SAFETY: per the contract.
        if let Some(next) = cached(unsafe { &*hop }, generation, epoch, ingress, len) {
            return Route::Resolved(next);
        }
    }
    // SAFETY: per the contract.
    let route = unsafe { lookup(ctx, ingress, ip, lookup_len, src, dst) };
    if let (Route::Resolved(next), Some((hop, now))) = (&route, cache) {
        // A lookup that checked a length allows that length; one that let
        // the kernel check the skb reports the egress MTU.
        let max_len = if lookup_len != 0 {
            lookup_len
        } else {
            egress_mtu()
        };
        let epoch = (now >> ROUTE_EPOCH_SHIFT) as u32;
        // SAFETY: per the contract.
        remember(
            unsafe { &mut *hop },
            next,
            generation,
            epoch,
            ingress,
            max_len,
        );
    }
    route
}

/// The egress MTU this CPU's last successful lookup without a length
/// reported (`mtu_result`, the union partner of `tot_len`); 0 (no cache
/// hit possible) when nothing was looked up.
#[inline(always)]
fn egress_mtu() -> u16 {
    FIB_PARAMS
        .get(0)
        // SAFETY: a plain integer of the union the helper wrote.
        .map(|fib| unsafe { fib.__bindgen_anon_1.mtu_result })
        .unwrap_or(0)
}

/// `hop`'s next hop, if the cache still holds for a packet of `tot_len`
/// bytes that arrived on `ingress` (the rules are on [`CachedHop`]).
#[inline(always)]
pub fn cached(
    hop: &CachedHop,
    generation: u32,
    epoch: u32,
    ingress: u32,
    tot_len: u16,
) -> Option<NextHop> {
    let valid = generation != 0
        && hop.generation == generation
        && hop.epoch == epoch
        && hop.ingress_ifindex == ingress
        && tot_len <= hop.max_len;
    valid.then_some(NextHop {
        ifindex: hop.egress_ifindex,
        dmac: hop.dmac,
        smac: hop.smac,
    })
}

/// Caches a successful lookup in `hop`. Another CPU may read `hop` while
/// this one writes it: the generation goes to 0 first and back last, so a
/// reader sees the old route, the new one, or an empty cache (on x86 the
/// stores and loads keep their order; elsewhere the worst case is one
/// packet sent with the route of a moment before).
#[inline(always)]
pub fn remember(
    hop: &mut CachedHop,
    next: &NextHop,
    generation: u32,
    epoch: u32,
    ingress: u32,
    tot_len: u16,
) {
    if generation == 0 {
        return;
    }
    let stamp = &raw mut hop.generation;
    // SAFETY: `stamp` points into `hop`, which we hold mutably.
    unsafe { stamp.write_volatile(0) };
    hop.epoch = epoch;
    hop.ingress_ifindex = ingress;
    hop.egress_ifindex = next.ifindex;
    hop.max_len = tot_len;
    hop.dmac = next.dmac;
    hop.smac = next.smac;
    // SAFETY: as above.
    unsafe { stamp.write_volatile(generation) };
}
