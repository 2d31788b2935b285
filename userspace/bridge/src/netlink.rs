//! A tiny rtnetlink client: just enough to build `RTM_NEWLINK`,
//! `RTM_GETLINK`, `RTM_NEWADDR`, `RTM_DELADDR` and `RTM_GETADDR` requests and
//! to read the kernel's acks and dumps. Messages are built byte by byte in
//! native endianness (netlink is host-endian), so there is no `unsafe` here
//! beyond one `setsockopt`.
//!
//! Invariants: every request gets a fresh sequence number and a call returns
//! only once the kernel has answered *that* sequence number (ack, error or
//! end of dump), so one request's failure is never reported against the
//! next. The socket lives in the network namespace of the thread that opened
//! it, and so does everything done through it.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

/// Netlink aligns headers and attributes to 4 bytes (`NLMSG_ALIGNTO`,
/// `NLA_ALIGNTO` in `uapi/linux/netlink.h`).
const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nlattr)`.
const NLA_HDRLEN: usize = 4;
/// Attribute type flags that are not part of the type (`uapi/linux/netlink.h`).
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text (`enum nlmsgerr_attrs`).
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Receive buffer. Kernel dump messages are sized to the reader's buffer but
/// capped at 32 KiB (`netlink_dump`), so 64 KiB never truncates.
const RECV_BUF: usize = 64 * 1024;

pub(crate) const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
pub(crate) const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
pub(crate) const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
pub(crate) const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
pub(crate) const NLM_F_REPLACE: u16 = libc::NLM_F_REPLACE as u16;
const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;

/// A failed netlink exchange: the kernel's errno and, when the kernel gave
/// one (extended ack), its explanation — e.g. "MTU greater than device
/// maximum".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlinkError {
    pub errno: Errno,
    pub message: Option<String>,
}

impl NetlinkError {
    fn bare(errno: Errno) -> Self {
        Self {
            errno,
            message: None,
        }
    }

    fn malformed(what: &str) -> Self {
        Self {
            errno: Errno::EPROTO,
            message: Some(format!("malformed netlink reply: {what}")),
        }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.errno.desc())?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetlinkError {}

impl From<Errno> for NetlinkError {
    fn from(errno: Errno) -> Self {
        Self::bare(errno)
    }
}

/// One request under construction: header, fixed family header, attributes.
pub(crate) struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// Starts a request of `kind` (`RTM_*`); `NLM_F_REQUEST` is implied.
    pub(crate) fn new(kind: u16, flags: u16) -> Self {
        let mut buf = vec![0; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Self { buf }
    }

    fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.buf[6], self.buf[7]])
    }

    fn set_flags(&mut self, flags: u16) {
        self.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
    }

    /// Appends the family header (`ifinfomsg`, `ifaddrmsg`), padded.
    pub(crate) fn header(mut self, bytes: &[u8]) -> Self {
        self.push_padded(bytes);
        self
    }

    /// Appends one attribute.
    pub(crate) fn attr(mut self, kind: u16, value: &[u8]) -> Self {
        self.push_attr(kind, value);
        self
    }

    fn push_attr(&mut self, kind: u16, value: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.push_padded(value);
    }

    fn push_padded(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// `struct ifinfomsg` (`uapi/linux/rtnetlink.h`).
pub(crate) fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = libc::AF_UNSPEC as u8;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// `struct ifaddrmsg` (`uapi/linux/if_addr.h`).
pub(crate) fn ifaddrmsg(family: u8, prefix: u8, scope: u8, index: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[0] = family;
    m[1] = prefix;
    m[3] = scope;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

/// Attributes in a message payload or a nested attribute; stops at the
/// first malformed one (the kernel never sends those).
pub(crate) struct Attrs<'a>(&'a [u8]);

impl<'a> Attrs<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.0.get(..NLA_HDRLEN)?;
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind =
            u16::from_ne_bytes([header[2], header[3]]) & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
        let value = self.0.get(NLA_HDRLEN..len)?;
        self.0 = self.0.get(align(len)..).unwrap_or_default();
        Some((kind, value))
    }
}

/// An rtnetlink socket in the calling thread's network namespace.
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        // Ask for extended acks: the kernel then says *why* a request failed
        // ("MTU greater than device maximum"), which goes into our errors.
        // Kernels before 4.12 refuse the option; errors are then bare.
        let on: libc::c_int = 1;
        // SAFETY: `fd` is an open netlink socket; `on` is a live c_int and
        // the length passed is its size.
        let _ = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_EXT_ACK,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends `request` and waits for its ack. Any replies before the ack
    /// (a `RTM_GETLINK` answer, say) go to `each` as (type, payload).
    pub(crate) fn request(
        &mut self,
        mut request: Request,
        each: impl FnMut(u16, &[u8]),
    ) -> Result<(), NetlinkError> {
        request.set_flags(request.flags() | NLM_F_ACK);
        self.exchange(request, false, each)
    }

    /// Sends a dump `request` and hands every message to `each` until the
    /// kernel's `NLMSG_DONE`.
    pub(crate) fn dump(
        &mut self,
        mut request: Request,
        each: impl FnMut(u16, &[u8]),
    ) -> Result<(), NetlinkError> {
        request.set_flags(request.flags() | NLM_F_DUMP);
        self.exchange(request, true, each)
    }

    fn exchange(
        &mut self,
        request: Request,
        dump: bool,
        mut each: impl FnMut(u16, &[u8]),
    ) -> Result<(), NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = request.finish(seq);
        let sent = send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())?;
        if sent != bytes.len() {
            return Err(NetlinkError::malformed("short send"));
        }
        loop {
            // MSG_TRUNC makes recv report the datagram's real length, so a
            // truncated one is detected rather than half-parsed.
            let len = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC)?;
            let datagram = self
                .buf
                .get(..len)
                .ok_or_else(|| NetlinkError::malformed("datagram larger than the buffer"))?;
            let mut rest = datagram;
            while rest.len() >= NLMSG_HDRLEN {
                let msg_len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let flags = u16::from_ne_bytes([rest[6], rest[7]]);
                let msg_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                let msg = rest
                    .get(..msg_len)
                    .filter(|m| m.len() >= NLMSG_HDRLEN)
                    .ok_or_else(|| NetlinkError::malformed("message length"))?;
                rest = rest.get(align(msg_len)..).unwrap_or_default();
                if msg_seq != seq {
                    // A late answer to an earlier request that we gave up on.
                    continue;
                }
                let payload = &msg[NLMSG_HDRLEN..];
                match kind {
                    NLMSG_ERROR => return parse_error(payload, flags),
                    NLMSG_DONE if dump => {
                        // A dump's DONE carries an int: 0, or -errno if the
                        // dump failed part-way.
                        let code = payload
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        return if code < 0 {
                            Err(NetlinkError::bare(Errno::from_raw(-code)))
                        } else {
                            Ok(())
                        };
                    }
                    _ => each(kind, payload),
                }
            }
        }
    }
}

/// `struct nlmsgerr`: error 0 is an ack. With `NLM_F_ACK_TLVS` the kernel
/// appends attributes after the echoed request (which is cut to its header
/// when `NLM_F_CAPPED` is set).
fn parse_error(payload: &[u8], flags: u16) -> Result<(), NetlinkError> {
    let code = payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| NetlinkError::malformed("short nlmsgerr"))?;
    if code == 0 {
        return Ok(());
    }
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let echoed = payload.get(4..4 + NLMSG_HDRLEN).map_or(NLMSG_HDRLEN, |h| {
            if flags & NLM_F_CAPPED != 0 {
                NLMSG_HDRLEN
            } else {
                align(u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize)
            }
        });
        let tlvs = payload.get(4 + echoed..).unwrap_or_default();
        message = Attrs::new(tlvs)
            .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
            .map(|(_, text)| {
                let text = text.split(|b| *b == 0).next().unwrap_or_default();
                String::from_utf8_lossy(text).into_owned()
            });
    }
    Err(NetlinkError {
        errno: Errno::from_raw(-code),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_aligned_and_length_prefixed() {
        let bytes = Request::new(libc::RTM_NEWLINK, NLM_F_ACK)
            .header(&ifinfomsg(7, 1, 1))
            .attr(libc::IFLA_ADDRESS, &[2, 0, 0, 0, 0, 1])
            .finish(42);
        // 16 header + 16 ifinfomsg + (4 + 6 → 12 aligned) attribute.
        assert_eq!(bytes.len(), 44);
        assert_eq!(
            u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            44
        );
        assert_eq!(
            u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            42
        );
        let attrs: Vec<_> = Attrs::new(&bytes[32..]).collect();
        assert_eq!(attrs, vec![(libc::IFLA_ADDRESS, &[2u8, 0, 0, 0, 0, 1][..])]);
    }

    #[test]
    fn attrs_stop_at_a_truncated_attribute() {
        let mut bytes = vec![8, 0, 1, 0, 1, 2, 3, 4];
        bytes.extend_from_slice(&[200, 0, 2, 0, 9]);
        let attrs: Vec<_> = Attrs::new(&bytes).collect();
        assert_eq!(attrs, vec![(1, &[1u8, 2, 3, 4][..])]);
    }

    #[test]
    fn error_with_extended_ack_text() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
        payload.extend_from_slice(&[0; NLMSG_HDRLEN]);
        let text = b"MTU too big\0";
        payload.extend_from_slice(&u16::try_from(4 + text.len()).expect("small").to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        let err = parse_error(&payload, NLM_F_ACK_TLVS | NLM_F_CAPPED).expect_err("an error");
        assert_eq!(err.errno, Errno::EINVAL);
        assert_eq!(err.message.as_deref(), Some("MTU too big"));
        assert_eq!(parse_error(&0i32.to_ne_bytes(), 0), Ok(()));
    }
}
