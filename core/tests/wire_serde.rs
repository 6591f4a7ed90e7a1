//! serde: any `T: Serialize` encodes, any `T: DeserializeOwned` decodes, and the two
//! paths agree with `Value`.

use std::collections::{BTreeMap, HashMap};

use channel_messaging::wire::{
    DecodeErrorKind, decode_serde, decode_value, encode_serde, encode_value,
};
use channel_messaging::{BigInt, Buffer, Value};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Tick {
    seq: u64,
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Unit,
    Newtype(i32),
    Tuple(i8, String),
    Struct { w: f64, h: Option<u8> },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Everything {
    b: bool,
    small: i8,
    big: u64,
    huge: u128,
    neg: i128,
    f: f32,
    c: char,
    none: Option<String>,
    some: Option<Vec<u16>>,
    unit: (),
    tuple: (u8, String, bool),
    shapes: Vec<Shape>,
    #[serde(with = "bytes_as_bytes")]
    bytes: Vec<u8>,
    by_int: HashMap<u32, String>,
    by_str: BTreeMap<String, i64>,
}

mod bytes_as_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

fn enc<T: Serialize + ?Sized>(v: &T) -> (Vec<u8>, Vec<Buffer>) {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_serde(v, &mut out, &mut buffers).unwrap();
    (out, buffers)
}

#[test]
fn value_object_decodes_into_struct_and_back() {
    let v = Value::Object(vec![
        ("seq".into(), Value::Int(3)),
        ("name".into(), "tick".into()),
    ]);
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_value(&v, 0, &mut out, &mut buffers).unwrap();
    let t: Tick = decode_serde(&out, &buffers).unwrap();
    assert_eq!(
        t,
        Tick {
            seq: 3,
            name: "tick".into()
        }
    );
    let (bytes, _) = enc(&t);
    assert_eq!(bytes, out, "serde and Value write the same bytes");
    assert_eq!(decode_value(&bytes, &[], 0).unwrap(), v);
}

#[test]
fn everything_round_trips() {
    let e = Everything {
        b: true,
        small: -3,
        big: u64::MAX,
        huge: u128::MAX,
        neg: i128::MIN,
        f: 1.25,
        c: 'é',
        none: None,
        some: Some(vec![1, 2]),
        unit: (),
        tuple: (1, "x".into(), false),
        shapes: vec![
            Shape::Unit,
            Shape::Newtype(-1),
            Shape::Tuple(2, "t".into()),
            Shape::Struct { w: 0.5, h: None },
        ],
        bytes: vec![7; 4096],
        by_int: [(1, "one".to_owned())].into_iter().collect(),
        by_str: [("k".to_owned(), -9)].into_iter().collect(),
    };
    let (bytes, buffers) = enc(&e);
    assert_eq!(buffers.len(), 1, "4 KiB of bytes go to the side table");
    let back: Everything = decode_serde(&bytes, &buffers).unwrap();
    assert_eq!(back, e);

    // The same bytes as a Value.
    let v = decode_value(&bytes, &buffers, 0).unwrap();
    assert_eq!(
        v.get("big"),
        Some(&Value::BigInt(BigInt::from_i128(u64::MAX.into())))
    );
    assert_eq!(v.get("none"), Some(&Value::Null));
    assert_eq!(v.get("unit"), Some(&Value::Null));
    assert!(matches!(v.get("bytes"), Some(Value::Buffer(b)) if b.len() == 4096));
    assert!(
        matches!(v.get("by_int"), Some(Value::Map(_))),
        "{:?}",
        v.get("by_int")
    );
    assert!(matches!(v.get("by_str"), Some(Value::Object(_))));
    let Some(Value::Array(shapes)) = v.get("shapes") else {
        panic!()
    };
    assert_eq!(shapes[0], Value::from("Unit"));
    assert_eq!(
        shapes[1],
        Value::Object(vec![("Newtype".into(), Value::Int(-1))])
    );
}

#[test]
fn unknown_length_sequences_and_maps() {
    struct Lazy(usize);
    impl Serialize for Lazy {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..self.0).filter(|_| true))
        }
    }
    for n in [0, 5, 23, 24, 300, 70000] {
        let (bytes, _) = enc(&Lazy(n));
        let back: Vec<usize> = decode_serde(&bytes, &[]).unwrap();
        assert_eq!(back, (0..n).collect::<Vec<_>>());
    }
    struct LazyMap;
    impl Serialize for LazyMap {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map((0..30).filter(|_| true).map(|i| (i, i * 2)))
        }
    }
    let (bytes, _) = enc(&LazyMap);
    let back: BTreeMap<i32, i32> = decode_serde(&bytes, &[]).unwrap();
    assert_eq!(back.len(), 30);
    assert!(matches!(decode_value(&bytes, &[], 0).unwrap(), Value::Map(m) if m.len() == 30));
}

