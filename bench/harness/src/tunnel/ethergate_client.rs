//! The rows of ethergate's own Linux client against each server.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ethergate_netns::{Process, Topology};

use crate::tunnel::rows::{EG_CLIENT_CIDR, EG_TAP, ROWS, eg_client_name};
use crate::tunnel::systems::{HUB, PASSWORD, USER};
use crate::{
    report::{Better, Report, Sample},
    settings::Settings,
    sys, tools,
    topo::{PRIVATE_IP, SERVER_IP, TAP_IP},
};

/// TCP 1 stream both ways with `ethergate client` (instead of the Debian
/// vpnclient) against this server: frames inside the TLS connection, then
/// with UDP acceleration once the client says frames go by UDP.
pub(crate) fn ethergate_client(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
) {
    for udp in [false, true] {
        let started = start_ethergate_client(topo, settings, udp);
        let secs = settings.secs;
        for dir in ["up", "down"] {
            let method = format!(
                "iperf3 -t {secs} -P 1{} to {PRIVATE_IP}; ethergate client (this build), static {EG_CLIENT_CIDR}, 1 TCP conn{}",
                if dir == "down" { " -R" } else { "" },
                if udp {
                    ", UDP acceleration (measured once frames go by UDP)"
                } else {
                    ", --no-udp-acceleration"
                }
            );
            let name = eg_client_name(dir, udp);
            report.measure(
                ROWS.point(&name, system, "Mbit/s", Better::Higher, &method),
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
}

/// The client up and reaching the private host; with `udp`, also sending
/// frames by UDP (the path needs ten seconds of working both ways).
pub(crate) fn start_ethergate_client(
    topo: &Topology,
    settings: &Settings,
    udp: bool,
) -> Result<Process> {
    let password = settings.work.join("client-password");
    std::fs::write(&password, format!("{PASSWORD}\n"))?;
    let bin = settings.ethergate_bin.display().to_string();
    let password = password.display().to_string();
    let server = format!("{SERVER_IP}:443");
    let mut argv = vec![
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
    ];
    if !udp {
        argv.push("--no-udp-acceleration");
    }
    let mut p = topo.spawn("client", &argv)?;
    let deadline = Instant::now() + Duration::from_secs(if udp { 45 } else { 30 });
    loop {
        if !p.is_running() {
            bail!("ethergate client exited: {}", p.log());
        }
        if topo.run("client", &["ip", "link", "show", EG_TAP])?.success {
            tools::route_private_via(topo, TAP_IP, EG_TAP)?;
            if topo
                .run("client", &["ping", "-c1", "-W1", PRIVATE_IP])?
                .success
                && (!udp || p.log().contains("UDP acceleration: frames go by UDP"))
            {
                return Ok(p);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no echo from {PRIVATE_IP} through the ethergate client (udp: {udp}) in time: {}",
                p.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
