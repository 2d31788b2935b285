//! Standard base64 (RFC 4648 §4, with `=` padding), the form SoftEther
//! stores password hashes in (`HashedPassword byte DngtrNt4kY1z…`).
//!
//! Only what the config needs: encode, and a strict decode that rejects
//! anything not in canonical padded form, so one hash has one spelling.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a string is not canonical padded base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("its length is not a multiple of 4")]
    Length,
    #[error("it contains {0:?}, which is not a base64 character")]
    Character(char),
    #[error("its '=' padding is misplaced")]
    Padding,
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(Base64Error::Length);
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, quad) in bytes.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        // Padding appears only in the last quad, and at most "==".
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return Err(Base64Error::Padding);
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = sextet(c).ok_or(Base64Error::Character(c as char))?;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let [_, b0, b1, b2] = n.to_be_bytes();
        let decoded = [b0, b1, b2];
        let keep = 3 - pad;
        // Canonical form: the bits the padding hides must be zero.
        if decoded[keep..].iter().any(|&b| b != 0) {
            return Err(Base64Error::Padding);
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 §10.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).expect("vector decodes"), plain.as_bytes());
        }
    }

    #[test]
    fn rejects_non_canonical() {
        assert_eq!(decode("Zg="), Err(Base64Error::Length));
        assert_eq!(decode("Zg=a"), Err(Base64Error::Character('=')));
        assert_eq!(decode("Z==="), Err(Base64Error::Padding));
        assert_eq!(decode("Zh=="), Err(Base64Error::Padding));
        assert_eq!(decode("Zg==Zg=="), Err(Base64Error::Padding));
        assert_eq!(decode("Zm9v!A=="), Err(Base64Error::Character('!')));
    }
}
