//! SoftEther's UDP acceleration with the real Debian SoftEther VPN Client,
//! whose default account asks for it: after ten seconds of the path
//! working both ways every frame leaves the server by UDP, and the client
//! sends by UDP too; bulk transfers go through unfragmented (the server
//! clamps the MSS); when UDP breaks mid-session the session carries on
//! over TLS, and comes back to UDP when it heals.
//! `client (198.51.100.2) — nat (ethergate serve) — private`. Needs root;
//! run with `--test-threads=1`.

use std::time::{Duration, Instant};

mod common;
use common::{
    fetch_page, recipe_appliance, status_json, vpnclient_at_fetches_the_page,
    vpnclient_fetches_the_page, web_server,
};
use ethergate_netns::{Process, Topology, recipe};

/// The one session's UDP acceleration status.
fn udp_status(socket: &str) -> serde_json::Value {
    let status = status_json(socket);
    let session = &status["sessions"][0];
    assert!(
        session["udp_acceleration"].is_object(),
        "the session was not granted UDP acceleration: {status}"
    );
    session.clone()
}

fn number(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{} missing in {v}", path.join(".")))
}

/// Pings the hub's address through the tunnel every 200 ms until
/// `sending_by_udp` reads `want` (or `within` passes); every ping must be
/// answered meanwhile.
fn ping_until_udp(topo: &Topology, socket: &str, want: bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        common::ping_tap(topo, "pings through the tunnel");
        let session = udp_status(socket);
        if session["udp_acceleration"]["sending_by_udp"].as_bool() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sending_by_udp is not {want} after {within:?}: {session}"
        );
    }
}

/// IP datagrams `namespace` had to reassemble so far (`ReasmReqds`).
fn reassembled(topo: &Topology, namespace: &str) -> u64 {
    let snmp = topo
        .run(namespace, &["cat", "/proc/net/snmp"])
        .expect("/proc/net/snmp");
    let mut ip = snmp.stdout.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().expect("Ip names"), ip.next().expect("Ip values"));
    let at = names
        .split_whitespace()
        .position(|n| n == "ReasmReqds")
        .expect("ReasmReqds");
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// iperf3 from the client to the hub's address for `secs`, uploading or
/// (`reverse`) downloading; the JSON report's received bytes.
fn iperf(topo: &Topology, reverse: bool, secs: &str, log: &dyn Fn() -> String) -> u64 {
    let _server: Process = topo
        .spawn("nat", &["iperf3", "-s", "-1", "-B", recipe::TAP_IP])
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    let mut args = vec![
        "timeout",
        "30",
        "iperf3",
        "-J",
        "-c",
        recipe::TAP_IP,
        "-t",
        secs,
    ];
    if reverse {
        args.push("-R");
    }
    let out = topo.run("client", &args).expect("iperf3 -c");
    assert!(
        out.success,
        "iperf3: {}{}\n{}",
        out.stdout,
        out.stderr,
        log()
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("iperf3 JSON");
    report["end"]["sum_received"]["bytes"]
        .as_u64()
        .expect("received bytes")
}

/// How long, and at most how many datagrams, the flood sends.
const FLOOD_TIME: Duration = Duration::from_secs(3);
const FLOOD_LIMIT: u64 = 400_000;
/// An address in the client's network with no session.
const STRANGER: &str = "198.51.100.77";

/// Forged datagrams at the acceleration port while the session runs: from
/// the client's own address (each one costs a trial decryption until the
/// worker's budget is spent) and from an address with no session (a hash
/// lookup each). Pings go through the tunnel meanwhile; afterwards the
/// session is still on UDP and every forged datagram the server read is
/// counted under a reason.
fn flood_while_the_session_runs(topo: &Topology, socket: &str) {
    topo.ip(
        "client",
        &["addr", "add", &format!("{STRANGER}/24"), "dev", "eth0"],
    )
    .expect("a second client address");
    let before = status_json(socket)["server"]["udp_acceleration"].clone();
    let sent = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            topo.enter("client", || {
                let forged: Vec<std::net::UdpSocket> = ["198.51.100.2:0", &format!("{STRANGER}:0")]
                    .iter()
                    .map(|from| {
                        let s = std::net::UdpSocket::bind(from).expect("bind");
                        s.connect("198.51.100.1:443").expect("connect");
                        s.set_nonblocking(true).expect("nonblocking");
                        s
                    })
                    .collect();
                let mut payload = [0u8; 1400];
                let start = Instant::now();
                let mut sent = 0u64;
                while start.elapsed() < FLOOD_TIME && sent < FLOOD_LIMIT {
                    for (i, s) in forged.iter().enumerate() {
                        payload[..8].copy_from_slice(&sent.to_le_bytes());
                        if s.send(&payload[..1200 + i * 100]).is_ok() {
                            sent += 1;
                        }
                    }
                }
                sent
            })
            .expect("enter the client namespace")
        });
        for _ in 0..6 {
            common::ping_tap(topo, "pings during the flood");
        }
        flood.join().expect("the flood thread")
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = udp_status(socket);
    let server = status_json(socket)["server"]["udp_acceleration"].clone();
    let delta =
        |reason: &str| number(&server, &["drops", reason]) - number(&before, &["drops", reason]);
    let (unknown, trials, limited) = (
        delta("unknown_source"),
        delta("undecryptable"),
        delta("search_limited"),
    );
    eprintln!(
        "flood: {sent} forged datagrams in {FLOOD_TIME:?}; the server counted {unknown} \
         unknown_source, {trials} undecryptable, {limited} search_limited"
    );
    assert!(unknown > 0 && trials > 0, "{server}");
    assert!(
        unknown + trials + limited <= sent,
        "no more drops than datagrams: {server}"
    );
    assert_eq!(
        after["udp_acceleration"]["sending_by_udp"].as_bool(),
        Some(true),
        "the session stayed on UDP through the flood: {after}"
    );
}

