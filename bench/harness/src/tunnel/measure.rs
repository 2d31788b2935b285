//! Through the tunnel (throughput, CPU per GB, latency, HTTP through DNAT,
//! 64-byte pps) and at the server alone (memory per idle session, login
//! rate).

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use anyhow::{Result, anyhow, bail};
use ethergate_netns::Topology;

use crate::tunnel::rows::{CLIENT_METHOD, ROWS, cpu_name, login_name, rss_name, slug, tcp_name};
use crate::tunnel::systems::{HUB, PASSWORD, USER};
use crate::tunnel::transit::{self, ServerPath, Transport};
use crate::{
    login, profile,
    report::{Better, Report, Sample},
    settings::Settings,
    sys, tools,
    topo::{LOGIN_SOURCES, PRIVATE_IP, SERVER_IP, TAP_IP},
    udpgen::{self, UdpGen},
};

/// One system's tunnel, as the rows every tunnel gets need it.
pub(crate) struct Tunnel<'a> {
    pub system: &'a str,
    /// The server's process (its tree is counted).
    pub pid: u32,
    /// The tunnel's client, for the method text.
    pub client: &'a str,
    /// Whose CPU the CPU-per-GB rows count, for the method text.
    pub cpu_of: &'a str,
    /// The address pinged at the far end of the tunnel, and which it is.
    pub ping_target: &'a str,
    pub ping_target_is: &'a str,
    /// Where the server's transit time is captured.
    pub server_path: ServerPath<'a>,
    /// How the 64-byte row counts arrivals (ends its method text).
    pub small_packets_counted: &'a str,
}

/// The rows every tunnel gets: throughput and CPU per GB, latency and the
/// server's transit, `more` rows, and last the 64-byte flood (the queues
/// it fills would skew the rows after it).
pub(crate) fn tunnel_rows(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    tunnel: &Tunnel<'_>,
    more: impl FnOnce(&mut Report),
) {
    tcp_rows(topo, report, settings, tunnel);
    latency_rows(topo, report, settings, tunnel);
    more(report);
    small_packet_row(topo, report, settings, tunnel);
}

/// TCP throughput through a tunnel, 1 and 4 streams each way, with the
/// server's CPU per GB of the one-stream runs. With `--perf`, each
/// one-stream run is profiled.
fn tcp_rows(topo: &Topology, report: &mut Report, settings: &Settings, tunnel: &Tunnel<'_>) {
    let Tunnel {
        system,
        pid,
        client,
        cpu_of,
        ..
    } = *tunnel;
    let secs = settings.secs;
    for (streams, dir) in [(1u32, "up"), (1, "down"), (4, "up"), (4, "down")] {
        let name = tcp_name(streams, dir);
        let method = format!(
            "iperf3 -t {secs} -P {streams}{} to {PRIVATE_IP}; {client}",
            if dir == "down" { " -R" } else { "" }
        );
        report.measure(
            ROWS.point(&name, system, "Mbit/s", Better::Higher, &method),
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
            let cpu_method =
                format!("utime+stime of {cpu_of} ÷ GB iperf3 received, same runs as the row above");
            cpu_per_gb_row(report, dir, system, &cpu_method);
        }
    }
}

/// Rows that need the vpnclient connected.
pub(crate) fn traffic(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
) {
    let tunnel = Tunnel {
        system,
        pid,
        client: CLIENT_METHOD,
        cpu_of: "the server's process tree (/proc/<pid>/stat)",
        ping_target: TAP_IP,
        ping_target_is: "(tunnel)",
        server_path: ServerPath {
            uplink: "eth0",
            device: "tap_00",
            transport: Transport::Tcp(443),
        },
        small_packets_counted: "; counted by an nft netdev-ingress drop rule on private eth0",
    };
    tunnel_rows(topo, report, settings, &tunnel, |report| {
        http_rows(topo, report, settings, system)
    });
}

