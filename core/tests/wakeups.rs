//! Stress: the races of closing against receiving and joining. A close must wake every
//! receiver blocked on the queue it ends, whichever receiver takes the end marker (a
//! missed wake-up shows as a receiver still blocked seconds later; loom.rs models the
//! same race exhaustively), and a BroadcastChannel name stays one group while its last
//! member leaves and a new one joins. A message posted as its receiver is dropped never
//! outlives the drop with the ports it carries, and a transfer wakes the port's waiters
//! outside its locks.
#![cfg(not(loom))]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use channel_messaging::{BroadcastChannel, MessageChannel, RecvError};

const ROUNDS: usize = 2_000;
const PATIENCE: Duration = Duration::from_secs(10);

/// Three threads block in `recv()` on clones of one port; its partner closes. One of
/// them takes the close marker; the other two must not sleep on the empty queue.
#[test]
fn b_close_wakes_every_blocked_receiver_of_a_port() {
    for round in 0..ROUNDS {
        let (a, b) = MessageChannel::new().into_ports();
        let (done, results) = mpsc::channel();
        for _ in 0..3 {
            let b = b.clone();
            let done = done.clone();
            thread::spawn(move || {
                let _ = done.send(matches!(b.recv(), Err(RecvError::Closed)));
            });
        }
        drop(b);
        if round % 2 == 0 {
            thread::yield_now();
        }
        a.close();
        for k in 0..3 {
            match results.recv_timeout(PATIENCE) {
                Ok(closed) => assert!(
                    closed,
                    "round {round}: a receiver got something else than Closed"
                ),
                Err(_) => panic!(
                    "round {round}: receiver {k} of 3 still blocked after the partner closed"
                ),
            }
        }
    }
}

/// A `recv()` on one clone of a BroadcastChannel while another thread closes it.
#[test]
fn i4_broadcast_close_wakes_a_blocked_receive() {
    for round in 0..ROUNDS {
        let ch = BroadcastChannel::new(format!("wakeups-close-{round}"));
        let (done, result) = mpsc::channel();
        let clone = ch.clone();
        thread::spawn(move || {
            let _ = done.send(matches!(clone.recv(), Err(RecvError::Closed)));
        });
        for _ in 0..(round % 64) * 50 {
            std::hint::spin_loop();
        }
        ch.close();
        match result.recv_timeout(PATIENCE) {
            Ok(closed) => assert!(
                closed,
                "round {round}: recv() returned something else than Closed"
            ),
            Err(_) => panic!("round {round}: recv() still blocked after close() returned"),
        }
    }
}

/// The last channel of a name leaving while a new one of the same name is made: the new
/// one and any made after it must be one group (spec I3: a post reaches every other open
/// channel of the name).
#[test]
fn i3_a_name_is_one_group_when_the_last_member_leaves_as_another_joins() {
    use channel_messaging::Value;
    use std::sync::{Arc, Barrier};
    for round in 0..ROUNDS * 5 {
        let name = format!("wakeups-registry-{round}");
        let a = BroadcastChannel::new(name.clone());
        let barrier = Arc::new(Barrier::new(2));
        let other = Arc::clone(&barrier);
        let leaving = thread::spawn(move || {
            other.wait();
            a.close();
        });
        barrier.wait();
        let b = BroadcastChannel::new(name.clone());
        leaving.join().unwrap();
        let c = BroadcastChannel::new(name.clone());
        let reached = b.post_message(&Value::Int(1)).unwrap();
        assert_eq!(
            reached, 1,
            "round {round}: b's post reached {reached} channels, not c"
        );
        assert_eq!(
            c.try_recv().map(|e| e.data).ok(),
            Some(Value::Int(1)),
            "round {round}"
        );
    }
}

/// A post carrying a port races the receiving port's last drop: whichever wins, the
/// carried port's partner sees the close while the sender lives (spec F6), and is not
/// left in a queue nobody reads.
#[test]
fn f6_a_port_posted_to_a_port_being_dropped_closes() {
    use channel_messaging::{TryRecvError, Value};
    use std::sync::{Arc, Barrier};
    let barrier = Arc::new(Barrier::new(2));
    for round in 0..ROUNDS * 5 {
        let (a, b) = MessageChannel::new().into_ports();
        let (x, carried) = MessageChannel::new().into_ports();
        let other = Arc::clone(&barrier);
        let dropping = thread::spawn(move || {
            other.wait();
            drop(b);
        });
        barrier.wait();
        a.post_message(&Value::Port(0), &[&carried]).unwrap();
        dropping.join().unwrap();
        let got = x.try_recv();
        assert!(
            matches!(got, Err(TryRecvError::Closed)),
            "round {round}: the carried port's partner got {got:?} while the sender lives"
        );
        drop(a);
    }
}

/// Transferring a port wakes its async waiters once no lock of the port is held: a waker
/// that looks at the port at once (an inline executor polls it) must not deadlock.
#[test]
fn c9_a_transfer_wakes_the_ports_waiters_outside_its_locks() {
    use channel_messaging::{MessagePort, Value};
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct LookingWaker(MessagePort);
    impl Wake for LookingWaker {
        fn wake(self: Arc<Self>) {
            let _ = self.0.stats();
        }
    }
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let (a, _b) = MessageChannel::new().into_ports();
        let (x, _y) = MessageChannel::new().into_ports();
        let waker = Waker::from(Arc::new(LookingWaker(x.clone())));
        let mut receive = Box::pin(x.recv_async());
        assert!(matches!(
            receive.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        ));
        drop(receive);
        a.post_message(&Value::Port(0), &[&x]).unwrap();
        let _ = done.send(());
    });
    assert!(
        result.recv_timeout(PATIENCE).is_ok(),
        "the transfer deadlocked: the waker ran under the port's lock"
    );
}
