//! The DHCP client on a virtual clock against a scripted server: DORA,
//! renewal at T1, rebinding at T2, expiry, NAKs, retransmission backoff,
//! RELEASE, and which routes a lease yields.

use std::net::Ipv4Addr;

use ethergate_proto::{TestRng, Timestamp};

use super::*;
use crate::dhcp::frame::{CLIENT_PORT, SERVER_PORT};
use ethergate_dhcp::BOOTREPLY;

const MAC: [u8; 6] = [0x02, 0xe6, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [0x5e, 0, 0, 0, 0, 0x30];
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 10);

/// A sent frame, decoded: (dst MAC, src IP, dst IP, message).
fn sent(c: &mut DhcpClient) -> (Vec<u8>, Ipv4Addr, Ipv4Addr, DhcpMessage) {
    let frame = c.poll_transmit().expect("a frame to send");
    let p = etherparse::SlicedPacket::from_ethernet(&frame).expect("valid frame");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("not Ethernet II")
    };
    assert_eq!(eth.source(), MAC);
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
        panic!("not UDP")
    };
    assert_eq!(
        (udp.source_port(), udp.destination_port()),
        (CLIENT_PORT, SERVER_PORT)
    );
    let m = DhcpMessage::decode(udp.payload()).expect("valid DHCP");
    assert_eq!(m.client_mac(), Some(MacAddr(MAC)));
    (
        eth.destination().to_vec(),
        ip.header().source_addr(),
        ip.header().destination_addr(),
        m,
    )
}

fn reply(to: &DhcpMessage, kind: MessageType, options: DhcpOptions) -> DhcpMessage {
    let mut m = client_message(to.xid, MAC, options);
    m.op = BOOTREPLY;
    m.options.message_type = Some(kind);
    if kind != MessageType::Nak {
        m.yiaddr = ADDRESS;
    }
    m
}

fn offer_options() -> DhcpOptions {
    DhcpOptions {
        server_id: Some(SERVER),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        routers: vec![SERVER],
        dns: vec![SERVER],
        lease_secs: Some(7200),
        classless_routes: vec![ten_slash_16()],
        ..DhcpOptions::default()
    }
}

/// 10.0.0.0/16 via the server.
fn ten_slash_16() -> ClasslessRoute {
    ClasslessRoute {
        destination: "10.0.0.0/16".parse().expect("cidr"),
        gateway: SERVER,
    }
}

fn secs(s: u64) -> Timestamp {
    Timestamp(s * 1000)
}

