//! A bounded reader over a byte slice for the wire formats ethergate parses
//! (PACK, DHCP), in the style of rustls' `codec.rs`.
//!
//! Invariant: no method reads past the slice or panics; a short read is a
//! [`Short`] naming the field that was being read, which each format turns
//! into its own typed error.

use std::net::Ipv4Addr;

/// A read ran past the end of the input while reading `field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    pub field: &'static str,
}

/// Cursor over a borrowed byte slice; numbers are big-endian.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte was consumed (callers reject trailing data).
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// Exactly `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short { field })?;
        let bytes = self.buf.get(self.pos..end).ok_or(Short { field })?;
        self.pos = end;
        Ok(bytes)
    }

    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Short> {
        self.take(N, field)?.try_into().map_err(|_| Short { field })
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, Short> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, Short> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, Short> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, Short> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub fn ipv4(&mut self, field: &'static str) -> Result<Ipv4Addr, Short> {
        Ok(Ipv4Addr::from(self.array::<4>(field)?))
    }

    /// Everything not yet consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_big_endian_and_names_the_short_field() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.ipv4("b"), Ok(Ipv4Addr::new(3, 4, 5, 6)));
        assert_eq!(r.u32("c"), Err(Short { field: "c" }));
        assert_eq!(r.rest(), &[7]);
        assert!(r.is_empty());
    }

    proptest! {
        /// Any sequence of reads over any input stays in bounds: a read
        /// either returns its bytes or `Short`, and `left` only shrinks.
        #[test]
        fn reads_never_overrun(buf in proptest::collection::vec(any::<u8>(), 0..64), ops in proptest::collection::vec(0u8..6, 0..32)) {
            let mut r = Reader::new(&buf);
            for op in ops {
                let before = r.left();
                let ok = match op {
                    0 => r.u8("f").is_ok(),
                    1 => r.u16("f").is_ok(),
                    2 => r.u32("f").is_ok(),
                    3 => r.u64("f").is_ok(),
                    4 => r.take(5, "f").is_ok(),
                    _ => r.ipv4("f").is_ok(),
                };
                prop_assert!(r.left() <= before);
                if !ok { prop_assert_eq!(r.left(), before); }
            }
        }
    }
}
