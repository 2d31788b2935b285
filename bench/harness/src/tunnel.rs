//! Tunnel rows: the Debian SoftEther VPN Client in `client` connects to a
//! SoftEther-protocol server in `nat` (ethergate, then the Debian SoftEther
//! VPN Server with the recipe's local bridge + iptables), and traffic goes
//! through the tunnel to `private`. Then the server alone: memory per idle
//! session and login rate with the Rust login driver.
//!
//! Invariant: one server runs at a time, each on the same addresses, hub,
//! user and client account; whatever fails is recorded in its rows and
//! the next system still runs.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use ethergate_netns::{Process, Topology, recipe};
use ethergate_softether::{PasswordKind, SoftEtherClient, SoftEtherServer};

use crate::{
    login, profile,
    report::{Better, Point, Report, Sample},
    settings::Settings,
    sys, tools,
    topo::{LOGIN_SOURCES, PRIVATE_IP, SERVER_IP, TAP_IP, VPN_CLIENT_CIDR},
    udpgen::{self, UdpGen},
};

pub const HUB: &str = recipe::HUB;
pub const USER: &str = recipe::USER;
pub const PASSWORD: &str = "bench-password";
const ACCOUNT: &str = "bench";
const NIC: &str = "vpn0";
const TAP: &str = "vpn_vpn0";
pub const ETHERGATE: &str = "ethergate";
pub const SOFTETHER: &str = "SoftEther 5.01 (bridge+iptables)";

/// The recipe's iptables rules for the SoftEther system (design.md).
const SOFTETHER_RULES: [&[&str]; 2] = [
    &[
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
    ],
    &[
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
    ],
];

const CLIENT_METHOD: &str = "Debian vpnclient 5.01, 1 TCP conn, TLS, no compression";

/// ethergate's config for every row: the recipe's hub, DHCP, and [nat]
/// with SNAT for the private subnet and the recipe's DNAT rule.
pub fn ethergate_config(dir: &Path, max_flows: u32, mode: Option<&str>) -> Result<PathBuf> {
    let mode = mode.map_or_else(String::new, |m| format!("mode = \"{m}\"\n"));
    std::fs::create_dir_all(dir)?;
    let mut text = recipe::hub_config(
        dir,
        &format!("password = \"{PASSWORD}\""),
        "# The login and idle-session rows hold hundreds of sessions of this one\n\
         # user, as SoftEther allows by default (MultiLogins unlimited).\n\
         max_sessions_per_user = 0\n",
    );
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
    let dir = settings
        .work
        .join(format!("ethergate-{}", sys::timestamp()));
    let config = ethergate_config(&dir, max_flows, mode)?;
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
    Ok(p)
}

/// Stops serve and drops the NAT state it leaves pinned on purpose (so
/// that a restart keeps flows): the next system must not find ethergate's
/// programs still attached to the NAT's interfaces.
pub fn stop_ethergate(topo: &Topology, settings: &Settings, serve: Process) {
    drop(serve);
    let bin = settings.ethergate_bin.display().to_string();
    let _ = topo.run("nat", &[&bin, "nat", "forget"]);
}

fn start_softether<'t>(topo: &'t Topology) -> Result<SoftEtherServer<'t>> {
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

fn remove_softether_rules(topo: &Topology) {
    let _ = topo.run("nat", &["iptables", "-t", "nat", "-F"]);
}

/// The SoftEther client daemon with one NIC and one account for all
/// servers (they share address, hub, user and password).
fn start_client(topo: &Topology) -> Result<SoftEtherClient<'_>> {
    let client = SoftEtherClient::start(topo, "client")?;
    client.nic_create(NIC)?;
    client.account_create(ACCOUNT, &format!("{SERVER_IP}:443"), HUB, USER, NIC)?;
    client.account_password_set(ACCOUNT, PASSWORD, PasswordKind::Standard)?;
    Ok(client)
}

