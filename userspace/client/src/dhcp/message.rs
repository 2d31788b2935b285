//! DHCPv4 message codec (RFC 2131 §2, options per RFC 2132 and RFC 3442):
//! the BOOTP header, the magic cookie and the options a client needs.
//! Parsing goes through a bounded reader, so a short or lying message is a
//! [`DhcpError`] naming the field, never a panic or an out-of-bounds read.
//!
//! Invariant: [`DhcpMessage::parse`] accepts exactly what
//! [`DhcpMessage::emit`] writes (round trip), plus whatever a real server
//! sends: unknown options are skipped, pad options are allowed anywhere,
//! option 52 overloading is not followed (SecureNAT and ethergate never use
//! it; the `sname`/`file` fields are ignored).
//!
//! This codec lives in the client crate because the hub's DHCP server
//! (`ethergate-hub`) had no public codec yet when the client was written;
//! the two should be merged into one.

use std::net::Ipv4Addr;

/// BOOTP fixed header: op .. file (RFC 2131 §2, figure 1).
const FIXED_LEN: usize = 236;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The largest message we accept: RFC 2131's minimum (576-byte IP datagram)
/// is what every server fits into without option 57; an Ethernet MTU is
/// the hard ceiling, 1500 − 20 (IP) − 8 (UDP).
pub const MAX_MESSAGE: usize = 1472;
/// RFC 3442 allows at most as many routes as fit in the option space; the
/// SoftEther server pushes at most 64 (`MAX_DHCP_CLASSLESS_ROUTE_ENTRIES`).
pub const MAX_ROUTES: usize = 64;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;

/// Option codes (RFC 2132, RFC 3442, Microsoft's 249).
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const MS_CLASSLESS_ROUTES: u8 = 249;
    pub const END: u8 = 255;
}

/// Option 53 values (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

/// One RFC 3442 classless static route. `gateway` 0.0.0.0 means the
/// destination is on-link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClasslessRoute {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

