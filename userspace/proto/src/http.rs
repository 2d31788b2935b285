//! The HTTP/1.1 preamble SoftEther wraps around its handshake (spec §1):
//! the `GET /` probe and its 403 answer, the signature POST to
//! `/vpnsvc/connect.cgi`, and PACK-over-HTTP on `/vpnsvc/vpn.cgi`.
//! This is not a general HTTP implementation: it parses only
//! `Content-Length`-framed messages, with every size bounded by the named
//! caps below. Invariant: [`parse_request`]/[`parse_response`] either return
//! a complete message and the exact number of bytes it used, `None` when
//! more input is needed (never buffering more than the caps), or an error.

/// Longest header line (`HTTP_HEADER_LINE_MAX_SIZE`, Mayaqua/HTTP.h).
pub const MAX_LINE: usize = 4096;
/// Most header lines we accept. SoftEther allows 128
/// (`HTTP_HEADER_MAX_LINES`); real clients send at most 8 (the probe, §1.2).
pub const MAX_HEADERS: usize = 32;
/// Largest request/status line plus headers. Real heads are ~300 bytes; the
/// cap also bounds rescanning when a head trickles in byte by byte.
pub const MAX_HEAD: usize = 8192;
/// HTTP requests one connection may make before the handshake must be
/// done: the real server's loop limit, advertised as `max=19` (§1.2).
pub const MAX_REQUESTS_PER_CONNECTION: u32 = 19;
/// Watermark length (Cedar/WaterMark.c, §1.3).
pub const WATERMARK_LEN: usize = 1411;
/// Signature bodies are the watermark plus `Rand32() % 2000` bytes (§1.3).
pub const MAX_SIGNATURE_BODY: usize = WATERMARK_LEN + 2000;
/// PACK bodies: `HTTP_PACK_MAX_SIZE`, what the real server accepts (§1.4).
pub const MAX_PACK_BODY: usize = 65_536;
/// The probe's answer body as our client accepts it. The real client takes
/// up to 1 MiB − 1, but the 403 page is ~300 bytes and only its prefix or
/// the tag matters, so we stay at the handshake cap.
pub const MAX_PROBE_RESPONSE_BODY: usize = 65_536;

/// The alternative signature body other clients send (`HTTP_VPN_TARGET_POSTDATA`).
pub const VPNCONNECT: &[u8] = b"VPNCONNECT";
/// First ten bytes of the 1411-byte watermark: a GIF89a header for a
/// 200x51 image (§1.3). Only this prefix is public in our spec, so the
/// server's check is the lenient one the spec allows (see [`is_valid_signature`]).
pub const WATERMARK_PREFIX: [u8; 10] = [0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0xc8, 0x00, 0x33, 0x00];
pub const TARGET_SIGNATURE: &str = "/vpnsvc/connect.cgi";
pub const TARGET_PACK: &str = "/vpnsvc/vpn.cgi";
pub const CONTENT_TYPE_PACK: &str = "application/octet-stream";
pub const CONTENT_TYPE_SIGNATURE: &str = "image/jpeg";
pub const KEEP_ALIVE_VALUE: &str = "timeout=15; max=19";
/// The body prefix the client's probe check looks for
/// (`http_detect_server_startwith`, Mayaqua/Network.c).
pub const FORBIDDEN_PREFIX: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<HTML><HEAD>\r\n<TITLE>403 Forbidden</TITLE>\r\n</HEAD><BODY>\r\n<H1>Forbidden</H1>\r\nYou don't have permission to access ";
/// The alternative probe tag (`http_detect_server_tag_future`).
pub const SERVER_TAG: &str = "9C37197CA7C2428388C2E6E59B829B30";
/// The probe's `User-Agent` as the real client sends it (§1.2).
pub const PROBE_USER_AGENT: &str =
    "Mozilla/5.0 (Windows NT 6.3; WOW64; rv:29.0) Gecko/20100101 Firefox/29.0";

