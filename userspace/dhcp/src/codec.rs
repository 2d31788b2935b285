//! The BOOTP/DHCP message codec (RFC 2131 §2, RFC 2132): what faces the
//! network in the hub's DHCP server and in the client.
//!
//! Invariant: [`DhcpMessage::decode`] never panics and reads only through a
//! bounded [`Reader`]; every malformed input is a [`DhcpError`] naming the
//! field or option that was wrong. A message must end with the END option,
//! so a message cut anywhere before its last byte is an error. Repeated
//! options are concatenated (RFC 3396 §7) and long options are split on
//! encode, so 64 classless routes fit. Option overload (52) is not
//! interpreted: `sname`/`file` are kept as opaque bytes.

use std::net::Ipv4Addr;

use ethergate_net::{ClasslessRoute, MacAddr, Reader};

use crate::{error::DhcpError, options::*};

/// The fixed BOOTP header (RFC 2131 §2, figure 1): 236 bytes.
pub const BOOTP_HEADER_LEN: usize = 236;
/// RFC 2131 §3: 99.130.83.99 starts the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Header plus cookie: the shortest DHCP message (before options).
pub const DHCP_FIXED_LEN: usize = BOOTP_HEADER_LEN + MAGIC_COOKIE.len();
/// RFC 1542 §2.1: the smallest BOOTP message that some relays and servers
/// still accept; clients pad their messages to it.
pub const BOOTP_MIN_LEN: usize = 300;
/// BOOTREQUEST / BOOTREPLY (RFC 2131 §2, `op`).
pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
/// `flags` bit 15: the client cannot receive unicast before it is
/// configured (RFC 2131 §4.1).
pub const FLAG_BROADCAST: u16 = 0x8000;
/// An option's length byte caps one instance at 255 bytes; longer values
/// are split over several instances (RFC 3396).
const MAX_OPTION_CHUNK: usize = 255;

/// The options the hub understands, typed. Lists that are empty and
/// `None`s are not sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DhcpOptions {
    pub message_type: Option<MessageType>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<Vec<u8>>,
    pub requested_ip: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
    pub parameter_request_list: Vec<u8>,
    pub message: Option<Vec<u8>>,
    pub max_message_size: Option<u16>,
    pub renewal_secs: Option<u32>,
    pub rebinding_secs: Option<u32>,
    pub client_id: Option<Vec<u8>>,
    /// Option 121.
    pub classless_routes: Vec<ClasslessRoute>,
    /// Option 249 (Microsoft), same encoding as 121.
    pub ms_classless_routes: Vec<ClasslessRoute>,
    /// Every other option, in wire order, values concatenated per RFC 3396.
    pub other: Vec<(u8, Vec<u8>)>,
}

/// One BOOTP/DHCP message (RFC 2131 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpMessage {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub sname: [u8; 64],
    pub file: [u8; 128],
    pub options: DhcpOptions,
}

impl Default for DhcpMessage {
    fn default() -> Self {
        Self {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: [0; 64],
            file: [0; 128],
            options: DhcpOptions::default(),
        }
    }
}

fn fixed<const N: usize>(code: u8, data: &[u8]) -> Result<[u8; N], DhcpError> {
    data.try_into().map_err(|_| DhcpError::BadOptionLength {
        code,
        len: data.len(),
    })
}

fn addr_list(code: u8, data: &[u8]) -> Result<Vec<Ipv4Addr>, DhcpError> {
    if data.is_empty() || !data.len().is_multiple_of(4) {
        return Err(DhcpError::BadOptionLength {
            code,
            len: data.len(),
        });
    }
    Ok(data
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect())
}

fn non_empty(code: u8, data: &[u8]) -> Result<Vec<u8>, DhcpError> {
    if data.is_empty() {
        return Err(DhcpError::BadOptionLength { code, len: 0 });
    }
    Ok(data.to_vec())
}

