//! `ethergate client` against the real Debian SoftEther VPN Server
//! (`softether-vpnserver` 5.01) — our client side checked by a peer nobody
//! here wrote: `client (198.51.100.2) — server (vpnserver 198.51.100.1, hub
//! TEST, user alice, SecureNAT with its DHCP at 192.168.30.1)`. The client
//! checks the server by trust on first use with a known-servers file of
//! the test's own (each vpnserver has a new certificate at the same
//! address), so SoftEther's own certificate goes through that path too.
//! Needs root; run with `--test-threads=1`.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use ethergate_netns::{Process, Topology};
use ethergate_softether::{SoftEtherServer, client_server_topology};

mod common;

const SERVER: &str = "198.51.100.1:443";
const TAP: &str = "vpn_eg0";

fn topology() -> Topology {
    let topo = client_server_topology().expect("topology (run as root)");
    // The prefix is new, so anything at this path is from a dead run.
    let _ = std::fs::remove_file(known_servers(&topo));
    topo
}

/// This topology's known-servers file.
fn known_servers(topo: &Topology) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-known_servers", topo.prefix()))
}

/// Hub TEST, user alice/secret, SecureNAT; DHCP pushes `routes`.
fn server<'t>(topo: &'t Topology, routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>) -> SoftEtherServer<'t> {
    SoftEtherServer::start_test_hub(topo, "server", routes).expect("vpnserver with hub TEST")
}

fn client(topo: &Topology, password: &str, extra: &[&str]) -> Process {
    let file = std::env::temp_dir().join(format!("{}-password", topo.prefix()));
    std::fs::write(&file, format!("{password}\n")).expect("password file");
    let file = file.display().to_string();
    let known_servers = known_servers(topo).display().to_string();
    let mut argv = common::client_argv(SERVER, "TEST", "alice", &file);
    argv.extend_from_slice(&["--known-servers", &known_servers]);
    argv.extend_from_slice(extra);
    topo.spawn("client", &argv).expect("ethergate client")
}

