//! Sans-IO SoftEther SSL-VPN protocol core, wire-compatible with SoftEther
//! VPN 4.x/5.x (spec: `docs/softether-protocol.md`; the `§` citations in
//! this crate point at its sections).
//!
//! Layers, bottom up — each has its own error type:
//! * [`pack`]: the PACK container codec ([`PackError`]);
//! * [`http`]: the HTTP/1.1 preamble ([`HttpError`]);
//! * [`password`]: SHA-0, the stored hash and the login proof;
//! * [`messages`]: hello / login / welcome / error PACKs ([`HandshakeError`]);
//! * [`data`] and [`tunnel`]: the data-phase block stream and keep-alive
//!   schedule ([`DataError`], [`TunnelError`]);
//! * [`server`] and [`client`]: per-connection state machines.
//!
//! Nothing here performs IO, reads a clock or owns an RNG: callers pass
//! received bytes, a [`Timestamp`] and a [`RandomSource`], and take bytes to
//! send from the state machine (quinn-proto / boringtun style).
//!
//! # Driving a server connection
//!
//! ```
//! use ethergate_proto::{
//!     Authenticator, ErrorCode, Frames, LoginRequest, ServerConfig, ServerConnection,
//!     ServerEvent, SessionGrant, TestRng, Timestamp,
//! };
//!
//! struct Hub;
//! impl Authenticator for Hub {
//!     fn authenticate(&mut self, req: &LoginRequest, random: &[u8; 20]) -> Result<SessionGrant, ErrorCode> {
//!         if req.hubname != "TEST" {
//!             return Err(ErrorCode::HUB_NOT_FOUND);
//!         }
//!         let stored = ethergate_proto::password::hash_password("secret", "alice");
//!         if req.verify_password(&stored, random) {
//!             Ok(SessionGrant::new("SID-ALICE-1", "CID-1"))
//!         } else {
//!             Err(ErrorCode::AUTH_FAILED)
//!         }
//!     }
//! }
//!
//! // Production drivers pass a CSPRNG, e.g. `|b: &mut [u8]| rng.fill_bytes(b)`.
//! let mut conn = ServerConnection::new(ServerConfig::default(), TestRng::new(1), Timestamp(0));
//! let mut frames = Frames::new();
//! let received: &[u8] = b"GET / HTTP/1.1\r\nX-VPN: 1\r\n\r\n"; // from the TLS stream
//! conn.handle_input(Timestamp(5), received, &mut frames);
//! while let Some(ev) = conn.poll_event() {
//!     match ev {
//!         ServerEvent::LoginRequested(_) => conn.authenticate_with(Timestamp(5), &mut Hub),
//!         ServerEvent::AdditionalConnectRequested(_) => {
//!             conn.reject_additional(Timestamp(5), ErrorCode::TOO_MANY_CONNECTION)
//!         }
//!         ServerEvent::Established(_) => { /* register the session with the hub */ }
//!         ServerEvent::Closed(_) => { /* flush transmit, then close the socket */ }
//!     }
//! }
//! for frame in frames.iter() { /* hand to the hub */ let _ = frame; }
//! frames.clear();
//! let mut to_send = Vec::new();
//! conn.drain_transmit(&mut to_send); // write to the TLS stream
//! assert!(to_send.starts_with(b"HTTP/1.1 403 Forbidden"));
//! // Sleep until `conn.poll_timeout()`, then call `conn.handle_timeout(now)`.
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod close;
pub mod data;
mod endpoint;
mod error_code;
pub mod http;
pub mod messages;
pub mod pack;
pub mod password;
pub mod rng;
pub mod server;
pub mod time;
pub mod tunnel;
pub mod udp_accel;
#[cfg(feature = "cipher")]
pub mod udp_accel_cipher;

pub use client::{ClientAuth, ClientConfig, ClientConnection, ClientEvent, ClientMode};
pub use close::CloseReason;
pub use data::{DataDecoder, DataEncoder, DataError, FrameSink, Frames};
pub use error_code::ErrorCode;
pub use http::HttpError;
pub use messages::{
    Credentials, Direction, HandshakeError, Hello, LoginRequest, NegotiationLimits, SessionGrant,
    Welcome,
};
pub use pack::{Pack, PackError, PackLimits, ValueType, Values};
pub use rng::{RandomSource, TestRng};
pub use server::{Authenticator, Established, ServerConfig, ServerConnection, ServerEvent};
pub use time::Timestamp;
pub use tunnel::{Tunnel, TunnelError, TunnelStats};
