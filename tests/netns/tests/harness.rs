//! The harness itself, for real: namespaces, veths, processes, teardown on
//! drop and on panic. Needs root.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    time::Duration,
};

use ethergate_netns::{Endpoint, Topology};

fn pair() -> Topology {
    Topology::builder()
        .namespace("left")
        .namespace("right")
        .sysctl("right", "net.ipv4.ip_forward", "1")
        .veth(
            Endpoint::new("left", "l0", &["10.99.0.1/24", "2001:db8:99::1/64"]),
            Endpoint::new("right", "r0", &["10.99.0.2/24", "2001:db8:99::2/64"]),
        )
        .route("left", "10.98.0.0/16 via 10.99.0.2")
        .build()
        .expect("build topology (run as root)")
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn process_exists(pid: u32) -> bool {
    // A reaped child has no /proc entry; a zombie would still have one, so
    // this also checks that teardown waited for it.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn builds_a_working_pair_and_removes_it() {
    let topo = pair();
    let names = topo.namespace_names();
    assert_eq!(names.len(), 2);
    topo.exec("left", &["ping", "-c", "1", "-W", "2", "10.99.0.2"])
        .expect("IPv4 ping across the veth");
    topo.exec("left", &["ping", "-c", "1", "-W", "2", "2001:db8:99::2"])
        .expect("IPv6 ping across the veth");
    let forward = topo
        .exec("right", &["sysctl", "-n", "net.ipv4.ip_forward"])
        .expect("read sysctl");
    assert_eq!(forward.stdout.trim(), "1");
    let routes = topo.ip("left", &["route"]).expect("routes");
    assert!(
        routes.stdout.contains("10.98.0.0/16 via 10.99.0.2"),
        "{}",
        routes.stdout
    );
    assert!(
        !routes.stdout.contains("default"),
        "no route may lead off the machine"
    );
    drop(topo);
    for name in names {
        assert!(!namespace_exists(&name), "{name} left behind");
    }
}

#[test]
fn enter_runs_code_inside_the_namespace() {
    let topo = pair();
    let listener = topo
        .enter("right", || {
            TcpListener::bind("10.99.0.2:7000").expect("bind in right")
        })
        .expect("enter right");
    let accepted = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer));
    let connected = topo
        .enter("left", || {
            TcpStream::connect_timeout(
                &"10.99.0.2:7000".parse().expect("addr"),
                Duration::from_secs(3),
            )
            .map(|s| s.local_addr())
        })
        .expect("enter left")
        .expect("connect from left")
        .expect("local addr");
    let peer = accepted.join().expect("accept thread").expect("accept");
    assert_eq!(peer, connected);
    // The root namespace has no such address: binding it there must fail.
    assert!(TcpListener::bind("10.99.0.2:7001").is_err());
}

#[test]
fn spawned_processes_are_stopped_and_logged() {
    let topo = pair();
    let mut process = topo
        .spawn(
            "left",
            &["sh", "-c", "echo hello from left; exec sleep 600"],
        )
        .expect("spawn");
    let pid = process.pid();
    std::thread::sleep(Duration::from_millis(200));
    assert!(process.is_running());
    assert!(
        process.log().contains("hello from left"),
        "log: {:?}",
        process.log()
    );
    process.stop();
    assert!(!process_exists(pid));
}

#[test]
fn a_panic_halfway_leaves_nothing_behind() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let topo = pair();
        let tracked = topo
            .spawn("right", &["sleep", "600"])
            .expect("spawn tracked");
        // An untracked grandchild, as a daemon that forks would leave.
        topo.exec("left", &["sh", "-c", "sleep 600 >/dev/null 2>&1 &"])
            .expect("start untracked");
        let untracked: Vec<u32> = topo
            .exec(
                "left",
                &["ip", "netns", "pids", topo.ns("left").expect("ns")],
            )
            .map(|o| {
                o.stdout
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        seen = Some((topo.namespace_names(), tracked.pid(), untracked));
        // `tracked` is declared after `topo`, so unwinding drops (stops and
        // reaps) it first; the untracked sleeper is only reachable through
        // the topology's namespace sweep.
        panic!("simulated test failure halfway");
    }));
    assert!(result.is_err(), "the closure must have panicked");
    let (names, tracked, untracked) = seen.expect("topology was built");
    assert!(!untracked.is_empty(), "untracked process was not found");
    for name in &names {
        assert!(!namespace_exists(name), "{name} left behind");
    }
    assert!(
        !process_exists(tracked),
        "tracked process {tracked} not reaped"
    );
    std::thread::sleep(Duration::from_millis(100));
    for pid in &untracked {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Killed processes may linger as zombies of their (also killed)
        // parents for a moment; anything still running is a leak.
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "process {pid} still running: {stat}"
        );
    }
}
