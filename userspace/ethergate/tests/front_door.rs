//! The internet-facing side under attack, with the real SoftEther client as
//! the user who must still get in:
//! `client (198.51.100.2) — nat (ethergate serve: 198.51.100.1, tap_00
//! 192.168.30.1/24) — attacker (203.0.113.2)`.
//! Needs root; run with `--test-threads=1`.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::AsRawFd,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ethergate_login::{LoginError, Target};
use ethergate_netns::{Endpoint, Process, Topology};
use ethergate_proto::ErrorCode;
use ethergate_softether::SoftEtherClient;

mod common;
use common::{StateDir, start_serve, status_json};

const SERVER: &str = "198.51.100.1:443";
const SERVER_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 443);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The bar for the real user under attack.
const USER_GETS_IN_WITHIN: Duration = Duration::from_secs(2);

struct Appliance {
    topo: Topology,
    serve: Process,
    state: StateDir,
}

fn appliance(extra_server: &str) -> Appliance {
    let topo = Topology::builder()
        .namespace("client")
        .namespace("nat")
        .namespace("attacker")
        .veth(
            Endpoint::new("client", "eth0", &["198.51.100.2/24"]),
            Endpoint::new("nat", "eth0", &["198.51.100.1/24"]),
        )
        .veth(
            Endpoint::new("attacker", "eth0", &["203.0.113.2/24"]),
            Endpoint::new("nat", "eth2", &["203.0.113.1/24"]),
        )
        .route("attacker", "198.51.100.0/24 via 203.0.113.1")
        .build()
        .expect("topology (run as root)");
    let (state, config) = common::recipe_state_hashed(&topo);
    if !extra_server.is_empty() {
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen(
            "metrics = \"off\"\n",
            &format!("metrics = \"off\"\n{extra_server}\n"),
            1,
        );
        std::fs::write(&config, text).expect("config");
    }
    let serve = start_serve(&topo, &config);
    Appliance { topo, serve, state }
}

fn admin_socket(app: &Appliance) -> String {
    app.state.join("admin.sock").display().to_string()
}

/// The real vpnclient in `client` connects as tsumura; returns how long
/// from `AccountConnect` to an established session, as the client reports
/// it (polled, so this overstates by up to one vpncmd round trip), and
/// the client's tap.
fn real_client_connects(app: &Appliance, client: &SoftEtherClient<'_>) -> (Duration, String) {
    let tap = common::vpnclient_account(client, SERVER);
    let started = Instant::now();
    client.account_connect("acc").expect("AccountConnect");
    if let Err(e) = client.wait_connected("acc", Duration::from_secs(30)) {
        panic!(
            "the real client did not get in at all: {e}\nethergate log:\n{}",
            app.serve.log()
        );
    }
    (started.elapsed(), tap)
}

