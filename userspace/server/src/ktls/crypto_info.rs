//! One direction's `struct tls12_crypto_info_*` (linux/tls.h), built from
//! the secrets rustls hands over after the handshake.
//!
//! The structs are libc's transcriptions of linux/tls.h and nix wraps the
//! `setsockopt(SOL_TLS, TLS_TX | TLS_RX)` that takes them, so this module
//! holds no unsafe code. What it owns is the mapping, which is where kTLS
//! bugs live:
//! - AES-GCM: rustls's 12-byte IV is the kernel's 4-byte `salt` followed by
//!   its 8-byte `iv`. ChaCha20-Poly1305: all 12 bytes are `iv`, no salt.
//! - `rec_seq` is the sequence number of the next record, big-endian.
//! - TLS 1.3 (any cipher) and ChaCha20 (both versions): the kernel's nonce is
//!   `(salt ‖ iv) XOR seq`, exactly rustls's, so continuing at `rec_seq`
//!   continues rustls's nonce sequence.
//! - TLS 1.2 AES-GCM, transmit: the kernel sends `iv` as the explicit nonce
//!   of its first record and adds one per record (`tls_advance_record_sn`),
//!   while rustls made its explicit nonces as `iv XOR seq`. Handing the
//!   kernel rustls's `iv` unchanged would make the kernel's first record
//!   reuse the nonce rustls used for sequence 0 (the server's Finished)
//!   under the same key, which breaks GCM. We hand it `iv` with the top bit
//!   flipped: rustls's nonces `iv XOR s` (s < 2^32) keep `iv`'s top 32 bits,
//!   and the kernel's counter would need about 2^63 records to get back
//!   there. On receive the kernel reads each record's explicit nonce from
//!   the wire, so the `iv` passed for RX is unused and left as rustls's.

use nix::{libc, sys::socket::sockopt::TlsCryptoInfo};
use rustls::ConnectionTrafficSecrets;

/// The protocol version the secrets belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// `TLS_1_2_VERSION` / `TLS_1_3_VERSION` from linux/tls.h.
    pub fn kernel_id(self) -> u16 {
        match self {
            TlsVersion::Tls12 => libc::TLS_1_2_VERSION,
            TlsVersion::Tls13 => libc::TLS_1_3_VERSION,
        }
    }

    pub fn from_rustls(version: rustls::ProtocolVersion) -> Option<Self> {
        match version {
            rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// Which socket option the info is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `TLS_TX`: the kernel encrypts what we write.
    Tx,
    /// `TLS_RX`: the kernel decrypts what we read.
    Rx,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoInfoError {
    #[error("the negotiated cipher has no kernel TLS mapping here")]
    UnsupportedCipher,
    #[error("{what} is {got} bytes; the kernel's struct wants {want}")]
    Length {
        what: &'static str,
        got: usize,
        want: usize,
    },
}

/// The AEADs the kernel and rustls share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

/// Builds the kernel's crypto info for one direction from rustls's
/// secrets. `seq` is the sequence number of the next record in that
/// direction (what `ExtractedSecrets` pairs with the secrets).
pub fn crypto_info(
    version: TlsVersion,
    direction: Direction,
    seq: u64,
    secrets: &ConnectionTrafficSecrets,
) -> Result<TlsCryptoInfo, CryptoInfoError> {
    let (cipher, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::Aes128Gcm, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::Aes256Gcm, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (Cipher::Chacha20Poly1305, key, iv)
        }
        _ => return Err(CryptoInfoError::UnsupportedCipher),
    };
    build(version, direction, seq, cipher, key.as_ref(), iv.as_ref())
}

/// [`crypto_info`] from raw key and 12-byte IV.
pub fn build(
    version: TlsVersion,
    direction: Direction,
    seq: u64,
    cipher: Cipher,
    key: &[u8],
    iv: &[u8],
) -> Result<TlsCryptoInfo, CryptoInfoError> {
    let rec_seq = seq.to_be_bytes();
    Ok(match cipher {
        Cipher::Aes128Gcm => {
            let (salt, iv) = gcm_salt_iv(version, direction, iv)?;
            TlsCryptoInfo::Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128 {
                info: header(version, libc::TLS_CIPHER_AES_GCM_128),
                iv,
                key: exact("AES-128-GCM key", key)?,
                salt,
                rec_seq,
            })
        }
        Cipher::Aes256Gcm => {
            let (salt, iv) = gcm_salt_iv(version, direction, iv)?;
            TlsCryptoInfo::Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256 {
                info: header(version, libc::TLS_CIPHER_AES_GCM_256),
                iv,
                key: exact("AES-256-GCM key", key)?,
                salt,
                rec_seq,
            })
        }
        Cipher::Chacha20Poly1305 => {
            TlsCryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                info: header(version, libc::TLS_CIPHER_CHACHA20_POLY1305),
                iv: exact("ChaCha20-Poly1305 IV", iv)?,
                key: exact("ChaCha20-Poly1305 key", key)?,
                salt: [],
                rec_seq,
            })
        }
    })
}

