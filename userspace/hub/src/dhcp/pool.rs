//! The lease pool: which client holds which address, until when.
//!
//! Invariants: `by_ip` and `bindings` are exact inverses (one address per
//! client, one client per address); every bound or offered address lies in
//! the configured range; at most [`MAX_BINDINGS`] clients are remembered.
//! Expired bindings are kept as memory, so a returning client gets its old
//! address back as long as nobody else needed it; they are reclaimed only
//! when no never-used address is left. Each binding remembers the hub port
//! it was last offered or acknowledged through (its holder), so the hub can
//! bound the live leases of one session ([`LeasePool::within_limit`]).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ethergate_config::AddressRange;

use crate::{MacAddr, PortId, WallTime};

/// Clients remembered at most. Same figure as SoftEther's `MAX_IP_TABLES`
/// (Cedar/Cedar.h): a hub pool larger than this is not a realistic VPN.
/// It bounds memory when the range is a /8.
pub const MAX_BINDINGS: usize = 65_536;

/// Live leases one MAC may hold under different client ids (a dual-boot
/// machine sends a different option 61 from each OS). More would let one
/// station drain the pool by varying its client id.
pub const MAX_LEASES_PER_MAC: usize = 2;

/// How a client is identified: option 61 when sent, else its MAC
/// (RFC 2131 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Id(Box<[u8]>),
    Mac(MacAddr),
}

impl ClientKey {
    pub fn new(client_id: Option<&[u8]>, mac: MacAddr) -> Self {
        match client_id {
            Some(id) => ClientKey::Id(id.into()),
            None => ClientKey::Mac(mac),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    /// Offered, held for the client until `expires`.
    Offered,
    /// Acknowledged lease (possibly expired: then it is only memory).
    Bound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    ip: Ipv4Addr,
    mac: MacAddr,
    expires: WallTime,
    state: BindingState,
    /// The port the client last got it through; `None` when restored from
    /// the lease file or handed out without a port (library callers).
    holder: Option<PortId>,
}

/// One lease as persisted in `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLease {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Expiry, seconds since the Unix epoch.
    pub expires_unix: u64,
    /// Option 61 as sent by the client, if it sent one.
    pub client_id: Option<Vec<u8>>,
}

/// What [`LeasePool::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Leases taken back that are still valid at `now`.
    pub active: usize,
    /// Leases taken back as memory only (expired).
    pub expired: usize,
    /// Leases left out: outside the range, duplicate address or client, or
    /// beyond [`MAX_BINDINGS`].
    pub skipped: usize,
}

#[derive(Debug, Clone)]
pub struct LeasePool {
    range: AddressRange,
    bindings: HashMap<ClientKey, Binding>,
    by_ip: HashMap<Ipv4Addr, ClientKey>,
    /// Addresses a client declined (RFC 2131 §3.1.5), unusable until then.
    declined: HashMap<Ipv4Addr, WallTime>,
    /// Addresses that belong to someone else for good (WireGuard users'
    /// tunnel addresses): never offered, bound or restored.
    reserved: std::collections::HashSet<Ipv4Addr>,
}

impl LeasePool {
    pub fn new(range: AddressRange) -> Self {
        Self {
            range,
            bindings: HashMap::new(),
            by_ip: HashMap::new(),
            declined: HashMap::new(),
            reserved: std::collections::HashSet::new(),
        }
    }

