//! The channel-messaging Rust core rows (built with `--features core-rows`).
//!
//! Usage: `bench-core <mechanism> <workload> <n>`:
//!
//! | mechanism | workloads | what |
//! |---|---|---|
//! | `serde` | `w1`, `w2`, `w5`, `live<K>` | `post(&Tick)` / `recv_as::<Tick>()` |
//! | `value` | `w1`, `w2`, `w3a`, `w3b` | `post_message(&Value, &[])` (W3b: `post_message_owned`) / `recv()` |
//! | `collection` | `w4`, `fanout<N>` | one `PortCollection::post(&Tick)` to N ports |
//! | `separate` | `w4`, `fanout<N>` | N `MessagePort::post(&Tick)`, one per port |
//! | `wire` | `w1-serde`, `w1-value`, `64k` | the codec alone: ns per encode+decode |
//!
//! `live<K>`: W1 with K channels created and kept alive; message `i` travels through
//! channel `i % K` (so all K queues are in use and hot/cold cache effects show).
//! `w5`: the payload is the core's own count of queued bytes per message
//! (`PortStats::queued_bytes / queued_messages`).

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use channel_messaging::{Buffer, MessageChannel, MessagePort, PortCollection, Value};
use channel_messaging_bench::{
    Args, Report, Tick, W3_BYTES, bandwidth_report, check_buffer, fresh_buffer, latency_report,
    measure_round_trips, memory_report, rate_report, rss_bytes, stamp, w2_warmup, w3_source,
};

const USAGE: &str = "bench-core <serde|value|collection|separate|wire> \
                     <w1|w2|w3a|w3b|w4|w5|live<K>|fanout<N>|w1-serde|w1-value|64k> <n>";

/// How W1/W2 messages are posted and received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `post(&Tick)` and `recv_as::<Tick>()`.
    Serde,
    /// `post_message(&Value::Object(..))` and `recv()`.
    Value,
}

fn tick_value(seq: u64) -> Value {
    Value::Object(vec![
        ("seq".into(), Value::Int(seq as i64)),
        ("name".into(), Value::String("tick".into())),
    ])
}

fn post_tick(port: &MessagePort, api: Api, seq: u64) {
    match api {
        Api::Serde => port.post(&Tick::new(seq)),
        Api::Value => port.post_message(&tick_value(seq), &[]),
    }
    .expect("post");
}

fn check_tick(t: &Tick, seq: u64) {
    assert!(
        t.seq == seq && t.name == "tick",
        "message {seq} arrived as {t:?}"
    );
}

/// Receives one W1 message and decodes it (serde into `Tick`, or reads the `Value`).
fn recv_tick(port: &MessagePort, api: Api, seq: u64) {
    match api {
        Api::Serde => check_tick(&port.recv_as::<Tick>().expect("recv_as"), seq),
        Api::Value => {
            let event = port.recv().expect("recv");
            let got = event.data.get("seq").and_then(Value::as_i64);
            let name = event.data.get("name").and_then(Value::as_str);
            assert!(
                got == Some(seq as i64) && name == Some("tick"),
                "message {seq} arrived as {:?}",
                event.data
            );
        }
    }
}

/// `send_all` here, `recv_one(seq)` `n` times on another thread; first send to last receive.
fn timed_pair(
    n: usize,
    mut recv_one: impl FnMut(u64) + Send + 'static,
    send_all: impl FnOnce(),
) -> std::time::Duration {
    let barrier = Arc::new(Barrier::new(2));
    let b = Arc::clone(&barrier);
    let receiver = thread::spawn(move || {
        b.wait();
        for seq in 0..n as u64 {
            recv_one(seq);
        }
        Instant::now()
    });
    barrier.wait();
    let start = Instant::now();
    send_all();
    receiver.join().expect("receiver thread") - start
}

/// W1 over `k` live channels (`k = 1` is W1 itself).
fn live(api: Api, n: usize, k: usize) -> Report {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..k).map(|_| MessageChannel::new().into_ports()).unzip();
    let elapsed = timed_pair(
        n,
        move |seq| recv_tick(&rxs[seq as usize % k], api, seq),
        move || {
            for i in 0..n {
                post_tick(&txs[i % k], api, i as u64);
            }
        },
    );
    rate_report(n, elapsed)
}

