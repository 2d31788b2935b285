//! The receive side's sliding window over message counters (RFC 6479's
//! ring of bitmap words): a counter is accepted once, and only while it is
//! within the window behind the highest one seen, so reordering by the
//! network is tolerated and replays are not. Updated only after a message
//! authenticated, so forged counters cannot move the window.

const WORD_BITS: u64 = 64;
const WORDS: usize = 128;
/// How far behind the newest counter an old one may still arrive.
pub const WINDOW: u64 = (WORDS as u64 - 1) * WORD_BITS;

#[derive(Clone)]
pub struct ReplayWindow {
    /// The highest counter accepted (meaningful once `any`).
    newest: u64,
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            newest: 0,
            ring: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Records `counter`; false when it was seen already or is too old.
    pub fn accept(&mut self, counter: u64) -> bool {
        let word = counter / WORD_BITS;
        if counter > self.newest {
            let current = self.newest / WORD_BITS;
            let advance = (word - current).min(WORDS as u64);
            for i in 1..=advance {
                self.ring[((current + i) % WORDS as u64) as usize] = 0;
            }
            self.newest = counter;
        } else if self.newest - counter > WINDOW {
            return false;
        }
        let bit = 1u64 << (counter % WORD_BITS);
        let slot = &mut self.ring[(word % WORDS as u64) as usize];
        let fresh = *slot & bit == 0;
        *slot |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replays_and_stale_counters_are_refused() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(5));
        assert!(w.accept(3), "reordered within the window");
        assert!(!w.accept(3));
        assert!(w.accept(100_000));
        assert!(!w.accept(100_000 - WINDOW - 1), "too old");
        assert!(w.accept(100_000 - WINDOW));
        assert!(!w.accept(5), "old counters are gone with the window");
    }

    proptest! {
        /// Against a set of everything seen: a counter is accepted iff it
        /// is new and within the window of the newest accepted.
        #[test]
        fn matches_a_reference_model(counters in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::HashSet::new();
            let mut newest: Option<u64> = None;
            for c in counters {
                let in_window = newest.is_none_or(|n| c > n || n - c <= WINDOW);
                let expected = in_window && !seen.contains(&c);
                prop_assert_eq!(w.accept(c), expected, "counter {}", c);
                if expected {
                    seen.insert(c);
                    newest = Some(newest.map_or(c, |n| n.max(c)));
                }
            }
        }
    }
}
