//! criterion benches of the SoftEther protocol codecs (ethergate-proto):
//! PACK decode/encode of a login PACK shaped like the Debian client's, and
//! the data-phase block stream at 64- and 1514-byte frames in batches of 32,
//! reported both as frames/s (`Throughput::Elements`) and bytes/s
//! (`Throughput::Bytes`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ethergate_fixtures::softether::debian_like_login;
use ethergate_proto::Credentials;
use ethergate_proto::data::{DataDecoder, DataEncoder};
use ethergate_proto::pack::{Pack, PackLimits};
use ethergate_proto::password::{hash_password, secure_password};

const BATCH: usize = 32;
const FRAME_SIZES: [usize; 2] = [64, 1514];

/// ~90 elements, as the Debian client's login (spec §4.3).
fn login_pack() -> Pack {
    let credentials = Credentials::Password {
        secure_password: secure_password(&hash_password("secret", "alice"), &[7; 20]),
    };
    debian_like_login(credentials, "TEST", "alice", false)
}

fn bench_pack(c: &mut Criterion) {
    let pack = login_pack();
    let bytes = pack.to_bytes().expect("login encodes");
    let mut g = c.benchmark_group("pack_login");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function(
        format!("decode/{}_elements_{}B", pack.len(), bytes.len()),
        |b| b.iter(|| Pack::decode(black_box(&bytes), &PackLimits::HANDSHAKE).expect("decode")),
    );
    let mut out = Vec::with_capacity(bytes.len());
    g.bench_function(
        format!("encode/{}_elements_{}B", pack.len(), bytes.len()),
        |b| {
            b.iter(|| {
                out.clear();
                black_box(&pack).encode(&mut out).expect("encode");
                black_box(out.len())
            })
        },
    );
    g.finish();
}

fn frames(size: usize) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| (0..size).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect()
}

fn stream(size: usize) -> Vec<u8> {
    let f = frames(size);
    let mut out = Vec::new();
    DataEncoder::new(false).encode_batch(&mut out, f.iter().map(Vec::as_slice));
    out
}

/// Decodes `stream` and returns the frame bytes it held.
fn decoded_bytes(dec: &mut DataDecoder, stream: &[u8]) -> usize {
    let mut n = 0usize;
    dec.decode(black_box(stream), &mut |fr: &[u8]| n += fr.len())
        .expect("decode");
    black_box(n)
}

fn bench_data(c: &mut Criterion, unit: &str) {
    let mut g = c.benchmark_group(format!("data_phase_{unit}"));
    for size in FRAME_SIZES {
        g.throughput(if unit == "frames" {
            Throughput::Elements(BATCH as u64)
        } else {
            Throughput::Bytes((BATCH * size) as u64)
        });
        let f = frames(size);
        let mut enc = DataEncoder::new(false);
        let mut out = Vec::with_capacity(BATCH * (size + 4) + 4);
        g.bench_with_input(BenchmarkId::new("encode_batch32", size), &size, |b, _| {
            b.iter(|| {
                out.clear();
                black_box(enc.encode_batch(&mut out, f.iter().map(Vec::as_slice)))
            })
        });
        let s = stream(size);
        let mut dec = DataDecoder::new(false);
        g.bench_with_input(BenchmarkId::new("decode_batch32", size), &size, |b, _| {
            b.iter(|| decoded_bytes(&mut dec, &s))
        });
    }
    g.finish();
}

fn bench_data_frames(c: &mut Criterion) {
    bench_data(c, "frames");
}

fn bench_data_bytes(c: &mut Criterion) {
    bench_data(c, "bytes");
}

fn bench_compressed(c: &mut Criterion) {
    // Per-frame zlib (use_compress=1), for scale only: off by default.
    let mut g = c.benchmark_group("data_phase_zlib_frames");
    let size = 1514;
    g.throughput(Throughput::Elements(BATCH as u64));
    let f = frames(size);
    let mut enc = DataEncoder::new(true);
    let mut out = Vec::new();
    g.bench_function("encode_batch32/1514", |b| {
        b.iter(|| {
            out.clear();
            black_box(enc.encode_batch(&mut out, f.iter().map(Vec::as_slice)))
        })
    });
    let mut s = Vec::new();
    DataEncoder::new(true).encode_batch(&mut s, f.iter().map(Vec::as_slice));
    let mut dec = DataDecoder::new(true);
    g.bench_function("decode_batch32/1514", |b| {
        b.iter(|| decoded_bytes(&mut dec, &s))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_pack, bench_data_frames, bench_data_bytes, bench_compressed
}
criterion_main!(benches);
