//! Data-phase codec properties: streams of batches and keep-alives decode
//! to the same frames whatever the TCP chunking, with and without zlib;
//! the receiver limits of §7.1 hold; garbage never panics.

use ethergate_proto::data::{
    DataDecoder, DataEncoder, DataError, Frames, MAX_BLOCK_SIZE, MAX_KEEPALIVE_SIZE,
    MAX_PACKET_SIZE,
};
use ethergate_proto::rng::TestRng;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Item {
    Batch(Vec<Vec<u8>>),
    KeepAlive,
}

fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..100),
        // Large, compressible frames exercise zlib and partial buffering.
        (1usize..=MAX_PACKET_SIZE, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

fn arb_items() -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(arb_frame(), 1..6).prop_map(Item::Batch),
            Just(Item::KeepAlive),
        ],
        0..8,
    )
}

fn emit(items: &[Item], compressed: bool, seed: u64) -> (Vec<u8>, Vec<Vec<u8>>, u32) {
    let mut enc = DataEncoder::new(compressed);
    let mut rng = TestRng::new(seed);
    let mut out = Vec::new();
    let mut frames = Vec::new();
    let mut kas = 0;
    for it in items {
        match it {
            Item::Batch(fs) => {
                let n = enc.encode_batch(&mut out, fs.iter().map(Vec::as_slice));
                assert_eq!(n as usize, fs.len());
                frames.extend(fs.iter().cloned());
            }
            Item::KeepAlive => {
                enc.encode_keepalive(&mut out, &mut rng);
                kas += 1;
            }
        }
    }
    (out, frames, kas)
}

fn decode_chunked(
    stream: &[u8],
    cuts: &[usize],
    compressed: bool,
) -> Result<(Vec<Vec<u8>>, u32), DataError> {
    let mut dec = DataDecoder::new(compressed);
    let mut got = Vec::new();
    let mut kas = 0;
    let mut pos = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    for c in cuts {
        let rep = dec.decode(&stream[pos..c.max(pos)], &mut |f: &[u8]| {
            got.push(f.to_vec())
        })?;
        kas += rep.keepalives;
        pos = c.max(pos);
    }
    Ok((got, kas))
}

proptest! {
    #[test]
    fn round_trip_any_chunking(items in arb_items(), cuts in prop::collection::vec(any::<usize>(), 0..12), compressed in any::<bool>(), seed in any::<u64>()) {
        let (stream, frames, kas) = emit(&items, compressed, seed);
        let (got, got_kas) = decode_chunked(&stream, &cuts, compressed).expect("decode");
        prop_assert_eq!(got, frames);
        prop_assert_eq!(got_kas, kas);
    }

    #[test]
    fn byte_by_byte_equals_whole(items in arb_items(), seed in any::<u64>()) {
        let (stream, frames, _) = emit(&items, false, seed);
        let mut dec = DataDecoder::new(false);
        let mut got = Frames::new();
        for b in &stream {
            dec.decode(std::slice::from_ref(b), &mut got).expect("decode");
        }
        prop_assert!(dec.is_idle());
        prop_assert_eq!(got.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), frames);
    }

    #[test]
    fn truncated_streams_are_incomplete_not_wrong(items in arb_items(), seed in any::<u64>()) {
        // A cut stream yields a prefix of the frames and leaves the decoder
        // mid-item (or idle at an item boundary); it never panics.
        let (stream, frames, _) = emit(&items, false, seed);
        for cut in 0..stream.len() {
            let (got, _) = decode_chunked(&stream[..cut], &[], false).expect("prefix decodes");
            prop_assert!(frames.starts_with(&got));
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4000), compressed in any::<bool>()) {
        let mut dec = DataDecoder::new(compressed);
        let mut n = 0usize;
        let _ = dec.decode(&bytes, &mut |f: &[u8]| { assert!(f.len() <= MAX_PACKET_SIZE); n += 1; });
    }

    #[test]
    fn bit_flips_never_panic(items in arb_items(), seed in any::<u64>(), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4), compressed in any::<bool>()) {
        let (mut stream, _, _) = emit(&items, compressed, seed);
        if stream.is_empty() { return Ok(()); }
        for (i, bit) in flips {
            let i = i.index(stream.len());
            stream[i] ^= 1 << bit;
        }
        let _ = decode_chunked(&stream, &[stream.len() / 2], compressed);
    }
}

fn decode_all(
    stream: &[u8],
    compressed: bool,
) -> (
    Result<ethergate_proto::data::DecodeReport, DataError>,
    Frames,
) {
    let mut f = Frames::new();
    let r = DataDecoder::new(compressed).decode(stream, &mut f);
    (r, f)
}

