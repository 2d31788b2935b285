//! The production [`HubSwitch`]: `ethergate-hub`'s MAC-learning switch and
//! virtual DHCP server, with the DHCP leases persisted to `state_dir`.
//!
//! Invariant: the lease file is rewritten (crash-safely: temp file, fsync,
//! rename) whenever the set of bound leases changes, so a restart hands
//! every client the address it had; a lost write costs at most the leases
//! granted since the last successful one.

use std::{path::PathBuf, time::SystemTime};

use ethergate_hub::{DhcpLease, Forward, Hub, PortPolicy, Timestamp, format_leases, parse_leases};
use tracing::{info, warn};

use crate::{
    counters::SwitchGauges,
    hub_actor::PortId,
    switch::{Delivery, HubSwitch},
    tls::write_atomically,
};

pub struct LearningHub {
    hub: Hub,
    lease_file: Option<PathBuf>,
    /// What the file holds now, to skip rewriting an unchanged set.
    persisted: Vec<DhcpLease>,
    /// Frames dropped by the switch (all reasons), for logs.
    pub dropped: u64,
    /// Bound leases, recounted after DHCP activity and each tick, so
    /// [`HubSwitch::gauges`] is O(1) and can be published after every burst.
    bound_leases: Option<u64>,
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

impl LearningHub {
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
            bound_leases: None,
        };
        learning.recount_leases();
        learning
    }

    fn recount_leases(&mut self) {
        self.bound_leases = self.hub.dhcp().map(|d| d.snapshot().len() as u64);
    }

    fn persist_if_changed(&mut self) {
        let (Some(path), Some(dhcp)) = (&self.lease_file, self.hub.dhcp()) else {
            return;
        };
        let now_leases = dhcp.snapshot();
        if now_leases == self.persisted {
            return;
        }
        match write_atomically(path, format_leases(&now_leases).as_bytes(), 0o600) {
            Ok(()) => self.persisted = now_leases,
            Err(e) => warn!("cannot persist DHCP leases: {e}"),
        }
    }
}

impl HubSwitch for LearningHub {
    fn port_added(&mut self, port: PortId) {
        if let Err(e) = self.hub.add_port(port, PortPolicy::default()) {
            warn!(hub = self.hub.name(), "{e}");
        }
    }

    fn port_removed(&mut self, port: PortId) {
        let _ = self.hub.remove_port(port);
    }

    fn tick(&mut self) {
        // The hub only sweeps on its own when a limit is hit.
        self.hub.expire(now());
        self.recount_leases();
    }

    fn set_dhcp(&mut self, config: Option<ethergate_hub::DhcpServerConfig>) {
        let report = self.hub.set_dhcp(config, now());
        info!(hub = self.hub.name(), ?report, "DHCP settings replaced");
        self.recount_leases();
        self.persist_if_changed();
    }

    fn gauges(&self) -> SwitchGauges {
        SwitchGauges {
            mac_entries: self.hub.mac_table().len() as u64,
            dhcp_leases: self.bound_leases,
        }
    }

    fn forward(&mut self, ingress: PortId, frame: &[u8], deliver: &mut dyn FnMut(Delivery<'_>)) {
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
            Forward::Drop(_) => self.dropped += 1,
        }
        if dhcp_activity {
            self.recount_leases();
            self.persist_if_changed();
        }
    }
}
