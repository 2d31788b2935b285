//! The handshake's primitives (docs/wireguard.md §2): BLAKE2s as HASH, keyed
//! BLAKE2s-128 as MAC, HMAC-BLAKE2s and the HKDF-style KDF built on it,
//! ChaCha20-Poly1305 with a counter nonce, XChaCha20-Poly1305 for cookies,
//! and X25519 ([`Secret`]).

use blake2::{
    Blake2s256, Blake2sMac,
    digest::{Digest, KeyInit, Mac, consts::U16},
};
use hmac::SimpleHmac;

mod aead;
#[cfg(feature = "transport")]
pub(crate) use aead::chacha20_poly1305_key;
pub use aead::{open, seal, xopen, xseal};

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

/// An AEAD tag did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthentic;

/// An X25519 private key ready for Diffie-Hellman, with its public key.
///
/// With the `transport` feature (every server build) this is aws-lc's
/// X25519, twice as fast as x25519-dalek here (31 µs against 64 µs per DH,
/// `cargo bench --bench wireguard`; decision 0010), and a handshake is
/// four of them. Without it (the config crate, fuzz builds, which need no
/// C toolchain under the sanitizer) it is x25519-dalek. Both clamp the
/// scalar and refuse an all-zero result.
pub struct Secret {
    #[cfg(feature = "transport")]
    key: aws_lc_rs::agreement::PrivateKey,
    #[cfg(not(feature = "transport"))]
    key: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl Secret {
    #[cfg(feature = "transport")]
    pub fn new(bytes: &[u8; 32]) -> Self {
        use aws_lc_rs::agreement::{PrivateKey, X25519};
        let key = PrivateKey::from_private_key(&X25519, bytes)
            .expect("any 32 bytes are an X25519 private key");
        let mut public = [0u8; 32];
        if let Ok(p) = key.compute_public_key() {
            public.copy_from_slice(p.as_ref());
        }
        Self { key, public }
    }

    #[cfg(not(feature = "transport"))]
    pub fn new(bytes: &[u8; 32]) -> Self {
        let key = x25519_dalek::StaticSecret::from(*bytes);
        let public = x25519_dalek::PublicKey::from(&key).to_bytes();
        Self { key, public }
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// X25519 with `peer`; `None` when the result is all zeros (a
    /// low-order public key), which the handshake must refuse.
    #[cfg(feature = "transport")]
    pub fn dh(&self, peer: &[u8; 32]) -> Option<Key> {
        use aws_lc_rs::agreement::{UnparsedPublicKey, X25519, agree};
        let shared: Key = agree(&self.key, UnparsedPublicKey::new(&X25519, peer), (), |k| {
            k.try_into().map_err(|_| ())
        })
        .ok()?;
        (shared != [0; 32]).then_some(shared)
    }

    #[cfg(not(feature = "transport"))]
    pub fn dh(&self, peer: &[u8; 32]) -> Option<Key> {
        let shared = self
            .key
            .diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        shared.was_contributory().then(|| shared.to_bytes())
    }
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

    /// RFC 7748 §6.1: both sides reach the same shared secret, and a
    /// low-order point (all zeros) is refused.
    #[test]
    fn x25519_follows_rfc7748() {
        let hex = crate::hex32;
        let alice = Secret::new(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let bob = Secret::new(&hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(alice.dh(&bob.public()), Some(shared));
        assert_eq!(bob.dh(&alice.public()), Some(shared));
        assert_eq!(alice.dh(&[0; 32]), None);
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
