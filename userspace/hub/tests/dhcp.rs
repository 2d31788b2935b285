//! The virtual DHCP server through the hub: whole frames in, whole frames
//! out, parsed back with etherparse and decoded with the crate's codec.

use std::net::Ipv4Addr;
use std::time::Duration;

use ethergate_hub::config::Config;
use ethergate_hub::dhcp::{DhcpMessage, DhcpOptions, FLAG_BROADCAST, MessageType, OFFER_HOLD};
use ethergate_hub::{
    Forward, FrameDrop, Hub, HubOptions, MacAddr, PortId, PortPolicy, WallTime, format_leases,
    parse_leases,
};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const T0: WallTime = WallTime::from_unix_secs(1_700_000_000);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const SESSION: PortId = PortId(1);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 30, last)
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0x11, 0, 0, 0, n])
}

/// A hub from a config with `dhcp` as its `[hub.dhcp]` body, with the
/// bridge and three sessions attached.
fn hub(dhcp: &str) -> Hub {
    let mut hub = configured_hub(dhcp);
    for p in 0..=3 {
        hub.add_port(PortId(p), PortPolicy::default())
            .expect("port");
    }
    hub
}

/// The recipe's hub with `dhcp` as its `[hub.dhcp]` body and no ports.
fn configured_hub(dhcp: &str) -> Hub {
    let text = format!(
        "[server]\n[[hub]]\nname = \"mikalab\"\nbridge = \"tap_00\"\n\
         bridge_address = \"192.168.30.1/24\"\n[hub.dhcp]\n{dhcp}\n\
         [[hub.user]]\nname = \"tsumura\"\npassword = \"pw\"\n"
    );
    let config = Config::from_str_with_origin(&text, "test.toml")
        .unwrap_or_else(|e| panic!("test config must be valid: {e:?}\n{text}"));
    Hub::from_config(&config.hubs[0], HubOptions::default())
}

const RECIPE: &str = "range = \"192.168.30.10-192.168.30.200\"\nlease_secs = 7200\n\
                      dns = [\"192.168.30.1\"]\nroutes = [\"10.0.0.0/16 via 192.168.30.1\"]";

fn message(client: MacAddr, kind: MessageType) -> DhcpMessage {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&client.0);
    DhcpMessage {
        xid: 0xdead_beef,
        chaddr,
        options: DhcpOptions {
            message_type: Some(kind),
            parameter_request_list: vec![1, 3, 6, 12, 15, 28, 42, 121, 249],
            ..DhcpOptions::default()
        },
        ..DhcpMessage::default()
    }
}

/// Wraps `msg` as the client would send it.
fn to_frame(client: MacAddr, msg: &DhcpMessage, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut payload = Vec::new();
    msg.encode(&mut payload);
    let dst_mac = if dst == Ipv4Addr::BROADCAST {
        [0xff; 6]
    } else {
        [0x02, 0xaa, 0, 0, 0, 1]
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(client.0, dst_mac)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(68, 67)
        .write(&mut f, &payload)
        .expect("client frame builds");
    f
}

/// A reply frame taken apart.
struct Reply {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    payload: Vec<u8>,
    msg: DhcpMessage,
}

/// A client without an address broadcasting `msg` (DISCOVER, SELECTING,
/// INIT-REBOOT).
fn broadcast(client: MacAddr, msg: &DhcpMessage) -> Vec<u8> {
    to_frame(client, msg, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
}

/// A client at `from` sending `msg` to the server (RENEWING, RELEASE,
/// INFORM).
fn unicast(client: MacAddr, msg: &DhcpMessage, from: Ipv4Addr) -> Vec<u8> {
    to_frame(client, msg, from, SERVER)
}

fn parse_reply(frame: &[u8]) -> Reply {
    let p = SlicedPacket::from_ethernet(frame).expect("reply parses with etherparse");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        panic!("reply has no Ethernet II header")
    };
    let Some(NetSlice::Ipv4(ip4)) = &p.net else {
        panic!("reply is not IPv4")
    };
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!("reply is not UDP")
    };
    assert_eq!((udp.source_port(), udp.destination_port()), (67, 68));
    let payload = udp.payload().to_vec();
    assert!(
        payload.len() >= 300,
        "BOOTP minimum is 300 bytes, got {}",
        payload.len()
    );
    let msg = DhcpMessage::decode(&payload).expect("reply decodes");
    Reply {
        eth_dst: eth.destination(),
        eth_src: eth.source(),
        ip_src: ip4.header().source_addr(),
        ip_dst: ip4.header().destination_addr(),
        payload,
        msg,
    }
}

