//! Data-phase block stream codec (spec §7; `ConnectionSend`,
//! `ConnectionReceive`, `NewBlock` in Cedar/Connection.c):
//!
//! ```text
//! stream    := { batch | keepalive }*
//! batch     := u32 N (≠ 0xFFFFFFFF), N × (u32 size, size bytes)
//! keepalive := u32 0xFFFFFFFF, u32 len (≤ 512), len bytes
//! ```
//!
//! [`DataDecoder`] is SoftEther's receive state machine (`ts->Mode` 0–4)
//! made incremental: it accepts the TCP stream in arbitrary chunks and hands
//! each frame to a [`FrameSink`] as a borrowed slice — straight out of the
//! input when a frame lies inside one chunk, otherwise out of one reusable
//! buffer — so the hot path allocates nothing per frame. Invariants: a block
//! size above [`MAX_BLOCK_SIZE`] or a keep-alive above
//! [`MAX_KEEPALIVE_SIZE`] is a fatal [`DataError`] (the peer's connection is
//! closed, as SoftEther does); a frame above [`MAX_PACKET_SIZE`] after
//! optional decompression is dropped and counted, never delivered; the
//! decoder never buffers more than one block.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::rng::RandomSource;

/// Batch count value that introduces a keep-alive (`KEEP_ALIVE_MAGIC`).
pub const KEEP_ALIVE_MAGIC: u32 = 0xFFFF_FFFF;
/// Largest frame delivered (`MAX_PACKET_SIZE`): MTU 1500 + Ethernet header
/// + VLAN tag fits.
pub const MAX_PACKET_SIZE: usize = 1600;
/// Largest block size field accepted (`MAX_PACKET_SIZE * 2`); larger closes.
pub const MAX_BLOCK_SIZE: usize = MAX_PACKET_SIZE * 2;
/// Largest keep-alive payload accepted (`MAX_KEEPALIVE_SIZE`); larger closes.
pub const MAX_KEEPALIVE_SIZE: usize = 512;

/// Fatal data-phase errors: SoftEther disconnects the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("block size {size} exceeds {MAX_BLOCK_SIZE}")]
    BlockTooLarge { size: u32 },
    #[error("keep-alive size {size} exceeds {MAX_KEEPALIVE_SIZE}")]
    KeepAliveTooLarge { size: u32 },
}

/// Receives decoded frames. Implemented for closures and for [`Frames`].
pub trait FrameSink {
    fn frame(&mut self, frame: &[u8]);
}

impl<F: FnMut(&[u8])> FrameSink for F {
    fn frame(&mut self, frame: &[u8]) {
        self(frame)
    }
}

/// A reusable frame collector: one contiguous buffer plus end offsets.
/// `clear()` keeps the capacity, so a driver that reuses one `Frames` per
/// connection allocates nothing in steady state.
#[derive(Debug, Default, Clone)]
pub struct Frames {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Frames {
    pub fn new() -> Self {
        Frames::default()
    }
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn push(&mut self, frame: &[u8]) {
        self.buf.extend_from_slice(frame);
        self.ends.push(self.buf.len());
    }
    /// Appends a frame made of `head` followed by `body` and returns it, to
    /// be finished in place (headers written after the payload is copied).
    pub fn push_joined(&mut self, head: &[u8], body: &[u8]) -> &mut [u8] {
        let start = self.buf.len();
        self.buf.extend_from_slice(head);
        self.buf.extend_from_slice(body);
        self.ends.push(self.buf.len());
        &mut self.buf[start..]
    }
    /// Gives back capacity beyond `bytes` (and the matching offsets) once
    /// a burst is over; a no-op while frames are held.
    pub fn shrink_to(&mut self, bytes: usize) {
        if self.is_empty() {
            self.buf.shrink_to(bytes);
            self.ends.shrink_to(bytes / 64);
        }
    }
    /// Bytes of frame data held (all frames together).
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
    /// Appends every frame of `other`, in order.
    pub fn append(&mut self, other: &Frames) {
        let base = self.buf.len();
        self.buf.extend_from_slice(&other.buf);
        self.ends.extend(other.ends.iter().map(|end| base + end));
    }
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.buf.get(start..end)
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
    /// Calls `f` on every frame, which it may change in place (not resize).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut [u8])) {
        let mut start = 0;
        for &end in &self.ends {
            if let Some(frame) = self.buf.get_mut(start..end) {
                f(frame);
            }
            start = end;
        }
    }
}

impl FrameSink for Frames {
    fn frame(&mut self, frame: &[u8]) {
        self.push(frame)
    }
}

/// What one [`DataDecoder::decode`] call saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeReport {
    pub frames: u32,
    pub keepalives: u32,
    /// Frames dropped: too large, or failed/oversized decompression.
    pub dropped: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// mode 0: expecting a batch count or the keep-alive magic.
    Count,
    /// mode 1: expecting a block size; `left` blocks remain in the batch.
    Size { left: u32 },
    /// mode 2: reading a block body of `size` bytes.
    Body { left: u32, size: usize },
    /// mode 3: expecting the keep-alive length.
    KeepAliveLen,
    /// mode 4: discarding `left` keep-alive bytes.
    KeepAliveBody { left: usize },
}

