//! Hub switching and DHCP costs per frame: MAC lookup + forward decision,
//! flooding to 100 ports, a DHCP DISCOVER answered with an OFFER, and a
//! REQUEST answered with an ACK.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ethergate_hub::dhcp::{DhcpMessage, DhcpOptions, MessageType};
use ethergate_hub::{
    DhcpServerConfig, Forward, Hub, HubOptions, MacAddr, PortId, PortPolicy, WallTime,
};

fn mac(n: u64) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
}

fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f
}

fn dhcp_config() -> DhcpServerConfig {
    let dhcp = ethergate_hub::config::DhcpConfig {
        range: ethergate_hub::config::AddressRange {
            first: Ipv4Addr::new(192, 168, 30, 10),
            last: Ipv4Addr::new(192, 168, 30, 200),
        },
        lease_secs: 7200,
        dns: vec![Ipv4Addr::new(192, 168, 30, 1)],
        router: None,
        routes: vec!["10.0.0.0/16 via 192.168.30.1".parse().expect("route")],
    };
    DhcpServerConfig {
        server_ip: Ipv4Addr::new(192, 168, 30, 1),
        server_mac: MacAddr::local_from_seed(b"mikalab"),
        subnet: "192.168.30.1/24".parse().expect("cidr"),
        dhcp,
        offer_hold: ethergate_hub::dhcp::OFFER_HOLD,
        decline_hold: ethergate_hub::dhcp::DECLINE_HOLD,
        reserved: Vec::new(),
    }
}

fn bench_hub(c: &mut Criterion) {
    let now = WallTime::from_unix_secs(1_700_000_000);
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Elements(1));

    // Unicast between two sessions, with 1000 learned MACs in the table.
    let mut hub = Hub::new("bench", HubOptions::default(), None);
    for p in 0..=10 {
        hub.add_port(PortId(p), PortPolicy::default())
            .expect("port");
    }
    for i in 0..1000u64 {
        let f = frame(MacAddr::BROADCAST, mac(i), 64);
        let _ = hub.forward(PortId(i % 10 + 1), &f, now);
    }
    let f = frame(mac(1), mac(2), 64);
    g.bench_function("forward_unicast_64", |b| {
        b.iter(|| match hub.forward(PortId(3), black_box(&f), now) {
            Forward::Unicast(p) => black_box(p),
            other => panic!("expected unicast, got {other:?}"),
        })
    });

    // Broadcast to 100 ports (99 copies), walking the flood list.
    let mut hub = Hub::new("bench", HubOptions::default(), None);
    for p in 0..100 {
        hub.add_port(PortId(p), PortPolicy::default())
            .expect("port");
    }
    let f = frame(MacAddr::BROADCAST, mac(7), 64);
    g.bench_function("flood_100_ports", |b| {
        b.iter(|| match hub.forward(PortId(5), black_box(&f), now) {
            Forward::Flood(ports) => black_box(ports.count()),
            other => panic!("expected flood, got {other:?}"),
        })
    });

    // DHCP DISCOVER -> OFFER frame (same client, so the offer is stable).
    let mut hub = Hub::new("bench", HubOptions::default(), Some(dhcp_config()));
    hub.add_port(PortId(1), PortPolicy::default())
        .expect("port");
    let client = mac(42);
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&client.0);
    let discover = DhcpMessage {
        xid: 7,
        chaddr,
        options: DhcpOptions {
            message_type: Some(MessageType::Discover),
            parameter_request_list: vec![1, 3, 6, 121, 249],
            ..DhcpOptions::default()
        },
        ..DhcpMessage::default()
    };
    let mut payload = Vec::new();
    discover.encode(&mut payload);
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(client.0, [0xff; 6])
        .ipv4([0, 0, 0, 0], [255, 255, 255, 255], 64)
        .udp(68, 67)
        .write(&mut f, &payload)
        .expect("discover frame");
    g.bench_function("dhcp_discover_offer", |b| {
        b.iter(|| match hub.forward(PortId(1), black_box(&f), now) {
            Forward::Reply { frame, .. } => black_box(frame.len()),
            other => panic!("expected an offer, got {other:?}"),
        })
    });

    // REQUEST for the offered address → ACK (the second half of a lease;
    // renewing the same binding each iteration).
    let offered = match hub.forward(PortId(1), &f, now) {
        Forward::Reply { frame, .. } => {
            let udp = etherparse::SlicedPacket::from_ethernet(frame).expect("offer frame");
            let payload = match udp.transport {
                Some(etherparse::TransportSlice::Udp(u)) => u.payload().to_vec(),
                other => panic!("offer is not UDP: {other:?}"),
            };
            DhcpMessage::decode(&payload).expect("offer").yiaddr
        }
        other => panic!("expected an offer, got {other:?}"),
    };
    let request = DhcpMessage {
        xid: 8,
        chaddr,
        options: DhcpOptions {
            message_type: Some(MessageType::Request),
            requested_ip: Some(offered),
            server_id: Some(Ipv4Addr::new(192, 168, 30, 1)),
            parameter_request_list: vec![1, 3, 6, 121, 249],
            ..DhcpOptions::default()
        },
        ..DhcpMessage::default()
    };
    let mut payload = Vec::new();
    request.encode(&mut payload);
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(client.0, [0xff; 6])
        .ipv4([0, 0, 0, 0], [255, 255, 255, 255], 64)
        .udp(68, 67)
        .write(&mut f, &payload)
        .expect("request frame");
    g.bench_function("dhcp_request_ack", |b| {
        b.iter(|| match hub.forward(PortId(1), black_box(&f), now) {
            Forward::Reply { frame, .. } => black_box(frame.len()),
            other => panic!("expected an ack, got {other:?}"),
        })
    });
    g.finish();
}

criterion_group!(benches, bench_hub);
criterion_main!(benches);
