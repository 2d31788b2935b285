//! Byte-exact checks against the spec's test vectors and hex dumps (§4.2, §12, §2.4).

use std::net::{IpAddr, Ipv4Addr};

use ethergate_proto::data::{DataDecoder, DataEncoder, Frames};
use ethergate_proto::pack::{Pack, PackLimits, Values};
use ethergate_proto::password::{
    base64_decode, base64_encode, hash_password, password_hash_from_base64, secure_password, sha0,
};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const EXAMPLE_A: &str = "00000004000000066275696c640000000000000001000025ca0000000668656c6c6f000000020000000100000004546573740000000772616e646f6d000000010000000100000014000102030405060708090a0b0c0d0e0f101112130000000876657273696f6e0000000000000001000001f5";
const EXAMPLE_B: &str = "00000003000000046d736700000003000000010000000448c3a90000000004743634000000040000000101020304050607080000000461727200000000000000020000000100000002";

fn random20() -> [u8; 20] {
    std::array::from_fn(|i| i as u8)
}

#[test]
fn example_a_round_trips_byte_exact() {
    let bytes = unhex(EXAMPLE_A);
    assert_eq!(bytes.len(), 115);
    let p = Pack::decode(&bytes, &PackLimits::HANDSHAKE).expect("decode A");
    assert_eq!(p.int("build").expect("build"), 9674);
    assert_eq!(p.str("hello").expect("hello"), "Test");
    assert_eq!(p.data("random").expect("random"), &random20());
    assert_eq!(p.int("VERSION").expect("case-insensitive"), 501);

    let mut built = Pack::new();
    built
        .set_int("build", 9674)
        .set_str("hello", "Test")
        .set_data("random", &random20())
        .set_int("version", 501);
    assert_eq!(built, p);
    assert_eq!(built.to_bytes().expect("encode A"), bytes);
    assert_eq!(built.encoded_len(), bytes.len());
}

#[test]
fn example_b_round_trips_byte_exact() {
    let bytes = unhex(EXAMPLE_B);
    assert_eq!(bytes.len(), 73);
    let p = Pack::decode(&bytes, &PackLimits::HANDSHAKE).expect("decode B");
    assert_eq!(p.unistr("msg").expect("msg"), "Hé");
    assert_eq!(p.int64("t64").expect("t64"), 0x0102_0304_0506_0708);
    assert_eq!(p.ints("arr").expect("arr"), &[1, 2]);

    let mut built = Pack::new();
    built
        .set_unistr("msg", "Hé")
        .set_int64("t64", 0x0102_0304_0506_0708)
        .set("arr", Values::Int(vec![1, 2]));
    assert_eq!(built.to_bytes().expect("encode B"), bytes);
}

#[test]
fn typed_getters_require_matching_type() {
    let p = Pack::decode(&unhex(EXAMPLE_B), &PackLimits::HANDSHAKE).expect("decode B");
    // PackGetStr fails on a UNISTR; PackGetInt fails on an INT64.
    assert!(p.str("msg").is_err());
    assert!(p.int("t64").is_err());
    assert_eq!(p.int_or_zero("t64"), 0);
    assert!(p.data("missing").is_err());
}

#[test]
fn sha0_test_vectors() {
    assert_eq!(
        hex(&sha0(b"abc")),
        "0164b8a914cd2a5e74c4f7ff082c4d97f1edf880"
    );
    assert_eq!(hex(&sha0(b"")), "f96cea198ad1dd5617ac084a3d92c6107708c0ef");
    // Messages crossing the 55/56/64-byte padding boundaries must not panic
    // and must differ from each other.
    let digests: Vec<_> = (50..140).map(|n| sha0(&vec![b'a'; n])).collect();
    for w in digests.windows(2) {
        assert_ne!(w[0], w[1]);
    }
}

#[test]
fn password_proof_vectors() {
    let h = hash_password("secret", "alice");
    assert_eq!(hex(&h), "0e782dacdb78918d73007999da81bc408906d451");
    assert_eq!(h, sha0(b"secretALICE"));
    assert_eq!(base64_encode(&h), "DngtrNt4kY1zAHmZ2oG8QIkG1FE=");
    assert_eq!(
        password_hash_from_base64("DngtrNt4kY1zAHmZ2oG8QIkG1FE=").expect("b64"),
        h
    );
    let proof = secure_password(&h, &random20());
    assert_eq!(hex(&proof), "1394b82845bfb7a2711c4963f2b62978cb2c6ce3");
}

#[test]
fn base64_round_trip_and_rejects() {
    for n in 0..40u8 {
        let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
        assert_eq!(
            base64_decode(&base64_encode(&data)).expect("round trip"),
            data
        );
    }
    assert!(base64_decode("abc").is_err());
    assert!(base64_decode("ab=c").is_err());
    assert!(base64_decode("a===").is_err());
    assert!(base64_decode("ab!c").is_err());
    assert!(password_hash_from_base64("AAAA").is_err());
}

#[test]
fn ipv4_in_pack_is_byte_swapped() {
    let mut p = Pack::new();
    p.set_ip("ip", IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)));
    let bytes = p.to_bytes().expect("encode");
    // The "ip" INT element is last: its value is the final four bytes.
    assert_eq!(&bytes[bytes.len() - 4..], &[0x01, 0x00, 0xa8, 0xc0]);
    let back = Pack::decode(&bytes, &PackLimits::HANDSHAKE).expect("decode");
    assert_eq!(
        back.ip("IP").expect("ip"),
        IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1))
    );

    // The client's observed clientipaddress = 33574154 is 10.77.0.2.
    let mut q = Pack::new();
    q.set_int("clientipaddress", 33_574_154);
    assert_eq!(
        q.ip("clientipaddress").expect("ip"),
        IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2))
    );
    let v6: IpAddr = "2001:db8::1".parse().expect("v6");
    q.set_ip("x", v6);
    assert_eq!(q.ip("x").expect("v6"), v6);
}

#[test]
fn data_phase_examples() {
    // One 60-byte frame: 00000001 0000003c <60 bytes>.
    let frame: Vec<u8> = (0..60u8).collect();
    let mut out = Vec::new();
    let n = DataEncoder::new(false).encode_batch(&mut out, [frame.as_slice()]);
    assert_eq!(n, 1);
    let mut expected = unhex("00000001 0000003c");
    expected.extend_from_slice(&frame);
    assert_eq!(out, expected);

    // Followed by a keep-alive with 3 pad bytes: ffffffff 00000003 xx xx xx.
    let mut stream = expected.clone();
    stream.extend_from_slice(&unhex("ffffffff 00000003 aabbcc"));
    let mut frames = Frames::new();
    let rep = DataDecoder::new(false)
        .decode(&stream, &mut frames)
        .expect("decode");
    assert_eq!((rep.frames, rep.keepalives, rep.dropped), (1, 1, 0));
    assert_eq!(frames.get(0).expect("frame"), frame.as_slice());
}
