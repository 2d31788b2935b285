//! `ethergate serve` the way deploy/systemd/ethergate.service runs it, as
//! far as a machine whose PID 1 is not systemd allows: a non-root user with
//! exactly the unit's capabilities (read from the unit file, as ambient
//! capabilities, with the bounding set cut to them and no-new-privs), the
//! NOTIFY_SOCKET / WATCHDOG_USEC protocol spoken to a real datagram socket,
//! and the recipe's NAT and VPN working: listeners, tap, eBPF programs
//! attached, a SoftEther client logging in and fetching the private page.
//! Needs root; run with `--test-threads=1`.

use std::{
    os::unix::{fs::PermissionsExt, net::UnixDatagram},
    path::PathBuf,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

mod common;
use common::{BIN, recipe_topology, web_server, write_recipe_config};

const UNIT: &str = include_str!("../../../deploy/systemd/ethergate.service");
/// `nobody`: a uid with no files and no privileges of its own.
const UNPRIVILEGED: &str = "65534";
const PASSWORD: &str = "unit-test-pass";

/// The values of a `Key=` line of the unit, split at spaces.
fn unit_values(key: &str) -> Vec<String> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

/// The kernel's capability numbers for the names the unit uses.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_ADMIN" => 12,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_ADMIN" => 21,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("add {other} to cap_bit"),
    }
}

/// A field of /proc/PID/status.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {field} in status"))
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn recv(socket: &UnixDatagram, timeout: Duration, log: &dyn Fn() -> String) -> String {
    socket.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 256];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no sd_notify message within {timeout:?} ({e}):\n{}", log()),
    }
}

