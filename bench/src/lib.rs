//! Shared pieces of the benchmark binaries: the W1 message, the measuring helpers and
//! the one-line result every case prints for `bench/run.py`.
//!
//! Every binary is called as `BIN <mechanism> <workload> <n>` and prints, as its last
//! line, `RESULT {json}` with at least `value` and `unit`. The workloads are defined in
//! /work/shared/BENCHMARKS.md (copied into the generated BENCHMARKS.md):
//!
//! - `w1`: one sender thread, one receiver thread, `n` messages; msg/s first send to last receive.
//! - `w2`: `n` round trips between two threads; per-round-trip `Instant`s; p50/p99/mean µs.
//! - `w3a` / `w3b`: `n` messages of a 64 KiB buffer, copied / transferred; MB/s (10^6 bytes).
//! - `w4`: one sender, four receivers each receiving all `n` messages; 4·n / time.
//! - `w5`: `n` messages posted and not received; resident memory growth per message.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The W1 message as a plain struct: `{"seq": i, "name": "tick"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The sequence number.
    pub seq: u64,
    /// Always `"tick"`.
    pub name: String,
}

impl Tick {
    /// The `i`-th message (allocates its `name`, as building a fresh message does).
    pub fn new(seq: u64) -> Self {
        Tick {
            seq,
            name: String::from("tick"),
        }
    }
}

/// The size of a W3 buffer: 64 KiB.
pub const W3_BYTES: usize = 64 * 1024;

/// Command line of every bench binary: `<mechanism> <workload> <n>`.
#[derive(Debug, Clone)]
pub struct Args {
    /// The mechanism (peer or core variant).
    pub mechanism: String,
    /// The workload id (`w1`, `w2`, ...).
    pub workload: String,
    /// The message count.
    pub n: usize,
}

impl Args {
    /// Parses `std::env::args`, exiting with a usage line when they do not fit.
    pub fn parse(usage: &str) -> Args {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let n = argv
            .get(2)
            .and_then(|s| s.replace('_', "").parse::<usize>().ok());
        match (argv.first(), argv.get(1), n) {
            (Some(m), Some(w), Some(n)) if argv.len() == 3 && n > 0 => Args {
                mechanism: m.clone(),
                workload: w.clone(),
                n,
            },
            _ => {
                eprintln!("usage: {usage}");
                std::process::exit(2);
            }
        }
    }

    /// Exits with status 2 saying this mechanism does not run this workload.
    pub fn unsupported(&self) -> ! {
        eprintln!(
            "mechanism {:?} has no workload {:?}",
            self.mechanism, self.workload
        );
        std::process::exit(2);
    }
}

/// The result line a case prints: `RESULT {"value": .., "unit": .., ...}`.
#[derive(Debug, Default)]
pub struct Report {
    fields: Vec<(String, String)>,
}

impl Report {
    /// A report whose headline figure is `value` in `unit`.
    pub fn new(value: f64, unit: &str) -> Self {
        let mut r = Report::default();
        r.num("value", value);
        r.fields.push(("unit".into(), format!("\"{unit}\"")));
        r
    }

    /// Adds a numeric field.
    pub fn num(&mut self, key: &str, v: f64) -> &mut Self {
        let text = if v.is_finite() {
            format!("{v}")
        } else {
            "null".into()
        };
        self.fields.push((key.into(), text));
        self
    }

    /// Prints the `RESULT` line on stdout.
    pub fn print(&self) {
        let mut s = String::from("RESULT {");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "\"{k}\": {v}");
        }
        s.push('}');
        println!("{s}");
    }
}

/// A rate report (`msg/s`) for `count` deliveries in `elapsed`.
pub fn rate_report(count: usize, elapsed: Duration) -> Report {
    let secs = elapsed.as_secs_f64();
    let mut r = Report::new(count as f64 / secs, "msg/s");
    r.num("n", count as f64).num("secs", secs);
    r
}

/// A bandwidth report (`MB/s`, 10^6 bytes) for `count` buffers of `bytes` in `elapsed`.
pub fn bandwidth_report(count: usize, bytes: usize, elapsed: Duration) -> Report {
    let secs = elapsed.as_secs_f64();
    let mut r = Report::new((count * bytes) as f64 / secs / 1e6, "MB/s");
    r.num("n", count as f64).num("secs", secs);
    r
}

/// A latency report from one duration per round trip: headline p50, plus p99 and mean (µs).
pub fn latency_report(mut samples: Vec<Duration>) -> Report {
    assert!(!samples.is_empty(), "no round trips measured");
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pick = |q: f64| {
        let idx = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        us(samples[idx])
    };
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    let mut r = Report::new(pick(0.50), "us");
    r.num("p50", pick(0.50))
        .num("p99", pick(0.99))
        .num("mean", mean)
        .num("max", us(samples[samples.len() - 1]))
        .num("n", samples.len() as f64);
    r
}

/// A memory report: resident growth per message, and `payload` (bytes of the message
/// itself) so that the overhead above the payload can be read off.
pub fn memory_report(count: usize, rss_before: u64, rss_after: u64, payload: f64) -> Report {
    let per = rss_after.saturating_sub(rss_before) as f64 / count as f64;
    let mut r = Report::new(per, "B/msg");
    r.num("payload", payload)
        .num("overhead", per - payload)
        .num("n", count as f64)
        .num("rss_before", rss_before as f64)
        .num("rss_after", rss_after as f64);
    r
}

/// Resident set size of this process in bytes (`VmRSS` of /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// How many untimed round trips W2 makes before measuring (the same for every mechanism).
pub fn w2_warmup(n: usize) -> usize {
    (n / 100).clamp(10, 1000)
}

/// Runs W2's timed loop: `round_trip(i)` sends message `i` and waits for its echo.
pub fn measure_round_trips(n: usize, mut round_trip: impl FnMut(u64)) -> Vec<Duration> {
    for i in 0..w2_warmup(n) {
        round_trip(i as u64);
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        round_trip(i as u64);
        samples.push(t0.elapsed());
    }
    samples
}

/// A 64 KiB source buffer whose first eight bytes are overwritten with `seq` per message.
pub fn w3_source() -> Vec<u8> {
    (0..W3_BYTES).map(|i| i as u8).collect()
}

/// Stamps `seq` into the first bytes of a W3 buffer.
pub fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
}

/// What a W3 receiver does with each buffer: checks its length and reads its stamp.
pub fn check_buffer(buf: &[u8], seq: u64) {
    assert_eq!(buf.len(), W3_BYTES, "buffer {seq} has the wrong length");
    let got = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    assert_eq!(got, seq, "buffer {seq} arrived out of order");
}

/// A fresh W3b buffer made by the sender for message `seq` (the producer's work, the
/// same for every mechanism): allocated, filled and stamped.
pub fn fresh_buffer(seq: u64) -> Vec<u8> {
    let mut v = vec![seq as u8; W3_BYTES];
    stamp(&mut v, seq);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let r = latency_report(samples);
        let line: Vec<_> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert!(line.contains(&"p50=50".to_string()), "{line:?}");
        assert!(line.contains(&"p99=99".to_string()), "{line:?}");
    }

    #[test]
    fn rss_is_readable() {
        assert!(rss_bytes() > 0);
    }

    #[test]
    fn stamped_buffers_check() {
        let b = fresh_buffer(77);
        check_buffer(&b, 77);
    }
}