fn w2(api: Api, n: usize) -> Report {
    let (a, b) = MessageChannel::new().into_ports();
    let total = n + w2_warmup(n);
    let echo = thread::spawn(move || {
        for _ in 0..total {
            match api {
                Api::Serde => {
                    let t: Tick = b.recv_as().expect("recv_as");
                    b.post(&t).expect("post");
                }
                Api::Value => {
                    let event = b.recv().expect("recv");
                    b.post_message(&event.data, &[]).expect("post_message");
                }
            }
        }
    });
    let samples = measure_round_trips(n, |seq| {
        post_tick(&a, api, seq);
        match api {
            Api::Serde => drop(a.recv_as::<Tick>().expect("recv_as")),
            Api::Value => drop(a.recv().expect("recv")),
        }
    });
    echo.join().expect("echo thread");
    latency_report(samples)
}

fn take_buffer(port: &MessagePort) -> Buffer {
    match port.recv().expect("recv").data {
        Value::Buffer(b) => b,
        other => panic!("expected a buffer, got {}", other.kind_name()),
    }
}

/// W3a: the sender keeps one 64 KiB buffer; each message carries a copy of it
/// (`Buffer::copy_from_slice`).
fn w3a(n: usize) -> Report {
    let (tx, rx) = MessageChannel::new().into_ports();
    let elapsed = timed_pair(
        n,
        move |seq| check_buffer(&take_buffer(&rx), seq),
        move || {
            let mut src = w3_source();
            for i in 0..n as u64 {
                stamp(&mut src, i);
                let v = Value::Buffer(Buffer::copy_from_slice(&src));
                tx.post_message(&v, &[]).expect("post_message");
            }
        },
    );
    bandwidth_report(n, W3_BYTES, elapsed)
}

