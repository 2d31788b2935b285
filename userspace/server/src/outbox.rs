//! What the hub has for one session: a coalescing mailbox between the hub
//! actor (one producer) and the session's connections (one or more
//! consumers on worker threads).
//!
//! Why not a channel of batches: the hub produces many small batches (one
//! per tap read), and a bounded channel of them overflows by count long
//! before the bytes matter, dropping frames while the writer is only a few
//! microseconds behind. Here every push lands in one pending [`Frames`], so a
//! writer that wakes late takes everything at once and writes it as one
//! protocol batch. The bound is in bytes, which is what a queue really costs
//! (memory and latency), and an idle session holds no preallocated ring.
//!
//! Invariant: a push either appends every frame of the batch or none, so
//! the data phase never sees half a burst; once closed, pushes are refused
//! and waiters return as soon as the pending frames are taken.

use std::sync::{Mutex, MutexGuard, PoisonError};

use ethergate_proto::data::Frames;

pub struct Outbox {
    pending: Mutex<Pending>,
    /// Capacity 1: "something is pending" needs no more than one token.
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
    limit_bytes: usize,
}

#[derive(Default)]
struct Pending {
    frames: Frames,
    closed: bool,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Over the byte limit: the batch is dropped, as SoftEther drops rather
    /// than stalls (§7.1).
    Full,
    /// The session is gone.
    Closed,
}

impl Outbox {
    pub fn new(limit_bytes: usize) -> Self {
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        Self {
            pending: Mutex::new(Pending::default()),
            wake_tx,
            wake_rx,
            limit_bytes,
        }
    }

    /// Hub side: queues `batch` (taking its buffers when nothing is pending,
    /// so the common case copies nothing) and wakes a writer.
    pub fn push(&self, batch: &mut Frames) -> Result<(), PushError> {
        {
            let mut pending = self.lock();
            if pending.closed {
                return Err(PushError::Closed);
            }
            if pending.frames.is_empty() {
                std::mem::swap(&mut pending.frames, batch);
            } else if pending.frames.byte_len() + batch.byte_len() > self.limit_bytes {
                return Err(PushError::Full);
            } else {
                pending.frames.append(batch);
            }
        }
        batch.clear();
        // A full token slot means a writer is already due to look.
        let _ = self.wake_tx.try_send(());
        Ok(())
    }

    /// Connection side: waits until frames are pending or the outbox is
    /// closed. Returns false once closed and drained.
    pub async fn wait(&self) -> bool {
        loop {
            {
                let pending = self.lock();
                if !pending.frames.is_empty() {
                    return true;
                }
                if pending.closed {
                    return false;
                }
            }
            if self.wake_rx.recv().await.is_err() {
                // Closed: one last look for frames pushed before the close.
                return !self.lock().frames.is_empty();
            }
        }
    }

    /// Moves everything pending into `into` (cleared first), leaving
    /// `into`'s old buffers behind for the next push to reuse.
    pub fn take(&self, into: &mut Frames) {
        into.clear();
        std::mem::swap(&mut self.lock().frames, into);
    }

    /// The session ended: refuse pushes and release every waiter.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake_tx.close();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Every critical section is a swap/append that cannot leave the
        // frames half-written, so a poisoned lock is still consistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(frames: &[&[u8]]) -> Frames {
        let mut b = Frames::new();
        for f in frames {
            b.push(f);
        }
        b
    }

    #[test]
    fn pushes_coalesce_until_taken() {
        let outbox = Outbox::new(1000);
        outbox.push(&mut batch(&[b"one"])).expect("push");
        outbox.push(&mut batch(&[b"two", b"three"])).expect("push");
        let mut got = Frames::new();
        outbox.take(&mut got);
        let frames: Vec<&[u8]> = got.iter().collect();
        assert_eq!(frames, vec![&b"one"[..], b"two", b"three"]);
        outbox.take(&mut got);
        assert!(got.is_empty());
    }

    #[test]
    fn a_batch_over_the_byte_limit_is_dropped_whole() {
        let outbox = Outbox::new(10);
        outbox.push(&mut batch(&[b"12345678"])).expect("first fits");
        let mut over = batch(&[b"ab", b"cd"]);
        assert_eq!(outbox.push(&mut over), Err(PushError::Full));
        assert_eq!(over.len(), 2, "a refused batch is left with the caller");
        let mut got = Frames::new();
        outbox.take(&mut got);
        assert_eq!(got.len(), 1);
        // Once drained there is room again.
        outbox.push(&mut over).expect("fits after the take");
    }

    #[test]
    fn close_releases_waiters_after_the_last_frames() {
        let outbox = Outbox::new(100);
        outbox.push(&mut batch(&[b"last"])).expect("push");
        outbox.close();
        assert_eq!(outbox.push(&mut batch(&[b"late"])), Err(PushError::Closed));
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            assert!(outbox.wait().await, "pending frames are still delivered");
            let mut got = Frames::new();
            outbox.take(&mut got);
            assert_eq!(got.len(), 1);
            assert!(!outbox.wait().await, "closed and drained");
        });
    }

    #[test]
    fn a_waiter_wakes_for_a_push_from_another_thread() {
        let outbox = std::sync::Arc::new(Outbox::new(100));
        let producer = {
            let outbox = std::sync::Arc::clone(&outbox);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                outbox.push(&mut batch(&[b"hello"])).expect("push");
            })
        };
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            assert!(outbox.wait().await);
        });
        producer.join().expect("producer");
    }
}
