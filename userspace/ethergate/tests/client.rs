//! `ethergate client` against `ethergate serve`, both as users run them, in
//! the recipe's namespaces: `client (198.51.100.2) — nat (ethergate serve:
//! 198.51.100.1, tap_00 192.168.30.1/24, 10.0.0.1/16) — private (web server
//! 10.0.1.26:80)`. DHCP over the tunnel with classless routes, a static
//! address, clean stop with RELEASE, reconnect after a server restart, a
//! pinned certificate, trust on first use (a recorded certificate, a
//! changed one refused with exit 1, `--insecure`), and refused logins
//! ending with exit 1. Every client gets an explicit certificate choice —
//! the test's own known-servers file unless it says otherwise — so no test
//! touches (or depends on) the user's `~/.config/ethergate/known_servers`:
//! each run's server has a new certificate at the same address.
//! Needs root; run with `--test-threads=1`.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ethergate_netns::{Process, Topology};

mod common;
use common::{BIN, PAGE, StateDir, start_serve, wait_for, web_server};

const SERVER: &str = "198.51.100.1:443";
const TAP: &str = "vpn_eg0";
const PASSWORD: &str = "mikalab-pass";

struct Setup {
    topo: Topology,
    serve: Option<Process>,
    _web: Process,
    state: StateDir,
    config: PathBuf,
    password_file: PathBuf,
    /// This test's known-servers file.
    known_servers: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let (topo, state, config) =
            common::recipe_files("state", &format!("password = \"{PASSWORD}\""));
        let password_file = state.join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
        let web = web_server(&topo, &state);
        let known_servers = state.join("known_servers");
        let mut setup = Setup {
            topo,
            serve: None,
            _web: web,
            state,
            config,
            password_file,
            known_servers,
        };
        setup.start_server();
        setup
    }

    fn start_server(&mut self) {
        self.serve = Some(start_serve(&self.topo, &self.config));
    }

    fn server_log(&self) -> String {
        self.serve.as_ref().map(Process::log).unwrap_or_default()
    }

    /// Stops `ethergate serve` and starts it again (same state directory).
    fn restart_server(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            assert_eq!(serve.stop(), Some(0), "{}", serve.log());
        }
        self.start_server();
    }

    /// `ethergate client` with `extra`, and `--known-servers` (this test's
    /// file) unless `extra` chooses `--ca-cert` or `--insecure`.
    fn client(&self, extra: &[&str]) -> Process {
        let password = self.password_file.display().to_string();
        let known_servers = self.known_servers.display().to_string();
        let mut argv = common::client_argv(SERVER, "mikalab", "tsumura", &password);
        argv.extend_from_slice(extra);
        if !extra.contains(&"--ca-cert") && !extra.contains(&"--insecure") {
            argv.extend_from_slice(&["--known-servers", &known_servers]);
        }
        self.topo.spawn("client", &argv).expect("ethergate client")
    }

    fn status(&self) -> serde_json::Value {
        common::status_json(&self.state.join("admin.sock").display().to_string())
    }

    fn client_sh(&self, argv: &[&str]) -> ethergate_netns::CommandOutput {
        self.topo.run("client", argv).expect("command in client")
    }
}

/// Waits until `needle` appears in the process's log (panics with the log
/// after `timeout` or if the process exits).
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn ping(setup: &Setup, target: &str) -> ethergate_netns::CommandOutput {
    setup.client_sh(&["ping", "-c", "3", "-i", "0.2", "-W", "2", target])
}