#[test]
fn values_decode_into_serde_types() {
    let cases: Vec<(Value, &str)> = vec![
        (Value::Set(vec![Value::Int(1), Value::Int(2)]), "[1,2]"),
        (Value::Boxed(Box::new(Value::from("s"))), "\"s\""),
        (Value::Array(vec![Value::Int(1), Value::Hole]), "[1,null]"),
        (Value::Date(1.5), "1.5"),
        (Value::Undefined, "null"),
        (
            Value::RegExp {
                source: "a".into(),
                flags: "g".into(),
            },
            "{\"flags\":\"g\",\"source\":\"a\"}",
        ),
        (
            Value::Error(Box::new(channel_messaging::ErrorValue {
                message: Some("m".into()),
                cause: Some(Value::Int(1)),
                ..Default::default()
            })),
            "{\"cause\":1,\"message\":\"m\",\"name\":\"Error\"}",
        ),
        // [o, o] reads o twice.
        (
            Value::Array(vec![
                Value::Shared(Box::new(Value::Object(vec![("a".into(), Value::Int(1))]))),
                Value::Ref(0),
            ]),
            "[{\"a\":1},{\"a\":1}]",
        ),
    ];
    // (serde_json's map sorts keys.)
    for (v, want) in cases {
        let (mut out, mut buffers) = (Vec::new(), Vec::new());
        encode_value(&v, 0, &mut out, &mut buffers).unwrap();
        let j: serde_json::Value =
            decode_serde(&out, &buffers).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(j.to_string(), want);
    }
}

#[test]
fn mismatches_and_cycles_are_errors() {
    let (bytes, _) = enc(&Tick {
        seq: 1,
        name: "x".into(),
    });
    let e = decode_serde::<Vec<u8>>(&bytes, &[]).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::Mismatch);
    let e = decode_serde::<(u64,)>(&enc(&(1, 2)).0, &[]).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::Mismatch);

    let cycle = Value::Shared(Box::new(Value::Array(vec![Value::Ref(0)])));
    let bytes = cycle.to_bytes().unwrap();
    assert!(decode_serde::<serde_json::Value>(&bytes, &[]).is_err());

    // Exponential fan-out through references stays bounded.
    let mut items = vec![Value::Shared(Box::new(Value::Array(vec![])))];
    for i in 0..40u32 {
        items.push(Value::Shared(Box::new(Value::Array(vec![
            Value::Ref(i),
            Value::Ref(i),
        ]))));
    }
    let bytes = Value::Array(items).to_bytes().unwrap();
    assert!(decode_serde::<serde_json::Value>(&bytes, &[]).is_err());
    assert!(decode_serde::<serde_json::Value>(&Value::Port(0).to_bytes().unwrap(), &[]).is_err());
}

#[test]
fn serde_depth_limit() {
    let mut v = serde_json::Value::Null;
    for _ in 0..300 {
        v = serde_json::Value::Array(vec![v]);
    }
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    assert!(encode_serde(&v, &mut out, &mut buffers).is_err());
    assert!(out.is_empty());
}

#[test]
fn serde_decodes_the_deepest_allowed_nesting() {
    let mut v = Value::Null;
    for _ in 0..channel_messaging::wire::MAX_DEPTH {
        v = Value::Array(vec![v]);
    }
    let bytes = v.to_bytes().unwrap();
    let j: serde_json::Value = decode_serde(&bytes, &[]).unwrap();
    assert!(j.is_array());
}
