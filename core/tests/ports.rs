//! Conformance tests for spec.md sections (a)–(f): channels, the port message queue,
//! postMessage and transfer, close, messageerror and lifetime. Each test is named after
//! the spec item it checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use channel_messaging::{
    Buffer, Limits, MessageChannel, MessagePort, RecvError, RecvTimeoutError, TryRecvError, Value,
};

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn recv_int(p: &MessagePort) -> i64 {
    p.recv_timeout(Duration::from_secs(10))
        .expect("a message")
        .data
        .as_i64()
        .expect("an integer")
}

fn assert_empty(p: &MessagePort) {
    assert!(
        matches!(p.try_recv(), Err(TryRecvError::Empty)),
        "expected an empty queue"
    );
}

fn assert_closed(p: &MessagePort) {
    assert!(
        matches!(
            p.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Closed)
        ),
        "expected the port to have ended"
    );
}

/// Counts how often a ready hook fires.
fn counting_hook(p: &MessagePort) -> Arc<AtomicUsize> {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&fired);
    p.set_ready_hook(Some(Arc::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    })));
    fired
}

// ---- (a) creation and entanglement -------------------------------------------------

#[test]
fn a1_a2_channel_has_two_entangled_ports() {
    let ch = MessageChannel::new();
    ch.port1().post_message(&int(1), &[]).unwrap();
    ch.port2().post_message(&int(2), &[]).unwrap();
    assert_eq!(recv_int(ch.port2()), 1);
    assert_eq!(recv_int(ch.port1()), 2);
    assert!(ch.port1().is_entangled() && ch.port2().is_entangled());
}

#[test]
fn a3_port_accessors_return_the_same_objects_after_transfer_and_close() {
    let ch = MessageChannel::new();
    let (c, d) = MessageChannel::new().into_ports();
    let p1 = ch.port1().clone();
    c.post_message(&Value::Null, &[ch.port1()]).unwrap();
    ch.port2().close();
    assert_eq!(ch.port1(), &p1);
    assert!(ch.port1().is_detached());
    assert!(ch.port2().is_closed());
    drop(d);
}

#[test]
fn a5_entanglement_is_one_to_one_and_moves_with_transfer() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Port(0), &[&b]).unwrap();
    let b2 = d.recv().unwrap().ports.remove(0);
    // a is now entangled with the new object, not with the old handle.
    a.post_message(&int(7), &[]).unwrap();
    assert_eq!(recv_int(&b2), 7);
    assert!(matches!(b.try_recv(), Err(TryRecvError::Closed)));
}

#[test]
fn a7_new_port_starts_disabled_and_attached() {
    let (a, _b) = MessageChannel::new().into_ports();
    assert!(!a.is_started());
    assert!(!a.is_detached() && !a.is_closed());
    let s = a.stats();
    assert_eq!((s.queued_messages, s.queued_bytes, s.closed), (0, 0, false));
}

#[test]
fn a8_disentangle_reports_close_at_the_partner_only() {
    let (a, b) = MessageChannel::new().into_ports();
    a.close();
    assert_closed(&b);
    // The binding fires `close` at b (it did not close itself), never at a.
    assert!(!b.is_closed());
    assert!(a.is_closed());
}

// ---- (b) the port message queue ----------------------------------------------------

#[test]
fn b1_messages_are_kept_while_the_queue_is_disabled() {
    let (a, b) = MessageChannel::new().into_ports();
    let fired = counting_hook(&b);
    for i in 0..5 {
        a.post_message(&int(i), &[]).unwrap();
    }
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "a disabled queue must not wake its hook"
    );
    assert_eq!(b.stats().queued_messages, 5);
    b.start();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    for i in 0..5 {
        assert_eq!(b.try_recv().unwrap().data, int(i));
    }
}

