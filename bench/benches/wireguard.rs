//! WireGuard's costs per operation, the numbers behind decision 0010: the
//! responder's handshake (consume an initiation, answer it), a cookie
//! reply (what a forged initiation costs under load), and a transport
//! message sealed and opened at the tunnel's MTU and at 64 bytes.

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ethergate_wireguard::{
    Message, PrivateKey, Responder, Session,
    handshake::{
        Identity, consume_initiation, consume_initiation_with, consume_response, initiate, respond,
    },
};

fn handshake(c: &mut Criterion) {
    let server = Responder::new(&PrivateKey::from_bytes([2; 32]));
    let client = Identity::new(&PrivateKey::from_bytes([1; 32]));
    let (init, pending) = initiate(
        &client,
        &server.identity().public,
        &[0; 32],
        [3; 32],
        7,
        [1; 12],
        None,
    )
    .expect("initiation");
    let mut g = c.benchmark_group("wireguard");
    g.bench_function("responder handshake (consume + respond)", |b| {
        b.iter(|| {
            let Ok(Message::Initiation(msg)) = Message::parse(&init) else {
                panic!("parses");
            };
            let consumed = server.consume(&msg).expect("consume");
            respond(consumed, &[0; 32], [4; 32], 9).expect("respond")
        })
    });
    // One Curve25519 DH, two implementations: what the handshake is made of.
    let secret = x25519_dalek::StaticSecret::from([5u8; 32]);
    let public = x25519_dalek::PublicKey::from([9u8; 32]);
    g.bench_function("x25519 (x25519-dalek)", |b| {
        b.iter(|| secret.diffie_hellman(&public))
    });
    let aws_secret = aws_lc_rs::agreement::PrivateKey::from_private_key(
        &aws_lc_rs::agreement::X25519,
        &[5u8; 32],
    )
    .expect("key");
    g.bench_function("x25519 (aws-lc)", |b| {
        b.iter(|| {
            aws_lc_rs::agreement::agree(
                &aws_secret,
                aws_lc_rs::agreement::UnparsedPublicKey::new(
                    &aws_lc_rs::agreement::X25519,
                    [9u8; 32],
                ),
                (),
                |k| Ok(k[0]),
            )
        })
    });
    let ss = server
        .identity()
        .static_shared(&client.public)
        .expect("not low order");
    g.bench_function(
        "responder handshake, static DH precomputed (the server's path)",
        |b| {
            b.iter(|| {
                let Ok(Message::Initiation(msg)) = Message::parse(&init) else {
                    panic!("parses");
                };
                let consumed = consume_initiation_with(server.identity(), &msg, &|_| Some(ss))
                    .expect("consume");
                respond(consumed, &[0; 32], [4; 32], 9).expect("respond")
            })
        },
    );
    let mut checker = Responder::new(&PrivateKey::from_bytes([2; 32]));
    let mut n = 0u8;
    let mut random = |buf: &mut [u8]| {
        n = n.wrapping_add(1);
        buf.fill(n);
    };
    let now = Instant::now();
    g.bench_function("cookie reply to a forged initiation (under load)", |b| {
        b.iter(|| {
            let Ok(Message::Initiation(msg)) = Message::parse(&init) else {
                panic!("parses");
            };
            checker.admit(&msg, b"\xc6\x33\x64\x02\x12\x34", true, now, &mut random)
        })
    });
    // Transport keys from one real handshake.
    let Ok(Message::Initiation(msg)) = Message::parse(&init) else {
        panic!("parses");
    };
    let consumed = consume_initiation(server.identity(), &msg).expect("consume");
    let (response, server_keys) = respond(consumed, &[0; 32], [4; 32], 9).expect("respond");
    let Ok(Message::Response(r)) = Message::parse(&response) else {
        panic!("parses");
    };
    let client_keys = consume_response(&client, &pending, &r).expect("response");
    for size in [64usize, 1420] {
        let packet = vec![0x45u8; size];
        let mut sender = Session::new(&client_keys, now);
        let mut out = Vec::with_capacity(2048);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("seal {size} B"), |b| {
            b.iter(|| {
                out.clear();
                sender.seal(&packet, &mut out).expect("seal");
            })
        });
        let mut receiver = Session::new(&server_keys, now);
        let mut messages = Vec::new();
        for _ in 0..4096 {
            let mut m = Vec::new();
            sender.seal(&packet, &mut m).expect("seal");
            messages.push(m);
        }
        let mut next = 0usize;
        g.bench_function(format!("open {size} B"), |b| {
            b.iter_batched_ref(
                || {
                    let m = messages[next % messages.len()].clone();
                    next += 1;
                    m
                },
                |m| {
                    let counter = u64::from_le_bytes(m[8..16].try_into().expect("8 bytes"));
                    // Replays after the first lap are refused, which costs
                    // the same decryption.
                    let _ = receiver.open(counter, &mut m[16..]);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, handshake);
criterion_main!(benches);
