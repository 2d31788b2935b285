//! The load generators and probes the harness drives — iperf3, wrk, ping,
//! an nft drop counter, nginx — each run inside a namespace of the topology
//! with a deadline, their output parsed into numbers.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ethergate_netns::{Process, Topology};
use hdrhistogram::Histogram;

/// Extra seconds a tool gets beyond its own duration before `timeout`
/// kills it (connect, warm-up, JSON write-out on a loaded machine).
const TOOL_GRACE_SECS: u64 = 20;

pub struct Iperf {
    pub bits_per_second: f64,
    pub bytes: f64,
    pub retransmits: f64,
}

/// `iperf3 -c server -t secs -P streams [-R] -J` from `ns`. A refused
/// start (the server still finishing the previous test through a slow
/// tunnel) is retried twice, a second apart.
pub fn iperf3(
    topo: &Topology,
    ns: &str,
    server: &str,
    secs: u64,
    streams: u32,
    reverse: bool,
) -> Result<Iperf> {
    let deadline = (secs + TOOL_GRACE_SECS).to_string();
    let (t, p) = (secs.to_string(), streams.to_string());
    let mut argv = vec![
        "timeout",
        &deadline,
        "iperf3",
        "-c",
        server,
        "-t",
        &t,
        "-P",
        &p,
        "-J",
        "--connect-timeout",
        "5000",
    ];
    if reverse {
        argv.push("-R");
    }
    let mut attempt = 0;
    loop {
        match iperf3_once(topo, ns, &argv) {
            Err(e)
                if attempt < 2
                    && ["unable to connect", "busy", "reset by peer"]
                        .iter()
                        .any(|m| e.to_string().contains(m)) =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn iperf3_once(topo: &Topology, ns: &str, argv: &[&str]) -> Result<Iperf> {
    let out = topo.run(ns, argv)?;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).with_context(|| {
        format!(
            "iperf3 printed no JSON (exit {:?}): {}",
            out.code,
            out.stderr.trim()
        )
    })?;
    if let Some(e) = json.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let end = &json["end"];
    let received = &end["sum_received"];
    let bps = received["bits_per_second"]
        .as_f64()
        .ok_or_else(|| anyhow!("iperf3 JSON has no end.sum_received"))?;
    Ok(Iperf {
        bits_per_second: bps,
        bytes: received["bytes"].as_f64().unwrap_or(0.0),
        retransmits: end["sum_sent"]["retransmits"].as_f64().unwrap_or(0.0),
    })
}

/// `iperf3 -s -B bind` in `ns`, once it accepts connections.
pub fn iperf3_server(topo: &Topology, ns: &str, bind: &str) -> Result<Process> {
    let p = topo.spawn(ns, &["iperf3", "-s", "-B", bind])?;
    wait_listening(topo, ns, 5201)?;
    Ok(p)
}

/// Polls `ss` until something listens on TCP `port` in `ns`.
pub fn wait_listening(topo: &Topology, ns: &str, port: u16) -> Result<()> {
    let needle = format!(":{port} ");
    for _ in 0..100 {
        let out = topo.run(ns, &["ss", "-Hltn"])?;
        if out.stdout.contains(&needle) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port} in {ns}")
}

/// Round-trip times (µs) of `count` pings `interval` apart.
pub fn ping(
    topo: &Topology,
    ns: &str,
    dst: &str,
    count: u32,
    interval: &str,
) -> Result<Histogram<u64>> {
    let c = count.to_string();
    let out = topo.run(
        ns,
        &["ping", "-n", "-c", &c, "-i", interval, "-W", "2", dst],
    )?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for line in out.stdout.lines() {
        if let Some(ms) = line
            .split_once("time=")
            .and_then(|(_, t)| t.split_whitespace().next())
            .and_then(|t| t.parse::<f64>().ok())
        {
            hist.record(((ms * 1000.0).round() as u64).max(1))?;
        }
    }
    if hist.is_empty() {
        bail!("no ping replies from {dst}: {}", out.stdout.trim());
    }
    Ok(hist)
}

pub struct Wrk {
    pub requests_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: f64,
}

/// `wrk -t1 -c conns -d secs --latency url` from `ns`.
pub fn wrk(topo: &Topology, ns: &str, url: &str, secs: u64, conns: u32) -> Result<Wrk> {
    let deadline = (secs + TOOL_GRACE_SECS).to_string();
    let d = format!("{secs}s");
    let c = conns.to_string();
    let out = topo.run(
        ns,
        &[
            "timeout",
            &deadline,
            "wrk",
            "-t1",
            "-c",
            &c,
            "-d",
            &d,
            "--timeout",
            "5s",
            "--latency",
            url,
        ],
    )?;
    if !out.success {
        bail!(
            "wrk failed (exit {:?}): {} {}",
            out.code,
            out.stdout.trim(),
            out.stderr.trim()
        );
    }
    let text = &out.stdout;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("wrk printed no Requests/sec: {text}"))?;
    let percentile = |p: &str| -> Result<f64> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| duration_us(v.trim()))
            .ok_or_else(|| anyhow!("wrk printed no {p} latency: {text}"))
    };
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map_or(0.0, |_| 1.0);
    Ok(Wrk {
        requests_per_second: rps,
        p50_us: percentile("50%")?,
        p99_us: percentile("99%")?,
        errors,
    })
}

