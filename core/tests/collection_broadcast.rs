//! Conformance tests for spec.md sections (h) PortCollection and (i) BroadcastChannel.

use std::time::Duration;

use channel_messaging::{
    BroadcastChannel, MessageChannel, MessagePort, PortCollection, PostError, RecvTimeoutError,
    TryRecvError, Value,
};

fn pairs(n: usize) -> Vec<(MessagePort, MessagePort)> {
    (0..n).map(|_| MessageChannel::new().into_ports()).collect()
}

// ---- (h) PortCollection ------------------------------------------------------------

#[test]
fn h4_add_keeps_insertion_order_and_ignores_duplicates() {
    let ps = pairs(3);
    let c = PortCollection::new();
    c.add(&ps[1].0);
    c.add(&ps[0].0);
    c.add(&ps[2].0);
    c.add(&ps[1].0); // duplicate: does not move to the end
    let mut order = Vec::new();
    c.iterate(|p| order.push(ps.iter().position(|(x, _)| x == p).unwrap()));
    assert_eq!(order, vec![1, 0, 2]);
    assert_eq!(c.len(), 3);
}

#[test]
fn h4_remove_and_clear() {
    let ps = pairs(3);
    let c = PortCollection::new();
    for (p, _) in &ps {
        c.add(p);
    }
    c.remove(&ps[1].0);
    c.remove(&ps[1].0); // absent: nothing happens
    assert!(!c.contains(&ps[1].0));
    assert_eq!(c.ports(), vec![ps[0].0.clone(), ps[2].0.clone()]);
    c.clear();
    assert!(c.is_empty());
}

#[test]
fn h5_the_collection_is_weak() {
    let c = PortCollection::new();
    let (a, b) = MessageChannel::new().into_ports();
    c.add(&a);
    assert_eq!(c.len(), 1);
    drop(a);
    assert_eq!(c.len(), 0, "a dropped port leaves the collection");
    // The collection did not keep it alive: its partner sees the close.
    assert!(matches!(
        b.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Closed)
    ));
}

#[test]
fn h7_closed_transferred_and_disentangled_ports_leave_by_themselves() {
    let ps = pairs(3);
    let c = PortCollection::new();
    for (p, _) in &ps {
        c.add(p);
    }
    ps[0].0.close();
    let (x, _y) = MessageChannel::new().into_ports();
    x.post_message(&Value::Null, &[&ps[1].0]).unwrap();
    ps[2].1.close(); // the partner went away
    assert!(c.is_empty(), "{:?}", c.ports());
}

#[test]
fn h7_broadcast_reaches_every_member_once() {
    let ps = pairs(4);
    let c = PortCollection::new();
    for (p, _) in &ps {
        c.add(p);
    }
    assert_eq!(c.post_message(&Value::from("hi")).unwrap(), 4);
    assert_eq!(c.post(&7u8).unwrap(), 4);
    for (_, other) in &ps {
        assert_eq!(other.recv().unwrap().data, Value::from("hi"));
        assert_eq!(other.recv_as::<u8>().unwrap(), 7);
        assert!(matches!(other.try_recv(), Err(TryRecvError::Empty)));
    }
}

