//! Password guessing costs time: failed logins earn the source address an
//! exponential backoff, first by delaying the verdict, then by refusing
//! further logins from it before any password is checked.
//!
//! Two records, both forgotten after [`ThrottleConfig::forget_after`]
//! without a failure:
//! - **per source** (an address; IPv6 a /64): `free_failures` failures
//!   cost only a delayed verdict; each one after that blocks the source
//!   for `base_block × 2ⁿ` (capped at `max_block`). A blocked source gets
//!   no verdict at all.
//! - **per user name** (on its hub): once a name has failed more than
//!   `user_free_failures` times from anywhere (a distributed guess), a
//!   source that has failed before — for any name — is refused for that
//!   name until the user's own block ends. A source with a clean record is
//!   always checked: an attack on a name never locks its owner out from
//!   their own address, it only costs the attacker's addresses their free
//!   tries sooner.
//!
//! Success changes nothing: an attacker holding one valid account must
//! not be able to wash its address's record by logging in between guesses.
//!
//! Sans-IO: the caller passes the time, so tests need no clock. Memory is
//! bounded by `max_tracked` records per kind; past it the stalest record
//! is dropped (an attacker with that many addresses has other options).

use std::{collections::HashMap, net::IpAddr, time::Duration, time::Instant};

use crate::admission::{AddressKey, source_keys};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures from one source that cost only a delayed verdict.
    pub free_failures: u32,
    /// Failures on one user name, from all sources, before sources with a
    /// bad record are refused for it.
    pub user_free_failures: u32,
    /// The first block; each further failure doubles it.
    pub base_block: Duration,
    pub max_block: Duration,
    /// Every failed verdict waits this long times the source's failures
    /// so far (capped at `max_verdict_delay`): a serial guesser on one
    /// connection gets slower even before it is blocked.
    pub verdict_delay_step: Duration,
    pub max_verdict_delay: Duration,
    /// A record with no failure for this long is forgotten.
    pub forget_after: Duration,
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            user_free_failures: 10,
            base_block: Duration::from_secs(2),
            max_block: Duration::from_secs(300),
            verdict_delay_step: Duration::from_millis(250),
            max_verdict_delay: Duration::from_secs(2),
            forget_after: Duration::from_secs(15 * 60),
            max_tracked: 65_536,
        }
    }
}

/// What to do with a login before its password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Check,
    /// Refuse without a verdict; `retry_after` says when the block ends.
    Refuse {
        retry_after: Duration,
        reason: ThrottleReason,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The source failed too often.
    Source,
    /// The user name is under attack and the source has failed before.
    User,
}

impl ThrottleReason {
    pub fn name(self) -> &'static str {
        match self {
            ThrottleReason::Source => "throttled_source",
            ThrottleReason::User => "throttled_user",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        }
    }

    fn blocked_for(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Counts one failure; past `free` the record is blocked for a
    /// doubling time.
    fn fail(&mut self, now: Instant, free: u32, config: &ThrottleConfig) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        if self.failures > free {
            let doublings = (self.failures - free - 1).min(20);
            let block = config
                .base_block
                .saturating_mul(1 << doublings)
                .min(config.max_block);
            self.blocked_until = Some(now + block);
        }
    }
}

/// A bounded map of records that forgets stale ones.
struct Records<K> {
    map: HashMap<K, Record>,
}

impl<K: std::hash::Hash + Eq + Clone> Records<K> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }

    /// The live record for `key`, if any (a stale one is removed).
    fn get(&mut self, key: &K, now: Instant, config: &ThrottleConfig) -> Option<&Record> {
        if self.map.get(key).is_some_and(|r| is_stale(r, now, config)) {
            self.map.remove(key);
        }
        self.map.get(key)
    }

    fn entry(&mut self, key: K, now: Instant, config: &ThrottleConfig) -> &mut Record {
        if !self.map.contains_key(&key) && self.map.len() >= config.max_tracked {
            self.map.retain(|_, r| !is_stale(r, now, config));
            if self.map.len() >= config.max_tracked
                && let Some(stalest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(k, _)| k.clone())
            {
                self.map.remove(&stalest);
            }
        }
        let record = self.map.entry(key).or_insert_with(|| Record::new(now));
        if is_stale(record, now, config) {
            *record = Record::new(now);
        }
        record
    }
}

