//! DHCP inside Ethernet/IPv4/UDP: the cheap test the switch runs on every
//! frame, and parsing and building of whole frames with `etherparse`.
//!
//! Invariant: [`classify`] reads at most the first 38 bytes and never
//! panics; it only looks at untagged IPv4 frames without IP fragmentation
//! beyond the first fragment, which is what DHCP clients send.

use std::net::Ipv4Addr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use ethergate_net::MacAddr;

pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
/// IPv4 TTL of replies; they never leave the link, any value works.
const REPLY_TTL: u8 = 64;

/// What the switch should do with a frame, DHCP-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpFrameKind {
    /// UDP to port 67: a client talking to a server. Ours to answer.
    ToServer,
    /// UDP 67 → 68: a server answering a client.
    FromServer,
    /// Anything else.
    Other,
}

/// Looks at the Ethernet type, IP protocol and UDP ports only.
pub fn classify(frame: &[u8]) -> DhcpFrameKind {
    const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
    const IPPROTO_UDP: u8 = 17;
    let Some(&[t0, t1]) = frame.get(12..14) else {
        return DhcpFrameKind::Other;
    };
    if [t0, t1] != ETHERTYPE_IPV4 {
        return DhcpFrameKind::Other;
    }
    let Some(&vihl) = frame.get(14) else {
        return DhcpFrameKind::Other;
    };
    if vihl >> 4 != 4 || frame.get(23) != Some(&IPPROTO_UDP) {
        return DhcpFrameKind::Other;
    }
    // Only the first fragment carries the UDP header.
    let frag_offset = frame
        .get(20..22)
        .map_or(1, |b| u16::from_be_bytes([b[0], b[1]]) & 0x1fff);
    if frag_offset != 0 {
        return DhcpFrameKind::Other;
    }
    let udp = 14 + usize::from(vihl & 0x0f) * 4;
    let port = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    match (port(udp), port(udp + 2)) {
        (_, Some(DHCP_SERVER_PORT)) => DhcpFrameKind::ToServer,
        (Some(DHCP_SERVER_PORT), Some(DHCP_CLIENT_PORT)) => DhcpFrameKind::FromServer,
        _ => DhcpFrameKind::Other,
    }
}

/// Why a frame to UDP/67 could not be taken apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpFrameError {
    #[error("not a well-formed Ethernet/IPv4/UDP frame: {0}")]
    Headers(String),
    #[error("IPv4 packet is fragmented")]
    Fragmented,
    #[error("reply does not fit a frame: {0}")]
    Build(String),
}

/// The parts of a DHCP request frame the server needs.
pub struct DhcpFrame<'a> {
    pub src_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub payload: &'a [u8],
}

pub fn parse(frame: &[u8]) -> Result<DhcpFrame<'_>, DhcpFrameError> {
    let p =
        SlicedPacket::from_ethernet(frame).map_err(|e| DhcpFrameError::Headers(e.to_string()))?;
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        return Err(DhcpFrameError::Headers("no Ethernet II header".into()));
    };
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        return Err(DhcpFrameError::Headers("not IPv4".into()));
    };
    if ip.is_payload_fragmented() {
        return Err(DhcpFrameError::Fragmented);
    }
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        return Err(DhcpFrameError::Headers("not UDP".into()));
    };
    Ok(DhcpFrame {
        src_mac: MacAddr(eth.source()),
        src_ip: ip.header().source_addr(),
        dst_ip: ip.header().destination_addr(),
        payload: udp.payload(),
    })
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

impl ReplyTo {
    pub const BROADCAST: ReplyTo = ReplyTo {
        mac: MacAddr::BROADCAST,
        ip: Ipv4Addr::BROADCAST,
    };
}

/// Writes a complete Ethernet frame carrying `payload` from the server
/// (port 67) to the client (port 68) into `out`, replacing its contents.
pub fn build(
    out: &mut Vec<u8>,
    server_mac: MacAddr,
    server_ip: Ipv4Addr,
    to: ReplyTo,
    payload: &[u8],
) -> Result<(), DhcpFrameError> {
    out.clear();
    let builder = PacketBuilder::ethernet2(server_mac.0, to.mac.0)
        .ipv4(server_ip.octets(), to.ip.octets(), REPLY_TTL)
        .udp(DHCP_SERVER_PORT, DHCP_CLIENT_PORT);
    out.reserve(builder.size(payload.len()));
    builder
        .write(out, payload)
        .map_err(|e| DhcpFrameError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_frame(src_port: u16, dst_port: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0xff; 6])
            .ipv4([0, 0, 0, 0], [255, 255, 255, 255], 64)
            .udp(src_port, dst_port)
            .write(&mut out, &[1, 2, 3])
            .expect("test frame builds");
        out
    }

    #[test]
    fn classifies_by_ports() {
        assert_eq!(classify(&udp_frame(68, 67)), DhcpFrameKind::ToServer);
        assert_eq!(classify(&udp_frame(67, 68)), DhcpFrameKind::FromServer);
        assert_eq!(classify(&udp_frame(53, 53)), DhcpFrameKind::Other);
        let f = udp_frame(68, 67);
        for cut in 0..f.len() {
            // Never panics; a cut before the ports is not DHCP.
            let kind = classify(&f[..cut]);
            if cut < 38 {
                assert_eq!(kind, DhcpFrameKind::Other, "cut at {cut}");
            }
        }
    }

    #[test]
    fn build_then_parse() {
        let mut out = Vec::new();
        let to = ReplyTo {
            mac: MacAddr([2, 0, 0, 0, 0, 9]),
            ip: Ipv4Addr::new(192, 168, 30, 10),
        };
        build(
            &mut out,
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(192, 168, 30, 1),
            to,
            b"payload",
        )
        .expect("builds");
        assert_eq!(classify(&out), DhcpFrameKind::FromServer);
        let p = parse(&out).expect("parses");
        assert_eq!(p.src_ip, Ipv4Addr::new(192, 168, 30, 1));
        assert_eq!(p.dst_ip, to.ip);
        assert_eq!(p.payload, b"payload");
    }
}