fn connect(topo: &Topology, client: &SoftEtherClient<'_>) -> Result<()> {
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
    topo.exec(
        "client",
        &[
            "ip",
            "route",
            "replace",
            "10.0.0.0/16",
            "via",
            TAP_IP,
            "dev",
            TAP,
        ],
    )?;
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

fn disconnect(topo: &Topology, client: &SoftEtherClient<'_>) {
    let _ = client.account_disconnect(ACCOUNT);
    let _ = topo.run("client", &["ip", "addr", "flush", "dev", TAP]);
}

/// Names of the rows one VPN system produces, so a system that fails to
/// start still gets a row per workload, each with the error.
fn workloads(settings: &Settings) -> Vec<(String, &'static str, Better)> {
    let mut w = vec![];
    for (streams, dir) in [(1, "up"), (1, "down"), (4, "up"), (4, "down")] {
        w.push((tcp_name(streams, dir), "Mbit/s", Better::Higher));
    }
    w.push((cpu_name("up"), "CPU s/GB", Better::Lower));
    w.push((cpu_name("down"), "CPU s/GB", Better::Lower));
    w.push((
        "64-byte UDP client→private, 64 flows".into(),
        "pps",
        Better::Higher,
    ));
    w.push(("ping RTT p50 client→tap".into(), "µs", Better::Lower));
    w.push(("ping RTT p99 client→tap".into(), "µs", Better::Lower));
    w.push((
        "added latency p50 (tunnel − direct)".into(),
        "µs",
        Better::Lower,
    ));
    w.push((
        "HTTP via DNAT, wrk 32 conns".into(),
        "req/s",
        Better::Higher,
    ));
    w.push(("HTTP via DNAT p50".into(), "µs", Better::Lower));
    w.push(("HTTP via DNAT p99".into(), "µs", Better::Lower));
    for dir in ["up", "down"] {
        w.push((maxtcp_name(dir), "Mbit/s", Better::Higher));
        w.push((maxtcp_retransmits_name(dir), "segments", Better::Lower));
        w.push((maxtcp_out_of_order_name(dir), "segments", Better::Lower));
    }
    for dir in ["up", "down"] {
        w.push((eg_client_name(dir), "Mbit/s", Better::Higher));
    }
    for n in &settings.idle_sessions {
        w.push((rss_name(*n), "KiB", Better::Lower));
    }
    w.push((login_name(settings), "logins/s", Better::Higher));
    w.push(("connect latency p50".into(), "ms", Better::Lower));
    w.push(("connect latency p99".into(), "ms", Better::Lower));
    w
}

pub(crate) fn tcp_name(streams: u32, dir: &str) -> String {
    let path = if dir == "up" {
        "client→private"
    } else {
        "private→client"
    };
    format!(
        "TCP {streams} stream{} {path}",
        if streams > 1 { "s" } else { "" }
    )
}

pub(crate) fn cpu_name(dir: &str) -> String {
    format!("server CPU per GB, {}", tcp_name(1, dir))
}

/// 4 streams through a session of 8 TCP connections, as SoftEther users
/// run it for throughput (`/MAXTCP:8`).
fn maxtcp_name(dir: &str) -> String {
    format!("{}, /MAXTCP:8", tcp_name(4, dir))
}

fn maxtcp_out_of_order_name(dir: &str) -> String {
    format!("{} out of order at the receiver", maxtcp_name(dir))
}

fn maxtcp_retransmits_name(dir: &str) -> String {
    format!("{} retransmits", maxtcp_name(dir))
}

fn rss_name(n: usize) -> String {
    format!("RSS per idle session @{n}")
}

fn login_name(settings: &Settings) -> String {
    format!(
        "login rate ({} logins, {} parallel)",
        settings.logins, settings.login_parallel
    )
}

pub fn run(topo: &Topology, report: &mut Report, settings: &Settings) -> Result<()> {
    report.progress(
        "tunnel: starting nginx and iperf3 in `private`, the SoftEther client in `client`",
    );
    let _web = tools::nginx(
        topo,
        "private",
        &format!("{PRIVATE_IP}:80"),
        &settings.work.join("nginx"),
    )?;
    let _iperf = tools::iperf3_server(topo, "private", PRIVATE_IP)?;
    let client = start_client(topo);
    for system in [ETHERGATE, SOFTETHER] {
        if !settings.wants(system) || sys::interrupted() {
            continue;
        }
        report.progress(&format!("tunnel: starting {system}"));
        let server: Result<(Option<Process>, Option<SoftEtherServer<'_>>)> = match system {
            ETHERGATE => start_ethergate(topo, settings, ethergate_dataplane_default_flows(), None)
                .map(|p| (Some(p), None)),
            _ => start_softether(topo).map(|s| (None, Some(s))),
        };
        let (eg, se) = match server {
            Ok(s) => s,
            Err(e) => {
                fail_all(
                    report,
                    settings,
                    system,
                    &format!("server did not start: {e:#}"),
                );
                remove_softether_rules(topo);
                continue;
            }
        };
        let pid = eg
            .as_ref()
            .map(Process::pid)
            .or_else(|| se.as_ref().and_then(SoftEtherServer::pid))
            .ok_or_else(|| anyhow!("no server pid"))?;
        // Memory first, on the fresh server: later traffic leaves freed
        // buffers behind that new sessions would reuse unseen.
        sessions(topo, report, settings, system, pid, Part::Memory);
        match &client {
            Ok(c) => match connect(topo, c) {
                Ok(()) => {
                    traffic(topo, report, settings, system, pid);
                    disconnect(topo, c);
                    maxtcp(topo, report, settings, system, c);
                }
                Err(e) => {
                    disconnect(topo, c);
                    fail_traffic(
                        report,
                        settings,
                        system,
                        &format!("vpnclient did not connect: {e:#}"),
                    );
                }
            },
            Err(e) => fail_traffic(
                report,
                settings,
                system,
                &format!("vpnclient did not start: {e:#}"),
            ),
        }
        ethergate_client(topo, report, settings, system, pid);
        sessions(topo, report, settings, system, pid, Part::Logins);
        report.progress(&format!("tunnel: stopping {system}"));
        if let Some(eg) = eg {
            stop_ethergate(topo, settings, eg);
        }
        drop(se);
        remove_softether_rules(topo);
        // The tap goes with its server; wait so the next one can create it.
        for _ in 0..50 {
            if !topo.run("nat", &["ip", "link", "show", "tap_00"])?.success {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The SoftEther client's route would shadow OpenVPN's (next rows).
    let _ = topo.run("client", &["ip", "route", "del", "10.0.0.0/16"]);
    Ok(())
}

/// Sessions rows need no client; keep the flow table at ethergate's default.
fn ethergate_dataplane_default_flows() -> u32 {
    ethergate_dataplane::DEFAULT_MAX_FLOWS
}

pub(crate) fn point<'a>(
    workload: &'a str,
    system: &'a str,
    unit: &'a str,
    better: Better,
    method: &'a str,
) -> Point<'a> {
    Point {
        group: "tunnel",
        workload,
        system,
        unit,
        better,
        method,
    }
}

fn fail_all(report: &mut Report, settings: &Settings, system: &str, error: &str) {
    for (w, unit, better) in workloads(settings) {
        report.derived(point(&w, system, unit, better, ""), Err(anyhow!("{error}")));
    }
}

fn fail_traffic(report: &mut Report, settings: &Settings, system: &str, error: &str) {
    // Not the ethergate-client rows (2), memory rows, login rows (3): they
    // do not need the vpnclient.
    let session_rows = 2 + settings.idle_sessions.len() + 3;
    let all = workloads(settings);
    for (w, unit, better) in &all[..all.len() - session_rows] {
        report.derived(point(w, system, unit, *better, ""), Err(anyhow!("{error}")));
    }
}

/// The `/MAXTCP:8` rows: the account reconnects with 8 TCP connections
/// (and is set back to 1 afterwards), then 4 iperf3 streams each way; the
/// inner TCP's retransmits are rows of their own (a VPN that reorders or
/// drops in bursts shows there first).
fn maxtcp(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    client: &SoftEtherClient<'_>,
) {
    let set = |max_tcp: u8| {
        client.account_detail_set(
            ACCOUNT,
            &ethergate_softether::AccountDetail {
                max_tcp,
                ..Default::default()
            },
        )
    };
    let ready = set(8)
        .map_err(anyhow::Error::from)
        .and_then(|()| connect(topo, client))
        .and_then(|()| wait_for_connections(client, 8));
    let secs = settings.secs;
    for dir in ["up", "down"] {
        let method = format!(
            "iperf3 -t {secs} -P 4{} to {PRIVATE_IP}; vpnclient account with /MAXTCP:8 (8 TCP connections up first)",
            if dir == "down" { " -R" } else { "" }
        );
        report.measure(
            point(&maxtcp_name(dir), system, "Mbit/s", Better::Higher, &method),
            settings.reps,
            || {
                if let Err(e) = &ready {
                    bail!("{e:#}");
                }
                let (sender, receiver) = if dir == "down" {
                    ("private", "client")
                } else {
                    ("client", "private")
                };
                let server_before = hub_frames(settings);
                let links_before = link_drops(topo);
                let softnet_before = softnet_drops();
                let sent_before = nstat(topo, sender, &SENDER_COUNTERS);
                let ofo_before = nstat(topo, receiver, &["TcpExtTCPOFOQueue"]);
                let r = tools::iperf3(topo, "client", PRIVATE_IP, secs, 4, dir == "down")?;
                let sent = delta(&sent_before, &nstat(topo, sender, &SENDER_COUNTERS));
                let ofo = delta(&ofo_before, &nstat(topo, receiver, &["TcpExtTCPOFOQueue"]));
                let softnet = softnet_drops().saturating_sub(softnet_before);
                let links: Vec<String> = link_drops(topo)
                    .into_iter()
                    .filter_map(|(name, after)| {
                        let before = links_before
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map_or(0, |(_, b)| *b);
                        (after > before).then(|| format!("{name}={}", after - before))
                    })
                    .collect();
                let server = match (server_before, hub_frames(settings)) {
                    (Some(b), Some(a)) => format!(
                        "{} dropped for sessions, {} of {} handed to another worker",
                        a.dropped.saturating_sub(b.dropped),
                        a.other_worker.saturating_sub(b.other_worker),
                        a.to_sessions.saturating_sub(b.to_sessions),
                    ),
                    _ => "n/a".to_owned(),
                };
                eprintln!(
                    "        {dir}: interface drops: [{}], softnet backlog drops: {softnet}, \
                     ethergate frames: {server}",
                    links.join(" ")
                );
                // Why the sender retransmitted: on stderr with the run.
                eprintln!(
                    "        {dir}: receiver queued {} segments out of order; sender: {}",
                    ofo[0],
                    SENDER_COUNTERS
                        .iter()
                        .zip(&sent)
                        .map(|(name, n)| format!("{}={n}", name.trim_start_matches("TcpExt")))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                Ok(Sample::new(r.bits_per_second / 1e6)
                    .with("retransmits", r.retransmits)
                    .with("receiver_out_of_order", ofo[0] as f64))
            },
        );
        let last = |key: &str| {
            report
                .rows
                .last()
                .and_then(|r| r.extra.get(key).copied())
                .ok_or_else(|| anyhow!("no throughput run succeeded"))
        };
        let retransmits = last("retransmits");
        let out_of_order = last("receiver_out_of_order");
        report.derived(
            point(
                &maxtcp_retransmits_name(dir),
                system,
                "segments",
                Better::Lower,
                "the sender's TCP retransmits in the row above (iperf3 sum_sent.retransmits)",
            ),
            retransmits,
        );
        report.derived(
            point(
                &maxtcp_out_of_order_name(dir),
                system,
                "segments",
                Better::Lower,
                "segments the receiving host queued out of order in that run (nstat TcpExtTCPOFOQueue): \
                 reordering on the path, which the sender's TCP may take for loss",
            ),
            out_of_order,
        );
    }
    disconnect(topo, client);
    let _ = set(1);
}

/// Sender-side TCP counters that say why segments were sent again: a
/// timeout, a tail-loss probe, a fast retransmit after SACKs, and what the
/// receiver reported as duplicates (spurious retransmits).
const SENDER_COUNTERS: [&str; 5] = [
    "TcpExtTCPTimeouts",
    "TcpExtTCPLossProbes",
    "TcpExtTCPFastRetrans",
    "TcpExtTCPDSACKRecv",
    "TcpExtTCPSackRecovery",
];

/// Every interface's drop counters in the bench's namespaces, as
/// ("ns/dev rx|tx", count).
fn link_drops(topo: &Topology) -> Vec<(String, u64)> {
    let mut all = Vec::new();
    for ns in ["client", "nat", "private"] {
        let Ok(out) = topo.ip(ns, &["-s", "-j", "link", "show"]) else {
            continue;
        };
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        for link in json.as_array().into_iter().flatten() {
            let name = link["ifname"].as_str().unwrap_or("?");
            for dir in ["rx", "tx"] {
                let n = link["stats64"][dir]["dropped"].as_u64().unwrap_or(0);
                all.push((format!("{ns}/{name} {dir}"), n));
            }
        }
    }
    all
}

/// Frame counts summed over the hubs of the newest ethergate this bench
/// started.
#[derive(Clone, Copy)]
struct HubFrames {
    to_sessions: u64,
    dropped: u64,
    other_worker: u64,
}

/// [`HubFrames`] of the newest ethergate (`None` for other systems).
fn hub_frames(settings: &Settings) -> Option<HubFrames> {
    let newest = std::fs::read_dir(&settings.work)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ethergate-"))
        .map(|e| e.path().join("admin.sock"))
        .filter(|p| p.exists())
        .max()?;
    let out = std::process::Command::new(&settings.ethergate_bin)
        .args(["status", "-o", "json", "--socket"])
        .arg(&newest)
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let hubs = json["hubs"].as_array()?;
    let sum = |f: &dyn Fn(&serde_json::Value) -> Option<u64>| hubs.iter().filter_map(f).sum();
    Some(HubFrames {
        to_sessions: sum(&|h| h["to_sessions"]["frames"].as_u64()),
        dropped: sum(&|h| h["session_frames_dropped"].as_u64()),
        other_worker: sum(&|h| h["to_sessions_other_worker"].as_u64()),
    })
}

/// Frames the kernel's per-CPU input backlogs dropped (netdev_max_backlog
/// full), machine-wide: /proc/net/softnet_stat's second column.
fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .sum()
}

/// `nstat -az` absolute values of `names` in `ns` (0 when absent).
fn nstat(topo: &Topology, ns: &str, names: &[&str]) -> Vec<u64> {
    let out = topo
        .run(ns, &["nstat", "-az"])
        .map(|o| o.stdout)
        .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

fn delta(before: &[u64], after: &[u64]) -> Vec<u64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect()
}

/// Polls the account until it runs `n` TCP connections (the client adds
/// one a second).
fn wait_for_connections(client: &SoftEtherClient<'_>, n: u32) -> Result<()> {
    for _ in 0..80 {
        let status = client.account_status(ACCOUNT)?;
        let now: u32 = status
            .get("Number of TCP Connections")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if now >= n {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("the vpnclient did not reach {n} TCP connections")
}

/// Rows that need the vpnclient connected.
fn traffic(topo: &Topology, report: &mut Report, settings: &Settings, system: &str, pid: u32) {
    let secs = settings.secs;
    for (streams, dir) in [(1u32, "up"), (1, "down"), (4, "up"), (4, "down")] {
        let name = tcp_name(streams, dir);
        let method = format!(
            "iperf3 -t {secs} -P {streams}{} to {PRIVATE_IP}; {CLIENT_METHOD}",
            if dir == "down" { " -R" } else { "" }
        );
        report.measure(
            point(&name, system, "Mbit/s", Better::Higher, &method),
            settings.reps,
            || {
                let name = format!("tunnel-{}-tcp{streams}-{dir}", slug(system));
                let prof = (settings.perf && streams == 1)
                    .then(|| profile::start(Some(pid), &settings.work, &settings.out, &name))
                    .transpose()?;
                let cpu0 = sys::cpu_seconds(pid);
                let r = tools::iperf3(topo, "client", PRIVATE_IP, secs, streams, dir == "down");
                let cpu = sys::cpu_seconds(pid) - cpu0;
                if let Some(p) = prof {
                    println!("        perf report: {}", p.finish()?.display());
                }
                let r = r?;
                let gb = r.bytes / 1e9;
                Ok(Sample::new(r.bits_per_second / 1e6)
                    .with("retransmits", r.retransmits)
                    .with("server_cpu_s", cpu)
                    .with(
                        "server_cpu_s_per_gb",
                        if gb > 0.0 { cpu / gb } else { f64::NAN },
                    ))
            },
        );
        if streams == 1 {
            let cpu = report
                .rows
                .last()
                .and_then(|r| r.extra.get("server_cpu_s_per_gb").copied())
                .ok_or_else(|| anyhow!("no throughput run succeeded"));
            let method = "utime+stime of the server's process tree (/proc/<pid>/stat) ÷ GB iperf3 received, same runs as the row above";
            report.derived(
                point(&cpu_name(dir), system, "CPU s/GB", Better::Lower, method),
                cpu,
            );
        }
    }

    let method = format!(
        "ping -i 0.005 ×{} to {TAP_IP} (tunnel), hdrhistogram; direct = to {SERVER_IP}",
        settings.ping_count
    );
    let rtt = tools::ping(topo, "client", TAP_IP, settings.ping_count, "0.005");
    let direct = tools::ping(topo, "client", SERVER_IP, settings.ping_count, "0.005");
    let q = |h: &Result<hdrhistogram::Histogram<u64>>, p: f64| -> Result<f64> {
        h.as_ref()
            .map(|h| h.value_at_quantile(p) as f64)
            .map_err(|e| anyhow!("{e:#}"))
    };
    report.derived(
        point(
            "ping RTT p50 client→tap",
            system,
            "µs",
            Better::Lower,
            &method,
        ),
        q(&rtt, 0.5),
    );
    report.derived(
        point(
            "ping RTT p99 client→tap",
            system,
            "µs",
            Better::Lower,
            &method,
        ),
        q(&rtt, 0.99),
    );
    report.derived(
        point(
            "added latency p50 (tunnel − direct)",
            system,
            "µs",
            Better::Lower,
            &method,
        ),
        q(&rtt, 0.5).and_then(|t| Ok(t - q(&direct, 0.5)?)),
    );

    let url = format!("http://{TAP_IP}/");
    let method =
        format!("wrk -t1 -c32 -d{secs}s {url} → DNAT 192.168.0.0/16:80 → nginx {PRIVATE_IP}:80");
    let probe = topo.run("client", &["curl", "-sS", "--max-time", "3", &url]);
    let wrk_result = match probe {
        Ok(p) if p.success => None,
        Ok(p) => Some(format!(
            "no answer at {url} (is the DNAT rule in effect?): {}",
            p.stderr.trim()
        )),
        Err(e) => Some(e.to_string()),
    };
    let mut p50 = Err(anyhow!("no run"));
    let mut p99 = Err(anyhow!("no run"));
    report.measure(
        point(
            "HTTP via DNAT, wrk 32 conns",
            system,
            "req/s",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || {
            if let Some(e) = &wrk_result {
                bail!("{e}");
            }
            let w = tools::wrk(topo, "client", &url, secs, 32)?;
            Ok(Sample::new(w.requests_per_second)
                .with("p50_us", w.p50_us)
                .with("p99_us", w.p99_us)
                .with("errors", w.errors))
        },
    );
    if let Some(row) = report.rows.last() {
        if let Some(v) = row.extra.get("p50_us") {
            p50 = Ok(*v);
            p99 = Ok(row.extra.get("p99_us").copied().unwrap_or(f64::NAN));
        } else if let Some(e) = &row.error {
            p50 = Err(anyhow!("{e}"));
            p99 = Err(anyhow!("{e}"));
        }
    }
    report.derived(
        point("HTTP via DNAT p50", system, "µs", Better::Lower, &method),
        p50,
    );
    report.derived(
        point("HTTP via DNAT p99", system, "µs", Better::Lower, &method),
        p99,
    );

    let method = format!(
        "own sendmmsg generator in client, {} B UDP payload (64 B frames), 64 dst ports, {secs} s; counted by an nft netdev-ingress drop rule on private eth0; runs last (queues it fills would skew the latency rows)",
        udpgen::PAYLOAD
    );
    report.measure(
        point(
            "64-byte UDP client→private, 64 flows",
            system,
            "pps",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || {
            udp_pps(
                topo,
                "client",
                "private",
                PRIVATE_IP.parse()?,
                64,
                Duration::from_secs(secs),
                false,
            )
        },
    );

    // Let the queues the flood filled drain before the next system.
    std::thread::sleep(Duration::from_secs(2));
}

/// `flows` distinct UDP flows from `from` to `base…` for `duration`; the
/// received rate at `to`'s eth0.
pub fn udp_pps(
    topo: &Topology,
    from: &str,
    to: &str,
    base: Ipv4Addr,
    flows: u32,
    duration: Duration,
    once: bool,
) -> Result<Sample> {
    let sink = tools::UdpSink::install(topo, to, "eth0")?;
    let before = sink.packets()?;
    let generator = UdpGen { base, flows };
    let sent = topo.enter(from, || generator.run(duration, once))??;
    // Let the last batches drain through the queues.
    std::thread::sleep(Duration::from_millis(200));
    let received = sink.packets()? - before;
    let secs = sent.elapsed.as_secs_f64();
    Ok(Sample::new(received as f64 / secs)
        .with("sent_pps", sent.packets as f64 / secs)
        .with("received", received as f64)
        .with("sent", sent.packets as f64))
}

#[derive(PartialEq, Eq)]
enum Part {
    Memory,
    Logins,
}

/// Rows of the server alone: memory per idle session, login rate.
fn sessions(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
    part: Part,
) {
    let target = login::Target {
        login: ethergate_login::Target {
            server: SocketAddrV4::new(SERVER_IP.parse().unwrap_or(Ipv4Addr::UNSPECIFIED), 443),
            hub: HUB.into(),
            user: USER.into(),
            password: PASSWORD.into(),
        },
        sources: LOGIN_SOURCES
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
    };
    if part == Part::Memory {
        memory(topo, report, settings, system, pid, &target);
        return;
    }
    logins(topo, report, settings, system, &target);
}

fn memory(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
    target: &login::Target,
) {
    for &n in &settings.idle_sessions {
        let method = format!(
            "(VmRSS of the server tree with {n} idle sessions open − before) ÷ {n}; sessions from the Rust login driver (ethergate-proto + rustls), 16 parallel"
        );
        report.measure(
            point(&rss_name(n), system, "KiB", Better::Lower, &method),
            1,
            || {
                let before = sys::rss_kib(pid);
                let logins = topo.enter("client", || login::run(target, n, 16, true))??;
                std::thread::sleep(Duration::from_secs(1));
                let after = sys::rss_kib(pid);
                let open = logins.sessions.len();
                if open < n {
                    bail!(
                        "only {open} of {n} sessions came up: {}",
                        logins.first_error.unwrap_or_default()
                    );
                }
                drop(logins.sessions);
                Ok(Sample::new((after as f64 - before as f64) / open as f64)
                    .with("rss_before_kib", before as f64)
                    .with("rss_after_kib", after as f64))
            },
        );
    }
}

fn logins(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    target: &login::Target,
) {
    let method = format!(
        "Rust login driver: {} parallel blocking clients, TCP connect → TLS → hello → password login → welcome, then close; {} logins; hdrhistogram",
        settings.login_parallel, settings.logins
    );
    report.measure(
        point(
            &login_name(settings),
            system,
            "logins/s",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || {
            let l = topo.enter("client", || {
                login::run(target, settings.logins, settings.login_parallel, false)
            })??;
            let ok = l.latency.len() as f64;
            let s = Sample::new(ok / l.elapsed.as_secs_f64())
                .with("p50_ms", l.latency.value_at_quantile(0.5) as f64 / 1e3)
                .with("p99_ms", l.latency.value_at_quantile(0.99) as f64 / 1e3)
                .with("failures", l.failures as f64);
            if l.failures > 0 {
                report_failures(l.failures, l.first_error.as_deref());
            }
            Ok(s)
        },
    );
    let extra = |key: &str| -> Result<f64> {
        let row = report.rows.last().context("no login row")?;
        row.extra
            .get(key)
            .copied()
            .ok_or_else(|| anyhow!("{}", row.error.clone().unwrap_or_else(|| "no value".into())))
    };
    let (p50, p99) = (extra("p50_ms"), extra("p99_ms"));
    report.derived(
        point("connect latency p50", system, "ms", Better::Lower, &method),
        p50,
    );
    report.derived(
        point("connect latency p99", system, "ms", Better::Lower, &method),
        p99,
    );
}

fn report_failures(n: usize, first: Option<&str>) {
    println!(
        "        ({n} logins failed; first: {})",
        first.unwrap_or("?")
    );
}

/// `SoftEther 5.01 (bridge+iptables)` → `softether-5-01-bridge-iptables`.
pub fn slug(system: &str) -> String {
    let mut out = String::new();
    for c in system.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The ethergate client's tap and static address (outside the DHCP pool
/// and distinct from the vpnclient's).
const EG_TAP: &str = "egc0";
const EG_CLIENT_CIDR: &str = "192.168.30.251/24";

fn eg_client_name(dir: &str) -> String {
    format!("{}, ethergate client", tcp_name(1, dir))
}

/// TCP 1 stream both ways with `ethergate client` (instead of the Debian
/// vpnclient) against this server.
fn ethergate_client(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
) {
    let started = start_ethergate_client(topo, settings);
    let secs = settings.secs;
    for dir in ["up", "down"] {
        let method = format!(
            "iperf3 -t {secs} -P 1{} to {PRIVATE_IP}; ethergate client (this build), static {EG_CLIENT_CIDR}, 1 TCP conn",
            if dir == "down" { " -R" } else { "" }
        );
        let name = eg_client_name(dir);
        report.measure(
            point(&name, system, "Mbit/s", Better::Higher, &method),
            settings.reps,
            || {
                if let Err(e) = &started {
                    bail!("ethergate client did not come up: {e:#}");
                }
                let cpu0 = sys::cpu_seconds(pid);
                let r = tools::iperf3(topo, "client", PRIVATE_IP, secs, 1, dir == "down")?;
                let cpu = sys::cpu_seconds(pid) - cpu0;
                let gb = r.bytes / 1e9;
                Ok(Sample::new(r.bits_per_second / 1e6)
                    .with("retransmits", r.retransmits)
                    .with(
                        "server_cpu_s_per_gb",
                        if gb > 0.0 { cpu / gb } else { f64::NAN },
                    ))
            },
        );
    }
    drop(started);
    let _ = topo.run("client", &["ip", "route", "del", "10.0.0.0/16"]);
}

fn start_ethergate_client(topo: &Topology, settings: &Settings) -> Result<Process> {
    let password = settings.work.join("client-password");
    std::fs::write(&password, format!("{PASSWORD}\n"))?;
    let bin = settings.ethergate_bin.display().to_string();
    let password = password.display().to_string();
    let server = format!("{SERVER_IP}:443");
    let mut p = topo.spawn(
        "client",
        &[
            &bin,
            "client",
            "--server",
            &server,
            "--hub",
            HUB,
            "--user",
            USER,
            "--password-file",
            &password,
            "--tap",
            EG_TAP,
            "--address",
            EG_CLIENT_CIDR,
            "--insecure",
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if !p.is_running() {
            bail!("ethergate client exited: {}", p.log());
        }
        if topo.run("client", &["ip", "link", "show", EG_TAP])?.success {
            topo.exec(
                "client",
                &[
                    "ip",
                    "route",
                    "replace",
                    "10.0.0.0/16",
                    "via",
                    TAP_IP,
                    "dev",
                    EG_TAP,
                ],
            )?;
            if topo
                .run("client", &["ping", "-c1", "-W1", PRIVATE_IP])?
                .success
            {
                return Ok(p);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no echo from {PRIVATE_IP} through the ethergate client within 30 s: {}",
                p.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