/// wrk's `812.00us` / `1.20ms` / `2.01s` → µs.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 6e7,
        _ => return None,
    })
}

/// An nftables netdev-ingress rule on `dev` in `ns` that counts and drops
/// UDP: the receiver of the pps tests (no socket, no ICMP unreachable back
/// through the NAT under test). This kernel has no tc classifier modules,
/// and the netdev hook runs as early (before IP, no conntrack).
pub struct UdpSink<'t> {
    topo: &'t Topology,
    ns: String,
}

const SINK_TABLE: &str = "egbench_sink";

impl<'t> UdpSink<'t> {
    pub fn install(topo: &'t Topology, ns: &str, dev: &str) -> Result<Self> {
        let _ = topo.run(ns, &["nft", "delete", "table", "netdev", SINK_TABLE]);
        topo.exec(ns, &["nft", "add", "table", "netdev", SINK_TABLE])?;
        let sink = Self {
            topo,
            ns: ns.to_owned(),
        };
        let hook = format!("{{ type filter hook ingress device {dev} priority 0 ; }}");
        topo.exec(
            ns,
            &["nft", "add", "chain", "netdev", SINK_TABLE, "in", &hook],
        )?;
        topo.exec(
            ns,
            &[
                "nft", "add", "rule", "netdev", SINK_TABLE, "in", "ip", "protocol", "udp",
                "counter", "drop",
            ],
        )?;
        Ok(sink)
    }

    /// Packets dropped (= received) so far.
    pub fn packets(&self) -> Result<u64> {
        let out = self
            .topo
            .exec(&self.ns, &["nft", "list", "table", "netdev", SINK_TABLE])?;
        // "ip protocol udp counter packets 123 bytes 4567 drop"
        out.stdout
            .split_once("counter packets ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow!("no packet counter in nft output: {}", out.stdout))
    }
}

impl Drop for UdpSink<'_> {
    fn drop(&mut self) {
        let _ = self
            .topo
            .run(&self.ns, &["nft", "delete", "table", "netdev", SINK_TABLE]);
    }
}

/// nginx in `ns` answering every request on `listen` with a short body;
/// logs off, everything under `dir`.
pub fn nginx(topo: &Topology, ns: &str, listen: &str, dir: &std::path::Path) -> Result<Process> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         server {{ listen {listen}; location / {{ return 200 \"private web server\\n\"; }} }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let conf_arg = path.display().to_string();
    let prefix = format!("{d}/");
    let err = format!("{d}/error.log");
    let p = topo.spawn(ns, &["nginx", "-p", &prefix, "-e", &err, "-c", &conf_arg])?;
    let port: u16 = listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80);
    wait_listening(topo, ns, port)?;
    Ok(p)
}

/// Sets offload features (`ethtool -K dev k v …`) in `ns`.
/// In `client`, the private subnet through the tunnel: `10.0.0.0/16 via
/// gateway dev device` (what a pushed route or an OpenVPN `route` would
/// install).
pub fn route_private_via(topo: &Topology, gateway: &str, device: &str) -> Result<()> {
    topo.exec(
        "client",
        &[
            "ip",
            "route",
            "replace",
            "10.0.0.0/16",
            "via",
            gateway,
            "dev",
            device,
        ],
    )?;
    Ok(())
}

pub fn offloads(topo: &Topology, ns: &str, dev: &str, settings: &[(&str, &str)]) -> Result<()> {
    let mut argv = vec!["ethtool", "-K", dev];
    for (k, v) in settings {
        argv.extend([*k, *v]);
    }
    topo.exec(ns, &argv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::duration_us;

    #[test]
    fn wrk_durations() {
        assert_eq!(duration_us("812.00us"), Some(812.0));
        assert_eq!(duration_us("1.50ms"), Some(1500.0));
        assert_eq!(duration_us("2.00s"), Some(2e6));
        assert_eq!(duration_us("x"), None);
    }
}
