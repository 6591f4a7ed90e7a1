//! The buffer pool under concurrent takers, givers and scrubbers: a block handed out by
//! `take_zeroed` is all zeros however the clearing raced, every other taker gets the
//! bytes it asked for, and the pool's accounting adds up afterwards.
//!
//! (Its own test binary: the pool is process-wide.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use channel_messaging::pool;

const KIB: usize = 1024;
/// Sizes across several classes, some above `MAX_SCRUB_BLOCK` (never scrubbed).
const SIZES: [usize; 5] = [16 * KIB, 40 * KIB, 64 * KIB, 200 * KIB, 300 * KIB];

/// A small deterministic generator (xorshift), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn concurrent_takers_givers_and_scrubbers_never_see_stale_bytes() {
    pool::clear();
    // Small enough that blocks are refused and freed now and then.
    pool::set_limit(2 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let scrubbers: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut cleared = 0;
                while !stop.load(Ordering::Relaxed) {
                    cleared += pool::scrub(|| stop.load(Ordering::Relaxed));
                    thread::yield_now();
                }
                cleared
            })
        })
        .collect();
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut held: Vec<Vec<u8>> = Vec::new();
                for _ in 0..2_000 {
                    let n = SIZES[(rng.next() % SIZES.len() as u64) as usize];
                    let v = match rng.next() % 4 {
                        0 | 1 => {
                            let v = pool::take_zeroed(n);
                            assert_eq!(v.len(), n);
                            assert!(v.iter().all(|&b| b == 0), "take_zeroed gave stale bytes");
                            v
                        }
                        2 => {
                            let fill = (rng.next() % 255 + 1) as u8;
                            let v = pool::take_filled(n, fill);
                            assert!(v.len() == n && v.iter().all(|&b| b == fill));
                            v
                        }
                        _ => {
                            let mut v = pool::take(n);
                            assert_eq!(v.len(), n);
                            v.fill(0xa5);
                            v
                        }
                    };
                    let mut v = v;
                    // dirty what goes back, so a block that skipped clearing shows
                    let at = (rng.next() as usize) % n;
                    v[at] = 0xff;
                    held.push(v);
                    if held.len() > 8 || rng.next().is_multiple_of(3) {
                        let i = (rng.next() as usize) % held.len();
                        pool::give(held.swap_remove(i));
                    }
                }
                held.into_iter().for_each(pool::give);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let cleared: usize = scrubbers.into_iter().map(|s| s.join().unwrap()).sum();
    assert!(cleared > 0, "the scrubbers cleared nothing");

    let s = pool::stats();
    assert!(s.bytes <= s.limit, "{s:?}");
    assert!(s.zeroed_blocks <= s.blocks, "{s:?}");
    assert_eq!(s.scrubbed, cleared as u64);
    // What the pool holds still serves zeroed takers with zeros, down to the last block.
    for _ in 0..s.blocks {
        for n in SIZES {
            let v = pool::take_zeroed(n);
            assert!(v.iter().all(|&b| b == 0));
        }
    }
    pool::clear();
    let s = pool::stats();
    assert_eq!((s.blocks, s.bytes, s.zeroed_blocks), (0, 0, 0));
    pool::set_limit(pool::DEFAULT_LIMIT);
}
