//! Round trips, property tests, hostile input and limits of the wire format.

use channel_messaging::wire::{DecodeErrorKind, MAX_DEPTH, Reader, decode_value, encode_value};
use channel_messaging::{BigInt, Buffer, ErrorName, ErrorValue, Value, View, ViewKind};
use proptest::prelude::*;

fn encode(v: &Value) -> Result<(Vec<u8>, Vec<Buffer>), channel_messaging::DataCloneError> {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_value(v, 8, &mut out, &mut buffers)?;
    Ok((out, buffers))
}

/// Encodes, decodes, re-encodes: the bytes must agree (floats compare by bits), and
/// values without NaN must compare equal.
fn check_round_trip(v: &Value) {
    let (bytes, buffers) = encode(v).unwrap();
    let back = decode_value(&bytes, &buffers, 8).unwrap();
    let (again, again_buffers) = encode(&back).unwrap();
    assert_eq!(bytes, again, "{v:?}");
    assert_eq!(buffers, again_buffers);
    if !format!("{v:?}").contains("NaN") {
        assert_eq!(&back, v);
    }
    // Self-contained bytes too.
    assert_eq!(
        Value::from_bytes(&v.to_bytes().unwrap())
            .unwrap()
            .to_bytes()
            .unwrap(),
        v.to_bytes().unwrap()
    );
}

fn buf(bytes: &[u8]) -> Value {
    Value::Buffer(Buffer::copy_from_slice(bytes))
}