#[test]
fn b2_only_start_enables_the_queue_and_start_is_idempotent() {
    let (a, b) = MessageChannel::new().into_ports();
    let fired = counting_hook(&b);
    assert!(!b.is_started(), "setting a hook does not start the queue");
    a.post_message(&int(1), &[]).unwrap();
    b.start();
    b.start();
    assert!(b.is_started());
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

#[test]
fn b3_an_enabled_queue_stays_enabled() {
    let (a, b) = MessageChannel::new().into_ports();
    b.start();
    b.set_ready_hook(None);
    assert!(b.is_started());
    let fired = counting_hook(&b);
    a.post_message(&int(1), &[]).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

#[test]
fn b4_wakeups_are_coalesced_until_the_queue_is_drained() {
    let (a, b) = MessageChannel::new().into_ports();
    let fired = counting_hook(&b);
    b.start();
    for i in 0..100 {
        a.post_message(&int(i), &[]).unwrap();
    }
    assert_eq!(fired.load(Ordering::SeqCst), 1, "one wake-up for a burst");
    for _ in 0..100 {
        b.try_recv().unwrap();
    }
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_empty(&b); // finding the queue empty re-arms the hook
    a.post_message(&int(100), &[]).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 2);
}

#[test]
fn b6_fifo_per_port_across_threads() {
    let (a, b) = MessageChannel::new().into_ports();
    let n = 100_000;
    let t = thread::spawn(move || {
        for i in 0..n {
            a.post_message(&int(i), &[]).unwrap();
        }
    });
    for i in 0..n {
        assert_eq!(recv_int(&b), i);
    }
    t.join().unwrap();
}

#[test]
fn b8_enabling_late_delivers_everything_in_order() {
    let (a, b) = MessageChannel::new().into_ports();
    for i in 0..10 {
        a.post_message(&int(i), &[]).unwrap();
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, port) = (Arc::clone(&seen), b.clone());
    b.set_ready_hook(Some(Arc::new(move || {
        // A binding would schedule this; draining inline is fine for a test.
        while let Ok(ev) = port.try_recv() {
            s.lock().unwrap().push(ev.data.as_i64().unwrap());
        }
    })));
    b.start();
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn b9_a_received_port_starts_disabled() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    b.start();
    a.post_message(&int(1), &[]).unwrap();
    c.post_message(&Value::Port(0), &[&b]).unwrap();
    let b2 = d.recv().unwrap().ports.remove(0);
    assert!(!b2.is_started());
    let fired = counting_hook(&b2);
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    b2.start();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(recv_int(&b2), 1);
}

// ---- (c) postMessage ---------------------------------------------------------------

#[test]
fn c3_source_port_in_transfer_is_checked_first() {
    let (a, _b) = MessageChannel::new().into_ports();
    a.close();
    // Even on a closed port, and even with a message that cannot be encoded.
    let err = a.post_message(&Value::Port(9), &[&a]).unwrap_err();
    assert!(err.message().contains("source port"), "{err}");
}

#[test]
fn c4_post_from_a_closed_port_is_silent_but_still_transfers() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    a.close();
    a.post_message(&int(1), &[&c]).unwrap();
    assert!(c.is_detached(), "transfer side effects happen (spec C4)");
    // The shipped port is lost, so its partner learns of it.
    assert_closed(&d);
    assert_closed(&b);
}

#[test]
fn c4_post_after_partner_closed_delivers_nothing() {
    let (a, b) = MessageChannel::new().into_ports();
    b.close();
    a.post_message(&int(1), &[]).unwrap();
    assert_closed(&a);
    a.post_message(&int(2), &[]).unwrap();
    assert_closed(&b);
}

#[test]
fn c5_duplicate_in_transfer_is_a_data_clone_error() {
    let (a, _b) = MessageChannel::new().into_ports();
    let (c, _d) = MessageChannel::new().into_ports();
    let err = a.post_message(&Value::Null, &[&c, &c]).unwrap_err();
    assert!(err.message().contains("twice"), "{err}");
    assert!(!c.is_detached());
}

#[test]
fn c5_validation_is_all_or_nothing() {
    let (a, b) = MessageChannel::new().into_ports();
    let (fresh, fresh_partner) = MessageChannel::new().into_ports();
    let (closed, _x) = MessageChannel::new().into_ports();
    closed.close();
    let err = a
        .post_message(&Value::Null, &[&fresh, &closed])
        .unwrap_err();
    assert!(err.message().contains("closed"), "{err}");
    // Nothing was detached: the fresh port still works (WPT Worker-multi-port).
    assert!(!fresh.is_detached());
    fresh.post_message(&int(3), &[]).unwrap();
    assert_eq!(recv_int(&fresh_partner), 3);
    assert_empty(&b);
}

#[test]
fn c5_already_transferred_port_is_a_data_clone_error() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, _d) = MessageChannel::new().into_ports();
    a.post_message(&Value::Null, &[&c]).unwrap();
    let err = a.post_message(&Value::Null, &[&c]).unwrap_err();
    assert!(err.message().contains("already transferred"), "{err}");
    assert_eq!(b.recv().unwrap().ports.len(), 1);
    assert_empty(&b);
}

#[test]
fn c7_ports_arrive_in_transfer_list_order() {
    let (a, b) = MessageChannel::new().into_ports();
    let chans: Vec<_> = (0..3).map(|_| MessageChannel::new().into_ports()).collect();
    let list: Vec<&MessagePort> = chans.iter().map(|(x, _)| x).collect();
    a.post_message(&Value::Null, &list).unwrap();
    let ports = b.recv().unwrap().ports;
    for (i, (p, (_, other))) in ports.iter().zip(&chans).enumerate() {
        other.post_message(&int(i as i64), &[]).unwrap();
        assert_eq!(recv_int(p), i as i64);
    }
}

