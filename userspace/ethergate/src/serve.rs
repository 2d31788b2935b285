//! `ethergate serve`: the appliance in the foreground.
//!
//! What runs: the config is loaded and validated; the VPN listeners, one
//! tap and hub per `[[hub]]`, and the eBPF programs (through the verifier,
//! uplink XDP attached to `[nat].uplink`, classifying, counting and doing
//! SNAT with the inside interfaces; once the hubs' taps exist, tc on each
//! tap for DNAT and VPN-client SNAT) start.
//! SIGTERM/SIGINT stop it cleanly (counters printed, sessions closed, taps
//! removed). The NAT programs on the uplink and inside interfaces and the
//! flow maps are pinned: they keep translating while no process runs, and
//! the next serve adopts them, so a restart or an upgrade keeps every
//! established flow (`ethergate nat forget` removes them). SIGHUP (or `ethergate reload`) re-reads the
//! config and applies it atomically. The admin socket and the metrics
//! endpoint start last, once everything they report on is up.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::anyhow;
use ethergate_config::Config;
use ethergate_dataplane::{Dataplane, DataplaneError, LoadOptions};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use crate::{
    Failure, admin_socket::AdminSocket, appliance::Appliance, check, control::Control,
    metrics_http::MetricsServer, signals::Signals, stats,
};

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
    crate::control::announce_generated_secrets(
        &config
            .resolve_secret_files(true)
            .map_err(|e| Failure::Runtime(e.into()))?,
    );
    let mut signals = Signals::install()
        .map_err(|e| Failure::Runtime(anyhow!("cannot set up signal handling: {e}")))?;
    raise_open_file_limit(&config.server);

    // [nat]: rules to maps, NAT programs on uplink + inside (XDP or tc per
    // `[nat] mode`), the uplink's egress guard, the idle-flow sweeper.
    // DNAT and VPN-client SNAT attach to each hub tap once it exists.
    let max_flows = config
        .nat
        .as_ref()
        .map_or(ethergate_dataplane::DEFAULT_MAX_FLOWS, |n| {
            n.limits.max_flows
        });
    let mut dataplane = load_dataplane(max_flows, config.nat.is_some())?;
    info!("eBPF programs loaded and verified");
    match &config.nat {
        Some(nat) => {
            dataplane
                .apply_nat(nat)
                .map_err(|e| Failure::Runtime(e.into()))?;
            for (role, a) in dataplane
                .uplink_attachment()
                .map(|a| ("uplink", a))
                .into_iter()
                .chain(
                    dataplane
                        .inside_attachments()
                        .into_iter()
                        .map(|a| ("inside", a)),
                )
            {
                info!(
                    role,
                    interface = a.interface,
                    mode = a.mode.name(),
                    reason = a.reason,
                    "NAT data plane attached"
                );
            }
        }
        None => info!("no [nat] section: no data-plane program attached"),
    }
    let appliance = Appliance::start(&config).map_err(Failure::Runtime)?;
    info!(
        certificate = ?appliance.certificate,
        tls = appliance.server.tls_mode(),
        "appliance running"
    );
    crate::appliance::log_certificate(&appliance.current_certificate);
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

    // systemd (Type=notify): READY=1 below, once the admin socket and
    // metrics are up too.
    let systemd = crate::notify::Notifier::from_env();
    let admin_path = config.server.admin_socket.clone();
    let metrics_addr = config.server.metrics;
    let control = Arc::new(Mutex::new(Control::new(
        config_path.map(Path::to_path_buf),
        config,
        appliance,
        dataplane,
    )));
    let surfaces = start_surfaces(&admin_path, metrics_addr, &control);
    let (admin, metrics) = match surfaces {
        Ok(s) => s,
        Err(e) => {
            stop(control);
            return Err(Failure::Runtime(e));
        }
    };
    // Everything that needed more is done: programs verified and loaded
    // (CAP_PERFMON), listeners bound (CAP_NET_BIND_SERVICE). This thread
    // (signals, SIGHUP reloads) and the ones it starts from now on keep
    // only what a reload and status need; the admin socket and metrics
    // threads drop theirs as they start.
    ethergate_server::privileges::keep_control_capabilities("serve");
    info!(admin_socket = %admin_path.display(), metrics = ?metrics_addr, "admin socket and metrics up");
    systemd.ready();
    // After READY=1 (systemd expects pings only once the unit is up). It
    // holds a reference to the control object: dropped before stop().
    let watchdog = crate::notify::start_watchdog(health_check(Arc::clone(&control)));

    let interval = (stats_interval_secs > 0).then(|| Duration::from_secs(stats_interval_secs));
    let mut next_stats = interval.map(|i| Instant::now() + i);
    // A certificate can run out on a serve that is never reloaded: look
    // once a day (the log warns within 14 days; metrics have the date).
    let mut next_certificate_check = Instant::now() + CERTIFICATE_CHECK_INTERVAL;
    let outcome = loop {
        let wake = next_stats.map_or(next_certificate_check, |s| s.min(next_certificate_check));
        match signals.wait(Some(wake.saturating_duration_since(Instant::now()))) {
            Ok(Some(Signal::SIGHUP)) => {
                info!("SIGHUP: reloading the config");
                // Success and refusal are both logged by reload itself.
                systemd.reloading();
                let _ = lock(&control).reload();
                systemd.ready();
            }
            Ok(Some(signal)) => {
                info!(%signal, "stopping");
                systemd.stopping();
                break Ok(());
            }
            Ok(None) => {
                let now = Instant::now();
                if now >= next_certificate_check {
                    crate::appliance::log_certificate(
                        &lock(&control).appliance.current_certificate,
                    );
                    next_certificate_check = now + CERTIFICATE_CHECK_INTERVAL;
                }
                if let (Some(at), Some(every)) = (next_stats, interval)
                    && now >= at
                {
                    print_counters(&lock(&control).dataplane);
                    next_stats = Some(now + every);
                }
            }
            Err(e) => break Err(Failure::Runtime(anyhow!("waiting for signals: {e}"))),
        }
    };
    drop(metrics);
    drop(admin);
    drop(watchdog);
    print_counters(&lock(&control).dataplane);
    stop(control);
    outcome
}

