//! Tap → hub: turns what the kernel hands a `IFF_VNET_HDR` tap into
//! ordinary Ethernet frames with complete checksums.

use super::{
    F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, VnetHdr, checksum,
    headers::{TCP_CWR, TCP_FIN, TCP_PSH, TcpFrame, parse_tcp},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("the checksum position ({start}+{offset}) lies outside the {len}-byte frame")]
    ChecksumOutside { start: u16, offset: u16, len: usize },
    #[error("GSO type {0:#x} was not negotiated")]
    Unsupported(u8),
    #[error("a TCP GSO frame whose headers do not parse, or whose gso_size is 0")]
    Malformed,
}

/// Where [`segment`] puts the frames it makes: each is built in place, in
/// the buffer it will be read from next, so a segment's payload is copied
/// once.
pub trait SegmentOut {
    /// Appends a frame made of `head` followed by `body`, and returns it
    /// for its headers to be finished in place.
    fn push_joined(&mut self, head: &[u8], body: &[u8]) -> &mut [u8];
}

/// One `Vec` per frame (tests, fuzzing).
impl SegmentOut for Vec<Vec<u8>> {
    fn push_joined(&mut self, head: &[u8], body: &[u8]) -> &mut [u8] {
        let mut frame = Vec::with_capacity(head.len() + body.len());
        frame.extend_from_slice(head);
        frame.extend_from_slice(body);
        self.push(frame);
        self.last_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

/// Appends to `out` the frames `frame` stands for, given the header it was
/// read with: itself (its partial checksum completed in place, if it has
/// one) or, for a TSO super-frame, one frame per `gso_size` bytes of
/// payload. Returns how many frames were appended.
pub fn segment(
    hdr: VnetHdr,
    frame: &mut [u8],
    out: &mut dyn SegmentOut,
) -> Result<usize, SegmentError> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                complete_partial_checksum(frame, hdr.csum_start, hdr.csum_offset)?;
            }
            out.push_joined(frame, &[]);
            Ok(1)
        }
        kind @ (GSO_TCPV4 | GSO_TCPV6) => {
            let tcp = parse_tcp(frame).ok_or(SegmentError::Malformed)?;
            if tcp.is_v4() != (kind == GSO_TCPV4) || hdr.gso_size == 0 {
                return Err(SegmentError::Malformed);
            }
            Ok(split_tcp(frame, &tcp, usize::from(hdr.gso_size), out))
        }
        other => Err(SegmentError::Unsupported(other)),
    }
}

/// The field holds the pseudo-header sum; the sum runs from `start` to the
/// end of the frame. A result of 0 is sent as 0xffff, which means the same
/// to TCP and is required by UDP (0 there means "no checksum").
fn complete_partial_checksum(
    frame: &mut [u8],
    start: u16,
    offset: u16,
) -> Result<(), SegmentError> {
    let (start_at, field_at) = (usize::from(start), usize::from(start) + usize::from(offset));
    if field_at + 2 > frame.len() {
        return Err(SegmentError::ChecksumOutside {
            start,
            offset,
            len: frame.len(),
        });
    }
    let value = match checksum::finish(checksum::sum(&frame[start_at..], 0)) {
        0 => 0xffff,
        v => v,
    };
    frame[field_at..field_at + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// Cuts the payload into `mss`-byte segments, each with the headers of the
/// super-frame adjusted as the kernel's own `tcp_gso_segment` would: IPv4
/// length, ID (+1 per segment) and header checksum, IPv6 payload length,
/// sequence number, FIN/PSH only on the last segment, CWR only on the
/// first, and a complete TCP checksum.
fn split_tcp(frame: &[u8], tcp: &TcpFrame, mss: usize, out: &mut dyn SegmentOut) -> usize {
    let headers = &frame[..tcp.payload_at()];
    let payload = &frame[tcp.payload_at()..tcp.end];
    let first_id = tcp.ip_id(frame);
    let count = payload.len().div_ceil(mss).max(1);
    for index in 0..count {
        let start = index * mss;
        let chunk = &payload[start..(start + mss).min(payload.len())];
        let seg = out.push_joined(headers, chunk);
        let tcp_len = tcp.tcp_header_len + chunk.len();
        if tcp.is_v4() {
            let total = (tcp.tcp_at - tcp.ip_at + tcp_len) as u16;
            seg[tcp.ip_at + 2..tcp.ip_at + 4].copy_from_slice(&total.to_be_bytes());
            let id = first_id.wrapping_add(index as u16);
            seg[tcp.ip_at + 4..tcp.ip_at + 6].copy_from_slice(&id.to_be_bytes());
            let ip_check = checksum::ipv4_header(&seg[tcp.ip_at..tcp.tcp_at]);
            seg[tcp.ip_at + 10..tcp.ip_at + 12].copy_from_slice(&ip_check.to_be_bytes());
        } else {
            seg[tcp.ip_at + 4..tcp.ip_at + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        let at = tcp.tcp_at;
        let seq = tcp.seq.wrapping_add(start as u32);
        seg[at + 4..at + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = tcp.flags;
        if index + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if index > 0 {
            flags &= !TCP_CWR;
        }
        seg[at + 13] = flags;
        seg[at + 16..at + 18].copy_from_slice(&[0, 0]);
        let check = checksum::finish(checksum::sum(&seg[at..], tcp.ip.pseudo_sum(tcp_len)));
        seg[at + 16..at + 18].copy_from_slice(&check.to_be_bytes());
    }
    count
}
