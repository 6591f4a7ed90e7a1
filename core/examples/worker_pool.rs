//! A worker pool that hands out ports.
//!
//! The dispatcher owns one control port per worker. For every job it creates a fresh
//! `MessageChannel`, keeps one end to read the result, and transfers the other end to a
//! worker inside the job message. The worker answers on that port and closes it. At the
//! end a `PortCollection` broadcasts "stop" to every worker at once.
//!
//! Run it with `make demo` (or `cargo run --example worker_pool`).

use std::thread;

use channel_messaging::{MessageChannel, MessagePort, PortCollection, RecvError, Value};

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Answer {
    job: i64,
    worker: usize,
    sum_of_squares: i64,
}

fn worker(id: usize, control: MessagePort) {
    loop {
        let mut event = match control.recv() {
            Ok(event) => event,
            Err(RecvError::Closed) => return,
            Err(RecvError::MessageError(e)) => {
                eprintln!("worker {id}: undecodable job: {e}");
                continue;
            }
        };
        if event.data.as_str() == Some("stop") {
            println!("worker {id}: stopping");
            return;
        }
        // A job: {"job": n, "reply": <port>}.
        let job = event.data.get("job").and_then(Value::as_i64).unwrap_or(0);
        let reply = event.ports.remove(0);
        let sum_of_squares = (1..=job).map(|k| k * k).sum();
        reply
            .post(&Answer {
                job,
                worker: id,
                sum_of_squares,
            })
            .expect("an Answer always encodes");
        reply.close();
    }
}

fn main() {
    const WORKERS: usize = 3;
    const JOBS: i64 = 9;

    let everyone = PortCollection::new();
    let mut controls = Vec::new();
    let mut threads = Vec::new();
    for id in 0..WORKERS {
        let (mine, theirs) = MessageChannel::new().into_ports();
        everyone.add(&mine);
        controls.push(mine);
        threads.push(thread::spawn(move || worker(id, theirs)));
    }

    // Hand out one reply port per job, round robin.
    let mut pending = Vec::new();
    for job in 1..=JOBS {
        let (result, reply) = MessageChannel::new().into_ports();
        let message = Value::Object(vec![
            ("job".into(), Value::Int(job)),
            ("reply".into(), Value::Port(0)),
        ]);
        controls[(job as usize) % WORKERS]
            .post_message(&message, &[&reply])
            .expect("the reply port is fresh, so the transfer is valid");
        assert!(reply.is_detached(), "a transferred port is inert here");
        pending.push(result);
    }

    for result in &pending {
        let answer: Answer = result.recv_as().expect("every worker answers");
        println!(
            "job {:>2} -> worker {}: sum of squares 1..={} is {}",
            answer.job, answer.worker, answer.job, answer.sum_of_squares
        );
        // The worker closed its end after answering: the close arrives after the answer.
        assert!(matches!(result.recv(), Err(RecvError::Closed)));
    }

    let told = everyone
        .post_message(&Value::from("stop"))
        .expect("a string encodes");
    println!("told {told} workers to stop");
    for t in threads {
        t.join().expect("worker thread");
    }
}
