//! The handshake's primitives (docs/wireguard.md §2): BLAKE2s as HASH, keyed
//! BLAKE2s-128 as MAC, HMAC-BLAKE2s and the HKDF-style KDF built on it,
//! ChaCha20-Poly1305 with a counter nonce, XChaCha20-Poly1305 for cookies,
//! and X25519.

use blake2::{
    Blake2s256, Blake2sMac,
    digest::{Digest, KeyInit, Mac, consts::U16},
};
use chacha20poly1305::{
    AeadInPlace, ChaCha20Poly1305, XChaCha20Poly1305, aead::generic_array::GenericArray,
};
use hmac::SimpleHmac;

pub const KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 16;

pub type Key = [u8; KEY_LEN];

/// HASH(a ‖ b ‖ …), BLAKE2s-256.
pub fn hash(parts: &[&[u8]]) -> Key {
    let mut h = Blake2s256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// MAC(key, a ‖ b ‖ …), keyed BLAKE2s with a 16-byte output.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // Keys here are hash outputs or cookies: 16 or 32 bytes, within
    // BLAKE2s's 32-byte limit.
    let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("MAC keys are ≤ 32 bytes");
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// Whether `tag` is MAC(key, data), compared in constant time.
pub fn mac_matches(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("MAC keys are ≤ 32 bytes");
    m.update(data);
    m.verify_slice(tag).is_ok()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    let mut m = <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// KDF_n(key, input): τ0 = HMAC(key, input), τi = HMAC(τ0, τ(i-1) ‖ i).
pub fn kdf<const N: usize>(key: &Key, input: &[u8]) -> [Key; N] {
    let t0 = hmac(key, &[input]);
    let mut out = [[0u8; KEY_LEN]; N];
    let mut previous: Option<Key> = None;
    for (i, slot) in out.iter_mut().enumerate() {
        let counter = [(i + 1) as u8];
        *slot = match &previous {
            None => hmac(&t0, &[&counter]),
            Some(p) => hmac(&t0, &[p, &counter]),
        };
        previous = Some(*slot);
    }
    out
}

/// The 96-bit nonce: 32 zero bits, then the counter little-endian.
pub fn counter_nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// Encrypts `in_out` in place; returns the tag.
pub fn seal(key: &Key, counter: u64, ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
    let cipher = ChaCha20Poly1305::new(GenericArray::from_slice(key));
    let nonce = counter_nonce(counter);
    cipher
        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), ad, in_out)
        .expect("messages are far below ChaCha20's length limit")
        .into()
}

/// Decrypts `in_out` in place if `tag` authenticates it.
pub fn open(
    key: &Key,
    counter: u64,
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8],
) -> Result<(), Unauthentic> {
    if tag.len() != TAG_LEN {
        return Err(Unauthentic);
    }
    let cipher = ChaCha20Poly1305::new(GenericArray::from_slice(key));
    let nonce = counter_nonce(counter);
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(&nonce),
            ad,
            in_out,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Unauthentic)
}

/// XChaCha20-Poly1305 encryption (cookie replies).
pub fn xseal(key: &Key, nonce: &[u8; 24], ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
    let cipher = XChaCha20Poly1305::new(GenericArray::from_slice(key));
    cipher
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, in_out)
        .expect("a cookie is 16 bytes")
        .into()
}

/// XChaCha20-Poly1305 decryption (cookie replies).
pub fn xopen(
    key: &Key,
    nonce: &[u8; 24],
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8],
) -> Result<(), Unauthentic> {
    if tag.len() != TAG_LEN {
        return Err(Unauthentic);
    }
    let cipher = XChaCha20Poly1305::new(GenericArray::from_slice(key));
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            ad,
            in_out,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Unauthentic)
}

/// An AEAD tag did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthentic;

/// X25519; `None` when the result is all zeros (a low-order public key),
/// which the handshake must refuse.
pub fn dh(secret: &x25519_dalek::StaticSecret, public: &x25519_dalek::PublicKey) -> Option<Key> {
    let shared = secret.diffie_hellman(public);
    shared.was_contributory().then(|| shared.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BLAKE2s-256 of the empty string (RFC 7693's reference value).
    #[test]
    fn hash_is_blake2s256() {
        let h = hash(&[]);
        assert_eq!(
            h[..8],
            [0x69, 0x21, 0x7a, 0x30, 0x79, 0x90, 0x80, 0x94],
            "BLAKE2s-256(\"\") starts 69217a3079908094"
        );
        assert_eq!(hash(&[b"ab", b"c"]), hash(&[b"abc"]));
    }

    #[test]
    fn kdf_outputs_chain() {
        let key = [7u8; 32];
        let [a] = kdf::<1>(&key, b"in");
        let [b, c] = kdf::<2>(&key, b"in");
        let [d, e, f] = kdf::<3>(&key, b"in");
        assert_eq!(a, b);
        assert_eq!((b, c), (d, e));
        assert_ne!(e, f);
    }

    #[test]
    fn aead_round_trips_and_rejects_tampering() {
        let key = [1u8; 32];
        let mut data = *b"sixteen bytes!!!";
        let tag = seal(&key, 5, b"ad", &mut data);
        let mut copy = data;
        open(&key, 5, b"ad", &mut copy, &tag).expect("authentic");
        assert_eq!(&copy, b"sixteen bytes!!!");
        let mut copy = data;
        assert_eq!(open(&key, 6, b"ad", &mut copy, &tag), Err(Unauthentic));
        let mut copy = data;
        assert_eq!(open(&key, 5, b"AD", &mut copy, &tag), Err(Unauthentic));
    }
}