    /// A pool that never hands out `reserved`.
    pub fn with_reserved(
        range: AddressRange,
        reserved: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Self {
        let mut pool = Self::new(range);
        pool.reserved = reserved.into_iter().collect();
        pool
    }

    fn is_declined(&self, ip: Ipv4Addr, now: WallTime) -> bool {
        self.declined.get(&ip).is_some_and(|&until| until > now)
    }

    /// True when `ip` may be given to `key`: in range, not declined, and not
    /// held by another client's live (unexpired) binding.
    pub(crate) fn available_for(&self, ip: Ipv4Addr, key: &ClientKey, now: WallTime) -> bool {
        if !self.range.contains(ip) || self.is_declined(ip, now) || self.reserved.contains(&ip) {
            return false;
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(holder) if holder == key => true,
            Some(holder) => self.bindings.get(holder).is_none_or(|b| b.expires <= now),
        }
    }

    /// The address `key` holds or was offered, live or remembered.
    pub fn address_of(&self, key: &ClientKey) -> Option<(Ipv4Addr, BindingState, WallTime)> {
        self.bindings.get(key).map(|b| (b.ip, b.state, b.expires))
    }

    /// Live bindings (offered or bound, unexpired).
    pub fn live_count(&self, now: WallTime) -> usize {
        self.bindings.values().filter(|b| b.expires > now).count()
    }

    /// Live bindings (offered or bound, unexpired) held through `port`.
    pub fn held_by(&self, port: PortId, now: WallTime) -> usize {
        self.bindings
            .values()
            .filter(|b| b.holder == Some(port) && b.expires > now)
            .count()
    }

    /// The port `key`'s binding was last given through, if any.
    pub fn holder_of(&self, key: &ClientKey) -> Option<PortId> {
        self.bindings.get(key).and_then(|b| b.holder)
    }

    /// Whether giving `key` (a client behind `port`, sending from `mac`)
    /// an offer or a lease keeps `port` within `max` live leases. A client
    /// whose live binding `port` already holds is always within (it
    /// renews); a new client first lets go of its station's pending offers
    /// (as [`Self::offer`] does), so those do not count. O(bindings), on
    /// DISCOVER and REQUEST only.
    pub fn within_limit(
        &self,
        key: &ClientKey,
        mac: MacAddr,
        port: PortId,
        max: u32,
        now: WallTime,
    ) -> bool {
        let own = self.bindings.get(key);
        if own.is_some_and(|b| b.expires > now && b.holder == Some(port)) {
            return true;
        }
        let new_client = own.is_none();
        let held = self
            .bindings
            .iter()
            .filter(|(k, b)| {
                *k != key
                    && b.holder == Some(port)
                    && b.expires > now
                    && !(new_client && b.mac == mac && b.state == BindingState::Offered)
            })
            .count();
        held < max as usize
    }

    /// Records that `key`'s binding is now held through `port`.
    pub fn set_holder(&mut self, key: &ClientKey, port: PortId) {
        if let Some(b) = self.bindings.get_mut(key) {
            b.holder = Some(port);
        }
    }

    /// Picks an address for a DISCOVER and holds it for `hold`: the
    /// client's own (live or remembered), else the one it asked for, else
    /// the lowest never-used address, else the lowest expired one. `None`
    /// when the pool is exhausted.
    pub fn offer(
        &mut self,
        key: &ClientKey,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: WallTime,
        hold: Duration,
    ) -> Option<Ipv4Addr> {
        let own = self
            .bindings
            .get(key)
            .filter(|b| self.available_for(b.ip, key, now));
        if let Some(b) = own
            && b.state == BindingState::Bound
            && b.expires > now
        {
            // Re-offering a live lease must not shorten it.
            return Some(b.ip);
        }
        let ip = match own {
            Some(b) => b.ip,
            None => requested
                .filter(|&ip| self.available_for(ip, key, now))
                .or_else(|| self.lowest_free(key, now))?,
        };
        self.assign(
            key,
            mac,
            ip,
            BindingState::Offered,
            now.saturating_add(hold),
            now,
        )
    }

    fn lowest_free(&self, key: &ClientKey, now: WallTime) -> Option<Ipv4Addr> {
        let mut reclaimable = None;
        // Terminates at the first never-used address, which is at most
        // bindings + declined + 1 steps in; a full scan happens only when
        // the range is no larger than that.
        for bits in self.range.first.to_bits()..=self.range.last.to_bits() {
            let ip = Ipv4Addr::from_bits(bits);
            if self.is_declined(ip, now) || self.reserved.contains(&ip) {
                continue;
            }
            match self.by_ip.get(&ip) {
                None => return Some(ip),
                Some(_) if reclaimable.is_none() && self.available_for(ip, key, now) => {
                    reclaimable = Some(ip);
                }
                Some(_) => {}
            }
        }
        reclaimable
    }

    /// Acknowledges `ip` to `key` for `lease` (REQUEST). `None` when the
    /// address is not the client's to have: the caller answers NAK.
    pub fn bind(
        &mut self,
        key: &ClientKey,
        mac: MacAddr,
        ip: Ipv4Addr,
        now: WallTime,
        lease: Duration,
    ) -> Option<Ipv4Addr> {
        if !self.available_for(ip, key, now) {
            return None;
        }
        self.assign(
            key,
            mac,
            ip,
            BindingState::Bound,
            now.saturating_add(lease),
            now,
        )
    }

    fn assign(
        &mut self,
        key: &ClientKey,
        mac: MacAddr,
        ip: Ipv4Addr,
        state: BindingState,
        expires: WallTime,
        now: WallTime,
    ) -> Option<Ipv4Addr> {
        if !self.bindings.contains_key(key) {
            // A new client: first let go of the station's pending offers
            // (a client waits on one offer at a time), then check that it
            // does not already hold its share of live leases.
            let stale: Vec<ClientKey> = self
                .bindings
                .iter()
                .filter(|(_, b)| b.mac == mac && b.state == BindingState::Offered)
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                self.forget(&k);
            }
            let live = self
                .bindings
                .values()
                .filter(|b| b.mac == mac && b.expires > now)
                .count();
            if live >= MAX_LEASES_PER_MAC {
                return None;
            }
            if self.bindings.len() >= MAX_BINDINGS {
                self.bindings.retain(|_, b| b.expires > now);
                let bindings = &self.bindings;
                self.by_ip.retain(|_, k| bindings.contains_key(k));
                if self.bindings.len() >= MAX_BINDINGS {
                    return None;
                }
            }
        }
        // The address's previous holder (expired, or this client) lets go.
        if let Some(holder) = self.by_ip.get(&ip).cloned()
            && &holder != key
        {
            self.bindings.remove(&holder);
        }
        let port = self.holder_of(key);
        self.forget(key);
        self.by_ip.insert(ip, key.clone());
        self.bindings.insert(
            key.clone(),
            Binding {
                ip,
                mac,
                expires,
                state,
                holder: port,
            },
        );
        Some(ip)
    }