#[test]
fn h7_broadcast_cannot_transfer() {
    let ps = pairs(2);
    let c = PortCollection::new();
    c.add(&ps[0].0);
    let (extra, _keep) = MessageChannel::new().into_ports();
    assert!(c.post_message(&Value::Port(0)).is_err());
    let err = c.post_encoded(&[0xf6], Vec::new(), &[&extra]).unwrap_err();
    assert!(err.message().contains("cannot transfer"), "{err}");
    assert!(!extra.is_detached());
    assert!(matches!(ps[0].1.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn h7_broadcast_shares_one_buffer() {
    let ps = pairs(3);
    let c = PortCollection::new();
    for (p, _) in &ps {
        c.add(p);
    }
    let buf = channel_messaging::Buffer::from(vec![5u8; 32 * 1024]);
    let ptr = buf.as_slice().as_ptr();
    c.post_message(&Value::Buffer(buf)).unwrap();
    for (_, other) in &ps {
        let Value::Buffer(got) = other.recv().unwrap().data else {
            panic!("expected a buffer")
        };
        assert_eq!(
            got.as_slice().as_ptr(),
            ptr,
            "every receiver shares the bytes"
        );
    }
}

// ---- (i) BroadcastChannel ----------------------------------------------------------

#[test]
fn i2_name_is_kept() {
    let b = BroadcastChannel::new("i2-name");
    assert_eq!(b.name(), "i2-name");
}

#[test]
fn i3_others_receive_the_sender_does_not() {
    let a = BroadcastChannel::new("i3-group");
    let b = BroadcastChannel::new("i3-group");
    let c = BroadcastChannel::new("i3-group");
    let other = BroadcastChannel::new("i3-other");
    assert_eq!(a.post_message(&Value::Int(1)).unwrap(), 2);
    assert_eq!(b.recv().unwrap().data, Value::Int(1));
    assert_eq!(c.recv().unwrap().data, Value::Int(1));
    assert!(matches!(a.try_recv(), Err(TryRecvError::Empty)));
    assert!(matches!(other.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn i3_closed_is_checked_before_serialization() {
    let a = BroadcastChannel::new("i3-closed");
    a.close();
    // Even an uncloneable message gives InvalidStateError.
    assert!(matches!(
        a.post_message(&Value::Port(0)),
        Err(PostError::InvalidState(_))
    ));
    let b = BroadcastChannel::new("i3-closed-2");
    assert!(matches!(
        b.post_message(&Value::Port(0)),
        Err(PostError::DataClone(_))
    ));
}

#[test]
fn i4_close_drops_queued_messages_and_is_idempotent() {
    let a = BroadcastChannel::new("i4-group");
    let b = BroadcastChannel::new("i4-group");
    a.post_message(&Value::Int(1)).unwrap();
    b.close();
    b.close();
    assert!(matches!(b.try_recv(), Err(TryRecvError::Closed)));
    assert_eq!(
        a.post_message(&Value::Int(2)).unwrap(),
        0,
        "a closed channel leaves the group"
    );
}

#[test]
fn i5_a_dropped_channel_leaves_the_group() {
    let a = BroadcastChannel::new("i5-group");
    let b = BroadcastChannel::new("i5-group");
    drop(b);
    assert_eq!(a.post_message(&Value::Int(1)).unwrap(), 0);
}

#[test]
fn i6_broadcast_across_threads_with_serde() {
    let names: Vec<_> = (0..4)
        .map(|_| BroadcastChannel::new("i6-threads"))
        .collect();
    let sender = BroadcastChannel::new("i6-threads");
    let handles: Vec<_> = names
        .into_iter()
        .map(|ch| {
            std::thread::spawn(move || (0..100).map(|_| ch.recv_as_test()).collect::<Vec<u32>>())
        })
        .collect();
    for i in 0..100u32 {
        assert_eq!(sender.post(&i).unwrap(), 4);
    }
    for h in handles {
        assert_eq!(h.join().unwrap(), (0..100).collect::<Vec<_>>());
    }
}

trait RecvAsTest {
    fn recv_as_test(&self) -> u32;
}
impl RecvAsTest for BroadcastChannel {
    fn recv_as_test(&self) -> u32 {
        self.recv_timeout(Duration::from_secs(10))
            .unwrap()
            .data
            .as_i64()
            .unwrap() as u32
    }
}

#[test]
fn i_broadcast_receives_raw_and_serde() {
    let a = BroadcastChannel::new("i-raw");
    let b = BroadcastChannel::new("i-raw");
    a.post(&41u16).unwrap();
    a.post(&42u16).unwrap();
    let raw = b.recv_message_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(raw.deserialize::<u16>().unwrap(), 41);
    assert_eq!(b.recv_as::<u16>().unwrap(), 42);
    assert!(matches!(
        b.recv_message_timeout(Duration::from_millis(10)),
        Err(RecvTimeoutError::Timeout)
    ));
    b.close();
    assert!(matches!(
        b.recv_message(),
        Err(channel_messaging::RecvError::Closed)
    ));
}

#[test]
fn i_broadcast_polls_raw_messages() {
    use std::task::{Context, Poll, Waker};
    let a = BroadcastChannel::new("i-poll");
    let b = BroadcastChannel::new("i-poll");
    let mut cx = Context::from_waker(Waker::noop());
    assert!(b.poll_recv_message(&mut cx).is_pending());
    a.post(&7u8).unwrap();
    let Poll::Ready(Ok(m)) = b.poll_recv_message(&mut cx) else {
        panic!("expected a message")
    };
    assert_eq!(m.deserialize::<u8>().unwrap(), 7);
    b.close();
    assert!(matches!(
        b.poll_recv_message(&mut cx),
        Poll::Ready(Err(TryRecvError::Closed))
    ));
}

#[test]
fn i_channels_join_and_leave_while_others_post() {
    let sender = BroadcastChannel::new("i-churn");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churners: Vec<_> = (0..3)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut joined = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || joined < 50 {
                    let ch = BroadcastChannel::new("i-churn");
                    let _ = ch.try_recv();
                    joined += 1;
                }
                joined
            })
        })
        .collect();
    let steady = BroadcastChannel::new("i-churn");
    for i in 0..2_000 {
        assert!(sender.post_message(&Value::Int(i)).unwrap() >= 1);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in churners {
        assert!(c.join().unwrap() > 0);
    }
    for i in 0..2_000 {
        assert_eq!(
            steady.try_recv().unwrap().data,
            Value::Int(i),
            "in order, none lost"
        );
    }
    drop((sender, steady));
    // The group is gone with its last channel; a new one starts empty.
    let fresh = BroadcastChannel::new("i-churn");
    assert_eq!(fresh.post_message(&Value::Null).unwrap(), 0);
}