fn send(hub: &mut Hub, port: PortId, frame: &[u8], now: WallTime) -> Reply {
    match hub.forward(port, frame, now) {
        Forward::Reply { port: out, frame } => {
            assert_eq!(out, port, "replies go back out of the ingress port");
            parse_reply(frame)
        }
        other => panic!("expected a DHCP reply, got {other:?}"),
    }
}

fn no_reply<'h>(hub: &'h mut Hub, frame: &[u8], now: WallTime) -> Forward<'h> {
    let f = hub.forward(SESSION, frame, now);
    assert!(
        !matches!(
            f,
            Forward::Reply { .. } | Forward::Unicast(_) | Forward::Flood(_)
        ),
        "expected no reply and no switching, got {f:?}"
    );
    f
}

/// Raw bytes of option `code` in a DHCP payload (first instance).
fn raw_option(payload: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut i = 240;
    while i < payload.len() {
        match payload[i] {
            0 => i += 1,
            255 => return None,
            c => {
                let len = usize::from(payload[i + 1]);
                if c == code {
                    return Some(payload[i + 2..i + 2 + len].to_vec());
                }
                i += 2 + len;
            }
        }
    }
    None
}

fn discover(hub: &mut Hub, client: MacAddr, now: WallTime) -> Reply {
    let msg = message(client, MessageType::Discover);
    send(hub, SESSION, &broadcast(client, &msg), now)
}

fn select(hub: &mut Hub, client: MacAddr, addr: Ipv4Addr, now: WallTime) -> Reply {
    let mut msg = message(client, MessageType::Request);
    msg.flags = FLAG_BROADCAST;
    msg.options.server_id = Some(SERVER);
    msg.options.requested_ip = Some(addr);
    send(hub, SESSION, &broadcast(client, &msg), now)
}

fn dora(hub: &mut Hub, client: MacAddr, now: WallTime) -> Ipv4Addr {
    let offer = discover(hub, client, now);
    assert_eq!(offer.msg.options.message_type, Some(MessageType::Offer));
    let ack = select(hub, client, offer.msg.yiaddr, now);
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
    ack.msg.yiaddr
}

