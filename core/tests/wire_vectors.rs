//! Golden vectors (tests/vectors/): every vector decodes to its expected value, and
//! encoding that value reproduces the bytes exactly.
//!
//! Regenerate with `UPDATE_VECTORS=1 cargo test -p channel-messaging --test wire_vectors`.

use std::path::PathBuf;

use channel_messaging::wire::{DecodeErrorKind, Reader, decode_value, encode_value};
use channel_messaging::{BigInt, Buffer, ErrorName, ErrorValue, Value, View, ViewKind};
use serde_json::{Value as Json, json};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn buf(bytes: &[u8]) -> Value {
    Value::Buffer(Buffer::copy_from_slice(bytes))
}

fn err(name: ErrorName, message: Option<&str>, stack: Option<&str>, cause: Option<Value>) -> Value {
    Value::Error(Box::new(ErrorValue {
        name,
        message: message.map(Into::into),
        stack: stack.map(Into::into),
        cause,
    }))
}

/// (name, description, value, port count)
fn vectors() -> Vec<(&'static str, &'static str, Value, u32)> {
    let big: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    vec![
        ("undefined", "undefined (simple 23)", Value::Undefined, 0),
        ("null", "null", Value::Null, 0),
        ("true", "true", Value::Bool(true), 0),
        ("false", "false", Value::Bool(false), 0),
        ("int_zero", "the integer 0", Value::Int(0), 0),
        (
            "int_small",
            "the integer 23 (one-byte head)",
            Value::Int(23),
            0,
        ),
        ("int_negative", "the integer -500", Value::Int(-500), 0),
        ("int_max", "i64::MAX", Value::Int(i64::MAX), 0),
        ("int_min", "i64::MIN", Value::Int(i64::MIN), 0),
        (
            "float_half",
            "1.5 as a float (f16 on the wire)",
            Value::Float(1.5),
            0,
        ),
        (
            "float_one",
            "1.0 stays a float (f16 0x3c00), not an integer",
            Value::Float(1.0),
            0,
        ),
        (
            "float_single",
            "100000.5 (f32 on the wire)",
            Value::Float(100000.5),
            0,
        ),
        (
            "float_double",
            "0.1 (f64 on the wire)",
            Value::Float(0.1),
            0,
        ),
        ("float_neg_zero", "-0.0", Value::Float(-0.0), 0),
        (
            "float_nan",
            "the canonical quiet NaN 0x7ff8000000000000",
            Value::Float(f64::NAN),
            0,
        ),
        (
            "float_nan_payload",
            "a NaN with payload bits 0x7ff0000000000001 (kept bit for bit)",
            Value::Float(f64::from_bits(0x7ff0_0000_0000_0001)),
            0,
        ),
        ("float_inf", "+Infinity", Value::Float(f64::INFINITY), 0),
        (
            "float_neg_inf",
            "-Infinity",
            Value::Float(f64::NEG_INFINITY),
            0,
        ),
        ("bigint_zero", "0n", Value::BigInt(BigInt::from_i128(0)), 0),
        (
            "bigint_small",
            "5n (a BigInt, not a number)",
            Value::BigInt(BigInt::from_i128(5)),
            0,
        ),
        (
            "bigint_negative",
            "-256n (tag 3 holds 255)",
            Value::BigInt(BigInt::from_i128(-256)),
            0,
        ),
        (
            "bigint_large",
            "2^100 n",
            Value::BigInt(BigInt::from_i128(1 << 100)),
            0,
        ),
        (
            "bigint_huge_negative",
            "-(2^128)n, beyond i128",
            Value::BigInt(BigInt {
                negative: true,
                magnitude: {
                    let mut m = vec![1u8];
                    m.extend([0u8; 16]);
                    m
                },
            }),
            0,
        ),
        ("string_empty", "the empty string", s(""), 0),
        ("string_ascii", "\"hello\"", s("hello"), 0),
        (
            "string_unicode",
            "a string with non-ASCII characters and an astral one",
            s("héllo wörld \u{1F600}"),
            0,
        ),
        (
            "string_nul",
            "a string holding NUL characters",
            s("a\0b\0"),
            0,
        ),
        (
            "string_bom",
            "a string starting with U+FEFF (a character like any other, never dropped)",
            s("\u{feff}tick"),
            0,
        ),
        (
            "utf16_lone_high",
            "a string with a lone high surrogate: 'a', U+D800, 'b'",
            Value::Utf16(vec![0x61, 0xd800, 0x62]),
            0,
        ),
        (
            "utf16_lone_low",
            "a string that is a lone low surrogate U+DC00",
            Value::Utf16(vec![0xdc00]),
            0,
        ),
        (
            "boxed_number",
            "new Number(42)",
            Value::Boxed(Box::new(Value::Int(42))),
            0,
        ),
        (
            "boxed_string",
            "new String(\"s\")",
            Value::Boxed(Box::new(s("s"))),
            0,
        ),
        (
            "boxed_bool",
            "new Boolean(false)",
            Value::Boxed(Box::new(Value::Bool(false))),
            0,
        ),
        (
            "boxed_bigint",
            "Object(7n)",
            Value::Boxed(Box::new(Value::BigInt(BigInt::from_i128(7)))),
            0,
        ),
        ("buffer_empty", "an empty ArrayBuffer", buf(&[]), 0),
        (
            "buffer_small",
            "an ArrayBuffer of 4 bytes, inline",
            buf(&[1, 2, 3, 255]),
            0,
        ),
        (
            "buffer_side_table",
            "a 2048-byte ArrayBuffer (bytes i % 251), in the side table as buffer 0",
            buf(&big),
            0,
        ),
        (
            "view_uint8",
            "a Uint8Array of 2 elements at byte offset 1 of a 4-byte buffer",
            Value::View(View {
                kind: ViewKind::Uint8,
                buffer: Box::new(buf(&[9, 8, 7, 6])),
                byte_offset: 1,
                length: 2,
            }),
            0,
        ),
        (
            "view_float64",
            "a Float64Array of 1 element over an 8-byte buffer holding 1.0 (little-endian)",
            Value::View(View {
                kind: ViewKind::Float64,
                buffer: Box::new(buf(&1.0f64.to_le_bytes())),
                byte_offset: 0,
                length: 1,
            }),
            0,
        ),
        (
            "view_dataview",
            "a DataView of 3 bytes at offset 0 of a 3-byte buffer",
            Value::View(View {
                kind: ViewKind::DataView,
                buffer: Box::new(buf(&[1, 2, 3])),
                byte_offset: 0,
                length: 3,
            }),
            0,
        ),
        (
            "views_share_buffer",
            "[Uint8Array over buffer b, Int16Array over the same b]: one buffer, two views",
            Value::Array(vec![
                Value::View(View {
                    kind: ViewKind::Uint8,
                    buffer: Box::new(Value::Shared(Box::new(buf(&[1, 2, 3, 4])))),
                    byte_offset: 0,
                    length: 4,
                }),
                Value::View(View {
                    kind: ViewKind::Int16,
                    buffer: Box::new(Value::Ref(0)),
                    byte_offset: 2,
                    length: 1,
                }),
            ]),
            0,
        ),
        ("array_empty", "[]", Value::Array(vec![]), 0),
        (
            "array_mixed",
            "[1, \"two\", null, undefined, true]",
            Value::Array(vec![
                Value::Int(1),
                s("two"),
                Value::Null,
                Value::Undefined,
                Value::Bool(true),
            ]),
            0,
        ),
        (
            "array_holes",
            "[1, <hole>, 3, <hole>]: a sparse array",
            Value::Array(vec![Value::Int(1), Value::Hole, Value::Int(3), Value::Hole]),
            0,
        ),
        (
            "array_nested",
            "[[[]]]",
            Value::Array(vec![Value::Array(vec![Value::Array(vec![])])]),
            0,
        ),
        ("object_empty", "{}", obj(vec![]), 0),
        (
            "object_w1",
            "the W1 message {\"seq\": 7, \"name\": \"tick\"}",
            obj(vec![("seq", Value::Int(7)), ("name", s("tick"))]),
            0,
        ),
        (
            "object_nested",
            "{\"a\": {\"b\": [1]}, \"\": null}: nested, with an empty key, insertion order kept",
            obj(vec![
                ("a", obj(vec![("b", Value::Array(vec![Value::Int(1)]))])),
                ("", Value::Null),
            ]),
            0,
        ),
        (
            "map_any_keys",
            "new Map([[1, \"one\"], [\"1\", \"string one\"], [{}, null]]) (tag 259)",
            Value::Map(vec![
                (Value::Int(1), s("one")),
                (s("1"), s("string one")),
                (obj(vec![]), Value::Null),
            ]),
            0,
        ),
        ("map_empty", "new Map()", Value::Map(vec![]), 0),
        (
            "set",
            "new Set([1, \"a\", 2.5])",
            Value::Set(vec![Value::Int(1), s("a"), Value::Float(2.5)]),
            0,
        ),
        (
            "date_seconds",
            "new Date(1700000000000): whole seconds, tag 1 with an integer",
            Value::Date(1_700_000_000_000.0),
            0,
        ),
        (
            "date_millis",
            "new Date(1700000000123): tag 1 with a float when seconds*1000 is exact",
            Value::Date(1_700_000_000_123.0),
            0,
        ),
        (
            "date_inexact",
            "new Date(1001): 1.001 * 1000 is not exactly 1001 in doubles, so the private milliseconds tag",
            Value::Date(1001.0),
            0,
        ),
        (
            "date_invalid",
            "an invalid Date (NaN time value)",
            Value::Date(f64::NAN),
            0,
        ),
        (
            "regexp",
            "/a+b/gi",
            Value::RegExp {
                source: "a+b".into(),
                flags: "gi".into(),
            },
            0,
        ),
        (
            "error_plain",
            "new Error() with no message",
            err(ErrorName::Error, None, None, None),
            0,
        ),
        (
            "error_full",
            "a TypeError with message, stack and cause",
            err(
                ErrorName::TypeError,
                Some("bad"),
                Some("TypeError: bad\n    at f"),
                Some(s("why")),
            ),
            0,
        ),
        (
            "error_nested_cause",
            "a RangeError whose cause is an Error whose cause is 1",
            err(
                ErrorName::RangeError,
                Some("outer"),
                None,
                Some(err(
                    ErrorName::Error,
                    Some("inner"),
                    None,
                    Some(Value::Int(1)),
                )),
            ),
            0,
        ),
        (
            "shared_twice",
            "x = {}; [x, x]: tag 28 then tag 29",
            Value::Array(vec![Value::Shared(Box::new(obj(vec![]))), Value::Ref(0)]),
            0,
        ),
        (
            "cycle_array",
            "a = []; a.push(a)",
            Value::Shared(Box::new(Value::Array(vec![Value::Ref(0)]))),
            0,
        ),
        (
            "cycle_object",
            "o = {}; o.self = o; o.name = \"o\"",
            Value::Shared(Box::new(obj(vec![
                ("self", Value::Ref(0)),
                ("name", s("o")),
            ]))),
            0,
        ),
        (
            "shared_numbering",
            "[a, b, a, b] with a = [] and b = {}: ids 0 and 1 in order of their marks",
            Value::Array(vec![
                Value::Shared(Box::new(Value::Array(vec![]))),
                Value::Shared(Box::new(obj(vec![]))),
                Value::Ref(0),
                Value::Ref(1),
            ]),
            0,
        ),
        (
            "shared_dates",
            "[d, e, d, e] with d = new Date(1000) (tag 1) and e = new Date(1001) (tag 0xCB17)",
            Value::Array(vec![
                Value::Shared(Box::new(Value::Date(1000.0))),
                Value::Shared(Box::new(Value::Date(1001.0))),
                Value::Ref(0),
                Value::Ref(1),
            ]),
            0,
        ),
        (
            "ports",
            "{\"port\": <port 0>, \"other\": <port 1>} with 2 ports transferred",
            obj(vec![("port", Value::Port(0)), ("other", Value::Port(1))]),
            2,
        ),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn kind_name(k: ViewKind) -> &'static str {
    match k {
        ViewKind::Int8 => "Int8Array",
        ViewKind::Uint8 => "Uint8Array",
        ViewKind::Uint8Clamped => "Uint8ClampedArray",
        ViewKind::Int16 => "Int16Array",
        ViewKind::Uint16 => "Uint16Array",
        ViewKind::Int32 => "Int32Array",
        ViewKind::Uint32 => "Uint32Array",
        ViewKind::Float16 => "Float16Array",
        ViewKind::Float32 => "Float32Array",
        ViewKind::Float64 => "Float64Array",
        ViewKind::BigInt64 => "BigInt64Array",
        ViewKind::BigUint64 => "BigUint64Array",
        ViewKind::DataView => "DataView",
        _ => unreachable!(),
    }
}

const KINDS: [ViewKind; 13] = [
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
    ViewKind::BigUint64,
    ViewKind::DataView,
];

/// The language-neutral notation of tests/vectors/README.md.
fn to_json(v: &Value) -> Json {
    match v {
        Value::Undefined => json!({"undefined": null}),
        Value::Null => json!({"null": null}),
        Value::Bool(b) => json!({"bool": b}),
        Value::Int(i) => json!({"int": i.to_string()}),
        Value::Float(f) => json!({"float": format!("{:016x}", f.to_bits())}),
        Value::BigInt(b) => {
            json!({"bigint": {"negative": b.negative, "magnitude": hex(&b.magnitude)}})
        }
        Value::String(s) => json!({"string": s}),
        Value::Utf16(u) => json!({"utf16": u}),
        Value::Boxed(b) => json!({"boxed": to_json(b)}),
        Value::Buffer(b) => json!({"buffer": hex(b)}),
        Value::View(v) => {
            json!({"view": {"kind": kind_name(v.kind), "byte_offset": v.byte_offset, "length": v.length, "buffer": to_json(&v.buffer)}})
        }
        Value::Array(a) => json!({"array": a.iter().map(to_json).collect::<Vec<_>>()}),
        Value::Hole => json!({"hole": null}),
        Value::Object(e) => {
            json!({"object": e.iter().map(|(k, v)| json!([k, to_json(v)])).collect::<Vec<_>>()})
        }
        Value::Map(e) => {
            json!({"map": e.iter().map(|(k, v)| json!([to_json(k), to_json(v)])).collect::<Vec<_>>()})
        }
        Value::Set(a) => json!({"set": a.iter().map(to_json).collect::<Vec<_>>()}),
        Value::Date(ms) => json!({"date": format!("{:016x}", ms.to_bits())}),
        Value::RegExp { source, flags } => json!({"regexp": {"source": source, "flags": flags}}),
        Value::Error(e) => {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), json!(e.name.as_str()));
            if let Some(x) = &e.message {
                m.insert("message".into(), json!(x));
            }
            if let Some(x) = &e.stack {
                m.insert("stack".into(), json!(x));
            }
            if let Some(x) = &e.cause {
                m.insert("cause".into(), to_json(x));
            }
            json!({"error": m})
        }
        Value::Shared(v) => json!({"shared": to_json(v)}),
        Value::Ref(n) => json!({"ref": n}),
        Value::Port(i) => json!({"port": i}),
    }
}