/// Runs DISCOVER → OFFER → REQUEST → ACK at t=0 and returns the client.
fn bound(rng: &mut TestRng) -> DhcpClient {
    let mut c = DhcpClient::new(MAC);
    c.start(secs(0));
    assert_eq!(c.poll_timeout(), Some(secs(0)));
    c.handle_timeout(secs(0), rng);
    let (dst, src, dst_ip, discover) = sent(&mut c);
    assert_eq!(dst, [0xff; 6]);
    assert_eq!((src, dst_ip), (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
    assert_eq!(discover.options.message_type, Some(MessageType::Discover));
    assert!(discover.options.parameter_request_list.contains(&121));
    assert!(discover.options.parameter_request_list.contains(&249));

    let offer = reply(&discover, MessageType::Offer, offer_options());
    assert!(c.handle_reply(secs(0), SERVER_MAC, &offer));
    let (dst, _, _, request) = sent(&mut c);
    assert_eq!(dst, [0xff; 6], "REQUEST in SELECTING is broadcast");
    assert_eq!(request.options.message_type, Some(MessageType::Request));
    assert_eq!(request.options.requested_ip, Some(ADDRESS));
    assert_eq!(request.options.server_id, Some(SERVER));
    assert_eq!(request.xid, discover.xid);

    let ack = reply(&request, MessageType::Ack, offer_options());
    assert!(c.handle_reply(secs(0), SERVER_MAC, &ack));
    match c.poll_event() {
        Some(DhcpEvent::Bound(lease)) => {
            assert_eq!(lease.address, ADDRESS);
            assert_eq!(lease.prefix_len, 24);
            assert_eq!((lease.renewal_secs, lease.rebinding_secs), (3600, 6300));
        }
        other => panic!("expected Bound, got {other:?}"),
    }
    assert_eq!(c.poll_timeout(), Some(secs(3600)), "T1 = lease/2");
    c
}

#[test]
fn discover_offer_request_ack() {
    let mut rng = TestRng::new(1);
    let c = bound(&mut rng);
    assert_eq!(c.state_name(), "bound");
    assert!(c.poll_event_is_empty());
}

impl DhcpClient {
    fn poll_event_is_empty(&self) -> bool {
        self.events.is_empty() && self.out.is_empty()
    }
}

#[test]
fn renews_at_t1_by_unicast() {
    let mut rng = TestRng::new(2);
    let mut c = bound(&mut rng);
    c.handle_timeout(secs(3599), &mut rng);
    assert!(c.poll_transmit().is_none(), "nothing before T1");
    c.handle_timeout(secs(3600), &mut rng);
    let (dst, src, dst_ip, request) = sent(&mut c);
    assert_eq!(dst, SERVER_MAC, "unicast to the server's MAC");
    assert_eq!((src, dst_ip), (ADDRESS, SERVER));
    assert_eq!(request.ciaddr, ADDRESS);
    assert_eq!(request.options.requested_ip, None, "RFC 2131 §4.3.2");
    assert_eq!(request.options.server_id, None);
    // Half the time to T2 (6300 − 3600 = 2700 s) → retry at 4950 s.
    assert_eq!(c.poll_timeout(), Some(secs(4950)));

    let ack = reply(&request, MessageType::Ack, offer_options());
    assert!(c.handle_reply(secs(3601), SERVER_MAC, &ack));
    assert!(matches!(c.poll_event(), Some(DhcpEvent::Renewed(_))));
    assert_eq!(c.poll_timeout(), Some(secs(3601 + 3600)));
}

#[test]
fn rebinds_at_t2_then_expires_and_starts_over() {
    let mut rng = TestRng::new(3);
    let mut c = bound(&mut rng);
    c.handle_timeout(secs(3600), &mut rng);
    let _ = sent(&mut c);
    // Renewal retries at half the time left to T2 (60 s at least), never
    // later than T2: 4950, 5625, 5962.5, …
    let mut now = secs(3600);
    let mut retries = 0;
    loop {
        let at = c.poll_timeout().expect("a timer");
        assert!(at <= secs(6300), "renewal timer past T2: {at:?}");
        if at == secs(6300) {
            break;
        }
        assert!(at.since(now) >= 60_000 || at == secs(6300));
        now = at;
        c.handle_timeout(now, &mut rng);
        let (dst, ..) = sent(&mut c);
        assert_eq!(dst, SERVER_MAC, "still renewing by unicast");
        retries += 1;
    }
    assert_eq!(c.state_name(), "renewing");
    assert!(retries >= 3, "{retries}");
    c.handle_timeout(secs(6300), &mut rng);
    let (dst, src, dst_ip, request) = sent(&mut c);
    assert_eq!(c.state_name(), "rebinding");
    assert_eq!(dst, [0xff; 6], "REBINDING broadcasts");
    assert_eq!((src, dst_ip), (ADDRESS, Ipv4Addr::BROADCAST));
    assert_eq!(request.ciaddr, ADDRESS);
    // 900 s to expiry: retry after 450 s.
    assert_eq!(c.poll_timeout(), Some(secs(6750)));
    c.handle_timeout(secs(6750), &mut rng);
    let _ = sent(&mut c);
    // 450 s left → 225 s; then 225 → 112; then the 60 s floor passes expiry.
    now = secs(6750);
    while c.lease().is_some() {
        now = c.poll_timeout().expect("a timer");
        assert!(now <= secs(7200), "expiry is a hard deadline");
        c.handle_timeout(now, &mut rng);
        if c.lease().is_some() {
            let (dst, ..) = sent(&mut c);
            assert_eq!(dst, [0xff; 6]);
        }
    }
    assert_eq!(now, secs(7200));
    assert_eq!(
        c.poll_event(),
        Some(DhcpEvent::Lost {
            address: ADDRESS,
            reason: "the lease expired"
        })
    );
    // Straight back to DISCOVER.
    let (_, _, _, discover) = sent(&mut c);
    assert_eq!(discover.options.message_type, Some(MessageType::Discover));
}

#[test]
fn nak_while_requesting_restarts_after_a_pause() {
    let mut rng = TestRng::new(4);
    let mut c = DhcpClient::new(MAC);
    c.start(secs(0));
    c.handle_timeout(secs(0), &mut rng);
    let (.., discover) = sent(&mut c);
    let offer = reply(&discover, MessageType::Offer, offer_options());
    c.handle_reply(secs(1), SERVER_MAC, &offer);
    let (.., request) = sent(&mut c);
    let nak = reply(&request, MessageType::Nak, DhcpOptions::default());
    assert!(c.handle_reply(secs(1), SERVER_MAC, &nak));
    assert_eq!(c.poll_event(), None, "no lease was lost");
    assert_eq!(c.poll_timeout(), Some(Timestamp(1000 + NAK_PAUSE_MS)));
    c.handle_timeout(Timestamp(1000 + NAK_PAUSE_MS), &mut rng);
    let (.., again) = sent(&mut c);
    assert_eq!(again.options.message_type, Some(MessageType::Discover));
    assert_ne!(again.xid, discover.xid, "a new transaction");
}

#[test]
fn nak_while_renewing_loses_the_lease() {
    let mut rng = TestRng::new(5);
    let mut c = bound(&mut rng);
    c.handle_timeout(secs(3600), &mut rng);
    let (.., request) = sent(&mut c);
    let nak = reply(&request, MessageType::Nak, DhcpOptions::default());
    assert!(c.handle_reply(secs(3600), SERVER_MAC, &nak));
    assert!(matches!(c.poll_event(), Some(DhcpEvent::Lost { .. })));
    assert!(c.lease().is_none());
    assert_eq!(c.state_name(), "init");
}

#[test]
fn discover_retransmits_with_rfc2131_backoff() {
    let mut rng = TestRng::new(6);
    let mut c = DhcpClient::new(MAC);
    c.start(secs(0));
    let mut now = secs(0);
    c.handle_timeout(now, &mut rng);
    let _ = sent(&mut c);
    for nominal in [4u64, 8, 16, 32, 64, 64, 64] {
        let next = c.poll_timeout().expect("retransmit timer");
        let delay = next.since(now);
        assert!(
            (nominal * 1000 - 1000..=nominal * 1000 + 1000).contains(&delay),
            "delay {delay} ms for nominal {nominal} s"
        );
        now = next;
        c.handle_timeout(now, &mut rng);
        let (.., m) = sent(&mut c);
        assert_eq!(m.options.message_type, Some(MessageType::Discover));
        assert!(m.secs > 0 || now.0 < 1000);
    }
}

#[test]
fn request_gives_up_after_four_tries() {
    let mut rng = TestRng::new(7);
    let mut c = DhcpClient::new(MAC);
    c.start(secs(0));
    c.handle_timeout(secs(0), &mut rng);
    let (.., discover) = sent(&mut c);
    c.handle_reply(
        secs(0),
        SERVER_MAC,
        &reply(&discover, MessageType::Offer, offer_options()),
    );
    let mut requests = 1;
    let _ = sent(&mut c);
    while c.state_name() == "requesting" {
        let at = c.poll_timeout().expect("timer");
        c.handle_timeout(at, &mut rng);
        while let Some(frame) = c.poll_transmit() {
            let p = etherparse::SlicedPacket::from_ethernet(&frame).expect("frame");
            let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
                panic!("udp")
            };
            match DhcpMessage::decode(udp.payload())
                .expect("dhcp")
                .options
                .message_type
            {
                Some(MessageType::Request) => requests += 1,
                other => assert_eq!(other, Some(MessageType::Discover)),
            }
        }
    }
    assert_eq!(requests, MAX_REQUEST_ATTEMPTS);
}

#[test]
fn replies_for_others_are_ignored() {
    let mut rng = TestRng::new(8);
    let mut c = DhcpClient::new(MAC);
    c.start(secs(0));
    c.handle_timeout(secs(0), &mut rng);
    let (.., discover) = sent(&mut c);
    let mut wrong_xid = reply(&discover, MessageType::Offer, offer_options());
    wrong_xid.xid ^= 1;
    assert!(!c.handle_reply(secs(0), SERVER_MAC, &wrong_xid));
    let mut wrong_mac = reply(&discover, MessageType::Offer, offer_options());
    wrong_mac.chaddr[5] = 2;
    assert!(!c.handle_reply(secs(0), SERVER_MAC, &wrong_mac));
    assert_eq!(c.state_name(), "selecting");
    // An ACK out of order is ours but changes nothing.
    let ack = reply(&discover, MessageType::Ack, offer_options());
    assert!(c.handle_reply(secs(0), SERVER_MAC, &ack));
    assert_eq!(c.state_name(), "selecting");
}

#[test]
fn release_is_unicast_and_stops() {
    let mut rng = TestRng::new(9);
    let mut c = bound(&mut rng);
    assert!(c.release(&mut rng));
    let (dst, src, dst_ip, m) = sent(&mut c);
    assert_eq!(dst, SERVER_MAC);
    assert_eq!((src, dst_ip), (ADDRESS, SERVER));
    assert_eq!(m.options.message_type, Some(MessageType::Release));
    assert_eq!(m.options.server_id, Some(SERVER));
    assert_eq!(m.ciaddr, ADDRESS);
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.release(&mut rng), "nothing left to release");
}

