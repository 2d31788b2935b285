//! The one way ethergate derives a MAC address from a name.

/// A stable, locally administered unicast MAC derived from `seed` (a hub's
/// name, say): the hub's tap and its DHCP server use the same address,
/// and it survives restarts so VPN clients' ARP caches stay valid. FNV-1a,
/// spelled out rather than taken from `std::hash` (whose output may change
/// between Rust releases); stability is what matters, not secrecy.
pub const fn local_mac_from_seed(seed: &[u8]) -> [u8; 6] {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < seed.len() {
        hash = (hash ^ seed[i] as u64).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    let b = hash.to_be_bytes();
    // IEEE 802 first octet: bit 0 clear = unicast, bit 1 set = locally
    // administered, so it can never collide with a vendor's address.
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_unicast_stable_and_distinct() {
        let a = local_mac_from_seed(b"mikalab");
        assert_eq!(a, local_mac_from_seed(b"mikalab"));
        assert_ne!(a, local_mac_from_seed(b"other"));
        assert_eq!(a[0] & 0x03, 0x02);
    }
}
