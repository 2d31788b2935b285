//! The seam between the hub actor (IO) and the hub's switching logic
//! (sans-IO, in `ethergate-hub`): the actor hands every frame with its
//! ingress port to a [`HubSwitch`], which says where copies go.

use crate::{
    counters::SwitchGauges,
    hub_actor::{PortId, SessionPolicy},
};

/// One copy of a frame and where it goes.
pub enum Delivery<'a> {
    /// To the local bridge.
    Bridge(&'a [u8]),
    /// To one session port (a flood is one delivery per port).
    Port(PortId, &'a [u8]),
}

pub trait HubSwitch {
    /// A session's port joined, with its user's policy (MAC and lease
    /// limits, who may take over its MACs).
    fn port_added(&mut self, port: PortId, policy: &SessionPolicy);
    fn port_removed(&mut self, port: PortId);
    /// Decides what happens to `frame` from `ingress`; frames the hub
    /// answers itself (DHCP) come back as deliveries too.
    fn forward(&mut self, ingress: PortId, frame: &[u8], deliver: &mut dyn FnMut(Delivery<'_>));
    /// Periodic housekeeping (MAC aging); called every [`TICK`].
    fn tick(&mut self) {}
    /// New DHCP settings from a reload.
    fn set_dhcp(&mut self, config: Option<ethergate_hub::DhcpServerConfig>) {
        let _ = config;
    }
    /// Table sizes and drop counts for status; called after each burst.
    fn gauges(&self) -> SwitchGauges {
        SwitchGauges::default()
    }
}

/// How often the hub actor calls [`HubSwitch::tick`].
pub const TICK: std::time::Duration = std::time::Duration::from_secs(5);
