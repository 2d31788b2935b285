//! TCP segmentation and coalescing offload between the hub and a tap opened
//! with `IFF_VNET_HDR`, sans-IO.
//!
//! Why: every frame written to a tap runs the kernel's whole receive and
//! forwarding path in the writing thread, and every frame read is one
//! syscall and one wakeup. With a virtio-net header in front of each
//! tap read/write the kernel accepts and hands out 64 KiB TCP
//! super-frames instead:
//! - tap → hub: [`segment`] cuts a TSO super-frame back into MSS-sized
//!   frames with complete checksums (SoftEther clients expect ordinary
//!   Ethernet frames), and completes partial checksums of single frames.
//! - hub → tap: [`Coalescer`] merges consecutive in-order segments of one
//!   TCP flow, as the kernel's GRO would, into one GSO frame the kernel
//!   forwards as a unit, and of consecutive pure ACKs of one flow writes
//!   only the newest (`ack_thin`).
//!
//! The header layout is `struct virtio_net_hdr` (10 bytes, native endian,
//! the tap's default `TUNSETVNETHDRSZ`).

mod ack_thin;
mod checksum;
mod coalesce;
mod headers;
mod mss_clamp;
mod segment;
mod write;

#[cfg(test)]
use ack_thin::MAX_THINNED_SPAN;
pub use coalesce::{Coalescer, MAX_COALESCED_LEN};
pub use mss_clamp::clamp_mss;
pub use segment::{SegmentError, SegmentOut, segment};
pub use write::{BatchWritten, TapWrite, write_batch};

/// `sizeof(struct virtio_net_hdr)`.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start +
/// csum_offset` holds only the pseudo-header sum; the rest is to be added.
pub const F_NEEDS_CSUM: u8 = 1;

/// `VIRTIO_NET_HDR_GSO_*`.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// Or'ed into `gso_type`: the sender set ECN CWR on the first segment.
pub const GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// A plain frame: no offload asked for.
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Splits a tap read into its header and the frame after it.
    pub fn parse(read: &[u8]) -> Option<(VnetHdr, &[u8])> {
        let (hdr, frame) = read.split_first_chunk::<VNET_HDR_LEN>()?;
        Some((Self::from_bytes(hdr), frame))
    }

    /// [`VnetHdr::parse`] for a buffer the caller will modify in place.
    pub fn parse_mut(read: &mut [u8]) -> Option<(VnetHdr, &mut [u8])> {
        let (hdr, frame) = read.split_first_chunk_mut::<VNET_HDR_LEN>()?;
        Some((Self::from_bytes(hdr), frame))
    }

    fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests;
