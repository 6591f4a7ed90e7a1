//! The fast paths of the wire layer (direct Value encoder, Reader and serde fast
//! paths) give exactly what the general paths give.

use std::collections::BTreeMap;

use channel_messaging::wire::{
    DecodeErrorKind, Writer, decode_serde, decode_value, encode_serde, encode_value, write_value,
};
use channel_messaging::{Buffer, ErrorName, ErrorValue, Value, View, ViewKind};
use proptest::prelude::*;

/// The encoding through the streaming `Writer` (the reference).
fn via_writer(v: &Value, ports: u32) -> Result<(Vec<u8>, Vec<Buffer>), String> {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    let mut w = Writer::new(&mut out, &mut buffers, ports);
    write_value(&mut w, v)
        .and_then(|()| w.finish())
        .map_err(|e| e.to_string())?;
    Ok((out, buffers))
}

fn direct(v: &Value, ports: u32) -> Result<(Vec<u8>, Vec<Buffer>), String> {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_value(v, ports, &mut out, &mut buffers).map_err(|e| e.to_string())?;
    Ok((out, buffers))
}

fn buf(n: usize) -> Value {
    Value::Buffer(Buffer::from(vec![1u8; n]))
}

fn view(kind: ViewKind, buffer: Value, byte_offset: u64, length: u64) -> Value {
    Value::View(View {
        kind,
        buffer: Box::new(buffer),
        byte_offset,
        length,
    })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Undefined),
        Just(Value::Null),
        Just(Value::Hole),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        "[a-zé]{0,30}".prop_map(Value::String),
        (0usize..1500).prop_map(buf),
        (0u32..4).prop_map(Value::Ref),
        (0u32..4).prop_map(Value::Port),
        any::<f64>().prop_map(Value::Date),
        (0u8..4).prop_map(|k| Value::Boxed(Box::new(
            [Value::Int(1), Value::Null, Value::from("s"), Value::Hole][k as usize].clone()
        ))),
        (0u8..6, 0u64..9, 0u64..5).prop_map(|(k, off, len)| {
            let inner = match k {
                0 => buf(8),
                1 => Value::Shared(Box::new(buf(8))),
                2 => Value::Ref(0),
                3 => Value::Null,
                4 => Value::Shared(Box::new(Value::Null)),
                _ => buf(2000),
            };
            view(ViewKind::Uint16, inner, off, len)
        }),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(("[a-c]{0,3}", inner.clone()), 0..4).prop_map(Value::Object),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(Value::Map),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Set),
            inner.clone().prop_map(|v| Value::Shared(Box::new(v))),
            inner.clone().prop_map(|v| Value::Boxed(Box::new(v))),
            (inner.clone(), any::<bool>()).prop_map(|(cause, has)| {
                Value::Error(Box::new(ErrorValue {
                    name: ErrorName::TypeError,
                    message: Some("m".into()),
                    stack: None,
                    cause: has.then_some(cause),
                }))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Valid or not, the direct encoder gives the Writer's bytes, side table and error.
    #[test]
    fn direct_encoder_matches_the_writer(v in tree(), ports in 0u32..3) {
        prop_assert_eq!(direct(&v, ports), via_writer(&v, ports));
        let mut w_out = Vec::new();
        let mut w_bufs = Vec::new();
        let mut w = Writer::new(&mut w_out, &mut w_bufs, u32::MAX).inline_buffers();
        let reference = write_value(&mut w, &v).and_then(|()| w.finish()).map(|()| w_out.clone());
        prop_assert_eq!(
            v.to_bytes().map_err(|e| e.to_string()),
            reference.map_err(|e| e.to_string())
        );
    }

    /// Decoding what was encoded gives it back, with or without the fast paths.
    #[test]
    fn fast_decoding_round_trips(v in tree()) {
        if let Ok((bytes, buffers)) = direct(&v, 4) {
            let back = decode_value(&bytes, &buffers, 4).unwrap();
            let (again, _) = direct(&back, 4).unwrap();
            prop_assert_eq!(again, bytes);
        }
    }
}

fn deep(depth: usize) -> Value {
    let mut v = Value::Int(1);
    for _ in 0..depth {
        v = Value::Object(vec![("a".into(), v)]);
    }
    v
}

#[test]
fn direct_encoder_depth_limit() {
    for depth in [255, 256, 257] {
        assert_eq!(
            direct(&deep(depth), 0),
            via_writer(&deep(depth), 0),
            "{depth}"
        );
        let mut a = Value::Array(vec![]);
        for _ in 0..depth {
            a = Value::Array(vec![a]);
        }
        assert_eq!(direct(&a, 0), via_writer(&a, 0), "{depth}");
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Tick {
    seq: u64,
    name: String,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Outer {
    id: i32,
    tick: Tick,
    note: Option<String>,
    list: Vec<u8>,
    map: BTreeMap<String, i64>,
    pair: (u16, String),
}

#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u8,
}

/// Wraps every value below the top in a shareable mark (tag 28), which turns the
/// fast paths off: the general path must give the same result.
fn shared_everywhere(v: Value) -> Value {
    match v {
        Value::Object(e) => Value::Object(
            e.into_iter()
                .map(|(k, v)| (k, Value::Shared(Box::new(shared_everywhere(v)))))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| Value::Shared(Box::new(shared_everywhere(v))))
                .collect(),
        ),
        v => v,
    }
}

fn bytes_of(v: &Value) -> Vec<u8> {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_value(v, 0, &mut out, &mut buffers).unwrap();
    out
}

#[test]
fn serde_fast_paths_match_the_general_path() {
    let outer = Outer {
        id: -7,
        tick: Tick {
            seq: u64::MAX / 3,
            name: "tické".into(),
        },
        note: Some("n".into()),
        list: vec![1, 2, 3],
        map: [("x".to_owned(), -1), ("é".to_owned(), 1 << 40)].into(),
        pair: (9, "p".into()),
    };
    let (mut bytes, mut buffers) = (Vec::new(), Vec::new());
    encode_serde(&outer, &mut bytes, &mut buffers).unwrap();
    assert_eq!(decode_serde::<Outer>(&bytes, &buffers).unwrap(), outer);
    let v = decode_value(&bytes, &buffers, 0).unwrap();
    let slow = bytes_of(&shared_everywhere(v));
    assert_ne!(slow, bytes);
    assert_eq!(decode_serde::<Outer>(&slow, &[]).unwrap(), outer);

    // None, and a missing field.
    let none = Value::Object(vec![
        ("seq".into(), Value::Int(1)),
        ("name".into(), Value::Null),
    ]);
    for v in [none.clone(), shared_everywhere(none)] {
        let e = decode_serde::<Tick>(&bytes_of(&v), &[]).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::Mismatch, "{e}");
    }
    let missing = Value::Object(vec![("seq".into(), Value::Int(1))]);
    let e = decode_serde::<Tick>(&bytes_of(&missing), &[]).unwrap_err();
    assert!(e.detail().contains("name"), "{e}");
    // Unknown fields are skipped, or refused.
    let extra = Value::Object(vec![
        ("zzz".into(), Value::Array(vec![Value::Int(1)])),
        ("seq".into(), Value::Int(1)),
        ("name".into(), "n".into()),
    ]);
    assert_eq!(
        decode_serde::<Tick>(&bytes_of(&extra), &[]).unwrap(),
        Tick {
            seq: 1,
            name: "n".into()
        }
    );
    let strict = Value::Object(vec![("b".into(), Value::Int(1))]);
    let e = decode_serde::<Strict>(&bytes_of(&strict), &[]).unwrap_err();
    assert!(e.detail().contains("unknown field `b`"), "{e}");
    // A negative number for an unsigned field.
    let neg = Value::Object(vec![
        ("seq".into(), Value::Int(-1)),
        ("name".into(), "n".into()),
    ]);
    assert_eq!(
        decode_serde::<Tick>(&bytes_of(&neg), &[])
            .unwrap_err()
            .kind(),
        DecodeErrorKind::Mismatch
    );
}

#[test]
fn serde_fast_paths_report_bad_input_like_the_general_path() {
    let good = bytes_of(&Value::Object(vec![
        ("seq".into(), Value::Int(1)),
        ("name".into(), "tick".into()),
    ]));
    // Every truncation is an error, never a panic.
    for n in 0..good.len() {
        let e = decode_serde::<Tick>(&good[..n], &[]).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                DecodeErrorKind::Truncated | DecodeErrorKind::Malformed
            ),
            "{n}: {e}"
        );
    }
    // Trailing bytes.
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        decode_serde::<Tick>(&long, &[]).unwrap_err().kind(),
        DecodeErrorKind::TrailingBytes
    );
    // Invalid UTF-8 in a key (same length as a field name) and in a value.
    let mut bad_key = good.clone();
    let at = bad_key.windows(3).position(|w| w == b"seq").unwrap();
    bad_key[at] = 0xff;
    let e = decode_serde::<Tick>(&bad_key, &[]).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::InvalidUtf8);
    assert_eq!(e.offset(), at - 1);
    let mut bad_value = good.clone();
    let at = bad_value.windows(4).position(|w| w == b"tick").unwrap();
    bad_value[at + 1] = 0xc3;
    let e = decode_serde::<Tick>(&bad_value, &[]).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::InvalidUtf8);
    assert_eq!(e.offset(), at - 1);
    let e = decode_value(&bad_value, &[], 0).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::InvalidUtf8);
    assert_eq!(e.offset(), at - 1);
    // A container longer than the input.
    let mut long_map = good.clone();
    long_map[3] = 0xb7; // a map of 23 entries
    assert_eq!(
        decode_serde::<Tick>(&long_map, &[]).unwrap_err().kind(),
        DecodeErrorKind::Truncated
    );
    assert_eq!(
        decode_value(&long_map, &[], 0).unwrap_err().kind(),
        DecodeErrorKind::Truncated
    );
}

#[test]
fn serde_depth_limit_holds_on_the_fast_path() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Nest {
        a: Option<Box<Nest>>,
    }
    let ok = bytes_of(&deep(256).clone());
    // The innermost value is an integer, not a Nest: a mismatch, but not a depth error.
    let e = decode_serde::<Nest>(&ok, &[]).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::Mismatch, "{e}");
    // 257 nested objects, written by hand (encoders refuse them).
    let mut bytes = vec![0xd9, 0xcb, 0x01];
    for _ in 0..257 {
        bytes.extend_from_slice(&[0xa1, 0x61, b'a']);
    }
    bytes.push(0xf6);
    let e = decode_serde::<Nest>(&bytes, &[]).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::DepthLimit, "{e}");
    let e = decode_value(&bytes, &[], 0).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::DepthLimit, "{e}");
}
