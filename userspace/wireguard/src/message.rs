//! The four WireGuard messages (docs/wireguard.md §3), parsed as views over
//! the received datagram without copying. Every field is little-endian; the
//! first four bytes are the type and three zero bytes.

pub const INITIATION: u8 = 1;
pub const RESPONSE: u8 = 2;
pub const COOKIE_REPLY: u8 = 3;
pub const TRANSPORT: u8 = 4;

pub const INITIATION_LEN: usize = 148;
pub const RESPONSE_LEN: usize = 92;
pub const COOKIE_REPLY_LEN: usize = 64;
/// Header (16) and the tag of an empty payload (16): a keepalive.
pub const TRANSPORT_MIN_LEN: usize = 32;
pub const TRANSPORT_HEADER_LEN: usize = 16;

/// Why a datagram is not a WireGuard message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("shorter than a message header")]
    Short,
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("{kind} of {len} bytes (it is {expected})")]
    Length {
        kind: &'static str,
        len: usize,
        expected: usize,
    },
}

/// A parsed message, borrowing the datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Initiation(Initiation<'a>),
    Response(Response<'a>),
    CookieReply(CookieReply<'a>),
    Transport(Transport<'a>),
}

/// Type 1: the initiator's first message.
#[derive(Debug, PartialEq, Eq)]
pub struct Initiation<'a> {
    /// The whole message: MACs are computed over its prefix.
    pub bytes: &'a [u8],
    pub sender: u32,
    pub ephemeral: &'a [u8; 32],
    pub encrypted_static: &'a [u8; 48],
    pub encrypted_timestamp: &'a [u8; 28],
}

/// Type 2: the responder's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub bytes: &'a [u8],
    pub sender: u32,
    pub receiver: u32,
    pub ephemeral: &'a [u8; 32],
    pub encrypted_nothing: &'a [u8; 16],
}

/// Type 3: "prove you own your address" under load.
#[derive(Debug, PartialEq, Eq)]
pub struct CookieReply<'a> {
    pub receiver: u32,
    pub nonce: &'a [u8; 24],
    pub encrypted_cookie: &'a [u8; 32],
}

/// Type 4: data (an empty payload is a keepalive).
#[derive(Debug, PartialEq, Eq)]
pub struct Transport<'a> {
    pub receiver: u32,
    pub counter: u64,
    /// Ciphertext and tag.
    pub sealed: &'a [u8],
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> &[u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("lengths were checked before fields are read")
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(*array::<4>(bytes, at))
}

fn exact(kind: &'static str, bytes: &[u8], expected: usize) -> Result<(), MessageError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(MessageError::Length {
            kind,
            len: bytes.len(),
            expected,
        })
    }
}

impl<'a> Message<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MessageError> {
        let header: &[u8; 4] = bytes
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(MessageError::Short)?;
        if header[1..] != [0, 0, 0] {
            return Err(MessageError::Reserved);
        }
        match header[0] {
            INITIATION => {
                exact("initiation", bytes, INITIATION_LEN)?;
                Ok(Message::Initiation(Initiation {
                    bytes,
                    sender: u32_at(bytes, 4),
                    ephemeral: array(bytes, 8),
                    encrypted_static: array(bytes, 40),
                    encrypted_timestamp: array(bytes, 88),
                }))
            }
            RESPONSE => {
                exact("response", bytes, RESPONSE_LEN)?;
                Ok(Message::Response(Response {
                    bytes,
                    sender: u32_at(bytes, 4),
                    receiver: u32_at(bytes, 8),
                    ephemeral: array(bytes, 12),
                    encrypted_nothing: array(bytes, 44),
                }))
            }
            COOKIE_REPLY => {
                exact("cookie reply", bytes, COOKIE_REPLY_LEN)?;
                Ok(Message::CookieReply(CookieReply {
                    receiver: u32_at(bytes, 4),
                    nonce: array(bytes, 8),
                    encrypted_cookie: array(bytes, 32),
                }))
            }
            TRANSPORT => {
                if bytes.len() < TRANSPORT_MIN_LEN {
                    return Err(MessageError::Length {
                        kind: "transport message",
                        len: bytes.len(),
                        expected: TRANSPORT_MIN_LEN,
                    });
                }
                Ok(Message::Transport(Transport {
                    receiver: u32_at(bytes, 4),
                    counter: u64::from_le_bytes(*array::<8>(bytes, 8)),
                    sealed: &bytes[TRANSPORT_HEADER_LEN..],
                }))
            }
            other => Err(MessageError::UnknownType(other)),
        }
    }
}

/// The two MACs end every handshake message: mac1 covers everything before
/// it, mac2 everything before mac2.
pub fn mac1_range(len: usize) -> std::ops::Range<usize> {
    len - 32..len - 16
}

pub fn mac2_range(len: usize) -> std::ops::Range<usize> {
    len - 16..len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_and_reserved_bytes_are_checked() {
        let mut init = [0u8; INITIATION_LEN];
        init[0] = INITIATION;
        init[4..8].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(Message::parse(&init), Ok(Message::Initiation(i)) if i.sender == 7));
        assert!(matches!(
            Message::parse(&init[..147]),
            Err(MessageError::Length { .. })
        ));
        init[2] = 1;
        assert_eq!(Message::parse(&init), Err(MessageError::Reserved));
        assert_eq!(Message::parse(&[4, 0]), Err(MessageError::Short));
        assert_eq!(
            Message::parse(&[9, 0, 0, 0]),
            Err(MessageError::UnknownType(9))
        );
        let mut keepalive = [0u8; 32];
        keepalive[0] = TRANSPORT;
        keepalive[8] = 3;
        assert!(matches!(
            Message::parse(&keepalive),
            Ok(Message::Transport(t)) if t.counter == 3 && t.sealed.len() == 16
        ));
    }

    proptest! {
        /// Any datagram parses or is refused; none panics.
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::parse(&bytes);
        }

        /// Any datagram with a valid header and length parses as its type.
        #[test]
        fn well_formed_headers_parse(kind in 1u8..=4, body in proptest::collection::vec(any::<u8>(), 148)) {
            let len = match kind { 1 => 148, 2 => 92, 3 => 64, _ => 32 + (body[0] as usize % 100) };
            let mut bytes = body;
            bytes.resize(len, 0);
            bytes[0] = kind;
            bytes[1..4].fill(0);
            let parsed = Message::parse(&bytes);
            prop_assert!(parsed.is_ok(), "{parsed:?}");
        }
    }
}
