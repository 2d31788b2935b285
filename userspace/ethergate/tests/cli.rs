//! The `ethergate` binary as users run it: `check` exit codes and messages,
//! `user hash`, and `serve` attached in a namespace, counting real pings and
//! stopping cleanly on SIGTERM. Needs root for `serve`.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use ethergate_netns::{Endpoint, Topology};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ethergate");

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("ethergate-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(BIN)
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/ethergate.toml"),
        ])
        .output()
        .expect("run ethergate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_rejects_a_bad_config_with_line_and_reason() {
    let path = write_config(
        "bad",
        "[server]\nlisten = [\"0.0.0.0:443\"]\nbogus = 1\n\n[nat]\nuplink = \"this-name-is-too-long\"\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run ethergate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:3")),
        "unknown key on line 3: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:6")),
        "bad uplink on line 6: {stderr}"
    );
    let _ = std::fs::remove_file(path);
}

/// A preshared key file serve has yet to generate is a note; one that
/// holds no key fails the check with the file's name.
#[test]
fn check_reads_preshared_key_files() {
    let state = std::env::temp_dir().join(format!("ethergate-cli-{}-psk", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let text = format!(
        "{}\n[hub.wireguard]\nlisten = \"0.0.0.0:51820\"\n\n[[hub.user]]\nname = \"phone\"\n\
         wireguard_public_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\n\
         wireguard_preshared_key_file = \"phone.psk\"\n",
        ethergate_config::DEFAULT_CONFIG.replace(
            "state_dir = \"/var/lib/ethergate\"",
            &format!("state_dir = \"{}\"", state.display())
        )
    );
    assert!(text.contains(&state.display().to_string()), "state_dir set");
    let path = write_config("psk", &text);
    let check = || {
        Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run ethergate")
    };
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("user \"phone\"")
            && stdout.contains(
                "phone.psk does not exist yet; serve generates a WireGuard \
                                preshared key into it"
            ),
        "{stdout}"
    );
    std::fs::write(state.join("phone.psk"), "not a key\n").expect("bad key");
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("wireguard_preshared_key_file") && stderr.contains("phone.psk"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(&state);
}

/// `user add --wireguard` writes a new preshared key file per device and
/// never overwrites one (a removed user's file stays as it was, and `del`
/// says so); the printed config carries the key; `--no-preshared-key`
/// leaves it out.
#[test]
fn user_add_wireguard_writes_a_new_preshared_key_file_each_time() {
    let state = std::env::temp_dir().join(format!("ethergate-cli-{}-wgadd", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let text = format!(
        "{}\n[hub.wireguard]\nlisten = \"0.0.0.0:51820\"\n",
        ethergate_config::DEFAULT_CONFIG
            .replace(
                "state_dir = \"/var/lib/ethergate\"",
                &format!("state_dir = \"{}\"", state.display())
            )
            .replace(
                "admin_socket = \"/run/ethergate/admin.sock\"",
                &format!("admin_socket = \"{}/admin.sock\"", state.display())
            )
    );
    assert!(text.contains(&format!("{}/admin.sock", state.display())));
    let config = state.join("ethergate.toml");
    std::fs::write(&config, text).expect("config");
    let config_arg = config.display().to_string();
    let user = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("user")
            .args(args)
            .args(["--config", &config_arg, "--hub", "mikalab"])
            .output()
            .expect("run ethergate");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["add", name, "--wireguard", "--endpoint", "192.0.2.1:51820"];
        args.extend_from_slice(extra);
        user(&args)
    };
    let psk_in = |printed: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix("PresharedKey = "))
            .map(str::to_owned)
    };

    let first = add("phone", &[]);
    let first_key = psk_in(&first).expect("PresharedKey printed");
    let first_file = state.join("wireguard-mikalab-phone.psk");
    assert_eq!(
        std::fs::read_to_string(&first_file).expect("key file"),
        format!("{first_key}\n")
    );

    let deleted = user(&["del", "phone"]);
    assert!(
        deleted.contains(&format!(
            "note: {} (the user's wireguard_preshared_key_file) is no longer read",
            first_file.display()
        )),
        "{deleted}"
    );
    let second = add("phone", &[]);
    let second_key = psk_in(&second).expect("PresharedKey printed");
    assert_ne!(first_key, second_key, "a new key for a new device");
    assert_eq!(
        std::fs::read_to_string(&first_file).expect("still there"),
        format!("{first_key}\n"),
        "the old file is not overwritten"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("wireguard-mikalab-phone-2.psk")).expect("key file"),
        format!("{second_key}\n")
    );
    let printed = user(&["wg-config", "phone", "--endpoint", "192.0.2.1:51820"]);
    assert_eq!(psk_in(&printed), Some(second_key));

    let laptop = add("laptop", &["--no-preshared-key"]);
    assert_eq!(psk_in(&laptop), None, "{laptop}");
    let text = std::fs::read_to_string(&config).expect("config");
    assert_eq!(
        text.matches("wireguard_preshared_key_file").count(),
        1,
        "only the phone has one: {text}"
    );
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn check_on_a_missing_file_is_a_user_error() {
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/ethergate.toml"])
        .output()
        .expect("run ethergate");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ethergate.toml"));
}

#[test]
fn user_hash_prints_softethers_stored_form() {
    let mut child = Command::new(BIN)
        .args(["user", "hash", "--user", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ethergate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"secret\n")
        .expect("write password");
    let out = child.wait_with_output().expect("wait");
    // softether-protocol.md §4.2: the real server's stored AuthPassword.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "DngtrNt4kY1zAHmZ2oG8QIkG1FE="
    );
}

fn serve_config(uplink: &str) -> String {
    // XDP forced: the uplink program's per-class counters are what this
    // test reads (auto mode runs tc on a veth).
    format!("[server]\nstate_dir = \"/tmp\"\n\n[nat]\nuplink = \"{uplink}\"\nmode = \"xdp\"\n")
}

#[test]
fn serve_counts_real_traffic_and_stops_on_sigterm() {
    let topo = Topology::builder()
        .namespace("client")
        .namespace("nat")
        .veth(
            Endpoint::new("client", "eth0", &["198.51.100.2/24"]),
            Endpoint::new("nat", "up0", &["198.51.100.1/24"]),
        )
        .build()
        .expect("topology (run as root)");
    let config = write_config("serve", &serve_config("up0"));
    let config_arg = config.display().to_string();
    common::mount_pin_base();
    let mut serve = topo
        .spawn("nat", &[BIN, "serve", "--config", &config_arg])
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !serve.log().contains("attached") {
        assert!(serve.is_running(), "serve exited early:\n{}", serve.log());
        assert!(
            std::time::Instant::now() < deadline,
            "no attach:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(serve.log().contains("xdp-native"), "{}", serve.log());
    topo.exec(
        "client",
        &["ping", "-c", "3", "-i", "0.1", "-W", "2", "198.51.100.1"],
    )
    .expect("ping nat");
    assert_eq!(serve.stop(), Some(0), "{}", serve.log());
    let log = serve.log();
    let icmp = log
        .lines()
        .rev()
        .find(|l| l.starts_with("icmp4 "))
        .unwrap_or_else(|| panic!("no icmp4 row:\n{log}"));
    let fields: Vec<&str> = icmp.split_whitespace().collect();
    assert_eq!(fields, ["icmp4", "pass", "3", "294"], "{log}");
    assert!(log.contains("stay attached"), "{log}");
    // The program stays on the interface after serve has exited, so that
    // flows survive a restart; `nat forget` takes it off.
    let link = topo.ip("nat", &["link", "show", "up0"]).expect("link");
    assert!(
        link.stdout.contains("xdp"),
        "XDP not kept attached: {}",
        link.stdout
    );
    let forget = topo
        .run("nat", &[BIN, "nat", "forget"])
        .expect("run nat forget");
    assert_eq!(forget.code, Some(0), "{}", forget.stderr);
    assert!(forget.stdout.contains("detached"), "{}", forget.stdout);
    let link = topo.ip("nat", &["link", "show", "up0"]).expect("link");
    assert!(
        !link.stdout.contains("xdp"),
        "XDP still attached after nat forget: {}",
        link.stdout
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn serve_with_a_missing_uplink_fails_with_exit_2() {
    let topo = Topology::builder()
        .namespace("nat")
        .build()
        .expect("topology (run as root)");
    let config = write_config("missing", &serve_config("nope0"));
    let config_arg = config.display().to_string();
    let out = topo
        .run("nat", &[BIN, "serve", "--config", &config_arg])
        .expect("run serve");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("nope0"), "{}", out.stderr);
    let _ = std::fs::remove_file(config);
}
