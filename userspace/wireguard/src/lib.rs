//! WireGuard without I/O, for ethergate's hubs: the message codec, the
//! Noise_IKpsk2 handshake (both roles), cookies against handshake floods,
//! transport sessions with a replay window, and the per-peer state a
//! responder keeps. Clock and randomness come from the caller.
//! docs/wireguard.md is the protocol reference this code follows.

pub mod cookie;
mod crypto;
pub mod handshake;
pub mod keys;
pub mod message;
#[cfg(feature = "transport")]
pub mod peer;
pub mod replay;
pub mod responder;
#[cfg(feature = "transport")]
pub mod session;

pub use handshake::{Identity, SessionKeys, tai64n};
pub use keys::{KeyError, PresharedKey, PrivateKey, PublicKey};
pub use message::{Message, MessageError};
#[cfg(feature = "transport")]
pub use peer::{Peer, PeerError, Received};
pub use responder::{Admission, Responder};
#[cfg(feature = "transport")]
pub use session::{Session, TransportError};

/// 32 bytes from 64 hex digits (test vectors).
#[cfg(test)]
pub(crate) fn hex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}