#[test]
fn dhcp_over_the_tunnel_installs_routes_and_reaches_the_web_server() {
    let setup = Setup::new();
    let mut client = setup.client(&["--dhcp"]);
    wait_for(
        &mut client,
        "DHCP: route installed",
        Duration::from_secs(20),
    );
    let log = client.log();
    assert!(
        log.contains("fingerprint is now recorded"),
        "first use records the server:\n{log}"
    );

    let addr = setup.client_sh(&["ip", "-4", "addr", "show", TAP]).stdout;
    assert!(
        addr.contains("inet 192.168.30.") && addr.contains("/24"),
        "no lease on {TAP}: {addr}\n{log}"
    );
    let routes = setup.client_sh(&["ip", "-4", "route", "show"]).stdout;
    assert!(
        routes.contains(&format!(
            "10.0.0.0/16 via 192.168.30.1 dev {TAP} proto dhcp"
        )),
        "pushed route missing: {routes}"
    );
    assert!(
        !routes.contains("default"),
        "no router configured: no default route: {routes}"
    );
    let out = ping(&setup, "192.168.30.1");
    assert!(
        out.success,
        "ping through the tunnel: {}\n{log}",
        out.stdout
    );
    let page = setup.client_sh(&["curl", "-sS", "--max-time", "10", "http://10.0.1.26/"]);
    assert_eq!(
        page.stdout,
        PAGE,
        "curl: {}\nserver:\n{}",
        page.stderr,
        setup.server_log()
    );

    assert_eq!(client.stop(), Some(0), "{}", client.log());
    let log = client.log();
    assert!(log.contains("DHCP: releasing the lease"), "{log}");
    // The tap, its address and routes leave with the client.
    let links = setup.client_sh(&["ip", "link", "show"]).stdout;
    assert!(!links.contains(TAP), "{links}");
}

#[test]
fn static_address_pings_the_hub_bridge_and_pinned_certificate_is_accepted() {
    let setup = Setup::new();
    // The server generated its certificate into state_dir at start.
    let cert = setup.state.join("tls-cert.pem");
    assert!(
        cert.exists(),
        "no generated certificate at {}",
        cert.display()
    );
    let cert_arg = cert.display().to_string();
    let mut client = setup.client(&["--address", "192.168.30.250/24", "--ca-cert", &cert_arg]);
    wait_for(&mut client, "session established", Duration::from_secs(20));
    assert!(!client.log().contains("recorded"), "{}", client.log());
    assert!(!setup.known_servers.exists(), "--ca-cert records nothing");
    let out = ping(&setup, "192.168.30.1");
    assert!(
        out.success,
        "ping: {}\nclient:\n{}\nserver:\n{}",
        out.stdout,
        client.log(),
        setup.server_log()
    );
    // 64 MiB uploaded through the client's tunnel. Not a speed check: the
    // 60 s bound is ~20× what a debug build needs; it catches a writer that
    // loses batch tails (rustls's 64 KiB buffer once cut them, and the
    // upload crawled at 5 Mbit/s on retransmits).
    let mut iperf = setup
        .topo
        .spawn("nat", &["iperf3", "-s", "-1", "-B", "192.168.30.1"])
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    let upload = setup.client_sh(&["timeout", "60", "iperf3", "-c", "192.168.30.1", "-n", "64M"]);
    assert!(
        upload.success,
        "64 MiB upload: {}{}\nclient:\n{}",
        upload.stdout,
        upload.stderr,
        client.log()
    );
    let _ = iperf.stop();
    // The upload's segments reached the tap merged into GSO frames: far
    // fewer write(2) calls than frames. (A count, not a speed.)
    let hub = &setup.status()["hubs"][0];
    assert_eq!(hub["tap_offload"], true, "{hub:#}");
    let frames = hub["to_bridge"]["frames"].as_u64().unwrap_or(0);
    let writes = hub["bridge_writes"].as_u64().unwrap_or(u64::MAX);
    eprintln!("64 MiB upload: {frames} frames to the bridge in {writes} tap writes");
    assert!(
        frames > 40_000 && writes * 2 < frames,
        "64 MiB upload: {frames} frames to the bridge in {writes} writes: {hub:#}"
    );
    // And 64 MiB downloaded: the client's ACKs come back through the hub,
    // and of those that arrive back to back only the newest of each flow
    // is written to the tap.
    let mut iperf = setup
        .topo
        .spawn("nat", &["iperf3", "-s", "-1", "-B", "192.168.30.1"])
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    let download = setup.client_sh(&[
        "timeout",
        "60",
        "iperf3",
        "-c",
        "192.168.30.1",
        "-R",
        "-n",
        "64M",
    ]);
    assert!(
        download.success,
        "64 MiB download: {}{}\nclient:\n{}",
        download.stdout,
        download.stderr,
        client.log()
    );
    let _ = iperf.stop();
    let hub = &setup.status()["hubs"][0];
    let acks = hub["to_bridge"]["frames"].as_u64().unwrap_or(0) - frames;
    let thinned = hub["tcp_acks_thinned"].as_u64().unwrap_or(0);
    eprintln!("64 MiB download: {acks} frames to the bridge, {thinned} ACKs thinned");
    assert!(thinned > 0, "no ACK thinned in a 64 MiB download: {hub:#}");
    // The client cuts its tap's TSO super-frames into frames and merges
    // the server's frames into GSO frames for its tap; the kernel trusts
    // both, so a cutting or merging mistake would show as a different
    // hash, not as a drop.
    assert!(
        client.log().contains("offload=true"),
        "the client's tap runs without offload: {}",
        client.log()
    );
    // IPv6 too (TCPv6 super-frames and merges), between the two taps'
    // link-local addresses: the hub switches IPv6 and its neighbour
    // discovery like any other frames.
    let hub_v6 = link_local(&setup, "nat", "tap_00");
    let client_v6 = link_local(&setup, "client", TAP);
    let transfers = [
        (
            ("client", "nat"),
            ["192.168.30.1".into(), "192.168.30.1".into()],
            0x9e37_79b1,
        ),
        (
            ("nat", "client"),
            ["192.168.30.250".into(), "192.168.30.250".into()],
            0x85eb_ca77,
        ),
        (
            ("client", "nat"),
            [format!("{hub_v6}%tap_00"), format!("{hub_v6}%{TAP}")],
            0xc2b2_ae3d,
        ),
        (
            ("nat", "client"),
            [format!("{client_v6}%{TAP}"), format!("{client_v6}%tap_00")],
            0x27d4_eb2f,
        ),
    ];
    for (ends, [listen, connect], seed) in transfers {
        transfer_whole(&setup, &client, ends, [&listen, &connect], seed);
    }
    assert_eq!(client.stop(), Some(0), "{}", client.log());
}

