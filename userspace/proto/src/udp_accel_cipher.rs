//! UDP acceleration's version-2 datagram (docs/udp-acceleration.md §3):
//! a 12-byte nonce, the record sealed with ChaCha20-Poly1305 under the
//! sender's key, the 16-byte tag. Both directions are alike, so the
//! server's session paths and `ethergate client` seal and open with these.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::udp_accel::{KEY_LEN, RECORD_HEADER, Record};

/// The ChaCha20-Poly1305 tag after the ciphertext.
const TAG_LEN: usize = 16;
/// Nonce, record header and tag around each frame.
pub const OVERHEAD: usize = NONCE_LEN + RECORD_HEADER + TAG_LEN;

fn key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    // A 32-byte key always fits ChaCha20-Poly1305.
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes 32-byte keys")),
    )
}

/// Seals what one side sends under its own key.
pub struct Sealer {
    key: LessSafeKey,
    /// Random per session; with the counter, no nonce repeats under the key.
    nonce_prefix: [u8; 4],
    next_nonce: AtomicU64,
}

impl Sealer {
    /// `nonce_prefix` must be random (a new one for every key).
    pub fn new(key_bytes: &[u8; KEY_LEN], nonce_prefix: [u8; 4]) -> Self {
        Self {
            key: key(key_bytes),
            nonce_prefix,
            next_nonce: AtomicU64::new(0),
        }
    }

    /// Seals one record into `out` (appended): nonce, ciphertext, tag.
    pub fn seal(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        let counter = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.nonce_prefix);
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&nonce);
        record.encode(out);
        let body = start + NONCE_LEN;
        match self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut out[body..],
        ) {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            // Cannot fail for ChaCha20-Poly1305 below 256 GiB; never send
            // plaintext if it somehow did.
            Err(_) => out.truncate(start),
        }
    }
}

/// Opens what the other side sealed under its key.
pub struct Opener {
    key: LessSafeKey,
}

impl Opener {
    pub fn new(key_bytes: &[u8; KEY_LEN]) -> Self {
        Self {
            key: key(key_bytes),
        }
    }

    /// Opens a datagram in place; the record's bytes on success.
    pub fn open<'d>(&self, datagram: &'d mut [u8]) -> Option<&'d mut [u8]> {
        if datagram.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = datagram.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        self.key
            .open_in_place(nonce, Aad::empty(), sealed)
            .ok()
            .map(|plain| &mut plain[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_side_seals_the_other_opens_and_nothing_else() {
        let sealer = Sealer::new(&[3; KEY_LEN], [1, 2, 3, 4]);
        let record = Record {
            cookie: 77,
            sender_tick: 5,
            echoed_tick: 4,
            compressed: false,
            frame: b"an ethernet frame",
        };
        let mut out = Vec::new();
        sealer.seal(&record, &mut out);
        sealer.seal(&record, &mut out);
        let one = out.len() / 2;
        assert_eq!(one, OVERHEAD + record.frame.len());
        assert_ne!(out[..NONCE_LEN], out[one..one + NONCE_LEN], "nonces differ");
        let (first, second) = out.split_at_mut(one);
        let opened = Opener::new(&[3; KEY_LEN]).open(first).expect("opens");
        assert_eq!(Record::decode(opened), Ok(record));
        assert!(
            Opener::new(&[4; KEY_LEN]).open(second).is_none(),
            "another key"
        );
        second[NONCE_LEN] ^= 1;
        assert!(Opener::new(&[3; KEY_LEN]).open(second).is_none(), "altered");
        assert!(
            Opener::new(&[3; KEY_LEN]).open(&mut [0; 20]).is_none(),
            "short"
        );
    }
}