/// Holds `count` TCP connections from the attacker to the VPN port until
/// `stop`, reopening each one the server closes; returns how many times it
/// connected in all.
fn hold_idle_connections(
    topo: &Topology,
    count: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    // A thread started from inside the namespace stays in it.
    topo.enter("attacker", move || {
        std::thread::spawn(move || {
            let mut slots: Vec<Option<std::net::TcpStream>> = (0..count).map(|_| None).collect();
            let mut opened = 0u64;
            let mut byte = [0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                for slot in &mut slots {
                    let alive = slot.as_ref().is_some_and(|s| {
                        // Peek without blocking: 0 or an error means closed.
                        // SAFETY: a valid fd and a one-byte buffer we own.
                        let n = unsafe {
                            libc::recv(
                                s.as_raw_fd(),
                                byte.as_mut_ptr().cast(),
                                1,
                                libc::MSG_PEEK | libc::MSG_DONTWAIT,
                            )
                        };
                        n > 0
                            || (n < 0
                                && std::io::Error::last_os_error().kind()
                                    == std::io::ErrorKind::WouldBlock)
                    });
                    if !alive {
                        *slot = connect_nonblocking(ATTACKER, SERVER_ADDR);
                        opened += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            opened
        })
    })
    .expect("enter the attacker's namespace")
}

fn connect_nonblocking(source: Ipv4Addr, server: SocketAddrV4) -> Option<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.set_nonblocking(true).ok()?;
    socket.bind(&SocketAddrV4::new(source, 0).into()).ok()?;
    match socket.connect(&server.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(_) => return None,
    }
    Some(socket.into())
}

fn raise_open_file_limit() {
    let limit = libc::rlimit {
        rlim_cur: 65_536,
        rlim_max: 65_536,
    };
    // SAFETY: setrlimit with a valid struct; failure only means a lower cap.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}

#[test]
fn a_flood_of_idle_connections_does_not_keep_the_real_user_out() {
    raise_open_file_limit();
    let app = appliance("");
    let stop = Arc::new(AtomicBool::new(false));
    let flood = hold_idle_connections(&app.topo, 1500, Arc::clone(&stop));
    // Let the flood fill whatever it can.
    std::thread::sleep(Duration::from_secs(3));
    let during = status_json(&admin_socket(&app));
    let pending = during["server"]["pending_handshakes"].as_u64().unwrap_or(0);
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let (took, _) = real_client_connects(&app, &client);
    // Hold the flood for its 30 s, then stop.
    std::thread::sleep(Duration::from_secs(27).saturating_sub(took));
    stop.store(true, Ordering::Relaxed);
    let connects = flood.join().expect("flood thread");
    let after = status_json(&admin_socket(&app));
    let refused = &after["server"]["connections_refused"];
    let by_address = refused["address_pending_cap"].as_u64().unwrap_or(0);
    eprintln!(
        "flood: 1500 held from {ATTACKER} for 30 s, {connects} TCP connects, \
         {pending} pending on the server during the flood, {by_address} refused at the \
         per-address cap; the real client was established {took:?} after AccountConnect"
    );
    assert!(
        pending <= 16,
        "one address may hold at most max_pending_per_address (16): {pending}"
    );
    assert!(by_address > 1000, "the flood was refused: {refused}");
    assert!(
        took <= USER_GETS_IN_WITHIN,
        "the real user took {took:?} to get in during the flood\n{}",
        app.serve.log()
    );
    // Refusals are summarised, not logged one by one.
    let log = app.serve.log();
    let lines = log.lines().count();
    assert!(
        lines < 200,
        "{lines} log lines for one flood:\n{}",
        log.lines().take(50).collect::<Vec<_>>().join("\n")
    );
    assert!(
        log.contains("refused") && log.contains(&format!("most from {ATTACKER}")),
        "a summary names the flooding address:\n{log}"
    );
    client.stop();
}

/// Runs `attempts` wrong-password logins as tsumura from the attacker, one
/// after another, each waiting for its answer as a guessing tool must.
/// Returns the instants at which the server gave a password verdict
/// (code 9) and how many were refused without one (code 12).
fn guess_passwords(topo: &Topology, attempts: usize) -> (Vec<Instant>, usize) {
    let target = Target {
        server: SERVER_ADDR,
        hub: "mikalab".into(),
        user: "tsumura".into(),
        password: "not-the-password".into(),
    };
    topo.enter("attacker", move || {
        let tls = ethergate_login::tls_config().expect("TLS config");
        let mut verdicts = Vec::new();
        let mut throttled = 0;
        for _ in 0..attempts {
            match ethergate_login::login(&target, ATTACKER, &tls) {
                Err(LoginError::Refused(ErrorCode::AUTH_FAILED)) => verdicts.push(Instant::now()),
                Err(LoginError::Refused(ErrorCode::ACCESS_DENIED)) => throttled += 1,
                Ok(_) => panic!("a wrong password logged in"),
                Err(e) => panic!("unexpected answer to a guess: {e}"),
            }
        }
        (verdicts, throttled)
    })
    .expect("enter the attacker's namespace")
}

fn most_in_any_minute(instants: &[Instant]) -> usize {
    instants
        .iter()
        .map(|start| {
            instants
                .iter()
                .filter(|t| **t >= *start && **t < *start + Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// `fail2ban-regex LOG FILTER`: how many lines the filter matched, and the
/// addresses it found.
fn fail2ban_matches(log: &Path) -> (usize, String) {
    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/fail2ban/filter.d/ethergate.conf");
    let out = std::process::Command::new("fail2ban-regex")
        .args(["--print-all-matched"])
        .arg(log)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (cargo xtask setup installs fail2ban)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "fail2ban-regex failed:\n{text}");
    // "Lines: 40 lines, 0 ignored, 7 matched, 33 missed"
    let matched = text
        .lines()
        .find(|l| l.starts_with("Lines:"))
        .and_then(|l| {
            l.split(',')
                .find(|part| part.trim_end().ends_with("matched"))
                .and_then(|part| part.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    (matched, text)
}

#[test]
fn password_guessing_is_throttled_and_the_real_user_still_gets_in() {
    let app = appliance("");
    let (verdicts, throttled, took) = std::thread::scope(|scope| {
        let attack = scope.spawn(|| guess_passwords(&app.topo, 200));
        // The real user logs in from their own address mid-attack.
        std::thread::sleep(Duration::from_secs(3));
        let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
        let (took, _) = real_client_connects(&app, &client);
        client.stop();
        let (verdicts, throttled) = attack.join().expect("attack thread");
        (verdicts, throttled, took)
    });
    let worst_minute = most_in_any_minute(&verdicts);
    let log = app.serve.log();
    let log_path = app.state.join("serve.log");
    std::fs::write(&log_path, &log).expect("log copy");
    let (matched, report) = fail2ban_matches(&log_path);
    eprintln!(
        "guessing: 200 wrong-password logins from {ATTACKER}: {} password verdicts \
         ({worst_minute} in the worst minute), {throttled} refused before a check; the real \
         client was established {took:?} after AccountConnect; fail2ban matched {matched} lines",
        verdicts.len()
    );
    assert_eq!(verdicts.len() + throttled, 200);
    assert!(
        worst_minute <= 30,
        "{worst_minute} password verdicts in one minute"
    );
    assert!(
        took <= USER_GETS_IN_WITHIN,
        "the real user took {took:?} during the attack\n{log}"
    );
    let failure_lines: Vec<&str> = log.lines().filter(|l| l.contains("login failed")).collect();
    assert_eq!(failure_lines.len(), verdicts.len(), "one line per verdict");
    assert!(
        failure_lines
            .iter()
            .all(|l| l.contains(&format!("client={ATTACKER}")) && l.contains("user=")),
        "failure lines carry the address and the user:\n{}",
        failure_lines.join("\n")
    );
    assert!(
        log.contains(&format!("client={CLIENT}")) && log.contains("login succeeded"),
        "the success line carries the address too:\n{log}"
    );
    assert_eq!(
        matched,
        verdicts.len(),
        "the fail2ban filter matches every failure line and nothing else:\n{report}"
    );
    assert!(report.contains(&ATTACKER.to_string()), "{report}");
    let status = status_json(&admin_socket(&app));
    let failed = &status["server"]["logins_failed"];
    assert_eq!(
        failed["throttled_source"].as_u64().unwrap_or(0),
        throttled as u64,
        "{failed}"
    );
}

/// Broadcast UDP from the appliance onto the hub (through its tap), which
/// floods it to every session, as fast as it goes until `stop`.
fn flood_the_hub(topo: &Topology, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    topo.enter("nat", move || {
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("192.168.30.1:0").expect("udp socket");
            socket.set_broadcast(true).expect("SO_BROADCAST");
            let payload = [0x5au8; 1400];
            let sent = AtomicU64::new(0);
            while !stop.load(Ordering::Relaxed) {
                if socket.send_to(&payload, "192.168.30.255:9").is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            sent.into_inner()
        })
    })
    .expect("enter nat")
}

/// tsumura logs in from the client's address with our own driver (which
/// never reads after the welcome) and keeps the session.
fn log_in_as_tsumura(app: &Appliance) -> ethergate_login::Session {
    let target = Target {
        server: SERVER_ADDR,
        hub: "mikalab".into(),
        user: "tsumura".into(),
        password: "mikalab-pass".into(),
    };
    app.topo
        .enter("client", move || {
            let tls = ethergate_login::tls_config().expect("TLS config");
            ethergate_login::login(&target, CLIENT, &tls)
        })
        .expect("enter client")
        .unwrap_or_else(|e| panic!("login: {e}\n{}", app.serve.log()))
        .0
}

#[test]
fn a_client_that_stops_reading_is_disconnected_within_its_timeout() {
    let app = appliance("[server.limits]\nwrite_timeout_secs = 5");
    // Logged in, then never reads again.
    let session = log_in_as_tsumura(&app);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = flood_the_hub(&app.topo, Arc::clone(&stop));
    let started = Instant::now();
    let needle = "closing a connection whose peer stopped reading";
    while !app.serve.log().contains(needle) && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().expect("flood");
    let status = status_json(&admin_socket(&app));
    eprintln!(
        "stalled reader: disconnected {took:?} after the hub started sending to it \
         ({sent} broadcast frames sent; write_timeout_secs = 5)"
    );
    assert!(
        app.serve.log().contains(needle),
        "the stalled client was never disconnected\n{}",
        app.serve.log()
    );
    // Filling the socket buffers takes a moment, then 5 s of no progress.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(status["server"]["write_timeouts"].as_u64(), Some(1));
    let sessions = status["sessions"].as_array().cloned().unwrap_or_default();
    assert!(
        sessions
            .iter()
            .all(|s| s["connections"].as_u64() == Some(0)),
        "the session has no connection left: {sessions:?}"
    );
    drop(session);
}

/// `(thread name, effective capabilities)` of every thread of `pid`.
fn thread_capabilities(pid: u32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task list");
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        if let Some(effective) = effective {
            threads.push((name.trim().to_owned(), effective));
        }
    }
    threads
}

#[test]
fn threads_facing_the_network_hold_no_capabilities() {
    let app = appliance("");
    // A login works with the workers' and hub's capabilities gone.
    log_in_as_tsumura(&app).close();
    let threads = thread_capabilities(app.serve.pid());
    eprintln!("serve's threads and their effective capabilities: {threads:x?}");
    let workers: Vec<_> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("ethergate-w") || name.starts_with("hub-"))
        .collect();
    assert!(
        workers.len() >= 2,
        "worker and hub threads found: {threads:?}"
    );
    assert!(
        workers.iter().all(|(_, caps)| *caps == 0),
        "network-facing threads hold capabilities: {workers:x?}"
    );
    // The control threads keep only what a reload (a new hub's tap and
    // programs) and status (maps) need: CAP_NET_ADMIN and CAP_BPF.
    let control = (1u64 << 12) | (1u64 << 39);
    assert!(
        threads.iter().all(|(_, caps)| caps & !control == 0),
        "a thread holds more than CAP_NET_ADMIN and CAP_BPF: {threads:x?}"
    );
    assert!(
        threads
            .iter()
            .any(|(name, caps)| name == "admin-socket" && *caps == control),
        "the admin socket (reload) keeps both: {threads:x?}"
    );
    assert!(
        threads
            .iter()
            .any(|(name, caps)| name == "session-reaper" && *caps == 0),
        "{threads:x?}"
    );
    // And a reload that adds a hub works with just those.
    let config = app.state.join("ethergate.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{text}\n[[hub]]\nname = \"second\"\nbridge = \"tap_01\"\nbridge_address = \
             \"192.168.31.1/24\"\n"
        ),
    )
    .expect("config");
    let out = std::process::Command::new(common::BIN)
        .args(["reload", "--socket", &admin_socket(&app)])
        .output()
        .expect("ethergate reload");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        app.serve.log()
    );
    app.topo
        .ip("nat", &["link", "show", "tap_01"])
        .expect("the new hub's tap exists");
}

/// A broadcast frame from `src` (an experimental EtherType, nothing the
/// hub answers).
fn frame_from(src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.resize(60, 0x5a);
    f
}

fn tap_mac(topo: &Topology) -> [u8; 6] {
    let out = topo
        .ip("nat", &["-j", "link", "show", "tap_00"])
        .expect("ip link");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("ip -j");
    let text = json[0]["address"].as_str().expect("tap address").to_owned();
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex");
    }
    mac
}

#[test]
fn a_session_cannot_flood_or_steal_mac_addresses() {
    let app = appliance("");
    let bridge = tap_mac(&app.topo);
    // One session sends from 300 source MACs, then from the bridge's own.
    let mut session = log_in_as_tsumura(&app);
    let many: Vec<Vec<u8>> = (0..300u16)
        .map(|i| {
            let [hi, lo] = i.to_be_bytes();
            frame_from([0x02, 0xee, 0, 0, hi, lo])
        })
        .collect();
    for batch in many.chunks(50) {
        session.send_frames(batch).expect("send");
    }
    session
        .send_frames(&[frame_from(bridge), frame_from(bridge)])
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = status_json(&admin_socket(&app));
        let dropped = &status["hubs"][0]["frames_dropped"];
        let done = dropped["mac_limit"].as_u64().unwrap_or(0)
            + dropped["mac_spoof"].as_u64().unwrap_or(0)
            >= 300 - 16 + 2;
        if done || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let hub = &status["hubs"][0];
    eprintln!(
        "300 source MACs and the bridge's MAC from one session: {} MAC entries, dropped {}",
        hub["mac_entries"], hub["frames_dropped"]
    );
    assert_eq!(
        hub["frames_dropped"]["mac_limit"].as_u64(),
        Some(300 - 16),
        "{hub:#}"
    );
    assert_eq!(
        hub["frames_dropped"]["mac_spoof"].as_u64(),
        Some(2),
        "{hub:#}"
    );
    assert!(
        hub["mac_entries"].as_u64().unwrap_or(u64::MAX) <= 16 + 1,
        "the session's 16 and the bridge's own: {hub:#}"
    );

    // Another user's session (the real client) still gets a lease, and
    // the bridge is still reachable through it.
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let (_, tap) = real_client_connects(&app, &client);
    let lease = ethergate_softether::Udhcpc::new(&tap)
        .run(&app.topo, "client")
        .unwrap_or_else(|e| panic!("no DHCP lease: {e}\n{}", app.serve.log()));
    assert_eq!(lease.ip.octets()[..3], [192, 168, 30]);
    let ping = app
        .topo
        .run("client", &["ping", "-c", "1", "-W", "5", "192.168.30.1"]);
    assert!(ping.is_ok(), "the bridge's MAC still answers: {ping:?}");
    client.stop();
    drop(session);
}
