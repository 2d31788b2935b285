//! The unit under a real systemd: a Debian 12 root provisioned by
//! deploy/provision.sh boots with systemd as PID 1 in systemd-nspawn, inside
//! the recipe topology's `nat` namespace. ethergate.service starts as
//! enabled — Type=notify (`Started` only after READY=1), as user
//! ethergate with the unit's capabilities, seccomp filter, address-family
//! and device restrictions — and a real SoftEther client logs in and fetches
//! the private page through it. `systemctl reload` applies a new user with
//! the session up and refuses a broken file (unit stays active). The
//! watchdog keeps it running (a drop-in shortens WatchdogSec to 3 s for the
//! test), and `systemctl stop` ends it cleanly.
//!
//! (PID 1 of this machine is not systemd, so `systemd-run` is unusable;
//! nspawn's booted container is the nearest real thing.) The container
//! gets CAP_BPF and CAP_PERFMON added to nspawn's default set, as a VM
//! would have them. Needs root, systemd-container, debootstrap.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

mod common;
mod debian;
use common::{recipe_topology, web_server};
use debian::{Chroot, run};

const PASSWORD: &str = "nspawn-pass";

/// The booted container; powered off (or killed) when dropped.
struct Container {
    nspawn: Child,
    machine: String,
    /// Files next to the root (device node, console log).
    leftovers: Vec<PathBuf>,
}

impl Container {
    /// PID of the container's systemd (nspawn's child).
    fn leader(&self) -> Option<u32> {
        let parent = self.nspawn.id();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
    }

