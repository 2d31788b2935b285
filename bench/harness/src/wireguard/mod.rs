//! WireGuard rows: Debian's wireguard-go as the client in `client`, to
//! ethergate's WireGuard endpoint on the recipe's hub (through the hub's
//! tap and the kernel to `private`), then to wireguard-go itself as the
//! server in `nat` (kernel routing to `private`) — the incumbent a
//! userspace WireGuard server is measured against. The same rows as the
//! SoftEther-protocol and OpenVPN systems: TCP 1/4 streams both ways,
//! server CPU per GB, latency, 64-byte pps. Both wireguard-go processes
//! start with the socket buffers current releases give themselves
//! (`socket_buffers`).

mod handshakes;
mod socket_buffers;

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ethergate_netns::{Process, Topology, recipe};
use ethergate_wireguard::PrivateKey;

use crate::{
    report::{Better, Report},
    settings::Settings,
    sys, tools,
    topo::{PRIVATE_IP, SERVER_IP, TAP_IP},
    tunnel::{
        ROWS, ServerPath, Transport, Tunnel, start_ethergate_with, stop_ethergate, tcp_name,
        tunnel_rows,
    },
};

pub const ETHERGATE_WG: &str = "ethergate WireGuard";
pub const WIREGUARD_GO: &str = "wireguard-go (Debian)";

const CLIENT_IF: &str = "wgc";
const SERVER_IF: &str = "wgs";
/// The client's tunnel address on ethergate's hub.
const HUB_ADDRESS: &str = "192.168.30.201";
/// wireguard-go's own tunnel subnet.
const WG_SERVER_IP: &str = "10.9.0.1";
const WG_CLIENT_IP: &str = "10.9.0.2";

/// Fixed bench keys: the tunnel never leaves the machine.
fn client_key() -> PrivateKey {
    PrivateKey::from_bytes([0x21; 32])
}

fn server_key() -> PrivateKey {
    PrivateKey::from_bytes([0x42; 32])
}

