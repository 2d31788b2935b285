//! SNAT as a new user first tries it: plain veths, default offloads (so
//! same-host senders hand over CHECKSUM_PARTIAL and GSO skbs), nothing
//! attached to the peers, no warm-up ping, `[nat] mode` left at auto.
//!
//! ```text
//! private (10.0.1.26, .27) — nat (priv0 10.0.0.1 | pub0 203.0.113.1) — internet (203.0.113.10)
//! ```
//!
//! `internet` has no route back to 10.0.0.0/16, so a reply can only arrive
//! if the source was translated, and a sniffer on its interface counts
//! every packet that arrives with a private source: it must see none.

mod common;

use std::{
    io::{Read, Write},
    net::{TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Sniffer, assert_no_kernel_nat, assert_no_nat_drops, curl, http_peer_server, iperf3,
    iperf3_reverse, snat_config, tcp_echo_server, two_armed, two_armed_topology, udp_echo_server,
};
use ethergate_common::{DropReason, NatEvent, ProtoClass, Verdict};
use ethergate_config::{DEFAULT_MAX_FLOWS, NatMode, SnatTarget};
use ethergate_dataplane::{AttachMode, Dataplane};
use ethergate_netns::Topology;

const PUBLIC: &str = "203.0.113.1";

fn auto_nat(topo: &Topology, max_flows: u32, per_source: u32) -> Dataplane {
    let mut dp = Dataplane::load_with_max_flows(max_flows).expect("load eBPF (run as root)");
    let mut nat = snat_config("pub0", &["priv0"], SnatTarget::Masquerade);
    assert_eq!(nat.mode, NatMode::Auto);
    nat.limits.max_flows = max_flows;
    nat.limits.max_flows_per_source = per_source;
    topo.enter("nat", || dp.apply_nat(&nat))
        .expect("enter nat")
        .expect("apply [nat]");
    dp
}

#[test]
fn plain_veths_two_armed_tcp_udp_icmp_and_iperf3_both_ways() {
    let topo = two_armed_topology();
    let dp = auto_nat(&topo, DEFAULT_MAX_FLOWS, DEFAULT_MAX_FLOWS / 4);
    let uplink = dp.uplink_attachment().expect("uplink");
    assert_eq!(uplink.mode, AttachMode::Tc, "{}", uplink.reason);
    assert!(
        uplink.reason.contains("virtual device"),
        "{}",
        uplink.reason
    );
    assert_eq!(dp.inside_attachments()[0].mode, AttachMode::Tc);
    let sniffer = Sniffer::start(&topo, "internet", "eth0", "10.0.0.0/16");

    // The very first packet goes to an on-link host nobody has resolved.
    let server = http_peer_server(&topo, "internet", "203.0.113.10:8080");
    let seen = curl(&topo, "private", "http://203.0.113.10:8080/");
    assert_eq!(seen.trim(), PUBLIC);
    assert_eq!(server.join().expect("server"), PUBLIC);

    let before = dp.counters().expect("counters");
    topo.exec(
        "private",
        &["ping", "-c", "3", "-i", "0.1", "-W", "2", "203.0.113.10"],
    )
    .expect("ping through SNAT");

    let peer = common::udp_round_trip(
        &topo,
        ("private", "10.0.1.26:0"),
        ("internet", "203.0.113.10:5300"),
        b"through ethergate",
    );
    assert_eq!(peer.ip().to_string(), PUBLIC);
    // The uplink's per-class counters are kept in tc mode too: the three
    // echo replies and the UDP reply came in and were redirected.
    let seen = dp.counters().expect("counters").since(&before);
    assert_eq!(seen.total(ProtoClass::Icmp4, Verdict::Redirect).packets, 3);
    assert_eq!(seen.total(ProtoClass::Udp4, Verdict::Redirect).packets, 1);
    assert_eq!(seen.total(ProtoClass::Tcp4, Verdict::Redirect).packets, 0);

    iperf3(
        &topo,
        ("internet", "203.0.113.10"),
        ("private", "203.0.113.10"),
        PUBLIC,
        "plain veth, auto (tc), private → internet",
    );
    // The internet host's segments arrive at the uplink as GSO skbs; the
    // counters still count frames, as XDP would have seen them.
    let before = dp.counters().expect("counters");
    let (segments_before, retrans_before) = common::tcp_segments_sent(&topo, "internet");
    let skbs_before = common::tx_packets(&topo, "internet", "eth0");
    iperf3_reverse(
        &topo,
        ("internet", "203.0.113.10"),
        ("private", "203.0.113.10"),
        PUBLIC,
        "plain veth, auto (tc), internet → private",
    );
    let (segments_after, retrans_after) = common::tcp_segments_sent(&topo, "internet");
    let segments = segments_after - segments_before;
    let retransmits = retrans_after - retrans_before;
    let skbs = common::tx_packets(&topo, "internet", "eth0") - skbs_before;
    let seen = dp.counters().expect("counters").since(&before);
    let counted: u64 = [Verdict::Redirect, Verdict::Pass, Verdict::Drop]
        .iter()
        .map(|&v| seen.total(ProtoClass::Tcp4, v).packets)
        .sum();
    assert!(
        skbs < segments / 2,
        "the sender used GSO ({skbs} skbs for {segments} segments), or this checks nothing"
    );
    assert!(
        (segments..=segments + retransmits).contains(&counted),
        "uplink counted {counted} TCP frames; the sender put {segments} segments \
         (+{retransmits} retransmits) on the wire in {skbs} skbs"
    );

    common::assert_no_private_sources(&sniffer.stop(), 1000);
    let c = dp.counters().expect("counters");
    assert_no_nat_drops(&c);
    assert!(c.nat_event(NatEvent::TranslatedOut) > 100);
    assert!(c.nat_event(NatEvent::TranslatedIn) > 100);
    assert_no_kernel_nat(&topo);
}

#[test]
fn fragmented_udp_and_big_pings_leave_translated() {
    let topo = two_armed_topology();
    let dp = auto_nat(&topo, DEFAULT_MAX_FLOWS, DEFAULT_MAX_FLOWS / 4);
    let sniffer = Sniffer::start(&topo, "internet", "eth0", "10.0.0.0/16");

    // 3000-byte datagrams both ways: two fragments each on a 1500 MTU.
    const DATAGRAMS: usize = 5;
    let echo = udp_echo_server(&topo, "internet", "203.0.113.10:5301", DATAGRAMS);
    let replies = topo
        .enter("private", || {
            let socket = UdpSocket::bind("10.0.1.26:0").expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            let mut replies = 0;
            for i in 0..DATAGRAMS {
                let datagram = vec![i as u8; 3000];
                socket
                    .send_to(&datagram, "203.0.113.10:5301")
                    .expect("send");
                let mut buf = vec![0u8; 4000];
                let (n, _) = socket.recv_from(&mut buf).expect("fragmented reply");
                assert_eq!(&buf[..n], &datagram[..], "reassembled reply {i}");
                replies += 1;
            }
            replies
        })
        .expect("enter private");
    assert_eq!(replies, DATAGRAMS);
    let peers = echo.join().expect("echo");
    assert_eq!(peers.len(), DATAGRAMS, "every datagram reassembled");
    assert!(
        peers.iter().all(|p| p.ip().to_string() == PUBLIC),
        "{peers:?}"
    );

    topo.exec(
        "private",
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "3000",
            "203.0.113.10",
        ],
    )
    .expect("big pings answered through SNAT");

    common::assert_no_private_sources(&sniffer.stop(), 4 * DATAGRAMS as u64);
    let c = dp.counters().expect("counters");
    // One later fragment per datagram and per echo request, both ways.
    assert!(
        c.nat_event(NatEvent::FragmentTranslated) >= 2 * (DATAGRAMS as u64 + 3),
        "{:?}",
        c.nat_events
    );
    assert_no_nat_drops(&c);
}