    fn forget(&mut self, key: &ClientKey) {
        if let Some(old) = self.bindings.remove(key)
            && self.by_ip.get(&old.ip) == Some(key)
        {
            self.by_ip.remove(&old.ip);
        }
    }

    /// The client picked another server's offer: free ours at once.
    pub fn cancel_offer(&mut self, key: &ClientKey) {
        if self
            .bindings
            .get(key)
            .is_some_and(|b| b.state == BindingState::Offered)
        {
            self.forget(key);
        }
    }

    /// RELEASE: the lease ends now; the record stays as memory so the
    /// client gets the same address next time. False if `ip` was not its.
    pub fn release(&mut self, key: &ClientKey, ip: Ipv4Addr, now: WallTime) -> bool {
        match self.bindings.get_mut(key) {
            Some(b) if b.ip == ip => {
                b.expires = b.expires.min(now);
                b.state = BindingState::Bound;
                true
            }
            _ => false,
        }
    }

    /// DECLINE: the client found `ip` in use (RFC 2131 §3.1.5). Only the
    /// client the address was given to may decline it, so one station
    /// cannot blacklist the pool.
    pub fn decline(&mut self, key: &ClientKey, ip: Ipv4Addr, until: WallTime) -> bool {
        if self.bindings.get(key).is_some_and(|b| b.ip == ip) {
            self.forget(key);
            self.declined.insert(ip, until);
            true
        } else {
            false
        }
    }

    /// Bound leases (expired ones included: they are what keeps addresses
    /// stable), sorted by address.
    pub fn snapshot(&self) -> Vec<DhcpLease> {
        let mut out: Vec<DhcpLease> = self
            .bindings
            .iter()
            .filter(|(_, b)| b.state == BindingState::Bound)
            .map(|(k, b)| DhcpLease {
                mac: b.mac,
                ip: b.ip,
                expires_unix: b.expires.as_millis().div_ceil(1000),
                client_id: match k {
                    ClientKey::Id(id) => Some(id.to_vec()),
                    ClientKey::Mac(_) => None,
                },
            })
            .collect();
        out.sort_by_key(|l| l.ip);
        out
    }