#[test]
fn c8_a_port_in_data_is_its_entry_in_ports() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c1, _d1) = MessageChannel::new().into_ports();
    let (c2, _d2) = MessageChannel::new().into_ports();
    let msg = Value::Object(vec![
        ("second".into(), Value::Port(1)),
        ("first".into(), Value::Port(0)),
    ]);
    a.post_message(&msg, &[&c1, &c2]).unwrap();
    let ev = b.recv().unwrap();
    assert_eq!(ev.data.get("second"), Some(&Value::Port(1)));
    assert_eq!(ev.ports.len(), 2);
}

#[test]
fn c9_the_old_handle_is_inert_after_transfer() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Null, &[&a]).unwrap();
    assert!(a.is_detached());
    // Posting does nothing and does not throw.
    a.post_message(&int(1), &[]).unwrap();
    assert_empty(&b);
    // Transferring it again is a DataCloneError.
    assert!(c.post_message(&Value::Null, &[&a]).is_err());
    // The new object works.
    let a2 = d.recv().unwrap().ports.remove(0);
    a2.post_message(&int(2), &[]).unwrap();
    assert_eq!(recv_int(&b), 2);
}

#[test]
fn c10_messages_in_transit_reach_the_new_owner_in_order_across_hops() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(0), &[]).unwrap();
    let mut holder = b;
    for hop in 1..=5 {
        let (c, d) = MessageChannel::new().into_ports();
        c.post_message(&Value::Port(0), &[&holder]).unwrap();
        // Sent while the port is in transit.
        a.post_message(&int(hop), &[]).unwrap();
        holder = d.recv().unwrap().ports.remove(0);
    }
    for i in 0..=5 {
        assert_eq!(recv_int(&holder), i);
    }
}

#[test]
fn c10_outgoing_messages_keep_their_order_across_hops() {
    let (a, b) = MessageChannel::new().into_ports();
    let mut sender = a;
    for i in 0..4 {
        sender.post_message(&int(i), &[]).unwrap();
        let (c, d) = MessageChannel::new().into_ports();
        c.post_message(&Value::Null, &[&sender]).unwrap();
        sender = d.recv().unwrap().ports.remove(0);
    }
    sender.post_message(&int(4), &[]).unwrap();
    for i in 0..5 {
        assert_eq!(recv_int(&b), i);
    }
}

#[test]
fn c10_both_ends_transferred_to_the_same_receiver() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(1), &[]).unwrap();
    b.post_message(&int(2), &[]).unwrap();
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Null, &[&a, &b]).unwrap();
    let mut ports = d.recv().unwrap().ports;
    let b2 = ports.pop().unwrap();
    let a2 = ports.pop().unwrap();
    assert_eq!(recv_int(&b2), 1);
    assert_eq!(recv_int(&a2), 2);
    a2.post_message(&int(3), &[]).unwrap();
    assert_eq!(recv_int(&b2), 3);
}

#[test]
fn c10_queued_messages_of_an_enabled_port_move_with_it() {
    let (a, b) = MessageChannel::new().into_ports();
    b.start();
    a.post_message(&int(1), &[]).unwrap();
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Null, &[&b]).unwrap();
    let b2 = d.recv().unwrap().ports.remove(0);
    assert_eq!(recv_int(&b2), 1);
}

#[test]
fn c11_doomed_target_in_transfer_drops_the_message_and_the_channel() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(1), &[&b]).unwrap();
    assert!(b.is_detached());
    // The channel is lost: a learns of it.
    assert_closed(&a);
}

