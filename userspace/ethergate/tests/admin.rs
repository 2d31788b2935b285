//! The operator surface of a running `ethergate serve`, used as operators
//! use it: `ethergate status` (text and JSON), `ethergate reload` and
//! SIGHUP (accepted, refused for a bad file with its line, refused for a
//! restart-only change), `ethergate session disconnect`, and the metrics
//! endpoint (`/metrics`, `/healthz`, `/readyz`) — with real sessions from
//! `ethergate client` in the recipe's namespaces.
//! Needs root; run with `--test-threads=1`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ethergate_netns::{Process, Topology, recipe};
use serde_json::Value;

mod common;
use common::{BIN, StateDir, start_serve, wait_for};

const SERVER: &str = "198.51.100.1:443";
const METRICS: &str = "127.0.0.1:9464";

struct Setup {
    topo: Topology,
    state: StateDir,
    config: PathBuf,
    socket: String,
}

impl Setup {
    fn new() -> Setup {
        let (topo, state, config) = common::recipe_files("admin", "password = \"first-pass\"");
        let socket = state.join("admin.sock").display().to_string();
        let setup = Setup {
            topo,
            state,
            config,
            socket,
        };
        setup.write_config(&[]);
        setup
    }

    /// The recipe config with the metrics endpoint on and the recipe's
    /// `[nat]` (so status has a data path to show), plus `extra` users.
    fn write_config(&self, extra_users: &[(&str, &str)]) {
        let mut text = std::fs::read_to_string(&self.config).expect("config");
        text = text.replace("metrics = \"off\"", &format!("metrics = \"{METRICS}\""));
        if !text.contains("[nat]") {
            text = text.replace("\n[[hub]]", &format!("{}\n[[hub]]", recipe::nat_config("")));
        }
        if let Some(cut) = text.find("\n[[hub.user]]\nname = \"second\"") {
            text.truncate(cut + 1);
        }
        for (name, password) in extra_users {
            text.push_str(&format!(
                "\n[[hub.user]]\nname = \"{name}\"\npassword = \"{password}\"\n"
            ));
        }
        std::fs::write(&self.config, text).expect("config");
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(BIN)
            .args(args)
            .args(["--socket", &self.socket])
            .output()
            .expect("ethergate cli")
    }

    fn status(&self) -> Value {
        common::status_json(&self.socket)
    }

    fn client(&self, user: &str, password: &str, tap: &str, address: &str) -> Process {
        let file = self.state.join(format!("{user}.password"));
        std::fs::write(&file, format!("{password}\n")).expect("password file");
        let file = file.display().to_string();
        // This test's own known-servers file: each run's server has a new
        // certificate at the same address.
        let known_servers = self.state.join("known_servers").display().to_string();
        let mut argv = common::client_argv(SERVER, "mikalab", user, &file);
        argv.extend_from_slice(&["--tap", tap, "--address", address]);
        argv.extend_from_slice(&["--known-servers", &known_servers]);
        self.topo.spawn("client", &argv).expect("ethergate client")
    }

