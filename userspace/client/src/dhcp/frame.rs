//! DHCP inside Ethernet/IPv4/UDP: building the client's frames and picking
//! server replies out of the frames that arrive through the tunnel. The
//! client speaks DHCP directly into the tunnel with the tap's MAC, so the
//! kernel never sees these frames (no raw sockets, no dhclient).
//!
//! Invariant: [`server_reply`] returns `Some` only for an IPv4 UDP datagram
//! from port 67 to port 68 whose Ethernet destination is our MAC or
//! broadcast and whose payload parses as a BOOTREPLY; anything else is left
//! for the tap.

use std::net::Ipv4Addr;

use etherparse::{LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use super::message::{BOOTREPLY, DhcpMessage};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// RFC 1700 default TTL; DHCP never crosses a router here anyway.
const TTL: u8 = 64;

/// One DHCP message as an Ethernet frame from us.
pub fn client_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    message: &DhcpMessage,
) -> Vec<u8> {
    let mut payload = Vec::with_capacity(300);
    message.emit(&mut payload);
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
    let message = DhcpMessage::parse(udp.payload()).ok()?;
    (message.op == BOOTREPLY).then_some((eth.source(), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::message::{MessageType, Options};

    #[test]
    fn own_frames_are_not_replies_but_server_frames_are() {
        let mac = [2, 0, 0, 0, 0, 1];
        let server_mac = [2, 0, 0, 0, 0, 9];
        let discover = DhcpMessage::request(
            7,
            mac,
            Options {
                message_type: Some(MessageType::Discover),
                ..Options::default()
            },
        );
        let frame = client_frame(
            mac,
            BROADCAST_MAC,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            &discover,
        );
        assert_eq!(frame.len(), 14 + 20 + 8 + 300);
        assert!(server_reply(&frame, mac).is_none(), "ports 68→67");

        let mut offer = discover.clone();
        offer.op = BOOTREPLY;
        let mut payload = Vec::new();
        offer.emit(&mut payload);
        let mut reply = Vec::new();
        PacketBuilder::ethernet2(server_mac, mac)
            .ipv4([192, 168, 30, 1], [192, 168, 30, 10], 64)
            .udp(SERVER_PORT, CLIENT_PORT)
            .write(&mut reply, &payload)
            .expect("build");
        let (from, parsed) = server_reply(&reply, mac).expect("a reply for us");
        assert_eq!(from, server_mac);
        assert_eq!(parsed, offer);
        assert!(
            server_reply(&reply, [2, 0, 0, 0, 0, 2]).is_none(),
            "unicast to another MAC"
        );
        for cut in 0..reply.len() {
            let _ = server_reply(&reply[..cut], mac);
        }
    }
}