impl DhcpOptions {
    fn set(&mut self, code: u8, data: &[u8]) -> Result<(), DhcpError> {
        let ip = |d: &[u8]| fixed::<4>(code, d).map(Ipv4Addr::from);
        let u32_of = |d: &[u8]| fixed::<4>(code, d).map(u32::from_be_bytes);
        match code {
            OPT_MESSAGE_TYPE => {
                let [t] = fixed::<1>(code, data)?;
                self.message_type =
                    Some(MessageType::from_code(t).ok_or(DhcpError::BadMessageType(t))?);
            }
            OPT_SUBNET_MASK => self.subnet_mask = Some(ip(data)?),
            OPT_ROUTER => self.routers = addr_list(code, data)?,
            OPT_DNS => self.dns = addr_list(code, data)?,
            OPT_HOSTNAME => self.hostname = Some(non_empty(code, data)?),
            OPT_REQUESTED_IP => self.requested_ip = Some(ip(data)?),
            OPT_LEASE_TIME => self.lease_secs = Some(u32_of(data)?),
            OPT_SERVER_ID => self.server_id = Some(ip(data)?),
            OPT_PARAMETER_REQUEST_LIST => self.parameter_request_list = non_empty(code, data)?,
            OPT_MESSAGE => self.message = Some(non_empty(code, data)?),
            OPT_MAX_MESSAGE_SIZE => {
                self.max_message_size = Some(u16::from_be_bytes(fixed::<2>(code, data)?))
            }
            OPT_RENEWAL_TIME => self.renewal_secs = Some(u32_of(data)?),
            OPT_REBINDING_TIME => self.rebinding_secs = Some(u32_of(data)?),
            OPT_CLIENT_ID => {
                // RFC 2132 §9.14: type byte plus at least one byte of id.
                if data.len() < 2 {
                    return Err(DhcpError::BadOptionLength {
                        code,
                        len: data.len(),
                    });
                }
                self.client_id = Some(data.to_vec());
            }
            OPT_CLASSLESS_ROUTES | OPT_MS_CLASSLESS_ROUTES => {
                if data.is_empty() {
                    return Err(DhcpError::BadOptionLength { code, len: 0 });
                }
                let routes = decode_classless_routes(code, data)?;
                if code == OPT_CLASSLESS_ROUTES {
                    self.classless_routes = routes;
                } else {
                    self.ms_classless_routes = routes;
                }
            }
            _ => self.other.push((code, data.to_vec())),
        }
        Ok(())
    }

    /// The encoded value of option `code`, if present.
    fn value(&self, code: u8) -> Option<Vec<u8>> {
        let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let routes = |r: &[ClasslessRoute]| {
            let mut out = Vec::new();
            encode_classless_routes(r, &mut out);
            out
        };
        match code {
            OPT_MESSAGE_TYPE => self.message_type.map(|t| vec![t.code()]),
            OPT_SUBNET_MASK => self.subnet_mask.map(|a| a.octets().to_vec()),
            OPT_ROUTER => (!self.routers.is_empty()).then(|| ips(&self.routers)),
            OPT_DNS => (!self.dns.is_empty()).then(|| ips(&self.dns)),
            OPT_HOSTNAME => self.hostname.clone(),
            OPT_REQUESTED_IP => self.requested_ip.map(|a| a.octets().to_vec()),
            OPT_LEASE_TIME => self.lease_secs.map(|s| s.to_be_bytes().to_vec()),
            OPT_SERVER_ID => self.server_id.map(|a| a.octets().to_vec()),
            OPT_PARAMETER_REQUEST_LIST => (!self.parameter_request_list.is_empty())
                .then(|| self.parameter_request_list.clone()),
            OPT_MESSAGE => self.message.clone(),
            OPT_MAX_MESSAGE_SIZE => self.max_message_size.map(|s| s.to_be_bytes().to_vec()),
            OPT_RENEWAL_TIME => self.renewal_secs.map(|s| s.to_be_bytes().to_vec()),
            OPT_REBINDING_TIME => self.rebinding_secs.map(|s| s.to_be_bytes().to_vec()),
            OPT_CLIENT_ID => self.client_id.clone(),
            OPT_CLASSLESS_ROUTES => {
                (!self.classless_routes.is_empty()).then(|| routes(&self.classless_routes))
            }
            OPT_MS_CLASSLESS_ROUTES => {
                (!self.ms_classless_routes.is_empty()).then(|| routes(&self.ms_classless_routes))
            }
            _ => None,
        }
    }
}

