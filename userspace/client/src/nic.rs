//! The client's virtual NIC: one tap queue registered with the io_uring
//! runtime, its MAC, and applying what DHCP granted (address, routes) over
//! rtnetlink through `ethergate-bridge`.
//!
//! Invariant: the tap outlives every session — reconnecting never takes
//! the interface (or its address and routes) down, so sockets bound to it
//! survive a server restart. The kernel removes the tap, with its address
//! and routes, when the client exits.

use std::{net::Ipv4Addr, rc::Rc};

use compio::{
    BufResult,
    io::{AsyncRead, AsyncWrite},
    runtime::fd::AsyncFd,
};
use ethergate_bridge::{Ipv4Cidr, LinkConfig, MacAddr, RouteError, Tap, TapQueue, add_route};
use tracing::{debug, info, warn};

use crate::{dhcp::Lease, error::ClientError};

/// Largest frame read from the tap: MTU 1500 + Ethernet + a VLAN tag;
/// SoftEther's ceiling is 1600 (spec §7.1).
pub const TAP_FRAME_MAX: usize = 1600;

pub struct Nic {
    pub name: String,
    pub ifindex: u32,
    pub mac: MacAddr,
    queue: AsyncFd<TapQueue>,
}

impl Nic {
    /// Creates (or attaches to) the tap, sets its MAC, brings it up, and
    /// puts `address` on it if given. Must run on the runtime thread.
    pub fn create(
        name: &str,
        mac: MacAddr,
        address: Option<Ipv4Cidr>,
    ) -> Result<Rc<Nic>, ClientError> {
        let tap = Tap::create(name, 1)?;
        tap.configure(&LinkConfig {
            mac: Some(mac),
            ipv4: address,
            ..LinkConfig::default()
        })?;
        let ifindex = tap.ifindex();
        let queue = tap
            .into_queues()
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Options(format!("tap {name} came without a queue")))?;
        queue.set_blocking().map_err(ClientError::Runtime)?;
        let queue = AsyncFd::new(queue).map_err(ClientError::Runtime)?;
        info!(tap = name, %mac, address = ?address.map(|a| a.to_string()), "VPN interface up");
        Ok(Rc::new(Nic {
            name: name.to_owned(),
            ifindex,
            mac,
            queue,
        }))
    }

    /// Reads one frame into `buf` (cleared first).
    pub async fn read(&self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let mut fd = &self.queue;
        fd.read(buf).await
    }

    /// Writes one frame.
    pub async fn write(&self, frame: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let mut fd = &self.queue;
        fd.write(frame).await
    }

    /// Puts the lease's address on the tap and installs its routes.
    pub fn apply_lease(&self, lease: &Lease) {
        let Some(address) = Ipv4Cidr::new(lease.address, lease.prefix_len) else {
            warn!(
                prefix = lease.prefix_len,
                "DHCP lease with an invalid prefix; ignored"
            );
            return;
        };
        let config = LinkConfig {
            mac: Some(self.mac),
            ipv4: Some(address),
            ..LinkConfig::default()
        };
        if let Err(e) = ethergate_bridge::configure_index(&self.name, self.ifindex, &config) {
            warn!("DHCP: cannot put {address} on {}: {e}", self.name);
            return;
        }
        info!(tap = self.name, %address, "DHCP: address configured");
        for route in lease.routes() {
            let Some(dest) =
                Ipv4Cidr::new(route.destination.network(), route.destination.prefix_len())
            else {
                continue;
            };
            match add_route(dest, route.gateway, self.ifindex) {
                Ok(()) => info!(%dest, gateway = %route.gateway, "DHCP: route installed"),
                Err(RouteError::Exists { .. }) if dest.prefix_len() == 0 => warn!(
                    gateway = %route.gateway,
                    "DHCP: a default route exists already; kept it (the server's gateway is not installed)"
                ),
                Err(RouteError::Exists { .. }) => {
                    debug!(%dest, "DHCP: route present already")
                }
                Err(e) => warn!("DHCP: {e}"),
            }
        }
    }

    /// The lease ended: the address stays until a new lease replaces it
    /// (the bridge crate has no address removal yet), which is harmless on
    /// a hub whose DHCP server hands the same address back.
    pub fn lease_lost(&self, address: Ipv4Addr, reason: &str) {
        warn!(tap = self.name, %address, "DHCP: lease lost: {reason}; acquiring a new one");
    }
}