#[test]
fn serve_runs_unprivileged_with_the_units_capabilities() {
    let caps = unit_values("AmbientCapabilities");
    assert_eq!(
        caps,
        unit_values("CapabilityBoundingSet"),
        "ambient and bounding sets differ"
    );
    assert!(UNIT.contains("Type=notify") && UNIT.contains("WatchdogSec="));
    let names: Vec<String> = caps
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    let plus = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("+{n}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let expected_mask: u64 = caps.iter().map(|c| 1u64 << cap_bit(c)).sum();

    let topo = recipe_topology();
    let scratch = Scratch(std::env::temp_dir().join(format!("{}-unit", topo.prefix())));
    let state = scratch.0.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    // The service user owns its state directory (StateDirectory=) and
    // nothing else.
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown state");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let hash_line = format!(
        "password_hash = \"{}\"",
        ethergate_config::PasswordHash::from_password("tsumura", PASSWORD).to_base64()
    );
    let config = write_recipe_config(&state, &hash_line);
    // The NAT part of the recipe, so the eBPF programs are loaded and
    // attached, not only verified.
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "\n[nat]\nuplink = \"eth0\"\n\n[[nat.snat]]\nsource = \"10.0.0.0/16\"\nto = \"masquerade\"\n",
    );
    std::fs::write(&config, text).expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    // ExecStartPre=+sysctl: done with full privileges, as systemd would.
    topo.exec("nat", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        .expect("ip_forward");
    // ExecStartPre=-+ mounting the bpffs for pinned NAT state, owned by the
    // service user: the unit's own script, for this test's user.
    let script = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStartPre=-+/bin/sh -c '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the unit mounts the NAT state's bpffs")
        .replace(
            "ethergate:ethergate",
            &format!("{UNPRIVILEGED}:{UNPRIVILEGED}"),
        );
    let mounted = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .expect("sh");
    assert!(mounted.success(), "{script}");
    // State left by an earlier namespace that had this one's inode, pinned
    // by a serve that ran as root: the service user cannot remove it. It
    // must neither stop the NAT state from being pinned nor be adopted.
    let inode = topo
        .exec("nat", &["stat", "-L", "-c", "%i", "/proc/self/ns/net"])
        .expect("namespace inode")
        .stdout
        .trim()
        .to_owned();
    let stale =
        std::path::Path::new(ethergate_dataplane::PIN_BASE).join(format!("netns-{inode}-1"));
    std::fs::create_dir_all(stale.join("links/eth0")).expect("stale state");
    struct RemoveStale(std::path::PathBuf);
    impl Drop for RemoveStale {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(self.0.join("links/eth0"));
            let _ = std::fs::remove_dir(self.0.join("links"));
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _stale = RemoveStale(stale);

    let notify_path = scratch.0.join("notify.sock");
    let systemd = UnixDatagram::bind(&notify_path).expect("notify socket");
    // The service user must be able to send to it.
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let notify_env = format!("NOTIFY_SOCKET={}", notify_path.display());
    let _web = web_server(&topo, &scratch.0);

    // Distributions give /dev/net/tun mode 0666 (systemd's udev rule
    // 50-udev-default.rules); this machine has no udev and leaves it 0600.
    // Do what udev would, in a private mount namespace only: a 0666 node
    // bound over /dev/net/tun for serve alone.
    let tun = scratch.0.join("tun");
    let tun_arg = tun.display().to_string();
    topo.exec("nat", &["mknod", "-m", "0666", &tun_arg, "c", "10", "200"])
        .expect("mknod");
    let bind_tun = format!("mount --bind {tun_arg} /dev/net/tun && exec \"$@\"");
    let inh = format!("-all,{}", plus(&names));
    let bounding = format!("-all,{}", plus(&names));
    let config_arg = config.display().to_string();
    let argv = ethergate_netns::with_private_mounts(&[
        "sh",
        "-c",
        &bind_tun,
        "sh",
        "env",
        &notify_env,
        // 2 s: pings every second.
        "WATCHDOG_USEC=2000000",
        "setpriv",
        "--reuid",
        UNPRIVILEGED,
        "--regid",
        UNPRIVILEGED,
        "--clear-groups",
        "--inh-caps",
        &inh,
        "--ambient-caps",
        &inh,
        "--bounding-set",
        &bounding,
        "--no-new-privs",
        "--",
        BIN,
        "serve",
        "--config",
        &config_arg,
    ]);
    let mut serve = topo.spawn("nat", &argv).expect("spawn serve");
    let log = {
        let path = serve.log_path().to_owned();
        move || std::fs::read_to_string(&path).unwrap_or_default()
    };

    // READY=1 within 30 s; a serve that exits first fails at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    let ready = loop {
        if let Ok(n) = systemd.recv(&mut buf) {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(
            serve.is_running(),
            "serve exited before READY=1:\n{}",
            log()
        );
        assert!(
            Instant::now() < deadline,
            "no READY=1 within 30 s:\n{}",
            log()
        );
    };
    assert_eq!(ready, "READY=1\nSTATUS=running");
    let pid = serve.pid();
    assert_eq!(
        status_field(pid, "Uid").split_whitespace().next(),
        Some(UNPRIVILEGED)
    );
    // Started with exactly the unit's capabilities (it could not have
    // loaded, bound and verified otherwise); once running, the main thread
    // keeps only CAP_NET_ADMIN and CAP_BPF, and drops the rest for good.
    let effective = u64::from_str_radix(&status_field(pid, "CapEff"), 16).expect("CapEff");
    let permitted = u64::from_str_radix(&status_field(pid, "CapPrm"), 16).expect("CapPrm");
    let control = (1u64 << cap_bit("CAP_NET_ADMIN")) | (1u64 << cap_bit("CAP_BPF"));
    assert_eq!(effective & !expected_mask, 0, "nothing beyond the unit's");
    assert_eq!(effective, control, "the control capabilities only");
    assert_eq!(permitted, control, "dropped for good");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    let started = log();
    for line in [
        "eBPF programs loaded",
        "NAT data plane attached",
        "VPN listeners up",
        "hub up",
    ] {
        assert!(started.contains(line), "{line:?} missing:\n{started}");
    }
    // Auto mode on a veth: tc, said with the reason; and the NAT state is
    // pinned where the unit's mount put it.
    assert!(started.contains("mode=\"tc\""), "{started}");
    assert!(
        started.contains("NAT state: no previous NAT state"),
        "{started}"
    );
    assert!(
        started.contains("cannot remove an earlier namespace's NAT state (it stays unused)"),
        "{started}"
    );
    topo.ip("nat", &["link", "show", "tap_00"])
        .expect("tap_00 exists");
    // Two pings, about a second apart.
    assert_eq!(recv(&systemd, Duration::from_secs(5), &log), "WATCHDOG=1");
    assert_eq!(recv(&systemd, Duration::from_secs(5), &log), "WATCHDOG=1");

    let client = common::vpnclient_fetches_the_page(&topo, PASSWORD, &log);
    drop(client);

    serve.signal(Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let msg = recv(&systemd, Duration::from_secs(15), &log);
        if msg == "STOPPING=1" {
            break;
        }
        assert_eq!(msg, "WATCHDOG=1", "unexpected message");
        assert!(Instant::now() < deadline, "no STOPPING=1");
    }
    assert_eq!(
        serve.wait_timeout(Duration::from_secs(15)),
        Some(Some(0)),
        "serve did not exit cleanly:\n{}",
        log()
    );
}