fn is_stale(record: &Record, now: Instant, config: &ThrottleConfig) -> bool {
    now.saturating_duration_since(record.last_failure) >= config.forget_after
        && record.blocked_for(now).is_none()
}

/// Failed-login bookkeeping for the whole server.
pub struct LoginThrottle {
    config: ThrottleConfig,
    sources: Records<AddressKey>,
    /// (lower-cased hub, lower-cased user).
    users: Records<(String, String)>,
    /// Logins refused without a verdict since the last summary, by source.
    refused: HashMap<IpAddr, u64>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            sources: Records::new(),
            users: Records::new(),
            refused: HashMap::new(),
        }
    }

    /// Whether a login from `source` as `user` on `hub` gets its password
    /// checked.
    pub fn admit(&mut self, now: Instant, source: IpAddr, hub: &str, user: &str) -> Admit {
        let config = self.config;
        let (address, _) = source_keys(source);
        let source_record = self.sources.get(&address, now, &config).copied();
        let refusal = if let Some(retry_after) = source_record.and_then(|r| r.blocked_for(now)) {
            Some((retry_after, ThrottleReason::Source))
        } else if source_record.is_some_and(|r| r.failures > 0) {
            self.users
                .get(&user_key(hub, user), now, &config)
                .and_then(|r| r.blocked_for(now))
                .map(|retry_after| (retry_after, ThrottleReason::User))
        } else {
            None
        };
        match refusal {
            Some((retry_after, reason)) => {
                if self.refused.len() < config.max_tracked || self.refused.contains_key(&source) {
                    *self.refused.entry(source).or_insert(0) += 1;
                }
                Admit::Refuse {
                    retry_after,
                    reason,
                }
            }
            None => Admit::Check,
        }
    }

    /// One line's worth of the logins refused without a verdict since the
    /// last call, or `None`: refusals come at the attacker's pace, so they
    /// are logged as a periodic summary, not one line each.
    pub fn summary(&mut self) -> Option<String> {
        let total: u64 = self.refused.values().sum();
        let (ip, most) = self.refused.iter().max_by_key(|(_, n)| **n)?;
        let line = format!(
            "refused {total} logins from {} sources without checking a password (failed too \
             often); most from {ip} ({most})",
            self.refused.len()
        );
        self.refused.clear();
        Some(line)
    }

    /// A checked login failed; returns how long to hold the verdict.
    pub fn failed(&mut self, now: Instant, source: IpAddr, hub: &str, user: &str) -> Duration {
        let config = self.config;
        let (address, _) = source_keys(source);
        let record = self.sources.entry(address, now, &config);
        record.fail(now, config.free_failures, &config);
        let delay = config
            .verdict_delay_step
            .saturating_mul(record.failures)
            .min(config.max_verdict_delay);
        self.users.entry(user_key(hub, user), now, &config).fail(
            now,
            config.user_free_failures,
            &config,
        );
        delay
    }

    #[cfg(test)]
    /// Records tracked now (sources, user names): for tests and status.
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.map.len(), self.users.map.len())
    }
}

