//! Who may hold a connection that has not finished its handshake (TLS and
//! the SoftEther login): the slot a slow-loris or connection flood fights
//! over.
//!
//! Three caps: per source address (IPv6: per /64, which one host
//! controls), per source prefix (IPv4 /24, IPv6 /48, what one network
//! controls) and for the whole server. The first two make one attacker's
//! share small; the third bounds memory. When the whole server is full, a
//! newcomer is not simply refused (first come, first served would hand the
//! server to whoever opened connections first): if its prefix holds fewer
//! pending connections than the busiest prefix, the busiest prefix's
//! oldest pending connection is evicted to make room. So a flood from
//! many prefixes can slow everyone down, but cannot keep a source with
//! few pending connections out.
//!
//! Refusals happen at a rate the attacker chooses, so they are not logged
//! one by one: they are counted by reason, and [`Admission::summary`]
//! gives one line per interval naming the busiest source.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Caps on connections that have not finished the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// The whole server.
    pub max_pending: usize,
    /// One source address (IPv6: one /64).
    pub max_pending_per_address: usize,
    /// One IPv4 /24 or IPv6 /48.
    pub max_pending_per_prefix: usize,
}

impl Default for AdmissionLimits {
    /// A handshake takes a few milliseconds, so even a busy NAT in front
    /// of hundreds of users rarely has more than a handful pending at
    /// once; SoftEther's own per-address cap is far higher because it
    /// counts established connections too.
    fn default() -> Self {
        Self {
            max_pending: 1024,
            max_pending_per_address: 16,
            max_pending_per_prefix: 64,
        }
    }
}

/// Why a new connection was closed (or an old one evicted) unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already held `max_pending_per_address`.
    Address,
    /// Its prefix already held `max_pending_per_prefix`.
    Prefix,
    /// The server was full and its prefix was among the busiest.
    Full,
    /// It was pending when a less busy source needed its slot.
    Evicted,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Address,
        Refusal::Prefix,
        Refusal::Full,
        Refusal::Evicted,
    ];

    /// Label for status and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Address => "address_pending_cap",
            Refusal::Prefix => "prefix_pending_cap",
            Refusal::Full => "server_pending_cap",
            Refusal::Evicted => "evicted_for_fairness",
        }
    }
}

/// A source address reduced to what one host controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(u128);

/// A source address reduced to what one network controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixKey(u128);

/// `(address key, prefix key)` for `ip`. IPv4-mapped IPv6 counts as IPv4.
pub fn source_keys(ip: IpAddr) -> (AddressKey, PrefixKey) {
    match ip {
        IpAddr::V4(v4) => v4_keys(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_keys(u32::from(v4)),
            None => {
                let bits = u128::from(v6);
                (
                    AddressKey(bits & !((1u128 << 64) - 1)),
                    PrefixKey(bits & !((1u128 << 80) - 1)),
                )
            }
        },
    }
}

fn v4_keys(bits: u32) -> (AddressKey, PrefixKey) {
    // Tagged so an IPv4 key never equals an IPv6 one.
    let tag = 0xffff_u128 << 32;
    (
        AddressKey(tag | u128::from(bits)),
        PrefixKey(tag | u128::from(bits & 0xffff_ff00)),
    )
}

/// Distinct refused sources remembered between two summaries.
const MAX_SOURCES_NAMED: usize = 4096;

struct Pending {
    id: u64,
    address: AddressKey,
    /// Dropped to evict: the connection's [`Ticket::evicted`] wakes up.
    _evict: async_channel::Sender<()>,
}

#[derive(Default)]
struct State {
    total: usize,
    next_id: u64,
    by_address: HashMap<AddressKey, usize>,
    /// Oldest first.
    by_prefix: HashMap<PrefixKey, VecDeque<Pending>>,
    /// The source refused most often since the last summary.
    refused_by_source: HashMap<IpAddr, u64>,
}

impl State {
    fn remove(&mut self, prefix: PrefixKey, id: u64) -> bool {
        let Some(queue) = self.by_prefix.get_mut(&prefix) else {
            return false;
        };
        let Some(at) = queue.iter().position(|p| p.id == id) else {
            return false;
        };
        let gone = queue.remove(at);
        if queue.is_empty() {
            self.by_prefix.remove(&prefix);
        }
        if let Some(gone) = gone {
            self.forget_one(gone.address);
        }
        self.total -= 1;
        true
    }

    fn forget_one(&mut self, address: AddressKey) {
        if let Some(n) = self.by_address.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&address);
            }
        }
    }

    /// Evicts the oldest pending connection of the busiest prefix, if that
    /// prefix holds more than `newcomer_holds + 1` (so the eviction makes
    /// the shares more even, never less).
    fn evict_for(&mut self, newcomer_holds: usize) -> bool {
        let Some((&prefix, _)) = self
            .by_prefix
            .iter()
            .max_by_key(|(_, queue)| queue.len())
            .filter(|(_, queue)| queue.len() > newcomer_holds + 1)
        else {
            return false;
        };
        let Some(queue) = self.by_prefix.get_mut(&prefix) else {
            return false;
        };
        let Some(oldest) = queue.pop_front() else {
            return false;
        };
        if queue.is_empty() {
            self.by_prefix.remove(&prefix);
        }
        self.forget_one(oldest.address);
        self.total -= 1;
        // Dropping `oldest` drops its sender: the connection sees it.
        true
    }
}