#[test]
fn full_dora_exchange() {
    let mut hub = hub(RECIPE);
    let client = mac(1);
    let server_mac = MacAddr::local_from_seed(b"mikalab");

    let offer = discover(&mut hub, client, T0);
    // No broadcast flag and no ciaddr: unicast to yiaddr / chaddr.
    assert_eq!(offer.eth_dst, client.0);
    assert_eq!(offer.eth_src, server_mac.0);
    assert_eq!((offer.ip_src, offer.ip_dst), (SERVER, ip(10)));
    let m = &offer.msg;
    assert_eq!(m.op, 2);
    assert_eq!(m.xid, 0xdead_beef);
    assert_eq!(m.yiaddr, ip(10));
    assert_eq!(m.options.message_type, Some(MessageType::Offer));
    assert_eq!(m.options.server_id, Some(SERVER));
    assert_eq!(m.options.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(m.options.dns, vec![SERVER]);
    assert_eq!(m.options.lease_secs, Some(7200));
    assert_eq!(
        (m.options.renewal_secs, m.options.rebinding_secs),
        (Some(3600), Some(6300))
    );
    assert!(
        m.options.routers.is_empty(),
        "no router configured, so no option 3"
    );
    let rfc3442 = [0x10, 0x0a, 0x00, 0xc0, 0xa8, 0x1e, 0x01];
    assert_eq!(
        raw_option(&offer.payload, 121).as_deref(),
        Some(&rfc3442[..])
    );
    assert_eq!(
        raw_option(&offer.payload, 249).as_deref(),
        Some(&rfc3442[..])
    );
    assert_eq!(raw_option(&offer.payload, 3), None);
    // Lease and mask first, then the client's parameter request order.
    assert_eq!(&offer.payload[240..243], [53, 1, 2]);
    assert_eq!(offer.payload[243], 54);

    let ack = select(&mut hub, client, ip(10), T0);
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
    assert_eq!(ack.msg.yiaddr, ip(10));
    // Broadcast flag set: broadcast at both layers.
    assert_eq!(ack.eth_dst, [0xff; 6]);
    assert_eq!(ack.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(raw_option(&ack.payload, 121).as_deref(), Some(&rfc3442[..]));

    let dhcp = hub.dhcp().expect("dhcp on");
    let c = dhcp.counters();
    assert_eq!((c.discovers, c.offers, c.requests, c.acks), (1, 1, 1, 1));
    let session = hub.counters(SESSION).expect("session");
    assert_eq!((session.frames_local, session.frames_out), (2, 2));
}

#[test]
fn router_with_routes_adds_default_route_to_121() {
    let mut hub = hub(&format!("{RECIPE}\nrouter = \"192.168.30.1\""));
    let offer = discover(&mut hub, mac(1), T0);
    assert_eq!(offer.msg.options.routers, vec![SERVER]);
    let expected = [0, 192, 168, 30, 1, 0x10, 0x0a, 0x00, 0xc0, 0xa8, 0x1e, 0x01];
    assert_eq!(
        raw_option(&offer.payload, 121).as_deref(),
        Some(&expected[..])
    );
    assert_eq!(
        raw_option(&offer.payload, 249).as_deref(),
        Some(&expected[..])
    );
}

#[test]
fn router_without_routes_sends_no_121() {
    let mut hub = hub("range = \"192.168.30.10-192.168.30.20\"\nrouter = \"192.168.30.1\"");
    let offer = discover(&mut hub, mac(1), T0);
    assert_eq!(offer.msg.options.routers, vec![SERVER]);
    assert_eq!(raw_option(&offer.payload, 121), None);
    assert_eq!(raw_option(&offer.payload, 249), None);
    assert_eq!(raw_option(&offer.payload, 6), None, "no dns configured");
}

#[test]
fn renew_is_unicast_and_extends_the_lease() {
    let mut hub = hub(RECIPE);
    let client = mac(1);
    let addr = dora(&mut hub, client, T0);
    let t1 = T0.saturating_add(Duration::from_secs(3600));
    let mut renew = message(client, MessageType::Request);
    renew.ciaddr = addr;
    // RENEWING: unicast to the server id. The kernel's ARP answer is the
    // tap, so the frame is addressed to the bridge — the hub intercepts it.
    let ack = send(&mut hub, SESSION, &unicast(client, &renew, addr), t1);
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
    assert_eq!((ack.msg.yiaddr, ack.msg.ciaddr), (addr, addr));
    assert_eq!((ack.ip_dst, ack.eth_dst), (addr, client.0));
    let lease = hub.dhcp().expect("dhcp").snapshot();
    assert_eq!(lease[0].expires_unix, t1.unix_secs() + 7200);
    assert_eq!(
        hub.counters(PortId(0)).expect("bridge").frames_out,
        0,
        "kernel never saw it"
    );
}

#[test]
fn rebind_from_the_bridge_port_is_answered_too() {
    let mut hub = hub(RECIPE);
    let client = mac(1);
    let addr = dora(&mut hub, client, T0);
    let mut rebind = message(client, MessageType::Request);
    rebind.ciaddr = addr;
    let ack = send(
        &mut hub,
        PortId::BRIDGE,
        &to_frame(client, &rebind, addr, Ipv4Addr::BROADCAST),
        T0,
    );
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
}

#[test]
fn nak_on_wrong_address() {
    let mut hub = hub(RECIPE);
    let (a, b) = (mac(1), mac(2));
    let a_addr = dora(&mut hub, a, T0);
    let offer = discover(&mut hub, b, T0);
    assert_ne!(offer.msg.yiaddr, a_addr);
    // SELECTING an address we did not offer.
    let nak = select(&mut hub, b, ip(50), T0);
    assert_eq!(nak.msg.options.message_type, Some(MessageType::Nak));
    assert_eq!(nak.msg.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!((nak.eth_dst, nak.ip_dst), ([0xff; 6], Ipv4Addr::BROADCAST));
    assert_eq!(nak.msg.options.lease_secs, None);
    // INIT-REBOOT for an address that is someone else's.
    let mut reboot = message(b, MessageType::Request);
    reboot.options.requested_ip = Some(a_addr);
    let frame = broadcast(b, &reboot);
    assert_eq!(
        send(&mut hub, SESSION, &frame, T0).msg.options.message_type,
        Some(MessageType::Nak)
    );
    // INIT-REBOOT from another network (a laptop back from elsewhere).
    reboot.options.requested_ip = Some(Ipv4Addr::new(10, 9, 8, 7));
    let frame = broadcast(b, &reboot);
    assert_eq!(
        send(&mut hub, SESSION, &frame, T0).msg.options.message_type,
        Some(MessageType::Nak)
    );
    // RENEWING an address the client never had.
    let mut renew = message(b, MessageType::Request);
    renew.ciaddr = a_addr;
    let frame = unicast(b, &renew, a_addr);
    assert_eq!(
        send(&mut hub, SESSION, &frame, T0).msg.options.message_type,
        Some(MessageType::Nak)
    );
    assert_eq!(hub.dhcp().expect("dhcp").counters().naks, 4);
}

#[test]
fn init_reboot_of_own_address_is_acked_and_unknown_client_ignored() {
    let mut hub = hub(RECIPE);
    let a = mac(1);
    let addr = dora(&mut hub, a, T0);
    let mut reboot = message(a, MessageType::Request);
    reboot.options.requested_ip = Some(addr);
    let frame = broadcast(a, &reboot);
    assert_eq!(
        send(&mut hub, SESSION, &frame, T0).msg.options.message_type,
        Some(MessageType::Ack)
    );
    // RFC 2131 §4.3.2: no record of the client and a free address: silent.
    let stranger = mac(9);
    let mut reboot = message(stranger, MessageType::Request);
    reboot.options.requested_ip = Some(ip(99));
    let frame = broadcast(stranger, &reboot);
    assert!(matches!(
        no_reply(&mut hub, &frame, T0),
        Forward::Drop(FrameDrop::DhcpIgnored)
    ));
}

#[test]
fn request_for_another_server_frees_the_offer() {
    let mut hub = hub("range = \"192.168.30.10-192.168.30.10\"");
    let offer = discover(&mut hub, mac(1), T0);
    let mut req = message(mac(1), MessageType::Request);
    req.options.server_id = Some(Ipv4Addr::new(192, 168, 30, 254));
    req.options.requested_ip = Some(Ipv4Addr::new(192, 168, 30, 77));
    let frame = broadcast(mac(1), &req);
    assert!(matches!(no_reply(&mut hub, &frame, T0), Forward::Consumed));
    // The only address is free again at once.
    assert_eq!(discover(&mut hub, mac(2), T0).msg.yiaddr, offer.msg.yiaddr);
}

#[test]
fn release_then_rediscover_gets_the_same_address() {
    let mut hub = hub(RECIPE);
    let a = mac(1);
    let addr = dora(&mut hub, a, T0);
    let mut release = message(a, MessageType::Release);
    release.ciaddr = addr;
    release.options.server_id = Some(SERVER);
    assert!(matches!(
        no_reply(&mut hub, &unicast(a, &release, addr), T0),
        Forward::Consumed
    ));
    let snap = hub.dhcp().expect("dhcp").snapshot();
    assert_eq!(
        snap[0].expires_unix,
        T0.unix_secs(),
        "released lease ends now"
    );
    // A newcomer gets a never-used address; the old client its old one.
    assert_eq!(discover(&mut hub, mac(2), T0).msg.yiaddr, ip(11));
    assert_eq!(discover(&mut hub, a, T0).msg.yiaddr, addr);
}

#[test]
fn decline_takes_the_address_out_for_a_while() {
    let mut hub = hub("range = \"192.168.30.10-192.168.30.11\"");
    let a = mac(1);
    let addr = dora(&mut hub, a, T0);
    let mut decline = message(a, MessageType::Decline);
    decline.options.requested_ip = Some(addr);
    decline.options.server_id = Some(SERVER);
    let frame = broadcast(a, &decline);
    assert!(matches!(no_reply(&mut hub, &frame, T0), Forward::Consumed));
    assert_eq!(discover(&mut hub, a, T0).msg.yiaddr, ip(11));
    // Pool of two, one declined, one offered: nothing for a third client.
    let third = discover_frame(mac(3));
    assert!(matches!(
        no_reply(&mut hub, &third, T0),
        Forward::Drop(FrameDrop::DhcpIgnored)
    ));
    let later = T0.saturating_add(ethergate_hub::dhcp::DECLINE_HOLD);
    assert_eq!(discover(&mut hub, mac(3), later).msg.yiaddr, addr);
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut hub = hub(RECIPE);
    let a = mac(1);
    let static_ip = ip(250);
    let mut inform = message(a, MessageType::Inform);
    inform.ciaddr = static_ip;
    let ack = send(&mut hub, SESSION, &unicast(a, &inform, static_ip), T0);
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
    assert_eq!(ack.msg.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        ack.msg.options.lease_secs, None,
        "RFC 2131 §4.3.5: no lease time"
    );
    assert_eq!(ack.ip_dst, static_ip);
    assert!(raw_option(&ack.payload, 121).is_some());
    assert!(hub.dhcp().expect("dhcp").snapshot().is_empty());
}

#[test]
fn exhaustion_sends_no_offer_and_counts() {
    let mut hub = hub("range = \"192.168.30.10-192.168.30.11\"");
    dora(&mut hub, mac(1), T0);
    discover(&mut hub, mac(2), T0);
    let f = discover_frame(mac(3));
    assert!(matches!(
        no_reply(&mut hub, &f, T0),
        Forward::Drop(FrameDrop::DhcpIgnored)
    ));
    assert_eq!(hub.dhcp().expect("dhcp").counters().exhausted, 1);
    assert_eq!(
        hub.counters(SESSION)
            .expect("session")
            .dropped(FrameDrop::DhcpIgnored),
        1
    );
    // The unanswered offer to mac(2) lapses; then mac(3) gets its address.
    let later = T0.saturating_add(OFFER_HOLD);
    assert_eq!(discover(&mut hub, mac(3), later).msg.yiaddr, ip(11));
}

#[test]
fn client_id_identifies_the_client_across_macs() {
    let mut hub = hub(RECIPE);
    let mut d = message(mac(1), MessageType::Discover);
    d.options.client_id = Some(b"\x00laptop".to_vec());
    let offer = send(&mut hub, SESSION, &broadcast(mac(1), &d), T0);
    let addr = offer.msg.yiaddr;
    let mut r = message(mac(1), MessageType::Request);
    r.options.client_id = d.options.client_id.clone();
    r.options.server_id = Some(SERVER);
    r.options.requested_ip = Some(addr);
    send(&mut hub, SESSION, &broadcast(mac(1), &r), T0);
    // Same client id from a new NIC: same address.
    let mut d2 = message(mac(2), MessageType::Discover);
    d2.options.client_id = d.options.client_id.clone();
    let offer2 = send(&mut hub, PortId(2), &broadcast(mac(2), &d2), T0);
    assert_eq!(offer2.msg.yiaddr, addr);
}

#[test]
fn spoofed_chaddr_and_rogue_servers_are_dropped() {
    let mut hub = hub(RECIPE);
    // chaddr says mac(2), the frame comes from mac(1).
    let msg = message(mac(2), MessageType::Discover);
    let f = broadcast(mac(1), &msg);
    assert!(matches!(
        no_reply(&mut hub, &f, T0),
        Forward::Drop(FrameDrop::DhcpIgnored)
    ));
    // A DHCP server answer (67 -> 68) from a session is not switched.
    let offer = discover(&mut hub, mac(5), T0);
    let mut rogue = Vec::new();
    PacketBuilder::ethernet2(mac(6).0, [0xff; 6])
        .ipv4([192, 168, 30, 66], [255; 4], 64)
        .udp(67, 68)
        .write(&mut rogue, &offer.payload)
        .expect("rogue frame");
    assert!(matches!(
        hub.forward(PortId(2), &rogue, T0),
        Forward::Drop(FrameDrop::ForeignDhcpServer)
    ));
    // Garbage to UDP/67 is counted as malformed.
    let mut junk = Vec::new();
    PacketBuilder::ethernet2(mac(7).0, [0xff; 6])
        .ipv4([0; 4], [255; 4], 64)
        .udp(68, 67)
        .write(&mut junk, b"not dhcp")
        .expect("junk frame");
    assert!(matches!(
        hub.forward(PortId(3), &junk, T0),
        Forward::Drop(FrameDrop::MalformedDhcp)
    ));
    assert_eq!(hub.dhcp().expect("dhcp").counters().malformed, 1);
}

#[test]
fn hub_without_dhcp_switches_dhcp_frames() {
    let text = "[server]\n[[hub]]\nname = \"plain\"\nbridge = \"tap_01\"\n\
                bridge_address = \"192.168.31.1/24\"\n[[hub.user]]\nname = \"u\"\npassword = \"pw\"\n";
    let config = Config::from_str_with_origin(text, "test.toml").expect("valid config");
    let mut hub = Hub::from_config(&config.hubs[0], HubOptions::default());
    hub.add_port(PortId(0), PortPolicy::default())
        .expect("bridge");
    hub.add_port(PortId(1), PortPolicy::default())
        .expect("session");
    assert!(hub.dhcp().is_none());
    let f = discover_frame(mac(1));
    assert!(matches!(hub.forward(PortId(1), &f, T0), Forward::Flood(_)));
}

#[test]
fn max_message_size_bounds_the_reply() {
    let routes: Vec<String> = (0..64)
        .map(|i| format!("\"10.{i}.0.0/16 via 192.168.30.1\""))
        .collect();
    let mut hub = hub(&format!(
        "range = \"192.168.30.10-192.168.30.200\"\nrouter = \"192.168.30.1\"\nroutes = [{}]",
        routes.join(", ")
    ));
    // No option 57: RFC 2131's 576-byte datagram.
    let small = discover(&mut hub, mac(1), T0);
    assert!(
        small.payload.len() <= 576 - 28,
        "{} bytes",
        small.payload.len()
    );
    let o = &small.msg.options;
    assert!(o.lease_secs.is_some() && o.subnet_mask.is_some() && o.server_id.is_some());
    // 64 routes + default = 65 * 7 - 2 bytes; both options need ~900 bytes.
    let mut d = message(mac(2), MessageType::Discover);
    d.options.max_message_size = Some(1500);
    let big = send(&mut hub, SESSION, &broadcast(mac(2), &d), T0);
    assert!(big.payload.len() <= 1500 - 28);
    assert_eq!(big.msg.options.classless_routes.len(), 65);
    assert_eq!(big.msg.options.ms_classless_routes.len(), 65);
}

#[test]
fn leases_survive_a_restart() {
    let mut hub1 = hub(RECIPE);
    let a = dora(&mut hub1, mac(1), T0);
    let b = dora(&mut hub1, mac(2), T0);
    discover(&mut hub1, mac(4), T0); // offered only: not persisted
    let text = format_leases(&hub1.dhcp().expect("dhcp").snapshot());
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        2,
        "{text}"
    );

    let leases = parse_leases(&text).expect("own output parses");
    let mut hub2 = hub(RECIPE);
    let t1 = T0.saturating_add(Duration::from_secs(60));
    let report = hub2.dhcp_mut().expect("dhcp").restore(leases, t1);
    assert_eq!((report.active, report.expired, report.skipped), (2, 0, 0));
    // The client reboots and asks for its address: ACK.
    let mut reboot = message(mac(2), MessageType::Request);
    reboot.options.requested_ip = Some(b);
    let frame = broadcast(mac(2), &reboot);
    assert_eq!(send(&mut hub2, SESSION, &frame, t1).msg.yiaddr, b);
    // Nobody else gets a restored address.
    assert_eq!(discover(&mut hub2, mac(9), t1).msg.yiaddr, ip(12));
    assert_eq!(discover(&mut hub2, mac(1), t1).msg.yiaddr, a);
}

/// [`hub`] with session ports 1..=3 under `policy` instead of the default,
/// and the tap's MAC pinned to the bridge, as the server sets a hub up.
fn hub_with_policy(dhcp: &str, policy: impl Fn(u64) -> PortPolicy) -> Hub {
    let mut hub = configured_hub(dhcp);
    hub.add_port(PortId::BRIDGE, PortPolicy::default())
        .expect("bridge");
    for p in 1..=3 {
        hub.add_port(PortId(p), policy(p)).expect("port");
    }
    hub.pin_mac(TAP, PortId::BRIDGE, T0)
        .expect("bridge attached");
    hub
}

/// The tap's MAC (the server derives it from the hub name).
const TAP: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);

fn limited(max_macs: u32, max_leases: u32) -> impl Fn(u64) -> PortPolicy {
    move |port| PortPolicy {
        max_macs: Some(max_macs),
        max_leases: Some(max_leases),
        // Each port its own user.
        owner: Some(port),
    }
}

fn discover_frame(client: MacAddr) -> Vec<u8> {
    broadcast(client, &message(client, MessageType::Discover))
}

/// DISCOVER then SELECTING REQUEST from `client` on `port`.
fn dora_on(hub: &mut Hub, port: PortId, client: MacAddr, now: WallTime) -> Ipv4Addr {
    let offer = send(hub, port, &discover_frame(client), now);
    assert_eq!(offer.msg.options.message_type, Some(MessageType::Offer));
    let mut req = message(client, MessageType::Request);
    req.options.server_id = Some(SERVER);
    req.options.requested_ip = Some(offer.msg.yiaddr);
    let ack = send(hub, port, &broadcast(client, &req), now);
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
    ack.msg.yiaddr
}

#[test]
fn a_session_at_its_lease_limit_gets_no_offer_and_another_session_still_does() {
    let mut hub = hub_with_policy(RECIPE, limited(16, 2));
    let a = dora_on(&mut hub, SESSION, mac(1), T0);
    dora_on(&mut hub, SESSION, mac(2), T0);
    // A third station behind the same session: no offer, counted.
    assert!(matches!(
        hub.forward(SESSION, &discover_frame(mac(3)), T0),
        Forward::Drop(FrameDrop::LeaseLimit)
    ));
    assert_eq!(hub.dhcp().expect("dhcp").counters().lease_limit, 1);
    assert_eq!(
        hub.counters(SESSION)
            .expect("session")
            .dropped(FrameDrop::LeaseLimit),
        1
    );
    // Nor can it just claim a free address by RENEWING it unasked.
    let mut grab = message(mac(3), MessageType::Request);
    grab.ciaddr = ip(150);
    assert!(matches!(
        hub.forward(SESSION, &unicast(mac(3), &grab, ip(150)), T0),
        Forward::Drop(FrameDrop::LeaseLimit)
    ));
    // Renewing a lease it holds still works at the limit.
    let mut renew = message(mac(1), MessageType::Request);
    renew.ciaddr = a;
    let t1 = T0.saturating_add(Duration::from_secs(3600));
    let ack = send(&mut hub, SESSION, &unicast(mac(1), &renew, a), t1);
    assert_eq!(ack.msg.options.message_type, Some(MessageType::Ack));
    // Another session is not affected.
    dora_on(&mut hub, PortId(2), mac(20), T0);
    // Once a lease is released, the session may take another.
    let mut release = message(mac(1), MessageType::Release);
    release.ciaddr = a;
    release.options.server_id = Some(SERVER);
    let _ = hub.forward(SESSION, &unicast(mac(1), &release, a), t1);
    dora_on(&mut hub, SESSION, mac(3), t1);
}

#[test]
fn the_lease_limit_outlives_mac_aging() {
    // The MACs that got the leases age out of the MAC table long before
    // the leases end; the session still holds them.
    let mut hub = hub_with_policy(RECIPE, limited(3, 2));
    dora_on(&mut hub, SESSION, mac(1), T0);
    dora_on(&mut hub, SESSION, mac(2), T0);
    let aged = T0.saturating_add(ethergate_hub::DEFAULT_MAC_AGING);
    hub.expire(aged);
    assert_eq!(hub.mac_table().port_count(SESSION), 0);
    assert!(matches!(
        hub.forward(SESSION, &discover_frame(mac(3)), aged),
        Forward::Drop(FrameDrop::LeaseLimit)
    ));
}

#[test]
fn a_reconnected_client_keeps_its_lease_on_its_new_port() {
    // Ports 1 and 2 belong to the same user: port 2 is the client's new
    // session while the old one is still kept for resumption.
    let mut hub = hub_with_policy(RECIPE, |port| PortPolicy {
        max_macs: Some(16),
        max_leases: Some(1),
        owner: Some(if port == 3 { 3 } else { 1 }),
    });
    let addr = dora_on(&mut hub, SESSION, mac(1), T0);
    assert_eq!(dora_on(&mut hub, PortId(2), mac(1), T0), addr);
    assert_eq!(hub.mac_table().lookup(&mac(1), T0), Some(PortId(2)));
    // The lease moved with it: the old port may take a new one.
    dora_on(&mut hub, SESSION, mac(5), T0);
}

/// Issue 12's layer-2 abuse test, at the hub: a session that sends from
/// 300 source MACs gets at most its MaxMac (and its lease limit); another
/// session still gets a DHCP lease; a session that sends from the bridge's
/// MAC or another session's MAC changes nothing in the MAC table.
#[test]
fn issue_12_layer2_abuse_is_contained() {
    let (max_macs, max_leases) = (16, 4);
    let mut hub = hub_with_policy(RECIPE, limited(max_macs, max_leases));
    let attacker = SESSION;
    let (mut offers, mut macs_refused) = (0, 0);
    for n in 0..300u16 {
        let [hi, lo] = n.to_be_bytes();
        let client = MacAddr([0x02, 0x66, 0, 0, hi, lo]);
        match hub.forward(attacker, &discover_frame(client), T0) {
            Forward::Reply { .. } => offers += 1,
            Forward::Drop(FrameDrop::MacLimit) => macs_refused += 1,
            Forward::Drop(FrameDrop::LeaseLimit) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(hub.mac_table().port_count(attacker), max_macs);
    assert_eq!(offers, max_leases);
    assert_eq!(macs_refused, 300 - max_macs);
    let c = *hub.counters(attacker).expect("attacker");
    assert_eq!(c.dropped(FrameDrop::MacLimit), u64::from(300 - max_macs));
    assert_eq!(
        c.dropped(FrameDrop::LeaseLimit),
        u64::from(max_macs - max_leases)
    );

    // Another session still gets a lease.
    let victim_mac = mac(200);
    let victim_addr = dora_on(&mut hub, PortId(2), victim_mac, T0);
    assert_eq!(hub.dhcp().expect("dhcp").pool().held_by(PortId(2), T0), 1);

    // The bridge's MAC (pinned) and the other session's MAC cannot be
    // taken over: the frames are dropped and the table is unchanged.
    let before: std::collections::BTreeMap<_, _> = hub
        .mac_table()
        .iter()
        .map(|(m, p, t)| (m, (p, t)))
        .collect();
    let later = T0.saturating_add(Duration::from_secs(5));
    for stolen in [TAP, victim_mac] {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&stolen.0);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(matches!(
            hub.forward(attacker, &f, later),
            Forward::Drop(FrameDrop::MacSpoof)
        ));
        // Nor through DHCP: releasing the victim's lease from its MAC.
        let mut release = message(stolen, MessageType::Release);
        release.ciaddr = victim_addr;
        release.options.server_id = Some(SERVER);
        assert!(matches!(
            hub.forward(attacker, &unicast(stolen, &release, victim_addr), later),
            Forward::Drop(FrameDrop::MacSpoof)
        ));
    }
    let after: std::collections::BTreeMap<_, _> = hub
        .mac_table()
        .iter()
        .map(|(m, p, t)| (m, (p, t)))
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        hub.counters(attacker)
            .expect("attacker")
            .dropped(FrameDrop::MacSpoof),
        4
    );
    // The victim's lease is intact.
    let lease = hub.dhcp().expect("dhcp").snapshot();
    assert!(
        lease
            .iter()
            .any(|l| l.mac == victim_mac && l.expires_unix > later.unix_secs())
    );
}

#[test]
fn lease_changes_are_reported_for_the_log() {
    use ethergate_hub::dhcp::LeaseEventKind;
    let mut hub = hub(RECIPE);
    let client = mac(1);
    let addr = dora(&mut hub, client, T0);
    let take = |hub: &mut Hub| hub.dhcp_mut().expect("dhcp").take_events();
    let (events, dropped) = take(&mut hub);
    assert_eq!(dropped, 0);
    assert_eq!(events.len(), 1, "an offer is not a lease: {events:?}");
    assert_eq!(events[0].kind, LeaseEventKind::Given);
    assert_eq!((events[0].ip, events[0].mac), (addr, client));
    assert_eq!(events[0].lease_secs, Some(7200));

    let mut renew = message(client, MessageType::Request);
    renew.ciaddr = addr;
    let t1 = T0.saturating_add(Duration::from_secs(3600));
    send(&mut hub, SESSION, &unicast(client, &renew, addr), t1);
    let (events, _) = take(&mut hub);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, LeaseEventKind::Renewed);

    let mut release = message(client, MessageType::Release);
    release.ciaddr = addr;
    release.options.server_id = Some(SERVER);
    let _ = no_reply(&mut hub, &unicast(client, &release, addr), t1);
    let (events, _) = take(&mut hub);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, LeaseEventKind::Released);

    // A client renewing in a loop is counted past the small queue.
    for _ in 0..40 {
        dora(&mut hub, client, t1);
    }
    let (events, dropped) = take(&mut hub);
    assert_eq!(events.len(), 16);
    assert!(dropped > 0);
    assert_eq!(take(&mut hub).0.len(), 0, "taken once");
}
