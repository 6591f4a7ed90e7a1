//! The Rust peer rows: crossbeam-channel (unbounded and bounded(1024)), std::sync::mpsc
//! and Servo's ipc-channel (between two threads of one process), each running the
//! workloads of BENCHMARKS.md on the plain struct [`Tick`].
//!
//! Usage: `bench-peers <mechanism> <workload> <n>`, where mechanism is one of
//! `crossbeam-unbounded`, `crossbeam-bounded`, `std-mpsc`, `ipc-channel` and workload one
//! of `w1`, `w2`, `w3a`, `w3b`, `w4`, `w5`, `live<K>` (W1 spread round-robin over K live
//! channels). Prints one `RESULT {json}` line.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use channel_messaging_bench::{
    Args, Report, Tick, W3_BYTES, bandwidth_report, check_buffer, fresh_buffer, latency_report,
    measure_round_trips, memory_report, rate_report, rss_bytes, stamp, w3_source,
};
use ipc_channel::ipc::{self, IpcSharedMemory};
use serde::Serialize;
use serde::de::DeserializeOwned;

const USAGE: &str = "bench-peers <crossbeam-unbounded|crossbeam-bounded|std-mpsc|ipc-channel> \
                     <w1|w2|w3a|w3b|w4|w5|live<K>> <n>";

/// What a message must be to travel through every peer (ipc-channel needs serde).
trait Msg: Send + Serialize + DeserializeOwned + 'static {}
impl<T: Send + Serialize + DeserializeOwned + 'static> Msg for T {}

/// One channel implementation, seen through the few operations the workloads use.
trait Flavor: 'static {
    type Tx<T: Msg>: Send + 'static;
    type Rx<T: Msg>: Send + 'static;
    fn channel<T: Msg>() -> (Self::Tx<T>, Self::Rx<T>);
    fn send<T: Msg>(tx: &Self::Tx<T>, msg: T);
    fn recv<T: Msg>(rx: &Self::Rx<T>) -> T;

    /// Whether `n` messages can be queued without a receiver (W5).
    const UNBOUNDED: bool;

    /// W3a: the sender keeps one 64 KiB buffer; each message carries a copy of it.
    fn w3a(n: usize) -> Report {
        let (tx, rx) = Self::channel::<Vec<u8>>();
        timed_pair(
            n,
            move |seq| check_buffer(&Self::recv(&rx), seq),
            move || {
                let mut src = w3_source();
                for i in 0..n as u64 {
                    stamp(&mut src, i);
                    Self::send(&tx, src.clone());
                }
            },
        )
        .map_bandwidth(n)
    }

    /// W3b: each message moves a fresh buffer made by the sender (no payload copy).
    fn w3b(n: usize) -> Report {
        let (tx, rx) = Self::channel::<Vec<u8>>();
        timed_pair(
            n,
            move |seq| check_buffer(&Self::recv(&rx), seq),
            move || {
                for i in 0..n as u64 {
                    Self::send(&tx, fresh_buffer(i));
                }
            },
        )
        .map_bandwidth(n)
    }
}

struct CrossbeamUnbounded;
struct CrossbeamBounded;
struct StdMpsc;
struct IpcChannel;

impl Flavor for CrossbeamUnbounded {
    type Tx<T: Msg> = crossbeam_channel::Sender<T>;
    type Rx<T: Msg> = crossbeam_channel::Receiver<T>;
    const UNBOUNDED: bool = true;
    fn channel<T: Msg>() -> (Self::Tx<T>, Self::Rx<T>) {
        crossbeam_channel::unbounded()
    }
    fn send<T: Msg>(tx: &Self::Tx<T>, msg: T) {
        tx.send(msg).expect("receiver alive");
    }
    fn recv<T: Msg>(rx: &Self::Rx<T>) -> T {
        rx.recv().expect("sender alive")
    }
}

