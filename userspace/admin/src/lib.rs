//! ethergate's operator surface, as plain data and pure functions:
//!
//! - [`model`]: what `ethergate status` reports (sessions, hubs, NAT,
//!   TLS and data-path modes), serialisable as JSON.
//! - [`protocol`]: the admin socket's request/response lines.
//! - [`render`]: the human-readable status table.
//! - [`prometheus`]: the same status as Prometheus text exposition.
//! - [`http`]: the metrics endpoint's request-head parser (it may face a
//!   load balancer's health checks, so it is bounded and fuzzed).
//!
//! No IO here: the daemon gathers a [`model::Status`], these modules turn it
//! into bytes, and the CLI turns bytes back into a table.

#![forbid(unsafe_code)]

pub mod http;
pub mod model;
pub mod prometheus;
pub mod protocol;
pub mod render;

pub use model::{Status, WireguardStatus};
pub use protocol::{Request, Response};
