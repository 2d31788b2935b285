//! `ethergate serve`: the appliance in the foreground.
//!
//! What runs: the config is loaded and validated; the VPN listeners, one
//! tap and hub per `[[hub]]`, and the eBPF programs (through the verifier,
//! uplink XDP attached to `[nat].uplink`, classifying, counting and doing
//! SNAT with the inside interfaces; once the hubs' taps exist, tc on each
//! tap for DNAT and VPN-client SNAT) start.
//! SIGTERM/SIGINT stop it cleanly (counters printed, sessions closed, taps
//! removed, programs detached); SIGHUP is acknowledged and ignored until
//! reload exists.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::anyhow;
use ethergate_config::Config;
use ethergate_dataplane::Dataplane;
use nix::sys::signal::Signal;
use tracing::{info, warn};

use crate::{Failure, appliance::Appliance, check, signals::Signals, stats};

pub fn run(
    config_path: Option<&Path>,
    stats_interval_secs: u64,
    state_dir: Option<PathBuf>,
) -> Result<(), Failure> {
    let mut config = match config_path {
        Some(path) => check::load(path)?,
        None => {
            info!("no --config given: using the embedded default config");
            Config::embedded_default()
        }
    };
    for warning in &config.warnings {
        warn!("config: {warning}");
    }
    if let Some(dir) = state_dir {
        config.server.state_dir = dir;
    }
    let mut signals = Signals::install()
        .map_err(|e| Failure::Runtime(anyhow!("cannot set up signal handling: {e}")))?;

    // [nat]: SNAT rules to maps, XDP on uplink + inside, idle-flow sweeper
    // (ethergate-dataplane's apply_nat; DNAT is not applied yet).
    let max_flows = config
        .nat
        .as_ref()
        .map_or(ethergate_dataplane::DEFAULT_MAX_FLOWS, |n| {
            n.limits.max_flows
        });
    let mut dataplane =
        Dataplane::load_with_max_flows(max_flows).map_err(|e| Failure::Runtime(e.into()))?;
    info!("eBPF programs loaded and verified");
    match &config.nat {
        Some(nat) => {
            dataplane
                .apply_nat(nat)
                .map_err(|e| Failure::Runtime(e.into()))?;
            let mode = dataplane.uplink_attachment().map(|(_, m)| m.name());
            info!(uplink = nat.uplink.as_str(), ?mode, inside = ?dataplane.inside_attachments(), "NAT data plane attached (SNAT in XDP)");
        }
        None => info!("no [nat] section: no data-plane program attached"),
    }
    let appliance = Appliance::start(&config).map_err(Failure::Runtime)?;
    info!(
        certificate = ?appliance.certificate,
        tls = appliance.ktls.session_mode(),
        "appliance running"
    );
    // The hubs' taps exist only now: DNAT and VPN-client SNAT run in tc on
    // each of them.
    if let Some(nat) = &config.nat {
        for hub in &config.hubs {
            if let Err(e) = dataplane.attach_hub_tap(hub.bridge.as_str()) {
                appliance.stop();
                return Err(Failure::Runtime(e.into()));
            }
        }
        info!(taps = ?dataplane.hub_taps(), dnat_rules = nat.dnat.len(), "NAT attached to hub taps (DNAT and SNAT in tc)");
    }
    // systemd (Type=notify): listeners, taps and programs are up.
    let systemd = crate::notify::Notifier::from_env();
    let _watchdog = crate::notify::start_watchdog(&appliance.hubs);
    systemd.ready();

    let interval = (stats_interval_secs > 0).then(|| Duration::from_secs(stats_interval_secs));
    loop {
        match signals.wait(interval) {
            Ok(Some(Signal::SIGHUP)) => {
                warn!("SIGHUP received: reload is not implemented yet; keeping the running config")
            }
            Ok(Some(signal)) => {
                info!(%signal, "stopping");
                systemd.stopping();
                break;
            }
            Ok(None) => print_counters(&dataplane),
            Err(e) => return Err(Failure::Runtime(anyhow!("waiting for signals: {e}"))),
        }
    }
    print_counters(&dataplane);
    appliance.stop();
    drop(dataplane);
    info!("data-plane programs detached; bye");
    Ok(())
}

fn print_counters(dataplane: &Dataplane) {
    if dataplane.uplink_attachment().is_none() {
        return;
    }
    match dataplane.counters() {
        Ok(snapshot) => println!("uplink counters:\n{}", stats::render(&snapshot)),
        Err(e) => warn!("cannot read counters: {e}"),
    }
}