#[test]
fn c12_a_port_can_be_transferred_many_times() {
    let (a, mut b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    for _ in 0..100 {
        c.post_message(&Value::Null, &[&b]).unwrap();
        b = d.recv().unwrap().ports.remove(0);
    }
    a.post_message(&int(9), &[]).unwrap();
    assert_eq!(recv_int(&b), 9);
}

#[test]
fn c13_buffers_travel_without_a_copy() {
    let (a, b) = MessageChannel::new().into_ports();
    let bytes = vec![42u8; 64 * 1024];
    let ptr = bytes.as_ptr();
    a.post_message(&Value::Buffer(Buffer::from(bytes)), &[])
        .unwrap();
    let Value::Buffer(got) = b.recv().unwrap().data else {
        panic!("expected a buffer")
    };
    assert_eq!(got.len(), 64 * 1024);
    assert_eq!(got.as_slice().as_ptr(), ptr, "the bytes were copied");
    let owned = got.into_vec();
    assert_eq!(owned.as_ptr(), ptr, "the receiver owns them without a copy");
}

/// `post_message_owned` moves every side-table buffer, wherever it sits in the value:
/// each arrives as the only handle to the sender's allocation.
#[test]
fn c13_an_owned_post_moves_every_buffer_without_a_copy() {
    use channel_messaging::{View, ViewKind};
    let (a, b) = MessageChannel::new().into_ports();
    let make = |fill: u8| vec![fill; 4096];
    let (v1, v2, v3, v4) = (make(1), make(2), make(3), make(4));
    let ptrs = [v1.as_ptr(), v2.as_ptr(), v3.as_ptr(), v4.as_ptr()];
    let message = Value::Array(vec![
        Value::Buffer(Buffer::from(v1)),
        Value::Object(vec![("frame".into(), Value::Buffer(Buffer::from(v2)))]),
        Value::View(View {
            kind: ViewKind::Uint8,
            buffer: Box::new(Value::Buffer(Buffer::from(v3))),
            byte_offset: 16,
            length: 32,
        }),
        Value::Map(vec![(Value::from("k"), Value::Buffer(Buffer::from(v4)))]),
        Value::Buffer(Buffer::from(vec![9u8; 8])), // small: copied inline
    ]);
    a.post_message_owned(message, &[]).unwrap();

    let Value::Array(items) = b.recv().unwrap().data else {
        panic!("expected an array")
    };
    let mut got = Vec::new();
    let Value::Buffer(x) = &items[0] else {
        panic!()
    };
    got.push(x.clone());
    let Value::Object(entries) = &items[1] else {
        panic!()
    };
    let Value::Buffer(x) = &entries[0].1 else {
        panic!()
    };
    got.push(x.clone());
    let Value::View(view) = &items[2] else {
        panic!()
    };
    let Value::Buffer(x) = &*view.buffer else {
        panic!()
    };
    got.push(x.clone());
    let Value::Map(entries) = &items[3] else {
        panic!()
    };
    let Value::Buffer(x) = &entries[0].1 else {
        panic!()
    };
    got.push(x.clone());
    drop(items);
    for (i, (buf, ptr)) in got.into_iter().zip(ptrs).enumerate() {
        assert!(
            buf.is_unique(),
            "buffer {i} is still shared with the sender"
        );
        assert_eq!(buf[0], i as u8 + 1);
        let owned = buf.into_vec();
        assert_eq!(owned.as_ptr(), ptr, "buffer {i} was copied");
    }
}

#[test]
fn c13_an_owned_post_checks_like_post_message() {
    let (a, b) = MessageChannel::new().into_ports();
    let big = Value::Buffer(Buffer::from(vec![0u8; 4096]));
    let bad = Value::Array(vec![big, Value::Port(0)]);
    assert!(a.post_message_owned(bad, &[]).is_err(), "spec C15");
    assert_empty(&b);
    assert!(
        a.post_message_owned(Value::Null, &[&a]).is_err(),
        "spec C3: the source port in its own transfer list"
    );
    // Ports travel with an owned post as with post_message.
    let (c, d) = MessageChannel::new().into_ports();
    let frame = Value::Buffer(Buffer::from(vec![5u8; 2048]));
    a.post_message_owned(Value::Array(vec![Value::Port(0), frame]), &[&c])
        .unwrap();
    let mut event = b.recv().unwrap();
    assert!(c.is_detached());
    let c2 = event.ports.remove(0);
    d.post_message(&int(3), &[]).unwrap();
    assert_eq!(recv_int(&c2), 3);
}

/// Messages of every shape (bytes only, a few bytes with one buffer, more bytes with
/// one buffer, several buffers, buffers with ports) arrive intact.
#[test]
fn c13_messages_of_every_shape_round_trip() {
    let (a, b) = MessageChannel::new().into_ports();
    let big = |fill: u8| Value::Buffer(Buffer::from(vec![fill; 2048]));
    let long_key = "a key long enough to need more than fourteen bytes";
    let shapes = vec![
        int(1),
        big(1),
        Value::Object(vec![(long_key.into(), big(2))]),
        Value::Array(vec![big(3), big(4)]),
        Value::Array(vec![Value::Port(0), big(5)]),
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let (c, _d) = MessageChannel::new().into_ports();
        let transfer: Vec<&MessagePort> = if i == 4 { vec![&c] } else { vec![] };
        a.post_message(&shape, &transfer).unwrap();
        let event = b.recv().unwrap();
        assert_eq!(event.ports.len(), transfer.len(), "shape {i}");
        if i != 4 {
            assert_eq!(event.data, shape, "shape {i}");
        }
    }
}

#[test]
fn c14_unreferenced_transfer_items_are_still_transferred() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, _d) = MessageChannel::new().into_ports();
    a.post_message(&Value::from("no ports here"), &[&c])
        .unwrap();
    assert!(c.is_detached());
    assert_eq!(b.recv().unwrap().ports.len(), 1);
}

