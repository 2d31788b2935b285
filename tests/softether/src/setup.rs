//! The setup the interop tests share: a client namespace and a server
//! namespace on one veth pair, and a vpnserver with hub `TEST`, user
//! `alice`/`secret` and SecureNAT, whose DHCP server pushes chosen routes.

use std::net::Ipv4Addr;

use ethergate_netns::{Endpoint, NetnsError, Topology};

use crate::{DhcpSettings, Result, SoftEtherServer};

/// `client (cl0, 198.51.100.2/24) — server (sv0, 198.51.100.1/24)`.
pub fn client_server_topology() -> std::result::Result<Topology, NetnsError> {
    Topology::builder()
        .namespace("client")
        .namespace("server")
        .veth(
            Endpoint::new("client", "cl0", &["198.51.100.2/24"]),
            Endpoint::new("server", "sv0", &["198.51.100.1/24"]),
        )
        .build()
}

impl<'t> SoftEtherServer<'t> {
    /// Starts vpnserver in `namespace` with hub `TEST`, user
    /// `alice`/`secret` and SecureNAT, its DHCP server on
    /// SoftEther's defaults (192.168.30.0/24, gateway 192.168.30.1) and
    /// pushing `push_routes` (network, prefix length, gateway) as options
    /// 121/249.
    pub fn start_test_hub(
        topo: &'t Topology,
        namespace: &str,
        push_routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    ) -> Result<Self> {
        let server = SoftEtherServer::start(topo, namespace)?;
        server.hub_create("TEST")?;
        server.user_create("TEST", "alice", "secret")?;
        server.secure_nat_enable("TEST")?;
        server.dhcp_set(
            "TEST",
            &DhcpSettings {
                push_routes,
                ..DhcpSettings::default()
            },
        )?;
        Ok(server)
    }
}
