//! The Internet checksum (RFC 1071) and the TCP pseudo-header.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `bytes` (big-endian 16-bit words, an odd last
/// byte padded with zero), added to `initial`, not yet folded.
///
/// Four bytes at a time into a 64-bit accumulator: native-endian 32-bit
/// words, whose carries pile up in the upper half instead of being added
/// back word by word (2^32 words would be needed to overflow it, far
/// beyond any frame), so the loop has no carry chain and the compiler
/// vectorizes it. Folded to 16 bits and byte-swapped once at the end: the
/// one's-complement sum does not depend on byte order except for that
/// final swap (RFC 1071 §2(B)), so this equals the sum of big-endian
/// 16-bit words.
pub fn sum(bytes: &[u8], initial: u64) -> u64 {
    let mut words = bytes.chunks_exact(4);
    let mut acc: u64 = (&mut words)
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    let native = fold(acc);
    initial + u64::from(u16::from_be(native))
}

/// The plain definition (big-endian 16-bit words), for the property test.
#[cfg(test)]
pub(crate) fn sum_reference(bytes: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum for a TCP (or UDP) segment of `len` bytes.
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u64 {
    sum(&src.octets(), 0) + sum(&dst.octets(), 0) + u64::from(protocol) + len as u64
}

pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: u8, len: usize) -> u64 {
    sum(&src.octets(), 0) + sum(&dst.octets(), 0) + u64::from(protocol) + len as u64
}

/// The checksum field value for data whose sum (with the field zeroed) is
/// `acc`.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// An IPv4 header's checksum, computed with its checksum field as zero.
pub fn ipv4_header(header: &[u8]) -> u16 {
    let acc = sum(header, 0);
    let field = header
        .get(10..12)
        .map_or(0, |f| u64::from(u16::from_be_bytes([f[0], f[1]])));
    // Subtracting the field in one's-complement arithmetic is adding its
    // complement.
    finish(acc + u64::from(!(field as u16)))
}