    fn http(&self, path: &str) -> ethergate_netns::CommandOutput {
        let url = format!("http://{METRICS}{path}");
        self.topo
            .run("nat", &["curl", "-sS", "-i", "--max-time", "5", &url])
            .expect("curl in nat")
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sessions(status: &Value) -> Vec<Value> {
    status["sessions"].as_array().cloned().unwrap_or_default()
}

fn session_names(status: &Value) -> Vec<String> {
    sessions(status)
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

/// Polls `status` until `check` holds (the data path updates counters
/// asynchronously); panics with the last status after `timeout`.
fn wait_status(setup: &Setup, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let status = setup.status();
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached; last status:\n{status:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_reload_disconnect_and_metrics_on_a_live_appliance() {
    let setup = Setup::new();
    let mut serve = start_serve(&setup.topo, &setup.config);
    wait_for(
        &mut serve,
        "admin socket and metrics up",
        Duration::from_secs(10),
    );

    // A fresh appliance: ready, one hub, no session, its modes named.
    let status = setup.status();
    assert_eq!(status["hubs"][0]["name"], "mikalab", "{status:#}");
    assert_eq!(status["hubs"][0]["bridge"], "tap_00");
    assert!(sessions(&status).is_empty());
    assert!(
        status["ready"]["problems"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{status:#}"
    );
    assert!(
        !status["server"]["tls_mode"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );
    let attachments = status["nat"]["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        attachments
            .iter()
            .any(|a| a["interface"] == "eth0" && a["role"] == "uplink"),
        "uplink program in status: {status:#}"
    );
    assert!(
        attachments
            .iter()
            .any(|a| a["interface"] == "tap_00" && a["mode"] == "tc"),
        "hub tap's tc programs in status: {status:#}"
    );
    let text = setup.cli(&["status"]);
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert!(text_out.contains("mikalab on tap_00"), "{text_out}");
    assert!(text_out.contains("ready"), "{text_out}");

    // A session with traffic shows up with its user and counters.
    let mut first = setup.client("tsumura", "first-pass", "vpn_eg0", "192.168.30.250/24");
    wait_for(&mut first, "session established", Duration::from_secs(20));
    common::ping_tap(&setup.topo, "ping through the tunnel");
    let status = wait_status(&setup, Duration::from_secs(10), |s| {
        sessions(s)
            .first()
            .is_some_and(|x| x["received"]["frames"].as_u64() >= Some(3))
    });
    let session = &sessions(&status)[0];
    assert_eq!(session["user"], "tsumura", "{status:#}");
    assert!(
        session["client"]
            .as_str()
            .unwrap_or("")
            .starts_with("198.51.100.2:")
    );
    assert!(session["sent"]["frames"].as_u64() >= Some(3), "{status:#}");
    assert!(status["hubs"][0]["from_sessions"]["frames"].as_u64() >= Some(3));
    assert!(status["hubs"][0]["to_bridge"]["frames"].as_u64() >= Some(3));
    assert_eq!(status["server"]["logins_ok"], 1);
    let tls = &status["server"]["tls_connections"];
    assert!(
        tls["userspace"].as_u64().unwrap_or(0) + tls["kernel"].as_u64().unwrap_or(0) >= 1,
        "every connection is counted in a TLS mode: {status:#}"
    );
    let first_name = session["name"].as_str().expect("session name").to_owned();

    // A refused login is counted by reason.
    let mut wrong = setup.client("tsumura", "not-it", "vpn_eg9", "192.168.30.249/24");
    assert_eq!(wrong.wait_timeout(Duration::from_secs(20)), Some(Some(1)));
    let status = setup.status();
    assert_eq!(
        status["server"]["logins_failed"]["auth_failed"], 1,
        "{status:#}"
    );

    // Metrics and health on the configured address.
    let metrics = setup.http("/metrics");
    assert!(
        metrics.stdout.starts_with("HTTP/1.1 200"),
        "{}",
        metrics.stdout
    );
    for needle in [
        "ethergate_sessions{hub=\"mikalab\"} 1",
        "ethergate_logins_total 1",
        "ethergate_login_failures_total{reason=\"auth_failed\"} 1",
        "ethergate_ready 1",
        "ethergate_datapath_mode{interface=\"eth0\",role=\"uplink\"",
        "ethergate_nat_port_allocation_errors_total 0",
        "ethergate_hub_frames_total{hub=\"mikalab\",direction=\"from_sessions\"}",
    ] {
        assert!(
            metrics.stdout.contains(needle),
            "{needle} missing:\n{}",
            metrics.stdout
        );
    }
    for needle in [
        "ethergate_nat_flows_created_total{kind=\"snat\"}",
        "ethergate_nat_flows_expired_total 0",
        "ethergate_uplink_interface_bytes_total{interface=\"eth0\",direction=\"rx\"}",
        "ethergate_dhcp_pool_addresses{hub=\"mikalab\"} 191",
        "ethergate_tls_certificate_expiry_timestamp_seconds{",
        "ethergate_udp_acceleration_sessions{state=\"udp\"} 0",
    ] {
        assert!(
            metrics.stdout.contains(needle),
            "{needle} missing:\n{}",
            metrics.stdout
        );
    }
    promtool_accepts(&metrics.stdout);
    assert!(setup.http("/healthz").stdout.starts_with("HTTP/1.1 200"));
    assert!(setup.http("/readyz").stdout.contains("ready"));
    assert!(setup.http("/nope").stdout.starts_with("HTTP/1.1 404"));

    // Reload adds a user; the running session is untouched.
    setup.write_config(&[("second", "second-pass")]);
    let out = setup.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hub mikalab: user second added"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut second = setup.client("second", "second-pass", "vpn_eg1", "192.168.30.251/24");
    wait_for(&mut second, "session established", Duration::from_secs(20));
    let status = setup.status();
    assert!(session_names(&status).contains(&first_name), "{status:#}");
    assert_eq!(status["hubs"][0]["users"], 2);

    // A broken file is refused with its line; nothing changes.
    let good = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(
        &setup.config,
        format!("{good}\n[[hub.user]]\nname = \"x\"\nbogus = 1\n"),
    )
    .expect("config");
    let out = setup.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let why = stderr(&out);
    assert!(
        why.contains("ethergate.toml:") && why.contains("unknown key \"bogus\""),
        "the refusal names file, line and reason: {why}"
    );
    // So is a change that needs a restart, naming it.
    std::fs::write(
        &setup.config,
        good.replace("198.51.100.1:992", "198.51.100.1:993"),
    )
    .expect("config");
    let out = setup.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("listen"), "{}", stderr(&out));
    let status = setup.status();
    assert_eq!(status["config"]["reload_failures"], 2, "{status:#}");
    assert_eq!(sessions(&status).len(), 2, "{status:#}");

    // A valid reload that fails half-way changes nothing: user "second"
    // removed, the DHCP range changed and two hubs added, the second of
    // which cannot get its tap (the name is taken by another device).
    setup
        .topo
        .ip(
            "nat",
            &[
                "link", "add", "tap_09", "type", "veth", "peer", "name", "tap_09p",
            ],
        )
        .expect("a device in the way");
    let without_second = good
        .find("\n[[hub.user]]\nname = \"second\"")
        .map_or(good.as_str(), |cut| &good[..=cut]);
    let halfway = format!(
        "{}\n[[hub]]\nname = \"extra1\"\nbridge = \"tap_08\"\nbridge_address = \
         \"192.168.38.1/24\"\n\n[[hub]]\nname = \"extra2\"\nbridge = \"tap_09\"\n\
         bridge_address = \"192.168.39.1/24\"\n",
        without_second.replace("192.168.30.200", "192.168.30.150")
    );
    std::fs::write(&setup.config, &halfway).expect("config");
    let out = setup.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("extra2") && stderr(&out).contains("nothing applied"),
        "{}",
        stderr(&out)
    );
    let status = setup.status();
    assert_eq!(status["config"]["reload_failures"], 3, "{status:#}");
    assert_eq!(
        sessions(&status).len(),
        2,
        "user second was not removed: {status:#}"
    );
    assert_eq!(
        status["hubs"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );
    assert_eq!(status["hubs"][0]["users"], 2, "{status:#}");
    // Its thread closes the tap as it ends, which a reload does not wait for.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while setup.topo.ip("nat", &["link", "show", "tap_08"]).is_ok()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        setup.topo.ip("nat", &["link", "show", "tap_08"]).is_err(),
        "the hub added before the failure was taken down again"
    );
    setup
        .topo
        .ip("nat", &["link", "del", "tap_09"])
        .expect("remove the device");

    // SIGHUP with "second" removed: its session ends, the first stays.
    std::fs::write(&setup.config, &good).expect("config");
    setup.write_config(&[]);
    serve
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    let status = wait_status(&setup, Duration::from_secs(10), |s| {
        s["config"]["reloads"] == 2 && sessions(s).len() == 1
    });
    assert_eq!(session_names(&status), vec![first_name.clone()]);
    assert!(status["config"]["last_reload_error"].is_null());

    // An operator ends the first session by name.
    let out = setup.cli(&["session", "disconnect", &first_name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = setup.status();
    assert!(!session_names(&status).contains(&first_name), "{status:#}");
    // With a TLS close_notify before the FIN: after a bare FIN the
    // SoftEther client's automatic retry never recovers (decision 0002).
    wait_for(
        &mut first,
        "connection ended: the server closed TLS",
        Duration::from_secs(10),
    );
    let out = setup.cli(&["session", "disconnect", "SID-NOBODY-1"]);
    assert_eq!(out.status.code(), Some(1));

    drop(second);
    drop(first);
    assert_eq!(serve.stop(), Some(0), "{}", serve.log());
    assert!(
        !Path::new(&setup.socket).exists(),
        "admin socket left behind"
    );
    let out = setup.cli(&["status"]);
    assert_eq!(out.status.code(), Some(2), "no serve: runtime failure");
    assert!(stderr(&out).contains("admin socket"), "{}", stderr(&out));
}

/// `promtool check metrics` (Debian's prometheus package) finds no problem
/// in the exposition: names, types, HELP lines, label syntax and the
/// naming conventions (`_total` counters, base units).
fn promtool_accepts(response: &str) {
    use std::io::Write;
    let body = response
        .split_once("\r\n\r\n")
        .map_or(response, |(_, body)| body);
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