#[test]
fn c15_a_port_in_the_message_but_not_in_transfer_is_a_data_clone_error() {
    let (a, b) = MessageChannel::new().into_ports();
    assert!(a.post_message(&Value::Port(0), &[]).is_err());
    assert_empty(&b);
}

// ---- (d) close ---------------------------------------------------------------------

#[test]
fn d1_close_is_idempotent() {
    let (a, b) = MessageChannel::new().into_ports();
    a.close();
    a.close();
    assert_closed(&b);
    assert_closed(&b);
    // On a port that is no longer entangled it only marks it closed.
    b.close();
    assert!(b.is_closed());
}

#[test]
fn d2_a_closed_port_cannot_be_transferred_but_its_partner_can() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    a.close();
    assert!(c.post_message(&Value::Null, &[&a]).is_err());
    c.post_message(&Value::Null, &[&b]).unwrap();
    let b2 = d.recv().unwrap().ports.remove(0);
    assert_closed(&b2);
}

#[test]
fn d3_traffic_after_close_is_dropped() {
    let (a, b) = MessageChannel::new().into_ports();
    b.close();
    a.post_message(&int(1), &[]).unwrap();
    assert_closed(&b);
    assert_eq!(b.stats().queued_messages, 0);
}

#[test]
fn d4_messages_posted_before_close_are_delivered() {
    let (a, b) = MessageChannel::new().into_ports();
    for i in 0..3 {
        a.post_message(&int(i), &[]).unwrap();
    }
    a.close();
    for i in 0..3 {
        assert_eq!(recv_int(&b), i);
    }
    assert_closed(&b);
}

#[test]
fn d4_own_queued_messages_are_still_received_after_close() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(1), &[]).unwrap();
    b.close();
    assert_eq!(recv_int(&b), 1);
    assert_closed(&b);
}

#[test]
fn d5_close_is_observed_by_recv_stream_and_hook() {
    use futures::StreamExt;
    let (a, b) = MessageChannel::new().into_ports();
    let fired = counting_hook(&b);
    b.start();
    a.post_message(&int(1), &[]).unwrap();
    a.close();
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    let mut stream = b.clone();
    let items: Vec<_> =
        futures::executor::block_on(async { (&mut stream).collect::<Vec<_>>().await });
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap().data, int(1));
}

#[test]
fn d5_dropping_a_port_closes_it() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(1), &[]).unwrap();
    drop(a);
    assert_eq!(recv_int(&b), 1);
    assert_closed(&b);
}

#[test]
fn d5_close_wakes_a_blocked_receiver() {
    let (a, b) = MessageChannel::new().into_ports();
    let t = thread::spawn(move || b.recv());
    thread::sleep(Duration::from_millis(50));
    a.close();
    assert!(matches!(t.join().unwrap(), Err(RecvError::Closed)));
}

#[test]
fn d7_close_while_the_partner_is_in_transit_reaches_the_new_owner() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Null, &[&b]).unwrap();
    a.close();
    let b2 = d.recv().unwrap().ports.remove(0);
    assert_closed(&b2);
}

#[test]
fn d7_transferring_is_not_closing() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Null, &[&b]).unwrap();
    let _b2 = d.recv().unwrap().ports.remove(0);
    assert_empty(&a);
    assert!(a.is_entangled());
}

// ---- (e) messageerror --------------------------------------------------------------

#[test]
fn e1_undecodable_message_is_a_messageerror_and_the_next_one_is_fine() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_encoded(&[0xff, 0x00, 0x13], Vec::new(), &[])
        .unwrap();
    a.post_message(&int(2), &[]).unwrap();
    assert!(matches!(b.recv(), Err(RecvError::MessageError(_))));
    assert_eq!(recv_int(&b), 2);
}

#[test]
fn e6_ports_of_an_undecodable_message_are_closed() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    a.post_encoded(&[0xff], Vec::new(), &[&c]).unwrap();
    assert!(matches!(b.recv(), Err(RecvError::MessageError(_))));
    assert_closed(&d);
}

#[test]
fn e_serde_type_mismatch_is_a_messageerror() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&Value::from("not a number"), &[]).unwrap();
    a.post(&5u32).unwrap();
    assert!(matches!(
        b.recv_as::<u32>(),
        Err(RecvError::MessageError(_))
    ));
    assert_eq!(b.recv_as::<u32>().unwrap(), 5);
}

