//! The `/MAXTCP:8` rows and where their lost segments went (interface,
//! backlog and server drops, the sender's counters, the receiver's
//! reordering).

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ethergate_netns::Topology;
use ethergate_softether::SoftEtherClient;

use crate::tunnel::rows::{
    ROWS, maxtcp_name, maxtcp_out_of_order_name, maxtcp_retransmits_name, maxtcp_rss_name,
};
use crate::tunnel::systems::{ACCOUNT, account_detail, connect, disconnect};
use crate::{
    report::{Better, Report, Sample},
    settings::Settings,
    sys, tools,
    topo::PRIVATE_IP,
};

/// The `/MAXTCP:8` rows: the account reconnects with 8 TCP connections
/// (and is set back to 1 afterwards), then 4 iperf3 streams each way; the
/// inner TCP's retransmits are rows of their own (a VPN that reorders or
/// drops in bursts shows there first), and so is what the server (`pid`)
/// holds in memory afterwards with the session still up (what its queues
/// kept).
pub(crate) fn maxtcp(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
    client: &SoftEtherClient<'_>,
) {
    let set = |max_tcp: u8| client.account_detail_set(ACCOUNT, &account_detail(system, max_tcp));
    let ready = set(8)
        .map_err(anyhow::Error::from)
        .and_then(|()| connect(topo, client, system))
        .and_then(|()| wait_for_connections(client, 8));
    let secs = settings.secs;
    for dir in ["up", "down"] {
        let method = format!(
            "iperf3 -t {secs} -P 4{} to {PRIVATE_IP}; vpnclient account with /MAXTCP:8 (8 TCP connections up first)",
            if dir == "down" { " -R" } else { "" }
        );
        report.measure(
            ROWS.point(&maxtcp_name(dir), system, "Mbit/s", Better::Higher, &method),
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
                let udp_before = UDP_ENDS.map(|ns| nstat(topo, ns, &UDP_OVERFLOWS));
                let r = tools::iperf3(topo, "client", PRIVATE_IP, secs, 4, dir == "down")?;
                let sent = delta(&sent_before, &nstat(topo, sender, &SENDER_COUNTERS));
                let ofo = delta(&ofo_before, &nstat(topo, receiver, &["TcpExtTCPOFOQueue"]));
                let softnet = softnet_drops().saturating_sub(softnet_before);
                // Datagrams a full socket buffer refused (UDP acceleration).
                let udp: Vec<String> = UDP_ENDS
                    .iter()
                    .zip(&udp_before)
                    .map(|(ns, before)| {
                        let d = delta(before, &nstat(topo, ns, &UDP_OVERFLOWS));
                        format!("{ns} rcvbuf={} sndbuf={}", d[0], d[1])
                    })
                    .collect();
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
                     UDP socket overflows: [{}], ethergate frames: {server}",
                    links.join(" "),
                    udp.join(", ")
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
            ROWS.point(
                &maxtcp_retransmits_name(dir),
                system,
                "segments",
                Better::Lower,
                "the sender's TCP retransmits in the row above (iperf3 sum_sent.retransmits)",
            ),
            retransmits,
        );
        report.derived(
            ROWS.point(
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
    let rss = match &ready {
        Ok(()) => Ok(sys::rss_kib(pid) as f64 / 1024.0),
        Err(e) => Err(anyhow!("{e:#}")),
    };
    report.derived(
        ROWS.point(
            &maxtcp_rss_name(),
            system,
            "MiB",
            Better::Lower,
            "VmRSS of the server's process tree right after the runs above, the session still up",
        ),
        rss,
    );
    disconnect(topo, client);
    let _ = set(1);
}

/// Sender-side TCP counters that say why segments were sent again: a
/// timeout, a tail-loss probe, a fast retransmit after SACKs, and what the
/// receiver reported as duplicates (spurious retransmits).
pub(crate) const SENDER_COUNTERS: [&str; 5] = [
    "TcpExtTCPTimeouts",
    "TcpExtTCPLossProbes",
    "TcpExtTCPFastRetrans",
    "TcpExtTCPDSACKRecv",
    "TcpExtTCPSackRecovery",
];

/// Every interface's drop counters in the bench's namespaces, as
/// ("ns/dev rx|tx", count).
pub(crate) fn link_drops(topo: &Topology) -> Vec<(String, u64)> {
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
pub(crate) struct HubFrames {
    to_sessions: u64,
    dropped: u64,
    other_worker: u64,
}

/// [`HubFrames`] of the newest ethergate (`None` for other systems).
pub(crate) fn hub_frames(settings: &Settings) -> Option<HubFrames> {
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
pub(crate) fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .sum()
}

/// The tunnel's two ends, whose UDP sockets carry UDP acceleration.
const UDP_ENDS: [&str; 2] = ["client", "nat"];
const UDP_OVERFLOWS: [&str; 2] = ["UdpRcvbufErrors", "UdpSndbufErrors"];

/// `nstat -az` absolute values of `names` in `ns` (0 when absent).
pub(crate) fn nstat(topo: &Topology, ns: &str, names: &[&str]) -> Vec<u64> {
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

pub(crate) fn delta(before: &[u64], after: &[u64]) -> Vec<u64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect()
}

/// Polls the account until it runs `n` TCP connections (the client adds
/// one a second).
pub(crate) fn wait_for_connections(client: &SoftEtherClient<'_>, n: u32) -> Result<()> {
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
