//! Lowering the MSS a TCP SYN announces, so the segments of a connection
//! fit a tunnel whose own headers would otherwise push them past the path
//! MTU (SoftEther does this for sessions on UDP acceleration, whose
//! datagrams the IP layer would fragment).

use super::headers::{TCP_SYN, parse_tcp};

/// TCP option kinds.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// If `frame` is a TCP SYN (or SYN-ACK) whose MSS option exceeds `max`,
/// rewrites the option to `max` and patches the TCP checksum (RFC 1624);
/// true when it did. Anything else is left untouched.
pub fn clamp_mss(frame: &mut [u8], max: u16) -> bool {
    let Some(tcp) = parse_tcp(frame) else {
        return false;
    };
    if tcp.flags & TCP_SYN == 0 {
        return false;
    }
    let options = tcp.tcp_at + 20..tcp.tcp_at + tcp.tcp_header_len;
    let mut at = options.start;
    while at < options.end {
        match frame[at] {
            OPT_END => return false,
            OPT_NOP => at += 1,
            kind => {
                let Some(&len) = frame.get(at + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || at + len > options.end {
                    return false;
                }
                if kind == OPT_MSS && len == 4 {
                    let old = u16::from_be_bytes([frame[at + 2], frame[at + 3]]);
                    if old <= max {
                        return false;
                    }
                    frame[at + 2..at + 4].copy_from_slice(&max.to_be_bytes());
                    let sum_at = tcp.tcp_at + 16;
                    let sum = u16::from_be_bytes([frame[sum_at], frame[sum_at + 1]]);
                    let patched = patch_checksum(sum, old, max);
                    frame[sum_at..sum_at + 2].copy_from_slice(&patched.to_be_bytes());
                    return true;
                }
                at += len;
            }
        }
    }
    false
}

/// The checksum after one 16-bit word changed from `old` to `new`:
/// HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3).
fn patch_checksum(sum: u16, old: u16, new: u16) -> u16 {
    let mut acc = u32::from(!sum) + u32::from(!old) + u32::from(new);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}