/// Inflates one zlib-compressed frame (§7.5) into `out`; its length, or
/// `None` when it does not inflate to 1..=[`MAX_PACKET_SIZE`] bytes (what
/// SoftEther drops). For frames that arrive one at a time (UDP
/// acceleration); the TCP decoder keeps its own inflater.
pub fn inflate_frame(compressed: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    out.resize(MAX_PACKET_SIZE + 1, 0);
    let mut z = Decompress::new(true);
    match z.decompress(compressed, &mut out[..], FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => {
            let n = usize::try_from(z.total_out()).ok()?;
            (1..=MAX_PACKET_SIZE).contains(&n).then_some(n)
        }
        _ => None,
    }
}

/// Incremental decoder for one direction of one TCP connection.
pub struct DataDecoder {
    mode: Mode,
    /// Partial big-endian u32 split across chunks.
    word: [u8; 4],
    word_len: usize,
    /// Partial block body split across chunks (≤ MAX_BLOCK_SIZE).
    partial: Vec<u8>,
    /// Present when `use_compress` was negotiated.
    inflate: Option<Inflater>,
    failed: Option<DataError>,
}

struct Inflater {
    z: Decompress,
    /// One byte more than allowed, so "exactly full" means "too large".
    out: Box<[u8; MAX_PACKET_SIZE + 1]>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

impl std::fmt::Debug for DataDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDecoder")
            .field("mode", &self.mode)
            .field("compressed", &self.inflate.is_some())
            .finish_non_exhaustive()
    }
}

impl DataDecoder {
    /// `compressed`: every block is a separately zlib-compressed frame (§7.5).
    pub fn new(compressed: bool) -> Self {
        DataDecoder {
            mode: Mode::Count,
            word: [0; 4],
            word_len: 0,
            partial: Vec::new(),
            inflate: compressed.then(|| Inflater {
                z: Decompress::new(true),
                out: Box::new([0; MAX_PACKET_SIZE + 1]),
            }),
            failed: None,
        }
    }

    /// True between items, i.e. the stream could end here cleanly.
    pub fn is_idle(&self) -> bool {
        self.mode == Mode::Count && self.word_len == 0
    }

    /// Feed the next chunk of the stream. Frames go to `sink` in order.
    /// After an error the decoder stays failed and returns it again.
    pub fn decode<S: FrameSink + ?Sized>(
        &mut self,
        mut input: &[u8],
        sink: &mut S,
    ) -> Result<DecodeReport, DataError> {
        let mut rep = DecodeReport::default();
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !input.is_empty() {
            match self.mode {
                Mode::Count => {
                    let Some(n) = self.read_u32(&mut input) else {
                        break;
                    };
                    self.mode = match n {
                        KEEP_ALIVE_MAGIC => Mode::KeepAliveLen,
                        0 => Mode::Count,
                        n => Mode::Size { left: n },
                    };
                }
                Mode::Size { left } => {
                    let Some(size) = self.read_u32(&mut input) else {
                        break;
                    };
                    if size as usize > MAX_BLOCK_SIZE {
                        return Err(self.fail(DataError::BlockTooLarge { size }));
                    }
                    if size == 0 {
                        // A zero-size block is skipped (§7.1).
                        self.mode = next_after_block(left);
                    } else {
                        self.mode = Mode::Body {
                            left,
                            size: size as usize,
                        };
                    }
                }
                Mode::Body { left, size } => {
                    if self.partial.is_empty() && input.len() >= size {
                        // Fast path: the whole block is in this chunk.
                        let (block, rest) = input.split_at(size);
                        input = rest;
                        self.deliver(block, sink, &mut rep);
                        self.mode = next_after_block(left);
                    } else {
                        let need = size - self.partial.len();
                        let take = need.min(input.len());
                        self.partial.extend_from_slice(&input[..take]);
                        input = &input[take..];
                        if self.partial.len() == size {
                            let block = std::mem::take(&mut self.partial);
                            self.deliver(&block, sink, &mut rep);
                            self.partial = block;
                            self.partial.clear();
                            self.mode = next_after_block(left);
                        }
                    }
                }
                Mode::KeepAliveLen => {
                    let Some(len) = self.read_u32(&mut input) else {
                        break;
                    };
                    if len as usize > MAX_KEEPALIVE_SIZE {
                        return Err(self.fail(DataError::KeepAliveTooLarge { size: len }));
                    }
                    rep.keepalives += 1;
                    self.mode = if len == 0 {
                        Mode::Count
                    } else {
                        Mode::KeepAliveBody { left: len as usize }
                    };
                }
                Mode::KeepAliveBody { left } => {
                    // Payload is random padding (or a NAT-T signature we
                    // ignore, §7.2): skip it.
                    let take = left.min(input.len());
                    input = &input[take..];
                    self.mode = if take == left {
                        Mode::Count
                    } else {
                        Mode::KeepAliveBody { left: left - take }
                    };
                }
            }
        }
        Ok(rep)
    }

