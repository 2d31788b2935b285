//! The recipe's topology and appliance, shared by the end-to-end tests:
//! `client (198.51.100.2) — nat (ethergate serve: 198.51.100.1, tap_00
//! 192.168.30.1/24, 10.0.0.1/16) — private (web server 10.0.1.26:80)`.
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ethergate_netns::{Process, Topology, recipe};

pub const BIN: &str = env!("CARGO_BIN_EXE_ethergate");
pub const PAGE: &str = "private web server says hello\n";

/// The recipe's appliance config with password `mikalab-pass` for
/// tsumura, the recipe's `[nat]` and `extra` appended, in a fresh state directory
/// named after `topo`. Returns (state directory, config path).
pub fn recipe_config_with_nat(topo: &Topology, extra: &str) -> (PathBuf, PathBuf) {
    let state = std::env::temp_dir().join(format!("{}-state", topo.prefix()));
    std::fs::create_dir_all(&state).expect("state dir");
    let hash = password_hash("tsumura", "mikalab-pass");
    let config = write_recipe_config(&state, &format!("password_hash = \"{hash}\""));
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&recipe::nat_config(""));
    text.push_str(extra);
    std::fs::write(&config, text).expect("config with [nat]");
    (state, config)
}

/// A fresh state directory for `topo` (named with `suffix`) holding the
/// recipe config with `credential` for tsumura; returns it and the
/// config's path.
pub fn recipe_state(topo: &Topology, suffix: &str, credential: &str) -> (StateDir, PathBuf) {
    let state = StateDir::new(topo, suffix);
    let config = write_recipe_config(&state, credential);
    (state, config)
}

/// The recipe topology, built, with [`recipe_state`].
pub fn recipe_files(suffix: &str, credential: &str) -> (Topology, StateDir, PathBuf) {
    let topo = recipe_topology();
    let (state, config) = recipe_state(&topo, suffix, credential);
    (topo, state, config)
}

/// [`recipe_state`] with tsumura's password `mikalab-pass`, stored hashed.
pub fn recipe_state_hashed(topo: &Topology) -> (StateDir, PathBuf) {
    let hash = password_hash("tsumura", "mikalab-pass");
    recipe_state(topo, "state", &format!("password_hash = \"{hash}\""))
}

/// `ethergate client` logging in to `hub` at `server` as `user` with the
/// password in `password_file`; more options go after.
pub fn client_argv<'a>(
    server: &'a str,
    hub: &'a str,
    user: &'a str,
    password_file: &'a str,
) -> Vec<&'a str> {
    let login = [
        "--hub",
        hub,
        "--user",
        user,
        "--password-file",
        password_file,
    ];
    let mut argv = vec![BIN, "client", "--server", server];
    argv.extend_from_slice(&login);
    argv
}

/// Three pings from `client` to the hub's tap through the tunnel; panics
/// with `what` and ping's output unless all are answered.
pub fn ping_tap(topo: &Topology, what: &str) {
    let ping = topo
        .run(
            "client",
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", recipe::TAP_IP],
        )
        .expect("ping");
    assert!(ping.success, "{what}: {}", ping.stdout);
}

pub fn recipe_topology() -> Topology {
    recipe::topology(&[])
        .build()
        .expect("topology (run as root)")
}

/// `serve` on the recipe topology with password `mikalab-pass` for
/// tsumura, and the helper processes (web server, iperf3…) it was started
/// with. Its state directory goes when it is dropped; the topology takes
/// every process with it.
pub struct Appliance {
    pub topo: Topology,
    pub serve: Process,
    pub state: StateDir,
    _helpers: Vec<Process>,
}

/// A test's state directory, named after its topology; removed with
/// everything in it when dropped.
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new(topo: &Topology, suffix: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("{}-{suffix}", topo.prefix()));
        std::fs::create_dir_all(&dir).expect("state dir");
        StateDir(dir)
    }
}

impl std::ops::Deref for StateDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The recipe appliance without `[nat]`; `helpers` starts what the test
/// needs next to it (given the topology and the state directory).
pub fn recipe_appliance(helpers: impl FnOnce(&Topology, &Path) -> Vec<Process>) -> Appliance {
    let topo = recipe_topology();
    let (state, config) = recipe_state_hashed(&topo);
    let helpers = helpers(&topo, &state);
    let serve = start_serve(&topo, &config);
    Appliance {
        topo,
        serve,
        state,
        _helpers: helpers,
    }
}