/// Errors of the HTTP layer. Any of them ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP line longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("HTTP head longer than {max} bytes")]
    HeadTooLong { max: usize },
    #[error("more than {max} HTTP header lines")]
    TooManyHeaders { max: usize },
    #[error("malformed HTTP start line")]
    BadStartLine,
    #[error("malformed HTTP header line (no ':' or empty name)")]
    BadHeader,
    #[error("HTTP head is not valid UTF-8")]
    NotUtf8,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("Content-Length given twice")]
    DuplicateContentLength,
    #[error("Content-Length required")]
    MissingContentLength,
    #[error("Transfer-Encoding is not supported")]
    TransferEncoding,
    #[error("HTTP body of {len} bytes exceeds the cap of {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("HTTP body is empty")]
    EmptyBody,
    #[error("unexpected request {method} {target}")]
    UnexpectedRequest { method: String, target: String },
    #[error("unexpected HTTP version {0:?}")]
    BadVersion(String),
    #[error("unexpected HTTP status {0:?}")]
    BadStatus(String),
    #[error("unexpected Content-Type {0:?}")]
    BadContentType(String),
    #[error("more than {max} HTTP requests on one connection")]
    TooManyRequests { max: u32 },
    #[error("server did not answer the probe like a SoftEther server")]
    NotSoftEther,
}

/// A parsed request or response head. For a request the start line is
/// `method target version`; for a response `version status reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub start: [String; 3],
    /// Header names and trimmed values in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Case-insensitive header lookup (first occurrence).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A complete HTTP message: head plus its `Content-Length` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Message {
    pub fn method(&self) -> &str {
        &self.head.start[0]
    }
    pub fn target(&self) -> &str {
        &self.head.start[1]
    }
    /// Version of a request (third token of the start line).
    pub fn version(&self) -> &str {
        &self.head.start[2]
    }
    /// Status code of a response (second token).
    pub fn status(&self) -> &str {
        &self.head.start[1]
    }
}

enum Kind {
    Request,
    Response,
}

/// A whole message and the bytes it took, `None` while it is incomplete.
pub type Parsed = Result<Option<(Message, usize)>, HttpError>;

/// Parse one request from the front of `buf`. `max_body` is the caller's
/// cap for this phase. A missing `Content-Length` means an empty body
/// (a GET); the server checks per target whether that is acceptable.
pub fn parse_request(buf: &[u8], max_body: usize) -> Parsed {
    parse(buf, max_body, Kind::Request)
}

/// Parse one response from the front of `buf`; `Content-Length` is required
/// (the SoftEther client requires it, §1.2/§1.4).
pub fn parse_response(buf: &[u8], max_body: usize) -> Parsed {
    parse(buf, max_body, Kind::Response)
}

fn parse(buf: &[u8], max_body: usize, kind: Kind) -> Result<Option<(Message, usize)>, HttpError> {
    let mut pos = 0;
    let mut start: Option<[String; 3]> = None;
    let mut headers = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&c| c == b'\n') else {
            if rest.len() > MAX_LINE + 1 {
                return Err(HttpError::LineTooLong { max: MAX_LINE });
            }
            if buf.len() > MAX_HEAD {
                return Err(HttpError::HeadTooLong { max: MAX_HEAD });
            }
            return Ok(None);
        };
        let mut line = &rest[..nl];
        // SoftEther sends CRLF; a bare LF is tolerated like `RecvLine` does.
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.len() > MAX_LINE {
            return Err(HttpError::LineTooLong { max: MAX_LINE });
        }
        pos += nl + 1;
        if pos > MAX_HEAD {
            return Err(HttpError::HeadTooLong { max: MAX_HEAD });
        }
        let line = std::str::from_utf8(line).map_err(|_| HttpError::NotUtf8)?;
        match start {
            None => start = Some(parse_start(line, &kind)?),
            Some(_) if line.is_empty() => break,
            Some(_) => {
                if headers.len() >= MAX_HEADERS {
                    return Err(HttpError::TooManyHeaders { max: MAX_HEADERS });
                }
                // Split at the first ':' and trim, like `RecvHttpHeader`.
                let (n, v) = line.split_once(':').ok_or(HttpError::BadHeader)?;
                let n = n.trim();
                if n.is_empty() {
                    return Err(HttpError::BadHeader);
                }
                headers.push((n.to_owned(), v.trim().to_owned()));
            }
        }
    }
    let Some(start) = start else {
        return Err(HttpError::BadStartLine);
    };
    let head = Head { start, headers };
    if head.header("transfer-encoding").is_some() {
        return Err(HttpError::TransferEncoding);
    }
    let mut cl = None;
    for (n, v) in &head.headers {
        if n.eq_ignore_ascii_case("content-length") {
            if cl.is_some() {
                return Err(HttpError::DuplicateContentLength);
            }
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|c| c.is_ascii_digit()) {
                return Err(HttpError::BadContentLength);
            }
            cl = Some(
                v.parse::<usize>()
                    .map_err(|_| HttpError::BadContentLength)?,
            );
        }
    }
    let len = match (cl, kind) {
        (Some(n), _) => n,
        (None, Kind::Request) => 0,
        (None, Kind::Response) => return Err(HttpError::MissingContentLength),
    };
    if len > max_body {
        return Err(HttpError::BodyTooLarge { len, max: max_body });
    }
    if buf.len() - pos < len {
        return Ok(None);
    }
    let body = buf[pos..pos + len].to_vec();
    Ok(Some((Message { head, body }, pos + len)))
}

