//! UDP sends as ethergate's UDP paths make them: a run of equal-sized
//! datagrams as one segmented send ([`gso`]), from the local address the
//! peer wrote to ([`pktinfo`]). Shared by the server's WireGuard endpoint
//! and UDP acceleration and by `ethergate client`'s UDP acceleration.

pub mod gso;
pub mod pktinfo;

pub use pktinfo::PeerAddr;
