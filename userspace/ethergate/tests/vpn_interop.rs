//! The recipe's main scenario with the real Debian SoftEther VPN Client:
//! `client (198.51.100.2) — nat (ethergate: 198.51.100.1, tap_00
//! 192.168.30.1/24, 10.0.0.1/16) — private (web server 10.0.1.26:80)`.
//! Needs root; run with `--test-threads=1`.

use std::{net::Ipv4Addr, time::Duration};

mod common;
use common::{Appliance, PAGE, recipe_appliance, start_serve, web_server};
use ethergate_softether::{AccountDetail, PasswordKind, SoftEtherClient, StaticRoute, Udhcpc};

const SERVER: &str = "198.51.100.1:443";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The client's own retry after a restart: its session has to end first
/// (an `additional_connect` refused, or its 20 s timeout), then the 5 s
/// retry interval.
const RETRY_TIMEOUT: Duration = Duration::from_secs(60);

fn appliance() -> Appliance {
    recipe_appliance(|topo, state| vec![web_server(topo, state)])
}

fn account(client: &SoftEtherClient<'_>, name: &str, nic: &str, hub: &str, password: &str) {
    client
        .account_create(name, SERVER, hub, "tsumura", nic)
        .expect("AccountCreate");
    client
        .account_password_set(name, password, PasswordKind::Standard)
        .expect("AccountPasswordSet");
}

fn connect(app: &Appliance, client: &SoftEtherClient<'_>, name: &str) {
    client.account_connect(name).expect("AccountConnect");
    if let Err(e) = client.wait_connected(name, CONNECT_TIMEOUT) {
        panic!(
            "vpnclient did not connect: {e}\nethergate log:\n{}",
            app.serve.log()
        );
    }
}

/// Address, routes and a page fetch through the tunnel, with the tap at
/// `tap`. Returns the lease.
fn use_tunnel(app: &Appliance, tap: &str) -> ethergate_softether::Lease {
    let lease = Udhcpc::new(tap)
        .static_routes(true)
        .run(&app.topo, "client")
        .unwrap_or_else(|e| panic!("no DHCP lease: {e}\nethergate log:\n{}", app.serve.log()));
    let page = common::fetch_page(&app.topo);
    assert_eq!(
        page.stdout,
        PAGE,
        "curl through the tunnel: {}\nethergate log:\n{}",
        page.stderr,
        app.serve.log()
    );
    lease
}

#[test]
fn default_client_gets_classless_routes_and_reaches_the_private_web_server() {
    let app = appliance();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let tap = client.nic_create("vpn0").expect("NicCreate");
    account(&client, "acc", "vpn0", "mikalab", "mikalab-pass");
    connect(&app, &client, "acc");
    let lease = use_tunnel(&app, &tap);
    assert_eq!(lease.ip.octets()[..3], [192, 168, 30]);
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, None, "no router configured: no option 3");
    let pushed = StaticRoute {
        network: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 16,
        gateway: Ipv4Addr::new(192, 168, 30, 1),
    };
    assert_eq!(lease.staticroutes, vec![pushed]);
    assert_eq!(lease.msstaticroutes, lease.staticroutes);
    let default = app
        .topo
        .exec("client", &["ip", "route", "show", "default"])
        .expect("ip route");
    assert!(
        !default.stdout.contains(&tap),
        "the VPN must not take the default route: {}",
        default.stdout
    );
    bulk_download_arrives_intact(&app);
    bulk_upload_arrives_intact(&app);
}

/// 16 MiB from the private web server through the tunnel, checked by
/// SHA-256. Not a speed check: the deadline is ~100× what it takes; it
/// catches a data path that loses bytes and crawls on retransmits (a
/// batch cut at rustls's buffer limit once made this 1 Mbit/s).
fn bulk_download_arrives_intact(app: &Appliance) {
    let blob: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(app.state.join("www").join("blob.bin"), &blob).expect("blob");
    let want = app
        .topo
        .exec(
            "private",
            &[
                "sha256sum",
                &app.state.join("www/blob.bin").display().to_string(),
            ],
        )
        .expect("sha256sum");
    let got = app
        .topo
        .run(
            "client",
            &[
                "sh",
                "-c",
                "curl -sS --max-time 120 http://10.0.1.26/blob.bin | sha256sum",
            ],
        )
        .expect("curl");
    let hash = |s: &str| s.split_whitespace().next().unwrap_or_default().to_owned();
    assert_eq!(
        hash(&got.stdout),
        hash(&want.stdout),
        "16 MiB through the tunnel: {}\nethergate log:\n{}",
        got.stderr,
        app.serve.log()
    );
}