/// W3b: each message moves a fresh buffer made by the sender (`Buffer::from(Vec)`,
/// posted with `post_message_owned`: ownership moves with the message); the receiver
/// takes the `Vec` back with `into_vec()`. The report counts the buffers that were
/// still shared on arrival, for which `into_vec()` had to copy (expected: none).
fn w3b(n: usize) -> Report {
    let (tx, rx) = MessageChannel::new().into_ports();
    let shared = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shared_in_receiver = Arc::clone(&shared);
    let elapsed = timed_pair(
        n,
        move |seq| {
            let b = take_buffer(&rx);
            if !b.is_unique() {
                shared_in_receiver.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            check_buffer(&b.into_vec(), seq);
        },
        move || {
            for i in 0..n as u64 {
                let v = Value::Buffer(Buffer::from(fresh_buffer(i)));
                tx.post_message_owned(v, &[]).expect("post_message_owned");
            }
        },
    );
    let mut r = bandwidth_report(n, W3_BYTES, elapsed);
    r.num(
        "copied_on_receipt",
        shared.load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    r
}

/// W4 and the scaling rows: one sender, `k` receivers each receiving all `n` messages,
/// through one `PortCollection` post or `k` separate posts.
fn fanout(collection: bool, n: usize, k: usize) -> Report {
    let barrier = Arc::new(Barrier::new(k + 1));
    let coll = PortCollection::new();
    let mut txs = Vec::with_capacity(k);
    let mut handles = Vec::with_capacity(k);
    for _ in 0..k {
        let (tx, rx) = MessageChannel::new().into_ports();
        coll.add(&tx);
        txs.push(tx);
        let b = Arc::clone(&barrier);
        handles.push(thread::spawn(move || {
            b.wait();
            for seq in 0..n as u64 {
                recv_tick(&rx, Api::Serde, seq);
            }
            Instant::now()
        }));
    }
    barrier.wait();
    let start = Instant::now();
    for i in 0..n as u64 {
        let tick = Tick::new(i);
        if collection {
            coll.post(&tick).expect("collection post");
        } else {
            for tx in &txs {
                tx.post(&tick).expect("post");
            }
        }
    }
    let end = handles
        .into_iter()
        .map(|h| h.join().expect("receiver thread"))
        .max()
        .expect("at least one receiver");
    rate_report(k * n, end - start)
}

/// W5: `n` messages posted and not received; resident growth per message against the
/// core's own count of queued bytes per message.
fn w5(n: usize) -> Report {
    let (tx, rx) = MessageChannel::new().into_ports();
    let before = rss_bytes();
    for i in 0..n as u64 {
        tx.post(&Tick::new(i)).expect("post");
    }
    let after = rss_bytes();
    let stats = rx.stats();
    assert_eq!(stats.queued_messages, n, "every message is queued");
    let payload = stats.queued_bytes as f64 / stats.queued_messages.max(1) as f64;
    let mut r = memory_report(n, before, after, payload);
    r.num("queued_bytes", stats.queued_bytes as f64);
    drop((tx, rx));
    r
}

/// The codec alone, one thread: ns per encode plus decode of one message. The 64 KiB
/// case checks that the decoded buffer is the very allocation that was encoded.
fn wire(workload: &str, n: usize) -> Report {
    use channel_messaging::wire::{decode_serde, decode_value, encode_serde, encode_value};
    use std::hint::black_box;

    let mut bytes = Vec::with_capacity(64);
    let mut buffers = Vec::new();
    let big = Value::Buffer(Buffer::from(vec![7u8; W3_BYTES]));
    // Built once: the figure is the codec's, not the cost of building a `Value`.
    let w1 = tick_value(1_000_000);
    let start = Instant::now();
    for i in 0..n as u64 {
        bytes.clear();
        buffers.clear();
        match workload {
            "w1-serde" => {
                encode_serde(black_box(&Tick::new(i)), &mut bytes, &mut buffers).expect("encode");
                let t: Tick = decode_serde(black_box(&bytes), &buffers).expect("decode");
                check_tick(&t, i);
            }
            "w1-value" => {
                encode_value(black_box(&w1), 0, &mut bytes, &mut buffers).expect("encode");
                let v = decode_value(black_box(&bytes), &buffers, 0).expect("decode");
                assert_eq!(v.get("seq"), Some(&Value::Int(1_000_000)));
            }
            _ => {
                encode_value(black_box(&big), 0, &mut bytes, &mut buffers).expect("encode");
                let v = decode_value(black_box(&bytes), &buffers, 0).expect("decode");
                let (Value::Buffer(sent), Value::Buffer(got)) = (&big, &v) else {
                    panic!("expected a buffer, got {v:?}")
                };
                assert_eq!(sent.as_slice().as_ptr(), got.as_slice().as_ptr(), "copied");
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    let mut r = Report::new(ns, "ns");
    r.num("encoded_bytes", bytes.len() as f64);
    r
}

fn suffix(workload: &str, prefix: &str) -> Option<usize> {
    workload
        .strip_prefix(prefix)
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|&k| k > 0)
}

fn main() {
    let a = Args::parse(USAGE);
    let n = a.n;
    let w = a.workload.as_str();
    let report = match (a.mechanism.as_str(), w) {
        ("serde", "w1") => live(Api::Serde, n, 1),
        ("value", "w1") => live(Api::Value, n, 1),
        ("serde", "w2") => w2(Api::Serde, n),
        ("value", "w2") => w2(Api::Value, n),
        ("value", "w3a") => w3a(n),
        ("value", "w3b") => w3b(n),
        ("serde", "w5") => w5(n),
        ("wire", "w1-serde" | "w1-value" | "64k") => wire(w, n),
        ("collection", "w4") => fanout(true, n, 4),
        ("separate", "w4") => fanout(false, n, 4),
        ("serde", _) if suffix(w, "live").is_some() => {
            live(Api::Serde, n, suffix(w, "live").unwrap_or(1))
        }
        ("collection", _) if suffix(w, "fanout").is_some() => {
            fanout(true, n, suffix(w, "fanout").unwrap_or(1))
        }
        ("separate", _) if suffix(w, "fanout").is_some() => {
            fanout(false, n, suffix(w, "fanout").unwrap_or(1))
        }
        _ => a.unsupported(),
    };
    report.print();
}