/// The vpnclient's NIC `vpn0` and account `acc` for tsumura on hub
/// mikalab at `server` with password `mikalab-pass`; returns the tap's
/// name.
pub fn vpnclient_account(
    client: &ethergate_softether::SoftEtherClient<'_>,
    server: &str,
) -> String {
    let tap = client.nic_create("vpn0").expect("NicCreate");
    client
        .account_create("acc", server, "mikalab", "tsumura", "vpn0")
        .expect("AccountCreate");
    client
        .account_password_set(
            "acc",
            "mikalab-pass",
            ethergate_softether::PasswordKind::Standard,
        )
        .expect("AccountPasswordSet");
    tap
}

/// Writes the recipe config into `state` with `credential` (e.g.
/// `password_hash = "…"`) and returns its path.
pub fn write_recipe_config(state: &Path, credential: &str) -> PathBuf {
    let path = state.join("ethergate.toml");
    std::fs::write(&path, recipe::hub_config(state, credential, "")).expect("config");
    path
}

/// busybox httpd serving [`PAGE`] on 10.0.1.26:80 from `state/www`.
pub fn web_server(topo: &Topology, state: &Path) -> Process {
    recipe::web_server(topo, &state.join("www"), PAGE).expect("web server")
}

/// `ethergate serve --config` in `nat`, once its listeners are up.
pub fn start_serve(topo: &Topology, config: &Path) -> Process {
    let config = config.display().to_string();
    let mut serve = topo
        .spawn("nat", &[BIN, "serve", "--config", &config])
        .expect("ethergate serve");
    wait_for(&mut serve, "VPN listeners up", Duration::from_secs(15));
    serve
}

