//! Loom models of the races between post, receive, close and transfer.
//! Run by ci/loom.sh: `RUSTFLAGS="--cfg loom" cargo test --release --test loom`.
#![cfg(loom)]

use std::sync::atomic::{AtomicBool, Ordering};

use channel_messaging::{MessageChannel, RecvError, TryRecvError, Value};
use loom::thread;

#[test]
fn post_then_blocking_recv_in_order() {
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let t = thread::spawn(move || {
            a.post_message(&Value::Int(1), &[]).unwrap();
            a.post_message(&Value::Int(2), &[]).unwrap();
            a
        });
        assert_eq!(b.recv().unwrap().data, Value::Int(1));
        assert_eq!(b.recv().unwrap().data, Value::Int(2));
        drop(t.join().unwrap());
    });
}

#[test]
fn close_is_in_band_and_wakes_a_blocked_receiver() {
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let t = thread::spawn(move || {
            a.post_message(&Value::Int(1), &[]).unwrap();
            a.close();
        });
        assert_eq!(b.recv().unwrap().data, Value::Int(1));
        assert!(matches!(b.recv(), Err(RecvError::Closed)));
        t.join().unwrap();
    });
}

#[test]
fn close_wakes_every_blocked_receiver_of_a_port() {
    // two clones of one port block in recv(); whichever takes the close marker, the
    // other must not sleep on the queue it leaves empty for good
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let b2 = b.clone();
        let t1 = thread::spawn(move || matches!(b.recv(), Err(RecvError::Closed)));
        let t2 = thread::spawn(move || matches!(b2.recv(), Err(RecvError::Closed)));
        a.close();
        assert!(t1.join().unwrap());
        assert!(t2.join().unwrap());
    });
}

#[test]
fn a_port_carried_to_a_port_being_dropped_closes() {
    // the post races the receiver's last drop: the carried port is delivered (and
    // closed with the queue the drop drains), refused, or dropped by the poster; in
    // every case its partner sees the close while the sender lives on (spec F6)
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let (x, carried) = MessageChannel::new().into_ports();
        let t = thread::spawn(move || {
            a.post_message(&Value::Port(0), &[&carried]).unwrap();
            a
        });
        drop(b);
        let a = t.join().unwrap();
        assert!(matches!(x.try_recv(), Err(TryRecvError::Closed)));
        drop(a);
    });
}

#[test]
fn ready_hook_never_misses_a_message() {
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let woken = std::sync::Arc::new(AtomicBool::new(false));
        let w = std::sync::Arc::clone(&woken);
        b.set_ready_hook(Some(std::sync::Arc::new(move || {
            w.store(true, Ordering::SeqCst)
        })));
        a.post_message(&Value::Int(1), &[]).unwrap();
        b.start();
        assert!(
            woken.swap(false, Ordering::SeqCst),
            "start() with a queued message wakes"
        );
        let t = thread::spawn(move || {
            a.post_message(&Value::Int(2), &[]).unwrap();
            a
        });
        // The consumer drains until empty, concurrently with the second post.
        let mut got = 0;
        while b.try_recv().is_ok() {
            got += 1;
        }
        let a = t.join().unwrap();
        // Either the drain saw both messages, or the hook told us to drain again.
        assert!(got == 2 || woken.load(Ordering::SeqCst), "lost wake-up");
        drop(a);
    });
}

#[test]
fn messages_posted_during_transfer_reach_the_new_owner_in_order() {
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let (c, d) = MessageChannel::new().into_ports();
        let poster = thread::spawn(move || {
            a.post_message(&Value::Int(1), &[]).unwrap();
            a.post_message(&Value::Int(2), &[]).unwrap();
            a
        });
        let b_old = b.clone();
        let mover = thread::spawn(move || {
            c.post_message(&Value::Null, &[&b]).unwrap();
            c
        });
        let a = poster.join().unwrap();
        let c = mover.join().unwrap();
        let b2 = d.try_recv().unwrap().ports.remove(0);
        assert_eq!(b2.try_recv().unwrap().data, Value::Int(1));
        assert_eq!(b2.try_recv().unwrap().data, Value::Int(2));
        assert!(matches!(b_old.try_recv(), Err(TryRecvError::Closed)));
        drop((a, c));
    });
}

#[test]
fn close_races_transfer_consistently() {
    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let (c, d) = MessageChannel::new().into_ports();
        let b2 = b.clone();
        let closer = thread::spawn(move || b2.close());
        let transferred = c.post_message(&Value::Null, &[&b]).is_ok();
        closer.join().unwrap();
        if transferred {
            // The transfer won: close() on the inert handle did nothing.
            let moved = d.try_recv().unwrap().ports.remove(0);
            a.post_message(&Value::Int(1), &[]).unwrap();
            assert_eq!(moved.try_recv().unwrap().data, Value::Int(1));
        } else {
            // The close won: the port could not be transferred, and a sees the close.
            assert!(matches!(d.try_recv(), Err(TryRecvError::Empty)));
            assert!(matches!(a.try_recv(), Err(TryRecvError::Closed)));
        }
    });
}

#[test]
fn poll_readable_never_misses_a_post() {
    use std::task::{Context, Poll, Wake, Waker};

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    loom::model(|| {
        let (a, b) = MessageChannel::new().into_ports();
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(std::sync::Arc::clone(&flag));
        let t = thread::spawn(move || {
            a.post_message(&Value::Int(1), &[]).unwrap();
            a
        });
        // Concurrently with the post: either readable now, or the post wakes the waiter.
        let ready = b.poll_readable(&mut Context::from_waker(&waker)) == Poll::Ready(());
        let a = t.join().unwrap();
        assert!(ready || flag.0.load(Ordering::SeqCst), "lost wake-up");
        // Readiness takes nothing: the message is there.
        assert_eq!(b.try_recv().unwrap().data, Value::Int(1));
        assert!(matches!(b.try_recv(), Err(TryRecvError::Empty)));
        drop(a);
    });
}
