//! Injected time. The protocol core never reads a clock: every call that can
//! move a timer takes a [`Timestamp`] from the caller, so tests and fuzzers run
//! on a virtual clock. Invariant: a `Timestamp` is monotonic milliseconds since
//! an epoch the caller picks once per connection (e.g. the accept instant);
//! the core only ever subtracts and compares them.

use std::time::Duration;

/// Milliseconds since a caller-chosen epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Build from the time elapsed since the caller's epoch
    /// (`Timestamp::from_elapsed(start.elapsed())` in a driver).
    pub fn from_elapsed(d: Duration) -> Self {
        Timestamp(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// `self + ms`, saturating so a hostile `timeout` cannot wrap a deadline.
    pub fn plus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, 0 if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The same instant as a `Duration` since the epoch, for drivers that
    /// turn deadlines back into `Instant`s.
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}
