//! A hub's switching logic: `ethergate-hub`'s MAC-learning switch and
//! virtual DHCP server, with the DHCP leases persisted to `state_dir`. The
//! hub's data plane ([`crate::hub_plane`]) runs every frame through it under
//! its lock; this module does no I/O on that path.
//!
//! Invariant: the lease file is rewritten (crash-safely: temp file, fsync,
//! rename) by the hub's housekeeping, at most a second after the set of
//! bound leases changed, so a restart hands every client the address it
//! had; a crash costs at most the leases granted in that last second. The
//! write happens outside the hub's lock, never on a worker's frame path.
//!
//! Each session's port runs under its user's policy ([`SessionPolicy`]):
//! its MAC and lease limits, and an owner id shared by all ports of one
//! user, so a reconnecting client takes its MAC to its new port while
//! other users cannot (see `ethergate_hub::PortPolicy`). The bridge tap's
//! own MAC is pinned to the bridge port. Drops are counted by reason;
//! the first `mac_limit`, `mac_spoof` and `lease_limit` drop of each
//! session is logged (once per session and reason, so an abusive client
//! cannot flood the log).

use std::{collections::HashMap, path::PathBuf, time::SystemTime};

use ethergate_hub::{
    DhcpLease, Forward, FrameDrop, Hub, MacAddr, PortId, PortPolicy, WallTime, format_leases,
    parse_leases,
};
use tracing::{info, warn};

use crate::{counters::SwitchGauges, tls::write_atomically};

/// What a session's port may do on the hub, fixed at login from its
/// user's limits (SoftEther's user policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// The hub user, lower-cased: ports of one user may take each other's
    /// MAC addresses (a client that reconnected), other ports may not.
    pub user: String,
    pub limits: ethergate_config::SessionLimits,
}

impl SessionPolicy {
    pub fn new(user: &str, limits: ethergate_config::SessionLimits) -> Self {
        Self {
            user: user.to_ascii_lowercase(),
            limits,
        }
    }
}

