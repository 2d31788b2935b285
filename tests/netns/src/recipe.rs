//! The seed recipe every end-to-end test, the benchmark and the demo run:
//! its topology and its config, in one place.
//!
//! ```text
//! client (eth0 198.51.100.2) — nat (eth0 198.51.100.1 | eth1 10.0.0.1/16,
//!                                   tap_00 192.168.30.1/24 once serve runs)
//!                            — private (eth0 10.0.1.26/16, default via 10.0.0.1)
//! ```
//! `nat` runs ethergate; its uplink is `eth0`, the private subnet is behind
//! `eth1`. `private` holds the web server the recipe's DNAT rule points at.

use std::path::Path;

use crate::{Endpoint, NetnsError, Process, Topology, TopologyBuilder};

pub const CLIENT: &str = "client";
pub const NAT: &str = "nat";
pub const PRIVATE: &str = "private";

pub const CLIENT_IP: &str = "198.51.100.2";
/// The appliance's public address: VPN listeners and the NAT's uplink.
pub const PUBLIC_IP: &str = "198.51.100.1";
/// The appliance's address on the private subnet (its hosts' gateway).
pub const INSIDE_IP: &str = "10.0.0.1";
/// The private web server.
pub const PRIVATE_IP: &str = "10.0.1.26";
/// The hub's tap (its DHCP server, router and DNS for VPN clients).
pub const TAP_IP: &str = "192.168.30.1";
pub const HUB: &str = "mikalab";
pub const USER: &str = "tsumura";

/// The three namespaces with their veths and the private host's default
/// route; `client_extra` are more addresses on the client's eth0 (CIDR
/// form). Forwarding in `nat` is left off, as on a fresh machine: serve
/// turns it on (a caller running something else there adds the sysctl).
/// Add routes, sysctls or namespaces before `build()`.
pub fn topology(client_extra: &[&str]) -> TopologyBuilder {
    let client = format!("{CLIENT_IP}/24");
    let mut client_addrs = vec![client.as_str()];
    client_addrs.extend_from_slice(client_extra);
    let public = format!("{PUBLIC_IP}/24");
    let inside = format!("{INSIDE_IP}/16");
    let private = format!("{PRIVATE_IP}/16");
    crate::Topology::builder()
        .namespace(CLIENT)
        .namespace(NAT)
        .namespace(PRIVATE)
        .veth(
            Endpoint::new(CLIENT, "eth0", &client_addrs),
            Endpoint::new(NAT, "eth0", &[public.as_str()]),
        )
        .veth(
            Endpoint::new(NAT, "eth1", &[inside.as_str()]),
            Endpoint::new(PRIVATE, "eth0", &[private.as_str()]),
        )
        .route(PRIVATE, &format!("default via {INSIDE_IP}"))
}

/// The recipe's `[server]` and hub (DHCP with a classless route to the
/// private subnet) for a serve in `state`, with `credential` as the user's
/// password line (`password_hash = "…"`, say) and `user_extra` appended to
/// the user's table.
pub fn hub_config(state: &Path, credential: &str, user_extra: &str) -> String {
    let state = state.display();
    format!(
        r#"[server]
listen = ["{PUBLIC_IP}:443", "{PUBLIC_IP}:992", "{PUBLIC_IP}:5555"]
state_dir = "{state}"
admin_socket = "{state}/admin.sock"
metrics = "off"

[[hub]]
name = "{HUB}"
bridge = "tap_00"
bridge_address = "{TAP_IP}/24"

[hub.dhcp]
range = "192.168.30.10-192.168.30.200"
lease_secs = 7200
dns = ["{TAP_IP}"]
routes = ["10.0.0.0/16 via {TAP_IP}"]

[[hub.user]]
name = "{USER}"
{credential}
{user_extra}"#
    )
}

/// The recipe's `[nat]`: masquerade for the private subnet and the DNAT
/// of VPN clients' HTTP to the private web server; `nat_keys` are more
/// keys of the `[nat]` table itself (`mode = "tc"`, say).
pub fn nat_config(nat_keys: &str) -> String {
    format!(
        r#"
[nat]
uplink = "eth0"
inside = ["eth1"]
{nat_keys}

[[nat.snat]]
source = "10.0.0.0/16"
to = "masquerade"

[[nat.dnat]]
source = "192.168.0.0/16"
protocol = "tcp"
port = 80
to = "{PRIVATE_IP}:80"
"#
    )
}