#[test]
fn routes_follow_rfc3442() {
    let mut lease = Lease {
        address: ADDRESS,
        prefix_len: 24,
        server_id: SERVER,
        router: Some(SERVER),
        dns: vec![],
        lease_secs: 7200,
        renewal_secs: 3600,
        rebinding_secs: 6300,
        classless_routes: vec![ten_slash_16()],
    };
    assert_eq!(
        lease.routes(),
        lease.classless_routes,
        "option 3 ignored when 121 is present"
    );
    lease.classless_routes.clear();
    let default = lease.routes();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].destination, "0.0.0.0/0".parse().expect("cidr"));
    assert_eq!(default[0].gateway, SERVER);
    lease.router = None;
    assert!(lease.routes().is_empty());
}

#[test]
fn option_249_stands_in_for_121_and_times_are_sane() {
    let mut rng = TestRng::new(10);
    let mut c = DhcpClient::new(MAC);
    c.start(secs(0));
    c.handle_timeout(secs(0), &mut rng);
    let (.., discover) = sent(&mut c);
    let mut o = offer_options();
    let routes = std::mem::take(&mut o.classless_routes);
    o.ms_classless_routes = routes.clone();
    o.subnet_mask = None;
    // T1 > T2 is nonsense: fall back to the RFC defaults.
    o.renewal_secs = Some(7000);
    o.rebinding_secs = Some(100);
    c.handle_reply(
        secs(0),
        SERVER_MAC,
        &reply(&discover, MessageType::Offer, o.clone()),
    );
    let (.., request) = sent(&mut c);
    c.handle_reply(secs(0), SERVER_MAC, &reply(&request, MessageType::Ack, o));
    let Some(DhcpEvent::Bound(lease)) = c.poll_event() else {
        panic!("bound")
    };
    assert_eq!(lease.classless_routes, routes);
    assert_eq!(lease.prefix_len, 24, "class C fallback without option 1");
    assert_eq!((lease.renewal_secs, lease.rebinding_secs), (3600, 6300));
}