/// 16 MiB from the client to the private host, checked by SHA-256 on
/// arrival. Client→private TCP is what the hub merges into GSO frames for
/// the tap (decision 0005), and the kernel trusts a merged frame's payload,
/// so a merging mistake would show here as a different hash, not a drop.
fn bulk_upload_arrives_intact(app: &Appliance) {
    let t = common::sha256_transfer(
        &app.topo,
        &app.state,
        ("client", "private"),
        ("10.0.1.26", "10.0.1.26"),
        2_246_822_519,
    );
    assert_eq!(
        t.received,
        t.sent,
        "{}\nethergate log:\n{}",
        t.detail,
        app.serve.log()
    );
}

#[test]
fn maxtcp_8_and_compression_carry_traffic() {
    let app = appliance();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let tap = client.nic_create("vpn0").expect("NicCreate");
    account(&client, "acc", "vpn0", "mikalab", "mikalab-pass");
    client
        .account_detail_set("acc", &AccountDetail::max_tcp(8))
        .expect("AccountDetailSet /MAXTCP:8");
    client.account_compress("acc", true).expect("compress on");
    connect(&app, &client, "acc");
    // The client adds one connection per second up to the negotiated 8.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = client.account_status("acc").expect("status");
        let n: u32 = status
            .get("Number of TCP Connections")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if n == 8 {
            assert_eq!(status.get("Maximum Number of TCP Connections"), Some("8"));
            assert!(
                status
                    .get("Use of Compression")
                    .is_some_and(|v| v.starts_with("Yes")),
                "{:?}",
                status.items
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {n} TCP connections: {:?}\n{}",
            status.items,
            app.serve.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    use_tunnel(&app, &tap);
    // Bulk data spread over the 8 connections, compressed.
    let big = app
        .topo
        .run(
            "client",
            &[
                "ping",
                "-c",
                "50",
                "-i",
                "0.01",
                "-s",
                "1400",
                "-W",
                "2",
                "192.168.30.1",
            ],
        )
        .expect("ping");
    assert!(big.stdout.contains(" 0% packet loss"), "{}", big.stdout);
}

#[test]
fn wrong_password_is_code_9_unknown_hub_is_code_8_and_the_server_stays_up() {
    let app = appliance();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    client.nic_create("vpn0").expect("NicCreate vpn0");
    client.nic_create("vpn1").expect("NicCreate vpn1");
    client.nic_create("vpn2").expect("NicCreate vpn2");
    account(&client, "badpw", "vpn0", "mikalab", "not-the-password");
    account(&client, "badhub", "vpn1", "nosuchhub", "mikalab-pass");
    for (name, code) in [("badpw", 9), ("badhub", 8)] {
        client.account_connect(name).expect("AccountConnect");
        let deadline = std::time::Instant::now() + CONNECT_TIMEOUT;
        while client.last_error_code(name).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: no error code"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(client.last_error_code(name), Some(code), "{name}");
        client.account_disconnect(name).expect("AccountDisconnect");
    }
    account(&client, "good", "vpn2", "mikalab", "mikalab-pass");
    connect(&app, &client, "good");
    let log = app.serve.log();
    // One line per verdict, with the client's address and a stable reason.
    assert!(
        log.contains("login failed client=198.51.100.2 hub=\"mikalab\" user=\"tsumura\" reason=\"wrong_password_or_unknown_user\""),
        "{log}"
    );
    assert!(
        log.contains("login failed client=198.51.100.2 hub=\"nosuchhub\"")
            && log.contains("reason=\"unknown_hub\""),
        "{log}"
    );
}

#[test]
fn restart_restores_leases() {
    // The client is left to itself across the restart: its session ends
    // (ethergate's stop closes every connection with a TLS close_notify),
    // it retries on its own and must then carry traffic with the same
    // lease. Before the close_notify this retry churned forever; see
    // decision 0002, "The real client's automatic retry".
    let mut app = appliance();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let tap = client.nic_create("vpn0").expect("NicCreate");
    account(&client, "acc", "vpn0", "mikalab", "mikalab-pass");
    // SoftEther's minimum retry interval, so the test waits 5 s, not 15.
    client
        .account_retry_set("acc", 999, 5)
        .expect("AccountRetrySet");
    connect(&app, &client, "acc");
    let before = use_tunnel(&app, &tap);

    assert_eq!(app.serve.stop(), Some(0), "{}", app.serve.log());
    let leases =
        std::fs::read_to_string(app.state.join("leases-mikalab.txt")).expect("lease file written");
    assert!(
        leases.contains(&before.ip.to_string()),
        "lease file lacks {}: {leases}",
        before.ip
    );
    app.serve = start_serve(&app.topo, &app.state.join("ethergate.toml"));
    assert!(
        app.serve.log().contains("DHCP leases restored"),
        "{}",
        app.serve.log()
    );
    // No AccountConnect: the client's own retry logs in again.
    common::wait_for(&mut app.serve, "session established", RETRY_TIMEOUT);
    let status = client
        .wait_connected("acc", CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\nethergate log:\n{}", app.serve.log()));
    assert!(status.is_established(), "{:?}", status.items);
    let after = use_tunnel(&app, &tap);
    assert_eq!(
        after.ip, before.ip,
        "the restored lease must give the same address"
    );
    // The retried session is stable: one login, and its connection was
    // never dropped (the churn closed it ~100 ms after the welcome).
    let log = app.serve.log();
    assert_eq!(log.matches("session established").count(), 1, "{log}");
    assert!(!log.contains("last connection closed"), "{log}");
    let status = client.account_status("acc").expect("status");
    assert!(status.is_established(), "{:?}", status.items);
}

/// Python's ssl module as a hostile TLS client (python3 is on every
/// machine of this kind; no extra package).
const HOSTILE: &str = r#"
import socket, ssl, sys, os
kind = sys.argv[1]
try:
    s = socket.create_connection(("198.51.100.1", 443), timeout=5)
    if kind == "random":
        s.sendall(os.urandom(4096))
    elif kind == "plain-http":
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
        if kind == "huge-pack":
            s.sendall(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nContent-Length: 10\r\n\r\nVPNCONNECT")
            s.recv(65536)
            s.sendall(b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 536870912\r\n\r\n" + b"\x00" * 1000)
        elif kind == "header-flood":
            s.sendall(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 100000)
    # The server may close while we are still sending (that is the point);
    # either way, read until it does.
    data = s.recv(65536)
    while data:
        data = s.recv(65536)
    print("closed")
except TimeoutError:
    print("the server kept the connection open")
except (OSError, ssl.SSLError) as e:
    print("ended:", type(e).__name__)
"#;

#[test]
fn garbage_on_the_tls_port_costs_one_connection_only() {
    let app = appliance();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    let tap = client.nic_create("vpn0").expect("NicCreate");
    account(&client, "acc", "vpn0", "mikalab", "mikalab-pass");
    connect(&app, &client, "acc");
    use_tunnel(&app, &tap);

    // A TLS handshake that stalls: a bare TCP connection that never speaks.
    let staller = app
        .topo
        .spawn(
            "client",
            &["python3", "-c", "import socket,time; s=socket.create_connection(('198.51.100.1',443)); time.sleep(60)"],
        )
        .expect("staller");
    let script = app.state.join("hostile.py");
    std::fs::write(&script, HOSTILE).expect("script");
    let script_arg = script.display().to_string();
    for kind in ["random", "plain-http", "huge-pack", "header-flood"] {
        let out = app
            .topo
            .run("client", &["python3", &script_arg, kind])
            .expect("hostile client");
        assert!(
            out.stdout.contains("closed") || out.stdout.contains("ended"),
            "{kind}: the server should close the connection: {} {}",
            out.stdout,
            out.stderr
        );
    }
    // The session that was up is still up and carries traffic.
    let status = client.account_status("acc").expect("status");
    assert!(status.is_established(), "{:?}", status.items);
    common::ping_tap(&app.topo, "the session that was up");
    drop(staller);
    assert!(app.serve.log().contains("session established"));
}