/// Why a DHCP message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    #[error("DHCP message truncated in {0}")]
    Truncated(&'static str),
    #[error("DHCP message of {0} bytes exceeds {MAX_MESSAGE}")]
    TooLong(usize),
    #[error("not a DHCP message (magic cookie missing)")]
    NoCookie,
    #[error("DHCP option {code}: {reason}")]
    BadOption { code: u8, reason: &'static str },
    #[error("DHCP options do not end with option 255")]
    NoEnd,
}

/// A bounded reader over the message (rustls `codec.rs` style): every read
/// names the field it was for.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DhcpError> {
        if self.buf.len() < n {
            return Err(DhcpError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DhcpError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DhcpError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DhcpError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn ip(&mut self, what: &'static str) -> Result<Ipv4Addr, DhcpError> {
        Ok(Ipv4Addr::from(self.u32(what)?))
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The options a client reads or writes. Lists keep wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub message_type: Option<MessageType>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub requested_ip: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
    pub parameter_list: Vec<u8>,
    pub max_message_size: Option<u16>,
    pub renewal_secs: Option<u32>,
    pub rebinding_secs: Option<u32>,
    pub client_id: Option<Vec<u8>>,
    /// Option 121.
    pub classless_routes: Option<Vec<ClasslessRoute>>,
    /// Option 249 (Microsoft's copy of 121; SoftEther sends both).
    pub ms_classless_routes: Option<Vec<ClasslessRoute>>,
}

/// A DHCP message (the BOOTP fields a client uses, and its options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpMessage {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// Client hardware address (htype 1, hlen 6).
    pub chaddr: [u8; 6],
    pub options: Options,
}

impl DhcpMessage {
    /// A client request with empty addresses.
    pub fn request(xid: u32, chaddr: [u8; 6], options: Options) -> Self {
        DhcpMessage {
            op: BOOTREQUEST,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            options,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, DhcpError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(DhcpError::TooLong(bytes.len()));
        }
        let mut r = Reader { buf: bytes };
        let op = r.u8("op")?;
        let htype = r.u8("htype")?;
        let hlen = r.u8("hlen")?;
        let _hops = r.u8("hops")?;
        let xid = r.u32("xid")?;
        let secs = r.u16("secs")?;
        let flags = r.u16("flags")?;
        let ciaddr = r.ip("ciaddr")?;
        let yiaddr = r.ip("yiaddr")?;
        let siaddr = r.ip("siaddr")?;
        let giaddr = r.ip("giaddr")?;
        let chaddr_field = r.take(16, "chaddr")?;
        r.take(64, "sname")?;
        r.take(128, "file")?;
        let mut chaddr = [0u8; 6];
        // Only Ethernet addresses identify us; anything else cannot match
        // our MAC, so it stays all-zero.
        if htype == 1 && hlen == 6 {
            chaddr.copy_from_slice(&chaddr_field[..6]);
        }
        if r.take(4, "magic cookie").map_err(|_| DhcpError::NoCookie)? != MAGIC_COOKIE {
            return Err(DhcpError::NoCookie);
        }
        let options = parse_options(&mut r)?;
        Ok(DhcpMessage {
            op,
            xid,
            secs,
            flags,
            ciaddr,
            yiaddr,
            siaddr,
            giaddr,
            chaddr,
            options,
        })
    }

    /// Appends the message to `out`, padded to the 300-byte BOOTP minimum
    /// that some relays and servers still expect (RFC 1542 §2.1).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[self.op, 1, 6, 0]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.resize(start + FIXED_LEN, 0);
        out.extend_from_slice(&MAGIC_COOKIE);
        emit_options(&self.options, out);
        out.push(opt::END);
        if out.len() - start < 300 {
            out.resize(start + 300, 0);
        }
    }
}

fn parse_options(r: &mut Reader<'_>) -> Result<Options, DhcpError> {
    let mut o = Options::default();
    loop {
        if r.is_empty() {
            return Err(DhcpError::NoEnd);
        }
        let code = r.u8("option code")?;
        match code {
            opt::PAD => continue,
            opt::END => return Ok(o),
            _ => {}
        }
        let len = usize::from(r.u8("option length")?);
        let value = r.take(len, "option value")?;
        let bad = |reason| DhcpError::BadOption { code, reason };
        match code {
            opt::MESSAGE_TYPE => {
                let &[t] = value else {
                    return Err(bad("length must be 1"));
                };
                o.message_type = Some(MessageType::from_u8(t).ok_or(bad("unknown type"))?);
            }
            opt::SUBNET_MASK => o.subnet_mask = Some(one_ip(value).ok_or(bad("length must be 4"))?),
            opt::ROUTER => o.routers = ip_list(value).ok_or(bad("length must be 4n, n ≥ 1"))?,
            opt::DNS => o.dns = ip_list(value).ok_or(bad("length must be 4n, n ≥ 1"))?,
            opt::HOSTNAME => o.hostname = Some(String::from_utf8_lossy(value).into_owned()),
            opt::REQUESTED_IP => {
                o.requested_ip = Some(one_ip(value).ok_or(bad("length must be 4"))?)
            }
            opt::LEASE_TIME => o.lease_secs = Some(one_u32(value).ok_or(bad("length must be 4"))?),
            opt::SERVER_ID => o.server_id = Some(one_ip(value).ok_or(bad("length must be 4"))?),
            opt::PARAMETER_LIST => o.parameter_list = value.to_vec(),
            opt::MAX_MESSAGE_SIZE => {
                let &[a, b] = value else {
                    return Err(bad("length must be 2"));
                };
                o.max_message_size = Some(u16::from_be_bytes([a, b]));
            }
            opt::RENEWAL_TIME => {
                o.renewal_secs = Some(one_u32(value).ok_or(bad("length must be 4"))?)
            }
            opt::REBINDING_TIME => {
                o.rebinding_secs = Some(one_u32(value).ok_or(bad("length must be 4"))?)
            }
            opt::CLIENT_ID => o.client_id = Some(value.to_vec()),
            opt::CLASSLESS_ROUTES => o.classless_routes = Some(parse_routes(code, value)?),
            opt::MS_CLASSLESS_ROUTES => o.ms_classless_routes = Some(parse_routes(code, value)?),
            _ => {}
        }
    }
}

fn one_ip(v: &[u8]) -> Option<Ipv4Addr> {
    let &[a, b, c, d] = v else { return None };
    Some(Ipv4Addr::new(a, b, c, d))
}

fn one_u32(v: &[u8]) -> Option<u32> {
    let &[a, b, c, d] = v else { return None };
    Some(u32::from_be_bytes([a, b, c, d]))
}

fn ip_list(v: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if v.is_empty() || !v.len().is_multiple_of(4) {
        return None;
    }
    Some(v.chunks_exact(4).filter_map(one_ip).collect())
}

/// RFC 3442 §3: per route, one byte of prefix length, the significant
/// octets of the destination (⌈len/8⌉), then the 4-byte router.
pub fn parse_routes(code: u8, v: &[u8]) -> Result<Vec<ClasslessRoute>, DhcpError> {
    let bad = |reason| DhcpError::BadOption { code, reason };
    let mut r = Reader { buf: v };
    let mut routes = Vec::new();
    while !r.is_empty() {
        if routes.len() == MAX_ROUTES {
            return Err(bad("more than 64 routes"));
        }
        let prefix_len = r.u8("route prefix length")?;
        if prefix_len > 32 {
            return Err(bad("prefix length over 32"));
        }
        let significant = usize::from(prefix_len).div_ceil(8);
        let octets = r
            .take(significant, "route destination")
            .map_err(|_| bad("truncated destination"))?;
        let mut network = [0u8; 4];
        network[..significant].copy_from_slice(octets);
        let gateway = r
            .ip("route gateway")
            .map_err(|_| bad("truncated gateway"))?;
        routes.push(ClasslessRoute {
            network: Ipv4Addr::from(network),
            prefix_len,
            gateway,
        });
    }
    if routes.is_empty() {
        return Err(bad("empty route list"));
    }
    Ok(routes)
}

/// The inverse of [`parse_routes`].
pub fn emit_routes(routes: &[ClasslessRoute], out: &mut Vec<u8>) {
    for route in routes {
        let significant = usize::from(route.prefix_len.min(32)).div_ceil(8);
        out.push(route.prefix_len);
        out.extend_from_slice(&route.network.octets()[..significant]);
        out.extend_from_slice(&route.gateway.octets());
    }
}

fn push_option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    // Values longer than 255 bytes would need RFC 3396 splitting; nothing
    // a client sends comes close, so they are cut rather than mis-encoded.
    let value = &value[..value.len().min(255)];
    out.push(code);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

fn emit_options(o: &Options, out: &mut Vec<u8>) {
    // Option 53 first: RFC 2131 does not require it, but some servers look
    // only there.
    if let Some(t) = o.message_type {
        push_option(out, opt::MESSAGE_TYPE, &[t as u8]);
    }
    if let Some(id) = &o.client_id {
        push_option(out, opt::CLIENT_ID, id);
    }
    if let Some(ip) = o.requested_ip {
        push_option(out, opt::REQUESTED_IP, &ip.octets());
    }
    if let Some(ip) = o.server_id {
        push_option(out, opt::SERVER_ID, &ip.octets());
    }
    if let Some(ip) = o.subnet_mask {
        push_option(out, opt::SUBNET_MASK, &ip.octets());
    }
    for (code, list) in [(opt::ROUTER, &o.routers), (opt::DNS, &o.dns)] {
        if !list.is_empty() {
            let bytes: Vec<u8> = list.iter().flat_map(|a| a.octets()).collect();
            push_option(out, code, &bytes);
        }
    }
    if let Some(h) = &o.hostname {
        push_option(out, opt::HOSTNAME, h.as_bytes());
    }
    for (code, v) in [
        (opt::LEASE_TIME, o.lease_secs),
        (opt::RENEWAL_TIME, o.renewal_secs),
        (opt::REBINDING_TIME, o.rebinding_secs),
    ] {
        if let Some(v) = v {
            push_option(out, code, &v.to_be_bytes());
        }
    }
    if let Some(size) = o.max_message_size {
        push_option(out, opt::MAX_MESSAGE_SIZE, &size.to_be_bytes());
    }
    if !o.parameter_list.is_empty() {
        push_option(out, opt::PARAMETER_LIST, &o.parameter_list);
    }
    for (code, routes) in [
        (opt::CLASSLESS_ROUTES, &o.classless_routes),
        (opt::MS_CLASSLESS_ROUTES, &o.ms_classless_routes),
    ] {
        if let Some(routes) = routes {
            let mut bytes = Vec::new();
            emit_routes(routes, &mut bytes);
            push_option(out, code, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> DhcpMessage {
        let mut m = DhcpMessage::request(0x1234_5678, [2, 0, 0, 0, 0, 1], Options::default());
        m.op = BOOTREPLY;
        m.yiaddr = Ipv4Addr::new(192, 168, 30, 10);
        m.options = Options {
            message_type: Some(MessageType::Ack),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            routers: vec![Ipv4Addr::new(192, 168, 30, 1)],
            dns: vec![Ipv4Addr::new(192, 168, 30, 1), Ipv4Addr::new(9, 9, 9, 9)],
            lease_secs: Some(7200),
            server_id: Some(Ipv4Addr::new(192, 168, 30, 1)),
            renewal_secs: Some(3600),
            rebinding_secs: Some(6300),
            classless_routes: Some(vec![ClasslessRoute {
                network: Ipv4Addr::new(10, 0, 0, 0),
                prefix_len: 16,
                gateway: Ipv4Addr::new(192, 168, 30, 1),
            }]),
            ms_classless_routes: Some(vec![ClasslessRoute {
                network: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Ipv4Addr::new(192, 168, 30, 1),
            }]),
            ..Options::default()
        };
        m
    }

    #[test]
    fn round_trip() {
        let m = ack();
        let mut bytes = Vec::new();
        m.emit(&mut bytes);
        assert!(bytes.len() >= 300, "at least the BOOTP minimum");
        let mut small = Vec::new();
        DhcpMessage::request(1, [2; 6], Options::default()).emit(&mut small);
        assert_eq!(small.len(), 300, "padded to the BOOTP minimum");
        assert_eq!(DhcpMessage::parse(&bytes), Ok(m));
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        let mut bytes = Vec::new();
        ack().emit(&mut bytes);
        // Cut before the END option: every prefix must fail cleanly.
        let end = bytes.iter().rposition(|&b| b == opt::END).expect("end");
        for cut in 0..end {
            assert!(DhcpMessage::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rfc3442_example_encoding() {
        // SoftEther's /PUSHROUTE:10.99.0.0/16/192.168.30.1,172.16.0.0/12/192.168.30.1
        // as udhcpc decoded it (softether-protocol.md §11).
        let bytes = [16, 10, 99, 192, 168, 30, 1, 12, 172, 16, 192, 168, 30, 1];
        let routes = parse_routes(121, &bytes).expect("valid");
        assert_eq!(
            routes,
            vec![
                ClasslessRoute {
                    network: Ipv4Addr::new(10, 99, 0, 0),
                    prefix_len: 16,
                    gateway: Ipv4Addr::new(192, 168, 30, 1)
                },
                ClasslessRoute {
                    network: Ipv4Addr::new(172, 16, 0, 0),
                    prefix_len: 12,
                    gateway: Ipv4Addr::new(192, 168, 30, 1)
                },
            ]
        );
        let mut out = Vec::new();
        emit_routes(&routes, &mut out);
        assert_eq!(out, bytes);
        // Default route: prefix 0, no destination octets.
        let default = parse_routes(121, &[0, 192, 168, 30, 1]).expect("valid");
        assert_eq!(default[0].network, Ipv4Addr::UNSPECIFIED);
        for bad in [&[33u8, 1, 2, 3, 4, 5, 6, 7, 8][..], &[24, 10, 0], &[]] {
            assert!(parse_routes(121, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_options_are_named() {
        let mut bytes = Vec::new();
        ack().emit(&mut bytes);
        // Replace option 53's length with 2.
        let pos = FIXED_LEN + 4;
        assert_eq!(bytes[pos], opt::MESSAGE_TYPE);
        bytes[pos + 1] = 2;
        assert!(matches!(
            DhcpMessage::parse(&bytes),
            Err(DhcpError::BadOption { code: 53, .. })
        ));
        assert_eq!(
            DhcpMessage::parse(&vec![0; MAX_MESSAGE + 1]),
            Err(DhcpError::TooLong(MAX_MESSAGE + 1))
        );
        let mut no_cookie = Vec::new();
        ack().emit(&mut no_cookie);
        no_cookie[FIXED_LEN] = 0;
        assert_eq!(DhcpMessage::parse(&no_cookie), Err(DhcpError::NoCookie));
    }
}