#[test]
fn the_debian_client_moves_to_udp_acceleration_and_falls_back_to_tls_when_udp_breaks() {
    let app = recipe_appliance(|topo, state| vec![web_server(topo, state)]);
    let socket = app.state.join("admin.sock").display().to_string();
    let topo = &app.topo;
    let log = || app.serve.log();
    let client = vpnclient_fetches_the_page(topo, "mikalab-pass", log);

    // Granted at login; frames move to UDP once the path has worked both
    // ways for 10 s.
    ping_until_udp(topo, &socket, true, Duration::from_secs(30));
    let client_says = || {
        let status = client.account_status("acc").expect("AccountStatusGet");
        status
            .get("UDP Acceleration is Active")
            .unwrap_or_else(|| panic!("no UDP acceleration row: {:?}", status.items))
            .to_owned()
    };
    // Each side decides alone, from what it receives: the client follows
    // within its own stable period.
    let client_follows = || {
        let deadline = Instant::now() + Duration::from_secs(15);
        while client_says() != "Yes" {
            assert!(Instant::now() < deadline, "the client stays on TCP");
            common::ping_tap(topo, "pings while the client moves to UDP");
        }
    };
    client_follows();

    // From now on every frame for the client leaves by UDP, and the
    // client sends by UDP too.
    let before = udp_status(&socket);
    for _ in 0..7 {
        common::ping_tap(topo, "pings on UDP");
    }
    assert_eq!(fetch_page(topo).stdout, common::PAGE, "{}", log());
    let after = udp_status(&socket);
    let delta = |path: &[&str]| number(&after, path) - number(&before, path);
    let sent = delta(&["sent", "frames"]);
    assert!(sent >= 20, "{after}");
    assert_eq!(
        delta(&["udp_acceleration", "frames_sent"]),
        sent,
        "every frame to the client went by UDP: {before} → {after}"
    );
    assert!(
        delta(&["udp_acceleration", "frames_received"]) >= 20,
        "the client sends by UDP: {before} → {after}"
    );

    // Bulk both ways: the MSS clamp keeps every datagram whole, so
    // neither side reassembles IP fragments.
    let (nat_frags, client_frags) = (reassembled(topo, "nat"), reassembled(topo, "client"));
    let up = iperf(topo, false, "3", &log);
    let down = iperf(topo, true, "3", &log);
    assert!(up > 10_000_000 && down > 10_000_000, "{up} {down}");
    assert_eq!(
        reassembled(topo, "nat"),
        nat_frags,
        "the server reassembled fragments"
    );
    assert_eq!(
        reassembled(topo, "client"),
        client_frags,
        "the client reassembled fragments"
    );
    let status = status_json(&socket);
    let udp = &status["server"]["udp_acceleration"];
    assert!(number(udp, &["frames_sent"]) > 5_000, "{udp}");
    assert!(number(udp, &["frames_received"]) > 5_000, "{udp}");
    for reason in ["undecryptable", "malformed", "wrong_cookie", "stale"] {
        assert_eq!(number(udp, &["drops", reason]), 0, "{udp}");
    }

    flood_while_the_session_runs(topo, &socket);

    // UDP from the client stops getting through (lost on the way: a drop
    // before the server's socket, not a firewall on the client, whose EPERM
    // would make the client end its own session): the session carries on
    // over TLS.
    let rule = |op: &str| {
        let args = [
            "iptables",
            "-t",
            "raw",
            op,
            "PREROUTING",
            "-p",
            "udp",
            "--dport",
            "443",
            "-j",
            "DROP",
        ];
        let out = topo.run("nat", &args).expect("iptables");
        assert!(out.success, "iptables {op}: {}", out.stderr);
    };
    rule("-I");
    std::thread::sleep(Duration::from_secs(8));
    let ping = topo
        .run(
            "client",
            &["ping", "-c", "20", "-i", "0.1", "-W", "2", recipe::TAP_IP],
        )
        .expect("ping");
    assert!(
        ping.success && ping.stdout.contains(" 0% packet loss"),
        "over TLS after UDP broke: {}\n{}",
        ping.stdout,
        log()
    );
    assert_eq!(
        udp_status(&socket)["udp_acceleration"]["sending_by_udp"].as_bool(),
        Some(false)
    );
    assert_eq!(client_says(), "No", "the client fell back too");
    assert_eq!(fetch_page(topo).stdout, common::PAGE, "{}", log());

    // Healed: back to UDP.
    rule("-D");
    ping_until_udp(topo, &socket, true, Duration::from_secs(40));
    client_follows();
}