impl Flavor for CrossbeamBounded {
    type Tx<T: Msg> = crossbeam_channel::Sender<T>;
    type Rx<T: Msg> = crossbeam_channel::Receiver<T>;
    const UNBOUNDED: bool = false;
    fn channel<T: Msg>() -> (Self::Tx<T>, Self::Rx<T>) {
        crossbeam_channel::bounded(1024)
    }
    fn send<T: Msg>(tx: &Self::Tx<T>, msg: T) {
        tx.send(msg).expect("receiver alive");
    }
    fn recv<T: Msg>(rx: &Self::Rx<T>) -> T {
        rx.recv().expect("sender alive")
    }
}

impl Flavor for StdMpsc {
    type Tx<T: Msg> = std::sync::mpsc::Sender<T>;
    type Rx<T: Msg> = std::sync::mpsc::Receiver<T>;
    const UNBOUNDED: bool = true;
    fn channel<T: Msg>() -> (Self::Tx<T>, Self::Rx<T>) {
        std::sync::mpsc::channel()
    }
    fn send<T: Msg>(tx: &Self::Tx<T>, msg: T) {
        tx.send(msg).expect("receiver alive");
    }
    fn recv<T: Msg>(rx: &Self::Rx<T>) -> T {
        rx.recv().expect("sender alive")
    }
}

impl Flavor for IpcChannel {
    type Tx<T: Msg> = ipc::IpcSender<T>;
    type Rx<T: Msg> = ipc::IpcReceiver<T>;
    // A socket's buffer fills long before 1,000,000 messages: the sender would block.
    const UNBOUNDED: bool = false;
    fn channel<T: Msg>() -> (Self::Tx<T>, Self::Rx<T>) {
        ipc::channel().expect("ipc channel")
    }
    fn send<T: Msg>(tx: &Self::Tx<T>, msg: T) {
        tx.send(msg).expect("receiver alive");
    }
    fn recv<T: Msg>(rx: &Self::Rx<T>) -> T {
        rx.recv().expect("sender alive")
    }

    /// W3a over ipc-channel's serde-free bytes channel (its fastest copy path).
    fn w3a(n: usize) -> Report {
        let (tx, rx) = ipc::bytes_channel().expect("ipc bytes channel");
        timed_pair(
            n,
            move |seq| check_buffer(&rx.recv().expect("sender alive"), seq),
            move || {
                let mut src = w3_source();
                for i in 0..n as u64 {
                    stamp(&mut src, i);
                    tx.send(&src).expect("receiver alive");
                }
            },
        )
        .map_bandwidth(n)
    }

    /// W3b as ipc-channel's closest "transfer": a fresh shared-memory region per
    /// message, filled and stamped by the sender; only its descriptor travels.
    fn w3b(n: usize) -> Report {
        let (tx, rx) = ipc::channel::<IpcSharedMemory>().expect("ipc channel");
        timed_pair(
            n,
            move |seq| check_buffer(&rx.recv().expect("sender alive"), seq),
            move || {
                for i in 0..n as u64 {
                    let mut shm = IpcSharedMemory::from_byte(i as u8, W3_BYTES);
                    // SAFETY: `shm` was just created and is not shared with anyone yet.
                    stamp(unsafe { shm.deref_mut() }, i);
                    tx.send(shm).expect("receiver alive");
                }
            },
        )
        .map_bandwidth(n)
    }
}

/// Time from just before the sender starts to the receiver's last message.
struct Timed(std::time::Duration);

impl Timed {
    fn map_rate(self, deliveries: usize) -> Report {
        rate_report(deliveries, self.0)
    }
    fn map_bandwidth(self, n: usize) -> Report {
        bandwidth_report(n, W3_BYTES, self.0)
    }
}

/// Runs `send_all` on this thread and `recv_one(seq)` `n` times on another, both
/// released by one barrier; measures first send to last receive.
fn timed_pair(
    n: usize,
    mut recv_one: impl FnMut(u64) + Send + 'static,
    send_all: impl FnOnce(),
) -> Timed {
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
    let end = receiver.join().expect("receiver thread");
    Timed(end - start)
}

