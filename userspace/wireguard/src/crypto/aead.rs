//! The handshake's AEADs: ChaCha20-Poly1305 with a counter nonce (the
//! static key, the timestamp, the empty payload of a response) and
//! XChaCha20-Poly1305 (cookie replies).
//!
//! Server builds (`transport`) seal and open with aws-lc's ChaCha20-Poly1305,
//! the assembly the transport data already uses: on messages this short it
//! is about seven times faster than RustCrypto's, whose AVX2 Poly1305 spends
//! most of a 32-byte message preparing its key powers (196 ns against
//! 1,410 ns, key setup included, on the bench machine). XChaCha20 is
//! HChaCha20 over the key and the nonce's first 16 bytes (RustCrypto's
//! `chacha20`, 87 ns), then ChaCha20-Poly1305 under that subkey with the
//! nonce's last 8 bytes behind four zero bytes — the construction of the
//! XChaCha20 draft. A cookie reply, what a forged initiation costs under
//! load, fell from 2.5 µs to about 1.5 µs with it (decision 0010).
//!
//! Builds without `transport` (fuzzing, the config crate) use RustCrypto's
//! AEADs; the tests check both give the same bytes.

use super::{Key, TAG_LEN, Unauthentic, counter_nonce};

/// Encrypts `in_out` in place; returns the tag.
pub fn seal(key: &Key, counter: u64, ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
    backend::seal(key, &counter_nonce(counter), ad, in_out)
}

/// Decrypts `in_out` in place if `tag` authenticates it.
pub fn open(
    key: &Key,
    counter: u64,
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8],
) -> Result<(), Unauthentic> {
    backend::open(key, &counter_nonce(counter), ad, in_out, tag)
}

/// XChaCha20-Poly1305 encryption (cookie replies).
pub fn xseal(key: &Key, nonce: &[u8; 24], ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
    let (subkey, nonce) = extended(key, nonce);
    backend::seal(&subkey, &nonce, ad, in_out)
}

/// XChaCha20-Poly1305 decryption (cookie replies).
pub fn xopen(
    key: &Key,
    nonce: &[u8; 24],
    ad: &[u8],
    in_out: &mut [u8],
    tag: &[u8],
) -> Result<(), Unauthentic> {
    let (subkey, nonce) = extended(key, nonce);
    backend::open(&subkey, &nonce, ad, in_out, tag)
}

/// XChaCha20's subkey and ChaCha20 nonce for `key` and a 24-byte `nonce`.
fn extended(key: &Key, nonce: &[u8; 24]) -> (Key, [u8; 12]) {
    use chacha20::cipher::{consts::U10, generic_array::GenericArray};
    let subkey = chacha20::hchacha::<U10>(
        GenericArray::from_slice(key),
        GenericArray::from_slice(&nonce[..16]),
    );
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[16..]);
    (subkey.into(), short)
}

#[cfg(feature = "transport")]
use aws_lc as backend;
#[cfg(feature = "transport")]
pub(crate) use aws_lc::chacha20_poly1305_key;
#[cfg(not(feature = "transport"))]
use rust_crypto as backend;

#[cfg(feature = "transport")]
mod aws_lc {
    use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    use super::super::{Key, TAG_LEN, Unauthentic};

    /// aws-lc's ChaCha20-Poly1305 under `key` (also the transport
    /// sessions' keys).
    pub(crate) fn chacha20_poly1305_key(key: &Key) -> LessSafeKey {
        // A 32-byte key always fits ChaCha20-Poly1305.
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, key)
                .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes 32-byte keys")),
        )
    }

    pub fn seal(key: &Key, nonce: &[u8; 12], ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = chacha20_poly1305_key(key)
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), in_out)
            .unwrap_or_else(|_| unreachable!("handshake messages are far below the length limit"));
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub fn open(
        key: &Key,
        nonce: &[u8; 12],
        ad: &[u8],
        in_out: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        if tag.len() != TAG_LEN {
            return Err(Unauthentic);
        }
        chacha20_poly1305_key(key)
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(ad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| Unauthentic)
    }
}

#[cfg_attr(feature = "transport", allow(dead_code))]
mod rust_crypto {
    use chacha20poly1305::{
        AeadInPlace, ChaCha20Poly1305, KeyInit, aead::generic_array::GenericArray,
    };