// ---- (f) lifetime ------------------------------------------------------------------

/// A buffer whose owner counts its drops.
fn tracked(drops: &Arc<AtomicUsize>) -> Buffer {
    struct Owner(Vec<u8>, Arc<AtomicUsize>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    Buffer::from_owner(Owner(vec![1; 4096], Arc::clone(drops)))
}

#[test]
fn f6_dropping_everything_leaks_no_port_and_no_message() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    let (e, f) = MessageChannel::new().into_ports();
    // Messages queued in b, one of which carries port c, in whose inbox another waits.
    d.post_message(&Value::Buffer(tracked(&drops)), &[])
        .unwrap();
    a.post_message(&Value::Buffer(tracked(&drops)), &[])
        .unwrap();
    a.post_message(
        &Value::Array(vec![Value::Buffer(tracked(&drops)), Value::Port(0)]),
        &[&c],
    )
    .unwrap();
    // A port in flight inside e's partner f, never received.
    e.post_message(&Value::Buffer(tracked(&drops)), &[&d])
        .unwrap();
    drop((a, b, c, e, f));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        4,
        "every queued buffer was freed"
    );
}

#[test]
fn f6_a_dropped_idle_port_disentangles_its_partner() {
    let (a, b) = MessageChannel::new().into_ports();
    drop(b);
    a.post_message(&int(1), &[]).unwrap();
    assert_closed(&a);
    assert!(!a.is_entangled());
}

// ---- receiving, all ways ----------------------------------------------------------

#[test]
fn recv_timeout_times_out_and_then_receives() {
    let (a, b) = MessageChannel::new().into_ports();
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    ));
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        a.post_message(&int(5), &[]).unwrap();
        a
    });
    assert_eq!(recv_int(&b), 5);
    drop(t.join().unwrap());
}

#[test]
fn recv_async_and_stream_receive_from_another_thread() {
    use futures::StreamExt;
    let (a, b) = MessageChannel::new().into_ports();
    let t = thread::spawn(move || {
        for i in 0..1000 {
            a.post_message(&int(i), &[]).unwrap();
        }
    });
    futures::executor::block_on(async {
        assert_eq!(b.recv_async().await.unwrap().data, int(0));
        let mut stream = b.clone();
        let mut next = 1;
        while let Some(ev) = stream.next().await {
            assert_eq!(ev.unwrap().data, int(next));
            next += 1;
        }
        assert_eq!(next, 1000);
    });
    t.join().unwrap();
}

#[test]
fn a_blocked_receiver_gives_way_when_its_port_is_transferred() {
    let (a, b) = MessageChannel::new().into_ports();
    let (c, d) = MessageChannel::new().into_ports();
    let b_blocked = b.clone();
    let t = thread::spawn(move || b_blocked.recv());
    thread::sleep(Duration::from_millis(50));
    c.post_message(&Value::Null, &[&b]).unwrap();
    assert!(matches!(t.join().unwrap(), Err(RecvError::Closed)));
    a.post_message(&int(1), &[]).unwrap();
    let b2 = d.recv().unwrap().ports.remove(0);
    assert_eq!(recv_int(&b2), 1);
}

// ---- flow control ------------------------------------------------------------------

#[test]
fn flow_control_limits_signal_pressure_and_lose_nothing() {
    let (a, b) = MessageChannel::new().into_ports();
    assert!(a.is_ready(), "unbounded by default");
    b.set_limits(Limits {
        max_messages: Some(3),
        max_bytes: None,
    });
    for i in 0..5 {
        a.post_message(&int(i), &[]).unwrap();
    }
    assert!(!a.is_ready());
    assert_eq!(b.stats().queued_messages, 5, "limits never drop");
    let waiter = {
        let a = a.clone();
        thread::spawn(move || futures::executor::block_on(a.ready()))
    };
    for i in 0..3 {
        assert_eq!(recv_int(&b), i);
    }
    waiter.join().unwrap();
    assert!(a.is_ready());
}

#[test]
fn flow_control_byte_limit_and_stats() {
    let (a, b) = MessageChannel::new().into_ports();
    b.set_limits(Limits {
        max_messages: None,
        max_bytes: Some(10_000),
    });
    a.post_message(&Value::Buffer(Buffer::from(vec![0u8; 8_000])), &[])
        .unwrap();
    assert!(a.is_ready());
    a.post_message(&Value::Buffer(Buffer::from(vec![0u8; 8_000])), &[])
        .unwrap();
    assert!(!a.is_ready());
    let s = b.stats();
    assert_eq!(s.queued_messages, 2);
    assert!(s.queued_bytes >= 16_000, "{s:?}");
    assert_eq!(s.limits.max_bytes, Some(10_000));
    b.try_recv().unwrap();
    assert!(a.is_ready());
}

