//! Arbitrary bytes through both offload directions.
//! - The first 10 bytes as a virtio-net header and the next chunk as the
//!   frame a tap read returned: segmenting returns an error or frames,
//!   never panics.
//! - The rest as a sequence of frames (each prefixed by a 2-byte length)
//!   through the coalescer: every GSO frame it makes must segment back
//!   cleanly, and the frames out plus the ACKs thinned are the frames in.

#![no_main]

use ethergate_hub::offload::{Coalescer, VnetHdr, segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let (read, rest) = data.split_at((usize::from(split) * 8).min(data.len()));
    let mut read = read.to_vec();
    if let Some((hdr, frame)) = VnetHdr::parse_mut(&mut read) {
        let _ = segment(hdr, frame, &mut Vec::<Vec<u8>>::new());
    }

    let mut frames = Vec::new();
    let mut rest = rest;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        frames.push(frame);
        rest = tail;
    }
    let mut units: Vec<(VnetHdr, Vec<u8>)> = Vec::new();
    let mut coalescer = Coalescer::new();
    let mut emit = |h: &VnetHdr, f: &[u8]| units.push((*h, f.to_vec()));
    for frame in &frames {
        coalescer.push(frame, &mut emit);
    }
    coalescer.flush(&mut emit);
    let thinned = coalescer.take_thinned();
    let mut out = 0usize;
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for (hdr, mut bytes) in units {
        let mut with_hdr = hdr.to_bytes().to_vec();
        with_hdr.append(&mut bytes);
        let (hdr, frame) = VnetHdr::parse_mut(&mut with_hdr).expect("10-byte header");
        segments.clear();
        out += segment(hdr, frame, &mut segments)
            .unwrap_or_else(|e| panic!("a coalesced frame does not segment: {e}"));
    }
    assert_eq!(
        out as u64 + thinned,
        frames.len() as u64,
        "frames in != frames out + ACKs thinned"
    );
});
