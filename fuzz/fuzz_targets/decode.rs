//! Fuzz the message decoder: `make fuzz` (or `cargo +nightly fuzz run decode`, from the
//! repository root, where cargo-fuzz is installed).
//!
//! Whatever the input, decoding must return a value or a `DecodeError` (never panic,
//! overflow the stack or allocate without bound); whatever decodes must encode again,
//! and the serde path must not panic either.
#![no_main]

use channel_messaging::Buffer;
use channel_messaging::wire::{decode_serde, decode_value, encode_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let buffers = [Buffer::from(vec![0u8; 32]), Buffer::from(vec![1u8; 2048])];
    // Try the input as is, and behind a valid header so that the fuzzer reaches the
    // body quickly.
    let mut with_header = vec![0xd9, 0xcb, 0x01];
    with_header.extend_from_slice(data);
    for input in [data, &with_header[..]] {
        if let Ok(v) = decode_value(input, &buffers, 3) {
            let (mut out, mut side) = (Vec::new(), Vec::new());
            encode_value(&v, 3, &mut out, &mut side).expect("a decoded value encodes");
            let again = decode_value(&out, &side, 3).expect("a re-encoded value decodes");
            let (mut out2, mut side2) = (Vec::new(), Vec::new());
            encode_value(&again, 3, &mut out2, &mut side2).unwrap();
            assert_eq!(out, out2, "encoding is deterministic");
        }
        let _ = decode_serde::<serde_json_free::Any>(input, &buffers);
    }
});

mod serde_json_free {
    //! A `Deserialize` that accepts anything, to drive every serde path.
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    pub struct Any;

    impl<'de> Deserialize<'de> for Any {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(AnyVisitor)
        }
    }

    struct AnyVisitor;

    impl<'de> Visitor<'de> for AnyVisitor {
        type Value = Any;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("anything")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_none<E: de::Error>(self) -> Result<Any, E> {
            Ok(Any)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
            Any::deserialize(d)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
            while a.next_element::<Any>()?.is_some() {}
            Ok(Any)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Any, A::Error> {
            while a.next_entry::<Any, Any>()?.is_some() {}
            Ok(Any)
        }
    }
}
