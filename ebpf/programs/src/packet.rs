//! Bounds-checked byte access to the frame behind an `XdpContext`.
//!
//! Invariant: a read happens only after the verifier-visible check
//! `data + offset + size <= data_end`, and every offset is first clamped to
//! [`MAX_PARSE_OFFSET`] so the verifier can bound the pointer arithmetic.
//!
//! `data_end` is re-read with a volatile load for every check. Otherwise LLVM
//! proves a later check redundant from an earlier one on a *different*
//! variable offset and deletes it; the verifier cannot relate the two
//! offsets and rejects the read ("R1 offset is outside of the packet").

use aya_ebpf::programs::XdpContext;
use ethergate_common::parse::PacketBytes;

/// Deepest byte the classifier may look at. Far beyond any header chain we
/// parse (14 + 8 + 40 + 6 extension headers), and small enough that the
/// verifier's packet-offset range check always passes.
const MAX_PARSE_OFFSET: usize = 8192;

pub struct XdpFrame<'a> {
    ctx: &'a XdpContext,
}

impl<'a> XdpFrame<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a XdpContext) -> Self {
        Self { ctx }
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        // SAFETY: ctx.ctx points at the kernel's xdp_md for this invocation,
        // valid for the whole program run.
        unsafe { core::ptr::read_volatile(&raw const (*self.ctx.ctx).data_end) as usize }
    }
}

impl XdpFrame<'_> {
    /// Writable `N` bytes at `offset`, with the same checks as
    /// [`PacketBytes::header`]. `&mut self` keeps a read view and a write
    /// view of the frame from overlapping.
    #[inline(always)]
    pub fn header_mut<const N: usize>(&mut self, offset: usize) -> Option<&mut [u8; N]> {
        if offset > MAX_PARSE_OFFSET {
            return None;
        }
        let start = self.ctx.data() + offset;
        if start + N > self.data_end() {
            return None;
        }
        // SAFETY: [start, start + N) lies inside [data, data_end), checked
        // just above; XDP frames are writable; [u8; N] has alignment 1; the
        // borrow of `self` keeps any other view of the frame out.
        Some(unsafe { &mut *(start as *mut [u8; N]) })
    }
}

impl PacketBytes for XdpFrame<'_> {
    #[inline(always)]
    fn has_bytes(&self, len: usize) -> bool {
        len <= MAX_PARSE_OFFSET && self.ctx.data() + len <= self.data_end()
    }

    #[inline(always)]
    fn header<const N: usize>(&self, offset: usize) -> Option<&[u8; N]> {
        if offset > MAX_PARSE_OFFSET {
            return None;
        }
        let start = self.ctx.data() + offset;
        if start + N > self.data_end() {
            return None;
        }
        // SAFETY: [start, start + N) lies inside [data, data_end), checked
        // just above; [u8; N] has alignment 1; the frame outlives `self`.
        Some(unsafe { &*(start as *const [u8; N]) })
    }
}
