//! The servers and the client of the tunnel rows: ethergate (its config
//! from the recipe) and the Debian SoftEther VPN Server with the recipe's
//! bridge and iptables rules, and the Debian vpnclient that connects to
//! either.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use ethergate_netns::{Process, Topology, recipe};
use ethergate_softether::{AccountDetail, PasswordKind, SoftEtherClient, SoftEtherServer};

use crate::{
    settings::Settings,
    sys,
    topo::{PRIVATE_IP, SERVER_IP, TAP_IP, VPN_CLIENT_CIDR},
};

pub const HUB: &str = recipe::HUB;

pub const USER: &str = recipe::USER;

pub const PASSWORD: &str = "bench-password";

pub(crate) const ACCOUNT: &str = "bench";

pub(crate) const NIC: &str = "vpn0";

pub(crate) const TAP: &str = "vpn_vpn0";

pub const ETHERGATE: &str = "ethergate";

/// ethergate with the client's UDP acceleration turned off
/// (`/DISABLEUDP:yes`): its TLS data path, transport for transport against
/// [`SOFTETHER_TCP`].
pub const ETHERGATE_TCP: &str = "ethergate TCP only (/DISABLEUDP)";

pub const SOFTETHER: &str = "SoftEther 5.01 (bridge+iptables)";

/// The same SoftEther server with the client's UDP acceleration turned off
/// (`/DISABLEUDP:yes`): its data then takes the TLS connection. Without it
/// the Debian client moves almost every data packet over UDP
/// (docs/udp-acceleration.md), as it does with [`ETHERGATE`].
pub const SOFTETHER_TCP: &str = "SoftEther 5.01 TCP only (/DISABLEUDP)";

/// The recipe's iptables rules for the SoftEther system (docs/design.md).
pub(crate) const SOFTETHER_RULES: [&[&str]; 2] =
    [recipe::IPTABLES_DNAT, recipe::IPTABLES_MASQUERADE];

