//! SoftEther error codes as they travel in the `error` INT of a PACK
//! (spec §8; `ERR_*` in Cedar/Cedar.h). Invariant: the numeric value is the
//! wire value; unknown codes from a peer are kept, not mapped away.

use std::fmt;

/// A SoftEther `ERR_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: ErrorCode = ErrorCode(0);
    pub const SERVER_IS_NOT_VPN: ErrorCode = ErrorCode(2);
    pub const DISCONNECTED: ErrorCode = ErrorCode(3);
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(4);
    pub const CLIENT_IS_NOT_VPN: ErrorCode = ErrorCode(5);
    pub const AUTHTYPE_NOT_SUPPORTED: ErrorCode = ErrorCode(7);
    pub const HUB_NOT_FOUND: ErrorCode = ErrorCode(8);
    pub const AUTH_FAILED: ErrorCode = ErrorCode(9);
    pub const HUB_STOPPING: ErrorCode = ErrorCode(10);
    pub const SESSION_REMOVED: ErrorCode = ErrorCode(11);
    pub const ACCESS_DENIED: ErrorCode = ErrorCode(12);
    pub const SESSION_TIMEOUT: ErrorCode = ErrorCode(13);
    pub const INVALID_PROTOCOL: ErrorCode = ErrorCode(14);
    /// The right way to refuse an `additional_connect` (spec §6).
    pub const TOO_MANY_CONNECTION: ErrorCode = ErrorCode(15);
    pub const HUB_IS_BUSY: ErrorCode = ErrorCode(16);
    pub const TOO_MANY_USER_SESSION: ErrorCode = ErrorCode(20);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(23);
    pub const NOT_SUPPORTED: ErrorCode = ErrorCode(33);
    pub const NULL_PASSWORD_LOCAL_ONLY: ErrorCode = ErrorCode(51);
    pub const NOT_ENOUGH_RIGHT: ErrorCode = ErrorCode(52);

    /// Symbolic name for logs, if this is a code we know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "ERR_NO_ERROR",
            2 => "ERR_SERVER_IS_NOT_VPN",
            3 => "ERR_DISCONNECTED",
            4 => "ERR_PROTOCOL_ERROR",
            5 => "ERR_CLIENT_IS_NOT_VPN",
            7 => "ERR_AUTHTYPE_NOT_SUPPORTED",
            8 => "ERR_HUB_NOT_FOUND",
            9 => "ERR_AUTH_FAILED",
            10 => "ERR_HUB_STOPPING",
            11 => "ERR_SESSION_REMOVED",
            12 => "ERR_ACCESS_DENIED",
            13 => "ERR_SESSION_TIMEOUT",
            14 => "ERR_INVALID_PROTOCOL",
            15 => "ERR_TOO_MANY_CONNECTION",
            16 => "ERR_HUB_IS_BUSY",
            20 => "ERR_TOO_MANY_USER_SESSION",
            23 => "ERR_INTERNAL_ERROR",
            33 => "ERR_NOT_SUPPORTED",
            51 => "ERR_NULL_PASSWORD_LOCAL_ONLY",
            52 => "ERR_NOT_ENOUGH_RIGHT",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "error code {}", self.0),
        }
    }
}