/// Codes of the typed options, in the order used when nothing else decides.
const KNOWN_CODES: [u8; 16] = [
    OPT_MESSAGE_TYPE,
    OPT_SERVER_ID,
    OPT_SUBNET_MASK,
    OPT_ROUTER,
    OPT_DNS,
    OPT_HOSTNAME,
    OPT_REQUESTED_IP,
    OPT_LEASE_TIME,
    OPT_PARAMETER_REQUEST_LIST,
    OPT_MESSAGE,
    OPT_MAX_MESSAGE_SIZE,
    OPT_RENEWAL_TIME,
    OPT_REBINDING_TIME,
    OPT_CLIENT_ID,
    OPT_CLASSLESS_ROUTES,
    OPT_MS_CLASSLESS_ROUTES,
];

/// Bytes option `code` with `value` takes on the wire, split per RFC 3396.
fn option_wire_len(value: &[u8]) -> usize {
    if value.is_empty() {
        2
    } else {
        value.len() + 2 * value.len().div_ceil(MAX_OPTION_CHUNK)
    }
}

fn put_option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
        return;
    }
    for chunk in value.chunks(MAX_OPTION_CHUNK) {
        out.push(code);
        // chunks() of MAX_OPTION_CHUNK = 255 always fits a u8.
        out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(chunk);
    }
}

impl DhcpMessage {
    /// Decodes a DHCP message (the UDP payload).
    pub fn decode(bytes: &[u8]) -> Result<DhcpMessage, DhcpError> {
        let mut r = Reader::new(bytes);
        let op = r.u8("op")?;
        let htype = r.u8("htype")?;
        let hlen = r.u8("hlen")?;
        let hops = r.u8("hops")?;
        let xid = r.u32("xid")?;
        let secs = r.u16("secs")?;
        let flags = r.u16("flags")?;
        let ciaddr = r.ipv4("ciaddr")?;
        let yiaddr = r.ipv4("yiaddr")?;
        let siaddr = r.ipv4("siaddr")?;
        let giaddr = r.ipv4("giaddr")?;
        let chaddr = r.array::<16>("chaddr")?;
        let sname = r.array::<64>("sname")?;
        let file = r.array::<128>("file")?;
        let cookie = r.array::<4>("magic cookie")?;
        if cookie != MAGIC_COOKIE {
            return Err(DhcpError::BadMagic(cookie));
        }
        let options = decode_options(r.rest())?;
        Ok(DhcpMessage {
            op,
            htype,
            hlen,
            hops,
            xid,
            secs,
            flags,
            ciaddr,
            yiaddr,
            siaddr,
            giaddr,
            chaddr,
            sname,
            file,
            options,
        })
    }

