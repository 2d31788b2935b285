//! DHCP on the wire: the BOOTP/DHCP message codec, option codes and the
//! RFC 3442 classless route encoding, and DHCP inside Ethernet/IPv4/UDP
//! frames. The hub's DHCP server (`ethergate-hub`) and the client
//! (`ethergate-client`) both speak through this crate; neither carries a
//! copy. A new option is a constant and its accessor in `options.rs` and
//! `codec.rs`, plus the reply logic in the server.
#![forbid(unsafe_code)]

mod codec;
mod error;
mod frame;
mod options;

pub use codec::{
    BOOTP_HEADER_LEN, BOOTP_MIN_LEN, BOOTREPLY, BOOTREQUEST, DHCP_FIXED_LEN, DhcpMessage,
    DhcpOptions, FLAG_BROADCAST, MAGIC_COOKIE,
};
pub use error::DhcpError;
pub use frame::{
    DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DhcpFrame, DhcpFrameError, DhcpFrameKind, ReplyTo,
    build as build_frame, classify, parse as parse_frame,
};
pub use options::*;
