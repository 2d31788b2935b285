//! `cargo xtask demo`: ethergate with its embedded default config in a
//! throwaway `client — nat — private` topology, real traffic through it, and
//! everything removed afterwards.
//!
//! It shows what exists today and says so: the uplink XDP program attached
//! on `nat` and counting the traffic that crosses it. The VPN server and the
//! NAT rewriting are not built yet; the demo does not pretend they are.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use ethergate_netns::{Endpoint, Topology};

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
    let topo = Topology::builder()
        .namespace("client")
        .namespace("nat")
        .namespace("private")
        .sysctl("nat", "net.ipv4.ip_forward", "1")
        .veth(
            Endpoint::new("client", "eth0", &["198.51.100.2/24"]),
            // `eth0` is the uplink the embedded default config names.
            Endpoint::new("nat", "eth0", &["198.51.100.1/24"]),
        )
        .veth(
            Endpoint::new("nat", "eth1", &["10.0.0.1/16"]),
            Endpoint::new("private", "eth0", &["10.0.1.26/16"]),
        )
        .route("client", "10.0.0.0/16 via 198.51.100.1")
        .route("private", "198.51.100.0/24 via 10.0.0.1")
        .build()
        .context("building the demo topology (are we root?)")?;
    println!("    namespaces: {}", topo.namespace_names().join(", "));

    let site = std::env::temp_dir().join(format!("{}-www", topo.prefix()));
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), WEB_PAGE)?;
    let site_arg = site.display().to_string();
    let _web = topo.spawn(
        "private",
        &[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "10.0.1.26:80",
            "-h",
            &site_arg,
        ],
    )?;

    step("ethergate serve (embedded default config) in `nat`");
    let binary_arg = binary.display().to_string();
    let mut ethergate = topo.spawn("nat", &[&binary_arg, "serve", "--stats-interval", "2"])?;
    wait_for(&mut ethergate, "attached", Duration::from_secs(10))?;
    let mut seen = 0;
    print_new_lines(&ethergate, &mut seen);

    step("traffic from `client`: 5 pings and an HTTP GET to 10.0.1.26");
    let ping = topo.exec(
        "client",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.1.26"],
    )?;
    print!("{}", indent(&ping.stdout));
    let page = topo.exec(
        "client",
        &["curl", "-sS", "--max-time", "5", "http://10.0.1.26/"],
    )?;
    println!("    curl says: {}", page.stdout.trim());
    if page.stdout != WEB_PAGE {
        bail!("the web page did not come through: {:?}", page.stdout);
    }
    std::thread::sleep(Duration::from_millis(2500));

    step("stop ethergate (SIGTERM): final counters");
    let code = ethergate.stop();
    print_new_lines(&ethergate, &mut seen);
    if code != Some(0) {
        bail!("ethergate exited with {code:?}; log above");
    }

    step("teardown");
    let names = topo.namespace_names();
    drop(ethergate);
    drop(_web);
    drop(topo);
    let _ = std::fs::remove_dir_all(&site);
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
        "\nWhat you saw: the uplink XDP program classifying and counting real traffic.\n\
         Not yet built: the SoftEther-compatible VPN server (issue 4) and the eBPF NAT (issue 5)."
    );
    Ok(())
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