fn from_json(j: &Json) -> Value {
    let (k, v) = j.as_object().unwrap().iter().next().unwrap();
    let f64_hex = |v: &Json| f64::from_bits(u64::from_str_radix(v.as_str().unwrap(), 16).unwrap());
    let list = |v: &Json| {
        v.as_array()
            .unwrap()
            .iter()
            .map(from_json)
            .collect::<Vec<_>>()
    };
    match k.as_str() {
        "undefined" => Value::Undefined,
        "null" => Value::Null,
        "bool" => Value::Bool(v.as_bool().unwrap()),
        "int" => Value::Int(v.as_str().unwrap().parse().unwrap()),
        "float" => Value::Float(f64_hex(v)),
        "bigint" => Value::BigInt(BigInt {
            negative: v["negative"].as_bool().unwrap(),
            magnitude: unhex(v["magnitude"].as_str().unwrap()),
        }),
        "string" => Value::String(v.as_str().unwrap().into()),
        "utf16" => Value::Utf16(
            v.as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_u64().unwrap() as u16)
                .collect(),
        ),
        "boxed" => Value::Boxed(Box::new(from_json(v))),
        "buffer" => Value::Buffer(Buffer::from(unhex(v.as_str().unwrap()))),
        "view" => Value::View(View {
            kind: *KINDS.iter().find(|k| kind_name(**k) == v["kind"]).unwrap(),
            byte_offset: v["byte_offset"].as_u64().unwrap(),
            length: v["length"].as_u64().unwrap(),
            buffer: Box::new(from_json(&v["buffer"])),
        }),
        "array" => Value::Array(list(v)),
        "hole" => Value::Hole,
        "object" => Value::Object(
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().to_owned(), from_json(&p[1])))
                .collect(),
        ),
        "map" => Value::Map(
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| (from_json(&p[0]), from_json(&p[1])))
                .collect(),
        ),
        "set" => Value::Set(list(v)),
        "date" => Value::Date(f64_hex(v)),
        "regexp" => Value::RegExp {
            source: v["source"].as_str().unwrap().into(),
            flags: v["flags"].as_str().unwrap().into(),
        },
        "error" => err(
            ErrorName::from_name(v["name"].as_str().unwrap()),
            v.get("message").map(|m| m.as_str().unwrap()),
            v.get("stack").map(|m| m.as_str().unwrap()),
            v.get("cause").map(from_json),
        ),
        "shared" => Value::Shared(Box::new(from_json(v))),
        "ref" => Value::Ref(v.as_u64().unwrap() as u32),
        "port" => Value::Port(v.as_u64().unwrap() as u32),
        other => panic!("unknown kind {other}"),
    }
}