/// Waits until `process`'s log contains `needle`; panics with the log if it
/// exits or the time runs out.
pub fn wait_for(process: &mut Process, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !process.log().contains(needle) {
        assert!(
            process.is_running(),
            "{} exited before {needle:?}:\n{}",
            process.name(),
            process.log()
        );
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within {timeout:?}:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ethergate user hash` for `user`/`password`: the `password_hash` line.
pub fn password_hash(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .args(["user", "hash", "--user", user])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ethergate user hash");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The Debian vpnclient in `client` logs in to hub mikalab as tsumura
/// with `password`, takes a DHCP lease and fetches [`PAGE`] from
/// 10.0.1.26; `log` says what the server side logged when a step fails.
/// Returns the client, still connected.
pub fn vpnclient_fetches_the_page<'t>(
    topo: &'t Topology,
    password: &str,
    log: impl Fn() -> String,
) -> ethergate_softether::SoftEtherClient<'t> {
    vpnclient_at_fetches_the_page(topo, "198.51.100.1:443", password, log)
}

/// [`vpnclient_fetches_the_page`] with the account pointed at `server`.
pub fn vpnclient_at_fetches_the_page<'t>(
    topo: &'t Topology,
    server: &str,
    password: &str,
    log: impl Fn() -> String,
) -> ethergate_softether::SoftEtherClient<'t> {
    use ethergate_softether::{PasswordKind, SoftEtherClient, Udhcpc};
    let client = SoftEtherClient::start(topo, "client").expect("vpnclient");
    let tap = client.nic_create("vpn0").expect("NicCreate");
    client
        .account_create("acc", server, "mikalab", "tsumura", "vpn0")
        .expect("AccountCreate");
    client
        .account_password_set("acc", password, PasswordKind::Standard)
        .expect("AccountPasswordSet");
    client.account_connect("acc").expect("AccountConnect");
    if let Err(e) = client.wait_connected("acc", Duration::from_secs(20)) {
        panic!("vpnclient did not connect: {e}\n{}", log());
    }
    Udhcpc::new(&tap)
        .static_routes(true)
        .run(topo, "client")
        .unwrap_or_else(|e| panic!("no lease: {e}\n{}", log()));
    let page = fetch_page(topo);
    assert_eq!(page.stdout, PAGE, "{}\n{}", page.stderr, log());
    client
}

/// `curl` of the private web page from `client` (through the tunnel, or
/// whatever route `client` has to 10.0.1.26).
pub fn fetch_page(topo: &Topology) -> ethergate_netns::CommandOutput {
    topo.run(
        "client",
        &["curl", "-sS", "--max-time", "10", "http://10.0.1.26/"],
    )
    .expect("curl")
}

/// `ethergate status -o json` through the admin socket at `socket`.
pub fn status_json(socket: &str) -> serde_json::Value {
    let out = std::process::Command::new(BIN)
        .args(["status", "-o", "json", "--socket", socket])
        .output()
        .expect("ethergate status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// What the systemd unit's `ExecStartPre=-+` does before serve starts: a
/// bpffs of ethergate's own at /run/ethergate-nat in the host's mount
/// namespace, where serve pins its NAT state. serve mounts it itself when
/// it is missing, but `ip netns exec` (how tests start serve) gives serve a
/// private mount namespace, and a mount made there ends with the process.
pub fn mount_pin_base() {
    let script = "mountpoint -q /run/ethergate-nat || \\
        { mkdir -p /run/ethergate-nat && mount -t bpf ethergate-nat /run/ethergate-nat; }";
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(status.success(), "mounting bpffs at /run/ethergate-nat");
}

/// What [`sha256_transfer`] sent and what arrived.
pub struct Transfer {
    /// SHA-256 of the bytes sent (hex).
    pub sent: String,
    /// SHA-256 of the bytes received (hex; empty when nothing arrived).
    pub received: String,
    /// The receiver's and sender's output, for the failure message.
    pub detail: String,
}

/// 16 MiB (a pattern from `seed`) from namespace `from` to a receiver in
/// `to` listening on `listen:9000`, which the sender reaches as
/// `connect:9000` (the same address, but for an IPv6 link-local one, whose
/// `%interface` differs at the two ends), over one TCP connection, hashed
/// by SHA-256 on arrival. Files go to `dir`. The kernel trusts the frames
/// the tunnel cuts and merges (TSO segments, GSO frames), so a cutting or
/// merging mistake shows as a different hash here, not as a drop.
pub fn sha256_transfer(
    topo: &Topology,
    dir: &Path,
    (from, to): (&str, &str),
    (listen, connect): (&str, &str),
    seed: u32,
) -> Transfer {
    let blob: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(seed) >> 11) as u8)
        .collect();
    let file = dir.join(format!("blob-{from}-{to}.bin"));
    std::fs::write(&file, &blob).expect("blob");
    let sent = topo
        .exec(from, &["sha256sum", &file.display().to_string()])
        .expect("sha256sum");
    let sent = sent
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    // Never compare two empty strings.
    assert_eq!(sent.len(), 64, "sha256sum of the blob: {sent:?}");
    let received = dir.join(format!("blob-{from}-{to}.sha256"));
    let _ = std::fs::remove_file(&received);
    let receiver = format!(
        "import hashlib, socket\n\
         a = socket.getaddrinfo('{listen}', 9000, 0, socket.SOCK_STREAM)[0]\n\
         s = socket.socket(a[0], a[1]); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(a[4]); s.listen(1); c, _ = s.accept(); h = hashlib.sha256()\n\
         while True:\n    b = c.recv(65536)\n    if not b: break\n    h.update(b)\n\
         open('{}', 'w').write(h.hexdigest())\n",
        received.display()
    );
    let mut sink = topo
        .spawn(to, &["python3", "-c", &receiver])
        .expect("receiver");
    std::thread::sleep(Duration::from_millis(500));
    let sender = format!(
        "import socket\n\
         s = socket.create_connection(('{connect}', 9000), timeout=120)\n\
         s.sendall(open('{}', 'rb').read()); s.shutdown(socket.SHUT_WR); s.recv(1)\n",
        file.display()
    );
    let out = topo
        .run(from, &["timeout", "120", "python3", "-c", &sender])
        .expect("sender");
    let finished = sink.wait_timeout(Duration::from_secs(30));
    Transfer {
        sent,
        received: std::fs::read_to_string(&received).unwrap_or_default(),
        detail: format!(
            "16 MiB {from} → {to}: receiver {finished:?}: {}; sender: {}{}",
            sink.log(),
            out.stdout,
            out.stderr
        ),
    }
}
