//! Password hashing exactly as SoftEther does it (spec §4.2, §9):
//! SHA-0 (`Internal_Sha0` in Mayaqua/Encrypt.c — SHA-1 *without* the one-bit
//! rotate in the message schedule; no crate implements it), the stored hash
//! `H = SHA0(password ‖ ASCII_UPPER(username))`, and the wire proof
//! `secure_password = SHA0(H ‖ server_random)`. Also the base64 form of `H`
//! used in config files (`AuthPassword`, `HashedPassword`).
//! Invariant: proofs are compared only with [`ct_eq`], which does not branch
//! on the data, so timing leaks nothing about a stored hash.

/// SHA-0 digest size (SoftEther's misleadingly named `SHA1_SIZE`).
pub const SHA0_LEN: usize = 20;

/// SHA-0 of `data` (FIPS 180, 1993).
pub fn sha0(data: &[u8]) -> [u8; SHA0_LEN] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    // Padding: 0x80, zeros to 56 mod 64, then the 64-bit big-endian length.
    let mut tail = [0u8; 128];
    let rem = data.len() % 64;
    let full = data.len() - rem;
    tail[..rem].copy_from_slice(&data[full..]);
    tail[rem] = 0x80;
    let tail_len = if rem < 56 { 64 } else { 128 };
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in data[..full]
        .chunks_exact(64)
        .chain(tail[..tail_len].chunks_exact(64))
    {
        compress(&mut h, block);
    }
    let mut out = [0u8; SHA0_LEN];
    for (o, w) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

fn compress(h: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (i, c) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for t in 16..80 {
        // The one difference from SHA-1: no `.rotate_left(1)` here.
        w[t] = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
    }
    let [mut a, mut b, mut c, mut d, mut e] = *h;
    for (t, &wt) in w.iter().enumerate() {
        let (f, k) = match t {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let tmp = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(wt);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = tmp;
    }
    for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
        *x = x.wrapping_add(y);
    }
}

/// The stored password hash `H` (`HashPassword`, Cedar/Account.c): password
/// bytes first, then the user name upper-cased byte-wise a–z only, no
/// separator.
pub fn hash_password(password: &str, username: &str) -> [u8; SHA0_LEN] {
    let mut buf = Vec::with_capacity(password.len() + username.len());
    buf.extend_from_slice(password.as_bytes());
    buf.extend(username.bytes().map(|c| c.to_ascii_uppercase()));
    sha0(&buf)
}

/// The admin password hash (`HashAdminPassword`): SHA0 of the password alone.
pub fn hash_admin_password(password: &str) -> [u8; SHA0_LEN] {
    sha0(password.as_bytes())
}

/// The login proof `SHA0(H ‖ random)` (`SecurePassword`, Cedar/Sam.c).
pub fn secure_password(hash: &[u8; SHA0_LEN], random: &[u8; 20]) -> [u8; SHA0_LEN] {
    let mut buf = [0u8; 40];
    buf[..20].copy_from_slice(hash);
    buf[20..].copy_from_slice(random);
    sha0(&buf)
}

/// Constant-time equality of two equal-length secrets (a length mismatch is
/// not secret and returns `false` at once).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as SoftEther writes
/// `byte AuthPassword` in its config.
pub fn base64_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, &x) in idx.iter().enumerate() {
            if i <= c.len() {
                s.push(char::from(B64[x as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Errors decoding base64 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("base64 length {0} is not a multiple of 4")]
    Length(usize),
    #[error("invalid base64 character at offset {0}")]
    Char(usize),
    #[error("hash has {found} bytes, expected {expected}")]
    HashLength { expected: usize, found: usize },
}

/// Strict standard base64 decoding (padding required, no whitespace).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(Base64Error::Length(b.len()));
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (q, quad) in b.chunks_exact(4).enumerate() {
        let last = q + 1 == b.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(Base64Error::Char(q * 4 + 4 - pad));
        }
        let mut n = 0u32;
        for (i, &c) in quad.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                match B64.iter().position(|&x| x == c) {
                    Some(v) => v as u32,
                    None => return Err(Base64Error::Char(q * 4 + i)),
                }
            };
            n = (n << 6) | v;
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Ok(out)
}

/// Decode a base64 stored hash `H` (e.g. the config's `password_hash`).
pub fn password_hash_from_base64(text: &str) -> Result<[u8; SHA0_LEN], Base64Error> {
    let v = base64_decode(text.trim())?;
    <[u8; SHA0_LEN]>::try_from(v.as_slice()).map_err(|_| Base64Error::HashLength {
        expected: SHA0_LEN,
        found: v.len(),
    })
}
