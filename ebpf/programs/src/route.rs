//! Routing a frame as it will be after translation (`bpf_fib_lookup`),
//! for both the XDP and the tc programs.
//!
//! The lookup runs on the *post-translation* destination and the
//! pre-translation source, before anything is written: a frame is only
//! rewritten once it is known where it goes.

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
        bpf_fib_lookup as FibParams,
    },
    cty::c_void,
    helpers::generated::bpf_fib_lookup,
};

const AF_INET: u8 = 2;

/// What the FIB said.
pub enum Route {
    /// Next hop resolved: egress ifindex and the MACs to write.
    Resolved(FibParams),
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
    // SAFETY: all-zero is a valid bpf_fib_lookup (plain integers/unions).
    let mut fib: FibParams = unsafe { core::mem::zeroed() };
    fib.family = AF_INET;
    fib.l4_protocol = ip[9];
    fib.__bindgen_anon_1.tot_len = tot_len;
    fib.ifindex = ingress_ifindex;
    fib.__bindgen_anon_2.tos = ip[1];
    fib.__bindgen_anon_3.ipv4_src = src.to_be();
    fib.__bindgen_anon_4.ipv4_dst = dst.to_be();
    // SAFETY: ctx per the contract; fib is a live, correctly sized
    // bpf_fib_lookup the helper may write.
    let rc = unsafe { bpf_fib_lookup(ctx, &mut fib, core::mem::size_of::<FibParams>() as i32, 0) }
        as u32;
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => Route::Resolved(fib),
        // The helper fills in the egress ifindex before it looks for the
        // neighbour.
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::NoNeighbour {
            ifindex: fib.ifindex,
        },
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Route::FragNeeded,
        _ => Route::Elsewhere,
    }
}
