//! A worker's reads of one of its hubs' tap queues: one read waited for on
//! io_uring, then whatever else is queued taken without waiting, and the
//! whole burst switched through the hub under one lock, so sessions get one
//! batch (one wake-up, fuller TLS records) per burst instead of one per
//! frame. Ends when the hub closes or the queue fails for good.

use std::{rc::Rc, sync::Arc};

use compio::{BufResult, io::AsyncRead, runtime::fd::AsyncFd};
use ethergate_bridge::TapQueue;
use ethergate_hub::offload::VNET_HDR_LEN;
use futures_util::future::{Either, select};
use tracing::{debug, warn};

use crate::{hub_plane::HubPlane, worker_context::Worker};

/// Largest frame read from the tap: MTU 1500 + Ethernet + one VLAN tag,
/// SoftEther's own ceiling is 1600 (§7.1).
const TAP_FRAME_MAX: usize = 1600;
/// A read from a tap with offload on: the virtio-net header, then up to a
/// 64 KiB IP packet behind Ethernet and one VLAN tag.
const TAP_OFFLOAD_READ_MAX: usize = VNET_HDR_LEN + 18 + 65535;
/// Tap reads switched as one burst (one waited for, the rest taken while
/// queued). With offload a read may be a 64 KiB super-frame, so a burst
/// can hold 1 MiB; buffers past the first are allocated when a burst first
/// needs them, and only the bytes the kernel wrote become resident.
const TAP_READ_BURST: usize = 16;

/// Reads `queue` of `plane` on the calling worker until the hub closes.
pub async fn run(plane: Arc<HubPlane>, queue: TapQueue, worker: Rc<Worker>) {
    let index = queue.index();
    let read_max = if queue.vnet_hdr() {
        TAP_OFFLOAD_READ_MAX
    } else {
        TAP_FRAME_MAX
    };
    let tap = match AsyncFd::new(queue) {
        Ok(tap) => tap,
        Err(e) => {
            warn!(
                hub = plane.name,
                queue = index,
                "cannot register a tap queue: {e}"
            );
            return;
        }
    };
    plane.tap_reader_started();
    let closed = plane.closed();
    futures_util::pin_mut!(closed);
    let mut first = Vec::with_capacity(read_max);
    // Buffers for the reads that drain the queue without waiting, and how
    // much of each the burst filled.
    let mut more: Vec<Vec<u8>> = Vec::new();
    let mut filled: Vec<usize> = Vec::with_capacity(TAP_READ_BURST);
    loop {
        first.clear();
        let mut reader = &tap;
        let read = reader.read(first);
        futures_util::pin_mut!(read);
        let BufResult(result, returned) = match select(read, closed.as_mut()).await {
            Either::Left((done, _)) => done,
            Either::Right(((), _)) => break,
        };
        first = returned;
        match result {
            Ok(0) => break,
            Ok(_) => {
                filled.clear();
                for slot in 0..TAP_READ_BURST - 1 {
                    if more.len() == slot {
                        more.push(vec![0u8; read_max]);
                    }
                    match tap.read_nowait(&mut more[slot]) {
                        Ok(n) if n > 0 => filled.push(n),
                        _ => break,
                    }
                }
                let reads = std::iter::once(first.as_mut_slice())
                    .chain(more.iter_mut().zip(&filled).map(|(buf, &n)| &mut buf[..n]));
                let mut buffers = worker.switch_buffers.borrow_mut();
                plane.switch_from_bridge(reads, worker.index, &mut buffers);
            }
            Err(e) => {
                warn!(hub = plane.name, queue = index, "tap read: {e}");
                compio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    plane.tap_reader_stopped();
    debug!(hub = plane.name, queue = index, "tap reader stopped");
}
