//! `ethergate client` against `ethergate serve`, both as users run them, in
//! the recipe's namespaces: `client (198.51.100.2) — nat (ethergate serve:
//! 198.51.100.1, tap_00 192.168.30.1/24, 10.0.0.1/16) — private (web server
//! 10.0.1.26:80)`. DHCP over the tunnel with classless routes, a static
//! address, clean stop with RELEASE, reconnect after a server restart, a
//! pinned certificate, and refused logins ending with exit 1.
//! Needs root; run with `--test-threads=1`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use ethergate_netns::{Process, Topology};

mod common;
use common::{BIN, PAGE, recipe_topology, start_serve, wait_for, web_server, write_recipe_config};

const SERVER: &str = "198.51.100.1:443";
const TAP: &str = "vpn_eg0";
const PASSWORD: &str = "mikalab-pass";

struct Setup {
    topo: Topology,
    serve: Option<Process>,
    _web: Process,
    state: PathBuf,
    config: PathBuf,
    password_file: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Setup {
    fn new() -> Setup {
        let topo = recipe_topology();
        let state = std::env::temp_dir().join(format!("{}-state", topo.prefix()));
        std::fs::create_dir_all(&state).expect("state dir");
        let config = write_recipe_config(&state, &format!("password = \"{PASSWORD}\""));
        let password_file = state.join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
        let web = web_server(&topo, &state);
        let mut setup = Setup {
            topo,
            serve: None,
            _web: web,
            state,
            config,
            password_file,
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

    fn client(&self, extra: &[&str]) -> Process {
        let password = self.password_file.display().to_string();
        let mut argv = vec![
            BIN,
            "client",
            "--server",
            SERVER,
            "--hub",
            "mikalab",
            "--user",
            "tsumura",
            "--password-file",
            &password,
        ];
        argv.extend_from_slice(extra);
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
    assert!(log.contains("NOT VERIFIED"), "default warns loudly:\n{log}");

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
    assert!(!client.log().contains("NOT VERIFIED"), "{}", client.log());
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
    assert_eq!(client.stop(), Some(0), "{}", client.log());
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
    let mut client = setup
        .topo
        .spawn(
            "client",
            &[
                BIN,
                "client",
                "--server",
                SERVER,
                "--hub",
                "nohub",
                "--user",
                "tsumura",
                "--password-file",
                &password,
            ],
        )
        .expect("client");
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