#[test]
fn special_numbers_keep_their_bits() {
    for bits in [
        0x8000_0000_0000_0000u64,
        0x7ff8_0000_0000_0000,
        0x7ff0_0000_0000_0001,
        0xfff8_dead_beef_0001,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
        1,
    ] {
        let (bytes, _) = encode(&Value::Float(f64::from_bits(bits))).unwrap();
        match decode_value(&bytes, &[], 0).unwrap() {
            Value::Float(f) => assert_eq!(f.to_bits(), bits),
            other => panic!("{other:?}"),
        }
        let (bytes, _) = encode(&Value::Date(f64::from_bits(bits))).unwrap();
        match decode_value(&bytes, &[], 0).unwrap() {
            Value::Date(f) => assert_eq!(f.to_bits(), bits),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_kind_round_trips() {
    let shared_buf = Value::Shared(Box::new(buf(&[0; 16])));
    let cases = vec![
        Value::String("nul\0inside".into()),
        Value::Utf16(vec![0xdfff, 0xd800]),
        Value::Array(vec![Value::Hole, Value::Hole]),
        Value::Array(vec![
            Value::Shared(Box::new(Value::Object(vec![]))),
            Value::Ref(0),
        ]),
        Value::Shared(Box::new(Value::Array(vec![Value::Ref(0)]))),
        Value::Array(vec![
            Value::View(View {
                kind: ViewKind::Float32,
                buffer: Box::new(shared_buf),
                byte_offset: 4,
                length: 3,
            }),
            Value::View(View {
                kind: ViewKind::BigInt64,
                buffer: Box::new(Value::Ref(0)),
                byte_offset: 8,
                length: 1,
            }),
            Value::View(View {
                kind: ViewKind::DataView,
                buffer: Box::new(Value::Ref(0)),
                byte_offset: 16,
                length: 0,
            }),
        ]),
        Value::Error(Box::new(ErrorValue {
            name: ErrorName::SyntaxError,
            message: Some("m".into()),
            stack: None,
            cause: Some(Value::Error(Box::new(ErrorValue {
                name: ErrorName::UriError,
                cause: Some(Value::Undefined),
                ..Default::default()
            }))),
        })),
        // An error that is its own cause.
        Value::Shared(Box::new(Value::Error(Box::new(ErrorValue {
            cause: Some(Value::Ref(0)),
            ..Default::default()
        })))),
        Value::Map(vec![(
            Value::Shared(Box::new(Value::Set(vec![]))),
            Value::Ref(0),
        )]),
        Value::Boxed(Box::new(Value::Utf16(vec![0xd800]))),
        Value::Shared(Box::new(Value::Boxed(Box::new(Value::Float(-0.0))))),
        Value::Port(7),
        buf(&vec![5u8; 5000]),
        Value::Shared(Box::new(Value::Port(0))),
    ];
    for v in &cases {
        check_round_trip(v);
    }
}

#[test]
fn large_buffers_travel_in_the_side_table_without_a_copy() {
    let big = Buffer::from(vec![1u8; 64 * 1024]);
    let small = Buffer::from(vec![2u8; 1023]);
    let v = Value::Array(vec![
        Value::Buffer(big.clone()),
        Value::Buffer(small.clone()),
    ]);
    let (bytes, buffers) = encode(&v).unwrap();
    assert_eq!(buffers.len(), 1);
    assert!(bytes.len() > 1023 && bytes.len() < 1040);
    let Value::Array(items) = decode_value(&bytes, &buffers, 0).unwrap() else {
        panic!()
    };
    let Value::Buffer(b) = &items[0] else {
        panic!()
    };
    assert_eq!(b.as_ptr(), big.as_ptr());
    // Self-contained bytes inline everything.
    assert!(v.to_bytes().unwrap().len() > 64 * 1024);
}

#[test]
fn encoding_errors_name_the_problem_and_leave_output_untouched() {
    let bad = [
        (Value::Hole, "hole"),
        (Value::Object(vec![("a".into(), Value::Hole)]), "hole"),
        (Value::Ref(0), "shared value 0"),
        (
            Value::Array(vec![Value::Ref(0), Value::Shared(Box::new(Value::Null))]),
            "shared value 0",
        ),
        (Value::Shared(Box::new(Value::Ref(0))), "reference"),
        (
            Value::Shared(Box::new(Value::Shared(Box::new(Value::Null)))),
            "shareable",
        ),
        (Value::Port(8), "transfer list"),
        (
            Value::View(View {
                kind: ViewKind::Uint8,
                buffer: Box::new(Value::Null),
                byte_offset: 0,
                length: 0,
            }),
            "not an ArrayBuffer",
        ),
        (
            Value::View(View {
                kind: ViewKind::Uint32,
                buffer: Box::new(buf(&[0; 7])),
                byte_offset: 0,
                length: 2,
            }),
            "out of bounds",
        ),
        (
            Value::View(View {
                kind: ViewKind::Uint32,
                buffer: Box::new(buf(&[0; 8])),
                byte_offset: u64::MAX,
                length: u64::MAX,
            }),
            "out of bounds",
        ),
        (
            Value::Array(vec![
                Value::Shared(Box::new(Value::Null)),
                Value::View(View {
                    kind: ViewKind::Uint8,
                    buffer: Box::new(Value::Ref(0)),
                    byte_offset: 0,
                    length: 0,
                }),
            ]),
            "not an ArrayBuffer",
        ),
        (Value::Boxed(Box::new(Value::Null)), "boxed"),
        (Value::Boxed(Box::new(Value::Array(vec![]))), "boxed"),
    ];
    for (v, words) in bad {
        let mut out = vec![0xaa];
        let mut buffers = vec![Buffer::new()];
        let e = encode_value(&v, 8, &mut out, &mut buffers).unwrap_err();
        assert!(e.message().contains(words), "{v:?}: {e}");
        assert_eq!(out, [0xaa]);
        assert_eq!(buffers.len(), 1);
    }
}

fn nested(depth: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

#[test]
fn depth_limit_is_enforced_both_ways() {
    check_round_trip(&nested(MAX_DEPTH));
    let e = encode(&nested(MAX_DEPTH + 1)).unwrap_err();
    assert!(e.message().contains("depth"), "{e}");
    // Hand-made deep input: the decoder refuses it without recursing further.
    let mut bytes = vec![0xd9, 0xcb, 0x01];
    bytes.extend(std::iter::repeat_n(0x81, 100_000));
    bytes.push(0xf6);
    assert_eq!(
        decode_value(&bytes, &[], 0).unwrap_err().kind(),
        DecodeErrorKind::DepthLimit
    );
    let mut bytes = vec![0xd9, 0xcb, 0x01];
    bytes.extend(std::iter::repeat_n(0x81, MAX_DEPTH));
    bytes.push(0xf6);
    assert!(decode_value(&bytes, &[], 0).is_ok());
    // Error causes count too.
    let mut v = Value::Null;
    for _ in 0..=MAX_DEPTH {
        v = Value::Error(Box::new(ErrorValue {
            cause: Some(v),
            ..Default::default()
        }));
    }
    assert!(encode(&v).is_err());
}

#[test]
fn hostile_inputs_give_typed_errors() {
    use DecodeErrorKind as K;
    let h = |rest: &[u8]| {
        let mut b = vec![0xd9, 0xcb, 0x01];
        b.extend_from_slice(rest);
        b
    };
    let cases: Vec<(Vec<u8>, K)> = vec![
        (vec![], K::Truncated),
        (vec![0x01], K::Malformed),
        (vec![0xd9, 0xcb, 0x02, 0x01], K::UnsupportedVersion),
        (
            h(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            K::Truncated,
        ),
        (
            h(&[0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            K::Truncated,
        ),
        (
            h(&[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            K::Truncated,
        ),
        (h(&[0x9f, 0xff]), K::Malformed),
        (h(&[0x1c]), K::Malformed),
        (h(&[0xf0]), K::Malformed),
        (h(&[0x62, 0xff, 0xfe]), K::InvalidUtf8),
        (h(&[0xa1, 0x01, 0x02]), K::Malformed),
        (h(&[0xd8, 0x1f, 0xf7]), K::BadTag),
        (h(&[0xd8, 0x1d, 0x00]), K::BadReference),
        (h(&[0xd8, 0x1c, 0xd8, 0x1d, 0x00]), K::BadTag),
        (h(&[0xd9, 0xcb, 0x10, 0x00]), K::PortIndex),
        (h(&[0xd9, 0xcb, 0x11, 0x00]), K::BufferIndex),
        (h(&[0xd9, 0xcb, 0x18, 0x00]), K::BadTag),
        // a length-tracking mark on anything but a view
        (h(&[0xd9, 0xcb, 0x1a, 0x44, 1, 2, 3, 4]), K::Malformed),
        (
            h(&[0xd9, 0xcb, 0x1a, 0xd9, 0xcb, 0x19, 0x82, 0x04, 0x40]),
            K::Malformed,
        ),
        // resizable buffers: not [max, buffer], a buffer past its maximum, no buffer
        (h(&[0xd9, 0xcb, 0x19, 0x44, 1, 2, 3, 4]), K::Malformed),
        (
            h(&[0xd9, 0xcb, 0x19, 0x82, 0x03, 0x44, 1, 2, 3, 4]),
            K::Malformed,
        ),
        (h(&[0xd9, 0xcb, 0x19, 0x82, 0x03, 0x01]), K::Malformed),
        (h(&[0xd9, 0xcb, 0x19, 0x82, 0xf6, 0x40]), K::Malformed),
        (
            h(&[0xd9, 0xcb, 0x19, 0x82, 0x08, 0xd9, 0xcb, 0x11, 0x00]),
            K::BufferIndex,
        ),
        (
            h(&[0xd9, 0xcb, 0x16, 0x83, 0x00, 0x05, 0x44, 1, 2, 3, 4]),
            K::BadView,
        ),
        (h(&[0xd9, 0xcb, 0x16, 0x83, 0x00, 0x00, 0xf6]), K::BadView),
        (h(&[0xc6, 0x00]), K::BadTag),
        (h(&[0x00, 0x00]), K::TrailingBytes),
        (h(&[0xd9, 0xcb, 0x15, 0xf6]), K::Malformed),
        (h(&[0xd9, 0xcb, 0x14, 0x43, 0, 0, 0]), K::Malformed),
        (
            h(&[
                0xd9, 0xcb, 0x12, 0xa1, 0x65, b's', b't', b'a', b'c', b'k', 0x60,
            ]),
            K::Malformed,
        ),
    ];
    for (bytes, kind) in cases {
        let e = decode_value(&bytes, &[], 0).unwrap_err();
        assert_eq!(e.kind(), kind, "{bytes:02x?}: {e}");
        assert!(e.offset() <= bytes.len());
        assert!(!e.to_string().is_empty());
    }
}

/// Tag 0xCB19, a resizable ArrayBuffer (JavaScript keeps its maximum), decodes here as
/// its bytes, inline or from the side table, shared references and views included.
#[test]
fn resizable_buffers_decode_as_their_bytes() {
    let env = |rest: &[u8]| [&[0xd9, 0xcb, 0x01][..], rest].concat();
    let inline = env(&[0xd9, 0xcb, 0x19, 0x82, 0x10, 0x44, 1, 2, 3, 4]);
    assert_eq!(decode_value(&inline, &[], 0).unwrap(), buf(&[1, 2, 3, 4]));
    let side = [Buffer::copy_from_slice(&[9; 1500])];
    let in_side = env(&[
        0xd9, 0xcb, 0x19, 0x82, 0x19, 0x10, 0x00, 0xd9, 0xcb, 0x11, 0x00,
    ]);
    match decode_value(&in_side, &side, 0).unwrap() {
        Value::Buffer(b) => assert_eq!(b.as_ptr(), side[0].as_ptr(), "the side buffer itself"),
        other => panic!("{other:?}"),
    }
    // [the buffer, shared; a Uint8Array over 1..3 of it]
    let views = env(&[
        0x82, 0xd8, 0x1c, 0xd9, 0xcb, 0x19, 0x82, 0x10, 0x44, 1, 2, 3, 4, //
        0xd9, 0xcb, 0x16, 0x83, 0x01, 0x02, 0xd8, 0x40, 0xd8, 0x1d, 0x00,
    ]);
    assert_eq!(
        decode_value(&views, &[], 0).unwrap(),
        Value::Array(vec![
            Value::Shared(Box::new(buf(&[1, 2, 3, 4]))),
            Value::View(View {
                kind: ViewKind::Uint8,
                buffer: Box::new(Value::Ref(0)),
                byte_offset: 1,
                length: 2,
            }),
        ])
    );
}

/// Tag 0xCB1A marks a JavaScript length-tracking view; the view inside says how long it
/// is now, and decodes here as that view.
#[test]
fn length_tracking_views_decode_as_their_view() {
    let bytes = [
        0xd9, 0xcb, 0x01, 0xd9, 0xcb, 0x1a, 0xd9, 0xcb, 0x16, 0x83, 0x01, 0x03, 0xd8, 0x40, //
        0xd9, 0xcb, 0x19, 0x82, 0x10, 0x44, 1, 2, 3, 4,
    ];
    assert_eq!(
        decode_value(&bytes, &[], 0).unwrap(),
        Value::View(View {
            kind: ViewKind::Uint8,
            buffer: Box::new(buf(&[1, 2, 3, 4])),
            byte_offset: 1,
            length: 3,
        })
    );
}

/// Tag 0xCB18 (a SharedArrayBuffer, sharing the sender's memory) is for the Node face:
/// this crate's decoders, and so the C and Python faces, refuse it (a `messageerror`)
/// without touching the buffer, even a valid one.
#[test]
fn shared_memory_is_refused_before_its_buffer_is_read() {
    let side = [Buffer::copy_from_slice(&[1, 2, 3, 4])];
    let bytes = [0xd9, 0xcb, 0x01, 0xd9, 0xcb, 0x18, 0x00];
    let e = decode_value(&bytes, &side, 0).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::BadTag);
    assert_eq!(e.offset(), 3);
    assert!(e.detail().contains("SharedArrayBuffer"), "{e}");
    // as a view's buffer too
    let view = [
        0xd9, 0xcb, 0x01, 0xd9, 0xcb, 0x16, 0x83, 0x00, 0x04, 0xd8, 0x40, 0xd9, 0xcb, 0x18, 0x00,
    ];
    let e = decode_value(&view, &side, 0).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::BadTag);
    assert!(e.detail().contains("SharedArrayBuffer"), "{e}");
}

/// Tag 0xCB1B (a sparse JavaScript array, `[length, {index: value}]`) is for the Node
/// face: the length is not backed by bytes (up to 2^32 - 1 holes), so this crate's
/// decoders refuse it rather than materialize the holes.
#[test]
fn sparse_arrays_are_refused() {
    // [length 2^32 - 1, {4294967294: "x"}]
    let bytes = [
        0xd9, 0xcb, 0x01, 0xd9, 0xcb, 0x1b, 0x82, 0x1a, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x1a, 0xff,
        0xff, 0xff, 0xfe, 0x61, b'x',
    ];
    let e = decode_value(&bytes, &[], 0).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::BadTag);
    assert_eq!(e.offset(), 3);
    assert!(e.detail().contains("sparse array"), "{e}");
    let mut r = Reader::new(&bytes, &[], 0).unwrap();
    assert_eq!(r.next().unwrap_err().kind(), DecodeErrorKind::BadTag);
}

#[test]
fn reader_reports_bounded_lengths() {
    // An array claiming 2^32 elements with 3 bytes left is refused before anyone
    // could reserve memory for it.
    let bytes = [
        0xd9, 0xcb, 0x01, 0x9a, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03,
    ];
    let mut r = Reader::new(&bytes, &[], 0).unwrap();
    assert_eq!(r.next().unwrap_err().kind(), DecodeErrorKind::Truncated);
}

// ---- property tests ----

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Undefined),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
        any::<f64>().prop_map(Value::Float),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(
            |(negative, mut magnitude)| {
                let first = magnitude
                    .iter()
                    .position(|&b| b != 0)
                    .unwrap_or(magnitude.len());
                magnitude.drain(..first);
                Value::BigInt(BigInt {
                    negative: negative && !magnitude.is_empty(),
                    magnitude,
                })
            }
        ),
        ".*".prop_map(Value::String),
        proptest::collection::vec(any::<u16>(), 0..8).prop_map(|mut u| {
            u.push(0xd800); // keep at least one lone surrogate
            Value::Utf16(u)
        }),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Buffer(Buffer::from(b))),
        (0usize..3000).prop_map(|n| Value::Buffer(Buffer::from(vec![3u8; n]))),
        any::<u64>().prop_map(|b| Value::Date(f64::from_bits(b))),
        (-8.64e15f64..8.64e15).prop_map(|ms| Value::Date(ms.trunc())),
        (".*", "[a-z]*").prop_map(|(source, flags)| Value::RegExp { source, flags }),
        (0u32..8).prop_map(Value::Port),
        any::<i32>().prop_map(|i| Value::Boxed(Box::new(Value::Int(i.into())))),
        (0usize..12, 0u64..13, 0u64..6).prop_map(|(k, off, len)| {
            let kind = [
                ViewKind::Int8,
                ViewKind::Uint8,
                ViewKind::Uint8Clamped,
                ViewKind::Int16,
                ViewKind::Uint16,
                ViewKind::Int32,
                ViewKind::Uint32,
                ViewKind::Float16,
                ViewKind::Float32,
                ViewKind::Float64,
                ViewKind::BigInt64,
                ViewKind::DataView,
            ][k];
            let size = (off + len * kind.element_size() as u64) as usize;
            Value::View(View {
                kind,
                buffer: Box::new(Value::Buffer(Buffer::from(vec![1u8; size]))),
                byte_offset: off,
                length: len,
            })
        }),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(
                prop_oneof![4 => inner.clone(), 1 => Just(Value::Hole)],
                0..6
            )
            .prop_map(Value::Array),
            proptest::collection::vec((".*", inner.clone()), 0..5).prop_map(Value::Object),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Set),
            (inner.clone(), any::<bool>(), any::<u8>()).prop_map(|(cause, has_msg, name)| {
                Value::Error(Box::new(ErrorValue {
                    name: ErrorName::from_name(
                        ["Error", "TypeError", "RangeError", "EvalError"][name as usize % 4],
                    ),
                    message: has_msg.then(|| "msg".to_owned()),
                    stack: None,
                    cause: (name % 2 == 0).then_some(cause),
                }))
            }),
        ]
    })
}

