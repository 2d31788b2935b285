//! Sans-IO SoftEther SSL-VPN protocol core, wire-compatible with SoftEther
//! VPN 4.x/5.x (spec: `shared/docs/softether-protocol.md`).
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
#![forbid(unsafe_code)]

pub mod client;
pub mod close;
pub mod data;
pub mod error_code;
pub mod http;
pub mod messages;
pub mod pack;
pub mod password;
mod reader;
pub mod rng;
pub mod server;
pub mod time;
pub mod tunnel;

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