/// The client's session as the server's status shows it.
fn udp_session(setup: &Setup) -> serde_json::Value {
    let status = setup.status();
    let session = status["sessions"][0].clone();
    assert!(
        session["udp_acceleration"].is_object(),
        "the client's session was not granted UDP acceleration: {status:#}"
    );
    session
}

fn udp_counter(session: &serde_json::Value, name: &str) -> u64 {
    session["udp_acceleration"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name}: {session:#}"))
}

/// Pings through the tunnel until the client's log has said `line`
/// `times` times and the server's `sending_by_udp` reads `udp`.
fn ping_until(setup: &Setup, client: &Process, line: &str, times: usize, udp: bool) {
    // The path needs a few keep-alive rounds (while it is lost each side
    // sends one every ~3 s), then ten seconds on each side without a gap
    // longer than the 2.1-s dead time; on a loaded machine a late
    // keep-alive restarts that period. Measured: 14 s to heal (15–47 s
    // before either side answered a quiet path's first datagram at once).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let _ = ping(setup, "192.168.30.1");
        let session = udp_session(setup);
        if count(&client.log(), line) >= times
            && session["udp_acceleration"]["sending_by_udp"].as_bool() == Some(udp)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {line:?} ×{times} and sending_by_udp = {udp}: {session:#}\nclient:\n{}",
            client.log()
        );
    }
}

