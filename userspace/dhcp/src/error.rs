//! Why bytes are not a DHCP message: the one error type of the codec and
//! the option parsers.

/// Why bytes are not a DHCP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    #[error("message ends inside the BOOTP field {field}")]
    Truncated { field: &'static str },
    #[error("magic cookie is {0:02x?}, not 63 82 53 63")]
    BadMagic([u8; 4]),
    #[error("option {code} is cut off by the end of the message")]
    OptionTruncated { code: u8 },
    #[error("option {code} has length {len}, which its type does not allow")]
    BadOptionLength { code: u8, len: usize },
    #[error("option 53 carries unknown message type {0}")]
    BadMessageType(u8),
    #[error("option {code} has a malformed classless route at byte {offset}")]
    BadClasslessRoute { code: u8, offset: usize },
    #[error("options do not end with the END option (255)")]
    MissingEnd,
}

impl From<ethergate_net::Short> for DhcpError {
    fn from(short: ethergate_net::Short) -> Self {
        DhcpError::Truncated { field: short.field }
    }
}