/// Turns some containers into shared values and some leaves into references to
/// shared values already begun (so cycles appear), driven by `choices`.
fn add_sharing(v: Value, choices: &[u8], at: &mut usize, shared: &mut u32) -> Value {
    let mut pick = || {
        let c = choices
            .get(*at % choices.len().max(1))
            .copied()
            .unwrap_or(0);
        *at += 1;
        c
    };
    let c = pick();
    let is_container = matches!(
        v,
        Value::Array(_) | Value::Object(_) | Value::Map(_) | Value::Set(_) | Value::Error(_)
    );
    if !is_container && *shared > 0 && c % 7 == 0 && !matches!(v, Value::Hole) {
        return Value::Ref(u32::from(c) % *shared);
    }
    let share = is_container && c % 3 == 0;
    if share {
        *shared += 1;
    }
    let inner = match v {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| add_sharing(i, choices, at, shared))
                .collect(),
        ),
        Value::Object(e) => Value::Object(
            e.into_iter()
                .map(|(k, x)| (k, add_sharing(x, choices, at, shared)))
                .collect(),
        ),
        Value::Map(e) => Value::Map(
            e.into_iter()
                .map(|(k, x)| {
                    let k = add_sharing(k, choices, at, shared);
                    (k, add_sharing(x, choices, at, shared))
                })
                .collect(),
        ),
        Value::Set(items) => Value::Set(
            items
                .into_iter()
                .map(|i| add_sharing(i, choices, at, shared))
                .collect(),
        ),
        Value::Error(mut e) => {
            e.cause = e.cause.map(|c| add_sharing(c, choices, at, shared));
            Value::Error(e)
        }
        other => other,
    };
    if share {
        Value::Shared(Box::new(inner))
    } else {
        inner
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_values_round_trip(v in tree(), choices in proptest::collection::vec(any::<u8>(), 1..64)) {
        let v = add_sharing(v, &choices, &mut 0, &mut 0);
        check_round_trip(&v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), header in any::<bool>()) {
        let mut input = if header { vec![0xd9, 0xcb, 0x01] } else { Vec::new() };
        input.extend_from_slice(&bytes);
        let buffers = [Buffer::from(vec![0u8; 64])];
        if let Ok(v) = decode_value(&input, &buffers, 2) {
            // Whatever decodes must encode again.
            let (mut out, mut side) = (Vec::new(), Vec::new());
            encode_value(&v, 2, &mut out, &mut side).unwrap();
        }
    }

    #[test]
    fn mutated_encodings_never_panic(v in tree(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let (mut bytes, buffers) = encode(&v).unwrap();
        for (i, x) in flips {
            let n = bytes.len();
            bytes[i % n] ^= x;
        }
        let _ = decode_value(&bytes, &buffers, 8);
        for cut in 0..bytes.len().min(64) {
            let _ = decode_value(&bytes[..cut], &buffers, 8);
        }
    }
}