    /// Encodes the message with options in their default order, no size
    /// limit and no padding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_with(out, &[], usize::MAX);
    }

    /// Encodes the message like [`encode`](Self::encode), then pads it
    /// with PAD (zero) bytes after END to [`BOOTP_MIN_LEN`], as a client
    /// sends it (RFC 1542 §2.1).
    pub fn encode_padded(&self, out: &mut Vec<u8>) {
        let start = out.len();
        self.encode(out);
        if out.len() - start < BOOTP_MIN_LEN {
            out.resize(start + BOOTP_MIN_LEN, OPT_PAD);
        }
    }

    /// Encodes the message. Message type and server id come first, then
    /// options in `order` (a client's parameter request list), then the
    /// rest. An option that would push the message past `max_len` bytes is
    /// left out (message type and server id always fit: `max_len` is never
    /// below RFC 2131's 576-byte floor minus IP and UDP headers).
    pub fn encode_with(&self, out: &mut Vec<u8>, order: &[u8], max_len: usize) {
        let start = out.len();
        out.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.extend_from_slice(&self.sname);
        out.extend_from_slice(&self.file);
        out.extend_from_slice(&MAGIC_COOKIE);

        let mut sent = [false; 256];
        let mut emit = |out: &mut Vec<u8>, code: u8, value: &[u8]| {
            if sent[usize::from(code)] {
                return;
            }
            // +1 keeps room for END.
            if out.len() - start + option_wire_len(value) + 1 > max_len
                && code != OPT_MESSAGE_TYPE
                && code != OPT_SERVER_ID
            {
                return;
            }
            sent[usize::from(code)] = true;
            put_option(out, code, value);
        };
        let o = &self.options;
        let lookup = |code: u8| -> Option<Vec<u8>> {
            o.value(code).or_else(|| {
                o.other
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map(|(_, v)| v.clone())
            })
        };
        for code in [OPT_MESSAGE_TYPE, OPT_SERVER_ID]
            .into_iter()
            .chain(order.iter().copied())
            .chain(KNOWN_CODES)
        {
            if code == OPT_PAD || code == OPT_END {
                continue;
            }
            if let Some(v) = lookup(code) {
                emit(out, code, &v);
            }
        }
        for (code, v) in &o.other {
            emit(out, *code, v);
        }
        out.push(OPT_END);
    }

    /// The client's hardware address when it is Ethernet (htype 1, hlen 6).
    pub fn client_mac(&self) -> Option<MacAddr> {
        (self.htype == 1 && self.hlen == 6)
            .then(|| MacAddr::from_slice(&self.chaddr))
            .flatten()
    }

    pub fn broadcast_flag(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }
}

