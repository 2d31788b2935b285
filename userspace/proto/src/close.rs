//! Why a connection ended, shared by both roles. Invariant: each
//! connection reports exactly one `CloseReason`, in its `Closed` event.

use crate::error_code::ErrorCode;
use crate::messages::HandshakeError;
use crate::tunnel::TunnelError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// An error PACK ended the handshake: sent by us (server role; it is in
    /// the transmit buffer) or received from the server (client role).
    #[error("refused: {0}")]
    Refused(ErrorCode),
    /// The peer broke the handshake rules.
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The tunnel ended: oversize block or keep-alive, or silence.
    #[error("tunnel ended: {0}")]
    Tunnel(TunnelError),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The driver closed the connection (e.g. EOF on the socket).
    #[error("closed locally")]
    Local,
}

impl CloseReason {
    /// The SoftEther code that best describes this end, for logs and for a
    /// client's retry logic (13 means "session timed out, reconnect").
    pub fn code(&self) -> ErrorCode {
        match self {
            CloseReason::Refused(c) => *c,
            CloseReason::Handshake(e) => e.code(),
            CloseReason::Tunnel(TunnelError::Timeout(_)) => ErrorCode::SESSION_TIMEOUT,
            CloseReason::Tunnel(_) => ErrorCode::DISCONNECTED,
            CloseReason::HandshakeTimeout => ErrorCode::DISCONNECTED,
            CloseReason::Local => ErrorCode::DISCONNECTED,
        }
    }
}
