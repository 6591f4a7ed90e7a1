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

    // A freed block keeps its bytes until someone clears it.
    pool::give(dirty_block(64 * KIB, 0xab));
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (1, 0));

    // `stop` is asked before each block: true at once clears nothing.
    assert_eq!(pool::scrub(|| true), 0);
    assert_eq!(pool::stats().zeroed_blocks, 0);

    // Cleared: the block stays in the pool, counted as cleared.
    assert_eq!(pool::scrub(|| false), 1);
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (1, 1));
    assert_eq!(s.scrubbed, start.scrubbed + 1);

    // A zeroed taker gets it, every byte 0, at the length asked for (a smaller request
    // of the same class included).
    let hits = s.hits;
    let v = pool::take_zeroed(60 * KIB);
    assert_eq!(v.len(), 60 * KIB);
    assert!(v.iter().all(|&b| b == 0));
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks, s.hits), (0, 0, hits + 1));

    // Takers that overwrite what they take use uncleared blocks first, leaving the
    // cleared ones for zeroed takers.
    let other = dirty_block(64 * KIB, 0xcd);
    pool::give(v);
    assert_eq!(pool::scrub(|| false), 1);
    pool::give(other);
    let s = pool::stats();
    assert_eq!((s.blocks, s.zeroed_blocks), (2, 1));
    let raw = pool::take(64 * KIB);
    assert!(
        raw.iter().all(|&b| b == 0xcd),
        "take() should use the uncleared block"
    );
    assert_eq!(pool::stats().zeroed_blocks, 1);
    let copy = pool::take_copy(&[7u8; 64 * KIB]);
    assert!(copy.iter().all(|&b| b == 7));
    assert_eq!(pool::stats().zeroed_blocks, 0);
    let filled = pool::take_filled(64 * KIB, 9);
    assert!(filled.iter().all(|&b| b == 9));
    drop((raw, copy, filled));

    // Blocks over MAX_SCRUB_BLOCK are left for their takers to clear.
    pool::clear();
    let big = pool::MAX_SCRUB_BLOCK * 2;
    pool::give(dirty_block(big, 0xee));
    assert_eq!(pool::scrub(|| false), 0);
    assert_eq!(pool::stats().zeroed_blocks, 0);
    let v = pool::take_zeroed(big);
    assert!(v.iter().all(|&b| b == 0));
    drop(v);

    // The bound counts cleared blocks too: lowering it frees them.
    pool::give(dirty_block(32 * KIB, 1));
    pool::scrub(|| false);
    assert_eq!(pool::stats().zeroed_blocks, 1);
    pool::set_limit(0);
    let s = pool::stats();
    assert_eq!((s.blocks, s.bytes, s.zeroed_blocks), (0, 0, 0));
    pool::set_limit(pool::DEFAULT_LIMIT);

    // A blocked receive clears freed blocks while its queue is empty, and still gets
    // its message.
    pool::clear();
    let (a, b) = MessageChannel::new().into_ports();
    let blocks: Vec<_> = [0x11, 0x22, 0x33]
        .into_iter()
        .map(|fill| dirty_block(64 * KIB, fill))
        .collect();
    blocks.into_iter().for_each(pool::give);
    let scrubbed = pool::stats().scrubbed;
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
