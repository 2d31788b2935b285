//! Hub → tap, one batch: what the server's workers and `ethergate client`
//! both do with the frames they write to their tap.

use super::{Coalescer, VnetHdr};

/// One write(2) to a tap: the virtio-net header to put in front, if any,
/// and the frame.
pub type TapWrite<'w> = dyn FnMut(Option<&[u8]>, &[u8]) -> std::io::Result<usize> + 'w;

/// What [`write_batch`] did with one batch.
#[derive(Debug, Default)]
pub struct BatchWritten {
    /// Frames handed in, and their bytes.
    pub frames: u64,
    pub bytes: u64,
    /// write(2) calls made (fewer than frames when runs were merged).
    pub writes: u64,
    /// Pure ACKs left out because a newer one of their flow followed.
    pub acks_thinned: u64,
    /// Writes the kernel refused, and the last reason.
    pub failed: u64,
    pub last_error: Option<std::io::Error>,
}

/// Writes `frames` through `write`, one call per write(2). With a
/// `coalescer` (a tap that takes virtio-net headers), consecutive
/// segments of one TCP flow go as one GSO frame and runs of pure ACKs as
/// their newest; without one, frame by frame. A tap write never waits: a refused frame is
/// lost, as on a wire, and counted.
pub fn write_batch<'f>(
    frames: impl Iterator<Item = &'f [u8]>,
    coalescer: Option<&mut Coalescer>,
    write: &mut TapWrite<'_>,
) -> BatchWritten {
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut writes, mut failed, mut last_error) = (0u64, 0u64, None);
    let mut emit = |hdr: Option<&VnetHdr>, frame: &[u8]| {
        writes += 1;
        let header = hdr.map(VnetHdr::to_bytes);
        if let Err(e) = write(header.as_ref().map(|h| &h[..]), frame) {
            failed += 1;
            last_error = Some(e);
        }
    };
    let mut acks_thinned = 0;
    match coalescer {
        None => {
            for frame in frames {
                count += 1;
                bytes += frame.len() as u64;
                emit(None, frame);
            }
        }
        Some(coalescer) => {
            let mut merged = |hdr: &VnetHdr, frame: &[u8]| emit(Some(hdr), frame);
            for frame in frames {
                count += 1;
                bytes += frame.len() as u64;
                coalescer.push(frame, &mut merged);
            }
            coalescer.flush(&mut merged);
            acks_thinned = coalescer.take_thinned();
        }
    }
    BatchWritten {
        frames: count,
        bytes,
        writes,
        acks_thinned,
        failed,
        last_error,
    }
}
