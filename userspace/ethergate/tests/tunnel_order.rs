//! A `/MAXTCP:8` session of the real SoftEther client under load, as its
//! users run it: 4 TCP streams each way through the tunnel. A VPN must not
//! turn its users' TCP into a reordering link: the server keeps each inner
//! flow on one of the session's connections, and pushes back instead of
//! dropping when a queue fills.
//! `client (198.51.100.2) — nat (ethergate) — private (iperf3 10.0.1.26)`.
//! Needs root; run with `--test-threads=1`.

use std::time::Duration;

use ethergate_netns::Topology;
use ethergate_softether::{AccountDetail, SoftEtherClient, Udhcpc};

mod common;
use common::{Appliance, recipe_appliance, status_json, vpnclient_account};

const SERVER: &str = "198.51.100.1:443";
const STREAMS: &str = "4";
const SECONDS: &str = "8";

fn appliance() -> Appliance {
    recipe_appliance(|topo, _| {
        vec![
            topo.spawn("private", &["iperf3", "-s", "-B", "10.0.1.26"])
                .expect("iperf3 server"),
        ]
    })
}

/// `nstat -az NAME` in `ns`: the kernel's absolute counter.
fn counter(topo: &Topology, ns: &str, name: &str) -> u64 {
    let out = topo
        .run(ns, &["nstat", "-az", name])
        .expect("nstat (iproute2)");
    out.stdout
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct Run {
    mbits: f64,
    retransmits: u64,
    /// Segments the receiving host queued out of order.
    out_of_order: u64,
    segments: u64,
}

/// iperf3 from the client to the private host (`reverse`: the other way),
/// with the receiver's out-of-order count over the run.
fn iperf(app: &Appliance, reverse: bool) -> Run {
    let receiver = if reverse { "client" } else { "private" };
    let ofo_before = counter(&app.topo, receiver, "TcpExtTCPOFOQueue");
    let segs_before = counter(&app.topo, receiver, "TcpInSegs");
    let mut argv = vec![
        "iperf3",
        "-c",
        "10.0.1.26",
        "-P",
        STREAMS,
        "-t",
        SECONDS,
        "-J",
    ];
    if reverse {
        argv.push("-R");
    }
    let out = app.topo.run("client", &argv).unwrap_or_else(|e| {
        panic!("iperf3: {e}\n{}", app.serve.log());
    });
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("iperf3 -J");
    let sent = &json["end"]["sum_sent"];
    Run {
        mbits: json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6,
        retransmits: sent["retransmits"].as_u64().unwrap_or(0),
        out_of_order: counter(&app.topo, receiver, "TcpExtTCPOFOQueue") - ofo_before,
        segments: counter(&app.topo, receiver, "TcpInSegs") - segs_before,
    }
}

/// Frames the kernel dropped on their way to the hub (the tap's transmit
/// queue overflowed while the hub was behind).
fn tap_tx_dropped(topo: &Topology) -> u64 {
    let out = topo
        .ip("nat", &["-s", "-j", "link", "show", "tap_00"])
        .expect("ip -s link");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("ip -j");
    json[0]["stats64"]["tx"]["dropped"].as_u64().unwrap_or(0)
}

#[test]
fn maxtcp_8_under_load_keeps_each_flow_in_order() {
    let app = appliance();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let tap = vpnclient_account(&client, SERVER);
    client
        .account_detail_set(
            "acc",
            &AccountDetail {
                max_tcp: 8,
                ..AccountDetail::default()
            },
        )
        .expect("AccountDetailSet /MAXTCP:8");
    client.account_connect("acc").expect("AccountConnect");
    client
        .wait_connected("acc", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", app.serve.log()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client
        .account_status("acc")
        .ok()
        .and_then(|s| s.get("Number of TCP Connections").map(str::to_owned))
        .as_deref()
        .map(str::trim)
        != Some("8")
    {
        assert!(std::time::Instant::now() < deadline, "8 connections");
        std::thread::sleep(Duration::from_millis(250));
    }
    Udhcpc::new(&tap)
        .static_routes(true)
        .run(&app.topo, "client")
        .unwrap_or_else(|e| panic!("no DHCP lease: {e}\n{}", app.serve.log()));

    let up = iperf(&app, false);
    let down = iperf(&app, true);
    let tap_drops = tap_tx_dropped(&app.topo);
    let status = status_json(&app.state.join("admin.sock").display().to_string());
    let hub = &status["hubs"][0];
    let dropped = hub["session_frames_dropped"].as_u64().unwrap_or(0);
    let waits = status["server"]["hub_queue_waits"].as_u64().unwrap_or(0);
    eprintln!(
        "/MAXTCP:8, {STREAMS} streams, {SECONDS} s each way:\n  \
         up   {:.0} Mbit/s, {} retransmits, {} of {} segments out of order at the private host\n  \
         down {:.0} Mbit/s, {} retransmits, {} of {} segments out of order at the client\n  \
         server: {dropped} frames dropped for sessions, {waits} reader waits for the hub \
         (backpressure); the kernel dropped {tap_drops} frames queued for the hub's tap",
        up.mbits,
        up.retransmits,
        up.out_of_order,
        up.segments,
        down.mbits,
        down.retransmits,
        down.out_of_order,
        down.segments
    );
    assert!(up.mbits > 0.0 && down.mbits > 0.0);
    // The server keeps each inner flow on one connection (the outbox's
    // property tests prove the order) and drops only as a congestion
    // signal: a few frames per 100 ms of standing queue, never a burst.
    let to_session = hub["to_sessions"]["frames"].as_u64().unwrap_or(0);
    assert!(
        dropped * 100 <= to_session,
        "{dropped} of {to_session} frames for the session dropped"
    );
    assert_eq!(tap_drops, 0, "the hub kept up with its tap");
    client.stop();
}