pub fn run(topo: &Topology, report: &mut Report, settings: &Settings) {
    if !settings.wants(ETHERGATE_WG) && !settings.wants(WIREGUARD_GO) {
        return;
    }
    let _iperf = match tools::iperf3_server(topo, "private", PRIVATE_IP) {
        Ok(p) => Some(p),
        Err(e) => {
            report.progress(&format!("wireguard: iperf3 server did not start: {e:#}"));
            None
        }
    };
    for system in [ETHERGATE_WG, WIREGUARD_GO] {
        if !settings.wants(system) || sys::interrupted() {
            continue;
        }
        report.progress(&format!("tunnel: starting {system}"));
        let buffers = match socket_buffers::ModernSocketBuffers::raise() {
            Ok(b) => b,
            Err(e) => {
                fail(report, system, &format!("socket buffer defaults: {e:#}"));
                continue;
            }
        };
        let started = match system {
            ETHERGATE_WG => start_ethergate_endpoint(topo, settings),
            _ => start_wireguard_go_server(topo, settings),
        };
        match started {
            Ok(server) => {
                let client = start_client(topo, settings, system);
                drop(buffers);
                match client {
                    Ok(_client) => rows(topo, report, settings, system, server.pid()),
                    Err(e) => fail(report, system, &format!("client did not connect: {e:#}")),
                }
                let _ = topo.run("client", &["ip", "link", "del", CLIENT_IF]);
                match server {
                    Server::Ethergate(p) => stop_ethergate(topo, settings, p),
                    Server::WireguardGo(p) => {
                        drop(p);
                        let _ = topo.run("nat", &["ip", "link", "del", SERVER_IF]);
                    }
                }
            }
            Err(e) => fail(report, system, &format!("server did not start: {e:#}")),
        }
        let _ = topo.run("client", &["ip", "route", "del", "10.0.0.0/16"]);
        // The tap goes with its server; wait so the next one can create it.
        for _ in 0..50 {
            if !topo
                .run("nat", &["ip", "link", "show", "tap_00"])
                .is_ok_and(|o| o.success)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

enum Server {
    Ethergate(Process),
    WireguardGo(Process),
}

impl Server {
    fn pid(&self) -> u32 {
        match self {
            Server::Ethergate(p) | Server::WireguardGo(p) => p.pid(),
        }
    }
}

fn fail(report: &mut Report, system: &str, why: &str) {
    report.derived(
        ROWS.point(&tcp_name(1, "up"), system, "Mbit/s", Better::Higher, ""),
        Err(anyhow!("{why}")),
    );
}

/// ethergate with `[hub.wireguard]` and the bench device as user `phone`.
fn start_ethergate_endpoint(topo: &Topology, settings: &Settings) -> Result<Server> {
    let extra = format!(
        "\n[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{}\"\nwireguard_address = \"{HUB_ADDRESS}\"\n{}{}",
        client_key().public_key(),
        handshakes::peer_users(HUB_ADDRESS),
        recipe::wireguard_config()
    );
    let (serve, state) = start_ethergate_with(
        topo,
        settings,
        ethergate_dataplane::DEFAULT_MAX_FLOWS,
        None,
        &extra,
    )?;
    // The server's key is the one serve generated into its state dir.
    let key = std::fs::read_to_string(state.join(format!("wireguard-{}.key", recipe::HUB)))
        .context("the hub's WireGuard key")?;
    std::fs::write(
        settings.work.join("wg-server.pub"),
        PrivateKey::from_base64(key.trim())
            .map_err(|e| anyhow!("{e}"))?
            .public_key()
            .to_base64(),
    )?;
    Ok(Server::Ethergate(serve))
}

/// wireguard-go in `nat`, forwarding to `private` by the kernel's routing.
fn start_wireguard_go_server(topo: &Topology, settings: &Settings) -> Result<Server> {
    let server = foreground_wireguard_go(topo, "nat", SERVER_IF)?;
    let conf = settings.work.join("wgs.conf");
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {}\n\n[Peer]\nPublicKey = {}\nAllowedIPs = {WG_CLIENT_IP}/32\n{}",
            server_key().to_base64(),
            recipe::WIREGUARD_PORT,
            client_key().public_key(),
            handshakes::peer_sections()
        ),
    )?;
    topo.exec(
        "nat",
        &["wg", "setconf", SERVER_IF, &conf.display().to_string()],
    )?;
    topo.exec(
        "nat",
        &[
            "ip",
            "addr",
            "add",
            &format!("{WG_SERVER_IP}/24"),
            "dev",
            SERVER_IF,
        ],
    )?;
    topo.exec(
        "nat",
        &["ip", "link", "set", SERVER_IF, "mtu", "1420", "up"],
    )?;
    std::fs::write(
        settings.work.join("wg-server.pub"),
        server_key().public_key().to_base64(),
    )?;
    Ok(Server::WireguardGo(server))
}

/// `wireguard-go -f IF` in `ns`, once its interface exists.
fn foreground_wireguard_go(topo: &Topology, ns: &str, interface: &str) -> Result<Process> {
    let mut p = topo.spawn(
        ns,
        &[
            "env",
            "WG_PROCESS_FOREGROUND=1",
            "wireguard-go",
            "-f",
            interface,
        ],
    )?;
    for _ in 0..100 {
        if topo.run(ns, &["ip", "link", "show", interface])?.success {
            return Ok(p);
        }
        if !p.is_running() {
            bail!("wireguard-go exited: {}", p.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("wireguard-go made no {interface} within 5 s: {}", p.log())
}

/// wireguard-go in `client` with the bench device's key, routed to the
/// private subnet through the tunnel.
fn start_client(topo: &Topology, settings: &Settings, system: &str) -> Result<Process> {
    let client = foreground_wireguard_go(topo, "client", CLIENT_IF)?;
    let server_public = std::fs::read_to_string(settings.work.join("wg-server.pub"))?;
    let (address, allowed, gateway) = match system {
        ETHERGATE_WG => (HUB_ADDRESS, "192.168.30.0/24, 10.0.0.0/16", TAP_IP),
        _ => (WG_CLIENT_IP, "10.9.0.0/24, 10.0.0.0/16", WG_SERVER_IP),
    };
    let conf = settings.work.join("wgc.conf");
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\n\n[Peer]\nPublicKey = {}\nEndpoint = {SERVER_IP}:{}\nAllowedIPs = {allowed}\nPersistentKeepalive = 25\n",
            client_key().to_base64(),
            server_public.trim(),
            recipe::WIREGUARD_PORT
        ),
    )?;
    topo.exec(
        "client",
        &["wg", "setconf", CLIENT_IF, &conf.display().to_string()],
    )?;
    topo.exec(
        "client",
        &[
            "ip",
            "addr",
            "add",
            &format!("{address}/32"),
            "dev",
            CLIENT_IF,
        ],
    )?;
    topo.exec(
        "client",
        &["ip", "link", "set", CLIENT_IF, "mtu", "1420", "up"],
    )?;
    let subnet = if system == ETHERGATE_WG {
        "192.168.30.0/24"
    } else {
        "10.9.0.0/24"
    };
    topo.exec(
        "client",
        &["ip", "route", "replace", subnet, "dev", CLIENT_IF],
    )?;
    tools::route_private_via(topo, gateway, CLIENT_IF)?;
    for _ in 0..20 {
        if topo
            .run("client", &["ping", "-c1", "-W1", PRIVATE_IP])?
            .success
        {
            return Ok(client);
        }
    }
    bail!(
        "{PRIVATE_IP} does not answer through the tunnel: {}",
        client.log()
    )
}

fn rows(topo: &Topology, report: &mut Report, settings: &Settings, system: &str, pid: u32) {
    let (ping_target, device) = if system == ETHERGATE_WG {
        (TAP_IP, "tap_00")
    } else {
        (WG_SERVER_IP, SERVER_IF)
    };
    let tunnel = Tunnel {
        system,
        pid,
        client: "wireguard-go client with 7 MiB socket buffers (as releases since 2023 set them; Debian's 2022 build keeps the 208 KiB default), MTU 1420",
        cpu_of: "the server process",
        ping_target,
        ping_target_is: "(through the tunnel)",
        server_path: ServerPath {
            uplink: "eth0",
            device,
            transport: Transport::Udp(recipe::WIREGUARD_PORT),
        },
        small_packets_counted: ", through the WireGuard tunnel; counted by an nft netdev-ingress drop rule on private eth0",
    };
    tunnel_rows(topo, report, settings, &tunnel, |_| {});
    handshake_row(topo, report, settings, system, pid);
}

/// Handshakes completed per second under a flood, and per second of the
/// server's (`pid`) CPU: the driver's own Curve25519 work shares the two
/// cores, so the first is a floor and the second what a core of the
/// server does.
fn handshake_row(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
) {
    let secs = settings.secs;
    let method = format!(
        "own driver in client, {secs} s: {} peers, each from its own address every 50 ms with its cookie \
         (4,000/s offered: 20/s per address, the under-load limit of ethergate, the kernel and wireguard-go), \
         beside a flood of {} forged initiations a second (valid mac1, unknown key) from one more address; \
         completed = responses that decrypt; the driver's Curve25519 work shares the 2 cores",
        handshakes::PEERS,
        handshakes::FORGED_PER_SECOND
    );
    let sources = settings.work.join("wg-sources");
    let batch = |op: &str| -> Result<()> {
        let lines: String = (0..handshakes::PEERS)
            .map(|i| format!("addr {op} {}/32 dev eth0\n", handshakes::source(i)))
            .collect();
        std::fs::write(&sources, lines)?;
        topo.ip("client", &["-batch", &sources.display().to_string()])?;
        Ok(())
    };
    let added = batch("add");
    report.measure(
        ROWS.point(
            "WireGuard handshakes under a forged-initiation flood",
            system,
            "handshakes/s",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || {
            if let Err(e) = &added {
                bail!("the driver's source addresses: {e:#}");
            }
            let key = std::fs::read_to_string(settings.work.join("wg-server.pub"))?;
            let key = ethergate_wireguard::PublicKey::from_base64(key.trim())
                .map_err(|e| anyhow!("{e}"))?;
            let server = format!("{SERVER_IP}:{}", recipe::WIREGUARD_PORT);
            let cpu_before = sys::cpu_seconds(pid);
            let sample = topo.enter("client", || {
                handshakes::run(&server, &key, Duration::from_secs(secs))
            })??;
            Ok(sample.with("server_cpu_s", sys::cpu_seconds(pid) - cpu_before))
        },
    );
    let per_cpu = report
        .rows
        .last()
        .and_then(|row| Some(row.extra.get("completed")? / row.extra.get("server_cpu_s")?))
        .filter(|per_cpu| per_cpu.is_finite())
        .ok_or_else(|| anyhow!("no handshake run succeeded, or the server used no CPU time"));
    report.derived(
        ROWS.point(
            "WireGuard handshakes per server CPU-second under the flood",
            system,
            "handshakes/CPU-s",
            Better::Higher,
            "handshakes completed in the row above ÷ utime+stime of the server process over the same run (flood handling included)",
        ),
        per_cpu,
    );
    if added.is_ok() {
        let _ = batch("del");
    }
}
