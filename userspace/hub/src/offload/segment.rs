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

/// Emits the frames `frame` stands for, given the header it was read with:
/// itself (its partial checksum completed in place, if it has one) or, for
/// a TSO super-frame, one frame per `gso_size` bytes of payload. `scratch`
/// is reused for building segments. Returns how many frames were emitted.
pub fn segment(
    hdr: VnetHdr,
    frame: &mut [u8],
    scratch: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize, SegmentError> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                complete_partial_checksum(frame, hdr.csum_start, hdr.csum_offset)?;
            }
            emit(frame);
            Ok(1)
        }
        kind @ (GSO_TCPV4 | GSO_TCPV6) => {
            let tcp = parse_tcp(frame).ok_or(SegmentError::Malformed)?;
            if tcp.is_v4() != (kind == GSO_TCPV4) || hdr.gso_size == 0 {
                return Err(SegmentError::Malformed);
            }
            Ok(split_tcp(
                frame,
                &tcp,
                usize::from(hdr.gso_size),
                scratch,
                emit,
            ))
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
fn split_tcp(
    frame: &[u8],
    tcp: &TcpFrame,
    mss: usize,
    scratch: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]),
) -> usize {
    let headers = &frame[..tcp.payload_at()];
    let payload = &frame[tcp.payload_at()..tcp.end];
    let first_id = tcp.ip_id(frame);
    let count = payload.len().div_ceil(mss).max(1);
    for index in 0..count {
        let start = index * mss;
        let chunk = &payload[start..(start + mss).min(payload.len())];
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(chunk);
        let tcp_len = tcp.tcp_header_len + chunk.len();
        if tcp.is_v4() {
            let total = (tcp.tcp_at - tcp.ip_at + tcp_len) as u16;
            scratch[tcp.ip_at + 2..tcp.ip_at + 4].copy_from_slice(&total.to_be_bytes());
            let id = first_id.wrapping_add(index as u16);
            scratch[tcp.ip_at + 4..tcp.ip_at + 6].copy_from_slice(&id.to_be_bytes());
            let ip_check = checksum::ipv4_header(&scratch[tcp.ip_at..tcp.tcp_at]);
            scratch[tcp.ip_at + 10..tcp.ip_at + 12].copy_from_slice(&ip_check.to_be_bytes());
        } else {
            scratch[tcp.ip_at + 4..tcp.ip_at + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        let at = tcp.tcp_at;
        let seq = tcp.seq.wrapping_add(start as u32);
        scratch[at + 4..at + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = tcp.flags;
        if index + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if index > 0 {
            flags &= !TCP_CWR;
        }
        scratch[at + 13] = flags;
        scratch[at + 16..at + 18].copy_from_slice(&[0, 0]);
        let check = checksum::finish(checksum::sum(&scratch[at..], tcp.ip.pseudo_sum(tcp_len)));
        scratch[at + 16..at + 18].copy_from_slice(&check.to_be_bytes());
        emit(scratch);
    }
    count
}