    fn fail(&mut self, e: DataError) -> DataError {
        self.failed = Some(e);
        e
    }

    fn read_u32(&mut self, input: &mut &[u8]) -> Option<u32> {
        if self.word_len == 0 && input.len() >= 4 {
            let v = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
            *input = &input[4..];
            return Some(v);
        }
        let take = (4 - self.word_len).min(input.len());
        self.word[self.word_len..self.word_len + take].copy_from_slice(&input[..take]);
        self.word_len += take;
        *input = &input[take..];
        if self.word_len == 4 {
            self.word_len = 0;
            Some(u32::from_be_bytes(self.word))
        } else {
            None
        }
    }

    fn deliver<S: FrameSink + ?Sized>(
        &mut self,
        block: &[u8],
        sink: &mut S,
        rep: &mut DecodeReport,
    ) {
        match &mut self.inflate {
            None => {
                if block.len() > MAX_PACKET_SIZE {
                    rep.dropped += 1;
                } else {
                    rep.frames += 1;
                    sink.frame(block);
                }
            }
            Some(inf) => {
                // `uncompress` into a 1600-byte buffer; failure or overflow
                // gives a 0-size block, which SoftEther drops (§7.5).
                inf.z.reset(true);
                match inf
                    .z
                    .decompress(block, &mut inf.out[..], FlushDecompress::Finish)
                {
                    Ok(Status::StreamEnd) => {
                        let n = inf.z.total_out() as usize;
                        if n == 0 || n > MAX_PACKET_SIZE {
                            rep.dropped += 1;
                        } else {
                            rep.frames += 1;
                            sink.frame(&inf.out[..n]);
                        }
                    }
                    _ => rep.dropped += 1,
                }
            }
        }
    }
}

fn next_after_block(left: u32) -> Mode {
    if left <= 1 {
        Mode::Count
    } else {
        Mode::Size { left: left - 1 }
    }
}

/// Encoder for one direction: batches (optionally per-frame zlib) and
/// keep-alives, appended to a caller-owned buffer.
pub struct DataEncoder {
    deflate: Option<Compress>,
}

impl std::fmt::Debug for DataEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataEncoder")
            .field("compressed", &self.deflate.is_some())
            .finish()
    }
}

impl DataEncoder {
    pub fn new(compressed: bool) -> Self {
        DataEncoder {
            // `compress2` at the default level, zlib container (§7.5).
            deflate: compressed.then(|| Compress::new(Compression::default(), true)),
        }
    }

    /// Append one batch holding every frame in `frames` to `out`; returns
    /// how many were written. Empty frames and frames above
    /// [`MAX_PACKET_SIZE`] are skipped, since the receiver would discard
    /// them anyway. Writes nothing if no frame qualifies.
    pub fn encode_batch<'a, I>(&mut self, out: &mut Vec<u8>, frames: I) -> u32
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut n: u32 = 0;
        for f in frames {
            if f.is_empty() || f.len() > MAX_PACKET_SIZE {
                continue;
            }
            match &mut self.deflate {
                None => {
                    out.extend_from_slice(&(f.len() as u32).to_be_bytes());
                    out.extend_from_slice(f);
                }
                Some(z) => {
                    let at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    if !deflate_into(z, f, out) {
                        out.truncate(at);
                        continue;
                    }
                    let size = (out.len() - at - 4) as u32;
                    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
                }
            }
            n += 1;
        }
        if n == 0 {
            out.truncate(start);
        } else {
            out[start..start + 4].copy_from_slice(&n.to_be_bytes());
        }
        n
    }

    /// Append a keep-alive with a random payload of `rand() % 512` bytes (§7.2).
    pub fn encode_keepalive(&mut self, out: &mut Vec<u8>, rng: &mut dyn RandomSource) {
        let len = rng.range_u32(0, MAX_KEEPALIVE_SIZE as u32) as usize;
        out.extend_from_slice(&KEEP_ALIVE_MAGIC.to_be_bytes());
        out.extend_from_slice(&(len as u32).to_be_bytes());
        let at = out.len();
        out.resize(at + len, 0);
        rng.fill_bytes(&mut out[at..]);
    }
}

/// Compress one frame into `out`'s tail. False if the output would not fit
/// a block (cannot happen for ≤ 1600-byte input, but never emit a block
/// the receiver must close on).
fn deflate_into(z: &mut Compress, frame: &[u8], out: &mut Vec<u8>) -> bool {
    z.reset();
    let begin = out.len();
    // zlib's worst-case expansion is a few bytes per 16 KiB plus 11 bytes.
    out.reserve(frame.len() + 64);
    loop {
        let consumed = z.total_in() as usize;
        match z.compress_vec(
            &frame[consumed.min(frame.len())..],
            out,
            FlushCompress::Finish,
        ) {
            Ok(Status::StreamEnd) => break,
            Ok(_) => {
                if out.len() - begin > MAX_BLOCK_SIZE {
                    return false;
                }
                out.reserve(256);
            }
            Err(_) => return false,
        }
    }
    out.len() - begin <= MAX_BLOCK_SIZE
}
