//! What the NAT test files share: the two-armed topology, the `[nat]`
//! section they start from, and the traffic and assertions they run
//! through it.
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    io::{Read, Write},
    net::TcpListener,
    str::FromStr,
    thread::JoinHandle,
    time::Duration,
};

use ethergate_common::DropReason;
use ethergate_config::{
    InterfaceName, Ipv4Cidr, Nat, NatLimits, NatMode, NatTimeouts, SnatRule, SnatTarget,
};
use ethergate_dataplane::CounterSnapshot;
use ethergate_netns::{Endpoint, Topology, TopologyBuilder};

pub fn cidr(s: &str) -> Ipv4Cidr {
    Ipv4Cidr::from_str(s).expect("cidr")
}

/// The two-armed appliance, with the namespaces in `extra` declared first
/// (they get the same sysctls; their links and routes are the caller's):
///
/// ```text
/// private (10.0.1.26) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
/// ```
pub fn two_armed(extra: &[&str]) -> TopologyBuilder {
    let mut builder = Topology::builder();
    for ns in extra {
        builder = builder.namespace(ns);
    }
    builder
        .namespace("private")
        .namespace("nat")
        .namespace("internet")
        .sysctl_everywhere("net.ipv6.conf.default.disable_ipv6", "1")
        .sysctl("nat", "net.ipv4.ip_forward", "1")
        .veth(
            Endpoint::new("private", "eth0", &["10.0.1.26/16"]),
            Endpoint::new("nat", "priv0", &["10.0.0.1/16"]),
        )
        .veth(
            Endpoint::new("nat", "pub0", &["203.0.113.1/24"]),
            Endpoint::new("internet", "eth0", &["203.0.113.10/24"]),
        )
        .route("private", "default via 10.0.0.1")
}

/// [`two_armed`] on its own, built.
pub fn two_armed_topology() -> Topology {
    two_armed(&[])
        .build()
        .expect("build topology (run as root)")
}

/// `[nat]` with one SNAT rule, 10.0.0.0/16 → `to`, and nothing else.
pub fn snat_config(uplink: &str, inside: &[&str], to: SnatTarget) -> Nat {
    Nat {
        uplink: InterfaceName::new(uplink).expect("name"),
        mode: NatMode::Auto,
        inside: inside
            .iter()
            .map(|name| InterfaceName::new(name).expect("name"))
            .collect(),
        snat: vec![SnatRule {
            source: cidr("10.0.0.0/16"),
            to,
        }],
        dnat: Vec::new(),
        timeouts: NatTimeouts::default(),
        limits: NatLimits::default(),
    }
}

/// Turns off checksum and segmentation offloads on `eth0` in each of
/// `namespaces`. Same-host veth senders hand over CHECKSUM_PARTIAL skbs
/// whose TCP/UDP checksum field holds only the pseudo-header sum; an XDP
/// redirect turns them into raw frames and nobody completes the sum.
/// Frames from a real wire always carry full checksums (decision 0003).
pub fn offloads_off(topo: &Topology, namespaces: &[&str]) {
    for ns in namespaces {
        topo.exec(
            ns,
            &[
                "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off",
            ],
        )
        .expect("ethtool");
    }
}

/// `iptables-save` and `nft list ruleset` in `nat` are empty: the
/// kernel's NAT is not involved.
pub fn assert_no_kernel_nat(topo: &Topology) {
    let iptables = topo
        .exec("nat", &["iptables-save"])
        .expect("iptables-save")
        .stdout;
    assert!(
        iptables
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "iptables rules in nat: {iptables}"
    );
    let nft = topo
        .exec("nat", &["nft", "list", "ruleset"])
        .expect("nft")
        .stdout;
    assert!(nft.trim().is_empty(), "nft ruleset in nat: {nft}");
}

/// No NAT drop of any reason was counted.
pub fn assert_no_nat_drops(counters: &CounterSnapshot) {
    for reason in DropReason::ALL {
        assert_eq!(counters.nat_drop(reason), 0, "{reason:?}");
    }
}

/// A one-shot HTTP server on `addr` in namespace `ns` that answers with
/// the peer address it saw (and returns it).
pub fn http_peer_server(topo: &Topology, ns: &str, addr: &str) -> JoinHandle<String> {
    let listener = topo
        .enter(ns, || TcpListener::bind(addr).expect("bind http"))
        .expect("enter");
    std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).expect("read request");
        let body = format!("{}\n", peer.ip());
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).expect("respond");
        peer.ip().to_string()
    })
}

/// `curl` of `url` from namespace `ns` (5 s at most); its output.
pub fn curl(topo: &Topology, ns: &str, url: &str) -> String {
    topo.exec(ns, &["curl", "-sS", "--max-time", "5", url])
        .unwrap_or_else(|e| panic!("curl {url} from {ns}: {e}"))
        .stdout
}

/// Not a speed assertion: a 2 s iperf3 run from `client` (namespace,
/// target address) to a one-shot server in `server` (namespace, bound
/// address), which must have seen the connection come from `peer`. The
/// receiver's summary is printed under `label` (see it with --nocapture).
pub fn iperf3(
    topo: &Topology,
    server: (&str, &str),
    client: (&str, &str),
    peer: &str,
    label: &str,
) {
    let mut iperf_server = topo
        .spawn(server.0, &["iperf3", "-s", "-1", "-B", server.1])
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let iperf_client = topo
        .exec(client.0, &["iperf3", "-c", client.1, "-t", "2", "-f", "m"])
        .unwrap_or_else(|e| panic!("iperf3 {label}: {e}"));
    let _ = iperf_server.wait_timeout(Duration::from_secs(5));
    let log = iperf_server.log();
    assert!(
        log.contains(&format!("Accepted connection from {peer},")),
        "server saw: {log}"
    );
    let summary: Vec<&str> = iperf_client
        .stdout
        .lines()
        .filter(|l| l.contains("receiver"))
        .collect();
    eprintln!("iperf3 ({label}): {summary:?}");
    assert!(!summary.is_empty(), "{}", iperf_client.stdout);
}
