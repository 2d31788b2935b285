//! When to reconnect: exponential backoff from 1 s doubling to 60 s, each
//! delay jittered by ±20 % so that many clients cut off by one server
//! restart do not come back in lockstep. Sans-IO: the caller passes `now`
//! and a random source, so the schedule is tested on a virtual clock.
//!
//! Invariants: every delay lies in `[0.8·d, 1.2·d]` for the nominal `d`
//! and never exceeds [`MAX_DELAY_MS`]; the nominal delay resets to
//! [`BASE_DELAY_MS`] only after a session that stayed up for
//! [`STABLE_SESSION_MS`] — a server that accepts and then drops us at once
//! still gets an ever slower client.

use ethergate_proto::{RandomSource, Timestamp};

/// First retry after one second.
pub const BASE_DELAY_MS: u64 = 1_000;
/// Never wait longer than a minute (SoftEther's own client retries every
/// 15 s; a minute keeps a dead server from being hammered).
pub const MAX_DELAY_MS: u64 = 60_000;
/// A session up this long counts as healthy: the next failure starts the
/// schedule over.
pub const STABLE_SESSION_MS: u64 = 30_000;
/// ±20 % jitter, in percent.
const JITTER_PERCENT: u32 = 20;

/// The reconnect schedule of one client.
#[derive(Debug, Clone)]
pub struct Backoff {
    nominal_ms: u64,
    established_at: Option<Timestamp>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Backoff {
            nominal_ms: BASE_DELAY_MS,
            established_at: None,
        }
    }

    /// A session came up at `now`.
    pub fn on_established(&mut self, now: Timestamp) {
        self.established_at = Some(now);
    }

    /// The connection (or the attempt) ended at `now`: when to try next.
    pub fn on_disconnect(&mut self, now: Timestamp, rng: &mut dyn RandomSource) -> Timestamp {
        if let Some(up) = self.established_at.take()
            && now.since(up) >= STABLE_SESSION_MS
        {
            self.nominal_ms = BASE_DELAY_MS;
        }
        let nominal = self.nominal_ms;
        self.nominal_ms = (nominal * 2).min(MAX_DELAY_MS);
        let spread = nominal * u64::from(JITTER_PERCENT) / 100;
        let offset = u64::from(rng.range_u32(0, (2 * spread + 1) as u32));
        let delay = (nominal - spread + offset).min(MAX_DELAY_MS);
        now.plus_ms(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethergate_proto::TestRng;

    #[test]
    fn doubles_from_one_second_to_a_minute_with_jitter() {
        let mut rng = TestRng::new(1);
        let mut b = Backoff::new();
        let mut now = Timestamp(0);
        let mut seen = Vec::new();
        for nominal in [1u64, 2, 4, 8, 16, 32, 60, 60, 60] {
            let next = b.on_disconnect(now, &mut rng);
            let delay = next.since(now);
            let (lo, hi) = (nominal * 800, (nominal * 1200).min(MAX_DELAY_MS));
            assert!((lo..=hi).contains(&delay), "{delay} ms outside {lo}..={hi}");
            seen.push(delay);
            now = next;
        }
        // Jitter really varies the delays.
        seen.dedup();
        assert!(seen.len() > 5, "{seen:?}");
    }

    #[test]
    fn a_stable_session_resets_the_schedule_a_short_one_does_not() {
        let mut rng = TestRng::new(2);
        let mut b = Backoff::new();
        let mut now = Timestamp(0);
        for _ in 0..5 {
            now = b.on_disconnect(now, &mut rng);
        }
        // Up for 5 s only: still slow (nominal 32 s).
        b.on_established(now);
        let next = b.on_disconnect(now.plus_ms(5_000), &mut rng);
        assert!(next.since(now.plus_ms(5_000)) >= 25_600);
        // Up for a minute: back to about a second.
        now = next;
        b.on_established(now);
        let later = now.plus_ms(60_000);
        let next = b.on_disconnect(later, &mut rng);
        assert!(next.since(later) <= 1_200, "{}", next.since(later));
    }

    #[test]
    fn many_clients_spread_out() {
        // 100 clients dropped at the same instant do not all retry in the
        // same 10 ms.
        let mut retries: Vec<u64> = (0..100)
            .map(|seed| {
                let mut rng = TestRng::new(seed + 1);
                let mut b = Backoff::new();
                for _ in 0..3 {
                    b.on_disconnect(Timestamp(0), &mut rng);
                }
                b.on_disconnect(Timestamp(0), &mut rng).0 / 10
            })
            .collect();
        retries.sort_unstable();
        retries.dedup();
        assert!(retries.len() > 50, "{}", retries.len());
    }
}
