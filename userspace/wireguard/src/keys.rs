//! Curve25519 keys in the base64 form `wg` and every WireGuard app use.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD};

/// A peer's or the server's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

/// A private key (clamped by X25519 when used). Debug output is redacted.
#[derive(Clone)]
pub struct PrivateKey([u8; 32]);

/// A peer's optional preshared key (Noise's `psk` slot, `wg genpsk`):
/// mixed into the handshake so that recording today's traffic and breaking
/// Curve25519 later is not enough to read it. Debug output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey([u8; 32]);

/// Why a key in base64 was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not base64")]
    Base64,
    #[error("decodes to {0} bytes; a WireGuard key is 32 bytes (44 base64 characters)")]
    Length(usize),
}

fn decode(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::Base64)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Length(bytes.len()))
}

/// The base64 form every WireGuard tool reads and writes, for a key type
/// holding its 32 bytes.
macro_rules! base64_form {
    ($key:ty) => {
        impl $key {
            pub fn from_base64(text: &str) -> Result<Self, KeyError> {
                decode(text).map(Self)
            }

            pub fn to_base64(&self) -> String {
                STANDARD.encode(self.0)
            }
        }
    };
}

base64_form!(PublicKey);
base64_form!(PrivateKey);
base64_form!(PresharedKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl PrivateKey {
    /// A key from 32 random bytes (clamping happens in X25519).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.secret().public())
    }

    pub(crate) fn secret(&self) -> crate::crypto::Secret {
        crate::crypto::Secret::new(&self.0)
    }
}

impl PresharedKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes the handshake mixes in.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(…)")
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748 §6.1: Alice's private key and the public key it gives.
    #[test]
    fn public_key_follows_rfc7748() {
        let hex = crate::hex32;
        let private = PrivateKey::from_bytes(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            private.public_key().0,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    #[test]
    fn a_preshared_key_round_trips_and_stays_out_of_debug_output() {
        let key = PresharedKey::from_bytes([0xab; 32]);
        assert_eq!(PresharedKey::from_base64(&key.to_base64()), Ok(key.clone()));
        assert_eq!(PresharedKey::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert_eq!(format!("{key:?}"), "PresharedKey(…)");
    }

    #[test]
    fn base64_round_trips_and_lengths_are_checked() {
        let key = PrivateKey::from_bytes([9; 32]).public_key();
        assert_eq!(PublicKey::from_base64(&key.to_base64()), Ok(key));
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert_eq!(PublicKey::from_base64("!!"), Err(KeyError::Base64));
        assert_eq!(
            format!("{:?}", PrivateKey::from_bytes([1; 32])),
            "PrivateKey(…)"
        );
    }
}
