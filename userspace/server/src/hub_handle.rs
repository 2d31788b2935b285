//! One hub as the appliance holds it: started from its tap and switch,
//! registered with the running server, told about reloads, closed. The
//! data plane behind it (switching, tap queues, the WireGuard endpoint) is
//! the server's own business.

use std::{path::PathBuf, sync::Arc};

use ethergate_bridge::TapQueue;
use ethergate_config::SessionLimits;
use ethergate_hub::{DhcpServerConfig, Hub, MacAddr};

use crate::{
    hub_plane::HubPlane,
    hub_switch::HubSwitch,
    wireguard::{Addressing, PeerSetup, WireguardHub, WireguardSetup},
};

/// What a hub starts with.
pub struct HubSetup {
    pub name: String,
    /// Switching and the virtual DHCP server.
    pub switch: Hub,
    /// Where DHCP leases are kept across restarts (when the hub serves
    /// DHCP).
    pub lease_file: Option<PathBuf>,
    /// The local bridge tap's own MAC: no session may take it over, even
    /// while the kernel has sent nothing from it.
    pub bridge_mac: MacAddr,
    /// One queue per worker.
    pub tap_queues: Vec<TapQueue>,
    /// The hub's WireGuard endpoint, if it has one.
    pub wireguard: Option<WireguardSetup>,
}

/// Who may log in to a hub, and the limits their sessions get.
#[derive(Debug, Clone, Default)]
pub struct HubAccess {
    /// User name → stored SoftEther password hash `H`.
    pub users: Vec<(String, [u8; 20])>,
    /// User name → session limits (`[hub.limits]` with the user's
    /// overrides); a user not listed gets the defaults.
    pub limits: Vec<(String, SessionLimits)>,
}

/// Why a hub did not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("preparing its tap queues: {0}")]
    TapQueues(#[source] std::io::Error),
    #[error("WireGuard listen {addr}: {source}")]
    WireguardListen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started hub. Clones share it; [`HubHandle::close`] (or removing it
/// from the server) ends it, and its tap goes with the last reference.
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) plane: Arc<HubPlane>,
}

impl HubHandle {
    /// Prepares the tap queues for the workers (`workers` of them read
    /// WireGuard datagrams too, one socket each). Nothing runs until the
    /// hub is registered with a server.
    pub fn start(setup: HubSetup, workers: usize) -> Result<Self, HubError> {
        let mut switch = HubSwitch::new(setup.switch, setup.lease_file);
        switch.pin_bridge_mac(setup.bridge_mac);
        let mut plane = HubPlane::new(&setup.name, switch, setup.tap_queues, Arc::default())
            .map_err(HubError::TapQueues)?;
        if let Some(wg) = setup.wireguard {
            let sockets =
                crate::udp::bind_sockets(wg.listen, workers, crate::udp::ReplySource::PerDatagram)
                    .map_err(|source| HubError::WireguardListen {
                        addr: wg.listen,
                        source,
                    })?;
            plane = plane.with_wireguard(Arc::new(WireguardHub::new(&setup.name, wg, sockets)));
        }
        Ok(Self {
            plane: Arc::new(plane),
        })
    }

    pub fn name(&self) -> &str {
        &self.plane.name
    }

    /// Open, and a worker reads each of its tap queues.
    pub fn is_running(&self) -> bool {
        let (reading, queues) = self.plane.tap_readers();
        !self.plane.is_closed() && reading == queues
    }

    pub fn is_closed(&self) -> bool {
        self.plane.is_closed()
    }

    /// New DHCP settings (leases that still fit the range are kept), and
    /// the routes WireGuard peers' packets follow.
    pub fn set_dhcp(&self, dhcp: Option<DhcpServerConfig>, addressing: Addressing) {
        self.plane.set_dhcp(dhcp);
        if let Some(wg) = self.plane.wireguard() {
            wg.set_addressing(addressing);
        }
    }

    /// Replaces the WireGuard peers (a reload). Peers whose key and address
    /// are unchanged keep their state; returns the users whose peers were
    /// dropped (end their sessions with
    /// [`crate::RunningServer::disconnect_wireguard`]).
    pub fn set_wireguard_peers(&self, peers: Vec<PeerSetup>) -> Vec<String> {
        self.plane
            .wireguard()
            .map(|wg| wg.set_peers(peers))
            .unwrap_or_default()
    }

    /// The WireGuard endpoint's public key (base64) and peer count.
    pub fn wireguard_identity(&self) -> Option<(String, usize)> {
        self.plane
            .wireguard()
            .map(|wg| (wg.public_key.to_base64(), wg.peer_count()))
    }

    /// Stops the hub: its tap readers end, frames to it are dropped.
    pub fn close(&self) {
        self.plane.close();
    }
}