fn parse_start(line: &str, kind: &Kind) -> Result<[String; 3], HttpError> {
    let mut it = line.splitn(3, ' ');
    let a = it.next().unwrap_or("");
    let b = it.next().unwrap_or("");
    let c = it.next().unwrap_or("");
    let ok = match kind {
        // "METHOD TARGET VERSION": three non-empty tokens.
        Kind::Request => !a.is_empty() && !b.is_empty() && !c.is_empty() && !c.contains(' '),
        // "VERSION STATUS [REASON]": the reason may hold spaces or be absent.
        Kind::Response => !a.is_empty() && !b.is_empty(),
    };
    if !ok {
        return Err(HttpError::BadStartLine);
    }
    Ok([a.to_owned(), b.to_owned(), c.to_owned()])
}

/// Server-side check of a signature POST (§1.3). Accepted bodies:
/// exactly `VPNCONNECT`, or 1411..=3411 bytes starting with the watermark's
/// GIF89a header. The full watermark is not in our spec, so this is the
/// lenient check the spec explicitly permits ("A lenient server may accept
/// any POST to that path"); we still insist on one of the two real shapes.
pub fn is_valid_signature(body: &[u8]) -> bool {
    body == VPNCONNECT
        || ((WATERMARK_LEN..=MAX_SIGNATURE_BODY).contains(&body.len())
            && body.starts_with(&WATERMARK_PREFIX))
}

/// True if `req` is `POST /vpnsvc/connect.cgi` (case-insensitive, §1.3).
pub fn is_signature_request(req: &Message) -> bool {
    req.method().eq_ignore_ascii_case("POST") && req.target().eq_ignore_ascii_case(TARGET_SIGNATURE)
}

/// The server's checks on a PACK request (`HttpServerRecvEx`, §1.4).
pub fn check_pack_request(req: &Message) -> Result<(), HttpError> {
    if !req.method().eq_ignore_ascii_case("POST") || !req.target().eq_ignore_ascii_case(TARGET_PACK)
    {
        return Err(HttpError::UnexpectedRequest {
            method: req.method().to_owned(),
            target: req.target().to_owned(),
        });
    }
    if !req.version().eq_ignore_ascii_case("HTTP/1.1") {
        return Err(HttpError::BadVersion(req.version().to_owned()));
    }
    check_content_type(&req.head)?;
    if req.body.is_empty() {
        return Err(HttpError::EmptyBody);
    }
    Ok(())
}

/// The client's checks on a PACK response (`HttpClientRecv`, §1.4).
pub fn check_pack_response(resp: &Message) -> Result<(), HttpError> {
    if !resp.head.start[0].eq_ignore_ascii_case("HTTP/1.1") {
        return Err(HttpError::BadVersion(resp.head.start[0].clone()));
    }
    if resp.status() != "200" {
        return Err(HttpError::BadStatus(resp.status().to_owned()));
    }
    check_content_type(&resp.head)?;
    if resp.body.is_empty() {
        return Err(HttpError::EmptyBody);
    }
    Ok(())
}

fn check_content_type(head: &Head) -> Result<(), HttpError> {
    let ct = head.header("content-type").unwrap_or("");
    if !ct.eq_ignore_ascii_case(CONTENT_TYPE_PACK) {
        return Err(HttpError::BadContentType(ct.to_owned()));
    }
    Ok(())
}

