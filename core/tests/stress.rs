//! Stress: four threads hand the ends of several channels to each other, at random,
//! while messages flow through those channels. Nothing may be lost or duplicated, and
//! each channel's messages must arrive in the order they were sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use channel_messaging::{MessageChannel, MessagePort, RecvTimeoutError, TryRecvError, Value};

const WORKERS: usize = 4;
const CHANNELS: usize = 8;
const MESSAGES: i64 = 20_000;

/// Per channel: the next sequence number to send travels with the sending end.
enum Held {
    Sender {
        id: usize,
        next: i64,
        port: MessagePort,
    },
    Receiver {
        id: usize,
        port: MessagePort,
    },
}

fn encode(h: &Held) -> (Value, &MessagePort) {
    match h {
        Held::Sender { id, next, port } => (
            Value::Array(vec![
                Value::from("S"),
                Value::Int(*id as i64),
                Value::Int(*next),
                Value::Port(0),
            ]),
            port,
        ),
        Held::Receiver { id, port } => (
            Value::Array(vec![
                Value::from("R"),
                Value::Int(*id as i64),
                Value::Int(0),
                Value::Port(0),
            ]),
            port,
        ),
    }
}

fn decode(data: &Value, port: MessagePort) -> Held {
    let Value::Array(items) = data else {
        panic!("bad control message")
    };
    let id = items[1].as_i64().unwrap() as usize;
    match items[0].as_str() {
        Some("S") => Held::Sender {
            id,
            next: items[2].as_i64().unwrap(),
            port,
        },
        _ => Held::Receiver { id, port },
    }
}

#[test]
fn stress_ports_transferred_between_threads_while_messages_flow() {
    // A control channel from every worker to every other.
    let mut control_out: Vec<Vec<Option<MessagePort>>> = (0..WORKERS)
        .map(|_| (0..WORKERS).map(|_| None).collect())
        .collect();
    let mut control_in: Vec<Vec<MessagePort>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (from, outs) in control_out.iter_mut().enumerate() {
        for (to, out) in outs.iter_mut().enumerate() {
            if from != to {
                let (tx, rx) = MessageChannel::new().into_ports();
                *out = Some(tx);
                control_in[to].push(rx);
            }
        }
    }
    let logs: Arc<Vec<Mutex<Vec<i64>>>> =
        Arc::new((0..CHANNELS).map(|_| Mutex::new(Vec::new())).collect());
    let finished = Arc::new(AtomicUsize::new(0));
    let hops = Arc::new(AtomicUsize::new(0));

    // Deal the channel ends out.
    let mut initial: Vec<Vec<Held>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for id in 0..CHANNELS {
        let (tx, rx) = MessageChannel::new().into_ports();
        initial[id % WORKERS].push(Held::Sender {
            id,
            next: 0,
            port: tx,
        });
        initial[(id + 1) % WORKERS].push(Held::Receiver { id, port: rx });
    }

    let mut handles = Vec::new();
    for (w, (held, (outs, ins))) in initial
        .into_iter()
        .zip(control_out.into_iter().zip(control_in))
        .enumerate()
    {
        let logs = Arc::clone(&logs);
        let finished = Arc::clone(&finished);
        let hops = Arc::clone(&hops);
        handles.push(thread::spawn(move || {
            let mut held = held;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
            let mut next_rand = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let outs: Vec<MessagePort> = outs.into_iter().flatten().collect();
            while finished.load(Ordering::SeqCst) < CHANNELS {
                // Take in what others sent.
                for rx in &ins {
                    while let Ok(mut ev) = rx.try_recv() {
                        let port = ev.ports.remove(0);
                        held.push(decode(&ev.data, port));
                    }
                }
                // Work a little on each held end.
                let mut keep = Vec::new();
                for h in held.drain(..) {
                    match h {
                        Held::Sender { id, mut next, port } => {
                            for _ in 0..(next_rand() % 50) {
                                if next == MESSAGES {
                                    break;
                                }
                                port.post_message(&Value::Int(next), &[]).unwrap();
                                next += 1;
                            }
                            if next == MESSAGES {
                                port.close();
                            } else {
                                keep.push(Held::Sender { id, next, port });
                            }
                        }
                        Held::Receiver { id, port } => {
                            let mut done = false;
                            for _ in 0..(next_rand() % 50) {
                                match port.try_recv() {
                                    Ok(ev) => {
                                        logs[id].lock().unwrap().push(ev.data.as_i64().unwrap())
                                    }
                                    Err(TryRecvError::Empty) => break,
                                    Err(TryRecvError::Closed) => {
                                        done = true;
                                        break;
                                    }
                                    Err(e) => panic!("{e}"),
                                }
                            }
                            if done {
                                finished.fetch_add(1, Ordering::SeqCst);
                            } else {
                                keep.push(Held::Receiver { id, port });
                            }
                        }
                    }
                }
                // Hand some ends to others.
                for h in keep {
                    if next_rand() % 3 == 0 {
                        let to = &outs[(next_rand() % outs.len() as u64) as usize];
                        let (msg, port) = encode(&h);
                        to.post_message(&msg, &[port]).unwrap();
                        hops.fetch_add(1, Ordering::Relaxed);
                    } else {
                        held.push(h);
                    }
                }
                thread::yield_now();
            }
            // Everything finished: nothing may be left in flight for this worker.
            for rx in &ins {
                match rx.recv_timeout(Duration::from_millis(1)) {
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Closed) => {}
                    other => panic!("unexpected control traffic at the end: {other:?}"),
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    // The test is only meaningful if ends really moved while messages flowed.
    assert!(
        hops.load(Ordering::Relaxed) >= CHANNELS * 4,
        "too few transfers: {hops:?}"
    );
    for (id, log) in logs.iter().enumerate() {
        let log = log.lock().unwrap();
        assert_eq!(
            log.len() as i64,
            MESSAGES,
            "channel {id}: lost or duplicated messages"
        );
        assert!(
            log.iter().copied().eq(0..MESSAGES),
            "channel {id}: out of order"
        );
    }
}
