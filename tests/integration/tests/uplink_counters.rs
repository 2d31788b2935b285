//! The uplink XDP program attached in a real `client — nat — private`
//! topology: real ping, TCP and UDP traffic crosses `nat`, and the per-CPU
//! counters must match what `client` sent, class by class, as counted by the
//! client's own kernel (/proc/net/snmp, /proc/net/snmp6, link statistics).

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use common::snmp_value;
use ethergate_common::{ProtoClass, Verdict};
use ethergate_config::NatMode;
use ethergate_dataplane::{AttachMode, Dataplane};
use ethergate_netns::{Endpoint, Topology};

const PINGS: u32 = 5;
const UDP4_DATAGRAMS: u32 = 17;
const UDP6_DATAGRAMS: u32 = 9;

fn topology() -> Topology {
    Topology::builder()
        .namespace("client")
        .namespace("nat")
        .namespace("private")
        // No router solicitations: fewer packets we did not ask for.
        .sysctl_everywhere("net.ipv6.conf.default.router_solicitations", "0")
        .sysctl_everywhere("net.ipv6.conf.all.router_solicitations", "0")
        .sysctl("nat", "net.ipv4.ip_forward", "1")
        .sysctl("nat", "net.ipv6.conf.all.forwarding", "1")
        .veth(
            Endpoint::new("client", "eth0", &["198.51.100.2/24", "2001:db8:1::2/64"]),
            Endpoint::new("nat", "pub0", &["198.51.100.1/24", "2001:db8:1::1/64"]),
        )
        .veth(
            Endpoint::new("nat", "priv0", &["10.0.0.1/16", "2001:db8:2::1/64"]),
            Endpoint::new("private", "eth0", &["10.0.1.26/16", "2001:db8:2::26/64"]),
        )
        .route("client", "10.0.0.0/16 via 198.51.100.1")
        .route("client", "2001:db8:2::/64 via 2001:db8:1::1")
        .route("private", "198.51.100.0/24 via 10.0.0.1")
        .route("private", "2001:db8:1::/64 via 2001:db8:2::1")
        .build()
        .expect("build topology (run as root)")
}

/// The client's own view of what it sent.
#[derive(Debug, Default, Clone, Copy)]
struct ClientSent {
    tcp_segments: u64,
    udp4: u64,
    icmp4: u64,
    udp6: u64,
    icmp6: u64,
    frames: u64,
}

fn snmp6_value(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(field)).then(|| parts.next().and_then(|v| v.parse().ok()))
        })
        .flatten()
        .unwrap_or_else(|| panic!("no snmp6 {field}"))
}