/// The client's probe check (§1.2): the status is ignored; the body must
/// start with the 403 page prefix or contain the tag.
pub fn is_softether_probe_answer(resp: &Message) -> bool {
    let b = &resp.body;
    !b.is_empty()
        && (b.starts_with(FORBIDDEN_PREFIX.as_bytes())
            || b.windows(SERVER_TAG.len())
                .any(|w| w == SERVER_TAG.as_bytes()))
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The 403 answer to the probe and to any other non-VPN request (§1.2
/// recommendation, verified against the real client). `target` is echoed
/// into the page like SoftEther's `$TARGET$`, with HTML metacharacters
/// dropped since it is attacker-controlled.
pub fn write_forbidden(out: &mut Vec<u8>, target: &str) {
    let safe: String = target
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '&' | '"' | '\''))
        .take(256)
        .collect();
    let body = format!("{FORBIDDEN_PREFIX}{safe}\r\non this server.<P>\r\n</BODY></HTML>\r\n");
    out.extend_from_slice(b"HTTP/1.1 403 Forbidden\r\n");
    push_header(out, "Content-Type", "text/html; charset=iso-8859-1");
    push_header(out, "Connection", "Keep-Alive");
    push_header(out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// A PACK response (`HttpServerSend`, §1.4). `date` is an RFC 1123 date
/// (see [`http_date`]) or `None` to omit the header, which the client
/// does not check.
pub fn write_pack_response(out: &mut Vec<u8>, body: &[u8], date: Option<&str>) {
    write_message(
        out,
        b"HTTP/1.1 200 OK\r\n",
        Body {
            content_type: CONTENT_TYPE_PACK,
            bytes: body,
            date,
            host: None,
            keep_alive: true,
        },
    );
}

/// A PACK request (`HttpClientSend`, §1.4).
pub fn write_pack_request(out: &mut Vec<u8>, host: &str, body: &[u8], date: Option<&str>) {
    write_message(
        out,
        b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\n",
        Body {
            content_type: CONTENT_TYPE_PACK,
            bytes: body,
            date,
            host: Some(host),
            keep_alive: true,
        },
    );
}

/// The signature POST with the `VPNCONNECT` body (§1.3), which the real
/// server accepts and which needs no copy of SoftEther's watermark.
pub fn write_signature_request(out: &mut Vec<u8>, host: &str) {
    write_message(
        out,
        b"POST /vpnsvc/connect.cgi HTTP/1.1\r\n",
        Body {
            content_type: CONTENT_TYPE_SIGNATURE,
            bytes: VPNCONNECT,
            date: None,
            host: Some(host),
            keep_alive: false,
        },
    );
}

/// A message body and the headers that go with it.
struct Body<'a> {
    content_type: &'a str,
    bytes: &'a [u8],
    date: Option<&'a str>,
    host: Option<&'a str>,
    /// Whether a `Keep-Alive` header is sent (the connection itself is
    /// always kept alive).
    keep_alive: bool,
}

/// `start_line`, then the headers in the order SoftEther writes them
/// (alphabetical), then `body`.
fn write_message(out: &mut Vec<u8>, start_line: &[u8], body: Body<'_>) {
    out.extend_from_slice(start_line);
    push_header(out, "Connection", "Keep-Alive");
    push_header(out, "Content-Length", &body.bytes.len().to_string());
    push_header(out, "Content-Type", body.content_type);
    if let Some(d) = body.date {
        push_header(out, "Date", d);
    }
    if let Some(host) = body.host {
        push_header(out, "Host", host);
    }
    if body.keep_alive {
        push_header(out, "Keep-Alive", KEEP_ALIVE_VALUE);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.bytes);
}

/// The `GET /` probe with the real client's headers, in its order (§1.2).
pub fn write_probe_request(out: &mut Vec<u8>, host: &str) {
    out.extend_from_slice(b"GET / HTTP/1.1\r\n");
    push_header(out, "X-VPN", "1");
    push_header(out, "Host", host);
    push_header(out, "Keep-Alive", KEEP_ALIVE_VALUE);
    push_header(out, "Connection", "Keep-Alive");
    push_header(out, "Accept-Language", "ja");
    push_header(out, "User-Agent", PROBE_USER_AGENT);
    push_header(out, "Pragma", "no-cache");
    push_header(out, "Cache-Control", "no-cache");
    out.extend_from_slice(b"\r\n");
}

/// RFC 1123 date for the `Date` header from Unix seconds.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil-from-days (H. Hinnant's algorithm), valid for all u64 days we meet.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1).clamp(0, 11) as usize],
        y,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}
