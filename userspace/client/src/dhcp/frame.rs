//! DHCP inside Ethernet/IPv4/UDP: building the client's frames and picking
//! server replies out of the frames that arrive through the tunnel. The
//! client speaks DHCP directly into the tunnel with the tap's MAC, so the
//! kernel never sees these frames (no raw sockets, no dhclient).
//!
//! Invariant: [`server_reply`] returns `Some` only for an IPv4 UDP datagram
//! from port 67 to port 68 whose Ethernet destination is our MAC or
//! broadcast and whose payload, at most [`MAX_MESSAGE`] bytes with at most
//! [`MAX_ROUTES`] classless routes per option, decodes as a BOOTREPLY;
//! anything else is left for the tap.

use std::net::Ipv4Addr;

use ethergate_dhcp::{BOOTREPLY, DhcpMessage, DhcpOptions};
use etherparse::{LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

/// The largest message we accept: RFC 2131's minimum (576-byte IP datagram)
/// is what every server fits into without option 57; an Ethernet MTU is
/// the hard ceiling, 1500 − 20 (IP) − 8 (UDP).
pub const MAX_MESSAGE: usize = 1472;
/// RFC 3442 allows at most as many routes as fit in the option space; the
/// SoftEther server pushes at most 64 (`MAX_DHCP_CLASSLESS_ROUTE_ENTRIES`).
pub const MAX_ROUTES: usize = 64;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// RFC 1700 default TTL; DHCP never crosses a router here anyway.
const TTL: u8 = 64;

/// A BOOTREQUEST from `mac` (Ethernet, htype 1, hlen 6) with empty
/// addresses.
pub fn client_message(xid: u32, mac: [u8; 6], options: DhcpOptions) -> DhcpMessage {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    DhcpMessage {
        xid,
        chaddr,
        options,
        ..DhcpMessage::default()
    }
}

/// One DHCP message as an Ethernet frame from us.
pub fn client_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    message: &DhcpMessage,
) -> Vec<u8> {
    let mut payload = Vec::with_capacity(300);
    message.encode_padded(&mut payload);
    let builder = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src_ip.octets(), dst_ip.octets(), TTL)
        .udp(CLIENT_PORT, SERVER_PORT);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    // Writing into a Vec cannot fail, and the payload (≤ MAX_MESSAGE) is
    // far below the UDP length limit, so an error here is impossible; an
    // empty frame would simply be dropped by the peer.
    if builder.write(&mut frame, &payload).is_err() {
        frame.clear();
    }
    frame
}

/// A DHCP reply for `our_mac` in `frame`, with the server's MAC.
pub fn server_reply(frame: &[u8], our_mac: [u8; 6]) -> Option<([u8; 6], DhcpMessage)> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(LinkSlice::Ethernet2(eth)) = &packet.link else {
        return None;
    };
    let dst = eth.destination();
    if dst != our_mac && dst != BROADCAST_MAC {
        return None;
    }
    let Some(NetSlice::Ipv4(_)) = &packet.net else {
        return None;
    };
    let Some(TransportSlice::Udp(udp)) = &packet.transport else {
        return None;
    };
    if udp.source_port() != SERVER_PORT || udp.destination_port() != CLIENT_PORT {
        return None;
    }
    if udp.payload().len() > MAX_MESSAGE {
        return None;
    }
    let message = DhcpMessage::decode(udp.payload()).ok()?;
    let o = &message.options;
    let routes_fit =
        o.classless_routes.len() <= MAX_ROUTES && o.ms_classless_routes.len() <= MAX_ROUTES;
    (message.op == BOOTREPLY && routes_fit).then_some((eth.source(), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethergate_dhcp::MessageType;
    use ethergate_net::ClasslessRoute;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    /// `payload` as a UDP 67 → 68 frame from the server to `MAC`.
    fn server_frame(payload: &[u8]) -> Vec<u8> {
        let mut reply = Vec::new();
        PacketBuilder::ethernet2(SERVER_MAC, MAC)
            .ipv4([192, 168, 30, 1], [192, 168, 30, 10], 64)
            .udp(SERVER_PORT, CLIENT_PORT)
            .write(&mut reply, payload)
            .expect("build");
        reply
    }

    fn offer() -> DhcpMessage {
        let mut offer = client_message(
            7,
            MAC,
            DhcpOptions {
                message_type: Some(MessageType::Offer),
                ..DhcpOptions::default()
            },
        );
        offer.op = BOOTREPLY;
        offer
    }

    #[test]
    fn own_frames_are_not_replies_but_server_frames_are() {
        let discover = client_message(
            7,
            MAC,
            DhcpOptions {
                message_type: Some(MessageType::Discover),
                ..DhcpOptions::default()
            },
        );
        let frame = client_frame(
            MAC,
            BROADCAST_MAC,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            &discover,
        );
        assert_eq!(
            frame.len(),
            14 + 20 + 8 + 300,
            "padded to the BOOTP minimum"
        );
        assert!(server_reply(&frame, MAC).is_none(), "ports 68→67");

        let offer = offer();
        let mut payload = Vec::new();
        offer.encode(&mut payload);
        let reply = server_frame(&payload);
        let (from, parsed) = server_reply(&reply, MAC).expect("a reply for us");
        assert_eq!(from, SERVER_MAC);
        assert_eq!(parsed, offer);
        assert_eq!(parsed.client_mac().map(|m| m.0), Some(MAC));
        assert!(
            server_reply(&reply, [2, 0, 0, 0, 0, 2]).is_none(),
            "unicast to another MAC"
        );
        for cut in 0..reply.len() {
            let _ = server_reply(&reply[..cut], MAC);
        }
    }

    #[test]
    fn oversized_replies_are_not_taken() {
        let mut payload = Vec::new();
        offer().encode(&mut payload);
        payload.resize(MAX_MESSAGE, 0);
        assert!(server_reply(&server_frame(&payload), MAC).is_some());
        payload.push(0);
        assert!(
            server_reply(&server_frame(&payload), MAC).is_none(),
            "{} bytes exceed MAX_MESSAGE",
            payload.len()
        );

        let route = |i: usize| ClasslessRoute {
            destination: format!("10.{i}.0.0/16").parse().expect("cidr"),
            gateway: Ipv4Addr::new(192, 168, 30, 1),
        };
        for (count, taken) in [(MAX_ROUTES, true), (MAX_ROUTES + 1, false)] {
            for ms in [false, true] {
                let mut m = offer();
                let routes = (0..count).map(route).collect();
                if ms {
                    m.options.ms_classless_routes = routes;
                } else {
                    m.options.classless_routes = routes;
                }
                let mut payload = Vec::new();
                m.encode(&mut payload);
                assert_eq!(
                    server_reply(&server_frame(&payload), MAC).is_some(),
                    taken,
                    "{count} routes (option {})",
                    if ms { 249 } else { 121 }
                );
            }
        }
    }
}