#[test]
fn block_over_3200_closes() {
    let mut s = 1u32.to_be_bytes().to_vec();
    s.extend_from_slice(&(MAX_BLOCK_SIZE as u32 + 1).to_be_bytes());
    assert_eq!(
        decode_all(&s, false).0,
        Err(DataError::BlockTooLarge { size: 3201 })
    );
    // Exactly 3200 is legal (and the frame is then dropped as > 1600).
    let mut s = 1u32.to_be_bytes().to_vec();
    s.extend_from_slice(&(MAX_BLOCK_SIZE as u32).to_be_bytes());
    s.extend_from_slice(&[0u8; MAX_BLOCK_SIZE]);
    let (r, f) = decode_all(&s, false);
    assert_eq!(r.expect("legal").dropped, 1);
    assert!(f.is_empty());
}

#[test]
fn keepalive_over_512_closes_and_decoder_stays_failed() {
    let mut s = u32::MAX.to_be_bytes().to_vec();
    s.extend_from_slice(&(MAX_KEEPALIVE_SIZE as u32 + 1).to_be_bytes());
    let mut dec = DataDecoder::new(false);
    let mut f = Frames::new();
    assert_eq!(
        dec.decode(&s, &mut f),
        Err(DataError::KeepAliveTooLarge { size: 513 })
    );
    assert_eq!(
        dec.decode(&[0, 0, 0, 0], &mut f),
        Err(DataError::KeepAliveTooLarge { size: 513 })
    );
    let mut ok = u32::MAX.to_be_bytes().to_vec();
    ok.extend_from_slice(&512u32.to_be_bytes());
    ok.extend_from_slice(&[7u8; 512]);
    assert_eq!(decode_all(&ok, false).0.expect("512 ok").keepalives, 1);
}

#[test]
fn frame_over_1600_is_dropped_not_fatal() {
    let mut s = 3u32.to_be_bytes().to_vec();
    for n in [10usize, 1601, 0] {
        s.extend_from_slice(&(n as u32).to_be_bytes());
        s.extend_from_slice(&vec![0xab; n]);
    }
    // A zero count is legal and means nothing.
    s.extend_from_slice(&0u32.to_be_bytes());
    let (r, f) = decode_all(&s, false);
    let r = r.expect("ok");
    assert_eq!((r.frames, r.dropped), (1, 1));
    assert_eq!(f.get(0).expect("frame").len(), 10);
}

#[test]
fn compressed_oversize_or_corrupt_is_dropped() {
    use std::io::Write;
    // 1601 bytes of zeros compress to a tiny block that inflates past the cap.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&[0u8; 1601]).expect("compress");
    let bomb = z.finish().expect("finish");
    let mut s = 2u32.to_be_bytes().to_vec();
    s.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
    s.extend_from_slice(&bomb);
    s.extend_from_slice(&3u32.to_be_bytes());
    s.extend_from_slice(b"xyz");
    let (r, f) = decode_all(&s, true);
    assert_eq!(r.expect("ok").dropped, 2);
    assert!(f.is_empty());
}

#[test]
fn encoder_skips_empty_and_oversize_frames() {
    let mut out = Vec::new();
    let big = vec![0u8; MAX_PACKET_SIZE + 1];
    let n = DataEncoder::new(false).encode_batch(&mut out, [&[][..], &big[..]]);
    assert_eq!(n, 0);
    assert!(out.is_empty());
}

#[test]
fn compressed_frames_interoperate_with_plain_zlib() {
    use std::io::Read;
    let frame: Vec<u8> = (0..1514u32).map(|i| (i % 7) as u8).collect();
    let mut out = Vec::new();
    DataEncoder::new(true).encode_batch(&mut out, [frame.as_slice()]);
    assert_eq!(&out[..4], &[0, 0, 0, 1]);
    let size = u32::from_be_bytes([out[4], out[5], out[6], out[7]]) as usize;
    assert_eq!(out.len(), 8 + size);
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&out[8..])
        .read_to_end(&mut inflated)
        .expect("zlib container");
    assert_eq!(inflated, frame);
}

proptest! {
    /// `append` is the same as pushing every frame of the other batch.
    #[test]
    fn append_equals_pushing_each_frame(
        a in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        b in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let (mut left, mut right, mut expected) = (Frames::new(), Frames::new(), Frames::new());
        for f in &a {
            left.push(f);
            expected.push(f);
        }
        for f in &b {
            right.push(f);
            expected.push(f);
        }
        left.append(&right);
        prop_assert_eq!(left.len(), a.len() + b.len());
        prop_assert_eq!(left.byte_len(), expected.byte_len());
        prop_assert!(left.iter().eq(expected.iter()));
    }
}