fn wait_for(p: &mut Process, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !p.log().contains(needle) {
        assert!(p.is_running(), "client exited early:\n{}", p.log());
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within {timeout:?}:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sh(topo: &Topology, argv: &[&str]) -> ethergate_netns::CommandOutput {
    topo.run("client", argv).expect("command in client")
}

#[test]
fn dhcp_from_securenat_with_pushed_routes_and_ping() {
    let topo = topology();
    let gw = Ipv4Addr::new(192, 168, 30, 1);
    let server = server(&topo, vec![(Ipv4Addr::new(10, 99, 0, 0), 16, gw)]);
    let mut client = client(&topo, "secret", &["--dhcp"]);
    wait_for(
        &mut client,
        "DHCP: route installed",
        Duration::from_secs(30),
    );

    let addr = sh(&topo, &["ip", "-4", "addr", "show", TAP]).stdout;
    assert!(
        addr.contains("inet 192.168.30.") && addr.contains("/24"),
        "{addr}\n{}",
        client.log()
    );
    let routes = sh(&topo, &["ip", "-4", "route", "show"]).stdout;
    assert!(
        routes.contains(&format!(
            "10.99.0.0/16 via 192.168.30.1 dev {TAP} proto dhcp"
        )),
        "pushed route missing: {routes}"
    );
    // SecureNAT sends option 3 as well; with option 121 present it must be
    // ignored (RFC 3442), so no default route through the VPN.
    assert!(!routes.contains("default"), "{routes}");
    let ping = sh(
        &topo,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.30.1"],
    );
    assert!(
        ping.success,
        "ping SecureNAT through the tunnel: {}\n{}",
        ping.stdout,
        client.log()
    );
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    eprintln!("ethergate client against vpnserver:\n{}", client.log());
    assert!(
        client.log().contains("fingerprint is now recorded"),
        "{}",
        client.log()
    );
    assert!(
        client.log().contains("DHCP: releasing the lease"),
        "{}",
        client.log()
    );
    server.stop();
    let _ = std::fs::remove_file(known_servers(&topo));
}

#[test]
fn securenat_router_becomes_the_default_route_without_option_121() {
    let topo = topology();
    let server = server(&topo, Vec::new());
    let mut client = client(&topo, "secret", &["--dhcp"]);
    wait_for(
        &mut client,
        "DHCP: route installed",
        Duration::from_secs(30),
    );
    let routes = sh(&topo, &["ip", "-4", "route", "show", "default"]).stdout;
    assert!(
        routes.contains(&format!("default via 192.168.30.1 dev {TAP} proto dhcp")),
        "option 3 without 121 gives the default route: {routes}\n{}",
        client.log()
    );
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    server.stop();
    let _ = std::fs::remove_file(known_servers(&topo));
}

#[test]
fn wrong_password_is_error_9_and_exit_1() {
    let topo = topology();
    let server = server(&topo, Vec::new());
    let mut client = client(&topo, "wrong", &["--dhcp"]);
    let code = client.wait_timeout(Duration::from_secs(30));
    let log = client.log();
    assert_eq!(code, Some(Some(1)), "{log}");
    assert!(log.contains("ERR_AUTH_FAILED (9)"), "{log}");
    server.stop();
    let _ = std::fs::remove_file(known_servers(&topo));
}

/// UDP datagrams `namespace` has received so far (`Udp: InDatagrams`).
fn udp_datagrams_in(topo: &Topology, namespace: &str) -> u64 {
    let snmp = topo
        .run(namespace, &["cat", "/proc/net/snmp"])
        .expect("/proc/net/snmp");
    let mut udp = snmp.stdout.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (
        udp.next().expect("Udp names"),
        udp.next().expect("Udp values"),
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InDatagrams")
        .and_then(|(_, v)| v.parse().ok())
        .expect("InDatagrams")
}

/// The real server grants UDP acceleration to our client's offer, and
/// after the path has worked both ways for ten seconds frames go by UDP:
/// pings through the tunnel arrive as UDP datagrams, and the server's own
/// session status says UDP acceleration is in use.
#[test]
fn udp_acceleration_with_the_real_server() {
    let topo = topology();
    let server = server(&topo, Vec::new());
    let mut client = client(&topo, "secret", &["--dhcp"]);
    wait_for(
        &mut client,
        "UDP acceleration granted",
        Duration::from_secs(30),
    );
    wait_for(&mut client, "DHCP: lease acquired", Duration::from_secs(30));
    let ping = |count: &str| {
        sh(
            &topo,
            &["ping", "-c", count, "-i", "0.2", "-W", "2", "192.168.30.1"],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while !client.log().contains("UDP acceleration: frames go by UDP") {
        assert!(
            Instant::now() < deadline,
            "frames never went by UDP:\n{}",
            client.log()
        );
        let _ = ping("1");
    }
    let before = udp_datagrams_in(&topo, "client");
    let pings = ping("20");
    assert!(pings.success, "{}\n{}", pings.stdout, client.log());
    let got = udp_datagrams_in(&topo, "client") - before;
    assert!(got >= 20, "{got} UDP datagrams for 20 echo replies");
    let sessions = server
        .hub_vpncmd("TEST", &["SessionList"])
        .expect("SessionList");
    let name = sessions
        .raw()
        .lines()
        .find_map(|l| {
            l.split('|')
                .nth(1)
                .map(str::trim)
                .filter(|v| v.starts_with("SID-ALICE"))
        })
        .unwrap_or_else(|| panic!("no session of alice:\n{}", sessions.raw()))
        .to_owned();
    let status = server
        .hub_vpncmd("TEST", &["SessionGet", &name])
        .expect("SessionGet");
    let active = status
        .raw()
        .lines()
        .find(|l| l.starts_with("UDP Acceleration is Active"))
        .and_then(|l| l.split('|').nth(1))
        .map(str::trim);
    assert_eq!(active, Some("Yes"), "{}", status.raw());
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    server.stop();
    let _ = std::fs::remove_file(known_servers(&topo));
}
