//! Injected randomness. The server random, session keys, `pencore` padding,
//! keep-alive payloads and keep-alive spacing all come from a
//! [`RandomSource`] the caller provides, so a test can replay a session byte
//! for byte. Invariant: the core never seeds or owns an OS RNG itself.
//!
//! The hello `random` and the session key must be unpredictable to peers; a
//! production driver should back this with a CSPRNG (e.g. `rand::rngs::StdRng`
//! seeded from the OS) — the closure impl makes that a one-liner.

/// A source of random bytes.
pub trait RandomSource {
    /// Fill `dst` with random bytes.
    fn fill_bytes(&mut self, dst: &mut [u8]);

    /// A uniformly distributed `u32`.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_be_bytes(b)
    }

    /// A value in `lo..hi` (returns `lo` when the range is empty). The tiny
    /// modulo bias is irrelevant for padding lengths and timer jitter, the
    /// only users.
    fn range_u32(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u32() % (hi - lo)
    }
}

/// Any `FnMut(&mut [u8])` is a random source, so a driver can write
/// `|b: &mut [u8]| rng.fill_bytes(b)`.
impl<F: FnMut(&mut [u8])> RandomSource for F {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self(dst)
    }
}

/// A deterministic xorshift generator for tests, fuzzing and benches.
/// **Not** for production: it is predictable by design.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// Seeded generator; seed 0 is remapped because xorshift would stick at 0.
    pub fn new(seed: u64) -> Self {
        TestRng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64* (Vigna): good enough spread for tests.
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl RandomSource for TestRng {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