/// Admission control for pending handshakes, shared by all workers.
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<State>,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Refusals already reported by [`Admission::summary`].
    summarised: [AtomicU64; Refusal::ALL.len()],
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            limits,
            state: Mutex::default(),
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            summarised: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Takes a pending slot for a connection from `source`, or says why
    /// not. The slot is held until the [`Ticket`] is dropped.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Ticket, Refusal> {
        let (address, prefix) = source_keys(source);
        let mut state = self.lock();
        let refusal = {
            let at_address = state.by_address.get(&address).copied().unwrap_or(0);
            let at_prefix = state.by_prefix.get(&prefix).map_or(0, VecDeque::len);
            if at_address >= self.limits.max_pending_per_address {
                Some(Refusal::Address)
            } else if at_prefix >= self.limits.max_pending_per_prefix {
                Some(Refusal::Prefix)
            } else if state.total >= self.limits.max_pending && !state.evict_for(at_prefix) {
                Some(Refusal::Full)
            } else {
                None
            }
        };
        if let Some(refusal) = refusal {
            // Only to name the busiest source in the summary: bounded, so
            // a flood from many addresses cannot grow it between summaries.
            if state.refused_by_source.len() < MAX_SOURCES_NAMED
                || state.refused_by_source.contains_key(&source)
            {
                *state.refused_by_source.entry(source).or_insert(0) += 1;
            }
            drop(state);
            self.count(refusal);
            return Err(refusal);
        }
        let id = state.next_id;
        state.next_id += 1;
        let (evict, evicted) = async_channel::bounded(1);
        state.total += 1;
        *state.by_address.entry(address).or_insert(0) += 1;
        state
            .by_prefix
            .entry(prefix)
            .or_default()
            .push_back(Pending {
                id,
                address,
                _evict: evict,
            });
        Ok(Ticket {
            admission: Arc::clone(self),
            id,
            prefix,
            evicted,
        })
    }

    /// Connections pending now.
    pub fn pending(&self) -> usize {
        self.lock().total
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> [(Refusal, u64); Refusal::ALL.len()] {
        Refusal::ALL.map(|r| (r, self.refused[r as usize].load(Ordering::Relaxed)))
    }

    /// One line's worth of what was refused since the last call, or
    /// `None` when nothing was. For a periodic log line.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut total = 0;
        for r in Refusal::ALL {
            let now = self.refused[r as usize].load(Ordering::Relaxed);
            let before = self.summarised[r as usize].swap(now, Ordering::Relaxed);
            if now > before {
                total += now - before;
                parts.push(format!("{}={}", r.name(), now - before));
            }
        }
        let busiest = {
            let mut state = self.lock();
            let busiest = state
                .refused_by_source
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(ip, n)| (*ip, *n));
            state.refused_by_source.clear();
            busiest
        };
        if total == 0 {
            return None;
        }
        let mut line = format!(
            "refused {total} connections before their handshake ({})",
            parts.join(" ")
        );
        if let Some((ip, n)) = busiest {
            line.push_str(&format!("; most from {ip} ({n})"));
        }
        Some(line)
    }

    fn count(&self, refusal: Refusal) {
        self.refused[refusal as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation is a few field updates with no panics in between.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A pending slot; dropping it (the handshake ended) frees the slot.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    prefix: PrefixKey,
    evicted: async_channel::Receiver<()>,
}

impl Ticket {
    /// Resolves when the slot was taken away for a less busy source; the
    /// connection should then close.
    pub fn evicted(&self) -> impl std::future::Future<Output = ()> + 'static {
        let rx = self.evicted.clone();
        async move {
            // Nothing is ever sent: the sender's drop ends the wait.
            while rx.recv().await.is_ok() {}
        }
    }

    #[cfg(test)]
    pub fn is_evicted(&self) -> bool {
        self.evicted.is_closed()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let removed = self.admission.lock().remove(self.prefix, self.id);
        if !removed {
            // Not there any more: it was evicted, and counted as such once.
            self.admission.count(Refusal::Evicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn admission(max: usize, per_address: usize, per_prefix: usize) -> Arc<Admission> {
        Arc::new(Admission::new(AdmissionLimits {
            max_pending: max,
            max_pending_per_address: per_address,
            max_pending_per_prefix: per_prefix,
        }))
    }

    #[test]
    fn keys_group_hosts_and_networks() {
        let (a1, p1) = source_keys(ip("203.0.113.7"));
        let (a2, p2) = source_keys(ip("203.0.113.200"));
        let (a3, p3) = source_keys(ip("203.0.114.7"));
        assert_ne!(a1, a2);
        assert_eq!(p1, p2);
        assert_ne!(p1, p3);
        assert_ne!(a1, a3);
        // One IPv6 /64 is one host; its /48 one network.
        let (b1, q1) = source_keys(ip("2001:db8:1:2::1"));
        let (b2, q2) = source_keys(ip("2001:db8:1:2:ffff::9"));
        let (b3, q3) = source_keys(ip("2001:db8:1:3::1"));
        assert_eq!(b1, b2);
        assert_ne!(b1, b3);
        assert_eq!(q1, q2);
        assert_eq!(q1, q3);
        // A mapped IPv4 address is that IPv4 address.
        assert_eq!(source_keys(ip("::ffff:203.0.113.7")).0, a1);
        // IPv4 keys never collide with IPv6 ones.
        assert_ne!(source_keys(ip("::cb00:7107")).0, a1);
    }

    #[test]
    fn caps_per_address_and_prefix() {
        let adm = admission(100, 2, 3);
        let a = adm.admit(ip("198.51.100.1")).expect("1st");
        let _b = adm.admit(ip("198.51.100.1")).expect("2nd");
        assert_eq!(adm.admit(ip("198.51.100.1")).err(), Some(Refusal::Address));
        let _c = adm.admit(ip("198.51.100.2")).expect("same /24, other host");
        assert_eq!(adm.admit(ip("198.51.100.3")).err(), Some(Refusal::Prefix));
        let _d = adm.admit(ip("192.0.2.1")).expect("other /24");
        drop(a);
        assert_eq!(adm.pending(), 3);
        adm.admit(ip("198.51.100.1"))
            .expect("a finished handshake frees its slot");
        let refusals = adm.refusals();
        assert_eq!(refusals[Refusal::Address as usize].1, 1);
        assert_eq!(refusals[Refusal::Prefix as usize].1, 1);
    }

    #[test]
    fn a_full_server_evicts_the_busiest_prefix_for_a_quiet_one() {
        let adm = admission(4, 4, 4);
        let flood: Vec<Ticket> = (1..=4)
            .map(|i| adm.admit(ip(&format!("203.0.113.{i}"))).expect("flood"))
            .collect();
        let user = adm
            .admit(ip("198.51.100.9"))
            .expect("the quiet source gets in");
        assert_eq!(adm.pending(), 4);
        assert!(flood[0].is_evicted(), "the oldest of the busiest went");
        assert!(!flood[1].is_evicted());
        assert!(!user.is_evicted());
        // The flood's own next connection does not evict anyone: it is
        // already the busiest.
        assert_eq!(adm.admit(ip("203.0.113.50")).err(), Some(Refusal::Full));
        drop(flood);
        assert_eq!(adm.pending(), 1);
        let refusals = adm.refusals();
        assert_eq!(refusals[Refusal::Evicted as usize].1, 1);
        assert_eq!(refusals[Refusal::Full as usize].1, 1);
        let line = adm.summary().expect("something was refused");
        assert!(line.contains("most from 203.0.113.50"), "{line}");
        assert!(adm.summary().is_none(), "each refusal is summarised once");
    }

    #[test]
    fn eviction_wakes_the_evicted_connection() {
        let adm = admission(2, 2, 2);
        let old = adm.admit(ip("203.0.113.1")).expect("first");
        let _younger = adm.admit(ip("203.0.113.2")).expect("second");
        let waiting = old.evicted();
        let _new = adm.admit(ip("198.51.100.1"));
        // No runtime needed: the future is ready at once.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(waiting);
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    }

    proptest::proptest! {
        /// Whatever the order of arrivals and departures, no cap is ever
        /// exceeded and every slot comes back.
        #[test]
        fn caps_hold_under_any_sequence(ops in proptest::collection::vec((0u8..3, 0u8..8, proptest::bool::ANY), 1..300)) {
            let adm = admission(6, 2, 3);
            let mut held: Vec<(u8, u8, Ticket)> = Vec::new();
            for (net, host, arrive) in ops {
                if arrive {
                    if let Ok(t) = adm.admit(ip(&format!("10.0.{net}.{host}"))) {
                        held.push((net, host, t));
                    }
                } else if !held.is_empty() {
                    held.remove(usize::from(host) % held.len());
                }
                held.retain(|(_, _, t)| !t.is_evicted());
                proptest::prop_assert!(held.len() <= 6);
                proptest::prop_assert_eq!(adm.pending(), held.len());
                for n in 0..3u8 {
                    proptest::prop_assert!(held.iter().filter(|h| h.0 == n).count() <= 3);
                    for h in 0..8u8 {
                        proptest::prop_assert!(held.iter().filter(|x| x.0 == n && x.1 == h).count() <= 2);
                    }
                }
            }
            held.clear();
            proptest::prop_assert_eq!(adm.pending(), 0);
        }
    }
}
