//! WireGuard users on a hub, end to end, with Debian's wireguard-go and
//! wg-quick configured only from what `ethergate user add --wireguard`
//! printed: the phone reaches the private host, the recipe's DNAT rule,
//! and a SoftEther client on the same hub; a spoofed source is dropped and
//! counted; roaming, an operator's disconnect and a restart of serve are
//! survived without touching the phone. Run as root.

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{BIN, PAGE, start_serve, web_server, write_recipe_config};
use ethergate_netns::{Process, Topology, recipe};

/// wg-quick sets DNS through resolvconf, which would rewrite the host's
/// /etc/resolv.conf; this stand-in records what it was given instead.
fn resolvconf_shim(state: &Path) -> PathBuf {
    let bin = state.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let script = bin.join("resolvconf");
    let record = state.join("resolvconf.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in -a) cat > {} ;; esac\nexit 0\n",
            record.display()
        ),
    )
    .expect("shim");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

struct Phone<'t> {
    topo: &'t Topology,
    conf: String,
    path: String,
}

impl<'t> Phone<'t> {
    /// `wg-quick up` in the phone namespace (wireguard-go, as there is no
    /// kernel module).
    fn up(topo: &'t Topology, state: &Path, config: &str) -> Self {
        // wg-quick names the interface after the file; wireguard-go's
        // control socket (/var/run/wireguard/NAME.sock) is machine-wide, so
        // every phone of this process gets a name of its own.
        static PHONES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PHONES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("egwg{}x{n}", std::process::id() % 100_000);
        let path = state.join(format!("{name}.conf"));
        std::fs::write(&path, config).expect("wg config");
        let path = path.display().to_string();
        let shim = resolvconf_shim(state);
        let env_path = format!("PATH={}:/usr/sbin:/usr/bin:/sbin:/bin", shim.display());
        let up = topo
            .run(recipe::PHONE, &["env", &env_path, "wg-quick", "up", &path])
            .expect("wg-quick");
        assert!(
            up.success,
            "wg-quick up failed:\n{}\n{}",
            up.stdout, up.stderr
        );
        Phone {
            topo,
            conf: name,
            path,
        }
    }

    fn ping(&self, to: &str, count: &str) -> ethergate_netns::CommandOutput {
        self.topo
            .run(
                recipe::PHONE,
                &["ping", "-c", count, "-W", "1", "-i", "0.2", to],
            )
            .expect("ping")
    }

    fn fetch(&self, url: &str) -> ethergate_netns::CommandOutput {
        self.topo
            .run(recipe::PHONE, &["curl", "-sS", "--max-time", "10", url])
            .expect("curl")
    }

    /// `wg show` on the phone, for failure messages.
    fn show(&self) -> String {
        let out = self
            .topo
            .run(recipe::PHONE, &["wg", "show"])
            .expect("wg show");
        format!("{}{}", out.stdout, out.stderr)
    }

    /// Waits until a ping to `to` is answered (the phone redoes its
    /// handshake on its own after losing its session).
    fn reaches(&self, to: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.ping(to, "1").success {
                return true;
            }
        }
        false
    }
}

impl Drop for Phone<'_> {
    fn drop(&mut self) {
        let _ = self
            .topo
            .run(recipe::PHONE, &["wg-quick", "down", &self.path]);
    }
}

fn status(state: &Path) -> serde_json::Value {
    common::status_json(&state.join("admin.sock").display().to_string())
}

fn wireguard_drops(state: &Path, reason: &str) -> u64 {
    let status = status(state);
    status["hubs"][0]["wireguard"]["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop counter {reason}: {status:#}"))
}