/// Values compared with floats by bits (NaN == NaN when the bits agree).
fn same(a: &Value, b: &Value) -> bool {
    to_json(a) == to_json(b)
}

fn encode(v: &Value, ports: u32) -> (Vec<u8>, Vec<Buffer>) {
    let (mut out, mut buffers) = (Vec::new(), Vec::new());
    encode_value(v, ports, &mut out, &mut buffers).unwrap();
    (out, buffers)
}

#[test]
fn golden_vectors() {
    let dir = dir();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        let mut manifest = Vec::new();
        for (name, description, value, ports) in vectors() {
            let (bytes, buffers) = encode(&value, ports);
            let file = format!("{name}.cbor");
            std::fs::write(dir.join(&file), &bytes).unwrap();
            let mut buffer_files = Vec::new();
            for (i, b) in buffers.iter().enumerate() {
                let f = format!("{name}.buf{i}");
                std::fs::write(dir.join(&f), b.as_slice()).unwrap();
                buffer_files.push(f);
            }
            manifest.push(json!({
                "name": name, "file": file, "description": description, "hex": hex(&bytes),
                "buffers": buffer_files, "ports": ports, "value": to_json(&value),
            }));
        }
        let text = serde_json::to_string_pretty(&json!({"format_version": 1, "vectors": manifest}))
            .unwrap();
        std::fs::write(dir.join("vectors.json"), text + "\n").unwrap();
    }

    let manifest: Json =
        serde_json::from_slice(&std::fs::read(dir.join("vectors.json")).unwrap()).unwrap();
    let listed = manifest["vectors"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        vectors().len(),
        "manifest out of date: run with UPDATE_VECTORS=1"
    );
    for (entry, (name, _, value, ports)) in listed.iter().zip(vectors()) {
        assert_eq!(
            entry["name"], name,
            "manifest out of date: run with UPDATE_VECTORS=1"
        );
        let bytes = std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap();
        let buffers: Vec<Buffer> = entry["buffers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| Buffer::from(std::fs::read(dir.join(f.as_str().unwrap())).unwrap()))
            .collect();
        assert_eq!(
            entry["hex"].as_str().unwrap(),
            hex(&bytes),
            "{name}: hex and file differ"
        );
        let expected = from_json(&entry["value"]);
        assert!(
            same(&expected, &value),
            "{name}: manifest value differs from the test's"
        );
        let port_count = entry["ports"].as_u64().unwrap() as u32;
        assert_eq!(port_count, ports);

        let decoded =
            decode_value(&bytes, &buffers, port_count).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(same(&decoded, &expected), "{name}: decoded {decoded:?}");
        let (again, again_buffers) = encode(&expected, port_count);
        assert_eq!(hex(&again), hex(&bytes), "{name}: re-encoding differs");
        assert_eq!(again_buffers, buffers, "{name}: side table differs");

        // Every proper prefix is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                decode_value(&bytes[..cut], &buffers, port_count).is_err(),
                "{name}: prefix {cut} decoded"
            );
        }
        // Every single-byte mutation decodes or fails cleanly.
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x20, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] ^= flip;
                let _ = decode_value(&m, &buffers, port_count);
            }
        }
    }
}