/// The recipe's DNAT rule as the kernel's NAT writes it (iptables
/// arguments): the hub's HTTP to the private web server. What SoftEther's
/// deployment runs, and what ethergate's `[[nat.dnat]]` replaces.
pub const IPTABLES_DNAT: &[&str] = &[
    "-t",
    "nat",
    "-A",
    "PREROUTING",
    "-s",
    "192.168.0.0/16",
    "-p",
    "tcp",
    "--dport",
    "80",
    "-j",
    "DNAT",
    "--to-destination",
    "10.0.1.26:80",
];

/// The recipe's MASQUERADE of the private subnet out of the uplink, as
/// iptables arguments.
pub const IPTABLES_MASQUERADE: &[&str] = &[
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-s",
    "10.0.0.0/16",
    "-o",
    "eth0",
    "-j",
    "MASQUERADE",
];

/// The private web server the DNAT rule points at: busybox httpd on
/// [`PRIVATE_IP`]:80 in [`PRIVATE`], serving `page` as `index.html` from
/// `site` (created if missing).
pub fn web_server(topo: &Topology, site: &Path, page: &str) -> Result<Process, NetnsError> {
    std::fs::create_dir_all(site)?;
    std::fs::write(site.join("index.html"), page)?;
    let listen = format!("{PRIVATE_IP}:80");
    let site = site.display().to_string();
    topo.spawn(
        PRIVATE,
        &["busybox", "httpd", "-f", "-p", &listen, "-h", &site],
    )
}

/// The two-armed appliance, with the namespaces in `extra` declared first
/// (they get the same sysctls; their links and routes are the caller's):
///
/// ```text
/// private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
/// ```
pub fn two_armed(extra: &[&str]) -> TopologyBuilder {
    let mut builder = Topology::builder();
    for ns in extra {
        builder = builder.namespace(ns);
    }
    builder
        .namespace("private")
        .namespace("nat")
        .namespace("internet")
        .sysctl_everywhere("net.ipv6.conf.default.disable_ipv6", "1")
        .sysctl("nat", "net.ipv4.ip_forward", "1")
        .veth(
            Endpoint::new("private", "eth0", &["10.0.1.26/16"]),
            Endpoint::new("nat", "priv0", &["10.0.0.1/16"]),
        )
        .veth(
            Endpoint::new("nat", "pub0", &["203.0.113.1/24"]),
            Endpoint::new("internet", "eth0", &["203.0.113.10/24"]),
        )
        .route("private", "default via 10.0.0.1")
}

/// A second remote site for WireGuard devices: `phone` (eth0
/// 203.0.113.2/24) on its own link to `nat` (eth2 203.0.113.1/24), so a
/// phone and a SoftEther client are different hosts.
pub const PHONE: &str = "phone";
pub const PHONE_IP: &str = "203.0.113.2";
/// The appliance's address on the phone's link: the WireGuard endpoint.
pub const PHONE_GATEWAY_IP: &str = "203.0.113.1";
pub const WIREGUARD_PORT: u16 = 51820;

/// [`topology`] plus the `phone` namespace and its link.
pub fn with_phone(builder: TopologyBuilder) -> TopologyBuilder {
    let phone = format!("{PHONE_IP}/24");
    let gateway = format!("{PHONE_GATEWAY_IP}/24");
    builder.namespace(PHONE).veth(
        Endpoint::new(PHONE, "eth0", &[phone.as_str()]),
        Endpoint::new(NAT, "eth2", &[gateway.as_str()]),
    )
}

/// The hub's WireGuard endpoint, to append after [`hub_config`].
pub fn wireguard_config() -> String {
    format!("\n[hub.wireguard]\nlisten = \"0.0.0.0:{WIREGUARD_PORT}\"\n")
}

/// The arguments of `ethergate user add` that give the hub a WireGuard
/// user `phone` whose device config points at the phone's side of the
/// appliance.
pub fn add_phone_user_args(config: &Path) -> Vec<String> {
    let endpoint = format!("{PHONE_GATEWAY_IP}:{WIREGUARD_PORT}");
    let config = config.display().to_string();
    [
        "user",
        "add",
        "--config",
        &config,
        "--hub",
        HUB,
        "phone",
        "--wireguard",
        "--endpoint",
        &endpoint,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The device config `ethergate user add --wireguard` (or `user wg-config`)
/// printed in `output`: from its `# ethergate hub` line through
/// `PersistentKeepalive`.
pub fn printed_device_config(output: &str) -> Option<&str> {
    let start = output.find("# ethergate hub")?;
    let end = start + output[start..].find("PersistentKeepalive")?;
    let line_end = output[end..]
        .find('\n')
        .map_or(output.len(), |n| end + n + 1);
    Some(&output[start..line_end])
}