    /// `argv` inside the container (all of its namespaces).
    fn exec(&self, argv: &[&str]) -> String {
        let Some(leader) = self.leader() else {
            return String::new();
        };
        let leader = leader.to_string();
        let mut full = vec!["nsenter", "--target", &leader, "--all"];
        full.extend_from_slice(argv);
        let out = Command::new(full[0])
            .args(&full[1..])
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Like [`Self::exec`], for the exit status.
    fn exec_status(&self, argv: &[&str]) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let leader = leader.to_string();
        let mut full = vec!["nsenter", "--target", &leader, "--all"];
        full.extend_from_slice(argv);
        Command::new(full[0])
            .args(&full[1..])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn show(&self, property: &str) -> String {
        self.exec(&["systemctl", "show", "ethergate", "-p", property, "--value"])
    }

    fn journal(&self) -> String {
        self.exec(&["journalctl", "-u", "ethergate", "--no-pager", "-o", "cat"])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.leader().is_some() {
            self.exec(&["systemctl", "poweroff"]);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.nspawn.try_wait() {
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
        for file in &self.leftovers {
            let _ = std::fs::remove_file(file);
        }
        // What nspawn leaves on the host for this machine.
        let _ = std::fs::remove_dir_all(format!("/run/systemd/nspawn/propagate/{}", self.machine));
    }
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} within {timeout:?}; journal:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn unit_runs_under_systemd_in_a_booted_debian_12() {
    assert!(
        std::path::Path::new("/usr/bin/systemd-nspawn").exists(),
        "systemd-nspawn missing: run `cargo xtask setup` (apt-get install systemd-container)"
    );
    let topo = recipe_topology();
    let root = Chroot::new("nspawn");
    root.provision();

    // The recipe as one file, as cloud-init would write it.
    let hash = ethergate_config::PasswordHash::from_password("tsumura", PASSWORD).to_base64();
    let config = format!(
        "[server]\nlisten = [\"198.51.100.1:443\"]\nmetrics = \"off\"\n\n\
         [[hub]]\nname = \"mikalab\"\nbridge = \"tap_00\"\nbridge_address = \"192.168.30.1/24\"\n\n\
         [hub.dhcp]\nrange = \"192.168.30.10-192.168.30.200\"\ndns = [\"192.168.30.1\"]\n\
         routes = [\"10.0.0.0/16 via 192.168.30.1\"]\n\n\
         [[hub.user]]\nname = \"tsumura\"\npassword_hash = \"{hash}\"\n\n\
         [nat]\nuplink = \"eth0\"\n\n[[nat.snat]]\nsource = \"10.0.0.0/16\"\nto = \"masquerade\"\n"
    );
    std::fs::write(root.path("/etc/ethergate/ethergate.toml"), config).expect("config");
    root.exec_ok(&["chown", "root:ethergate", "/etc/ethergate/ethergate.toml"]);
    let dropin = root.path("/etc/systemd/system/ethergate.service.d");
    std::fs::create_dir_all(&dropin).expect("drop-in dir");
    std::fs::write(dropin.join("test.conf"), "[Service]\nWatchdogSec=3s\n").expect("drop-in");
    // nspawn keeps /proc/sys read-only even for the container's root, so
    // the unit's ExecStartPre sysctl cannot write: set it from outside,
    // as /etc/sysctl.d would at boot on a VM.
    topo.exec("nat", &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        .expect("ip_forward");
    // What udev does on a VM: /dev/net/tun mode 0666 (this host has 0600).
    // Outside the root: nspawn mounts a tmpfs over the container's /tmp
    // before it binds.
    let tun: PathBuf = root.0.with_extension("tun");
    let tun_arg = tun.display().to_string();
    run(&["mknod", "-m", "0666", &tun_arg, "c", "10", "200"]);
    let _web = web_server(&topo, &root.0);

    let machine = format!("eg-nspawn-{}", std::process::id());
    let netns = format!("/run/netns/{}", topo.ns("nat").expect("nat ns"));
    let console_path = root.0.with_extension("console.log");
    let console = std::fs::File::create(&console_path).expect("console log");
    let nspawn = Command::new("systemd-nspawn")
        .args(["--quiet", "--register=no", "--keep-unit", "--boot"])
        .arg(format!("--machine={machine}"))
        .arg(format!("--directory={}", root.0.display()))
        .arg(format!("--network-namespace-path={netns}"))
        .arg("--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN")
        .arg("--system-call-filter=bpf")
        .arg(format!("--bind={tun_arg}:/dev/net/tun"))
        // The console: the boot messages, for failures.
        .arg("--console=pipe")
        .stdin(std::process::Stdio::null())
        .stdout(console.try_clone().expect("log"))
        .stderr(console)
        .spawn()
        .expect("systemd-nspawn");
    let container = Container {
        nspawn,
        machine,
        leftovers: vec![tun.clone(), console_path.clone()],
    };
    let journal = || {
        format!(
            "{}\nconsole:\n{}",
            container.journal(),
            std::fs::read_to_string(&console_path).unwrap_or_default()
        )
    };

    wait_until(
        "ethergate.service active",
        Duration::from_secs(60),
        || container.show("ActiveState") == "active",
        journal,
    );
    // Type=notify: systemd saw READY=1 (with its STATUS=) before "Started".
    assert_eq!(container.show("Type"), "notify");
    assert_eq!(container.show("StatusText"), "running");
    let pid = container.show("MainPID");
    let status = container.exec(&["cat", &format!("/proc/{pid}/status")]);
    let passwd = container.exec(&["getent", "passwd", "ethergate"]);
    let uid = passwd.split(':').nth(2).expect("uid");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid)),
        "not running as ethergate:\n{status}"
    );
    // The unit grants CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_PERFMON
    // and CAP_BPF; once running, the main thread keeps CAP_NET_ADMIN and
    // CAP_BPF only (binding and verifying are done).
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"));
    assert_eq!(cap_eff, Some((1 << 12) | (1 << 39)));
    assert!(
        status.contains("Seccomp:\t2"),
        "no seccomp filter:\n{status}"
    );

    let client = common::vpnclient_fetches_the_page(&topo, PASSWORD, journal);

    // systemctl reload (ExecReload=ethergate reload, as user ethergate over
    // the admin socket): a new user is applied with the session still up;
    // a broken file is refused, the unit stays active with the old config.
    let config_path = root.path("/etc/ethergate/ethergate.toml");
    let mut text = std::fs::read_to_string(&config_path).expect("config");
    text = text.replace(
        "[nat]",
        &format!("[[hub.user]]\nname = \"second\"\npassword_hash = \"{hash}\"\n\n[nat]"),
    );
    std::fs::write(&config_path, &text).expect("config");
    let reload = container.exec_status(&["systemctl", "reload", "ethergate"]);
    assert!(reload, "systemctl reload failed:\n{}", journal());
    assert!(journal().contains("config reloaded"), "{}", journal());
    assert!(
        client
            .account_status("acc")
            .expect("status")
            .is_established(),
        "the session did not survive the reload"
    );
    std::fs::write(&config_path, text.replace("[nat]", "[nat]\nbogus = 1")).expect("config");
    let refused = container.exec_status(&["systemctl", "reload", "ethergate"]);
    assert!(!refused, "a broken config must fail systemctl reload");
    assert_eq!(container.show("ActiveState"), "active", "{}", journal());
    // The reason, with file:line, is in the unit's journal.
    assert!(
        journal().contains("ethergate.toml:24: unknown key \"bogus\" in [nat]"),
        "{}",
        journal()
    );
    drop(client);

    // Several watchdog periods later: still the same process, never
    // restarted.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(container.show("NRestarts"), "0", "{}", journal());
    assert_eq!(container.show("MainPID"), pid, "{}", journal());
    assert_eq!(container.show("ActiveState"), "active");

    container.exec(&["systemctl", "stop", "ethergate"]);
    assert_eq!(container.show("ActiveState"), "inactive");
    assert_eq!(container.show("Result"), "success", "{}", journal());
    assert!(journal().contains("bye"), "{}", journal());
}
