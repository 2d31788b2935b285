//! The admin socket's framing: one request line per connection, read by
//! `protocol::read_request_line` and handed to `Request::decode` — what
//! `ethergate/src/admin_socket.rs` (`answer`) does, with the same
//! functions. `admin_request` fuzzes `decode` on whole buffers; this
//! target fuzzes what comes before it: the stream arriving in arbitrary
//! pieces, bytes after the first newline, lines longer than the bound.
//!
//! Input: the first byte seeds the sizes of the pieces the stream arrives
//! in; the rest is what the peer sends.
#![no_main]

use std::io::Read;

use ethergate_admin::{
    Request,
    protocol::{DecodeError, MAX_REQUEST_BYTES, read_request_line},
};
use libfuzzer_sys::fuzz_target;

/// A peer whose bytes arrive in pieces of 1 to 64 bytes, as a socket may
/// return them.
struct Pieces<'a> {
    data: &'a [u8],
    seed: u32,
    /// Bytes handed out so far.
    given: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let piece = 1 + (self.seed >> 16) as usize % 64;
        let n = piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.given += n;
        Ok(n)
    }
}

/// The daemon's read of one request line (the same function it calls).
fn read_request(peer: impl Read) -> std::io::Result<(Vec<u8>, Result<Request, DecodeError>)> {
    let line = read_request_line(peer)?;
    let request = Request::decode(&line);
    Ok((line, request))
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, sent)) = input.split_first() else {
        return;
    };
    let mut peer = Pieces {
        data: sent,
        seed: u32::from(seed),
        given: 0,
    };
    let (line, request) = read_request(&mut peer).expect("reading from memory cannot fail");

    // However the bytes arrive, the same line and the same answer.
    let (whole_line, whole_request) = read_request(sent).expect("in memory");
    assert_eq!(line, whole_line);
    assert_eq!(request, whole_request);

    // The line is the first line, newline included, cut at the bound.
    let first = match sent.iter().position(|&b| b == b'\n') {
        Some(end) => &sent[..=end],
        None => sent,
    };
    assert_eq!(line, first[..first.len().min(MAX_REQUEST_BYTES + 1)]);
    // Memory stays bounded: the line, plus what BufReader buffers.
    assert!(peer.given <= line.len() + 8 * 1024);

    // Only the bound decides "too long" (the request without its
    // newline), and what follows the first line never changes the answer.
    let body = first.strip_suffix(b"\n").unwrap_or(first);
    if body.len() > MAX_REQUEST_BYTES {
        assert_eq!(request, Err(DecodeError::TooLong));
    } else {
        assert_ne!(request, Err(DecodeError::TooLong));
        assert_eq!(request, Request::decode(first));
    }
    // What decodes encodes to a line that reads back the same, whenever
    // the encoding fits the cap (it may be longer than the input: fields
    // the input left to their defaults are written out).
    if let Ok(request) = request {
        let line = request.encode();
        let again = Request::decode(line.as_bytes());
        if line.len() - 1 <= MAX_REQUEST_BYTES {
            assert_eq!(again.ok(), Some(request));
        } else {
            assert_eq!(again, Err(DecodeError::TooLong));
        }
    }
});
