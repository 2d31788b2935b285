//! The tunnel section's rows: their names, units and methods, and how a
//! system that could not run is recorded.

use anyhow::anyhow;

use crate::{
    report::{Better, Group, Report},
    settings::Settings,
};

/// The tunnel section's rows (and the OpenVPN and WireGuard rows beside them).
pub(crate) const ROWS: Group = Group("tunnel");

pub(crate) const CLIENT_METHOD: &str = "Debian vpnclient 5.01, 1 TCP conn, TLS, no compression, \
     UDP acceleration (measured once the client reports it active) unless the system says /DISABLEUDP";

/// Names of the rows one VPN system produces, so a system that fails to
/// start still gets a row per workload, each with the error.
pub(crate) fn workloads(settings: &Settings) -> Vec<(String, &'static str, Better)> {
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
    w.push((maxtcp_rss_name(), "MiB", Better::Lower));
    for udp in [false, true] {
        for dir in ["up", "down"] {
            w.push((eg_client_name(dir, udp), "Mbit/s", Better::Higher));
        }
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
pub(crate) fn maxtcp_name(dir: &str) -> String {
    format!("{}, /MAXTCP:8", tcp_name(4, dir))
}

pub(crate) fn maxtcp_rss_name() -> String {
    "server RSS after the /MAXTCP:8 runs".to_owned()
}

pub(crate) fn maxtcp_out_of_order_name(dir: &str) -> String {
    format!("{} out of order at the receiver", maxtcp_name(dir))
}

pub(crate) fn maxtcp_retransmits_name(dir: &str) -> String {
    format!("{} retransmits", maxtcp_name(dir))
}

pub(crate) fn rss_name(n: usize) -> String {
    format!("RSS per idle session @{n}")
}

pub(crate) fn login_name(settings: &Settings) -> String {
    format!(
        "login rate ({} logins, {} parallel)",
        settings.logins, settings.login_parallel
    )
}

pub(crate) fn fail_all(report: &mut Report, settings: &Settings, system: &str, error: &str) {
    for (w, unit, better) in workloads(settings) {
        report.derived(
            ROWS.point(&w, system, unit, better, ""),
            Err(anyhow!("{error}")),
        );
    }
}

pub(crate) fn fail_traffic(report: &mut Report, settings: &Settings, system: &str, error: &str) {
    // Not the ethergate-client rows (2), memory rows, login rows (3): they
    // do not need the vpnclient.
    let session_rows = 2 + settings.idle_sessions.len() + 3;
    let all = workloads(settings);
    for (w, unit, better) in &all[..all.len() - session_rows] {
        report.derived(
            ROWS.point(w, system, unit, *better, ""),
            Err(anyhow!("{error}")),
        );
    }
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

/// `udp`: the client with UDP acceleration, measured once frames go by UDP.
pub(crate) fn eg_client_name(dir: &str, udp: bool) -> String {
    if udp {
        format!("{}, ethergate client on UDP", tcp_name(1, dir))
    } else {
        format!("{}, ethergate client", tcp_name(1, dir))
    }
}

/// The ethergate client's tap and static address (outside the DHCP pool
/// and distinct from the vpnclient's).
pub(crate) const EG_TAP: &str = "egc0";

pub(crate) const EG_CLIENT_CIDR: &str = "192.168.30.251/24";
