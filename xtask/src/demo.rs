//! `cargo xtask demo`: the recipe's main scenario on a throwaway
//! `client — nat — private` topology. ethergate runs in `nat` with its
//! embedded default config; the real Debian SoftEther VPN Client in
//! `client` connects as `tsumura`, takes a DHCP lease with the pushed
//! classless route, and fetches the private web server's page through the
//! tunnel — directly, and through the recipe's DNAT rule (192.168.30.1:80,
//! translated by the eBPF program on the hub's tap) — while the uplink
//! program counts what crosses `nat`. Then a phone: `ethergate user add
//! --wireguard` adds a device to the running hub, and Debian's wireguard-go
//! in `phone`, set up by `wg-quick` from exactly what that command printed,
//! fetches the same pages. Everything is removed afterwards.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use ethergate_netns::{Topology, recipe};

use crate::{
    setup,
    sh::{root, run, step},
};

const WEB_PAGE: &str = "hello from the private web server 10.0.1.26\n";

pub fn main() -> Result<()> {
    setup::main()?;
    step("build ethergate");
    run(&["cargo", "build", "-p", "ethergate"])?;
    let binary = target_dir().join("debug/ethergate");

    step(
        "topology: client (198.51.100.2) — nat (eth0 198.51.100.1 | eth1 10.0.0.1) — private (10.0.1.26)",
    );
    let topo = recipe::with_phone(recipe::topology(&[]))
        .route(recipe::CLIENT, "10.0.0.0/16 via 198.51.100.1")
        .build()
        .context("building the demo topology (are we root?)")?;
    println!("    namespaces: {}", topo.namespace_names().join(", "));

    let site = std::env::temp_dir().join(format!("{}-www", topo.prefix()));
    let _web = recipe::web_server(&topo, &site, WEB_PAGE)?;

    step(
        "ethergate serve in `nat`: the embedded default config, written to a file with its \
         state_dir in a throwaway directory and [hub.wireguard] turned on",
    );
    let binary_arg = binary.display().to_string();
    let state = std::env::temp_dir().join(format!("{}-state", topo.prefix()));
    std::fs::create_dir_all(&state)?;
    let config = state.join("ethergate.toml");
    std::fs::write(&config, demo_config(&state)?)?;
    let config_arg = config.display().to_string();
    let mut ethergate = topo.spawn(
        "nat",
        &[
            &binary_arg,
            "serve",
            "--stats-interval",
            "5",
            "--config",
            &config_arg,
        ],
    )?;
    wait_for(&mut ethergate, "VPN listeners up", Duration::from_secs(15))?;
    let mut seen = 0;
    print_new_lines(&ethergate, &mut seen);

    step("the Debian SoftEther VPN Client in `client` connects to 198.51.100.1:443, hub mikalab");
    // The embedded config keeps no password: serve generated the demo
    // user's into its state directory at start.
    let password = std::fs::read_to_string(state.join(DEMO_PASSWORD_FILE))?;
    let (client, lease) = vpn_client(&topo, password.trim_end())?;
    println!(
        "    DHCP lease {}/{} (router: {:?}), classless routes {:?}",
        lease.ip, lease.prefix_len, lease.router, lease.staticroutes
    );
    let page = topo.exec(
        "client",
        &["curl", "-sS", "--max-time", "10", "http://10.0.1.26/"],
    )?;
    println!(
        "    curl http://10.0.1.26/ through the tunnel says: {}",
        page.stdout.trim()
    );
    if page.stdout != WEB_PAGE {
        bail!("the web page did not come through: {:?}", page.stdout);
    }
    let ping = topo.exec(
        "client",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.1.26"],
    )?;
    print!("{}", indent(ping.stdout.lines().last().unwrap_or_default()));
    // Nothing listens on 192.168.30.1:80 in `nat`: the recipe's DNAT rule
    // (tc on tap_00) sends it to the private web server.
    let dnat = topo.exec(
        "client",
        &["curl", "-sS", "--max-time", "10", "http://192.168.30.1/"],
    )?;
    println!(
        "    curl http://192.168.30.1/ (DNAT 192.168.0.0/16:80 -> 10.0.1.26:80) says: {}",
        dnat.stdout.trim()
    );
    if dnat.stdout != WEB_PAGE {
        bail!("the DNAT'd page did not come through: {:?}", dnat.stdout);
    }

    step("a phone: `ethergate user add --wireguard` on the running hub, wireguard-go in `phone`");
    phone(&topo, &binary, &config, &state)?;

    step("ethergate status (admin socket of the running serve)");
    let status = std::process::Command::new(&binary)
        .args(["status", "--config", &config_arg])
        .output()?;
    print!("{}", indent(&String::from_utf8_lossy(&status.stdout)));
    if !status.status.success() {
        bail!(
            "ethergate status failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    client.stop();

    step("stop ethergate (SIGTERM): final counters");
    let code = ethergate.stop();
    print_new_lines(&ethergate, &mut seen);
    if code != Some(0) {
        bail!("ethergate exited with {code:?}; log above");
    }

    step("ethergate nat forget: the NAT programs and flows a stop keeps for the next start");
    let forget = topo.run("nat", &[&binary_arg, "nat", "forget"])?;
    print!("{}", indent(&forget.stdout));

    step("teardown");
    let names = topo.namespace_names();
    drop(ethergate);
    drop(_web);
    drop(topo);
    let _ = std::fs::remove_dir_all(&site);
    let _ = std::fs::remove_dir_all(&state);
    let left: Vec<&String> = names
        .iter()
        .filter(|n| std::path::Path::new("/run/netns").join(n).exists())
        .collect();
    if !left.is_empty() {
        bail!("namespaces left behind: {left:?}");
    }
    println!(
        "    removed namespaces {}, their links and processes",
        names.join(", ")
    );
    println!(
        "\nWhat you saw: a stock SoftEther client on ethergate's TLS listener, a DHCP lease with\n\
         RFC 3442 routes from the virtual hub, the private web page through the local bridge,\n\
         the recipe's DNAT rule done by the tc program on the hub's tap (no iptables rule\n\
         anywhere), a WireGuard phone added to the same hub by one command and configured from\n\
         its output alone, `ethergate status` of the running appliance, and the uplink XDP\n\
         program counting the tunnel's packets."
    );
    Ok(())
}

/// The embedded default config with `state_dir` and the admin socket in
/// `state` and its commented `[hub.wireguard]` turned on.
fn demo_config(state: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(root().join("deploy/ethergate.toml"))?;
    let state = state.display();
    let replaced = text
        .replace(
            "state_dir = \"/var/lib/ethergate\"",
            &format!("state_dir = \"{state}\""),
        )
        .replace(
            "admin_socket = \"/run/ethergate/admin.sock\"",
            &format!("admin_socket = \"{state}/admin.sock\""),
        )
        .replace(
            "# [hub.wireguard]\n# listen = \"0.0.0.0:51820\"",
            "[hub.wireguard]\nlisten = \"0.0.0.0:51820\"",
        );
    if !replaced.contains("\n[hub.wireguard]\nlisten") || !replaced.contains("admin.sock") {
        bail!("deploy/ethergate.toml changed: the demo cannot turn on [hub.wireguard]");
    }
    Ok(replaced)
}

/// `ethergate user add --wireguard` for a phone on the running serve, then
/// `wg-quick up` in `phone` with exactly the config it printed, and the
/// private page and the DNAT'd page through the WireGuard tunnel.
fn phone(
    topo: &Topology,
    binary: &std::path::Path,
    config: &std::path::Path,
    state: &std::path::Path,
) -> Result<()> {
    let added = std::process::Command::new(binary)
        .args(recipe::add_phone_user_args(config))
        .output()?;
    let out = String::from_utf8_lossy(&added.stdout).into_owned();
    if !added.status.success() {
        bail!(
            "user add --wireguard: {out}{}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    let device = recipe::printed_device_config(&out).context("no device config printed")?;
    print!(
        "{}",
        indent(
            &device.replace(
                device
                    .lines()
                    .find(|l| l.starts_with("PrivateKey"))
                    .unwrap_or("PrivateKey"),
                "PrivateKey = (shown once, hidden here)",
            )
        )
    );
    let conf = state.join("egdemo.conf");
    std::fs::write(&conf, device)?;
    // wg-quick hands DNS to resolvconf, which would rewrite this machine's
    // /etc/resolv.conf: a stand-in records it instead.
    let bin = state.join("bin");
    std::fs::create_dir_all(&bin)?;
    let shim = bin.join("resolvconf");
    std::fs::write(&shim, "#!/bin/sh\ncat > /dev/null\n")?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))?;
    let path = format!("PATH={}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let conf_arg = conf.display().to_string();
    topo.exec(recipe::PHONE, &["env", &path, "wg-quick", "up", &conf_arg])?;
    let page = topo.exec(
        recipe::PHONE,
        &["curl", "-sS", "--max-time", "10", "http://10.0.1.26/"],
    )?;
    println!(
        "    phone: curl http://10.0.1.26/ says: {}",
        page.stdout.trim()
    );
    let dnat = topo.exec(
        recipe::PHONE,
        &["curl", "-sS", "--max-time", "10", "http://192.168.30.1/"],
    )?;
    println!(
        "    phone: curl http://192.168.30.1/ (DNAT) says: {}",
        dnat.stdout.trim()
    );
    let _ = topo.run(recipe::PHONE, &["wg-quick", "down", &conf_arg]);
    if page.stdout != WEB_PAGE || dnat.stdout != WEB_PAGE {
        bail!("the pages did not come through the WireGuard tunnel");
    }
    Ok(())
}

/// The embedded default config's user and its password_file, relative to
/// the state directory (deploy/ethergate.toml).
const DEMO_USER: &str = "tsumura";
const DEMO_PASSWORD_FILE: &str = "tsumura.password";

fn vpn_client<'t>(
    topo: &'t Topology,
    password: &str,
) -> Result<(
    ethergate_softether::SoftEtherClient<'t>,
    ethergate_softether::Lease,
)> {
    use ethergate_softether::{PasswordKind, SoftEtherClient, Udhcpc};
    let client = SoftEtherClient::start(topo, "client")?;
    let tap = client.nic_create("vpn0")?;
    client.account_create("demo", "198.51.100.1:443", "mikalab", DEMO_USER, "vpn0")?;
    client.account_password_set("demo", password, PasswordKind::Standard)?;
    client.account_connect("demo")?;
    let status = client.wait_connected("demo", Duration::from_secs(20))?;
    println!(
        "    {} ({} TCP connection, {})",
        status.session_status,
        status.get("Number of TCP Connections").unwrap_or("?"),
        status.get("Encryption").unwrap_or("?")
    );
    let lease = Udhcpc::new(&tap).static_routes(true).run(topo, "client")?;
    Ok((client, lease))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn wait_for(process: &mut ethergate_netns::Process, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if process.log().contains(needle) {
            return Ok(());
        }
        if !process.is_running() {
            bail!("ethergate exited early:\n{}", process.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "ethergate did not report {needle:?} within {timeout:?}:\n{}",
        process.log()
    )
}

fn print_new_lines(process: &ethergate_netns::Process, seen: &mut usize) {
    let log = process.log();
    if let Some(new) = log.get(*seen..) {
        print!("{}", indent(new));
    }
    *seen = log.len();
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
