//! Counters the admin surface reads while the data path runs: plain relaxed
//! atomics, written by the workers (per batch, not per frame) and read as
//! snapshots by status and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use ethergate_hub::FrameDrop;
use ethergate_proto::data::Frames;

use crate::login_throttle::ThrottleReason;

/// Drops by reason: one relaxed atomic per reason of a `counter_enum!`
/// (`N` its `COUNT`), indexed by the reason's value.
#[derive(Debug)]
pub struct ReasonCounts<const N: usize> {
    slots: [AtomicU64; N],
}

impl<const N: usize> Default for ReasonCounts<N> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl<const N: usize> ReasonCounts<N> {
    /// Adds `n` to the reason at `index` (an enum's value; out of range
    /// cannot happen for a `counter_enum!` of `N` reasons, and is ignored).
    pub fn add(&self, index: usize, n: u64) {
        if n > 0
            && let Some(slot) = self.slots.get(index)
        {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Every reason with its count, zeros included, named by `names` (the
    /// enum's names in value order).
    pub fn named(&self, names: impl IntoIterator<Item = &'static str>) -> Vec<(&'static str, u64)> {
        names
            .into_iter()
            .zip(&self.slots)
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Frames and bytes in one direction.
#[derive(Default, Debug)]
pub struct Traffic {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
}

impl Traffic {
    pub fn add(&self, frames: u64, bytes: u64) {
        self.frames.fetch_add(frames, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_batch(&self, batch: &Frames) {
        self.add(batch.len() as u64, batch.byte_len() as u64);
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.frames.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// One hub's traffic and gauges, written by the workers and the hub's
/// housekeeping, read by status.
#[derive(Default, Debug)]
pub struct HubCounters {
    pub from_sessions: Traffic,
    pub to_sessions: Traffic,
    pub from_bridge: Traffic,
    pub to_bridge: Traffic,
    /// Frames for a session dropped because their lane of its outbox was
    /// full (the session's connection could not keep up).
    pub session_frames_dropped: AtomicU64,
    /// Frames a worker read from its tap queue for a session that another
    /// worker serves (a cross-thread hand-off; the rest stay on the worker
    /// that read them).
    pub to_sessions_other_worker: AtomicU64,
    /// read(2)/write(2) calls on the local bridge's tap. With offload on,
    /// fewer than frames: one per TSO super-frame read or merged TCP run.
    pub bridge_reads: AtomicU64,
    pub bridge_writes: AtomicU64,
    /// Pure TCP ACKs the coalescer left out: a newer one of the same flow
    /// followed in the same batch.
    pub tcp_acks_thinned: AtomicU64,
    /// The tap speaks virtio-net headers (TSO/GSO offload).
    pub tap_offload: std::sync::atomic::AtomicBool,
    pub mac_entries: AtomicU64,
    /// Bound DHCP leases; [`NO_DHCP`] when the hub has no DHCP server.
    pub dhcp_leases: AtomicU64,
    /// Frames the switch dropped, by [`FrameDrop`] (indexed by
    /// [`FrameDrop::index`]): malformed frames, MAC and lease limits,
    /// MAC spoofing, rogue DHCP servers, …
    pub frames_dropped: [AtomicU64; FrameDrop::ALL.len()],
}

pub const NO_DHCP: u64 = u64::MAX;

/// One hub's counters at one instant, as plain numbers (status, metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubCounts {
    /// (frames, bytes) each way.
    pub from_sessions: (u64, u64),
    pub to_sessions: (u64, u64),
    pub from_bridge: (u64, u64),
    pub to_bridge: (u64, u64),
    pub session_frames_dropped: u64,
    pub to_sessions_other_worker: u64,
    pub bridge_reads: u64,
    pub bridge_writes: u64,
    pub tcp_acks_thinned: u64,
    pub tap_offload: bool,
    pub mac_entries: u64,
    pub dhcp_leases: Option<u64>,
    /// Frames the switch dropped, by reason name, every reason.
    pub frames_dropped: Vec<(&'static str, u64)>,
}

/// One session's traffic, over all its connections.
#[derive(Default, Debug)]
pub struct SessionCounters {
    /// Client → hub.
    pub received: Traffic,
    /// Hub → client.
    pub sent: Traffic,
}

/// What a hub's switch reports for status, published when it changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwitchGauges {
    pub mac_entries: u64,
    pub dhcp_leases: Option<u64>,
    /// Frames dropped since start, by [`FrameDrop::index`].
    pub frames_dropped: [u64; FrameDrop::ALL.len()],
}

impl HubCounters {
    pub fn snapshot(&self) -> HubCounts {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        HubCounts {
            from_sessions: self.from_sessions.get(),
            to_sessions: self.to_sessions.get(),
            from_bridge: self.from_bridge.get(),
            to_bridge: self.to_bridge.get(),
            session_frames_dropped: load(&self.session_frames_dropped),
            to_sessions_other_worker: load(&self.to_sessions_other_worker),
            bridge_reads: load(&self.bridge_reads),
            bridge_writes: load(&self.bridge_writes),
            tcp_acks_thinned: load(&self.tcp_acks_thinned),
            tap_offload: self.tap_offload.load(Ordering::Relaxed),
            mac_entries: load(&self.mac_entries),
            dhcp_leases: self.dhcp_leases(),
            frames_dropped: self.frames_dropped(),
        }
    }

    pub fn publish(&self, gauges: SwitchGauges) {
        self.mac_entries
            .store(gauges.mac_entries, Ordering::Relaxed);
        self.dhcp_leases
            .store(gauges.dhcp_leases.unwrap_or(NO_DHCP), Ordering::Relaxed);
        for (slot, n) in self.frames_dropped.iter().zip(gauges.frames_dropped) {
            slot.store(n, Ordering::Relaxed);
        }
    }

    /// Frames the switch dropped, by reason name (`mac_limit`,
    /// `mac_spoof`, `lease_limit`, …); every reason, zeros included.
    pub fn frames_dropped(&self) -> Vec<(&'static str, u64)> {
        FrameDrop::ALL
            .iter()
            .map(|r| {
                let n = self.frames_dropped[r.index()].load(Ordering::Relaxed);
                (r.as_str(), n)
            })
            .collect()
    }

    pub fn dhcp_leases(&self) -> Option<u64> {
        match self.dhcp_leases.load(Ordering::Relaxed) {
            NO_DHCP => None,
            n => Some(n),
        }
    }
}

/// Counters shared by all workers.
#[derive(Debug)]
pub struct Stats {
    pub(crate) logins_ok: AtomicU64,
    /// Refused logins by SoftEther error code (index; the last slot
    /// collects codes past the table).
    logins_failed: [AtomicU64; FAILURE_CODES],
    /// Logins refused before their password was checked, by
    /// [`ThrottleReason`] (source, user).
    logins_throttled: [AtomicU64; 2],
    /// Connections closed because their peer stopped taking bytes.
    pub(crate) write_timeouts: AtomicU64,
}

const FAILURE_CODES: usize = 64;

impl Default for Stats {
    fn default() -> Self {
        Self {
            logins_ok: AtomicU64::new(0),
            logins_failed: std::array::from_fn(|_| AtomicU64::new(0)),
            logins_throttled: std::array::from_fn(|_| AtomicU64::new(0)),
            write_timeouts: AtomicU64::new(0),
        }
    }
}

impl Stats {
    pub fn logins_ok(&self) -> u64 {
        self.logins_ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn write_timeouts(&self) -> u64 {
        self.write_timeouts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn login_failed(&self, code: ethergate_proto::ErrorCode) {
        let slot = (code.0 as usize).min(FAILURE_CODES - 1);
        self.logins_failed[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn login_throttled(&self, reason: ThrottleReason) {
        self.logins_throttled[reason as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Logins refused without a verdict so far, by reason.
    pub fn logins_throttled(&self) -> [(ThrottleReason, u64); 2] {
        [ThrottleReason::Source, ThrottleReason::User].map(|r| {
            (
                r,
                self.logins_throttled[r as usize].load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// Refused logins so far, by error code (codes with a count only).
    pub fn logins_failed(&self) -> Vec<(ethergate_proto::ErrorCode, u64)> {
        self.logins_failed
            .iter()
            .enumerate()
            .filter_map(|(code, n)| {
                let n = n.load(std::sync::atomic::Ordering::Relaxed);
                (n > 0).then_some((ethergate_proto::ErrorCode(code as u32), n))
            })
            .collect()
    }
}