/// One host floods new flows into a table of 4,096 while another host's
/// established connection keeps exchanging every 200 ms and a third
/// connection stays silent throughout: no established flow may be evicted,
/// and nothing may leave with a private source.
fn flood(per_source: u32) -> (Dataplane, u64) {
    let topo = two_armed(&[])
        .build()
        .expect("build topology (run as root)");
    topo.ip("private", &["addr", "add", "10.0.1.27/16", "dev", "eth0"])
        .expect("second host address");
    let dp = auto_nat(&topo, 4096, per_source);
    let sniffer = Sniffer::start(&topo, "internet", "eth0", "10.0.0.0/16");
    tcp_echo_server(&topo, "internet", "203.0.113.10:7000");
    let connect = |topo: &Topology| {
        topo.enter("private", || {
            // From the other host's address.
            let socket = bind_connect("10.0.1.27:0", "203.0.113.10:7000");
            socket
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            socket
        })
        .expect("enter private")
    };
    let mut silent = connect(&topo);
    exchange(&mut silent).expect("silent connection works before the flood");
    let mut busy = connect(&topo);
    exchange(&mut busy).expect("busy connection works before the flood");

    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(AtomicU64::new(0));
    let exchanges = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (stop, misses, exchanges) = (
            Arc::clone(&stop),
            Arc::clone(&misses),
            Arc::clone(&exchanges),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if exchange(&mut busy).is_err() {
                    misses.fetch_add(1, Ordering::Relaxed);
                }
                exchanges.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // 20,000 new flows from one host, bounded in count and time.
    let started = Instant::now();
    topo.enter("private", || {
        let socket = UdpSocket::bind("10.0.1.26:0").expect("bind");
        for port in 0..20_000u16 {
            let _ = socket.send_to(b"flood", ("203.0.113.10", 20_000 + port));
            if port % 1000 == 999 {
                // Let the ticker run between bursts on two cores.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
    .expect("enter private");
    eprintln!("flood of 20,000 flows took {:?}", started.elapsed());
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    ticker.join().expect("ticker");

    exchange(&mut silent).expect("the silent connection survived the flood");
    common::assert_no_private_sources(&sniffer.stop(), 100);
    assert!(exchanges.load(Ordering::Relaxed) >= 5);
    assert_eq!(
        misses.load(Ordering::Relaxed),
        0,
        "the established connection missed exchanges during the flood"
    );
    let created = dp
        .counters()
        .expect("counters")
        .nat_event(NatEvent::FlowCreated);
    drop(topo);
    (dp, created)
}

fn bind_connect(local: &str, remote: &str) -> TcpStream {
    use std::os::fd::FromRawFd;
    let local: std::net::SocketAddrV4 = local.parse().expect("local");
    let remote: std::net::SocketAddrV4 = remote.parse().expect("remote");
    let sockaddr = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: plain socket/bind/connect on a fresh fd that the TcpStream
    // then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let l = sockaddr(local);
        let r = sockaddr(remote);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(libc::bind(fd, (&raw const l).cast(), len), 0, "bind");
        assert_eq!(
            libc::connect(fd, (&raw const r).cast(), len),
            0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        TcpStream::from_raw_fd(fd)
    }
}

fn exchange(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf)?;
    if &buf != b"ping" {
        return Err(std::io::Error::other("echo mismatch"));
    }
    Ok(())
}

#[test]
fn a_flow_flood_hits_the_source_quota_and_evicts_nothing() {
    // Default quota for a 4,096 table: a quarter, 1,024 flows.
    let (dp, created) = flood(1024);
    let c = dp.counters().expect("counters");
    assert!(
        c.nat_drop(DropReason::SourceQuota) > 15_000,
        "{:?}",
        c.nat_drops
    );
    assert_eq!(c.nat_drop(DropReason::TableFull), 0);
    // The flooder's 1,024 plus the other host's few connections.
    assert!(created <= 1024 + 10, "{created} flows created");
}

#[test]
fn a_full_table_refuses_new_flows_and_evicts_nothing() {
    let (dp, created) = flood(0);
    let c = dp.counters().expect("counters");
    assert!(
        c.nat_drop(DropReason::TableFull) > 10_000,
        "{:?}",
        c.nat_drops
    );
    assert!(
        created <= 4096,
        "{created} flows created in a table of 4,096"
    );
}