/// A multi-homed server (a second address on the client's link; every
/// listener on the wildcard address) and a client behind a stateful
/// firewall, as behind any home router: the client connects to the second
/// address, and only UDP from that same address is let back in. The
/// session still moves to UDP, and the server's datagrams pass the
/// firewall — routing alone would send them from the link's first address.
#[test]
fn udp_acceleration_replies_from_the_address_the_client_connected_to() {
    const SECOND: &str = "198.51.100.9";
    let topo = &common::recipe_topology();
    let (state, config) = common::recipe_state_hashed(topo);
    let text = std::fs::read_to_string(&config).expect("config");
    let wildcard = text.replace(
        "listen = [\"198.51.100.1:443\", \"198.51.100.1:992\", \"198.51.100.1:5555\"]",
        "listen = [\"0.0.0.0:443\"]",
    );
    assert_ne!(text, wildcard, "the listen line");
    std::fs::write(&config, wildcard).expect("config");
    let _web = web_server(topo, &state);
    let serve = common::start_serve(topo, &config);
    let socket = state.join("admin.sock").display().to_string();
    topo.ip(
        "nat",
        &["addr", "add", &format!("{SECOND}/24"), "dev", "eth0"],
    )
    .expect("second address");
    let rules = state.join("clientfw.nft");
    std::fs::write(
        &rules,
        "table ip clientfw {\n chain input {\n  type filter hook input priority 0; policy accept;\n  \
         iifname \"eth0\" udp dport != 68 ct state new counter drop\n }\n}\n",
    )
    .expect("ruleset");
    topo.exec("client", &["nft", "-f", &rules.display().to_string()])
        .expect("nft");
    let log = || serve.log();
    let _client =
        vpnclient_at_fetches_the_page(topo, &format!("{SECOND}:443"), "mikalab-pass", log);
    let firewall = || {
        topo.run("client", &["nft", "list", "ruleset"])
            .expect("nft list")
            .stdout
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        common::ping_tap(topo, "pings through the tunnel");
        let session = udp_status(&socket);
        if session["udp_acceleration"]["sending_by_udp"].as_bool() == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not on UDP after 30 s: {session}\nclient firewall: {}",
            firewall()
        );
    }
    assert!(
        firewall().contains("counter packets 0 bytes 0 drop"),
        "the firewall dropped unsolicited UDP: {}",
        firewall()
    );
}
