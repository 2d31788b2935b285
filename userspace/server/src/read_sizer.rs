//! How big the next socket read should be.
//!
//! A busy session wants large reads (one syscall, many frames: docs/design.md);
//! an idle one should not pin 64 KiB in a pending io_uring read for hours —
//! at thousands of idle sessions that is most of the server's memory. The
//! size doubles when a read fills the buffer and halves after a run of
//! reads that used less than a quarter of it.

/// Smallest read: a keep-alive or a few frames.
pub const MIN_READ: usize = 4 * 1024;
/// Largest read: several full TLS records.
pub const MAX_READ: usize = 64 * 1024;
/// Small reads in a row before the size halves.
const SHRINK_AFTER: u32 = 16;

#[derive(Debug, Clone)]
pub struct ReadSizer {
    size: usize,
    small_reads: u32,
}

impl Default for ReadSizer {
    fn default() -> Self {
        Self {
            size: MIN_READ,
            small_reads: 0,
        }
    }
}

impl ReadSizer {
    pub fn size(&self) -> usize {
        self.size
    }

    /// Records that the last read returned `n` bytes.
    pub fn observe(&mut self, n: usize) {
        if n >= self.size {
            self.size = (self.size * 2).min(MAX_READ);
            self.small_reads = 0;
        } else if n < self.size / 4 {
            self.small_reads += 1;
            if self.small_reads >= SHRINK_AFTER {
                self.size = (self.size / 2).max(MIN_READ);
                self.small_reads = 0;
            }
        } else {
            self.small_reads = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_on_full_reads_and_shrinks_after_a_quiet_run() {
        let mut s = ReadSizer::default();
        assert_eq!(s.size(), MIN_READ);
        for _ in 0..10 {
            let n = s.size();
            s.observe(n);
        }
        assert_eq!(s.size(), MAX_READ, "bulk traffic reaches the largest reads");
        for _ in 0..SHRINK_AFTER - 1 {
            s.observe(100);
        }
        assert_eq!(s.size(), MAX_READ, "one quiet stretch short of the run");
        s.observe(100);
        assert_eq!(s.size(), MAX_READ / 2);
        // A medium read resets the run.
        for _ in 0..SHRINK_AFTER - 1 {
            s.observe(100);
        }
        s.observe(MAX_READ / 4);
        s.observe(100);
        assert_eq!(s.size(), MAX_READ / 2);
    }

    proptest! {
        #[test]
        fn always_within_bounds(reads in proptest::collection::vec(0usize..100_000, 0..200)) {
            let mut s = ReadSizer::default();
            for n in reads {
                s.observe(n.min(s.size()));
                prop_assert!((MIN_READ..=MAX_READ).contains(&s.size()));
            }
        }
    }
}
