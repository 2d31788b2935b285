//! Bounds-checked reads of the linear part of an skb (tc programs), with
//! the same verifier-friendly shape as `packet.rs` (decision 0001).
//!
//! Writes do not go through here: tc programs write with
//! `bpf_skb_store_bytes` and update checksums with `bpf_l3/l4_csum_replace`,
//! which also keep `CHECKSUM_PARTIAL` / `CHECKSUM_COMPLETE` skbs right
//! (a forwarded reply from a local veth sender is often `CHECKSUM_PARTIAL`).
//! Those helpers invalidate packet pointers, so every read happens first.

use aya_ebpf::programs::TcContext;
use ethergate_common::parse::PacketBytes;

/// Deepest byte a read may reach; see `packet.rs`.
const MAX_PARSE_OFFSET: usize = 8192;
/// Bytes pulled into the linear area: every header NAT reads (Ethernet,
/// IPv4 with options, TCP with options: 14 + 60 + 60) with room to spare.
/// Not the whole frame: a GSO skb from a local sender can be 64 KiB, and
/// only its headers need to be linear.
const PULL_LEN: u32 = 256;

pub struct TcFrame<'a> {
    ctx: &'a TcContext,
}

impl<'a> TcFrame<'a> {
    /// Pulls the headers into the linear area first (a no-op for the
    /// linear skbs a tap write produces).
    #[inline(always)]
    pub fn new(ctx: &'a TcContext) -> Self {
        let _ = ctx.pull_data(ctx.len().min(PULL_LEN));
        Self { ctx }
    }

    #[inline(always)]
    fn data(&self) -> usize {
        // SAFETY: skb points at this run's __sk_buff, valid for the run.
        unsafe { core::ptr::read_volatile(&raw const (*self.ctx.skb.skb).data) as usize }
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        // SAFETY: as above; re-read for every check (decision 0001).
        unsafe { core::ptr::read_volatile(&raw const (*self.ctx.skb.skb).data_end) as usize }
    }
}

impl PacketBytes for TcFrame<'_> {
    /// Against the skb's whole length (linear part and fragments): the
    /// classifier asks whether the frame holds what the IP header claims,
    /// which for a 64 KiB GSO skb lies far beyond the linear headers.
    /// A plain scalar, never used to bound a pointer.
    #[inline(always)]
    fn has_bytes(&self, len: usize) -> bool {
        len <= self.ctx.len() as usize
    }

    #[inline(always)]
    fn header<const N: usize>(&self, offset: usize) -> Option<&[u8; N]> {
        if offset > MAX_PARSE_OFFSET {
            return None;
        }
        let start = self.data() + offset;
        if start + N > self.data_end() {
            return None;
        }
        // SAFETY: [start, start + N) lies inside [data, data_end), checked
        // just above; [u8; N] has alignment 1; no helper that moves packet
        // data runs while a read view is alive (writes come after reads).
        Some(unsafe { &*(start as *const [u8; N]) })
    }
}
