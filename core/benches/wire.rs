//! Wire-format benchmark: `cargo bench -p channel-messaging --bench wire`.
//!
//! Prints ns/op for encoding and decoding the W1 message `{"seq": i, "name": "tick"}`
//! through the `Value` path and the serde path, and for a message carrying a 64 KiB
//! buffer (which travels in the side table: the receiver gets the same bytes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use channel_messaging::wire::{decode_serde, decode_value, encode_serde, encode_value};
use channel_messaging::{Buffer, Value};

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Tick {
    seq: u64,
    name: String,
}

/// Runs `f` repeatedly for about `budget` and returns the best ns/op of 5 rounds.
fn measure(mut f: impl FnMut(u64)) -> f64 {
    let mut iters = 1_000u64;
    loop {
        let t = Instant::now();
        for i in 0..iters {
            f(i);
        }
        if t.elapsed() > Duration::from_millis(50) {
            break;
        }
        iters *= 4;
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..iters {
            f(i);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

fn w1(i: u64) -> Value {
    Value::Object(vec![
        ("seq".into(), Value::Int(i as i64)),
        ("name".into(), Value::from("tick")),
    ])
}

fn main() {
    let mut out = Vec::with_capacity(64);
    let mut buffers: Vec<Buffer> = Vec::new();
    let report = |name: &str, ns: f64| println!("{name:<44} {ns:>9.1} ns/op");

    // W1 via Value.
    let v = w1(12345);
    report(
        "w1 value encode",
        measure(|_| {
            out.clear();
            encode_value(black_box(&v), 0, &mut out, &mut buffers).unwrap();
            black_box(&out);
        }),
    );
    out.clear();
    encode_value(&v, 0, &mut out, &mut buffers).unwrap();
    let bytes = out.clone();
    report(
        "w1 value decode",
        measure(|_| {
            black_box(decode_value(black_box(&bytes), &[], 0).unwrap());
        }),
    );
    report(
        "w1 value encode+decode (value built once)",
        measure(|_| {
            out.clear();
            encode_value(black_box(&v), 0, &mut out, &mut buffers).unwrap();
            black_box(decode_value(&out, &[], 0).unwrap());
        }),
    );

    // W1 via serde.
    report(
        "w1 serde encode",
        measure(|i| {
            out.clear();
            encode_serde(
                black_box(&Tick {
                    seq: i,
                    name: String::new(),
                }),
                &mut out,
                &mut buffers,
            )
            .unwrap();
            black_box(&out);
        }),
    );
    let tick = Tick {
        seq: 12345,
        name: "tick".into(),
    };
    out.clear();
    encode_serde(&tick, &mut out, &mut buffers).unwrap();
    assert_eq!(out, bytes, "serde and Value encode W1 identically");
    report(
        "w1 serde decode",
        measure(|_| {
            black_box(decode_serde::<Tick>(black_box(&bytes), &[]).unwrap());
        }),
    );
    report(
        "w1 serde encode+decode",
        measure(|_| {
            out.clear();
            encode_serde(black_box(&tick), &mut out, &mut buffers).unwrap();
            black_box(decode_serde::<Tick>(&out, &[]).unwrap());
        }),
    );

    // 64 KiB buffer: side table, no copy.
    let big = Buffer::from(vec![7u8; 64 * 1024]);
    let msg = Value::Object(vec![("data".into(), Value::Buffer(big.clone()))]);
    out.clear();
    buffers.clear();
    encode_value(&msg, 0, &mut out, &mut buffers).unwrap();
    let back = decode_value(&out, &buffers, 0).unwrap();
    let Some(Value::Buffer(got)) = back.get("data") else {
        panic!("not a buffer")
    };
    assert_eq!(
        got.as_ptr(),
        big.as_ptr(),
        "the side-table buffer must not be copied"
    );
    println!(
        "64 KiB buffer: stream {} bytes, side table {} buffer(s), same pointer after decode: {}",
        out.len(),
        buffers.len(),
        got.as_ptr() == big.as_ptr()
    );
    report(
        "64 KiB buffer value encode+decode",
        measure(|_| {
            out.clear();
            buffers.clear();
            encode_value(black_box(&msg), 0, &mut out, &mut buffers).unwrap();
            black_box(decode_value(&out, &buffers, 0).unwrap());
        }),
    );
}
