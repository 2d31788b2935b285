//! Incremental Internet checksum updates (RFC 1624), for rewriting an
//! address or port without re-summing the packet.
//!
//! Values are the 16-bit words as numbers (big-endian on the wire read with
//! `from_be_bytes`), the checksum field likewise. Eqn. 3 of RFC 1624,
//! `HC' = ~(~HC + ~m + m')`, is used because it is exact where the older
//! RFC 1141 form gets -0 wrong.

#[inline(always)]
const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum after one 16-bit word changed from `old` to `new`.
#[inline(always)]
pub const fn replace2(check: u16, old: u16, new: u16) -> u16 {
    !fold((!check) as u32 + (!old) as u32 + new as u32)
}

/// The checksum after one aligned 32-bit field (an IPv4 address) changed.
#[inline(always)]
pub const fn replace4(check: u16, old: u32, new: u32) -> u16 {
    let sum = (!check) as u32
        + (!(old >> 16) as u16) as u32
        + (!(old as u16)) as u32
        + (new >> 16)
        + (new & 0xffff);
    !fold(sum)
}

/// UDP over IPv4: a zero checksum means "none" (RFC 768) and stays zero; a
/// computed zero is sent as all ones.
#[inline(always)]
pub const fn udp_nonzero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when `words` (checksum field included) verify.
    fn verifies(words: &[u16]) -> bool {
        fold(words.iter().map(|&w| u32::from(w)).sum::<u32>()) == 0xffff
    }

    fn with_check(mut words: [u16; 10]) -> [u16; 10] {
        words[5] = 0;
        let s: u32 = words.iter().map(|&w| u32::from(w)).sum();
        words[5] = !fold(s);
        words
    }

    #[test]
    fn incremental_updates_verify() {
        let header = with_check([
            0x4500, 0x0073, 0, 0x4000, 0x4011, 0, 0xc0a8, 1, 0xc0a8, 0xc7,
        ]);
        assert!(verifies(&header));
        for new in [0xcb00_7101u32, 0xffff_ffff, 0, 0x0a00_011a] {
            let mut changed = header;
            changed[6] = (new >> 16) as u16;
            changed[7] = new as u16;
            changed[5] = replace4(header[5], 0xc0a8_0001, new);
            assert!(verifies(&changed), "address {new:#x}");
        }
        let mut ttl = header;
        ttl[4] = 0x3f11;
        ttl[5] = replace2(header[5], 0x4011, 0x3f11);
        assert!(verifies(&ttl));
    }

    #[test]
    fn udp_zero_means_none() {
        assert_eq!(udp_nonzero(0), 0xffff);
        assert_eq!(udp_nonzero(0x1234), 0x1234);
    }
}