    use super::super::{Key, TAG_LEN, Unauthentic};

    pub fn seal(key: &Key, nonce: &[u8; 12], ad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        ChaCha20Poly1305::new(GenericArray::from_slice(key))
            .encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, in_out)
            .unwrap_or_else(|_| unreachable!("handshake messages are far below the length limit"))
            .into()
    }

    pub fn open(
        key: &Key,
        nonce: &[u8; 12],
        ad: &[u8],
        in_out: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        if tag.len() != TAG_LEN {
            return Err(Unauthentic);
        }
        ChaCha20Poly1305::new(GenericArray::from_slice(key))
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                ad,
                in_out,
                GenericArray::from_slice(tag),
            )
            .map_err(|_| Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::{
        AeadInPlace, KeyInit, XChaCha20Poly1305, aead::generic_array::GenericArray,
    };
    use proptest::prelude::*;

    use super::*;

    type Sealer<'a> = Box<dyn Fn(&mut [u8]) -> [u8; TAG_LEN] + 'a>;

    /// Seals `plain` both ways; they must give the same bytes and tag,
    /// which are returned.
    fn sealed_alike(
        plain: &[u8],
        ours: Sealer<'_>,
        reference: Sealer<'_>,
    ) -> Result<(Vec<u8>, [u8; TAG_LEN]), TestCaseError> {
        let mut a = plain.to_vec();
        let tag = ours(&mut a);
        let mut b = plain.to_vec();
        prop_assert_eq!(tag, reference(&mut b));
        prop_assert_eq!(&a, &b);
        Ok((a, tag))
    }

    proptest! {
        /// Whichever backend this build uses, its bytes are RustCrypto's
        /// ChaCha20-Poly1305, and they open again.
        #[test]
        fn sealing_matches_rust_crypto(
            key in any::<[u8; 32]>(),
            counter in any::<u64>(),
            ad in proptest::collection::vec(any::<u8>(), 0..64),
            plain in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let (mut sealed, tag) = sealed_alike(
                &plain,
                Box::new(|b| seal(&key, counter, &ad, b)),
                Box::new(|b| rust_crypto::seal(&key, &counter_nonce(counter), &ad, b)),
            )?;
            open(&key, counter, &ad, &mut sealed, &tag).expect("authentic");
            prop_assert_eq!(sealed, plain);
        }

        /// XChaCha20-Poly1305 as HChaCha20 + ChaCha20-Poly1305 gives the
        /// bytes of RustCrypto's own XChaCha20Poly1305, and opens them.
        #[test]
        fn extended_nonces_match_xchacha20poly1305(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 24]>(),
            ad in proptest::collection::vec(any::<u8>(), 0..32),
            plain in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let reference = XChaCha20Poly1305::new(GenericArray::from_slice(&key));
            let (mut sealed, tag) = sealed_alike(
                &plain,
                Box::new(|b| xseal(&key, &nonce, &ad, b)),
                Box::new(|b| {
                    reference
                        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &ad, b)
                        .expect("seals")
                        .into()
                }),
            )?;
            xopen(&key, &nonce, &ad, &mut sealed, &tag).expect("authentic");
            prop_assert_eq!(sealed, plain);
        }

        /// A flipped bit anywhere (ciphertext, tag, additional data) is
        /// refused.
        #[test]
        fn tampering_is_refused(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 24]>(),
            plain in proptest::collection::vec(any::<u8>(), 1..32),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let ad = [7u8; 16];
            let mut sealed = plain.clone();
            let tag = xseal(&key, &nonce, &ad, &mut sealed);
            let mut all: Vec<u8> = sealed.iter().chain(&tag).chain(&ad).copied().collect();
            let at = flip.index(all.len());
            all[at] ^= 1 << bit;
            let (body, rest) = all.split_at_mut(sealed.len());
            let (tag, ad) = rest.split_at(TAG_LEN);
            prop_assert_eq!(xopen(&key, &nonce, ad, body, tag), Err(Unauthentic));
        }
    }

    /// A tag of the wrong length is refused, not a panic.
    #[test]
    fn short_tags_are_refused() {
        let mut data = [1u8; 8];
        assert_eq!(
            open(&[0; 32], 0, b"", &mut data, &[0; 15]),
            Err(Unauthentic)
        );
    }
}
