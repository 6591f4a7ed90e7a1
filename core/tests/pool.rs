//! The buffer pool's cleared blocks (`pool::scrub`): what a waiting thread clears ahead
//! of need, and what each taker gets from it.
//!
//! The pool is process-wide, so everything runs in one test, in order, in this binary's
//! own process.

use std::thread;
use std::time::{Duration, Instant};

use channel_messaging::{MessageChannel, Value, pool};

const KIB: usize = 1024;

/// Polls `cond` for up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn dirty_block(n: usize, fill: u8) -> Vec<u8> {
    let v = pool::take_filled(n, fill);
    assert!(v.iter().all(|&b| b == fill));
    v
}

#[test]
fn scrub_clears_freed_blocks_for_zeroed_takers() {
    pool::clear();
    let start = pool::stats();
    assert_eq!((start.blocks, start.zeroed_blocks), (0, 0));

    // Nothing to clear: no work, and `stop` is not even asked.
    assert_eq!(
        pool::scrub(|| panic!("asked to stop with nothing to clear")),
        0
    );

    // A freed block keeps its bytes. Nobody has asked for zeros yet, so there is no
    // demand for clearing it ahead of time.
    pool::give(dirty_block(64 * KIB, 0xab));
    assert_eq!(pool::scrub(|| false), 0);
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (1, 0));
    // Nor do takers that overwrite what they take.
    let blocks = [
        pool::take(64 * KIB),
        pool::take_copy(&[3u8; 64 * KIB]),
        pool::take_filled(64 * KIB, 4),
    ];
    blocks.into_iter().for_each(pool::give);
    assert_eq!(pool::scrub(|| false), 0);
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (3, 0));
    pool::clear();
    pool::give(dirty_block(64 * KIB, 0xab));

    // A zeroed taker clears that block itself, and leaves a demand of one block.
    let z = pool::take_zeroed(64 * KIB);
    assert!(z.iter().all(|&b| b == 0));
    let d = dirty_block(64 * KIB, 0xcd);
    pool::give(z);
    pool::give(d);
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (2, 0));

    // `stop` is asked before each block: true at once clears nothing.
    assert_eq!(pool::scrub(|| true), 0);
    assert_eq!(pool::stats().zeroed_blocks, 0);

    // One block cleared for the one zeroed take; then the demand is met.
    assert_eq!(pool::scrub(|| false), 1);
    assert_eq!(pool::scrub(|| false), 0);
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (2, 1));
    assert_eq!(s.scrubbed, start.scrubbed + 1);

    // Takers that overwrite what they take use uncleared blocks first, leaving the
    // cleared one for a zeroed taker...
    let raw = pool::take(64 * KIB);
    assert_eq!(pool::stats().zeroed_blocks, 1);
    // ...which gets it, every byte 0, at the length asked for (a smaller request of the
    // same class included).
    let hits = pool::stats().hits;
    let v = pool::take_zeroed(60 * KIB);
    assert_eq!(v.len(), 60 * KIB);
    assert!(v.iter().all(|&b| b == 0));
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks, s.hits), (0, 0, hits + 1));
    drop((raw, v));

    // Blocks over MAX_SCRUB_BLOCK are left for their takers to clear (the demand from
    // the take above stays).
    pool::clear();
    let big = pool::MAX_SCRUB_BLOCK * 2;
    pool::give(dirty_block(big, 0xee));
    assert_eq!(pool::scrub(|| false), 0);
    assert_eq!(pool::stats().zeroed_blocks, 0);

    // The bound counts cleared blocks too: lowering it frees them.
    pool::clear();
    pool::give(dirty_block(32 * KIB, 1));
    assert_eq!(pool::scrub(|| false), 1);
    assert_eq!(pool::stats().zeroed_blocks, 1);
    pool::set_limit(0);
    let s = pool::stats();
    assert_eq!((s.blocks, s.bytes, s.zeroed_blocks), (0, 0, 0));
    pool::set_limit(pool::DEFAULT_LIMIT);

    // A blocked receive clears freed blocks while its queue is empty (three zeroed takes
    // ask for three), and still gets its message.
    let blocks: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            let mut v = pool::take_zeroed(64 * KIB);
            v.fill(0x11 * (i + 1));
            v
        })
        .collect();
    blocks.into_iter().for_each(pool::give);
    assert_eq!(pool::stats().zeroed_blocks, 0);
    let scrubbed = pool::stats().scrubbed;
    let (a, b) = MessageChannel::new().into_ports();
    let receiver = thread::spawn(move || b.recv_message_timeout(Duration::from_secs(30)));
    eventually("the blocked receive to clear the freed blocks", || {
        pool::stats().zeroed_blocks == 3
    });
    assert_eq!(pool::stats().scrubbed, scrubbed + 3);
    a.post_message(&Value::from("done"), &[]).unwrap();
    let message = receiver.join().unwrap().expect("the message");
    assert_eq!(message.decode().unwrap().data, Value::from("done"));
    for _ in 0..3 {
        let v = pool::take_zeroed(64 * KIB);
        assert!(v.iter().all(|&b| b == 0));
    }
    assert_eq!(pool::stats().zeroed_blocks, 0);
}
