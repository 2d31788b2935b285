//! `WallTime`: the one notion of "now" the hub is given by its caller. Not
//! the protocol core's monotonic `ethergate_proto::Timestamp`, hence the
//! other name.
//!
//! It is wall-clock time (milliseconds since the Unix epoch) because DHCP
//! leases outlive the process and are persisted with absolute expiry times.
//! The MAC table uses the same clock: a wall-clock jump can at worst flush
//! the table (frames flood until relearned) or keep entries a little longer
//! (they are overwritten by the next frame from the host anyway), both
//! harmless for a learning switch. Arithmetic saturates, so a clock that
//! steps backwards never panics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime(u64);

impl WallTime {
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn from_unix_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Reads a `SystemTime`; times before 1970 clamp to the epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn unix_secs(self) -> u64 {
        self.0 / 1000
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: WallTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
