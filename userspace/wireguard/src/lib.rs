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
pub mod peer;
pub mod replay;
pub mod responder;
pub mod session;

pub use handshake::{Identity, SessionKeys, tai64n};
pub use keys::{KeyError, PrivateKey, PublicKey};
pub use message::{Message, MessageError};
pub use peer::{Peer, PeerError, Received};
pub use responder::{Admission, Responder};
pub use session::{Session, TransportError};