/// How often a running serve looks at its certificate's expiry.
const CERTIFICATE_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);

fn start_surfaces(
    admin_path: &Path,
    metrics: Option<std::net::SocketAddr>,
    control: &Arc<Mutex<Control>>,
) -> anyhow::Result<(AdminSocket, Option<MetricsServer>)> {
    let admin = AdminSocket::start(admin_path, Arc::clone(control))?;
    let metrics = match metrics {
        Some(addr) => Some(MetricsServer::start(addr, Arc::clone(control))?),
        None => None,
    };
    Ok((admin, metrics))
}

/// The watchdog's question: is the appliance still doing its job? Every
/// hub of the *current* config must be open with all its tap queues read
/// (hubs added by a reload included), and the control lock must not stay taken: a status
/// or reload holds it for milliseconds, so only three busy looks in a row
/// (1.5 watchdog periods) count as wedged.
fn health_check(control: Arc<Mutex<Control>>) -> impl Fn() -> bool + Send + 'static {
    let busy = std::sync::atomic::AtomicU32::new(0);
    move || match control.try_lock() {
        Ok(c) => {
            busy.store(0, std::sync::atomic::Ordering::Relaxed);
            c.hubs_running()
        }
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().hubs_running(),
        Err(std::sync::TryLockError::WouldBlock) => {
            busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2
        }
    }
}

fn lock(control: &Mutex<Control>) -> std::sync::MutexGuard<'_, Control> {
    control
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sessions, hubs and taps first, then the programs.
fn stop(control: Arc<Mutex<Control>>) {
    // The admin and metrics threads have been joined, so this is the last
    // reference; if not, the process is exiting anyway.
    let Ok(control) = Arc::try_unwrap(control) else {
        warn!("control still shared at exit; leaving cleanup to the kernel");
        return;
    };
    let control = control
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    control.appliance.stop();
    let pinned = control.dataplane.state_origin().is_some();
    drop(control.dataplane);
    if pinned {
        info!(
            "NAT programs and flows stay attached for the next start (ethergate nat forget removes them); bye"
        );
    } else {
        info!("data-plane programs detached; bye");
    }
}

/// The data plane, with its NAT state pinned when there is NAT to keep. If
/// pinning is impossible here (no bpffs and no right to mount one), NAT
/// still runs; its flows then end with the process, and the log says so.
fn load_dataplane(max_flows: u32, nat: bool) -> Result<Dataplane, Failure> {
    if nat {
        match ethergate_dataplane::remove_stale_namespaces() {
            Ok(0) => {}
            Ok(removed) => info!(
                removed,
                "removed the NAT state of network namespaces that are gone"
            ),
            Err(e) => warn!("cannot check for stale NAT state: {e}"),
        }
        match ethergate_dataplane::remove_reused_inode_state() {
            Ok(0) => {}
            Ok(removed) => info!(
                removed,
                "removed the NAT state of an earlier namespace with this one's inode"
            ),
            Err(e) => {
                warn!("cannot remove an earlier namespace's NAT state (it stays unused): {e}")
            }
        }
        match ethergate_dataplane::default_pin_root() {
            Ok(root) => {
                let options = LoadOptions {
                    max_flows,
                    pin_root: Some(root.clone()),
                };
                match Dataplane::load_with(&options) {
                    Ok(dataplane) => {
                        if let Some(origin) = dataplane.state_origin() {
                            info!(pin_root = %root.display(), "NAT state: {origin}");
                        }
                        return Ok(dataplane);
                    }
                    Err(e @ DataplaneError::Pin { .. }) => {
                        warn!("NAT flows will not survive a restart: {e}");
                    }
                    Err(e) => return Err(Failure::Runtime(e.into())),
                }
            }
            Err(e) => warn!("NAT flows will not survive a restart: no network namespace id: {e}"),
        }
    }
    Dataplane::load_with_max_flows(max_flows).map_err(|e| Failure::Runtime(e.into()))
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

/// Every session, pending handshake and tap queue is a file descriptor;
/// the usual soft limit (1024) is below `max_sessions` alone. Raise the
/// soft limit to the hard one (systemd's unit sets the hard one high), and
/// say so when even that is too low for the configured limits.
fn raise_open_file_limit(server: &ethergate_config::Server) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        warn!("cannot raise the open-file limit from {soft} to {hard}");
    }
    let needed = u64::from(server.limits.max_sessions) * 2
        + u64::from(server.limits.max_pending_handshakes)
        + 256;
    if hard < needed {
        warn!(
            "the open-file limit ({hard}) is below what [server.limits] may need ({needed}); \
             raise LimitNOFILE"
        );
    }
}
