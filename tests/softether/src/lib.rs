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

mod client;
mod command;
mod daemon;
mod dhcp;
mod error;
mod server;
mod vpncmd;

pub use client::{
    AccountDetail, AccountStatus, ConnectFailure, ESTABLISHED, NIC_PREFIX, PasswordKind,
    SoftEtherClient,
};
pub use dhcp::{Lease, StaticRoute, Udhcpc};
pub use error::{Result, SoftEtherError};
pub use server::{DEFAULT_ADMIN_PASSWORD, DhcpSettings, SoftEtherServer};
pub use vpncmd::VpncmdOutput;
