//! The bench topology, the recipe's (`ethergate_netns::recipe`, docs/design.md):
//!
//! ```text
//! client eth0 198.51.100.2/24 (+ .10–.17 for login sources,
//!             203.0.113.10/32: the "internet" host of the NAT rows)
//!   │
//! nat    eth0 198.51.100.1/24 (uplink)   tap_00 192.168.30.1/24 (VPN clients)
//!        eth1 10.0.0.1/16 (inside)
//!   │
//! private eth0 10.0.1.26/16, default via 10.0.0.1 (web server, iperf3)
//! ```
//!
//! The `client` namespace doubles as the internet: NAT rows send from
//! `private` to 203.0.113.0/24, which `nat` routes to 198.51.100.2. No
//! namespace has a route off the machine.

use anyhow::{Context, Result};
use ethergate_netns::{Topology, recipe};

use crate::tools::offloads;

pub const SERVER_IP: &str = recipe::PUBLIC_IP;
pub const PRIVATE_IP: &str = recipe::PRIVATE_IP;
pub const TAP_IP: &str = recipe::TAP_IP;
pub const VPN_CLIENT_CIDR: &str = "192.168.30.10/24";
pub const INTERNET_IP: &str = "203.0.113.10";
/// Extra client addresses the login driver binds to.
pub const LOGIN_SOURCES: [&str; 8] = [
    "198.51.100.10",
    "198.51.100.11",
    "198.51.100.12",
    "198.51.100.13",
    "198.51.100.14",
    "198.51.100.15",
    "198.51.100.16",
    "198.51.100.17",
];

pub fn build() -> Result<Topology> {
    let mut client_addrs = vec![format!("{INTERNET_IP}/32")];
    client_addrs.extend(LOGIN_SOURCES.iter().map(|a| format!("{a}/24")));
    let client_refs: Vec<&str> = client_addrs.iter().map(String::as_str).collect();
    let topo = recipe::topology(&client_refs)
        // The kernel-NAT rows (iptables, nftables, routing) forward too.
        .sysctl(recipe::NAT, "net.ipv4.ip_forward", "1")
        .route(recipe::NAT, "203.0.113.0/24 via 198.51.100.2")
        .build()
        .context("building the bench topology (run as root)")?;
    // XDP_REDIRECT into a veth delivers only if the peer has XDP or GRO
    // (decision 0003): GRO on the two far ends.
    for ns in ["client", "private"] {
        offloads(&topo, ns, "eth0", &[("gro", "on")])?;
    }
    // Resolve neighbours both ways once, so no first packet waits on ARP
    // (the XDP NAT drops frames whose next hop is unresolved).
    topo.exec("nat", &["ping", "-c1", "-W2", "198.51.100.2"])?;
    topo.exec("nat", &["ping", "-c1", "-W2", PRIVATE_IP])?;
    Ok(topo)
}

/// Checksum/segmentation offload off on the senders of NAT rows: an XDP
/// redirect turns a CHECKSUM_PARTIAL skb into a raw frame whose checksum
/// nothing completes (decision 0003). Applied to every NAT system alike.
pub fn nat_offloads(topo: &Topology, on: bool) -> Result<()> {
    let v = if on { "on" } else { "off" };
    for ns in ["client", "private"] {
        offloads(topo, ns, "eth0", &[("tx", v), ("tso", v), ("gso", v)])?;
    }
    Ok(())
}