/// Invalid messages (tests/vectors/invalid.json): every decoder must refuse each with the
/// error kind given (the web's messageerror), whatever it makes of the rest. Messages only
/// the Node face reads (shared memory, sparse arrays) are not among them.
struct Invalid {
    name: &'static str,
    description: &'static str,
    hex: String,
    /// The side table, each buffer in hex.
    buffers: Vec<&'static str>,
    ports: u32,
    kind: DecodeErrorKind,
}

/// An invalid message without side table or ports.
fn bad(
    name: &'static str,
    description: &'static str,
    hex: String,
    kind: DecodeErrorKind,
) -> Invalid {
    Invalid {
        name,
        description,
        hex,
        buffers: Vec::new(),
        ports: 0,
        kind,
    }
}

fn invalid_vectors() -> Vec<Invalid> {
    use DecodeErrorKind as K;
    let v1 = |body: &str| format!("d9cb01{body}");
    let deep = |n: usize| v1(&("81".repeat(n) + "f6"));
    vec![
        bad("empty", "no bytes at all", String::new(), K::Truncated),
        bad(
            "no_envelope",
            "a value without the 0xCB01 envelope",
            "a0".to_owned(),
            K::Malformed,
        ),
        bad(
            "envelope_only",
            "the envelope with no value",
            v1(""),
            K::Truncated,
        ),
        bad(
            "other_version",
            "the envelope of format version 2",
            "d9cb02f6".to_owned(),
            K::UnsupportedVersion,
        ),
        bad(
            "trailing_bytes",
            "a second value after the message",
            v1("f6f6"),
            K::TrailingBytes,
        ),
        bad(
            "array_cut_short",
            "an array of 2 with one element",
            v1("8201"),
            K::Truncated,
        ),
        bad(
            "text_cut_short",
            "a 5-byte text with 2 bytes",
            v1("656162"),
            K::Truncated,
        ),
        bad(
            "head_cut_short",
            "an 8-byte integer head with 2 bytes",
            v1("1b0000"),
            K::Truncated,
        ),
        bad(
            "count_past_the_end",
            "an array head claiming 2^32 - 1 elements",
            v1("9affffffff"),
            K::Truncated,
        ),
        bad(
            "reserved_additional_info",
            "additional information 28",
            v1("1c"),
            K::Malformed,
        ),
        bad(
            "indefinite_length_array",
            "an indefinite-length array",
            v1("9ff6ff"),
            K::Malformed,
        ),
        bad(
            "reserved_simple_value",
            "simple value 24 (0xf8)",
            v1("f820"),
            K::Malformed,
        ),
        bad(
            "object_key_not_text",
            "a plain object with an integer key",
            v1("a10102"),
            K::Malformed,
        ),
        bad(
            "invalid_utf8",
            "a text string that is not UTF-8",
            v1("62c328"),
            K::InvalidUtf8,
        ),
        bad(
            "invalid_utf8_key",
            "an object key that is not UTF-8",
            v1("a162c32801"),
            K::InvalidUtf8,
        ),
        bad(
            "utf16_odd_length",
            "tag 0xCB14 over 3 bytes",
            v1("d9cb1443610062"),
            K::Malformed,
        ),
        bad(
            "regexp_three_items",
            "a RegExp of [source, flags, extra]",
            v1("d9cb1383616161676160"),
            K::Malformed,
        ),
        bad(
            "regexp_invalid_pattern_is_text",
            "a RegExp whose source is a number",
            v1("d9cb13820160"),
            K::Malformed,
        ),
        bad(
            "date_over_text",
            "tag 1 over a text string",
            v1("c16130"),
            K::Malformed,
        ),
        bad(
            "boxed_over_array",
            "a boxed primitive over an array",
            v1("d9cb1580"),
            K::Malformed,
        ),
        bad(
            "error_unknown_key",
            "an Error map with the key \"code\"",
            v1("d9cb12a2646e616d65654572726f7264636f646501"),
            K::Malformed,
        ),
        bad(
            "error_without_name",
            "an Error map without \"name\"",
            v1("d9cb12a1676d65737361676561"),
            K::Malformed,
        ),
        bad(
            "resizable_max_below_length",
            "a resizable buffer of 2 bytes with maximum 1",
            v1("d9cb19820142aabb"),
            K::Malformed,
        ),
        bad(
            "length_tracking_not_a_view",
            "tag 0xCB1A around a byte string",
            v1("d9cb1a40"),
            K::Malformed,
        ),
        bad(
            "unknown_tag",
            "private tag 0xCB3F",
            v1("d9cb3ff6"),
            K::BadTag,
        ),
        bad(
            "hole_outside_an_array",
            "a hole as the whole message",
            v1("d81ff7"),
            K::BadTag,
        ),
        bad(
            "hole_in_an_object",
            "a hole as an object's value",
            v1("a16161d81ff7"),
            K::BadTag,
        ),
        bad(
            "shareable_twice",
            "tag 28 directly around tag 28",
            v1("d81cd81c80"),
            K::BadTag,
        ),
        bad(
            "reference_before_any_share",
            "tag 29 to shared value 0 with none marked",
            v1("d81d00"),
            K::BadReference,
        ),
        bad(
            "reference_past_the_shares",
            "tag 29 to shared value 1 with one marked",
            v1("82d81c80d81d01"),
            K::BadReference,
        ),
        bad(
            "port_index_out_of_range",
            "port 0 in a message without ports",
            v1("d9cb1000"),
            K::PortIndex,
        ),
        Invalid {
            buffers: vec![],
            ports: 1,
            ..bad(
                "port_index_past_the_ports",
                "port 1 in a message with one port",
                v1("d9cb1001"),
                K::PortIndex,
            )
        },
        Invalid {
            buffers: vec!["00"],
            ports: 0,
            ..bad(
                "buffer_index_out_of_range",
                "side-table buffer 1 with one buffer",
                v1("d9cb1101"),
                K::BufferIndex,
            )
        },
        bad(
            "view_past_its_buffer",
            "a Uint8Array of 3 bytes at offset 2 of a 4-byte buffer",
            v1("d9cb16830203d8404401020304"),
            K::BadView,
        ),
        bad(
            "view_over_a_number",
            "a Uint8Array whose buffer is an integer",
            v1("d9cb16830001d84001"),
            K::BadView,
        ),
        bad(
            "view_unknown_kind",
            "a view with RFC 8746 tag 65 (big-endian Uint16)",
            v1("d9cb16830001d8414401020304"),
            K::BadTag,
        ),
        bad(
            "port_index_not_an_integer",
            "tag 0xCB10 over a byte string",
            v1("d9cb104107"),
            K::Malformed,
        ),
        bad(
            "buffer_index_not_an_integer",
            "tag 0xCB11 over a text string",
            v1("d9cb116130"),
            K::Malformed,
        ),
        bad(
            "reference_not_an_integer",
            "tag 29 over an array",
            v1("82d81ca0d81d80"),
            K::Malformed,
        ),
        bad(
            "view_over_an_array",
            "a Uint8Array whose buffer is an array",
            v1("d9cb16830000d84080"),
            K::BadView,
        ),
        bad(
            "view_over_a_reference_to_an_object",
            "a Uint8Array whose buffer refers to an object",
            v1("82d81ca0d9cb16830000d840d81d00"),
            K::BadReference,
        ),
        bad(
            "nesting_257_deep",
            "257 arrays inside each other (the limit is 256)",
            deep(257),
            K::DepthLimit,
        ),
        bad(
            "shareable_over_a_wide_reference",
            "tag 28 over tag 29 written with a two-byte head",
            v1("d81cd9001d00"),
            K::BadTag,
        ),
        bad(
            "shareable_inside_a_boxed_primitive",
            "a boxed primitive holding tag 28 over 1",
            v1("d9cb15d81c01"),
            K::BadTag,
        ),
        bad(
            "reference_inside_a_boxed_primitive",
            "a boxed primitive holding a reference (not a primitive)",
            v1("82d81c01d9cb15d81d00"),
            K::Malformed,
        ),
        bad(
            "hole_inside_a_boxed_primitive",
            "a boxed primitive holding a hole",
            v1("d9cb15d81ff7"),
            K::BadTag,
        ),
        bad(
            "hole_over_a_two_byte_simple",
            "a hole over f8 17 (undefined is the one byte f7)",
            v1("81d81ff817"),
            K::Malformed,
        ),
        bad(
            "hole_over_a_float",
            "a hole over a half float",
            v1("81d81ff90017"),
            K::Malformed,
        ),
        bad(
            "resizable_over_a_shareable_mark",
            "a resizable buffer whose content is tag 28 over bytes",
            v1("d9cb198204d81c420102"),
            K::Malformed,
        ),
        bad(
            "resizable_over_a_reference",
            "a resizable buffer whose content is a reference to a buffer",
            v1("82d81c4100d9cb198204d81d00"),
            K::Malformed,
        ),
        bad(
            "view_offset_past_2_53",
            "a Uint8Array at byte offset 2^53 of an empty buffer",
            v1("d9cb16831b002000000000000000d84040"),
            K::BadView,
        ),
        bad(
            "view_over_a_wide_reference_to_an_array",
            "a Uint8Array whose buffer is a reference (two-byte tag head) to an array",
            v1("82d81c80d9cb16830001d840d9001d00"),
            K::BadReference,
        ),
    ]
}