fn user_key(hub: &str, user: &str) -> (String, String) {
    (hub.to_ascii_lowercase(), user.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// Plays a serial guesser from `source`: one attempt, then waits for
    /// the verdict delay or the block, as a patient attacker would.
    /// Returns the instants of password verdicts.
    fn guess_for(
        throttle: &mut LoginThrottle,
        start: Instant,
        span: Duration,
        source: IpAddr,
    ) -> Vec<Instant> {
        let mut now = start;
        let mut verdicts = Vec::new();
        while now < start + span {
            match throttle.admit(now, source, "hub", "alice") {
                Admit::Check => {
                    verdicts.push(now);
                    now += throttle.failed(now, source, "hub", "alice");
                }
                Admit::Refuse { retry_after, .. } => now += retry_after,
            }
            now += Duration::from_millis(1);
        }
        verdicts
    }

    #[test]
    fn a_patient_guesser_gets_few_verdicts() {
        let mut throttle = LoginThrottle::new(ThrottleConfig::default());
        let start = Instant::now();
        let verdicts = guess_for(
            &mut throttle,
            start,
            Duration::from_secs(60),
            ip("203.0.113.5"),
        );
        // 5 free, then blocks of 2, 4, 8, 16, 32 s: 10 in the first minute.
        assert!(verdicts.len() <= 12, "{} verdicts", verdicts.len());
        assert!(verdicts.len() >= 6);
        let hour = guess_for(
            &mut throttle,
            start + Duration::from_secs(60),
            Duration::from_secs(3600),
            ip("203.0.113.5"),
        );
        // Then one per max_block (300 s).
        assert!(hour.len() <= 16, "{} verdicts in an hour", hour.len());
    }

    #[test]
    fn an_attacked_name_stays_open_to_a_clean_address() {
        let mut throttle = LoginThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        // A distributed guess: 30 addresses, 2 tries each.
        for i in 0..30 {
            let source = ip(&format!("203.0.113.{i}"));
            for _ in 0..2 {
                if throttle.admit(now, source, "hub", "alice") == Admit::Check {
                    throttle.failed(now, source, "hub", "alice");
                }
            }
        }
        // The name is now blocked for sources with a bad record...
        assert!(matches!(
            throttle.admit(now, ip("203.0.113.3"), "HUB", "Alice"),
            Admit::Refuse {
                reason: ThrottleReason::User,
                ..
            }
        ));
        // ...but its owner, from an address that never failed, is checked.
        assert_eq!(
            throttle.admit(now, ip("198.51.100.7"), "hub", "alice"),
            Admit::Check
        );
        // Another name is unaffected, even from an attacking address.
        assert_eq!(
            throttle.admit(now, ip("203.0.113.3"), "hub", "bob"),
            Admit::Check
        );
    }

    #[test]
    fn verdicts_are_delayed_more_with_each_failure() {
        let mut throttle = LoginThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        let source = ip("2001:db8::1");
        let first = throttle.failed(now, source, "h", "u");
        let second = throttle.failed(now, ip("2001:db8::2"), "h", "u");
        assert_eq!(first, Duration::from_millis(250));
        assert_eq!(second, Duration::from_millis(500), "same /64, same record");
        for _ in 0..20 {
            throttle.failed(now, source, "h", "u");
        }
        assert_eq!(
            throttle.failed(now, source, "h", "u"),
            Duration::from_secs(2),
            "capped"
        );
    }

    #[test]
    fn records_are_forgotten_and_bounded() {
        let config = ThrottleConfig {
            max_tracked: 8,
            ..ThrottleConfig::default()
        };
        let mut throttle = LoginThrottle::new(config);
        let now = Instant::now();
        for i in 0..100u32 {
            throttle.failed(now, IpAddr::from(i.to_be_bytes()), "h", &format!("u{i}"));
        }
        let (sources, users) = throttle.tracked();
        assert!(sources <= 8 && users <= 8, "{sources} {users}");
        let source = ip("192.0.2.1");
        for _ in 0..6 {
            throttle.failed(now, source, "h", "u");
        }
        assert!(matches!(
            throttle.admit(now, source, "h", "u"),
            Admit::Refuse { .. }
        ));
        let later = now + config.forget_after + config.max_block;
        assert_eq!(throttle.admit(later, source, "h", "u"), Admit::Check);
    }
}
