//! A bounded reader over a byte slice, in the style of rustls' `codec.rs`.
//! Invariant: no method reads past the slice or panics; a short read returns
//! [`Short`] carrying the name of the field that was being read, which the
//! PACK layer turns into its own typed error.

/// A read ran past the end of the input while reading `field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    pub field: &'static str,
}

/// Cursor over a borrowed byte slice.
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

    /// Take exactly `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Short> {
        if self.left() < n {
            return Err(Short { field });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, Short> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, Short> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// True when every byte was consumed; callers use it to reject trailing data.
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }
}