/// Messages the encoders do not write but every decoder reads alike (and the same way),
/// listed after the damaged ones in mutated.txt: longer heads inside tagged forms, a
/// string starting with U+FEFF, signaling NaNs in single width, Error names that are
/// Object.prototype's keys, objects nested under `__proto__` keys.
fn edge_messages() -> Vec<Vec<u8>> {
    // an Error (tag 0xCB12) with only {"name": name}
    let error_named = |name: &str| {
        format!(
            "d9cb01d9cb12a1646e616d65{:02x}{}",
            0x60 + name.len(),
            hex(name.as_bytes())
        )
    };
    let proto_nest = |depth: usize| {
        format!(
            "d9cb01{}a0{}",
            "a26161".repeat(depth),
            "695f5f70726f746f5f5f01".repeat(depth)
        )
    };
    [
        "d9cb01d9cb139802616160".to_owned(), // RegExp /a/, array head 98 02
        "d9cb01d9cb1698030001d8404100".to_owned(), // Uint8Array, array head 98 03
        "d9cb0166efbbbf616263".to_owned(),   // "\u{feff}abc"
        "d9cb0163efbbbf".to_owned(),         // "\u{feff}"
        "d9cb01a166efbbbf61626301".to_owned(), // {"\u{feff}abc": 1}
        "d9cb01fa7f800001".to_owned(),       // a signaling NaN, single width
        "d9cb01faff800001".to_owned(),       // its negative
        "d9cb01fa7fc00001".to_owned(),       // a quiet NaN with a payload
        error_named("toString"),
        error_named("constructor"),
        error_named("__proto__"),
        error_named("hasOwnProperty"),
        proto_nest(24),
    ]
    .iter()
    .map(|h| unhex(h))
    .collect()
}

