//! The local bridge's kernel side: the multi-queue tap a virtual hub is
//! bridged to, created and configured by ethergate itself — no rc.local, no
//! `sleep 10`, no `ip` processes.
//!
//! [`Tap::create`] opens one non-blocking `/dev/net/tun` descriptor per queue
//! (one queue per core); the server wraps each [`TapQueue`] in its runtime's
//! async fd. [`Tap::configure`] (or [`configure`] for any link) sets MAC,
//! MTU, the IPv4 address and up over rtnetlink; [`add_route`] installs a
//! route through a link (a DHCP lease's routes, for `ethergate client`).
//! Everything acts in the calling thread's network namespace, so tests can
//! run it in a thread that entered a throwaway namespace.
//!
//! ```no_run
//! use ethergate_bridge::{LinkConfig, MacAddr, Tap};
//!
//! let tap = Tap::create("tap_00", 2)?;
//! tap.configure(&LinkConfig {
//!     mac: Some(MacAddr::local_from_seed(b"mikalab")),
//!     ipv4: Some("192.168.30.1/24".parse()?),
//!     ..LinkConfig::default()
//! })?;
//! for queue in tap.into_queues() {
//!     // hand `queue` (AsFd / Into<OwnedFd>) to one core
//!     # drop(queue);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod link;
mod netlink;
mod route;
mod tap;

pub use error::{LinkError, TapError};
pub use ethergate_net::{CidrError, Ipv4Cidr, MacAddr};
pub use link::{DEFAULT_MTU, LinkConfig, configure, configure_index, ifindex};
pub use netlink::NetlinkError;
pub use route::{RouteError, add_route};
pub use tap::{MAX_QUEUES, Tap, TapOptions, TapQueue};
