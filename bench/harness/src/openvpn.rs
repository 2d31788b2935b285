//! OpenVPN 2.6 (Debian) as a third tunnel system, over TCP 443 and UDP
//! 1194 with AES-256-GCM: server in `nat`, client in `client`, through to
//! `private` like the SoftEther-protocol rows. AES-GCM needs OpenVPN's TLS
//! mode (static-key mode is CBC-only and deprecated in 2.6), so a throwaway
//! EC CA, server and client certificate are made locally with openssl.
//!
//! Rows: TCP 1/4 streams both ways, server CPU per GB, ping RTT to the
//! server's tunnel address, 64-byte UDP pps. (No HTTP-via-DNAT, memory or
//! login rows: those are SoftEther-protocol workloads.)

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use ethergate_netns::{Process, Topology};

use crate::{
    report::{Better, Report},
    settings::Settings,
    sys, tools,
    topo::{PRIVATE_IP, SERVER_IP},
    tunnel::{ROWS, ServerPath, Transport, Tunnel, tcp_name, tunnel_rows},
};

pub const OPENVPN_TCP: &str = "OpenVPN 2.6 TCP 443";
pub const OPENVPN_UDP: &str = "OpenVPN 2.6 UDP 1194";
const SERVER_TUN_IP: &str = "10.8.0.1";

/// Makes ca, server and client keys/certificates under `dir`.
fn certificates(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let run = |args: &[&str]| -> Result<()> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=egbench-ca",
    ]);
    run(&ca)?;
    for name in ["server", "client"] {
        let (key, csr, crt, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("/CN={name}"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        run(&req)?;
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
        ])?;
    }
    Ok(())
}

fn start(topo: &Topology, dir: &Path, udp: bool) -> Result<(Process, Process)> {
    let d = dir.display().to_string();
    let (proto_s, proto_c, port) = if udp {
        ("udp", "udp", "1194")
    } else {
        ("tcp-server", "tcp-client", "443")
    };
    let common = [
        "--dev",
        "",
        "--dev-type",
        "tun",
        "--data-ciphers",
        "AES-256-GCM",
        "--cipher",
        "AES-256-GCM",
        "--ca",
        "",
        "--verb",
        "3",
        "--persist-key",
    ];
    let ca = format!("{d}/ca.crt");
    let with = |dev: &str| -> Vec<String> {
        common
            .iter()
            .enumerate()
            .map(|(i, a)| match i {
                1 => dev.to_owned(),
                9 => ca.clone(),
                _ => (*a).to_owned(),
            })
            .collect()
    };
    let mut server = vec!["openvpn".to_owned()];
    server.extend(with("ovpns"));
    server.extend(
        [
            "--proto",
            proto_s,
            "--local",
            SERVER_IP,
            "--port",
            port,
            "--server",
            "10.8.0.0",
            "255.255.255.0",
            "--topology",
            "subnet",
            "--dh",
            "none",
            "--cert",
        ]
        .map(str::to_owned),
    );
    server.extend([
        format!("{d}/server.crt"),
        "--key".into(),
        format!("{d}/server.key"),
    ]);
    let server_refs: Vec<&str> = server.iter().map(String::as_str).collect();
    let mut s = topo.spawn("nat", &server_refs)?;
    let mut client = vec!["openvpn".to_owned()];
    client.extend(with("ovpnc"));
    client.extend(
        [
            "--client",
            "--proto",
            proto_c,
            "--remote",
            SERVER_IP,
            port,
            "--nobind",
            "--connect-retry",
            "1",
            "--cert",
        ]
        .map(str::to_owned),
    );
    client.extend([
        format!("{d}/client.crt"),
        "--key".into(),
        format!("{d}/client.key"),
    ]);
    let client_refs: Vec<&str> = client.iter().map(String::as_str).collect();
    let mut c = topo.spawn("client", &client_refs)?;
    let deadline = Instant::now() + Duration::from_secs(40);
    while !c.log().contains("Initialization Sequence Completed") {
        if !s.is_running() {
            bail!("openvpn server exited: {}", s.log());
        }
        if !c.is_running() {
            bail!("openvpn client exited: {}", c.log());
        }
        if Instant::now() > deadline {
            bail!("openvpn client not connected within 40 s: {}", c.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tools::route_private_via(topo, SERVER_TUN_IP, "ovpnc")?;
    for _ in 0..20 {
        if topo
            .run("client", &["ping", "-c1", "-W1", PRIVATE_IP])?
            .success
        {
            return Ok((s, c));
        }
    }
    bail!("connected, but {PRIVATE_IP} does not answer through OpenVPN")
}

pub fn run(topo: &Topology, report: &mut Report, settings: &Settings) {
    if !settings.wants(OPENVPN_TCP) && !settings.wants(OPENVPN_UDP) {
        return;
    }
    let dir = settings.work.join("openvpn");
    let certs = certificates(&dir);
    // The throughput rows' receiver (the tunnel rows' one ended with them).
    let _iperf = match tools::iperf3_server(topo, "private", PRIVATE_IP) {
        Ok(p) => Some(p),
        Err(e) => {
            report.progress(&format!("openvpn: iperf3 server did not start: {e:#}"));
            None
        }
    };
    for (system, udp) in [(OPENVPN_TCP, false), (OPENVPN_UDP, true)] {
        if !settings.wants(system) || sys::interrupted() {
            continue;
        }
        report.progress(&format!("tunnel: starting {system}"));
        let started = certs
            .as_ref()
            .map_err(|e| anyhow!("certificates: {e:#}"))
            .and_then(|()| start(topo, &dir, udp));
        match started {
            Ok((server, client)) => {
                rows(topo, report, settings, system, server.pid());
                drop(client);
                drop(server);
            }
            Err(e) => {
                let e = format!("{e:#}");
                report.derived(
                    ROWS.point(&tcp_name(1, "up"), system, "Mbit/s", Better::Higher, ""),
                    Err(anyhow!("{e}")),
                );
            }
        }
        let _ = topo.run("client", &["ip", "route", "del", "10.0.0.0/16"]);
    }
}

fn rows(topo: &Topology, report: &mut Report, settings: &Settings, system: &str, pid: u32) {
    let transport = if system == OPENVPN_UDP {
        Transport::Udp(1194)
    } else {
        Transport::Tcp(443)
    };
    let tunnel = Tunnel {
        system,
        pid,
        client: "OpenVPN 2.6 client, AES-256-GCM, tun",
        cpu_of: "the openvpn server process",
        ping_target: SERVER_TUN_IP,
        ping_target_is: "(the server's tun)",
        server_path: ServerPath {
            uplink: "eth0",
            device: "ovpns",
            transport,
        },
        small_packets_counted: ", through the OpenVPN tun; counted by an nft netdev-ingress drop rule on private eth0",
    };
    tunnel_rows(topo, report, settings, &tunnel, |_| {});
}