/// UDP acceleration from `ethergate client`, as its users get it by
/// default: after the path has worked both ways for ten seconds, both
/// sides send frames by UDP (16 MiB each way, checked by SHA-256, nearly
/// all of it by UDP); when UDP stops getting through, frames go back into
/// the TLS connection and a transfer still arrives whole; when UDP heals,
/// frames move back to it.
#[test]
fn udp_acceleration_carries_the_frames_and_falls_back_to_tls() {
    const ON_UDP: &str = "UDP acceleration: frames go by UDP";
    const ON_TLS: &str = "UDP acceleration: the UDP path stopped working";
    let setup = Setup::new();
    let mut client = setup.client(&["--address", "192.168.30.250/24"]);
    wait_for(
        &mut client,
        "UDP acceleration granted",
        Duration::from_secs(20),
    );
    ping_until(&setup, &client, ON_UDP, 1, true);

    let transfer = |ends, ips, seed| transfer_whole(&setup, &client, ends, ips, seed);
    let before = udp_session(&setup);
    transfer(("client", "nat"), ["192.168.30.1"; 2], 0x9e37_79b1);
    transfer(("nat", "client"), ["192.168.30.250"; 2], 0x85eb_ca77);
    let after = udp_session(&setup);
    let delta = |name| udp_counter(&after, name) - udp_counter(&before, name);
    let (by_udp_in, by_udp_out) = (delta("frames_received"), delta("frames_sent"));
    let received = after["received"]["frames"].as_u64().unwrap_or(0)
        - before["received"]["frames"].as_u64().unwrap_or(0);
    eprintln!(
        "16 MiB each way: {by_udp_in} frames from the client by UDP of {received}, {by_udp_out} to it by UDP"
    );
    // 16 MiB in ~1400-byte frames is about 12,000 frames each way.
    assert!(
        by_udp_in > 10_000 && by_udp_out > 10_000,
        "{before:#} → {after:#}"
    );

    // UDP stops getting through (both ways, in the client's namespace):
    // the client falls back to TLS within its dead time, and a transfer
    // arrives whole meanwhile.
    let rules = setup.state.join("no-udp.nft");
    std::fs::write(
        &rules,
        "table inet noudp {\n chain input {\n  type filter hook input priority 0; policy accept;\n  \
         udp sport 443 drop\n }\n chain output {\n  type filter hook output priority 0; policy accept;\n  \
         udp dport 443 drop\n }\n}\n",
    )
    .expect("ruleset");
    setup
        .topo
        .exec("client", &["nft", "-f", &rules.display().to_string()])
        .expect("nft");
    let blocked = Instant::now();
    ping_until(&setup, &client, ON_TLS, 1, false);
    eprintln!("UDP blocked: back on TLS after {:?}", blocked.elapsed());
    transfer(("client", "nat"), ["192.168.30.1"; 2], 0xc2b2_ae3d);

    // UDP heals: frames move back to it.
    setup
        .topo
        .exec("client", &["nft", "delete", "table", "inet", "noudp"])
        .expect("nft delete");
    let healed = Instant::now();
    ping_until(&setup, &client, ON_UDP, 2, true);
    eprintln!("UDP healed: back on UDP after {:?}", healed.elapsed());
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    assert!(
        client
            .log()
            .contains("UDP acceleration: totals of this session"),
        "{}",
        client.log()
    );
}

/// 16 MiB from `ends.0` to `ends.1` (listening on `listen`, connecting to
/// `connect`), which must arrive with the same SHA-256.
fn transfer_whole(
    setup: &Setup,
    client: &Process,
    ends: (&str, &str),
    [listen, connect]: [&str; 2],
    seed: u32,
) {
    let t = common::sha256_transfer(&setup.topo, &setup.state, ends, (listen, connect), seed);
    assert_eq!(
        t.received,
        t.sent,
        "{}\nclient:\n{}",
        t.detail,
        client.log()
    );
}

