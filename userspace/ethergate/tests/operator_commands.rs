//! Day-two operations against a running serve and the real Debian
//! vpnclient: `ethergate user add|passwd|del|list|profile` — users come and
//! go without a restart, a changed password or a removed user ends the live
//! session and the old credentials get code 9 (ERR_AUTH_FAILED), the config
//! file is byte for byte what it was once the user is gone, the `.vpn`
//! profile imports into vpncmd and connects with the server certificate
//! pinned — and a renewed certificate taken by `reload` while sessions stay.

mod common;

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{BIN, recipe_appliance, status_json};
use ethergate_softether::{PasswordKind, SoftEtherClient};

const SERVER: &str = "198.51.100.1:443";

/// ERR_AUTH_FAILED, what the client logs for a wrong user or password.
const AUTH_FAILED: u32 = 9;

/// ERR_CERT_NOT_TRUSTED: the server's certificate is not the pinned one.
const CERT_NOT_TRUSTED: u32 = 85;

/// Runs `ethergate args…` with `stdin` piped in.
/// `ethergate user VERB --config CONFIG --hub mikalab NAME EXTRA…`, with
/// `stdin`.
fn user_command(verb: &str, config: &str, name: &str, extra: &[&str], stdin: &str) -> Output {
    let mut argv = vec!["user", verb, "--config", config, "--hub", "mikalab", name];
    argv.extend_from_slice(extra);
    ethergate(&argv, stdin)
}