fn header(version: TlsVersion, cipher_type: u16) -> libc::tls_crypto_info {
    libc::tls_crypto_info {
        version: version.kernel_id(),
        cipher_type,
    }
}

/// Splits rustls's 12-byte GCM IV into the kernel's salt and iv (see the
/// module comment for the TLS 1.2 transmit case).
fn gcm_salt_iv(
    version: TlsVersion,
    direction: Direction,
    iv12: &[u8],
) -> Result<([u8; 4], [u8; 8]), CryptoInfoError> {
    let iv12: [u8; 12] = exact("AES-GCM IV", iv12)?;
    let salt = [iv12[0], iv12[1], iv12[2], iv12[3]];
    let mut iv = [0u8; 8];
    iv.copy_from_slice(&iv12[4..]);
    if version == TlsVersion::Tls12 && direction == Direction::Tx {
        iv[0] ^= 0x80;
    }
    Ok((salt, iv))
}

fn exact<const N: usize>(what: &'static str, bytes: &[u8]) -> Result<[u8; N], CryptoInfoError> {
    bytes.try_into().map_err(|_| CryptoInfoError::Length {
        what,
        got: bytes.len(),
        want: N,
    })
}

#[cfg(test)]
mod tests {
    //! Layouts are checked against linux/tls.h as written there (offsets
    //! and sizes), values against hand-computed expectations.
    use std::mem::{offset_of, size_of};

    use rustls::crypto::cipher::{AeadKey, Iv};

