//! `MacTable`: which port each source MAC was last seen on.
//!
//! Invariants: at most `capacity` entries; `per_port[p]` is exactly the
//! number of entries whose port is `p` (ports with none are absent), so the
//! per-port limit check is O(1); an entry not refreshed for `aging` is
//! treated as absent by [`MacTable::lookup`] even before a sweep removes it.
//! Sweeps are O(entries) and happen when the caller asks
//! ([`MacTable::expire`]) or, rate-limited to one per
//! [`FORCED_SWEEP_INTERVAL`], when a limit is hit — so a flood of new MACs
//! cannot turn every frame into a full scan. A pinned entry
//! ([`MacTable::pin`]: the bridge's own MAC) never ages and never moves;
//! it goes only with its port ([`MacTable::remove_port`]).
//!
//! The table itself lets a MAC move to whichever port sends from it (a
//! station moved); who may take a MAC from whom is the hub's decision
//! (see [`crate::Hub::forward`] and the docs of `PortPolicy`).

use std::collections::HashMap;
use std::time::Duration;

use crate::{MacAddr, PortId, WallTime};

/// SoftEther's `MAC_TABLE_EXPIRE_TIME` (Cedar/Cedar.h: 600 * 1000 ms); an
/// entry is gone once `updated + 600 s <= now` (Hub.c, `HubWatchDog`).
pub const DEFAULT_MAC_AGING: Duration = Duration::from_secs(600);
/// SoftEther's `MAX_MAC_TABLES` (Cedar/Cedar.h: 65536 per hub); beyond it
/// SoftEther drops frames from new MACs, and so do we.
pub const MAX_MAC_ENTRIES: usize = 65_536;
/// SoftEther's `MAC_MIN_LIMIT_COUNT` (Cedar/Cedar.h): a `MaxMac` policy
/// below 3 is raised to 3, since a host needs a few (IPv6 privacy, VMs).
pub const MIN_MAC_LIMIT: u32 = 3;
/// Sweeps forced by a full table or a port at its limit run at most this
/// often.
pub const FORCED_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Why a source MAC could not be learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LearnError {
    #[error("port already owns its limit of MAC addresses")]
    PortLimit,
    #[error("MAC table is full")]
    TableFull,
    #[error("MAC address is pinned to another port")]
    Pinned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MacEntry {
    port: PortId,
    last_seen: WallTime,
    /// Never ages, never moves.
    pinned: bool,
}

#[derive(Debug, Clone)]
pub struct MacTable {
    entries: HashMap<MacAddr, MacEntry>,
    per_port: HashMap<PortId, u32>,
    aging: Duration,
    capacity: usize,
    last_forced_sweep: Option<WallTime>,
}

impl MacTable {
    pub fn new(aging: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            per_port: HashMap::new(),
            aging,
            capacity,
            last_forced_sweep: None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn aging(&self) -> Duration {
        self.aging
    }

    fn is_fresh(&self, e: &MacEntry, now: WallTime) -> bool {
        e.pinned || now.saturating_since(e.last_seen) < self.aging
    }

    /// The port `mac` lives on, if learned and not aged out.
    pub fn lookup(&self, mac: &MacAddr, now: WallTime) -> Option<PortId> {
        self.entries
            .get(mac)
            .filter(|e| self.is_fresh(e, now))
            .map(|e| e.port)
    }

    /// Whether `mac` is pinned (see [`Self::pin`]).
    pub fn is_pinned(&self, mac: &MacAddr) -> bool {
        self.entries.get(mac).is_some_and(|e| e.pinned)
    }

    /// Ties `mac` to `port` for good: it never ages, and frames from it on
    /// any other port cannot move it. For addresses a port is known to
    /// own before it sends (the bridge tap's own MAC). Replaces whatever
    /// entry `mac` had; ignores the table's capacity.
    pub fn pin(&mut self, mac: MacAddr, port: PortId, now: WallTime) {
        if let Some(old) = self.entries.get(&mac).map(|e| e.port) {
            self.dec(old);
        }
        self.place(mac, port, now, true);
    }

    /// Records `mac` on `port` and counts it there; the entry it had, if
    /// any, is no longer counted.
    fn place(&mut self, mac: MacAddr, port: PortId, now: WallTime, pinned: bool) {
        self.entries.insert(
            mac,
            MacEntry {
                port,
                last_seen: now,
                pinned,
            },
        );
        *self.per_port.entry(port).or_insert(0) += 1;
    }

    /// MACs currently counted against `port` (aged but unswept included).
    pub fn port_count(&self, port: PortId) -> u32 {
        self.per_port.get(&port).copied().unwrap_or(0)
    }

    fn at_limit(&self, port: PortId, limit: Option<u32>) -> bool {
        limit.is_some_and(|l| self.port_count(port) >= l.max(MIN_MAC_LIMIT))
    }

    fn dec(&mut self, port: PortId) {
        if let Some(n) = self.per_port.get_mut(&port) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_port.remove(&port);
            }
        }
    }

    /// Records that `mac` was seen on `port`. A MAC seen on another port
    /// moves there (the station moved, as SoftEther does without the
    /// `CheckMac` policy), unless it is pinned there. `limit` is the port's
    /// MaxMac policy.
    pub fn learn(
        &mut self,
        mac: MacAddr,
        port: PortId,
        limit: Option<u32>,
        now: WallTime,
    ) -> Result<(), LearnError> {
        let current = self.entries.get(&mac).map(|e| (e.port, e.pinned));
        if let Some((other, true)) = current
            && other != port
        {
            return Err(LearnError::Pinned);
        }
        let current = current.map(|(p, _)| p);
        if current == Some(port) {
            if let Some(e) = self.entries.get_mut(&mac) {
                e.last_seen = now;
            }
            return Ok(());
        }
        if self.at_limit(port, limit) {
            self.forced_sweep(now);
            if self.at_limit(port, limit) {
                return Err(LearnError::PortLimit);
            }
        }
        // The sweep may have removed the entry we are about to move.
        match self.entries.get(&mac).map(|e| e.port) {
            Some(old) => self.dec(old),
            None if self.entries.len() >= self.capacity => {
                self.forced_sweep(now);
                if self.entries.len() >= self.capacity {
                    return Err(LearnError::TableFull);
                }
            }
            None => {}
        }
        self.place(mac, port, now, false);
        Ok(())
    }

    fn forced_sweep(&mut self, now: WallTime) {
        let due = self
            .last_forced_sweep
            .is_none_or(|t| now.saturating_since(t) >= FORCED_SWEEP_INTERVAL);
        if due {
            self.last_forced_sweep = Some(now);
            self.expire(now);
        }
    }

    /// Removes aged entries; returns how many.
    pub fn expire(&mut self, now: WallTime) -> usize {
        let before = self.entries.len();
        let aging = self.aging;
        let per_port = &mut self.per_port;
        self.entries.retain(|_, e| {
            let keep = e.pinned || now.saturating_since(e.last_seen) < aging;
            if !keep && let Some(n) = per_port.get_mut(&e.port) {
                *n = n.saturating_sub(1);
            }
            keep
        });
        self.per_port.retain(|_, n| *n > 0);
        before - self.entries.len()
    }

    /// Forgets every MAC of `port`; returns how many.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.port != port);
        self.per_port.remove(&port);
        before - self.entries.len()
    }

    /// Learned entries (aged ones included until swept).
    pub fn iter(&self) -> impl Iterator<Item = (MacAddr, PortId, WallTime)> + '_ {
        self.entries.iter().map(|(m, e)| (*m, e.port, e.last_seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: WallTime = WallTime::from_unix_secs(1_000_000);

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    /// A table of `capacity` MACs aging out after 10 s, with mac(1)
    /// learned on port 1 at T0.
    fn table_with_mac1(capacity: usize) -> MacTable {
        let mut t = MacTable::new(Duration::from_secs(10), capacity);
        t.learn(mac(1), PortId(1), None, T0).expect("learn");
        t
    }

    #[test]
    fn counts_follow_moves_sweeps_and_removal() {
        let mut t = table_with_mac1(100);
        t.learn(mac(2), PortId(1), None, T0).expect("learn");
        t.learn(mac(2), PortId(2), None, T0).expect("move");
        assert_eq!((t.port_count(PortId(1)), t.port_count(PortId(2))), (1, 1));
        assert_eq!(t.expire(T0.saturating_add(Duration::from_secs(10))), 2);
        assert_eq!((t.port_count(PortId(1)), t.port_count(PortId(2))), (0, 0));
        t.learn(mac(3), PortId(3), None, T0).expect("learn");
        assert_eq!(t.remove_port(PortId(3)), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn pinned_entries_never_age_or_move() {
        let mut t = table_with_mac1(100);
        // Pinning takes the address from whoever had it.
        t.pin(mac(1), PortId(0), T0);
        assert_eq!((t.port_count(PortId(0)), t.port_count(PortId(1))), (1, 0));
        assert!(t.is_pinned(&mac(1)));
        assert_eq!(
            t.learn(mac(1), PortId(2), None, T0),
            Err(LearnError::Pinned)
        );
        let later = T0.saturating_add(Duration::from_secs(3600));
        assert_eq!(t.expire(later), 0);
        assert_eq!(t.lookup(&mac(1), later), Some(PortId(0)));
        // Its own port refreshes it like any entry.
        assert_eq!(t.learn(mac(1), PortId(0), None, later), Ok(()));
        assert_eq!(t.remove_port(PortId(0)), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn forced_sweeps_are_rate_limited() {
        let mut t = table_with_mac1(1);
        let at = |ms: u64| WallTime::from_millis(T0.as_millis() + ms);
        // Full, nothing aged yet: the forced sweep finds nothing.
        assert_eq!(
            t.learn(mac(2), PortId(1), None, at(9_500)),
            Err(LearnError::TableFull)
        );
        // mac(1) has aged out, but the last sweep was 0.7 s ago.
        assert_eq!(
            t.learn(mac(2), PortId(1), None, at(10_200)),
            Err(LearnError::TableFull)
        );
        let aged = at(10_600);
        assert_eq!(t.learn(mac(2), PortId(1), None, aged), Ok(()));
        assert_eq!(t.lookup(&mac(1), aged), None);
        assert_eq!(t.lookup(&mac(2), aged), Some(PortId(1)));
    }
}