    /// Takes leases back after a restart. Existing bindings win over
    /// restored ones that conflict with them.
    pub fn restore(
        &mut self,
        leases: impl IntoIterator<Item = DhcpLease>,
        now: WallTime,
    ) -> RestoreReport {
        let mut report = RestoreReport::default();
        for lease in leases {
            let key = ClientKey::new(lease.client_id.as_deref(), lease.mac);
            if !self.range.contains(lease.ip)
                || self.reserved.contains(&lease.ip)
                || self.by_ip.contains_key(&lease.ip)
                || self.bindings.contains_key(&key)
                || self.bindings.len() >= MAX_BINDINGS
            {
                report.skipped += 1;
                continue;
            }
            let expires = WallTime::from_unix_secs(lease.expires_unix);
            if expires > now {
                report.active += 1;
            } else {
                report.expired += 1;
            }
            self.by_ip.insert(lease.ip, key.clone());
            self.bindings.insert(
                key,
                Binding {
                    ip: lease.ip,
                    mac: lease.mac,
                    expires,
                    state: BindingState::Bound,
                    holder: None,
                },
            );
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(30);
    const LEASE: Duration = Duration::from_secs(7200);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 30, last)
    }

    fn pool(first: u8, last: u8) -> LeasePool {
        LeasePool::new(AddressRange {
            first: ip(first),
            last: ip(last),
        })
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    /// WireGuard users' addresses are never offered, bound or restored.
    #[test]
    fn reserved_addresses_are_never_leased() {
        let range = AddressRange {
            first: ip(10),
            last: ip(12),
        };
        let mut p = LeasePool::with_reserved(range, [ip(10), ip(11)]);
        let now = WallTime::from_unix_secs(1_000);
        let key = ClientKey::new(None, mac(1));
        assert_eq!(p.offer(&key, mac(1), Some(ip(10)), now, HOLD), Some(ip(12)));
        assert_eq!(p.bind(&key, mac(1), ip(11), now, LEASE), None);
        let other = ClientKey::new(None, mac(2));
        assert_eq!(p.offer(&other, mac(2), None, now, HOLD), None, "exhausted");
        let mut fresh = LeasePool::with_reserved(range, [ip(10)]);
        let report = fresh.restore(
            [DhcpLease {
                ip: ip(10),
                mac: mac(3),
                client_id: None,
                expires_unix: 5_000,
            }],
            now,
        );
        assert_eq!(report.skipped, 1);
    }

    fn key(n: u8) -> ClientKey {
        ClientKey::Mac(mac(n))
    }

    #[test]
    fn lowest_first_and_sticky() {
        let mut p = pool(10, 20);
        let t0 = WallTime::from_unix_secs(1000);
        assert_eq!(p.offer(&key(1), mac(1), None, t0, HOLD), Some(ip(10)));
        assert_eq!(p.offer(&key(2), mac(2), None, t0, HOLD), Some(ip(11)));
        assert_eq!(p.bind(&key(1), mac(1), ip(10), t0, LEASE), Some(ip(10)));
        // Long after expiry, client 1 still gets .10 back.
        let later = t0.saturating_add(Duration::from_secs(100_000));
        assert_eq!(p.offer(&key(1), mac(1), None, later, HOLD), Some(ip(10)));
    }

    #[test]
    fn held_offer_blocks_others_until_it_lapses() {
        let mut p = pool(10, 10);
        let t0 = WallTime::from_unix_secs(1000);
        assert_eq!(p.offer(&key(1), mac(1), None, t0, HOLD), Some(ip(10)));
        assert_eq!(
            p.offer(&key(2), mac(2), None, t0, HOLD),
            None,
            "pool of one is taken"
        );
        let t1 = t0.saturating_add(HOLD);
        assert_eq!(
            p.offer(&key(2), mac(2), None, t1, HOLD),
            Some(ip(10)),
            "offer lapsed"
        );
        assert_eq!(
            p.address_of(&key(1)),
            None,
            "reclaimed binding is forgotten"
        );
    }

    #[test]
    fn one_station_cannot_drain_the_pool_with_client_ids() {
        let mut p = pool(10, 50);
        let t0 = WallTime::from_unix_secs(1000);
        let mut bound = 0;
        for i in 0..10u8 {
            let k = ClientKey::new(Some(&[1, i]), mac(1));
            if let Some(a) = p.offer(&k, mac(1), None, t0, HOLD)
                && p.bind(&k, mac(1), a, t0, LEASE).is_some()
            {
                bound += 1;
            }
        }
        assert_eq!(bound, MAX_LEASES_PER_MAC);
    }
}