#[test]
fn flow_control_limits_move_with_the_port() {
    let (a, b) = MessageChannel::new().into_ports();
    b.set_limits(Limits {
        max_messages: Some(1),
        max_bytes: None,
    });
    let (c, d) = MessageChannel::new().into_ports();
    c.post_message(&Value::Null, &[&b]).unwrap();
    let b2 = d.recv().unwrap().ports.remove(0);
    assert_eq!(b2.stats().limits.max_messages, Some(1));
    a.post_message(&int(1), &[]).unwrap();
    assert!(!a.is_ready());
}

#[test]
fn ready_resolves_when_the_partner_goes_away() {
    let (a, b) = MessageChannel::new().into_ports();
    b.set_limits(Limits {
        max_messages: Some(1),
        max_bytes: None,
    });
    a.post_message(&int(1), &[]).unwrap();
    assert!(!a.is_ready());
    drop(b);
    futures::executor::block_on(a.ready());
}

// ---- moving a port by handle ---------------------------------------------------------

#[test]
fn exported_handles_are_single_use_and_unforgeable() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(1), &[]).unwrap();
    let h = b.export_handle().unwrap();
    assert_ne!(h, 0);
    assert!(b.is_detached(), "exporting detaches like a transfer");
    assert!(
        b.export_handle().is_err(),
        "an inert handle cannot be exported again"
    );
    a.post_message(&int(2), &[]).unwrap(); // in transit
    assert!(MessagePort::import_handle(h.wrapping_add(1)).is_none());
    assert!(MessagePort::import_handle(0).is_none());
    let b2 = thread::spawn(move || MessagePort::import_handle(h).expect("first import"))
        .join()
        .unwrap();
    assert!(MessagePort::import_handle(h).is_none(), "second import");
    assert!(!b2.is_started(), "an imported port starts disabled");
    assert_eq!(recv_int(&b2), 1);
    assert_eq!(recv_int(&b2), 2);
    let (c, _d) = MessageChannel::new().into_ports();
    c.close();
    assert!(
        c.export_handle().is_err(),
        "a closed port cannot be exported"
    );
}

#[test]
fn b5_posting_only_signals_delivery_happens_at_the_receiver() {
    // The hook is a wake-up, never a dispatch: the message is still queued when it runs.
    let (a, b) = MessageChannel::new().into_ports();
    let seen = Arc::new(AtomicUsize::new(usize::MAX));
    let (s, port) = (Arc::clone(&seen), b.clone());
    b.set_ready_hook(Some(Arc::new(move || {
        s.store(port.stats().queued_messages, Ordering::SeqCst);
    })));
    b.start();
    a.post_message(&int(1), &[]).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(recv_int(&b), 1);
}

#[test]
fn stats_report_closed_as_soon_as_the_partner_closes() {
    let (a, b) = MessageChannel::new().into_ports();
    a.post_message(&int(1), &[]).unwrap();
    assert!(!b.stats().closed);
    a.close();
    let s = b.stats();
    assert!(s.closed, "the partner closed, before b received the close");
    assert_eq!(s.queued_messages, 1, "what was sent before is still there");
    assert_eq!(recv_int(&b), 1);
    assert_closed(&b);
}

#[test]
fn bindings_poll_raw_messages_and_take_their_buffers() {
    use std::task::{Context, Poll, Waker};
    let (a, b) = MessageChannel::new().into_ports();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(b.poll_recv_message(&mut cx).is_pending());
    let bytes = vec![9u8; 8192];
    let ptr = bytes.as_ptr();
    a.post_message(&Value::Buffer(Buffer::from(bytes)), &[])
        .unwrap();
    let Poll::Ready(Ok(mut msg)) = b.poll_recv_message(&mut cx) else {
        panic!("expected a message")
    };
    let buffers = msg.take_buffers();
    assert_eq!(
        buffers.len(),
        1,
        "an 8 KiB buffer travels in the side table"
    );
    assert!(msg.buffers().is_empty());
    drop(msg);
    let owned = buffers.into_iter().next().unwrap().into_vec();
    assert_eq!(owned.as_ptr(), ptr, "taken without a copy");
    a.close();
    assert!(matches!(
        b.poll_recv_message(&mut cx),
        Poll::Ready(Err(TryRecvError::Closed))
    ));
}

