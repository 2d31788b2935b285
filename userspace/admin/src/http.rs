//! The metrics endpoint's request head: just enough HTTP/1.x to route a
//! `GET` from Prometheus or a load balancer's health check.
//!
//! The endpoint may be exposed beyond localhost (health checks), so the
//! parser is bounded ([`MAX_HEAD_BYTES`]), allocation-free, and total: every
//! input yields a route or an error, never a panic (fuzzed in
//! `userspace/admin/fuzz`).

/// Request heads longer than this are refused (431).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Healthz,
    Readyz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Answered like GET without a body (load balancers use it).
    Head,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub route: Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// More bytes are needed (no blank line yet).
    #[error("incomplete request head")]
    Incomplete,
    #[error("request head too large")]
    TooLarge,
    #[error("malformed request line")]
    Malformed,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not found")]
    NotFound,
}

impl HeadError {
    /// The status line to answer with.
    pub fn status(self) -> &'static str {
        match self {
            Self::Incomplete | Self::Malformed => "400 Bad Request",
            Self::TooLarge => "431 Request Header Fields Too Large",
            Self::MethodNotAllowed => "405 Method Not Allowed",
            Self::NotFound => "404 Not Found",
        }
    }
}

/// Parses the head in `buf` (bytes read so far). Headers are skipped: none
/// changes the answer.
pub fn parse_head(buf: &[u8]) -> Result<Request, HeadError> {
    let Some(end) = find(buf, b"\r\n\r\n").or_else(|| find(buf, b"\n\n")) else {
        return Err(if buf.len() >= MAX_HEAD_BYTES {
            HeadError::TooLarge
        } else {
            HeadError::Incomplete
        });
    };
    if end > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let line_end = find(buf, b"\n").unwrap_or(end);
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with(b"HTTP/1.") || version.len() != 8 {
        return Err(HeadError::Malformed);
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        m if !m.is_empty() && m.iter().all(u8::is_ascii_uppercase) => {
            return Err(HeadError::MethodNotAllowed);
        }
        _ => return Err(HeadError::Malformed),
    };
    // Query strings are ignored (Prometheus may add none, probes sometimes do).
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    let route = match path {
        b"/metrics" => Route::Metrics,
        b"/healthz" => Route::Healthz,
        b"/readyz" => Route::Readyz,
        _ => return Err(HeadError::NotFound),
    };
    Ok(Request { method, route })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn routes() {
        let get =
            |path: &str| parse_head(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(
            get("/metrics"),
            Ok(Request {
                method: Method::Get,
                route: Route::Metrics
            })
        );
        assert_eq!(get("/healthz").map(|r| r.route), Ok(Route::Healthz));
        assert_eq!(get("/readyz?verbose").map(|r| r.route), Ok(Route::Readyz));
        assert_eq!(get("/"), Err(HeadError::NotFound));
        assert_eq!(
            parse_head(b"HEAD /healthz HTTP/1.0\n\n").map(|r| r.method),
            Ok(Method::Head)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\n"),
            Err(HeadError::Incomplete)
        );
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(HeadError::MethodNotAllowed)
        );
        assert_eq!(
            parse_head(b"GET /metrics\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse_head(b"GET /metrics SSH-2.0\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse_head(b"\x16\x03\x01\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse_head(&[b'a'; MAX_HEAD_BYTES]),
            Err(HeadError::TooLarge)
        );
    }

    proptest! {
        #[test]
        fn total_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_head(&bytes);
        }

        #[test]
        fn headers_never_change_the_route(headers in proptest::collection::vec("[A-Za-z-]{1,16}: [ -~]{0,40}", 0..8)) {
            let mut head = String::from("GET /readyz HTTP/1.1\r\n");
            for h in &headers {
                head.push_str(h);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            prop_assert_eq!(parse_head(head.as_bytes()).map(|r| r.route), Ok(Route::Readyz));
        }
    }
}
