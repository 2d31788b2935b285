//! Data-phase decoding of an arbitrary stream in arbitrary chunks:
//! never panics, never delivers a frame above 1600 bytes, and the frames
//! delivered do not depend on how the stream was chunked.
#![no_main]

use ethergate_proto::data::{DataDecoder, MAX_PACKET_SIZE};
use libfuzzer_sys::fuzz_target;

fn run(stream: &[u8], chunk: usize, compressed: bool) -> (Vec<Vec<u8>>, bool) {
    let mut dec = DataDecoder::new(compressed);
    let mut frames = Vec::new();
    let mut failed = false;
    for c in stream.chunks(chunk.max(1)) {
        let r = dec.decode(c, &mut |f: &[u8]| {
            assert!(!f.is_empty() && f.len() <= MAX_PACKET_SIZE);
            frames.push(f.to_vec());
        });
        if r.is_err() {
            failed = true;
            break;
        }
    }
    (frames, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let compressed = ctl & 1 == 1;
    let chunk = usize::from(ctl >> 1) + 1;
    let whole = run(stream, stream.len(), compressed);
    let chunked = run(stream, chunk, compressed);
    assert_eq!(whole, chunked, "chunking changed the result");
});
