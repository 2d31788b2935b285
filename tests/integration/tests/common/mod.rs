//! What the NAT test files share: the two-armed topology, the `[nat]`
//! section they start from, and the traffic and assertions they run
//! through it.
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    io::{Read, Write},
    net::TcpListener,
    thread::JoinHandle,
    time::Duration,
};

use ethergate_common::DropReason;
use ethergate_config::{NatMode, SnatTarget};
use ethergate_dataplane::{AttachMode, CounterSnapshot, Dataplane};
use ethergate_netns::Topology;

pub use ethergate_fixtures::nat_config::{cidr, snat_config};
pub use ethergate_netns::recipe::two_armed;

/// [`two_armed`] on its own, built.
pub fn two_armed_topology() -> Topology {
    two_armed(&[])
        .build()
        .expect("build topology (run as root)")
}

/// [`two_armed_topology`] with SNAT (10.0.0.0/16 → `snat_to`) forced into
/// XDP on its veths: the special case that needs `redirect_peer` on the far
/// ends and offloads off there (decision 0003), and a warm-up ping so the
/// appliance's next hop is resolved. The plain setup is auto mode (tc).
pub fn forced_xdp_two_armed(snat_to: SnatTarget) -> (Topology, Dataplane) {
    let topo = two_armed_topology();
    offloads_off(&topo, &["private", "internet"]);
    let mut dataplane = Dataplane::load().expect("load eBPF (run as root)");
    let mut config = snat_config("pub0", &["priv0"], snat_to);
    config.mode = NatMode::Xdp;
    topo.enter("nat", || dataplane.apply_nat(&config))
        .expect("enter nat")
        .expect("apply [nat]");
    for ns in ["private", "internet"] {
        let mode = topo
            .enter(ns, || dataplane.attach_redirect_peer("eth0"))
            .expect("enter")
            .expect("attach redirect_peer");
        assert_eq!(mode, AttachMode::XdpNative);
    }
    let uplink = dataplane.uplink_attachment().expect("uplink attached");
    assert_eq!(
        (uplink.interface.as_str(), uplink.mode),
        ("pub0", AttachMode::XdpNative)
    );
    topo.exec("nat", &["ping", "-c", "1", "-W", "2", "203.0.113.10"])
        .expect("nat reaches internet");
    (topo, dataplane)
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
    iperf3_with(topo, server, client, peer, label, &[]);
}

fn iperf3_with(
    topo: &Topology,
    server: (&str, &str),
    client: (&str, &str),
    peer: &str,
    label: &str,
    extra: &[&str],
) {
    let mut iperf_server = topo
        .spawn(server.0, &["iperf3", "-s", "-1", "-B", server.1])
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let mut args = vec!["iperf3", "-c", client.1, "-t", "2", "-f", "m"];
    args.extend_from_slice(extra);
    let iperf_client = topo
        .exec(client.0, &args)
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

/// [`iperf3`] with the server sending (`-R`): the download direction.
pub fn iperf3_reverse(
    topo: &Topology,
    server: (&str, &str),
    client: (&str, &str),
    peer: &str,
    label: &str,
) {
    iperf3_with(topo, server, client, peer, label, &["-R"]);
}

/// What a [`Sniffer`] saw.
#[derive(Debug, Default)]
pub struct Sniffed {
    /// IPv4 packets seen arriving.
    pub ipv4: u64,
    /// Of those, packets whose source lies in the watched prefix.
    pub from_prefix: u64,
    /// The first few of them, as "src -> dst proto".
    pub examples: Vec<String>,
    /// Frames the kernel dropped before the sniffer read them
    /// (PACKET_STATISTICS): nonzero means the count is a lower bound.
    pub missed: u64,
}

/// Counts IPv4 packets *arriving* on an interface whose source lies in a
/// prefix: the far side's view of what left the appliance. An AF_PACKET
/// socket, read on its own thread until [`Sniffer::stop`].
pub struct Sniffer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: JoinHandle<Sniffed>,
}

impl Sniffer {
    /// Starts watching `interface` in namespace `ns` for sources in
    /// `prefix` ("10.0.0.0/16").
    pub fn start(topo: &Topology, ns: &str, interface: &str, prefix: &str) -> Self {
        let prefix = cidr(prefix);
        let (network, len) = (u32::from(prefix.network()), u32::from(prefix.prefix_len()));
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let fd = topo
            .enter(ns, || open_packet_socket(interface))
            .expect("enter namespace");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut seen = Sniffed::default();
            let mut buf = vec![0u8; 65536];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: fd is our open socket; buf is writable for its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n <= 0 {
                    continue;
                }
                count_frame(&buf[..n as usize], network, mask, &mut seen);
            }
            seen.missed = packet_drops(fd);
            // SAFETY: fd is ours and closed once.
            unsafe { libc::close(fd) };
            seen
        });
        // Let the socket see traffic before the caller sends any.
        std::thread::sleep(Duration::from_millis(50));
        Self { stop, handle }
    }

    /// Stops after reading what is already queued; what it saw.
    pub fn stop(self) -> Sniffed {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().expect("sniffer thread")
    }
}

fn open_packet_socket(interface: &str) -> i32 {
    let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(eth_p_all),
        )
    };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    let name = std::ffi::CString::new(interface).expect("name");
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex != 0, "no interface {interface}");
    // SAFETY: all-zero sockaddr_ll is valid; filled below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = eth_p_all;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    let rcvbuf: i32 = 16 << 20;
    // SAFETY: valid option values of the sizes given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const rcvbuf).cast(),
            4,
        );
    }
    fd
}

