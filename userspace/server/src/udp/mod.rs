//! UDP plumbing shared by the WireGuard endpoint and SoftEther's UDP
//! acceleration: per-worker SO_REUSEPORT sockets with source steering
//! ([`socket`]), reads in bursts ([`burst`]) with receive offload
//! ([`gro`]) switched per session ([`batch`]); segmented sends and replies
//! from the address the peer wrote to are the `ethergate-udp` crate's,
//! shared with the client.

pub(crate) mod batch;
pub(crate) mod burst;
pub(crate) mod gro;
pub(crate) use ethergate_udp::{gso, pktinfo};
mod socket;

pub use socket::{ReplySource, bind_sockets};
