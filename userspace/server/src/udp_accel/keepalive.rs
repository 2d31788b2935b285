//! The keep-alives of one worker's UDP acceleration sessions (§4): one
//! task per worker with a queue of due times, not a task and a timer per
//! session — an idle session costs a queue entry (~40 bytes) instead of a
//! task of its own (~1.6 KB measured).

use std::{
    cell::RefCell,
    cmp::Reverse,
    collections::BinaryHeap,
    rc::Rc,
    sync::{Arc, Weak},
    time::Duration,
};

use crate::{
    directory::SessionShared,
    worker_context::{Worker, now},
};

/// How often the task looks at the queue: keep-alive intervals are random
/// over 500 ms or more, so this much lateness is within their spread.
const TICK: Duration = Duration::from_millis(100);

struct Due {
    at_ms: u64,
    /// Ties broken by arrival, so the order is total.
    seq: u64,
    session: Weak<SessionShared>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

/// One worker's queue of keep-alives to send.
#[derive(Default)]
pub struct KeepaliveQueue {
    due: RefCell<BinaryHeap<Reverse<Due>>>,
    seq: std::cell::Cell<u64>,
}

impl KeepaliveQueue {
    /// Schedules `session`'s first keep-alive (it must have a UDP path).
    pub fn add(&self, session: &Arc<SessionShared>) {
        self.schedule(Arc::downgrade(session), now().0);
    }

    fn schedule(&self, session: Weak<SessionShared>, from_ms: u64) {
        let Some(path) = session.upgrade().and_then(|s| s.udp_accel.clone()) else {
            return;
        };
        let mut r = [0u8; 4];
        crate::random::system_random(&mut r);
        let delay = path.keepalive_delay_ms(now(), u32::from_ne_bytes(r));
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        self.due.borrow_mut().push(Reverse(Due {
            at_ms: from_ms.saturating_add(delay),
            seq,
            session,
        }));
    }

    /// Sends what is due at `now_ms` and schedules each session's next one;
    /// sessions that ended leave the queue. Returns how many were sent.
    fn send_due(&self, now_ms: u64) -> usize {
        let mut sent = 0;
        loop {
            let next = {
                let mut due = self.due.borrow_mut();
                match due.peek() {
                    Some(Reverse(d)) if d.at_ms <= now_ms => due.pop(),
                    _ => None,
                }
            };
            let Some(Reverse(due)) = next else {
                return sent;
            };
            let Some(session) = due.session.upgrade().filter(|s| !s.is_closed()) else {
                continue;
            };
            if let Some(path) = &session.udp_accel {
                path.send_keepalive(now());
                sent += 1;
            }
            self.schedule(due.session, now_ms);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.due.borrow().len()
    }
}

/// Runs the worker's queue until the worker stops (the task is dropped
/// with the runtime).
pub(crate) async fn run(worker: Rc<Worker>) {
    loop {
        compio::time::sleep(TICK).await;
        worker.keepalives.send_due(now().0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ended sessions leave the queue when they come due, and nothing is
    /// sent for them; entries not due yet stay.
    #[test]
    fn ended_sessions_leave_the_queue() {
        let queue = KeepaliveQueue::default();
        for (seq, at_ms) in [(0, 100), (1, 50), (2, 10_000)] {
            queue.due.borrow_mut().push(Reverse(Due {
                at_ms,
                seq,
                session: Weak::new(),
            }));
        }
        assert_eq!(queue.send_due(99), 0);
        assert_eq!(queue.len(), 2, "the one due at 50 went");
        assert_eq!(queue.send_due(9_999), 0);
        assert_eq!(queue.len(), 1, "only the one not due yet stays");
    }
}
