//! PACK codec properties: `decode(encode(x)) == x`, malformed input is an
//! error (never a panic), and SoftEther's rejection rules hold.

use ethergate_proto::pack::{Pack, PackError, PackLimits, Values};
use proptest::prelude::*;

fn arb_values() -> impl Strategy<Value = Values> {
    prop_oneof![
        prop::collection::vec(any::<u32>(), 1..4).prop_map(Values::Int),
        prop::collection::vec(any::<u64>(), 1..4).prop_map(Values::Int64),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..4)
            .prop_map(Values::Data),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..4)
            .prop_map(Values::Str),
        prop::collection::vec("[^\u{0}]{0,12}", 1..4).prop_map(Values::UniStr),
    ]
}

fn arb_pack() -> impl Strategy<Value = Pack> {
    prop::collection::vec(("[A-Za-z0-9_:@]{1,63}", arb_values()), 0..12).prop_map(|els| {
        let mut p = Pack::new();
        for (n, v) in els {
            p.set(&n, v);
        }
        p
    })
}

fn encode(p: &Pack) -> Vec<u8> {
    p.to_bytes().expect("generated packs encode")
}

proptest! {
    #[test]
    fn round_trip(p in arb_pack()) {
        let bytes = encode(&p);
        prop_assert_eq!(bytes.len(), p.encoded_len());
        let back = Pack::decode(&bytes, &PackLimits::AUTHENTICATED).expect("decode");
        prop_assert_eq!(back, p);
    }

    #[test]
    fn every_truncation_is_an_error(p in arb_pack()) {
        let bytes = encode(&p);
        for cut in 0..bytes.len() {
            prop_assert!(Pack::decode(&bytes[..cut], &PackLimits::AUTHENTICATED).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn bit_flips_never_panic(p in arb_pack(), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut bytes = encode(&p);
        if bytes.is_empty() { return Ok(()); }
        for (i, bit) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        // Any outcome but a panic is fine; a success must re-encode.
        if let Ok(q) = Pack::decode(&bytes, &PackLimits::AUTHENTICATED) {
            let again = q.to_bytes().expect("decoded packs encode");
            prop_assert_eq!(Pack::decode(&again, &PackLimits::AUTHENTICATED).expect("re-decode"), q);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Pack::decode(&bytes, &PackLimits::HANDSHAKE);
    }
}

fn element(name: &[u8], ty: u32, values: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32 + 1).to_be_bytes());
    v.extend_from_slice(name);
    v.extend_from_slice(&ty.to_be_bytes());
    v.extend_from_slice(&(values.len() as u32).to_be_bytes());
    for x in values {
        v.extend_from_slice(x);
    }
    v
}

fn pack_of(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut v = (elements.len() as u32).to_be_bytes().to_vec();
    for e in elements {
        v.extend_from_slice(e);
    }
    v
}

fn decode(b: &[u8]) -> Result<Pack, PackError> {
    Pack::decode(b, &PackLimits::HANDSHAKE)
}

#[test]
fn rejects_empty_element() {
    let b = pack_of(&[element(b"a", 0, &[])]);
    assert_eq!(
        decode(&b),
        Err(PackError::EmptyElement {
            element: "a".into()
        })
    );
}

#[test]
fn rejects_case_insensitive_duplicates() {
    let one = 1u32.to_be_bytes();
    let b = pack_of(&[
        element(b"Name", 0, &[&one]),
        element(b"x", 0, &[&one]),
        element(b"nAME", 0, &[&one]),
    ]);
    assert!(matches!(decode(&b), Err(PackError::DuplicateName { .. })));
}

#[test]
fn rejects_zero_name_length_and_long_names() {
    let mut b = 1u32.to_be_bytes().to_vec();
    b.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(decode(&b), Err(PackError::EmptyName));
    let one = 1u32.to_be_bytes();
    let long = [b'a'; 64];
    assert!(matches!(
        decode(&pack_of(&[element(&long, 0, &[&one])])),
        Err(PackError::NameTooLong { .. })
    ));
    assert!(decode(&pack_of(&[element(&long[..63], 0, &[&one])])).is_ok());
}

#[test]
fn rejects_unknown_type_bad_unistr_and_trailing_bytes() {
    let one = 1u32.to_be_bytes();
    assert!(matches!(
        decode(&pack_of(&[element(b"a", 5, &[&one])])),
        Err(PackError::UnknownType { code: 5, .. })
    ));
    // UNISTR size 0, unterminated, and with an inner NUL.
    for v in [
        &[0, 0, 0, 0][..],
        &[0, 0, 0, 1, b'x'],
        &[0, 0, 0, 3, b'x', 0, 0],
    ] {
        assert!(
            matches!(
                decode(&pack_of(&[element(b"u", 3, &[v])])),
                Err(PackError::BadUniStr { .. })
            ),
            "{v:?}"
        );
    }
    let mut b = pack_of(&[element(b"a", 0, &[&one])]);
    b.push(0);
    assert_eq!(decode(&b), Err(PackError::TrailingBytes { count: 1 }));
}

#[test]
fn caps_are_enforced() {
    let b = (PackLimits::HANDSHAKE.max_elements + 1).to_be_bytes();
    assert!(matches!(decode(&b), Err(PackError::TooManyElements { .. })));
    let big = vec![0u8; PackLimits::HANDSHAKE.max_body + 1];
    assert!(matches!(decode(&big), Err(PackError::BodyTooLarge { .. })));
    let mut e = 2u32.to_be_bytes().to_vec();
    e.push(b'a');
    e.extend_from_slice(&0u32.to_be_bytes());
    e.extend_from_slice(&(PackLimits::HANDSHAKE.max_values_per_element + 1).to_be_bytes());
    let b = pack_of(&[e]);
    assert!(matches!(decode(&b), Err(PackError::TooManyValues { .. })));
}

#[test]
fn truncation_error_names_the_element() {
    let b = pack_of(&[element(b"secure_password", 1, &[&[0, 0, 0, 20, 1, 2]])]);
    match decode(&b) {
        Err(PackError::Truncated { element, part }) => {
            assert_eq!(element, "secure_password");
            assert_eq!(part, "value bytes");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn encode_refuses_what_softether_would_reject() {
    let mut p = Pack::new();
    p.set("empty", Values::Int(vec![]));
    assert!(matches!(p.to_bytes(), Err(PackError::EmptyElement { .. })));
    let mut p = Pack::new();
    p.set_int(&"n".repeat(64), 1);
    assert!(matches!(p.to_bytes(), Err(PackError::NameTooLong { .. })));
    let mut p = Pack::new();
    p.set_int("", 1);
    assert_eq!(p.to_bytes(), Err(PackError::EmptyName));
    let mut p = Pack::new();
    p.set_unistr("u", "a\0b");
    assert!(matches!(p.to_bytes(), Err(PackError::BadUniStr { .. })));
}

#[test]
fn set_replaces_case_insensitively() {
    let mut p = Pack::new();
    p.set_int("Hello", 1).set_int("x", 2).set_str("HELLO", "s");
    assert_eq!(p.len(), 2);
    assert_eq!(p.str("hello").expect("str"), "s");
    assert_eq!(p.elements()[0].name(), "HELLO");
}