fn decode_options(bytes: &[u8]) -> Result<DhcpOptions, DhcpError> {
    // Collect raw values first so repeated codes concatenate (RFC 3396 §7).
    let mut raw: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while let Some(&code) = bytes.get(i) {
        match code {
            OPT_PAD => i += 1,
            OPT_END => {
                ended = true;
                break;
            }
            _ => {
                let len = usize::from(
                    *bytes
                        .get(i + 1)
                        .ok_or(DhcpError::OptionTruncated { code })?,
                );
                let value = bytes
                    .get(i + 2..i + 2 + len)
                    .ok_or(DhcpError::OptionTruncated { code })?;
                match raw.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, v)) => v.extend_from_slice(value),
                    None => raw.push((code, value.to_vec())),
                }
                i += 2 + len;
            }
        }
    }
    if !ended {
        return Err(DhcpError::MissingEnd);
    }
    let mut options = DhcpOptions::default();
    for (code, value) in &raw {
        options.set(*code, value)?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DhcpMessage {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x42]);
        DhcpMessage {
            xid: 0x1234_5678,
            flags: FLAG_BROADCAST,
            chaddr,
            options: DhcpOptions {
                message_type: Some(MessageType::Request),
                requested_ip: Some(Ipv4Addr::new(192, 168, 30, 10)),
                server_id: Some(Ipv4Addr::new(192, 168, 30, 1)),
                parameter_request_list: vec![1, 3, 6, 121, 249],
                client_id: Some(vec![1, 2, 0, 0, 0, 0, 0x42]),
                hostname: Some(b"laptop".to_vec()),
                max_message_size: Some(1500),
                other: vec![(60, b"udhcp 1.36".to_vec())],
                ..DhcpOptions::default()
            },
            ..DhcpMessage::default()
        }
    }

    #[test]
    fn round_trip() {
        let msg = sample();
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(&out[236..240], MAGIC_COOKIE);
        assert_eq!(out.last(), Some(&OPT_END));
        assert_eq!(DhcpMessage::decode(&out), Ok(msg));
    }

    #[test]
    fn round_trip_reply_with_routes() {
        let routes: Vec<ClasslessRoute> = (0..64u8)
            .map(|i| {
                format!("10.{i}.0.0/16 via 192.168.30.1")
                    .parse()
                    .expect("test route")
            })
            .collect();
        let msg = DhcpMessage {
            op: BOOTREPLY,
            options: DhcpOptions {
                message_type: Some(MessageType::Ack),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                routers: vec![Ipv4Addr::new(192, 168, 30, 1)],
                dns: vec![Ipv4Addr::new(192, 168, 30, 1), Ipv4Addr::new(1, 1, 1, 1)],
                lease_secs: Some(7200),
                renewal_secs: Some(3600),
                rebinding_secs: Some(6300),
                classless_routes: routes.clone(),
                ms_classless_routes: routes,
                ..DhcpOptions::default()
            },
            ..DhcpMessage::default()
        };
        let mut out = Vec::new();
        msg.encode(&mut out);
        // 64 routes of 7 bytes = 448 bytes: split over two instances each.
        assert_eq!(DhcpMessage::decode(&out), Ok(msg));
    }

    #[test]
    fn padded_to_the_bootp_minimum() {
        let mut out = vec![0xaa];
        DhcpMessage::default().encode_padded(&mut out);
        assert_eq!(out.len(), 1 + BOOTP_MIN_LEN, "appended, padded to 300");
        assert_eq!(DhcpMessage::decode(&out[1..]), Ok(DhcpMessage::default()));
        let mut plain = Vec::new();
        sample().encode(&mut plain);
        let mut padded = Vec::new();
        sample().encode_padded(&mut padded);
        assert_eq!(padded.len(), plain.len().max(BOOTP_MIN_LEN));
        assert_eq!(&padded[..plain.len()], &plain[..]);
        assert_eq!(DhcpMessage::decode(&padded), Ok(sample()));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        for cut in 0..out.len() {
            assert!(
                DhcpMessage::decode(&out[..cut]).is_err(),
                "decode of the first {cut} of {} bytes must fail",
                out.len()
            );
        }
    }

    #[test]
    fn named_errors() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        assert_eq!(
            DhcpMessage::decode(&out[..10]),
            Err(DhcpError::Truncated { field: "flags" })
        );
        let mut bad = out.clone();
        bad[236] = 0;
        assert!(matches!(
            DhcpMessage::decode(&bad),
            Err(DhcpError::BadMagic(_))
        ));
        let mut bad = out[..240].to_vec();
        bad.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, 9, OPT_END]);
        assert_eq!(DhcpMessage::decode(&bad), Err(DhcpError::BadMessageType(9)));
        let mut bad = out[..240].to_vec();
        bad.extend_from_slice(&[OPT_SERVER_ID, 3, 1, 2, 3, OPT_END]);
        assert_eq!(
            DhcpMessage::decode(&bad),
            Err(DhcpError::BadOptionLength { code: 54, len: 3 })
        );
    }

    #[test]
    fn order_and_budget() {
        let mut msg = sample();
        msg.options.dns = vec![Ipv4Addr::new(9, 9, 9, 9)];
        msg.options.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
        let mut out = Vec::new();
        msg.encode_with(&mut out, &[6, 1], usize::MAX);
        // 53, 54, then 6 before 1 as the client asked.
        assert_eq!(out[240], OPT_MESSAGE_TYPE);
        assert_eq!(out[243], OPT_SERVER_ID);
        assert_eq!(out[249], OPT_DNS);
        assert_eq!(out[255], OPT_SUBNET_MASK);
        let mut small = Vec::new();
        msg.encode_with(&mut small, &[6, 1], 260);
        assert!(
            small.len() <= 260,
            "{} bytes exceed the budget",
            small.len()
        );
        let back = DhcpMessage::decode(&small).expect("still a valid message");
        assert_eq!(back.options.message_type, Some(MessageType::Request));
        assert_eq!(back.options.dns, vec![Ipv4Addr::new(9, 9, 9, 9)]);
    }

    #[test]
    fn repeated_options_concatenate() {
        let mut out = Vec::new();
        DhcpMessage::default().encode(&mut out);
        out.pop();
        out.extend_from_slice(&[
            OPT_DNS, 4, 1, 1, 1, 1, OPT_DNS, 4, 8, 8, 8, 8, OPT_PAD, OPT_END,
        ]);
        let msg = DhcpMessage::decode(&out).expect("valid");
        assert_eq!(
            msg.options.dns,
            vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)]
        );
    }
}