fn ethergate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ethergate");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    // A command that fails before it reads (a duplicate user is refused
    // before the password prompt) may exit before the write: its pipe is
    // then closed, and its exit status is what the test looks at.
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        panic!("stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Live sessions of `user` per `ethergate status`.
fn sessions_of(socket: &str, user: &str) -> usize {
    status_json(socket)["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["user"].as_str() == Some(user))
        .count()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `account`'s session (the account is named after its user) ends on the
/// server, and then (the client logs the
/// disconnect first) its retry with the old credentials fails with code 9;
/// `seen` is how many failures the client had logged before.
fn access_revoked(socket: &str, client: &SoftEtherClient<'_>, account: &str, seen: usize) {
    wait_until("the session ends", Duration::from_secs(10), || {
        sessions_of(socket, account) == 0
    });
    wait_until(
        "the client's retry with the old credentials fails with code 9",
        Duration::from_secs(40),
        || {
            client
                .connect_failures(account)
                .get(seen..)
                .is_some_and(|new| new.iter().any(|f| f.code == AUTH_FAILED))
        },
    );
}

/// The client's account "alice" connects with `password`; `log` is the
/// server's log for the panic message.
fn log_in(client: &SoftEtherClient<'_>, password: &str, log: impl Fn() -> String) {
    client
        .account_password_set("alice", password, PasswordKind::Standard)
        .expect("password");
    client.account_connect("alice").expect("AccountConnect");
    if let Err(e) = client.wait_connected("alice", Duration::from_secs(20)) {
        panic!("alice with {password:?}: {e}\n{}", log());
    }
}

#[test]
fn users_are_added_repassworded_and_removed_on_a_running_serve() {
    let mut app = recipe_appliance(|_, _| Vec::new());
    let config = app.state.join("ethergate.toml");
    let config_arg = config.display().to_string();
    let socket = app.state.join("admin.sock").display().to_string();
    let original = std::fs::read_to_string(&config).expect("config");

    // add: the password comes from stdin (not a terminal here).
    let added = ok(&user_command(
        "add",
        &config_arg,
        "alice",
        &[],
        "alice-pass\n",
    ));
    assert!(added.contains("user alice added"), "{added}");
    assert!(added.contains("applied by the running serve"), "{added}");
    let again = user_command("add", &config_arg, "ALICE", &[], "x\n");
    assert_eq!(again.status.code(), Some(1), "a duplicate is a user error");

    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    client.nic_create("vpn0").expect("NicCreate");
    client
        .account_create("alice", SERVER, "mikalab", "alice", "vpn0")
        .expect("AccountCreate");
    client.account_retry_set("alice", 999, 5).expect("retry");
    log_in(&client, "alice-pass", || app.serve.log());

    let listed: serde_json::Value = serde_json::from_str(&ok(&ethergate(
        &["user", "list", "--config", &config_arg, "-o", "json"],
        "",
    )))
    .expect("list JSON");
    let alice = listed
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["user"] == "alice")
        .expect("alice listed");
    assert_eq!(alice["sessions"], 1, "{listed}");
    assert_eq!(alice["credential"], "password_hash");

    // passwd from a file: the live session ends, the old password fails.
    let password_file = app.state.join("alice.new");
    std::fs::write(&password_file, "alice-new\n").expect("password file");
    let seen = client.connect_failures("alice").len();
    let changed = ok(&user_command(
        "passwd",
        &config_arg,
        "alice",
        &["--password-file", &password_file.display().to_string()],
        "",
    ));
    assert!(
        changed.contains("user alice: password changed (its sessions end)"),
        "{changed}"
    );
    access_revoked(&socket, &client, "alice", seen);
    let _ = client.account_disconnect("alice");
    log_in(&client, "alice-new", || app.serve.log());

    // del: the session ends, and the user is refused.
    let seen = client.connect_failures("alice").len();
    let removed = ok(&user_command("del", &config_arg, "alice", &[], ""));
    assert!(
        removed.contains("user alice removed (its sessions end)"),
        "{removed}"
    );
    access_revoked(&socket, &client, "alice", seen);

    // Every byte of the operator's file is back as it was.
    assert_eq!(std::fs::read_to_string(&config).expect("config"), original);
    // tsumura was never touched.
    assert!(app.serve.is_running(), "{}", app.serve.log());
    client.stop();
}

#[test]
fn session_disconnect_by_user_ends_every_session_of_that_user() {
    let app = recipe_appliance(|_, _| Vec::new());
    let socket = app.state.join("admin.sock").display().to_string();
    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    common::vpnclient_account(&client, SERVER);
    client.account_connect("acc").expect("AccountConnect");
    client
        .wait_connected("acc", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", app.serve.log()));
    let out = ok(&ethergate(
        &[
            "session",
            "disconnect",
            "--user",
            "TSUMURA",
            "--hub",
            "mikalab",
            "--socket",
            &socket,
        ],
        "",
    ));
    assert!(
        out.contains("disconnected 1 session(s) of TSUMURA"),
        "{out}"
    );
    assert_eq!(sessions_of(&socket, "tsumura"), 0);
    let none = ok(&ethergate(
        &[
            "session",
            "disconnect",
            "--user",
            "nobody",
            "--socket",
            &socket,
        ],
        "",
    ));
    assert!(none.contains("disconnected 0 session(s)"), "{none}");
    client.stop();
}

/// A throwaway RSA certificate and key that serve does not use.
fn other_certificate(dir: &Path) -> (String, String) {
    certificate_pair(dir, "other", "impostor")
}

/// A self-signed RSA 2048 pair `<name>-cert.pem`, `<name>-key.pem` in `dir`.
fn certificate_pair(dir: &Path, name: &str, cn: &str) -> (String, String) {
    let cert = dir.join(format!("{name}-cert.pem")).display().to_string();
    let key = dir.join(format!("{name}-key.pem")).display().to_string();
    let subject = format!("/CN={cn}");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &cert,
            "-days", "2", "-subj", &subject,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req");
    (cert, key)
}

#[test]
fn the_profile_imports_into_vpncmd_and_pins_the_server_certificate() {
    let app = recipe_appliance(|_, _| Vec::new());
    let config = app.state.join("ethergate.toml");
    let profile = |config: &Path| {
        let options = [
            "--server",
            "198.51.100.1",
            "--with-password",
            "--nic",
            "vpn0",
        ];
        let config = config.display().to_string();
        ok(&user_command("profile", &config, "tsumura", &options, ""))
    };
    let good = app.state.join("tsumura.vpn");
    std::fs::write(&good, profile(&config)).expect("profile");

    let client = SoftEtherClient::start(&app.topo, "client").expect("vpnclient");
    client.nic_create("vpn0").expect("NicCreate");
    client.account_import(&good).expect("AccountImport");
    let account = "mikalab@198.51.100.1";
    let settings = client.vpncmd(&["AccountGet", account]).expect("AccountGet");
    assert!(
        settings.raw().contains("Verify Server Certificate"),
        "{}",
        settings.raw()
    );
    client.account_connect(account).expect("AccountConnect");
    client
        .wait_connected(account, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("imported profile: {e}\n{}", app.serve.log()));
    client.account_disconnect(account).expect("disconnect");
    client.account_delete(account).expect("delete");

    // The same profile pinned to another certificate is refused by the
    // client before it sends a password.
    let (cert, key) = other_certificate(&app.state);
    let text = std::fs::read_to_string(&config).expect("config");
    let impostor_config = app.state.join("impostor.toml");
    std::fs::write(
        &impostor_config,
        text.replacen(
            "[server]\n",
            &format!("[server]\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"),
            1,
        ),
    )
    .expect("config");
    let pinned_elsewhere = app.state.join("impostor.vpn");
    std::fs::write(&pinned_elsewhere, profile(&impostor_config)).expect("profile");
    client
        .account_import(&pinned_elsewhere)
        .expect("AccountImport");
    let logins_before = app.serve.log().matches("login succeeded").count();
    client.account_connect(account).expect("AccountConnect");
    let refused = client.wait_connected(account, Duration::from_secs(20));
    let code = client.last_error_code(account);
    eprintln!("pinned to another certificate: {refused:?}, code {code:?}");
    assert!(
        refused.is_err(),
        "connected despite another pinned certificate"
    );
    assert_eq!(code, Some(CERT_NOT_TRUSTED), "refused for the certificate");
    assert_eq!(
        app.serve.log().matches("login succeeded").count(),
        logins_before,
        "no login reached the server"
    );
    client.stop();
}

/// SHA-256 fingerprint of a PEM certificate file, as openssl prints it.
fn file_fingerprint(cert: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"])
        .output()
        .expect("openssl x509");
    fingerprint_of(&String::from_utf8_lossy(&out.stdout))
}

fn fingerprint_of(openssl_output: &str) -> String {
    openssl_output
        .lines()
        .find_map(|l| {
            l.split_once("Fingerprint=")
                .map(|(_, f)| f.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The fingerprint of the certificate a new TLS handshake from `client`
/// is shown.
fn presented_fingerprint(topo: &ethergate_netns::Topology) -> String {
    let out = topo
        .run(
            "client",
            &[
                "sh",
                "-c",
                "openssl s_client -connect 198.51.100.1:443 </dev/null 2>/dev/null \
                 | openssl x509 -noout -fingerprint -sha256",
            ],
        )
        .expect("openssl s_client");
    fingerprint_of(&out.stdout)
}

#[test]
fn a_renewed_certificate_is_taken_by_reload_while_sessions_keep_running() {
    let mut pair = None;
    let app = recipe_appliance(|topo, state| {
        let (cert, key) = certificate_pair(state, "tls", "vpn.example.com");
        let config = state.join("ethergate.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen(
            "[server]\n",
            &format!("[server]\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"),
            1,
        );
        std::fs::write(&config, text).expect("config");
        pair = Some((cert, key));
        vec![common::web_server(topo, state)]
    });
    let (cert, key) = pair.expect("pair");
    let config = app.state.join("ethergate.toml").display().to_string();
    let socket = app.state.join("admin.sock").display().to_string();
    let first = file_fingerprint(&cert);
    assert_eq!(presented_fingerprint(&app.topo), first);
    let status = status_json(&socket);
    assert_eq!(
        status["server"]["tls_certificate"]["sha256"],
        first.as_str()
    );
    assert_eq!(
        status["server"]["tls_certificate"]["subject"],
        "vpn.example.com"
    );

    let client = common::vpnclient_fetches_the_page(&app.topo, "mikalab-pass", || app.serve.log());
    let session = status_json(&socket)["sessions"][0]["name"].clone();

    // Renewal: new files at the same paths, then reload.
    let (new_cert, new_key) = certificate_pair(&app.state, "renewed", "vpn.example.com");
    std::fs::copy(&new_cert, &cert).expect("cert");
    std::fs::copy(&new_key, &key).expect("key");
    let renewed = file_fingerprint(&cert);
    assert_ne!(renewed, first);
    let reloaded = ok(&ethergate(&["reload", "--config", &config], ""));
    assert!(reloaded.contains("tls: new certificate"), "{reloaded}");
    assert_eq!(presented_fingerprint(&app.topo), renewed);
    assert_eq!(
        status_json(&socket)["server"]["tls_certificate"]["sha256"],
        renewed.as_str()
    );

    // The session that was up keeps passing traffic, untouched.
    let page = common::fetch_page(&app.topo);
    assert_eq!(page.stdout, common::PAGE, "{}", page.stderr);
    assert_eq!(status_json(&socket)["sessions"][0]["name"], session);

    // A key that does not belong to the certificate: check and reload
    // refuse it, and the running certificate stays.
    let (_, stray_key) = other_certificate(&app.state);
    std::fs::copy(&stray_key, &key).expect("key");
    let checked = ethergate(&["check", "--config", &config], "");
    assert_eq!(checked.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("does not belong to the certificate"),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let refused = ethergate(&["reload", "--config", &config], "");
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(presented_fingerprint(&app.topo), renewed);
    client.stop();
}
