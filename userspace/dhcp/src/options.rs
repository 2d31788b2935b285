//! DHCP option codes (RFC 2132), the message type (option 53) and the
//! RFC 3442 classless static route encoding used by options 121 and 249.
//!
//! Invariant: [`encode_classless_routes`] and [`decode_classless_routes`]
//! are inverses for routes whose destination is a network address (which
//! `ClasslessRoute` guarantees): RFC 3442 carries only the significant
//! octets, so host bits could not survive the trip anyway.

use std::net::Ipv4Addr;

use ethergate_net::{ClasslessRoute, Ipv4Cidr};

use crate::error::DhcpError;

pub const OPT_PAD: u8 = 0;
pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_HOSTNAME: u8 = 12;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_OVERLOAD: u8 = 52;
pub const OPT_MESSAGE_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_PARAMETER_REQUEST_LIST: u8 = 55;
pub const OPT_MESSAGE: u8 = 56;
pub const OPT_MAX_MESSAGE_SIZE: u8 = 57;
pub const OPT_RENEWAL_TIME: u8 = 58;
pub const OPT_REBINDING_TIME: u8 = 59;
pub const OPT_CLIENT_ID: u8 = 61;
/// RFC 3442 classless static routes.
pub const OPT_CLASSLESS_ROUTES: u8 = 121;
/// Microsoft's pre-standard code for the same data; SoftEther sends the
/// identical bytes under both codes (softether-protocol.md §11).
pub const OPT_MS_CLASSLESS_ROUTES: u8 = 249;
pub const OPT_END: u8 = 255;

/// Option 53 (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    pub const fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// Number of significant destination octets for a prefix length
/// (RFC 3442 §3: ceil(width / 8)).
const fn significant_octets(prefix_len: u8) -> usize {
    (prefix_len as usize).div_ceil(8)
}

/// Appends the RFC 3442 encoding of `routes`: per route one width byte, the
/// significant octets of the destination, then the 4-byte gateway.
/// `10.0.0.0/16 via 192.168.30.1` → `10 0a 00 c0 a8 1e 01`.
pub fn encode_classless_routes(routes: &[ClasslessRoute], out: &mut Vec<u8>) {
    for route in routes {
        let width = route.destination.prefix_len();
        let net = route.destination.network().octets();
        out.push(width);
        out.extend_from_slice(&net[..significant_octets(width)]);
        out.extend_from_slice(&route.gateway.octets());
    }
}

/// Decodes an RFC 3442 route list. Host bits beyond the prefix in the last
/// significant octet are cleared rather than rejected, as RFC 3442 clients
/// do.
pub fn decode_classless_routes(code: u8, data: &[u8]) -> Result<Vec<ClasslessRoute>, DhcpError> {
    let bad = |offset: usize| DhcpError::BadClasslessRoute { code, offset };
    let mut routes = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let width = data[i];
        if width > 32 {
            return Err(bad(i));
        }
        let n = significant_octets(width);
        let dest_bytes = data.get(i + 1..i + 1 + n).ok_or_else(|| bad(i))?;
        let gw_bytes: [u8; 4] = data
            .get(i + 1 + n..i + 5 + n)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(i))?;
        let mut dest = [0u8; 4];
        dest[..n].copy_from_slice(dest_bytes);
        let destination = Ipv4Cidr::new(Ipv4Addr::from(dest), width)
            .ok_or_else(|| bad(i))?
            .trunc();
        routes.push(ClasslessRoute {
            destination,
            gateway: Ipv4Addr::from(gw_bytes),
        });
        i += 5 + n;
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str) -> ClasslessRoute {
        s.parse().expect("test route parses")
    }

    #[test]
    fn rfc3442_bytes_for_the_recipe_route() {
        let mut out = Vec::new();
        encode_classless_routes(&[route("10.0.0.0/16 via 192.168.30.1")], &mut out);
        assert_eq!(out, [0x10, 0x0a, 0x00, 0xc0, 0xa8, 0x1e, 0x01]);
    }

    #[test]
    fn rfc3442_examples_round_trip() {
        let routes = vec![
            route("0.0.0.0/0 via 192.168.30.1"),
            route("10.17.0.0/16 via 192.168.30.2"),
            route("10.27.129.0/24 via 192.168.30.3"),
            route("10.229.0.128/25 via 192.168.30.4"),
            route("10.198.122.47/32 via 192.168.30.5"),
            route("172.16.0.0/12 via 192.168.30.1"),
        ];
        let mut out = Vec::new();
        encode_classless_routes(&routes, &mut out);
        // RFC 3442 §3 lists exactly these destination encodings.
        assert_eq!(&out[..5], [0, 192, 168, 30, 1]);
        assert_eq!(&out[5..8], [16, 10, 17]);
        assert_eq!(&out[12..16], [24, 10, 27, 129]);
        let back = decode_classless_routes(121, &out).expect("decodes");
        assert_eq!(back, routes);
    }

    #[test]
    fn softether_pushroute_bytes() {
        // SoftEther's /PUSHROUTE:10.99.0.0/16/192.168.30.1,172.16.0.0/12/192.168.30.1
        // as udhcpc decoded it (softether-protocol.md §11).
        let bytes = [16, 10, 99, 192, 168, 30, 1, 12, 172, 16, 192, 168, 30, 1];
        let routes = vec![
            route("10.99.0.0/16 via 192.168.30.1"),
            route("172.16.0.0/12 via 192.168.30.1"),
        ];
        assert_eq!(decode_classless_routes(121, &bytes), Ok(routes.clone()));
        let mut out = Vec::new();
        encode_classless_routes(&routes, &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn truncated_route_lists_are_errors() {
        let mut out = Vec::new();
        encode_classless_routes(&[route("10.0.0.0/16 via 192.168.30.1")], &mut out);
        for cut in 1..out.len() {
            assert!(
                decode_classless_routes(121, &out[..cut]).is_err(),
                "cut at {cut} must be an error"
            );
        }
        assert!(decode_classless_routes(121, &[33, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