/// One copy of a frame and where it goes.
pub enum Delivery<'a> {
    /// To the local bridge.
    Bridge(&'a [u8]),
    /// To one session port (a flood is one delivery per port).
    Port(PortId, &'a [u8]),
}

/// How often MAC entries are aged out.
pub const MAC_AGING_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Leases to write, from [`HubSwitch::leases_to_persist`].
pub struct LeaseWrite {
    path: PathBuf,
    leases: Vec<DhcpLease>,
}

impl LeaseWrite {
    /// Writes the file (crash-safely); call without the hub's lock held.
    pub fn write(&self) -> Result<(), crate::tls::TlsError> {
        write_atomically(&self.path, format_leases(&self.leases).as_bytes(), 0o600)
    }
}

/// Drops worth one log line per session: a client doing what its policy
/// forbids (or a misconfigured limit).
const LOGGED_DROPS: [FrameDrop; 3] = [
    FrameDrop::MacLimit,
    FrameDrop::MacSpoof,
    FrameDrop::LeaseLimit,
];

/// A session port as the switch knows it, for logs.
struct SessionPort {
    user: String,
    /// Bit `i` set: a drop of `LOGGED_DROPS[i]` was logged already.
    logged: u8,
}

pub struct HubSwitch {
    hub: Hub,
    lease_file: Option<PathBuf>,
    /// What the file holds now, to skip rewriting an unchanged set.
    persisted: Vec<DhcpLease>,
    /// Frames dropped by the switch (all reasons), for logs.
    pub dropped: u64,
    /// Frames dropped, by [`FrameDrop::index`].
    drops: [u64; FrameDrop::ALL.len()],
    /// Bound leases, recounted after DHCP activity and each tick, so
    /// [`HubSwitch::gauges`] is O(1) and can be published after every burst.
    bound_leases: Option<u64>,
    /// Owner ids of hub users (lower-cased names), handed out in order;
    /// only users who logged in are here.
    owners: HashMap<String, u64>,
    sessions: HashMap<PortId, SessionPort>,
    lease_log: LogBudget,
}

/// Lease log lines per minute per hub: plenty for real clients, while a
/// client renewing in a loop gets counted instead of filling the log.
const LEASE_LINES_PER_MINUTE: u32 = 60;

/// A budget of log lines per minute; what is over it is counted and
/// reported with the next line allowed.
#[derive(Default)]
struct LogBudget {
    window: Option<std::time::Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    /// Whether a line may be written now; `Some(n)` also says how many
    /// were suppressed since the last one written.
    fn allow(&mut self, per_minute: u32) -> Option<u64> {
        let now = std::time::Instant::now();
        if self
            .window
            .is_none_or(|start| now.duration_since(start).as_secs() >= 60)
        {
            self.window = Some(now);
            self.used = 0;
        }
        if self.used >= per_minute {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

fn now() -> WallTime {
    WallTime::from_system_time(SystemTime::now())
}

impl HubSwitch {
    /// Wraps `hub` (bridge port added here); restores leases from
    /// `lease_file` when it exists. A corrupt file is reported and set aside
    /// rather than trusted or silently dropped.
    pub fn new(mut hub: Hub, lease_file: Option<PathBuf>) -> Self {
        if let Err(e) = hub.add_port(PortId::BRIDGE, PortPolicy::default()) {
            warn!(hub = hub.name(), "bridge port: {e}");
        }
        let mut persisted = Vec::new();
        if let (Some(path), Some(dhcp)) = (&lease_file, hub.dhcp_mut()) {
            match std::fs::read_to_string(path) {
                Ok(text) => match parse_leases(&text) {
                    Ok(leases) => {
                        let report = dhcp.restore(leases, now());
                        info!(file = %path.display(), ?report, "DHCP leases restored");
                        persisted = dhcp.snapshot();
                    }
                    Err(e) => {
                        let aside = path.with_extension("corrupt");
                        warn!(file = %path.display(), "lease file unreadable ({e}); moved to {}", aside.display());
                        let _ = std::fs::rename(path, aside);
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(file = %path.display(), "cannot read lease file: {e}"),
            }
        }
        let mut learning = Self {
            hub,
            lease_file,
            persisted,
            dropped: 0,
            drops: [0; FrameDrop::ALL.len()],
            bound_leases: None,
            owners: HashMap::new(),
            sessions: HashMap::new(),
            lease_log: LogBudget::default(),
        };
        learning.recount_leases();
        learning
    }

    /// Pins the bridge tap's own MAC to the bridge port: no session can
    /// take it over, even while the kernel sends nothing from it.
    pub fn pin_bridge_mac(&mut self, mac: MacAddr) {
        if let Err(e) = self.hub.pin_mac(mac, PortId::BRIDGE, now()) {
            warn!(hub = self.hub.name(), "pinning the bridge MAC: {e}");
        }
    }

    #[cfg(test)]
    /// The switch itself, for tests and status.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    fn owner_id(&mut self, user: &str) -> u64 {
        let next = self.owners.len() as u64 + 1;
        *self.owners.entry(user.to_owned()).or_insert(next)
    }

    fn count_drop(&mut self, port: PortId, reason: FrameDrop, frame: &[u8]) {
        self.dropped += 1;
        self.drops[reason.index()] += 1;
        let Some(bit) = LOGGED_DROPS.iter().position(|r| *r == reason) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&port) else {
            return;
        };
        if session.logged & (1 << bit) != 0 {
            return;
        }
        session.logged |= 1 << bit;
        let mac = frame
            .get(6..12)
            .and_then(MacAddr::from_slice)
            .unwrap_or_default();
        let policy = self.hub.policy(port).copied().unwrap_or_default();
        let why = match reason {
            FrameDrop::MacLimit => "session uses more MAC addresses than max_macs_per_session",
            FrameDrop::MacSpoof => "session sent from a MAC the bridge or another session owns",
            _ => "session asked for more DHCP leases than max_leases_per_session",
        };
        warn!(
            hub = self.hub.name(),
            port = port.0,
            user = session.user,
            %mac,
            reason = reason.as_str(),
            max_macs = ?policy.max_macs,
            max_leases = ?policy.max_leases,
            "{why}; frame dropped (further ones from this session are only counted)"
        );
    }

    /// One line per lease given, renewed or released (within the budget),
    /// naming the session's user when the request came through a session.
    fn log_lease_events(&mut self, ingress: PortId) {
        let Some(dhcp) = self.hub.dhcp_mut() else {
            return;
        };
        let (events, overflow) = dhcp.take_events();
        self.lease_log.suppressed += overflow;
        let user = self.sessions.get(&ingress).map(|s| s.user.as_str());
        for event in events {
            let Some(suppressed) = self.lease_log.allow(LEASE_LINES_PER_MINUTE) else {
                continue;
            };
            info!(
                hub = self.hub.name(),
                event = event.kind.name(),
                ip = %event.ip,
                mac = %event.mac,
                user,
                port = ingress.0,
                lease_secs = event.lease_secs,
                suppressed_before = (suppressed > 0).then_some(suppressed),
                "DHCP lease {}",
                event.kind.name()
            );
        }
    }

    fn recount_leases(&mut self) {
        self.bound_leases = self.hub.dhcp().map(|d| d.snapshot().len() as u64);
    }

    /// The bound leases, when they differ from what the file holds: write
    /// them outside the hub's lock, then report with [`Self::persisted`].
    pub fn leases_to_persist(&self) -> Option<LeaseWrite> {
        let (Some(path), Some(dhcp)) = (&self.lease_file, self.hub.dhcp()) else {
            return None;
        };
        let leases = dhcp.snapshot();
        (leases != self.persisted).then(|| LeaseWrite {
            path: path.clone(),
            leases,
        })
    }

    /// `write` reached the disk.
    pub fn persisted(&mut self, write: LeaseWrite) {
        self.persisted = write.leases;
    }
}

impl HubSwitch {
    /// A session's port joined, with its user's policy (MAC and lease
    /// limits, who may take over its MACs).
    pub fn port_added(&mut self, port: PortId, policy: &SessionPolicy) {
        let owner = self.owner_id(&policy.user);
        let port_policy = PortPolicy {
            max_macs: policy.limits.macs_per_session(),
            max_leases: policy.limits.leases_per_session(),
            owner: Some(owner),
        };
        match self.hub.add_port(port, port_policy) {
            Ok(()) => {
                self.sessions.insert(
                    port,
                    SessionPort {
                        user: policy.user.clone(),
                        logged: 0,
                    },
                );
            }
            Err(e) => warn!(hub = self.hub.name(), "{e}"),
        }
    }

    pub fn port_removed(&mut self, port: PortId) {
        let _ = self.hub.remove_port(port);
        self.sessions.remove(&port);
    }

    /// Ages out MAC entries; call every [`MAC_AGING_EVERY`].
    pub fn tick(&mut self) {
        // The hub only sweeps on its own when a limit is hit.
        self.hub.expire(now());
        self.recount_leases();
    }

    /// New DHCP settings from a reload.
    pub fn set_dhcp(&mut self, config: Option<ethergate_hub::DhcpServerConfig>) {
        let report = self.hub.set_dhcp(config, now());
        info!(hub = self.hub.name(), ?report, "DHCP settings replaced");
        self.recount_leases();
    }

    /// Table sizes and drop counts for status; O(1).
    pub fn gauges(&self) -> SwitchGauges {
        SwitchGauges {
            mac_entries: self.hub.mac_table().len() as u64,
            dhcp_leases: self.bound_leases,
            frames_dropped: self.drops,
        }
    }

    /// Decides what happens to `frame` from `ingress`; frames the hub
    /// answers itself (DHCP) come back as deliveries too.
    pub fn forward(
        &mut self,
        ingress: PortId,
        frame: &[u8],
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) {
        let mut dhcp_activity = false;
        match self.hub.forward(ingress, frame, now()) {
            Forward::Unicast(port) if port == PortId::BRIDGE => deliver(Delivery::Bridge(frame)),
            Forward::Unicast(port) => deliver(Delivery::Port(port, frame)),
            Forward::Flood(ports) => {
                for port in ports {
                    if port == PortId::BRIDGE {
                        deliver(Delivery::Bridge(frame));
                    } else {
                        deliver(Delivery::Port(port, frame));
                    }
                }
            }
            Forward::Reply { port, frame: reply } => {
                dhcp_activity = true;
                if port == PortId::BRIDGE {
                    deliver(Delivery::Bridge(reply));
                } else {
                    deliver(Delivery::Port(port, reply));
                }
            }
            Forward::Consumed => dhcp_activity = true,
            Forward::Drop(reason) => self.count_drop(ingress, reason, frame),
        }
        if dhcp_activity {
            self.log_lease_events(ingress);
            self.recount_leases();
        }
    }
}

/// A broadcast ARP-typed frame from `src`, for the switch tests here and
/// in the hub's data plane.
#[cfg(test)]
pub(crate) fn broadcast_frame(src: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f
}

#[cfg(test)]
mod tests {
    use ethergate_config::SessionLimits;
    use ethergate_hub::{HubOptions, MacAddr};

    use super::*;

    fn frame(src: MacAddr) -> Vec<u8> {
        broadcast_frame(src)
    }

    fn policy(user: &str, max_macs: u32) -> SessionPolicy {
        SessionPolicy::new(
            user,
            SessionLimits {
                max_macs_per_session: max_macs,
                ..SessionLimits::default()
            },
        )
    }

    /// Where copies of one frame went.
    fn forward(switch: &mut HubSwitch, port: u64, f: &[u8]) -> usize {
        let mut copies = 0;
        switch.forward(PortId(port), f, &mut |_| copies += 1);
        copies
    }

    fn dropped(switch: &HubSwitch, reason: FrameDrop) -> u64 {
        switch.gauges().frames_dropped[reason.index()]
    }

    #[test]
    fn session_policies_reach_the_switch_and_drops_are_counted_by_reason() {
        let tap = MacAddr::local_from_seed(b"mikalab");
        let mut switch = HubSwitch::new(Hub::new("mikalab", HubOptions::default(), None), None);
        switch.pin_bridge_mac(tap);
        switch.port_added(PortId(1), &policy("Alice", 16));
        switch.port_added(PortId(2), &policy("bob", 16));
        // alice reconnected: a second session of hers, still the old one up.
        switch.port_added(PortId(3), &policy("ALICE", 16));
        for n in 0..300u16 {
            let [hi, lo] = n.to_be_bytes();
            forward(&mut switch, 1, &frame(MacAddr([0x02, 0x44, 0, 0, hi, lo])));
        }
        assert_eq!(switch.hub().mac_table().port_count(PortId(1)), 16);
        assert_eq!(dropped(&switch, FrameDrop::MacLimit), 300 - 16);
        // bob cannot use alice's MAC, nor the tap's.
        let alice_mac = MacAddr([0x02, 0x44, 0, 0, 0, 0]);
        assert_eq!(forward(&mut switch, 2, &frame(alice_mac)), 0);
        assert_eq!(forward(&mut switch, 2, &frame(tap)), 0);
        assert_eq!(dropped(&switch, FrameDrop::MacSpoof), 2);
        assert_eq!(
            switch
                .hub()
                .mac_table()
                .lookup(&tap, WallTime::from_system_time(SystemTime::now())),
            Some(PortId::BRIDGE)
        );
        // alice's new session takes her MAC along (flooded to 0, 1, 2).
        assert_eq!(forward(&mut switch, 3, &frame(alice_mac)), 3);
        assert_eq!(switch.dropped, 300 - 16 + 2);
        // A detached session's counters go; the hub's totals stay.
        switch.port_removed(PortId(1));
        assert_eq!(dropped(&switch, FrameDrop::MacLimit), 300 - 16);
        // Unlimited (0) means no per-session cap at all.
        switch.port_added(PortId(4), &policy("carol", 0));
        for n in 0..100u8 {
            assert_eq!(
                forward(&mut switch, 4, &frame(MacAddr([0x02, 0x45, 0, 0, 0, n]))),
                3
            );
        }
    }
}
