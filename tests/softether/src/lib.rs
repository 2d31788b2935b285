//! The real Debian SoftEther VPN daemons (`softether-vpnserver`,
//! `softether-vpnclient`, `softether-vpncmd`, 5.01) in throwaway network
//! namespaces, for interop tests and benches: start a [`SoftEtherServer`] or
//! [`SoftEtherClient`] in a namespace of an [`ethergate_netns::Topology`],
//! configure it through typed vpncmd wrappers, connect, and take a DHCP
//! lease through the VPN NIC with [`Udhcpc`].
//!
//! Invariants:
//! * Each daemon has its own `/var/lib/softether`, `/var/log/softether` and
//!   `/run/softether` (a private mount namespace over a scratch directory),
//!   so any number run side by side and none touches the host's state or
//!   the system-wide services.
//! * No vpncmd call can hang: stdin is /dev/null, a password is always
//!   given, a refused login is killed at once and every call has a deadline.
//! * Only processes this crate started are signalled, by PID; the topology's
//!   teardown removes anything left in its namespaces.
//!
//! Needs root (namespaces, mounts, taps); run tests with `--test-threads=1`.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use ethergate_netns::{Endpoint, Topology};
//! # use ethergate_softether::*;
//! # fn main() -> Result<()> {
//! let topo = Topology::builder()
//!     .namespace("client")
//!     .namespace("server")
//!     .veth(
//!         Endpoint::new("client", "cl0", &["198.51.100.2/24"]),
//!         Endpoint::new("server", "sv0", &["198.51.100.1/24"]),
//!     )
//!     .build()?;
//! let server = SoftEtherServer::start(&topo, "server")?;
//! server.hub_create("TEST")?;
//! server.user_create("TEST", "alice", "secret")?;
//! server.secure_nat_enable("TEST")?;
//!
//! let client = SoftEtherClient::start(&topo, "client")?;
//! let tap = client.nic_create("vpn0")?; // "vpn_vpn0"
//! client.account_create("acc", "198.51.100.1:443", "TEST", "alice", "vpn0")?;
//! client.account_password_set("acc", "secret", PasswordKind::Standard)?;
//! client.account_connect("acc")?;
//! client.wait_connected("acc", Duration::from_secs(20))?;
//! let lease = Udhcpc::new(&tap).run(&topo, "client")?; // 192.168.30.x
//! # let _ = lease;
//! # Ok(())
//! # }
//! ```

mod client;
mod command;
mod daemon;
mod dhcp;
mod error;
mod server;
mod setup;
mod vpncmd;

pub use client::{
    AccountDetail, AccountStatus, ConnectFailure, ESTABLISHED, NIC_PREFIX, PasswordKind,
    SoftEtherClient,
};
pub use dhcp::{Lease, StaticRoute, Udhcpc};
pub use error::{Result, SoftEtherError};
pub use server::{DEFAULT_ADMIN_PASSWORD, DhcpSettings, SoftEtherServer};
pub use setup::client_server_topology;
pub use vpncmd::VpncmdOutput;