/// The IPv6 link-local address of `dev` in `ns`, once duplicate address
/// detection has let it be used (panics after 10 s).
fn link_local(setup: &Setup, ns: &str, dev: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = setup
            .topo
            .run(
                ns,
                &[
                    "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
                ],
            )
            .expect("ip -6 addr");
        let address = out
            .stdout
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .map(str::to_owned);
        match address {
            Some(a) if !out.stdout.contains("tentative") => return a,
            _ if Instant::now() > deadline => {
                panic!(
                    "{ns}/{dev} has no usable link-local address: {}",
                    out.stdout
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn a_certificate_not_in_ca_cert_is_refused_with_exit_1() {
    let setup = Setup::new();
    let other = setup.state.join("other.pem");
    let key = setup.state.join("other.key");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=other", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let other_arg = other.display().to_string();
    let mut client = setup.client(&["--address", "192.168.30.250/24", "--ca-cert", &other_arg]);
    let code = client.wait_timeout(Duration::from_secs(20));
    let log = client.log();
    assert_eq!(code, Some(Some(1)), "{log}");
    assert!(log.contains("certificate was rejected"), "{log}");
}

fn refused(setup: &Setup, extra: &[&str], password: &str) -> (Option<Option<i32>>, String) {
    std::fs::write(&setup.password_file, format!("{password}\n")).expect("password file");
    let mut client = setup.client(extra);
    let code = client.wait_timeout(Duration::from_secs(20));
    (code, client.log())
}

#[test]
fn wrong_password_and_unknown_hub_exit_1_and_the_server_stays_healthy() {
    let mut setup = Setup::new();
    let (code, log) = refused(&setup, &[], "not-the-password");
    assert_eq!(code, Some(Some(1)), "{log}");
    assert!(
        log.contains("wrong password") && log.contains("ERR_AUTH_FAILED (9)"),
        "{log}"
    );
    let password = setup.password_file.display().to_string();
    std::fs::write(&setup.password_file, format!("{PASSWORD}\n")).expect("password file");
    let known_servers = setup.known_servers.display().to_string();
    let mut argv = common::client_argv(SERVER, "nohub", "tsumura", &password);
    argv.extend_from_slice(&["--known-servers", &known_servers]);
    let mut client = setup.topo.spawn("client", &argv).expect("client");
    let code = client.wait_timeout(Duration::from_secs(20));
    let log = client.log();
    assert_eq!(code, Some(Some(1)), "{log}");
    assert!(log.contains("ERR_HUB_NOT_FOUND (8)"), "{log}");
    // The server is still fine: a correct login works.
    let mut ok = setup.client(&["--dhcp"]);
    wait_for(&mut ok, "DHCP: lease acquired", Duration::from_secs(20));
    assert!(setup.serve.as_mut().is_some_and(Process::is_running));
}

#[test]
fn reconnects_by_itself_after_a_server_restart() {
    let mut setup = Setup::new();
    let mut client = setup.client(&["--dhcp"]);
    wait_for(
        &mut client,
        "DHCP: route installed",
        Duration::from_secs(20),
    );
    let before = setup.client_sh(&["ip", "-4", "addr", "show", TAP]).stdout;
    if let Some(mut serve) = setup.serve.take() {
        assert_eq!(serve.stop(), Some(0), "{}", serve.log());
    }
    wait_for(&mut client, "reconnecting in", Duration::from_secs(30));
    setup.start_server();
    // Back within the backoff (≤ a few seconds after a fresh failure).
    let deadline = Instant::now() + Duration::from_secs(40);
    while count(&client.log(), "session established") < 2 {
        assert!(
            Instant::now() < deadline,
            "no reconnect:\n{}\nserver:\n{}",
            client.log(),
            setup.server_log()
        );
        assert!(client.is_running(), "{}", client.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The tap and its address survived the outage.
    let after = setup.client_sh(&["ip", "-4", "addr", "show", TAP]).stdout;
    let inet = |s: &str| s.lines().find(|l| l.contains("inet ")).map(str::to_owned);
    assert_eq!(inet(&before), inet(&after), "{after}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if ping(&setup, "192.168.30.1").success {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ping after reconnect:\n{}",
            client.log()
        );
    }
    assert_eq!(client.stop(), Some(0), "{}", client.log());
}

/// The SHA-256 fingerprint of a PEM certificate as openssl computes it, in
/// the known-servers file's `sha256:hex` form.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "sha256 Fingerprint=AB:CD:…"
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, hex) = text.trim().rsplit_once('=').expect("openssl fingerprint");
    format!("sha256:{}", hex.replace(':', "").to_ascii_lowercase())
}

/// The known-servers file's entries (comments left out).
fn entries(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .expect("known-servers file")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn trust_on_first_use_records_the_server_and_refuses_a_changed_certificate() {
    let mut setup = Setup::new();
    let file = setup.known_servers.display().to_string();
    let cert = setup.state.join("tls-cert.pem");
    let key = setup.state.join("tls-key.pem");
    let first = openssl_fingerprint(&cert);

    // First connection: the fingerprint is recorded, said once in the log,
    // and the session works.
    let mut client = setup.client(&["--address", "192.168.30.250/24"]);
    wait_for(&mut client, "session established", Duration::from_secs(20));
    let log = client.log();
    assert_eq!(count(&log, "fingerprint is now recorded"), 1, "{log}");
    let recorded_line = log
        .lines()
        .find(|l| l.contains("fingerprint is now recorded"))
        .unwrap_or_default();
    assert!(
        recorded_line.contains("INFO") && recorded_line.contains(&first),
        "{log}"
    );
    assert!(recorded_line.contains(&file), "{log}");
    let out = ping(&setup, "192.168.30.1");
    assert!(out.success, "ping: {}\n{log}", out.stdout);
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    let entry = format!("{SERVER} {first}");
    assert_eq!(entries(&setup.known_servers), std::slice::from_ref(&entry));
    let text = std::fs::read_to_string(&setup.known_servers).expect("file");
    let line = text
        .lines()
        .position(|l| l == entry)
        .map(|i| i + 1)
        .expect("entry line");
    let mode = std::fs::metadata(&setup.known_servers)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The server at the same address now has another certificate (a man
    // in the middle, as far as the client can tell): exit 1, no retry,
    // and a message with the server, both fingerprints, the file and the
    // line to delete.
    for path in [&cert, &key] {
        std::fs::rename(path, path.with_extension("first")).expect("set aside");
    }
    setup.restart_server();
    let second = openssl_fingerprint(&cert);
    assert_ne!(first, second, "serve generated a new certificate");
    let mut client = setup.client(&["--address", "192.168.30.250/24"]);
    let code = client.wait_timeout(Duration::from_secs(20));
    let log = client.log();
    eprintln!("ethergate client against a changed certificate:\n{log}");
    assert_eq!(code, Some(Some(1)), "{log}");
    for needle in [
        "198.51.100.1:443",
        "CHANGED",
        first.as_str(),
        second.as_str(),
        &format!("{file}:{line}"),
        &format!("delete line {line} of {file}"),
    ] {
        assert!(log.contains(needle), "{needle:?} missing:\n{log}");
    }
    assert!(!log.contains("reconnecting in"), "{log}");
    assert!(!log.contains("session established"), "{log}");
    assert_eq!(entries(&setup.known_servers), std::slice::from_ref(&entry));

    // --insecure still connects to it, and records nothing.
    let mut client = setup.client(&["--address", "192.168.30.250/24", "--insecure"]);
    wait_for(&mut client, "session established", Duration::from_secs(20));
    assert!(client.log().contains("--insecure"), "{}", client.log());
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    assert_eq!(entries(&setup.known_servers), std::slice::from_ref(&entry));

    // The original certificate back: connects again, silently.
    for path in [&cert, &key] {
        std::fs::rename(path.with_extension("first"), path).expect("restore");
    }
    setup.restart_server();
    assert_eq!(openssl_fingerprint(&cert), first);
    let mut client = setup.client(&["--address", "192.168.30.250/24"]);
    wait_for(&mut client, "session established", Duration::from_secs(20));
    let log = client.log();
    assert!(
        !log.contains("recorded") && !log.contains("CHANGED"),
        "{log}"
    );
    let out = ping(&setup, "192.168.30.1");
    assert!(out.success, "ping: {}\n{log}", out.stdout);
    assert_eq!(client.stop(), Some(0), "{}", client.log());
    assert_eq!(entries(&setup.known_servers), [entry]);
}

#[test]
fn without_a_home_the_client_asks_for_a_certificate_choice() {
    // Fails before any network use: no namespace needed.
    let out = std::process::Command::new(BIN)
        .args(["client", "--server", SERVER, "--hub", "mikalab"])
        .args(["--user", "tsumura", "--password-file", "/nonexistent"])
        .env_remove("HOME")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("ethergate client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--known-servers FILE, --ca-cert PEM or --insecure"),
        "{stderr}"
    );
}
