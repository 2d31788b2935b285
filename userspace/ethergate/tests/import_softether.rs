//! Migration from a real SoftEther server: Debian's vpnserver is set up with
//! real vpncmd commands (hub, password user, RADIUS user, SecureNAT DHCP
//! with pushed routes, a tap-mode local bridge), its `vpn_server.config` is
//! imported, `ethergate serve` runs the result in the same namespace, and
//! Debian's vpnclient logs in with the password set on the SoftEther
//! server, takes a lease with the pushed routes and reaches the private web
//! server. Needs root; run with `--test-threads=1`.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ethergate_netns::Topology;
use ethergate_softether::{
    DhcpSettings, PasswordKind, SoftEtherClient, SoftEtherServer, StaticRoute, Udhcpc,
};

mod common;
use common::{BIN, PAGE, fetch_page, recipe_topology, start_serve, web_server};

const HUB: &str = "MIKALAB";
const USER: &str = "tsumura";
const OLD_PASSWORD: &str = "set-on-softether";

/// Removes the scratch directory also when the test fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets up the SoftEther server the way an operator would and returns its
/// config file as written to disk.
fn softether_config(topo: &Topology, into: &Path) -> PathBuf {
    let server = SoftEtherServer::start(topo, "nat").expect("vpnserver");
    server.hub_create(HUB).expect("HubCreate");
    server
        .user_create(HUB, USER, OLD_PASSWORD)
        .expect("UserCreate + UserPasswordSet");
    server
        .hub_vpncmd(
            HUB,
            &[
                "UserCreate",
                "radiususer",
                "/GROUP:none",
                "/REALNAME:none",
                "/NOTE:none",
            ],
        )
        .expect("UserCreate radiususer");
    server
        .hub_vpncmd(HUB, &["UserRadiusSet", "radiususer", "/ALIAS:none"])
        .expect("UserRadiusSet");
    server.secure_nat_enable(HUB).expect("SecureNatEnable");
    server
        .dhcp_set(
            HUB,
            &DhcpSettings {
                gateway: None,
                push_routes: vec![(
                    Ipv4Addr::new(10, 0, 0, 0),
                    16,
                    Ipv4Addr::new(192, 168, 30, 1),
                )],
                ..DhcpSettings::default()
            },
        )
        .expect("DhcpSet /PUSHROUTE");
    // The recipe's local bridge: SoftEther creates tap "tap_00".
    server
        .vpncmd(&["BridgeCreate", HUB, "/DEVICE:00", "/TAP:yes"])
        .expect("BridgeCreate /TAP:yes");
    // Write the running config to vpn_server.config now (it autosaves
    // every 5 minutes otherwise).
    server.vpncmd(&["Flush"]).expect("Flush");
    let copy = into.join("vpn_server.config");
    std::fs::copy(server.config_path(), &copy).expect("copy vpn_server.config");
    server.stop();
    // SoftEther's tap belongs to its process; ethergate creates its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while topo.ip("nat", &["link", "show", "tap_00"]).is_ok() {
        assert!(
            Instant::now() < deadline,
            "SoftEther's tap_00 outlived vpnserver"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    copy
}

#[test]
fn softether_users_log_in_with_their_old_password_after_import() {
    let topo = recipe_topology();
    let scratch = Scratch(std::env::temp_dir().join(format!("{}-import", topo.prefix())));
    let dir = &scratch.0;
    std::fs::create_dir_all(dir).expect("scratch dir");
    let softether = softether_config(&topo, dir);

    let out = dir.join("ethergate.toml");
    let import = std::process::Command::new(BIN)
        .arg("import-softether")
        .arg(&softether)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run import-softether");
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert!(import.status.success(), "import failed: {stderr}");
    assert!(
        stderr.contains("user radiususer uses RADIUS authentication"),
        "the RADIUS user must be reported: {stderr}"
    );
    let text = std::fs::read_to_string(&out).expect("imported config");
    assert!(!text.contains(OLD_PASSWORD), "no plaintext password");
    for expected in [
        "bridge = \"tap_00\"",
        "routes = [\"10.0.0.0/16 via 192.168.30.1\"]",
        "name = \"tsumura\"",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let check = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&out)
        .output()
        .expect("ethergate check");
    assert!(
        check.status.success(),
        "ethergate check rejects the import: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Only where the test keeps its state changes; everything migrated
    // (listeners, certificate, hub, users, DHCP) stays as imported.
    let state = dir.join("state");
    let local = text.replacen(
        "[server]\n",
        &format!(
            "[server]\nstate_dir = \"{s}\"\nadmin_socket = \"{s}/admin.sock\"\nmetrics = \"off\"\n",
            s = state.display()
        ),
        1,
    );
    std::fs::write(&out, local).expect("rewrite config");
    let _web = web_server(&topo, dir);
    let serve = start_serve(&topo, &out);
    let log = || serve.log();

    // The certificate clients saw before is the one they see now.
    let served = topo
        .run(
            "client",
            &["sh", "-c", "openssl s_client -connect 198.51.100.1:443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"],
        )
        .expect("openssl s_client");
    let cert = dir.join("ethergate.cert.pem");
    let cert = cert.display().to_string();
    let imported = topo
        .run(
            "client",
            &[
                "openssl",
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                &cert,
            ],
        )
        .expect("openssl x509");
    assert!(
        served.stdout.contains("Fingerprint") && served.stdout == imported.stdout,
        "served {:?} vs imported {:?}",
        served.stdout,
        imported.stdout
    );

    let client = SoftEtherClient::start(&topo, "client").expect("vpnclient");
    let tap = client.nic_create("vpn0").expect("NicCreate");
    client
        .account_create("acc", "198.51.100.1:443", HUB, USER, "vpn0")
        .expect("AccountCreate");
    client
        .account_password_set("acc", OLD_PASSWORD, PasswordKind::Standard)
        .expect("AccountPasswordSet");
    client.account_connect("acc").expect("AccountConnect");
    if let Err(e) = client.wait_connected("acc", Duration::from_secs(20)) {
        panic!(
            "login with the SoftEther password failed: {e}\nethergate log:\n{}",
            log()
        );
    }
    let lease = Udhcpc::new(&tap)
        .static_routes(true)
        .run(&topo, "client")
        .unwrap_or_else(|e| panic!("no DHCP lease: {e}\nethergate log:\n{}", log()));
    assert_eq!(lease.ip.octets()[..3], [192, 168, 30]);
    assert_eq!(lease.router, None, "/GW:none carried over");
    assert_eq!(
        lease.staticroutes,
        vec![StaticRoute {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 16,
            gateway: Ipv4Addr::new(192, 168, 30, 1),
        }]
    );
    let page = fetch_page(&topo);
    assert_eq!(
        page.stdout,
        PAGE,
        "{}\nethergate log:\n{}",
        page.stderr,
        log()
    );
}

/// The command's contract without a SoftEther server: exit codes, what
/// goes to stdout and stderr, file modes, no silent overwrite.
#[test]
fn import_cli_reports_problems_and_keeps_existing_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch(std::env::temp_dir().join(format!("eg-import-cli-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/import_softether/testdata/vpn_server.config");
    let import = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(BIN)
            .arg("import-softether")
            .args(args)
            .output()
            .expect("run import-softether")
    };

    // A broken file: exit 1, the line named.
    let bad = dir.0.join("bad.config");
    std::fs::write(&bad, "declare root\r\n{\r\n\tuint Port x\r\n}\r\n").expect("write");
    let out = import(&[bad.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    // The binary form: exit 1, and how to get the text form.
    std::fs::write(&bad, b"SEVPN DB\x00\x00").expect("write");
    let out = import(&[bad.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ConfigGet"));

    // To stdout: the config there, the notes on stderr, no key written.
    let out = import(&[fixture.as_os_str()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[[hub]]") && !stdout.contains("tls_key"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not written (output went to stdout)"));

    // To files: 0600, and never over an existing file without --force.
    let target = dir.0.join("eg.toml");
    let o = std::ffi::OsStr::new("-o");
    assert!(
        import(&[fixture.as_os_str(), o, target.as_os_str()])
            .status
            .success()
    );
    for name in ["eg.toml", "eg.cert.pem", "eg.key.pem"] {
        let mode = std::fs::metadata(dir.0.join(name))
            .expect(name)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    std::fs::write(&target, "# mine\n").expect("write");
    let again = import(&[fixture.as_os_str(), o, target.as_os_str()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "# mine\n");
    // Nothing is half-written: with only the config taken, the certificate
    // and key are not written either.
    std::fs::remove_file(dir.0.join("eg.key.pem")).expect("rm key");
    let partial = import(&[fixture.as_os_str(), o, target.as_os_str()]);
    assert_eq!(partial.status.code(), Some(1));
    assert!(
        !dir.0.join("eg.key.pem").exists(),
        "key written despite the refusal"
    );
    let force = std::ffi::OsStr::new("--force");
    assert!(
        import(&[fixture.as_os_str(), o, target.as_os_str(), force])
            .status
            .success()
    );
    assert!(
        std::fs::read_to_string(&target)
            .expect("read")
            .contains("[[hub.user]]")
    );
}