#[test]
fn a_wireguard_phone_joins_the_hub_configured_from_ethergate_alone() {
    let topo = recipe::with_phone(recipe::topology(&[]))
        .build()
        .expect("topology (run as root)");
    let (state, config, serve) = wireguard_appliance(&topo, &recipe::nat_config(""));
    let _web = web_server(&topo, &state);
    let stdout = cli(&recipe::add_phone_user_args(&config)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(stdout.contains("applied by the running serve"), "{stdout}");
    let device = recipe::printed_device_config(&stdout)
        .expect("a device config in the output")
        .to_owned();
    assert!(
        device.contains("AllowedIPs = 192.168.30.0/24, 10.0.0.0/16"),
        "{device}"
    );
    let address = device
        .lines()
        .find_map(|l| l.strip_prefix("Address = "))
        .and_then(|a| a.split('/').next())
        .expect("Address line")
        .to_owned();

    let phone = Phone::up(&topo, &state, &device);
    assert!(
        std::fs::read_to_string(state.join("resolvconf.txt"))
            .is_ok_and(|t| t.contains("nameserver 192.168.30.1")),
        "DNS from the config reached resolvconf"
    );

    // The private host, directly and through the recipe's DNAT rule.
    let ping = phone.ping("10.0.1.26", "3");
    assert!(
        ping.success,
        "ping 10.0.1.26:\n{}\n{}\n{:#}\n{}",
        ping.stdout,
        serve.log(),
        status(&state)["hubs"][0]["wireguard"],
        phone.show()
    );
    let page = phone.fetch("http://10.0.1.26/");
    assert_eq!(page.stdout, PAGE, "{}", page.stderr);
    let dnat = phone.fetch("http://192.168.30.1/");
    assert_eq!(dnat.stdout, PAGE, "through DNAT: {}", dnat.stderr);

    // The session as status shows it.
    let s = status(&state);
    let sessions = s["sessions"].as_array().expect("sessions");
    let wg = sessions
        .iter()
        .find(|x| x["user"] == "phone")
        .unwrap_or_else(|| panic!("no WireGuard session: {s:#}"));
    assert_eq!(wg["protocol"], "wireguard", "{wg:#}");
    assert!(
        wg["client"]
            .as_str()
            .is_some_and(|c| c.starts_with(recipe::PHONE_IP)),
        "{wg:#}"
    );
    assert!(
        wg["received"]["frames"].as_u64().unwrap_or(0) >= 3,
        "{wg:#}"
    );

    // A SoftEther client on the same hub, and the two reach each other.
    let client = common::vpnclient_fetches_the_page(&topo, "mikalab-pass", || serve.log());
    let softether_ip = topo
        .run(
            "client",
            &["ip", "-4", "-o", "addr", "show", "dev", "vpn_vpn0"],
        )
        .expect("ip addr")
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
        .expect("the SoftEther client's address");
    let ping = phone.ping(&softether_ip, "3");
    assert!(
        ping.success,
        "phone → SoftEther client {softether_ip}:\n{}",
        ping.stdout
    );
    let back = topo
        .run(
            "client",
            &["ping", "-c", "3", "-W", "1", "-i", "0.2", &address],
        )
        .expect("ping");
    assert!(
        back.success,
        "SoftEther client → phone {address}:\n{}",
        back.stdout
    );
    drop(client);

    // A packet with a source the phone does not own is dropped and named.
    let before = wireguard_drops(&state, "spoofed_source");
    topo.run(
        recipe::PHONE,
        &["ip", "addr", "add", "192.168.30.250/32", "dev", &phone.conf],
    )
    .expect("alias");
    let spoofed = topo
        .run(
            recipe::PHONE,
            &[
                "ping",
                "-c",
                "3",
                "-W",
                "1",
                "-i",
                "0.2",
                "-I",
                "192.168.30.250",
                "10.0.1.26",
            ],
        )
        .expect("ping");
    assert!(!spoofed.success, "a spoofed source got through");
    assert!(wireguard_drops(&state, "spoofed_source") >= before + 3);

    // Roaming: the phone's address and port change (a new network; a NAT
    // that rebinds); the hub follows it. wireguard-go caches the source
    // address it last used per peer, and rebinding (a new listen port)
    // is how a phone app moves to a new network.
    topo.ip(
        recipe::PHONE,
        &["addr", "add", "203.0.113.7/24", "dev", "eth0"],
    )
    .expect("new address");
    topo.ip(
        recipe::PHONE,
        &[
            "route",
            "replace",
            "203.0.113.0/24",
            "dev",
            "eth0",
            "src",
            "203.0.113.7",
        ],
    )
    .expect("new source");
    topo.exec(
        recipe::PHONE,
        &["wg", "set", &phone.conf, "listen-port", "40777"],
    )
    .expect("rebind");
    assert!(
        phone.reaches("10.0.1.26", Duration::from_secs(10)),
        "after roaming\n{}\n{:#}\n{}",
        serve.log(),
        status(&state)["hubs"][0]["wireguard"],
        phone.show()
    );
    let roamed = status(&state);
    assert!(
        roamed["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|x| x["user"] == "phone" && x["client"] == "203.0.113.7:40777"),
        "status follows the roaming phone: {roamed:#}"
    );

    // An operator's disconnect drops the keys; the phone handshakes again
    // by itself.
    let out = std::process::Command::new(BIN)
        .args([
            "session",
            "disconnect",
            "--user",
            "phone",
            "--socket",
            &state.join("admin.sock").display().to_string(),
        ])
        .output()
        .expect("disconnect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        phone.reaches("10.0.1.26", Duration::from_secs(30)),
        "after disconnect\n{}",
        serve.log()
    );

    // A restart of serve: the phone resumes by itself.
    drop(serve);
    let serve = start_serve(&topo, &config);
    assert!(
        phone.reaches("10.0.1.26", Duration::from_secs(30)),
        "after restart\n{}",
        serve.log()
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// The preshared key `user add --wireguard` generates is what the
/// handshake needs: a device with another key gets no session, the right
/// one connects; when the operator rotates the key (new file, reload) the
/// old key's session ends and the device needs the config printed anew.
#[test]
fn a_phone_needs_its_preshared_key_and_a_rotated_key_ends_its_session() {
    let topo = recipe::with_phone(recipe::topology(&[]))
        .build()
        .expect("topology (run as root)");
    let (state, config, serve) = wireguard_appliance(&topo, "");
    let endpoint = format!("{}:{}", recipe::PHONE_GATEWAY_IP, recipe::WIREGUARD_PORT);
    let device = add_phone(&config, &endpoint);
    let psk_line = |config: &str| {
        config
            .lines()
            .find(|l| l.starts_with("PresharedKey = "))
            .unwrap_or_else(|| panic!("no PresharedKey in\n{config}"))
            .to_owned()
    };
    let key = psk_line(&device);
    let file = state.join("wireguard-mikalab-phone.psk");
    let written = std::fs::read_to_string(&file).expect("the key file in state_dir");
    assert_eq!(format!("PresharedKey = {written}").trim_end(), key);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("metadata").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&config)
            .expect("config")
            .contains("wireguard_preshared_key_file = \"wireguard-mikalab-phone.psk\""),
    );

    // The device holds another key: its handshakes fail, nothing gets through.
    let wrong = ethergate_wireguard::PresharedKey::from_bytes([0x5a; 32]).to_base64();
    let phone = Phone::up(
        &topo,
        &state,
        &device.replace(&key, &format!("PresharedKey = {wrong}")),
    );
    assert!(
        !phone.ping("10.0.1.26", "3").success,
        "a wrong preshared key got through\n{}",
        phone.show()
    );
    // The right key (as `wg set` takes it, from a file): connected.
    let server_key = device
        .lines()
        .find_map(|l| l.strip_prefix("PublicKey = "))
        .expect("server key")
        .to_owned();
    let set_key = |key_file: &Path| {
        topo.exec(
            recipe::PHONE,
            &[
                "wg",
                "set",
                &phone.conf,
                "peer",
                &server_key,
                "preshared-key",
                &key_file.display().to_string(),
            ],
        )
        .expect("wg set preshared-key");
    };
    set_key(&file);
    assert!(
        phone.reaches("10.0.1.26", Duration::from_secs(15)),
        "with the right key\n{}\n{}",
        serve.log(),
        phone.show()
    );

    // Rotation: a new key in the file, a reload. The old key's session ends
    // and the phone cannot make a new one with it.
    let rotated = ethergate_wireguard::PresharedKey::from_bytes([0x77; 32]).to_base64();
    std::fs::write(&file, format!("{rotated}\n")).expect("rotate");
    let socket = state.join("admin.sock").display().to_string();
    let reloaded = cli(&["reload", "--socket", &socket]);
    assert!(
        reloaded.contains("user phone: WireGuard key, preshared key or address changed"),
        "{reloaded}"
    );
    assert!(
        !status(&state)["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|x| x["user"] == "phone"),
        "the old key's session ended"
    );
    assert!(
        !phone.ping("10.0.1.26", "3").success,
        "the rotated-out key still works\n{}",
        phone.show()
    );
    // The config printed now carries the new key, and it works.
    let printed = cli(&[
        "user",
        "wg-config",
        "--config",
        &config.display().to_string(),
        "--hub",
        recipe::HUB,
        "phone",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(psk_line(&printed), format!("PresharedKey = {rotated}"));
    set_key(&file);
    assert!(
        phone.reaches("10.0.1.26", Duration::from_secs(15)),
        "with the rotated key\n{}\n{}",
        serve.log(),
        phone.show()
    );
    drop(phone);
    drop(serve);
    let _ = std::fs::remove_dir_all(&state);
}

/// A multi-homed appliance (a second address on the phone's link; the
/// endpoint listens on every address) and a phone behind a stateful
/// firewall, as every home router and carrier NAT is: the phone writes to
/// the second address, and only a reply from that same address is let back
/// in. Routing alone would answer from the link's first address.
#[test]
fn a_phone_behind_a_stateful_firewall_reaches_a_second_address() {
    const SECOND: &str = "203.0.113.9";
    let topo = recipe::with_phone(recipe::topology(&[]))
        .build()
        .expect("topology (run as root)");
    topo.ip(
        "nat",
        &["addr", "add", &format!("{SECOND}/24"), "dev", "eth2"],
    )
    .expect("second address");
    // The phone's firewall: replies only (conntrack), as a NAT would.
    let ruleset = "table ip phonefw {\n\
        chain input {\n\
        type filter hook input priority 0; policy accept;\n\
        udp sport 51820 ct state new counter drop\n\
        }\n\
        }\n";
    let (state, config, serve) = wireguard_appliance(&topo, "");
    let rules = state.join("phonefw.nft");
    std::fs::write(&rules, ruleset).expect("ruleset");
    topo.exec(recipe::PHONE, &["nft", "-f", &rules.display().to_string()])
        .expect("nft");
    let device = add_phone(&config, &format!("{SECOND}:{}", recipe::WIREGUARD_PORT));
    let phone = Phone::up(&topo, &state, &device);
    let ping = phone.ping("10.0.1.26", "3");
    let firewall = topo
        .run(recipe::PHONE, &["nft", "list", "ruleset"])
        .expect("nft list");
    assert!(
        ping.success,
        "through the second address:\n{}\n{}\nfirewall: {}\n{}",
        ping.stdout,
        phone.show(),
        firewall.stdout,
        serve.log()
    );
    let s = status(&state);
    assert!(
        s["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|x| x["user"] == "phone"),
        "{s:#}"
    );
    drop(phone);
    drop(serve);
    let _ = std::fs::remove_dir_all(&state);
}

/// The topology's state directory and a recipe config with
/// `[hub.wireguard]`, then `extra`, appended; serve started from it, once its
/// WireGuard endpoint is up. Returns (state, config, serve).
fn wireguard_appliance(topo: &Topology, extra: &str) -> (PathBuf, PathBuf, Process) {
    let state = std::env::temp_dir().join(format!("{}-state", topo.prefix()));
    std::fs::create_dir_all(&state).expect("state");
    let hash = common::password_hash("tsumura", "mikalab-pass");
    let config = write_recipe_config(&state, &format!("password_hash = \"{hash}\""));
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&recipe::wireguard_config());
    text.push_str(extra);
    std::fs::write(&config, text).expect("config");
    let mut serve = start_serve(topo, &config);
    common::wait_for(&mut serve, "WireGuard endpoint up", Duration::from_secs(5));
    (state, config, serve)
}

/// `ethergate ARGS`, which must succeed; its stdout.
fn cli(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("ethergate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `ethergate user add --wireguard` of user `phone`, its device reaching
/// the hub at `endpoint`; the device config it printed.
fn add_phone(config: &Path, endpoint: &str) -> String {
    let config = config.display().to_string();
    let added = cli(&[
        "user",
        "add",
        "--config",
        &config,
        "--hub",
        recipe::HUB,
        "phone",
        "--wireguard",
        "--endpoint",
        endpoint,
    ]);
    recipe::printed_device_config(&added)
        .unwrap_or_else(|| panic!("no device config in {added}"))
        .to_owned()
}

/// A flood of initiations (valid mac1, a key nobody has, as an attacker
/// who knows the server's public key sends them) puts the endpoint under
/// load: it answers with cookie replies instead of doing Curve25519 work,
/// never with a handshake response; a real peer in the middle of the flood
/// gets a cookie, proves its address with it, and completes its handshake.
#[test]
fn a_flood_of_initiations_gets_cookies_and_a_real_peer_still_connects() {
    use ethergate_wireguard::{
        Message, PrivateKey,
        cookie::open_cookie_reply,
        handshake::{Identity, consume_response, cookie_key, initiate, tai64n},
    };
    let topo = recipe::with_phone(recipe::topology(&[]))
        .build()
        .expect("topology (run as root)");
    let device = Identity::new(&PrivateKey::from_bytes([0x11; 32]));
    let (state, _config, serve) = wireguard_appliance(
        &topo,
        &format!(
            "\n[[hub.user]]\nname = \"phone\"\nwireguard_public_key = \"{}\"\n",
            device.public
        ),
    );
    let server_key = status(&state)["hubs"][0]["wireguard"]["public_key"]
        .as_str()
        .and_then(|k| ethergate_wireguard::PublicKey::from_base64(k).ok())
        .expect("the hub's public key in status");
    let attacker = Identity::new(&PrivateKey::from_bytes([0x66; 32]));
    let target = format!("{}:{}", recipe::PHONE_GATEWAY_IP, recipe::WIREGUARD_PORT);

    const FLOOD_LIMIT: usize = 60_000;
    const FLOOD_TIME: Duration = Duration::from_secs(3);
    let (sent, replies, responses_to_flood, legit, attempts) = topo
        .enter(recipe::PHONE, || {
            let flood = std::net::UdpSocket::bind("203.0.113.2:0").expect("bind");
            flood.connect(&target).expect("connect");
            flood.set_nonblocking(true).expect("nonblocking");
            let forged: Vec<[u8; 148]> = (0..64u8)
                .map(|i| {
                    initiate(
                        &attacker,
                        &server_key,
                        &[0; 32],
                        [i; 32],
                        u32::from(i),
                        tai64n(Duration::from_secs(u64::from(i))),
                        None,
                    )
                    .expect("initiation")
                    .0
                })
                .collect();
            let peer = std::net::UdpSocket::bind("203.0.113.2:0").expect("bind");
            peer.connect(&target).expect("connect");
            peer.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            let (mut sent, mut replies, mut responses) = (0usize, 0usize, 0usize);
            let mut buf = [0u8; 256];
            let start = Instant::now();
            let mut legit: Option<Result<(), String>> = None;
            let mut cookie: Option<[u8; 16]> = None;
            let mut attempt = 0u32;
            // The flood runs until its time or count is used up, the real
            // peer until it is done (at most 20 attempts).
            while legit.is_none() || (start.elapsed() < FLOOD_TIME && sent < FLOOD_LIMIT) {
                let flooding = start.elapsed() < FLOOD_TIME && sent < FLOOD_LIMIT;
                for _ in 0..if flooding { 256 } else { 0 } {
                    if flood.send(&forged[sent % forged.len()]).is_ok() {
                        sent += 1;
                    }
                }
                while let Ok(n) = flood.recv(&mut buf) {
                    match buf.first() {
                        Some(3) if n == 64 => replies += 1,
                        Some(2) => responses += 1,
                        _ => {}
                    }
                }
                // The real peer tries once the flood has run a while.
                if legit.is_none() && start.elapsed() > Duration::from_millis(500) {
                    attempt += 1;
                    let (init, pending) = initiate(
                        &device,
                        &server_key,
                        &[0; 32],
                        [attempt as u8; 32],
                        1000 + attempt,
                        tai64n(
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .expect("clock"),
                        ),
                        cookie.as_ref(),
                    )
                    .expect("initiation");
                    peer.send(&init).expect("send");
                    // Answers to earlier attempts (late) do not match this
                    // one: skipped, as a WireGuard client skips them.
                    let mut answer = [0u8; 256];
                    let deadline = Instant::now() + Duration::from_millis(300);
                    while legit.is_none() && Instant::now() < deadline {
                        let Ok(n) = peer.recv(&mut answer) else { break };
                        match Message::parse(&answer[..n]) {
                            Ok(Message::CookieReply(reply))
                                if reply.receiver == pending.local_index =>
                            {
                                cookie = open_cookie_reply(
                                    &cookie_key(&server_key),
                                    &pending.mac1,
                                    &reply,
                                );
                                break;
                            }
                            Ok(Message::Response(response))
                                if response.receiver == pending.local_index =>
                            {
                                legit = Some(
                                    consume_response(&device, &pending, &response)
                                        .map(drop)
                                        .map_err(|e| e.to_string()),
                                );
                            }
                            _ => {}
                        }
                    }
                    if legit.is_none() && attempt >= 20 {
                        legit = Some(Err("no handshake in 20 attempts".into()));
                    }
                }
            }
            (sent, replies, responses, legit, attempt)
        })
        .expect("phone namespace");
    let wg = status(&state)["hubs"][0]["wireguard"].clone();
    eprintln!(
        "flood: {sent} forged initiations; {replies} cookie replies received; the real peer \
         needed {attempts} attempt(s); server: {wg:#}"
    );
    assert_eq!(
        responses_to_flood, 0,
        "a key nobody has never gets a handshake response"
    );
    assert!(
        wg["cookie_replies"].as_u64().unwrap_or(0) > 0,
        "under load the endpoint asks for cookies: {wg:#}"
    );
    assert!(replies > 0, "cookie replies reached the sender");
    match legit {
        Some(Ok(())) => {}
        other => panic!(
            "the real peer did not complete its handshake: {other:?}\n{}",
            serve.log()
        ),
    }
    assert!(wg["handshakes"].as_u64().unwrap_or(0) >= 1, "{wg:#}");
    let _ = std::fs::remove_dir_all(&state);
}