#[test]
fn d5_close_hook_fires_once_for_an_unstarted_port() {
    let (a, b) = MessageChannel::new().into_ports();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&fired);
    b.set_close_hook(Some(Arc::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    })));
    a.post_message(&int(1), &[]).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    a.close();
    a.close();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "once, without start()");
    assert!(!b.is_started());
    // In-band delivery is unchanged: the message, then the close.
    assert_eq!(recv_int(&b), 1);
    assert_closed(&b);
    // Set after the partner is gone: called at once.
    let late = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&late);
    b.set_close_hook(Some(Arc::new(move || {
        l.fetch_add(1, Ordering::SeqCst);
    })));
    assert_eq!(late.load(Ordering::SeqCst), 1);
}

#[test]
fn d5_close_hook_fires_when_the_partner_is_dropped_or_lost() {
    let count = |p: &MessagePort| {
        let fired = Arc::new(AtomicUsize::new(0));
        let f = Arc::clone(&fired);
        p.set_close_hook(Some(Arc::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
        })));
        fired
    };
    let (a, b) = MessageChannel::new().into_ports();
    let fired = count(&b);
    drop(a);
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    // A port lost in a message that is never delivered.
    let (c, d) = MessageChannel::new().into_ports();
    let (x, y) = MessageChannel::new().into_ports();
    let fired = count(&d);
    x.post_message(&Value::Null, &[&c]).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 0, "in transit is not closed");
    drop(y);
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    drop(x);
}

/// A waker that runs code of its own when woken.
struct CallbackWaker(Box<dyn Fn() + Send + Sync>);
impl std::task::Wake for CallbackWaker {
    fn wake(self: Arc<Self>) {
        (self.0)();
    }
}

#[test]
fn flow_control_wakers_run_with_no_lock_held() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let (a, b) = MessageChannel::new().into_ports();
    b.set_limits(Limits {
        max_messages: Some(1),
        max_bytes: None,
    });
    a.post_message(&int(1), &[]).unwrap();
    // The waker calls back into the receiving port, as a binding's waker may.
    let (b2, woken) = (b.clone(), Arc::new(AtomicUsize::new(0)));
    let w = Arc::clone(&woken);
    let waker = Waker::from(Arc::new(CallbackWaker(Box::new(move || {
        let _ = b2.stats();
        w.fetch_add(1, Ordering::SeqCst);
    }))));
    let mut ready = Box::pin(a.ready());
    assert!(
        ready
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        b.try_recv().unwrap();
        done_tx.send(()).unwrap();
        b
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the receive deadlocked in its waker");
    let _b = t.join().unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 1);
}

#[test]
fn flow_control_close_releases_waiting_senders() {
    let (a, b) = MessageChannel::new().into_ports();
    b.set_limits(Limits {
        max_messages: Some(1),
        max_bytes: None,
    });
    a.post_message(&int(1), &[]).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let a = a.clone();
        thread::spawn(move || {
            futures::executor::block_on(a.ready());
            done_tx.send(()).unwrap();
        });
    }
    thread::sleep(Duration::from_millis(30));
    b.close();
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("close() did not wake the waiting sender");
    assert!(a.is_ready());
}

#[test]
fn flow_control_ready_resolves_when_the_sender_itself_closes_or_moves() {
    for transfer in [false, true] {
        let (a, b) = MessageChannel::new().into_ports();
        b.set_limits(Limits {
            max_messages: Some(1),
            max_bytes: None,
        });
        a.post_message(&int(1), &[]).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        {
            let a = a.clone();
            thread::spawn(move || {
                futures::executor::block_on(a.ready());
                done_tx.send(()).unwrap();
            });
        }
        thread::sleep(Duration::from_millis(30));
        let (c, _d) = MessageChannel::new().into_ports();
        if transfer {
            c.post_message(&Value::Null, &[&a]).unwrap();
        } else {
            a.close();
        }
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the waiting sender was not released");
        drop(b);
    }
}

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn poll_readable_waits_for_a_message_or_the_end_and_takes_nothing() {
    use std::task::{Context, Poll, Waker};
    let (a, b) = MessageChannel::new().into_ports();
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    assert_eq!(b.poll_readable(&mut cx), Poll::Pending);
    a.post_message(&int(1), &[]).unwrap();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "the post wakes the waiter"
    );
    // readable, as often as asked, and the message is still there
    assert_eq!(b.poll_readable(&mut cx), Poll::Ready(()));
    assert_eq!(b.poll_readable(&mut cx), Poll::Ready(()));
    assert_eq!(recv_int(&b), 1);
    assert_eq!(b.poll_readable(&mut cx), Poll::Pending);
    a.close();
    assert!(
        counter.0.load(Ordering::SeqCst) >= 2,
        "the close wakes the waiter"
    );
    // the end is queued: a receive would not find the queue empty
    assert_eq!(b.poll_readable(&mut cx), Poll::Ready(()));
    assert_closed(&b);
    assert_eq!(b.poll_readable(&mut cx), Poll::Ready(()));
}
