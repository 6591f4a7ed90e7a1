//! Unit tests of the wire layer (more in core/tests/wire_*.rs).

use super::*;
use crate::{BigInt, ErrorName};

fn round_trip(v: &Value) -> Value {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_value(v, 4, &mut out, &mut buffers).unwrap();
    decode_value(&out, &buffers, 4).unwrap()
}

#[test]
fn w1_message_bytes() {
    let v = Value::Object(vec![
        ("seq".into(), Value::Int(7)),
        ("name".into(), "tick".into()),
    ]);
    let bytes = v.to_bytes().unwrap();
    assert_eq!(
        bytes,
        [
            0xd9, 0xcb, 0x01, 0xa2, 0x63, b's', b'e', b'q', 0x07, 0x64, b'n', b'a', b'm', b'e',
            0x64, b't', b'i', b'c', b'k'
        ]
    );
    assert_eq!(Value::from_bytes(&bytes).unwrap(), v);
}

#[test]
fn scalars_round_trip() {
    for v in [
        Value::Undefined,
        Value::Null,
        Value::Bool(true),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::Float(-0.0),
        Value::Float(f64::INFINITY),
        Value::Float(1.0),
        Value::BigInt(BigInt::from_i128(-(1 << 100))),
        Value::BigInt(BigInt::from_i128(0)),
        Value::String("a\0b".into()),
        Value::Utf16(vec![0xd800, 0x41]),
        Value::Date(1_700_000_000_123.0),
        Value::Date(f64::NAN),
        Value::Date(-0.0),
    ] {
        let back = round_trip(&v);
        match (&v, &back) {
            (Value::Date(a), Value::Date(b)) => assert_eq!(a.to_bits(), b.to_bits()),
            (Value::Float(a), Value::Float(b)) => assert_eq!(a.to_bits(), b.to_bits()),
            _ => assert_eq!(back, v),
        }
    }
}

#[test]
fn errors_name_what_failed() {
    let mut out = Vec::new();
    let mut bufs = Vec::new();
    let e = encode_value(&Value::Hole, 0, &mut out, &mut bufs).unwrap_err();
    assert!(e.message().contains("hole"), "{e}");
    assert!(out.is_empty());
    let e = encode_value(&Value::Ref(0), 0, &mut out, &mut bufs).unwrap_err();
    assert!(e.message().contains("shared value 0"), "{e}");
    let e = encode_value(&Value::Port(2), 2, &mut out, &mut bufs).unwrap_err();
    assert!(e.message().contains("transfer list"), "{e}");
    let err = Value::Error(Box::new(ErrorValue {
        name: ErrorName::TypeError,
        ..Default::default()
    }));
    assert_eq!(round_trip(&err), err);
}

#[test]
fn a_date_over_a_large_negative_integer_is_rounded_once() {
    // tag 1 (seconds) over -1 - (2^53 + 1) = -(2^53 + 2): the integer becomes a double
    // (exactly: it is even), then milliseconds; rounding -1 - arg in two steps gives
    // -2^53 instead
    let v = Value::from_bytes(&[0xd9, 0xcb, 0x01, 0xc1, 0x3b, 0, 0x20, 0, 0, 0, 0, 0, 1]).unwrap();
    let Value::Date(ms) = v else { panic!("{v:?}") };
    assert_eq!(ms, -9_007_199_254_740_994.0 * 1000.0);
}
