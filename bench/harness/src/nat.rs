//! NAT forwarding rows: `private` → "internet" (203.0.113.0/24, behind
//! `client`) through `nat`, with ethergate's XDP SNAT and with the kernel's
//! NATs (iptables MASQUERADE on the nft backend, iptables-legacy, native
//! nftables) and plain routing (no NAT at all) as the ceiling.
//!
//! Invariant: exactly one NAT system is in place while its rows run; each
//! teardown removes what its setup added, also after a failure.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ethergate_netns::{Process, Topology, recipe};

use crate::{
    profile,
    report::{Better, Group, Report, Sample},
    settings::Settings,
    sys, tools,
    topo::{self, INTERNET_IP},
    tunnel::{self, udp_pps},
    udpgen,
};

const ROWS: Group = Group("nat");

pub const IPTABLES_NFT: &str = "iptables MASQUERADE (nft)";
pub const IPTABLES_LEGACY: &str = "iptables-legacy MASQUERADE";
pub const NFTABLES: &str = "nftables masquerade";
pub const ROUTING: &str = "routing, no NAT (ceiling)";

/// Flow-table size for ethergate's NAT rows: room for the 1M-flow row.
pub(crate) const ETHERGATE_MAX_FLOWS: u32 = 1 << 21;

pub enum Setup {
    Ethergate(Process),
    Iptables(&'static str),
    Nftables,
    Routing,
}

fn setup(topo: &Topology, settings: &Settings, system: &str) -> Result<Setup> {
    setup_system(topo, settings, system, None)
}

/// Puts `system` in place; an ethergate system runs with `[nat] mode =
/// ethergate_mode` (default: auto).
pub fn setup_system(
    topo: &Topology,
    settings: &Settings,
    system: &str,
    ethergate_mode: Option<&str>,
) -> Result<Setup> {
    if ethergate_mode.is_some() || system == tunnel::ETHERGATE {
        return Ok(Setup::Ethergate(tunnel::start_ethergate(
            topo,
            settings,
            ETHERGATE_MAX_FLOWS,
            ethergate_mode,
        )?));
    }
    let s = match system {
        IPTABLES_NFT | IPTABLES_LEGACY => {
            let bin = if system == IPTABLES_NFT {
                "iptables"
            } else {
                "iptables-legacy"
            };
            let mut argv = vec![bin];
            argv.extend_from_slice(recipe::IPTABLES_MASQUERADE);
            topo.exec("nat", &argv)?;
            Setup::Iptables(bin)
        }
        NFTABLES => {
            topo.exec("nat", &["nft", "add", "table", "ip", "egbench"])?;
            topo.exec(
                "nat",
                &[
                    "nft",
                    "add",
                    "chain",
                    "ip",
                    "egbench",
                    "post",
                    "{ type nat hook postrouting priority 100 ; }",
                ],
            )?;
            topo.exec(
                "nat",
                &[
                    "nft",
                    "add",
                    "rule",
                    "ip",
                    "egbench",
                    "post",
                    "ip",
                    "saddr",
                    "10.0.0.0/16",
                    "oifname",
                    "eth0",
                    "masquerade",
                ],
            )?;
            Setup::Nftables
        }
        _ => {
            topo.exec(
                "client",
                &["ip", "route", "add", "10.0.0.0/16", "via", topo::SERVER_IP],
            )?;
            Setup::Routing
        }
    };
    Ok(s)
}

pub fn teardown_system(topo: &Topology, settings: &Settings, setup: Setup) {
    teardown(topo, settings, setup);
}

fn teardown(topo: &Topology, settings: &Settings, setup: Setup) {
    match setup {
        Setup::Ethergate(p) => tunnel::stop_ethergate(topo, settings, p),
        Setup::Iptables(bin) => {
            let _ = topo.run("nat", &[bin, "-t", "nat", "-F"]);
        }
        Setup::Nftables => {
            let _ = topo.run("nat", &["nft", "delete", "table", "ip", "egbench"]);
        }
        Setup::Routing => {
            let _ = topo.run("client", &["ip", "route", "del", "10.0.0.0/16"]);
        }
    }
}

pub fn run(topo: &Topology, report: &mut Report, settings: &Settings) -> Result<()> {
    topo::nat_offloads(topo, false)?;
    let result = run_systems(topo, report, settings);
    let restored = topo::nat_offloads(topo, true);
    result.and(restored)
}

fn run_systems(topo: &Topology, report: &mut Report, settings: &Settings) -> Result<()> {
    let _iperf = tools::iperf3_server(topo, "client", INTERNET_IP)?;
    // iptables (nft) last: its conntrack entries would outlive its rules
    // and burden the systems after it.
    for system in [
        tunnel::ETHERGATE,
        ROUTING,
        NFTABLES,
        IPTABLES_LEGACY,
        IPTABLES_NFT,
    ] {
        if !settings.wants(system) || sys::interrupted() {
            continue;
        }
        report.progress(&format!("nat: setting up {system}"));
        let huge = matches!(system, tunnel::ETHERGATE | IPTABLES_NFT);
        let s = setup(topo, settings, system).and_then(|s| {
            // One echo both ways through the NAT: it works, and the
            // neighbours it needs are resolved.
            match topo.run("private", &["ping", "-c1", "-W2", INTERNET_IP]) {
                Ok(p) if p.success => Ok(s),
                Ok(p) => {
                    teardown(topo, settings, s);
                    Err(anyhow!(
                        "no echo reply from {INTERNET_IP} through it: {}",
                        p.stdout.trim()
                    ))
                }
                Err(e) => {
                    teardown(topo, settings, s);
                    Err(e.into())
                }
            }
        });
        match s {
            Ok(s) => {
                rows(topo, report, settings, system, huge);
                teardown(topo, settings, s);
            }
            Err(e) => {
                for (w, unit, better) in workloads(settings, huge) {
                    report.derived(
                        ROWS.point(&w, system, unit, better, ""),
                        Err(anyhow!("setup failed: {e:#}")),
                    );
                }
            }
        }
    }
    Ok(())
}

fn workloads(settings: &Settings, huge: bool) -> Vec<(String, &'static str, Better)> {
    let mut w = vec![
        (
            "TCP 1 stream private→internet".to_owned(),
            "Mbit/s",
            Better::Higher,
        ),
        (many_name(settings), "pps", Better::Higher),
    ];
    if huge {
        w.push(("64-byte UDP, 1 flow".into(), "pps", Better::Higher));
        w.push((new_flows_name(settings), "flows/s", Better::Higher));
        w.push((huge_name(settings), "pps", Better::Higher));
        w.push((loss_name(settings), "% loss", Better::Lower));
    }
    w
}

fn many_name(s: &Settings) -> String {
    format!("64-byte UDP private→internet, {} flows", s.many_flows)
}
fn new_flows_name(s: &Settings) -> String {
    format!("new flows/s (first packet of {} flows)", s.huge_flows)
}
fn huge_name(s: &Settings) -> String {
    format!("64-byte UDP, {} active flows", s.huge_flows)
}
fn loss_name(s: &Settings) -> String {
    format!("pps loss, 1 → {} flows", s.huge_flows)
}

fn rows(topo: &Topology, report: &mut Report, settings: &Settings, system: &str, huge: bool) {
    let secs = settings.secs;
    let dur = Duration::from_secs(secs);
    let offload_note = "sender tx-csum/TSO/GSO off for every NAT system (decision 0003)";
    let method = format!("iperf3 -t {secs} from private to {INTERNET_IP}; {offload_note}");
    report.measure(
        ROWS.point(
            "TCP 1 stream private→internet",
            system,
            "Mbit/s",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || {
            let r = tools::iperf3(topo, "private", INTERNET_IP, secs, 1, false)?;
            Ok(Sample::new(r.bits_per_second / 1e6).with("retransmits", r.retransmits))
        },
    );
    let base = INTERNET_IP
        .parse()
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let gen_note = format!(
        "own sendmmsg generator in private ({} B payload = 64 B frames), dst ports/addresses vary per flow, {secs} s; received rate by an nft netdev-ingress drop rule on client eth0; generator and NAT share the 2 cores",
        udpgen::PAYLOAD
    );
    let many = settings.many_flows;
    report.measure(
        ROWS.point(
            &many_name(settings),
            system,
            "pps",
            Better::Higher,
            &gen_note,
        ),
        settings.reps,
        || udp_pps(topo, "private", "client", base, many, dur, false),
    );
    if !huge {
        return;
    }
    let one = report.measure(
        ROWS.point(
            "64-byte UDP, 1 flow",
            system,
            "pps",
            Better::Higher,
            &gen_note,
        ),
        settings.reps,
        || {
            profiled(
                settings,
                &format!("nat-{}-1-flow", tunnel::slug(system)),
                || udp_pps(topo, "private", "client", base, 1, dur, false),
            )
        },
    );
    let n = settings.huge_flows;
    let conntrack_note = if system == tunnel::ETHERGATE {
        format!("flow table max_flows = {ETHERGATE_MAX_FLOWS}, no per-source quota")
    } else {
        let max =
            std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").unwrap_or_default();
        format!("nf_conntrack_max = {} (host-wide, left as is)", max.trim())
    };
    let method = format!("one packet per new flow, {n} flows, rate received; {conntrack_note}");
    report.measure(
        ROWS.point(
            &new_flows_name(settings),
            system,
            "flows/s",
            Better::Higher,
            &method,
        ),
        1,
        || udp_pps(topo, "private", "client", base, n, Duration::ZERO, true),
    );
    let method = format!("{gen_note}; after the first pass created them; {conntrack_note}");
    let many_pps = report.measure(
        ROWS.point(&huge_name(settings), system, "pps", Better::Higher, &method),
        settings.reps,
        || {
            profiled(
                settings,
                &format!("nat-{}-{n}-flows", tunnel::slug(system)),
                || udp_pps(topo, "private", "client", base, n, dur, false),
            )
        },
    );
    let loss = match (one, many_pps) {
        (Some(a), Some(b)) if a > 0.0 => Ok((a - b) / a * 100.0),
        _ => Err(anyhow!("a pps row above failed")),
    };
    report.derived(
        ROWS.point(
            &loss_name(settings),
            system,
            "% loss",
            Better::Lower,
            "(pps at 1 flow − pps at N flows) ÷ pps at 1 flow, rows above",
        ),
        loss.and_then(|l| {
            if l.is_finite() {
                Ok(l)
            } else {
                bail!("not finite")
            }
        }),
    );
}

/// Runs `f` under a machine-wide `perf record` when `--perf` is on.
fn profiled(settings: &Settings, name: &str, f: impl FnOnce() -> Result<Sample>) -> Result<Sample> {
    if !settings.perf {
        return f();
    }
    let p = profile::start(None, &settings.work, &settings.out, name)?;
    let result = f();
    println!("        perf report: {}", p.finish()?.display());
    result
}