#[test]
fn invalid_vectors_are_refused_with_their_kind() {
    let path = dir().join("invalid.json");
    let list = invalid_vectors();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        let entries: Vec<Json> = list
            .iter()
            .map(|v| {
                json!({"name": v.name, "description": v.description, "hex": v.hex,
                       "buffers": v.buffers, "ports": v.ports, "error": format!("{:?}", v.kind),
                       "text": v.kind.as_str()})
            })
            .collect();
        let text = serde_json::to_string_pretty(&json!({"format_version": 1, "invalid": entries}))
            .unwrap();
        std::fs::write(&path, text + "\n").unwrap();
    }
    let manifest: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let listed = manifest["invalid"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        list.len(),
        "invalid.json out of date: run with UPDATE_VECTORS=1"
    );
    for (entry, v) in listed.iter().zip(&list) {
        let (name, kind, ports) = (v.name, v.kind, v.ports);
        assert_eq!(
            entry["name"], name,
            "invalid.json out of date: run with UPDATE_VECTORS=1"
        );
        assert_eq!(entry["hex"], v.hex, "{name}: invalid.json out of date");
        assert_eq!(
            entry["error"],
            format!("{kind:?}"),
            "{name}: invalid.json out of date"
        );
        assert_eq!(
            entry["text"],
            kind.as_str(),
            "{name}: invalid.json out of date"
        );
        let bytes = unhex(&v.hex);
        let side: Vec<Buffer> = v.buffers.iter().map(|b| Buffer::from(unhex(b))).collect();
        match decode_value(&bytes, &side, ports) {
            Ok(value) => panic!("{name}: decoded as {value:?}"),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
        // the streaming reader (and so serde) refuses it the same way
        let mut reader = match Reader::new(&bytes, &side, ports) {
            Ok(r) => r,
            Err(e) => {
                assert_eq!(e.kind(), kind, "{name}: {e}");
                continue;
            }
        };
        let e = match reader.skip_value().and_then(|()| reader.finish()) {
            Ok(()) => panic!("{name}: the reader accepted it"),
            Err(e) => e,
        };
        assert_eq!(e.kind(), kind, "{name}: reader: {e}");
    }
}