/// ethergate's config for every row: the recipe's hub, DHCP, and [nat]
/// with SNAT for the private subnet and the recipe's DNAT rule;
/// `hub_extra` (more users, `[hub.wireguard]`) ends the hub's tables.
pub fn ethergate_config(
    dir: &Path,
    max_flows: u32,
    mode: Option<&str>,
    hub_extra: &str,
) -> Result<PathBuf> {
    let mode = mode.map_or_else(String::new, |m| format!("mode = \"{m}\"\n"));
    std::fs::create_dir_all(dir)?;
    let mut text = recipe::hub_config(
        dir,
        &format!("password = \"{PASSWORD}\""),
        "# The login and idle-session rows hold hundreds of sessions of this one\n\
         # user, as SoftEther allows by default (MultiLogins unlimited).\n\
         max_sessions_per_user = 0\n",
    );
    text.push_str(hub_extra);
    text.push_str(&recipe::nat_config(&mode));
    text.push_str(&format!(
        "\n[nat.limits]\nmax_flows = {max_flows}\n\
         # One private host generates every NAT row's flows (up to 1M).\n\
         max_flows_per_source = 0\n"
    ));
    let path = dir.join("ethergate.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `ethergate serve` in `nat`, once its listeners are up.
pub fn start_ethergate(
    topo: &Topology,
    settings: &Settings,
    max_flows: u32,
    mode: Option<&str>,
) -> Result<Process> {
    start_ethergate_with(topo, settings, max_flows, mode, "").map(|(p, _)| p)
}

/// [`start_ethergate`] with `hub_extra` in its config; also returns its
/// state directory.
pub fn start_ethergate_with(
    topo: &Topology,
    settings: &Settings,
    max_flows: u32,
    mode: Option<&str>,
    hub_extra: &str,
) -> Result<(Process, PathBuf)> {
    let dir = settings
        .work
        .join(format!("ethergate-{}", sys::timestamp()));
    let config = ethergate_config(&dir, max_flows, mode, hub_extra)?;
    let bin = settings.ethergate_bin.display().to_string();
    let cfg = config.display().to_string();
    let mut p = topo.spawn("nat", &[&bin, "serve", "--config", &cfg])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.log().contains("VPN listeners up") {
        if !p.is_running() {
            bail!("ethergate serve exited: {}", p.log());
        }
        if Instant::now() > deadline {
            bail!("ethergate serve not up within 60 s: {}", p.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((p, dir))
}

/// Stops serve and drops the NAT state it leaves pinned on purpose (so
/// that a restart keeps flows): the next system must not find ethergate's
/// programs still attached to the NAT's interfaces.
pub fn stop_ethergate(topo: &Topology, settings: &Settings, serve: Process) {
    drop(serve);
    let bin = settings.ethergate_bin.display().to_string();
    let _ = topo.run("nat", &[&bin, "nat", "forget"]);
}

pub(crate) fn start_softether<'t>(topo: &'t Topology) -> Result<SoftEtherServer<'t>> {
    let server = SoftEtherServer::start(topo, "nat")?;
    server.hub_create(HUB)?;
    server.user_create(HUB, USER, PASSWORD)?;
    // The recipe's local bridge: a tap named tap_00 created by vpnserver.
    server.vpncmd(&["BridgeCreate", HUB, "/DEVICE:00", "/TAP:yes"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !topo.run("nat", &["ip", "link", "show", "tap_00"])?.success {
        if Instant::now() > deadline {
            bail!("vpnserver did not create tap_00 within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    topo.exec(
        "nat",
        &[
            "ip",
            "addr",
            "add",
            &format!("{TAP_IP}/24"),
            "dev",
            "tap_00",
        ],
    )?;
    topo.exec("nat", &["ip", "link", "set", "tap_00", "up"])?;
    for rule in SOFTETHER_RULES {
        let mut argv = vec!["iptables"];
        argv.extend_from_slice(rule);
        topo.exec("nat", &argv)?;
    }
    Ok(server)
}

pub(crate) fn remove_softether_rules(topo: &Topology) {
    let _ = topo.run("nat", &["iptables", "-t", "nat", "-F"]);
}

/// The SoftEther client daemon with one NIC and one account for all
/// servers (they share address, hub, user and password).
pub(crate) fn start_client(topo: &Topology) -> Result<SoftEtherClient<'_>> {
    let client = SoftEtherClient::start(topo, "client")?;
    client.nic_create(NIC)?;
    client.account_create(ACCOUNT, &format!("{SERVER_IP}:443"), HUB, USER, NIC)?;
    client.account_password_set(ACCOUNT, PASSWORD, PasswordKind::Standard)?;
    Ok(client)
}

/// Whether `system` is a server with the client's UDP acceleration off.
pub(crate) fn tcp_only(system: &str) -> bool {
    system == SOFTETHER_TCP || system == ETHERGATE_TCP
}

/// The client account's connection settings for `system`: `max_tcp`
/// connections, UDP acceleration (the client's default) unless the system
/// is a TCP-only one.
pub(crate) fn account_detail(system: &str, max_tcp: u8) -> AccountDetail {
    AccountDetail {
        max_tcp,
        disable_udp: tcp_only(system),
        ..Default::default()
    }
}

/// How long the client may take to move its data to UDP acceleration:
/// both sides need 10 s of the path working both ways.
const UDP_ACTIVE_WITHIN: Duration = Duration::from_secs(30);

/// Connects the client; for a system with UDP acceleration, returns only
/// once the client reports it active, so that every row measures the
/// transport it names.
pub(crate) fn connect(topo: &Topology, client: &SoftEtherClient<'_>, system: &str) -> Result<()> {
    connect_tcp(topo, client)?;
    if tcp_only(system) {
        return Ok(());
    }
    let deadline = Instant::now() + UDP_ACTIVE_WITHIN;
    loop {
        // Traffic keeps the path's liveness fresh on both sides.
        let _ = topo.run(
            "client",
            &["ping", "-c", "5", "-i", "0.2", "-W", "1", PRIVATE_IP],
        );
        let status = client.account_status(ACCOUNT)?;
        if status.get("UDP Acceleration is Active") == Some("Yes") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "UDP acceleration not active within {UDP_ACTIVE_WITHIN:?} (supported: {:?})",
                status.get("UDP Acceleration is Supported")
            );
        }
    }
}

fn connect_tcp(topo: &Topology, client: &SoftEtherClient<'_>) -> Result<()> {
    client.account_connect(ACCOUNT)?;
    client.wait_connected(ACCOUNT, Duration::from_secs(40))?;
    // A static address outside the DHCP pool: the same for every server
    // (the Debian server's bridge has no DHCP of its own).
    topo.exec("client", &["ip", "addr", "flush", "dev", TAP])?;
    topo.exec(
        "client",
        &["ip", "addr", "add", VPN_CLIENT_CIDR, "dev", TAP],
    )?;
    topo.exec("client", &["ip", "link", "set", TAP, "up"])?;
    crate::tools::route_private_via(topo, TAP_IP, TAP)?;
    for _ in 0..20 {
        if topo
            .run("client", &["ping", "-c1", "-W1", PRIVATE_IP])?
            .success
        {
            return Ok(());
        }
    }
    bail!("connected, but {PRIVATE_IP} does not answer through the tunnel")
}

pub(crate) fn disconnect(topo: &Topology, client: &SoftEtherClient<'_>) {
    let _ = client.account_disconnect(ACCOUNT);
    let _ = topo.run("client", &["ip", "addr", "flush", "dev", TAP]);
}