fn packet_drops(fd: i32) -> u64 {
    let mut stats = [0u32; 2];
    let mut len = 8u32;
    // SAFETY: PACKET_STATISTICS writes a tpacket_stats (two u32s).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc == 0 { u64::from(stats[1]) } else { 0 }
}

fn count_frame(frame: &[u8], network: u32, mask: u32, seen: &mut Sniffed) {
    let mut l3 = 14;
    let mut ethertype = match frame.get(12..14) {
        Some(t) => u16::from_be_bytes([t[0], t[1]]),
        None => return,
    };
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        let Some(t) = frame.get(l3 + 2..l3 + 4) else {
            return;
        };
        ethertype = u16::from_be_bytes([t[0], t[1]]);
        l3 += 4;
    }
    if ethertype != 0x0800 {
        return;
    }
    let Some(ip) = frame.get(l3..l3 + 20) else {
        return;
    };
    seen.ipv4 += 1;
    let src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    if src & mask == network {
        seen.from_prefix += 1;
        if seen.examples.len() < 5 {
            seen.examples.push(format!(
                "{} -> {} proto {}",
                std::net::Ipv4Addr::from(src),
                std::net::Ipv4Addr::from([ip[16], ip[17], ip[18], ip[19]]),
                ip[9]
            ));
        }
    }
}

/// A UDP echo server on `addr` in `ns`, answering until `count` datagrams
/// were echoed or 10 s pass; returns the peers it saw.
pub fn udp_echo_server(
    topo: &Topology,
    ns: &str,
    addr: &str,
    count: usize,
) -> JoinHandle<Vec<std::net::SocketAddr>> {
    let socket = topo
        .enter(ns, || std::net::UdpSocket::bind(addr).expect("bind udp"))
        .expect("enter");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut peers = Vec::new();
        let mut buf = vec![0u8; 65536];
        while peers.len() < count {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                break;
            };
            let _ = socket.send_to(&buf[..n], peer);
            peers.push(peer);
        }
        peers
    })
}

/// A TCP echo server on `addr` in `ns` (one thread per connection, each
/// echoing until its peer closes). Runs for the rest of the test.
pub fn tcp_echo_server(topo: &Topology, ns: &str, addr: &str) {
    let listener = topo
        .enter(ns, || TcpListener::bind(addr).expect("bind tcp"))
        .expect("enter");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// One UDP request from `ns` (bound to `bind`) to an echo server at `to`
/// in `server_ns`: asserts the reply came back unchanged from `to`, and
/// returns the source address the server saw.
pub fn udp_round_trip(
    topo: &Topology,
    (ns, bind): (&str, &str),
    (server_ns, to): (&str, &str),
    payload: &[u8],
) -> std::net::SocketAddr {
    let echo = udp_echo_server(topo, server_ns, to, 1);
    let (reply, from) = topo
        .enter(ns, || {
            let socket = std::net::UdpSocket::bind(bind).expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            socket.send_to(payload, to).expect("send");
            let mut buf = vec![0u8; 65536];
            let (n, from) = socket
                .recv_from(&mut buf)
                .expect("udp reply through the NAT");
            (buf[..n].to_vec(), from)
        })
        .expect("enter");
    assert_eq!(reply, payload);
    assert_eq!(from.to_string(), to);
    echo.join().expect("echo server")[0]
}

/// The far side saw real traffic and not one packet with a private source.
pub fn assert_no_private_sources(sniffed: &Sniffed, at_least: u64) {
    assert!(sniffed.ipv4 >= at_least, "too little seen: {sniffed:?}");
    assert_eq!(sniffed.from_prefix, 0, "private sources left: {sniffed:?}");
}

/// A field of a `/proc/net/snmp` table (`Tcp`, `OutSegs`): the file has a
/// header line and a value line per table.
pub fn snmp_value(text: &str, table: &str, field: &str) -> u64 {
    let mut lines = text.lines().filter(|l| l.starts_with(&format!("{table}:")));
    let header = lines.next().unwrap_or_else(|| panic!("no {table} header"));
    let values = lines.next().unwrap_or_else(|| panic!("no {table} values"));
    let index = header
        .split_whitespace()
        .position(|h| h == field)
        .unwrap_or_else(|| panic!("no {table}.{field}"));
    values
        .split_whitespace()
        .nth(index)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad {table}.{field}"))
}

/// TCP segments `ns` has put on the wire so far, as its own stack counts
/// them (retransmits apart: Linux's `OutSegs` may or may not include them).
pub fn tcp_segments_sent(topo: &Topology, ns: &str) -> (u64, u64) {
    let snmp = topo
        .exec(ns, &["cat", "/proc/net/snmp"])
        .expect("snmp")
        .stdout;
    (
        snmp_value(&snmp, "Tcp", "OutSegs"),
        snmp_value(&snmp, "Tcp", "RetransSegs"),
    )
}

/// Packets `ns`'s `dev` has handed on (an skb each: a GSO skb counts once).
pub fn tx_packets(topo: &Topology, ns: &str, dev: &str) -> u64 {
    topo.exec(
        ns,
        &[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/tx_packets"),
        ],
    )
    .expect("tx_packets")
    .stdout
    .trim()
    .parse()
    .expect("tx_packets number")
}