/// tests/vectors/random.txt: messages the Node face's encoder made from random values
/// (node/test/fixtures/random-messages.js). Each decodes here and encodes back to the same
/// bytes, so the core and the Node face write every form alike.
#[test]
fn random_node_messages_reencode_to_the_same_bytes() {
    let text = std::fs::read_to_string(dir().join("random.txt")).unwrap();
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let bytes = unhex(line);
        let value = decode_value(&bytes, &[], 0).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let (again, buffers) = encode(&value, 0);
        assert!(buffers.is_empty(), "line {}: a side table", i + 1);
        assert_eq!(hex(&again), line, "line {}: re-encoding differs", i + 1);
        count += 1;
    }
    assert!(count >= 500, "random.txt holds {count} messages");
}

/// A small deterministic generator (xorshift32), so that the damaged messages below are
/// the same on every machine.
struct Rng(u32);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 as usize % n
    }
}

/// Bytes that mean something in the format: heads of each width, tags, simple values.
const TELLING_BYTES: [u8; 34] = [
    0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x20, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0,
    0xbf, 0xc0, 0xc2, 0xd8, 0xd9, 0xda, 0xdb, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xff,
    0xcb, 0x1d,
];

/// The number of damaged messages in tests/vectors/mutated.txt.
const MUTATED: usize = 2000;