    #[test]
    fn rustls_secrets_map_through_the_same_path() {
        let secrets = ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: AeadKey::from(KEY32),
            iv: Iv::new(IV12),
        };
        let info = crypto_info(TlsVersion::Tls13, Direction::Rx, 7, &secrets).expect("maps");
        let TlsCryptoInfo::Chacha20Poly1305(i) = info else {
            panic!("wrong struct: {info:?}")
        };
        assert_eq!((i.key, i.iv, i.rec_seq), (KEY32, IV12, 7u64.to_be_bytes()));
    }

    use super::*;

    const KEY32: [u8; 32] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
        0x1e, 0x1f,
    ];
    const IV12: [u8; 12] = [
        0xa0, 0xa1, 0xa2, 0xa3, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
    ];
    const SEQ: u64 = 0x0102_0304_0506_0708;

    fn info(version: TlsVersion, direction: Direction, seq: u64, cipher: Cipher) -> TlsCryptoInfo {
        let key = match cipher {
            Cipher::Aes128Gcm => &KEY32[..16],
            _ => &KEY32[..],
        };
        build(version, direction, seq, cipher, key, &IV12).expect("maps")
    }

    #[test]
    fn layouts_match_linux_tls_h() {
        // struct tls_crypto_info { __u16 version; __u16 cipher_type; }
        assert_eq!(size_of::<libc::tls_crypto_info>(), 4);
        // tls12_crypto_info_aes_gcm_128: info, iv[8], key[16], salt[4], rec_seq[8]
        type A128 = libc::tls12_crypto_info_aes_gcm_128;
        assert_eq!(
            (
                offset_of!(A128, iv),
                offset_of!(A128, key),
                offset_of!(A128, salt),
                offset_of!(A128, rec_seq),
                size_of::<A128>()
            ),
            (4, 12, 28, 32, 40)
        );
        // tls12_crypto_info_aes_gcm_256: info, iv[8], key[32], salt[4], rec_seq[8]
        type A256 = libc::tls12_crypto_info_aes_gcm_256;
        assert_eq!(
            (
                offset_of!(A256, iv),
                offset_of!(A256, key),
                offset_of!(A256, salt),
                offset_of!(A256, rec_seq),
                size_of::<A256>()
            ),
            (4, 12, 44, 48, 56)
        );
        // tls12_crypto_info_chacha20_poly1305: info, iv[12], key[32], salt[0], rec_seq[8]
        type C = libc::tls12_crypto_info_chacha20_poly1305;
        assert_eq!(
            (
                offset_of!(C, iv),
                offset_of!(C, key),
                offset_of!(C, salt),
                offset_of!(C, rec_seq),
                size_of::<C>()
            ),
            (4, 16, 48, 48, 56)
        );
        // The ids as linux/tls.h defines them.
        assert_eq!(libc::TLS_1_2_VERSION, 0x0303);
        assert_eq!(libc::TLS_1_3_VERSION, 0x0304);
        assert_eq!(libc::TLS_CIPHER_AES_GCM_128, 51);
        assert_eq!(libc::TLS_CIPHER_AES_GCM_256, 52);
        assert_eq!(libc::TLS_CIPHER_CHACHA20_POLY1305, 54);
    }

    #[test]
    fn aes128_gcm_tls13_splits_salt_and_iv_and_keeps_them() {
        for direction in [Direction::Tx, Direction::Rx] {
            let info = info(TlsVersion::Tls13, direction, SEQ, Cipher::Aes128Gcm);
            let TlsCryptoInfo::Aes128Gcm(i) = info else {
                panic!("wrong struct: {info:?}")
            };
            assert_eq!((i.info.version, i.info.cipher_type), (0x0304, 51));
            assert_eq!(i.salt, [0xa0, 0xa1, 0xa2, 0xa3]);
            assert_eq!(i.iv, [0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7]);
            assert_eq!(i.key, KEY32[..16]);
            assert_eq!(i.rec_seq, [1, 2, 3, 4, 5, 6, 7, 8]);
        }
    }

    #[test]
    fn aes256_gcm_tls12_flips_the_transmit_counter_only() {
        let tx = info(TlsVersion::Tls12, Direction::Tx, 1, Cipher::Aes256Gcm);
        let rx = info(TlsVersion::Tls12, Direction::Rx, 1, Cipher::Aes256Gcm);
        let (TlsCryptoInfo::Aes256Gcm(tx), TlsCryptoInfo::Aes256Gcm(rx)) = (tx, rx) else {
            panic!("wrong structs")
        };
        assert_eq!((tx.info.version, tx.info.cipher_type), (0x0303, 52));
        assert_eq!(tx.key, KEY32);
        assert_eq!(tx.salt, [0xa0, 0xa1, 0xa2, 0xa3]);
        assert_eq!(rx.salt, tx.salt);
        assert_eq!(tx.iv, [0x30, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7]);
        assert_eq!(rx.iv, [0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7]);
        assert_eq!(tx.rec_seq, 1u64.to_be_bytes());
    }

    #[test]
    fn tls12_gcm_kernel_nonces_never_repeat_rustls_nonces() {
        // rustls used explicit nonces E ^ s for s < seq; the kernel uses
        // iv, iv + 1, ... (big-endian add). Check the first million of the
        // kernel's against every rustls one for a few awkward E values.
        for e in [
            0u64,
            u64::MAX,
            0x7fff_ffff_ffff_ffff,
            0x8000_0000_0000_0000,
            0x0123_4567_89ab_cdef,
        ] {
            let mut iv12 = [0u8; 12];
            iv12[4..].copy_from_slice(&e.to_be_bytes());
            let used_by_rustls = 4u64;
            let Ok(TlsCryptoInfo::Aes128Gcm(i)) = build(
                TlsVersion::Tls12,
                Direction::Tx,
                used_by_rustls,
                Cipher::Aes128Gcm,
                &KEY32[..16],
                &iv12,
            ) else {
                panic!("maps")
            };
            let first = u64::from_be_bytes(i.iv);
            for k in 0..1_000_000u64 {
                let kernel = first.wrapping_add(k);
                for s in 0..used_by_rustls {
                    assert_ne!(kernel, e ^ s, "E={e:#x}: kernel record {k} reuses seq {s}");
                }
            }
        }
    }

    #[test]
    fn chacha20_has_no_salt_and_keeps_the_whole_iv_in_both_versions() {
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for direction in [Direction::Tx, Direction::Rx] {
                let info = info(version, direction, u64::MAX, Cipher::Chacha20Poly1305);
                let TlsCryptoInfo::Chacha20Poly1305(i) = info else {
                    panic!("wrong struct: {info:?}")
                };
                assert_eq!(i.info.version, version.kernel_id());
                assert_eq!(i.info.cipher_type, 54);
                assert_eq!(i.iv, IV12);
                assert_eq!(i.key, KEY32);
                assert_eq!(i.rec_seq, [0xff; 8]);
            }
        }
    }

    #[test]
    fn wrong_key_length_is_an_error_not_a_panic() {
        assert_eq!(
            build(
                TlsVersion::Tls13,
                Direction::Tx,
                0,
                Cipher::Aes256Gcm,
                &KEY32[..16],
                &IV12
            )
            .map(|_| ()),
            Err(CryptoInfoError::Length {
                what: "AES-256-GCM key",
                got: 16,
                want: 32
            })
        );
    }
}