fn check_tick(t: &Tick, seq: u64) {
    assert!(
        t.seq == seq && t.name == "tick",
        "message {seq} arrived as {t:?}"
    );
}

fn w1<F: Flavor>(n: usize) -> Report {
    live::<F>(n, 1)
}

/// W1 spread round-robin over `k` live channels: message `i` goes through channel `i % k`.
fn live<F: Flavor>(n: usize, k: usize) -> Report {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..k).map(|_| F::channel::<Tick>()).unzip();
    timed_pair(
        n,
        move |seq| check_tick(&F::recv(&rxs[seq as usize % k]), seq),
        move || {
            for i in 0..n {
                F::send(&txs[i % k], Tick::new(i as u64));
            }
        },
    )
    .map_rate(n)
}

fn w2<F: Flavor>(n: usize) -> Report {
    let (ping_tx, ping_rx) = F::channel::<Tick>();
    let (pong_tx, pong_rx) = F::channel::<Tick>();
    let total = n + channel_messaging_bench::w2_warmup(n);
    let echo = thread::spawn(move || {
        for _ in 0..total {
            F::send(&pong_tx, F::recv(&ping_rx));
        }
    });
    let samples = measure_round_trips(n, |seq| {
        F::send(&ping_tx, Tick::new(seq));
        let back = F::recv(&pong_rx);
        debug_assert_eq!(back.seq, seq);
    });
    echo.join().expect("echo thread");
    latency_report(samples)
}

/// W4: one sender, four receivers, each on its own channel; the sender sends a clone
/// of every message to each of the four ("four sends").
fn w4<F: Flavor>(n: usize) -> Report {
    const RECEIVERS: usize = 4;
    let barrier = Arc::new(Barrier::new(RECEIVERS + 1));
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..RECEIVERS {
        let (tx, rx) = F::channel::<Tick>();
        txs.push(tx);
        let b = Arc::clone(&barrier);
        handles.push(thread::spawn(move || {
            b.wait();
            for seq in 0..n as u64 {
                check_tick(&F::recv(&rx), seq);
            }
            Instant::now()
        }));
    }
    barrier.wait();
    let start = Instant::now();
    for i in 0..n as u64 {
        let tick = Tick::new(i);
        for tx in &txs {
            F::send(tx, tick.clone());
        }
    }
    let end = handles
        .into_iter()
        .map(|h| h.join().expect("receiver thread"))
        .max()
        .expect("four receivers");
    rate_report(RECEIVERS * n, end - start)
}

/// W5: `n` messages queued and not received; resident growth per message. The payload
/// is the struct plus its heap-allocated name.
fn w5<F: Flavor>(n: usize) -> Report {
    let (tx, rx) = F::channel::<Tick>();
    let before = rss_bytes();
    for i in 0..n as u64 {
        F::send(&tx, Tick::new(i));
    }
    let after = rss_bytes();
    let payload = (std::mem::size_of::<Tick>() + "tick".len()) as f64;
    drop(rx);
    memory_report(n, before, after, payload)
}

fn run<F: Flavor>(a: &Args) -> Report {
    let n = a.n;
    match a.workload.as_str() {
        "w1" => w1::<F>(n),
        "w2" => w2::<F>(n),
        "w3a" => F::w3a(n),
        "w3b" => F::w3b(n),
        "w4" => w4::<F>(n),
        "w5" if F::UNBOUNDED => w5::<F>(n),
        w => match w.strip_prefix("live").and_then(|k| k.parse::<usize>().ok()) {
            Some(k) if k > 0 => live::<F>(n, k),
            _ => a.unsupported(),
        },
    }
}

fn main() {
    let a = Args::parse(USAGE);
    let report = match a.mechanism.as_str() {
        "crossbeam-unbounded" => run::<CrossbeamUnbounded>(&a),
        "crossbeam-bounded" => run::<CrossbeamBounded>(&a),
        "std-mpsc" => run::<StdMpsc>(&a),
        "ipc-channel" => run::<IpcChannel>(&a),
        _ => a.unsupported(),
    };
    report.print();
}