/// Damaged messages: a golden vector (one without ports or side-table buffers) or a
/// random.txt message of at most 128 bytes, with one to three edits (a bit flipped, a
/// byte replaced by a telling one or a random one, a byte inserted or removed, the
/// message cut short).
fn mutated_messages() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vectors()
        .iter()
        .filter(|(_, _, _, ports)| *ports == 0)
        .map(|(_, _, value, ports)| encode(value, *ports))
        .filter(|(_, buffers)| buffers.is_empty())
        .map(|(bytes, _)| bytes)
        .collect();
    let random = std::fs::read_to_string(dir().join("random.txt")).unwrap();
    seeds.extend(random.lines().map(unhex).filter(|b| b.len() <= 128));
    let mut rng = Rng(0x6d75_7461);
    (0..MUTATED)
        .map(|_| {
            let mut b = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(b.len() + 1);
                match rng.below(6) {
                    0 if at < b.len() => b[at] ^= 1 << rng.below(8),
                    1 if at < b.len() => b[at] = TELLING_BYTES[rng.below(TELLING_BYTES.len())],
                    2 => b.insert(at, TELLING_BYTES[rng.below(TELLING_BYTES.len())]),
                    3 if at < b.len() => {
                        b.remove(at);
                    }
                    4 => b.truncate(at.max(3)),
                    5 if at < b.len() => b[at] = rng.below(256) as u8,
                    _ => {}
                }
            }
            b
        })
        .collect()
}

/// What the core makes of a message: `ok` when it decodes and encodes back to the same
/// bytes, `ok <hex>` when it encodes back to other bytes (a form the encoders do not
/// write, such as a longer head), or the kind of its `DecodeError`.
fn verdict(bytes: &[u8]) -> String {
    match decode_value(bytes, &[], 0) {
        Ok(v) => {
            let (again, buffers) = encode(&v, 0);
            assert!(buffers.is_empty());
            if again == bytes {
                "ok".into()
            } else {
                format!("ok {}", hex(&again))
            }
        }
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// tests/vectors/mutated.txt: damaged messages (`mutated_messages`), then unusual ones
/// (`edge_messages`), a line each: the bytes in hex, then what the core makes of them
/// (`verdict`). The other faces check
/// theirs against it (node/test/vectors.test.js, python/tests/test_values.py): a decoder
/// that accepted what the others refuse, or read a damaged message as another value,
/// would show there. Regenerate with UPDATE_VECTORS=1.
#[test]
fn mutated_messages_keep_their_verdicts() {
    let path = dir().join("mutated.txt");
    let lines: Vec<String> = mutated_messages()
        .iter()
        .chain(&edge_messages())
        .map(|m| format!("{} {}", hex(m), verdict(m)))
        .collect();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let listed: Vec<&str> = text.lines().collect();
    assert_eq!(
        listed.len(),
        lines.len(),
        "mutated.txt out of date: run with UPDATE_VECTORS=1"
    );
    for (i, (listed, now)) in listed.iter().zip(&lines).enumerate() {
        assert_eq!(listed, now, "mutated.txt line {}", i + 1);
    }
    // the corpus exercises both outcomes
    let accepted = lines.iter().filter(|l| l.contains(" ok")).count();
    assert!(
        (MUTATED / 20..=MUTATED / 2).contains(&accepted),
        "{accepted} accepted"
    );
}
