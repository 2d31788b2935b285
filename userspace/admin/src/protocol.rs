//! The admin socket's protocol: one JSON request line in, one JSON response
//! line out, then the server closes. Line-delimited JSON keeps it usable
//! with `socat` in an emergency and trivially versionable (unknown fields
//! are ignored, unknown commands get an error naming them).

use serde::{Deserialize, Serialize};

use crate::model::Status;

/// Longest request line the daemon reads; anything longer is refused.
pub const MAX_REQUEST_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Re-read the config file; applied atomically or not at all.
    Reload,
    /// Close a session by name (its TCP connections and its hub port).
    Disconnect {
        session: String,
    },
    /// Close every session of a user (on one hub, or on all of them).
    DisconnectUser {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hub: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status(Box<Status>),
    Reloaded {
        changes: Vec<String>,
    },
    Disconnected {
        session: String,
    },
    /// How many sessions of the user were closed (0 when it had none).
    DisconnectedUser {
        user: String,
        sessions: usize,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("request longer than {MAX_REQUEST_BYTES} bytes")]
    TooLong,
    #[error("request is not valid UTF-8")]
    NotUtf8,
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl Request {
    pub fn encode(&self) -> String {
        // Serialising these enums cannot fail: no maps with non-string keys.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Parses one request line (the trailing newline is optional).
    /// One request line, with or without its newline: the cap counts the
    /// request itself, so what `encode` writes always reads back.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if body.len() > MAX_REQUEST_BYTES {
            return Err(DecodeError::TooLong);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
        serde_json::from_str(text.trim_end()).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// Reads the one request line a client sends: up to its newline, or one
/// byte past [`MAX_REQUEST_BYTES`] (plus the newline), which tells "too
/// long" from "exactly at the cap" to [`Request::decode`].
pub fn read_request_line(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::{BufRead, Read};
    let mut line = Vec::new();
    std::io::BufReader::new(reader)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)?;
    Ok(line)
}

impl Response {
    pub fn encode(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"result":"error","message":"cannot encode the response: {e}"}}"#)
        });
        line.push('\n');
        line
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
        serde_json::from_str(text.trim_end()).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Status,
            Request::Reload,
            Request::Disconnect {
                session: "SID-TSUMURA-4".into(),
            },
            Request::DisconnectUser {
                user: "tsumura".into(),
                hub: Some("mikalab".into()),
            },
            Request::DisconnectUser {
                user: "tsumura".into(),
                hub: None,
            },
        ] {
            assert_eq!(Request::decode(request.encode().as_bytes()), Ok(request));
        }
    }

    #[test]
    fn wire_form_is_stable() {
        assert_eq!(Request::Status.encode(), "{\"command\":\"status\"}\n");
        assert_eq!(
            Request::decode(br#"{"command":"disconnect","session":"S"}"#),
            Ok(Request::Disconnect {
                session: "S".into()
            })
        );
    }

    #[test]
    fn bad_requests_are_named() {
        assert!(matches!(
            Request::decode(br#"{"command":"format_disk"}"#),
            Err(DecodeError::Malformed(m)) if m.contains("format_disk")
        ));
        assert_eq!(Request::decode(&[0xff, 0xfe]), Err(DecodeError::NotUtf8));
        assert_eq!(
            Request::decode(&vec![b' '; MAX_REQUEST_BYTES + 1]),
            Err(DecodeError::TooLong)
        );
    }

    #[test]
    fn responses_round_trip() {
        let status = Status {
            version: "0.1.0".into(),
            ..Status::default()
        };
        for response in [
            Response::Status(Box::new(status)),
            Response::Reloaded {
                changes: vec!["hub mikalab: 1 user added".into()],
            },
            Response::Error {
                message: "line 3: bad".into(),
            },
        ] {
            assert_eq!(Response::decode(response.encode().as_bytes()), Ok(response));
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::decode(&bytes);
        }

        #[test]
        fn any_session_name_round_trips(session in ".{0,64}") {
            let request = Request::Disconnect { session };
            prop_assert_eq!(Request::decode(request.encode().as_bytes()), Ok(request));
        }
    }
}