fn client_sent(topo: &Topology) -> ClientSent {
    let snmp = topo
        .exec("client", &["cat", "/proc/net/snmp"])
        .expect("snmp")
        .stdout;
    let snmp6 = topo
        .exec("client", &["cat", "/proc/net/snmp6"])
        .expect("snmp6")
        .stdout;
    let frames = topo
        .exec(
            "client",
            &["cat", "/sys/class/net/eth0/statistics/tx_packets"],
        )
        .expect("tx_packets")
        .stdout;
    ClientSent {
        tcp_segments: snmp_value(&snmp, "Tcp", "OutSegs") + snmp_value(&snmp, "Tcp", "RetransSegs"),
        udp4: snmp_value(&snmp, "Udp", "OutDatagrams"),
        icmp4: snmp_value(&snmp, "Icmp", "OutMsgs"),
        udp6: snmp6_value(&snmp6, "Udp6OutDatagrams"),
        icmp6: snmp6_value(&snmp6, "Icmp6OutMsgs"),
        frames: frames.trim().parse().expect("tx_packets number"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[test]
fn counters_match_real_traffic_through_nat() {
    let topo = topology();
    // Small TCP writes and no segmentation offload: one skb is one frame.
    topo.exec(
        "client",
        &["ethtool", "-K", "eth0", "tso", "off", "gso", "off"],
    )
    .expect("ethtool");

    let mut dataplane = Dataplane::load().expect("load eBPF");
    let mode = topo
        .enter("nat", || dataplane.attach_uplink("pub0", NatMode::Xdp))
        .expect("enter nat")
        .expect("attach XDP to pub0");
    assert_eq!(mode, AttachMode::XdpNative, "veth supports native XDP");

    // Servers in `private`.
    let tcp_server = topo
        .enter("private", || {
            TcpListener::bind("10.0.1.26:8080").expect("bind tcp")
        })
        .expect("enter private");
    let udp4_server = topo
        .enter("private", || {
            UdpSocket::bind("10.0.1.26:9000").expect("bind udp4")
        })
        .expect("enter private");
    let udp6_server = topo
        .enter("private", || {
            UdpSocket::bind("[2001:db8:2::26]:9000").expect("bind udp6")
        })
        .expect("enter private");
    for socket in [&udp4_server, &udp6_server] {
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
    }
    let echo = std::thread::spawn(move || {
        let (mut stream, _) = tcp_server.accept().expect("accept");
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).expect("read");
        stream.write_all(&buf[..n]).expect("echo");
    });

    // Warm-up: resolve neighbours so ARP/ND happen before we measure.
    topo.exec("client", &["ping", "-c", "1", "-W", "2", "10.0.1.26"])
        .expect("warm-up ping v4");
    topo.exec("client", &["ping", "-c", "1", "-W", "2", "2001:db8:2::26"])
        .expect("warm-up ping v6");
    std::thread::sleep(Duration::from_millis(300));

    let before_sent = client_sent(&topo);
    let before = dataplane.counters().expect("counters");

    let pings = PINGS.to_string();
    topo.exec(
        "client",
        &["ping", "-c", &pings, "-i", "0.05", "-W", "2", "10.0.1.26"],
    )
    .expect("ping v4 through nat");
    topo.exec(
        "client",
        &[
            "ping",
            "-c",
            &pings,
            "-i",
            "0.05",
            "-W",
            "2",
            "2001:db8:2::26",
        ],
    )
    .expect("ping v6 through nat");
    topo.enter("client", || {
        let mut stream =
            TcpStream::connect_timeout(&addr("10.0.1.26:8080"), Duration::from_secs(3))
                .expect("tcp connect through nat");
        stream.write_all(b"hello through ethergate").expect("send");
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).expect("read echo");
        assert_eq!(&reply[..n], b"hello through ethergate");
        let udp4 = UdpSocket::bind("0.0.0.0:0").expect("bind udp4 client");
        for i in 0..UDP4_DATAGRAMS {
            udp4.send_to(&i.to_be_bytes(), addr("10.0.1.26:9000"))
                .expect("send udp4");
        }
        let udp6 = UdpSocket::bind("[::]:0").expect("bind udp6 client");
        for i in 0..UDP6_DATAGRAMS {
            udp6.send_to(&i.to_be_bytes(), addr("[2001:db8:2::26]:9000"))
                .expect("send udp6");
        }
        drop(stream);
    })
    .expect("enter client");
    echo.join().expect("echo server");
    for (socket, expected) in [
        (&udp4_server, UDP4_DATAGRAMS),
        (&udp6_server, UDP6_DATAGRAMS),
    ] {
        let mut buf = [0u8; 16];
        for _ in 0..expected {
            socket.recv(&mut buf).expect("datagram crossed nat");
        }
    }
    // Let FIN/ACKs settle so both views count the same segments.
    std::thread::sleep(Duration::from_millis(300));

    let sent = {
        let after = client_sent(&topo);
        ClientSent {
            tcp_segments: after.tcp_segments - before_sent.tcp_segments,
            udp4: after.udp4 - before_sent.udp4,
            icmp4: after.icmp4 - before_sent.icmp4,
            udp6: after.udp6 - before_sent.udp6,
            icmp6: after.icmp6 - before_sent.icmp6,
            frames: after.frames - before_sent.frames,
        }
    };
    let seen = dataplane.counters().expect("counters").since(&before);
    let pass = |class| seen.total(class, Verdict::Pass).packets;

    assert_eq!(sent.udp4, u64::from(UDP4_DATAGRAMS), "client snmp sanity");
    assert_eq!(sent.icmp4, u64::from(PINGS), "client snmp sanity");
    assert!(sent.tcp_segments >= 5, "handshake + data + close: {sent:?}");
    assert_eq!(pass(ProtoClass::Icmp4), sent.icmp4, "{sent:?}");
    assert_eq!(pass(ProtoClass::Udp4), sent.udp4, "{sent:?}");
    assert_eq!(pass(ProtoClass::Tcp4), sent.tcp_segments, "{sent:?}");
    assert_eq!(pass(ProtoClass::Udp6), sent.udp6, "{sent:?}");
    assert!(sent.icmp6 >= u64::from(PINGS), "{sent:?}");
    assert_eq!(pass(ProtoClass::Icmp6), sent.icmp6, "{sent:?}");
    assert_eq!(
        seen.all_packets(),
        sent.frames,
        "every frame counted once: {sent:?}"
    );
    assert_eq!(pass(ProtoClass::Malformed), 0);
    for verdict in [
        Verdict::Drop,
        Verdict::Aborted,
        Verdict::Tx,
        Verdict::Redirect,
    ] {
        let other: u64 = ProtoClass::ALL
            .iter()
            .map(|&c| seen.total(c, verdict).packets)
            .sum();
        assert_eq!(
            other, 0,
            "the uplink program only passes today ({verdict:?})"
        );
    }
    // Bytes: each frame counted at its L2 length; an ICMP echo with the
    // default 56-byte payload is 14 + 20 + 8 + 56 = 98 bytes.
    assert_eq!(
        seen.total(ProtoClass::Icmp4, Verdict::Pass).bytes,
        98 * u64::from(PINGS)
    );
}
