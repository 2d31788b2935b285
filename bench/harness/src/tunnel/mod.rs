//! Tunnel rows: the Debian SoftEther VPN Client in `client` connects to a
//! SoftEther-protocol server in `nat` (ethergate, then the Debian SoftEther
//! VPN Server with the recipe's local bridge + iptables), and traffic goes
//! through the tunnel to `private`. Then the server alone: memory per idle
//! session and login rate with the Rust login driver.
//!
//! Invariant: one server runs at a time, each on the same addresses, hub,
//! user and client account; whatever fails is recorded in its rows and
//! the next system still runs.

mod ethergate_client;
mod maxtcp;
mod measure;
mod rows;
mod systems;
mod transit;

use std::time::Duration;

use anyhow::{Result, anyhow};
use ethergate_netns::{Process, Topology};
use ethergate_softether::SoftEtherServer;

use crate::{report::Report, settings::Settings, sys, tools, topo::PRIVATE_IP};
use ethergate_client::ethergate_client;
use maxtcp::maxtcp;
use measure::{Part, sessions, traffic};
use rows::{fail_all, fail_traffic};
use systems::{
    ACCOUNT, ETHERGATE_TCP, SOFTETHER_TCP, account_detail, connect, disconnect,
    remove_softether_rules, start_client, start_softether, tcp_only,
};

pub(crate) use measure::{Tunnel, tunnel_rows, udp_pps};
pub(crate) use rows::{ROWS, slug, tcp_name};
pub(crate) use systems::{
    ETHERGATE, SOFTETHER, start_ethergate, start_ethergate_with, stop_ethergate,
};
pub(crate) use transit::{ServerPath, Transport};

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
    for system in [ETHERGATE, ETHERGATE_TCP, SOFTETHER, SOFTETHER_TCP] {
        if !settings.wants(system) || sys::interrupted() {
            continue;
        }
        report.progress(&format!("tunnel: starting {system}"));
        let server: Result<(Option<Process>, Option<SoftEtherServer<'_>>)> = match system {
            ETHERGATE | ETHERGATE_TCP => {
                start_ethergate(topo, settings, ethergate_dataplane_default_flows(), None)
                    .map(|p| (Some(p), None))
            }
            _ => start_softether(topo).map(|s| (None, Some(s))),
        };
        let (eg, se) = match server {
            Ok(s) => s,
            Err(e) => {
                let error = format!("server did not start: {e:#}");
                if tcp_only(system) {
                    fail_traffic(report, settings, system, &error);
                } else {
                    fail_all(report, settings, system, &error);
                }
                remove_softether_rules(topo);
                continue;
            }
        };
        let pid = eg
            .as_ref()
            .map(Process::pid)
            .or_else(|| se.as_ref().and_then(SoftEtherServer::pid))
            .ok_or_else(|| anyhow!("no server pid"))?;
        // The TCP-only rows are the same server with another client
        // setting: only the rows the client's transport changes.
        let server_rows = !tcp_only(system);
        // Memory first, on the fresh server: later traffic leaves freed
        // buffers behind that new sessions would reuse unseen.
        if server_rows {
            sessions(topo, report, settings, system, pid, Part::Memory);
        }
        match &client {
            Ok(c) => match c
                .account_detail_set(ACCOUNT, &account_detail(system, 1))
                .map_err(anyhow::Error::from)
                .and_then(|()| connect(topo, c, system))
            {
                Ok(()) => {
                    traffic(topo, report, settings, system, pid);
                    disconnect(topo, c);
                    maxtcp(topo, report, settings, system, pid, c);
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
        if server_rows {
            ethergate_client(topo, report, settings, system, pid);
            sessions(topo, report, settings, system, pid, Part::Logins);
        }
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