/// Requests per second and their latency, through the tunnel to the
/// private web server by the recipe's DNAT rule.
fn http_rows(topo: &Topology, report: &mut Report, settings: &Settings, system: &str) {
    let secs = settings.secs;
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
    report.measure(
        ROWS.point(
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
    percentile_rows(report, "HTTP via DNAT", system, ("us", "µs"), &method);
}

/// 64-byte UDP frames from `client` to the private host through the
/// tunnel, 64 flows, as many per second as arrive. The queues the flood
/// filled drain for 2 s afterwards, so the next system starts clean. With
/// `--perf`, the server is profiled during the run.
fn small_packet_row(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    tunnel: &Tunnel<'_>,
) {
    let (system, counted) = (tunnel.system, tunnel.small_packets_counted);
    let secs = settings.secs;
    let method = format!(
        "own sendmmsg generator in client, {} B UDP payload (64 B frames), 64 dst ports, {secs} s{counted}",
        udpgen::PAYLOAD
    );
    report.measure(
        ROWS.point(
            "64-byte UDP client→private, 64 flows",
            system,
            "pps",
            Better::Higher,
            &method,
        ),
        settings.reps,
        || {
            let name = format!("tunnel-{}-pps64", slug(system));
            let prof = settings
                .perf
                .then(|| profile::start(Some(tunnel.pid), &settings.work, &settings.out, &name))
                .transpose()?;
            let sample = udp_pps(
                topo,
                "client",
                "private",
                PRIVATE_IP.parse()?,
                64,
                Duration::from_secs(secs),
                false,
            );
            if let Some(p) = prof {
                println!("        perf report: {}", p.finish()?.display());
            }
            sample
        },
    );
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
pub(crate) enum Part {
    Memory,
    Logins,
}

/// Rows of the server alone: memory per idle session, login rate.
pub(crate) fn sessions(
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
        // As the Debian client logs in by default: the server sets up
        // each session's UDP path too.
        offer_udp: true,
    };
    if part == Part::Memory {
        memory(topo, report, settings, system, pid, &target);
        return;
    }
    logins(topo, report, settings, system, &target);
}

pub(crate) fn memory(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    pid: u32,
    target: &login::Target,
) {
    for &n in &settings.idle_sessions {
        let method = format!(
            "(VmRSS of the server tree with {n} idle sessions open − before) ÷ {n}; sessions from the Rust login driver (ethergate-proto + rustls), 16 parallel, each offering UDP acceleration as the Debian client does"
        );
        report.measure(
            ROWS.point(&rss_name(n), system, "KiB", Better::Lower, &method),
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

pub(crate) fn logins(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    target: &login::Target,
) {
    let method = format!(
        "Rust login driver: {} parallel blocking clients, TCP connect → TLS → hello → password login (offering UDP acceleration) → welcome, then close; {} logins; hdrhistogram",
        settings.login_parallel, settings.logins
    );
    report.measure(
        ROWS.point(
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
    percentile_rows(report, "connect latency", system, ("ms", "ms"), &method);
}

/// Rows `{what} p50` and `{what} p99` from the last measured row's
/// `p50_{key}` and `p99_{key}` values (its error when it failed); `unit`
/// is (key suffix, unit shown).
fn percentile_rows(
    report: &mut Report,
    what: &str,
    system: &str,
    (key, shown): (&str, &str),
    method: &str,
) {
    // Both read the measured row: once the p50 row is in, it is the last.
    let values = ["p50", "p99"].map(|quantile| {
        let value = match report.rows.last() {
            None => Err(anyhow!("no run")),
            Some(row) => row
                .extra
                .get(&format!("{quantile}_{key}"))
                .copied()
                .ok_or_else(|| anyhow!("{}", row.error.as_deref().unwrap_or("no value"))),
        };
        (quantile, value)
    });
    for (quantile, value) in values {
        report.derived(
            ROWS.point(
                &format!("{what} {quantile}"),
                system,
                shown,
                Better::Lower,
                method,
            ),
            value,
        );
    }
}

pub(crate) fn report_failures(n: usize, first: Option<&str>) {
    println!(
        "        ({n} logins failed; first: {})",
        first.unwrap_or("?")
    );
}

/// The CPU-per-GB row of the one-stream throughput row just recorded
/// (its `server_cpu_s_per_gb` extra).
pub(crate) fn cpu_per_gb_row(report: &mut Report, dir: &str, system: &str, method: &str) {
    let cpu = report
        .rows
        .last()
        .and_then(|r| r.extra.get("server_cpu_s_per_gb").copied())
        .ok_or_else(|| anyhow!("no throughput run succeeded"));
    report.derived(
        ROWS.point(&cpu_name(dir), system, "CPU s/GB", Better::Lower, method),
        cpu,
    );
}

/// Ping RTT p50/p99 from `client` to the tunnel's ping target and the
/// tunnel's added latency over a direct ping to the server.
fn latency_rows(topo: &Topology, report: &mut Report, settings: &Settings, tunnel: &Tunnel<'_>) {
    let Tunnel {
        system,
        ping_target: target,
        ping_target_is: what,
        ..
    } = *tunnel;
    let method = format!(
        "ping -i 0.005 ×{} to {target} {what}, hdrhistogram; direct = to {SERVER_IP}",
        settings.ping_count
    );
    let rtt = tools::ping(topo, "client", target, settings.ping_count, "0.005");
    let direct = tools::ping(topo, "client", SERVER_IP, settings.ping_count, "0.005");
    let q = |h: &Result<hdrhistogram::Histogram<u64>>, p: f64| -> Result<f64> {
        h.as_ref()
            .map(|h| h.value_at_quantile(p) as f64)
            .map_err(|e| anyhow!("{e:#}"))
    };
    for (workload, value) in [
        ("ping RTT p50 client→tap", q(&rtt, 0.5)),
        ("ping RTT p99 client→tap", q(&rtt, 0.99)),
        (
            "added latency p50 (tunnel − direct)",
            q(&rtt, 0.5).and_then(|t| Ok(t - q(&direct, 0.5)?)),
        ),
    ] {
        report.derived(
            ROWS.point(workload, system, "µs", Better::Lower, &method),
            value,
        );
    }
    transit_rows(topo, report, settings, system, target, tunnel.server_path);
}

/// The server's own share of the added latency: per ping, the time from
/// its tunnel packet arriving to the echo request reaching the server's
/// device, plus from the echo reply leaving that device to its tunnel
/// packet leaving (kernel timestamps; [`transit`]).
fn transit_rows(
    topo: &Topology,
    report: &mut Report,
    settings: &Settings,
    system: &str,
    target: &str,
    server: ServerPath<'_>,
) {
    let method = format!(
        "ping -i 0.005 ×{} to {target} (a second run), captured on the server's {} and {} with kernel timestamps: (echo request on {} − its tunnel packet in) + (tunnel packet out − echo reply on {}), per ping",
        settings.ping_count, server.uplink, server.device, server.device, server.device
    );
    let measured = transit::measure(topo, "nat", server, || {
        tools::ping(topo, "client", target, settings.ping_count, "0.005").map(drop)
    });
    let at = |quantile: f64| -> Result<Sample> {
        let t = measured.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        Ok(Sample::new(t.total.value_at_quantile(quantile) as f64)
            .with("in_us", t.request.value_at_quantile(quantile) as f64)
            .with("out_us", t.reply.value_at_quantile(quantile) as f64)
            .with("pings_paired", t.total.len() as f64)
            .with("udp_acceleration_share", {
                t.accelerated_packets as f64 / t.tunnel_packets.max(1) as f64
            }))
    };
    for (workload, quantile) in [
        ("server transit p50 (in + out)", 0.5),
        ("server transit p99 (in + out)", 0.99),
    ] {
        report.measure(
            ROWS.point(workload, system, "µs", Better::Lower, &method),
            1,
            || at(quantile),
        );
    }
}
