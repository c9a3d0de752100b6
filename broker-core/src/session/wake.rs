//! A session's wake-up: how a delivery, a change of the session's control or a shutdown
//! tells the one connection driving the session to look again.
//!
//! Not a `tokio::sync::Notify`: waiting on one takes a `Notified` future (64 bytes) in the
//! waiting task, and every idle connection waits on its session for its whole life. Here the
//! driver polls [`SessionWake::poll_woken`] from a future that holds a reference only, and
//! the session keeps the driver's waker (which a `Notify` keeps too, in its waiter list).
//!
//! A dormant connection (see `connection::dormant`) has no task to wake: its session keeps
//! the pool's [`Alarm`] and the connection's place in the pool instead, which costs no
//! allocation of its own (a waker would need one per connection to say which it is).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// What wakes a dormant connection: told the place of the connection whose session has a
/// notification. It may be told about a place its connection has left, or that another
/// connection took since: the pool looks at the notification of the one there now.
pub(crate) trait Alarm: Send + Sync {
    fn ring(&self, place: u32);
}

/// Whom a notification wakes.
#[derive(Default)]
enum Waiter {
    /// No one: the notification is kept for the driver's next look.
    #[default]
    None,
    /// The driver's task.
    Task(Waker),
    /// The pool holding the dormant connection, and its place there.
    Dormant { alarm: Arc<dyn Alarm>, place: u32 },
}

/// A wake-up with one waiter, that keeps one notification for it (as `Notify::notify_one`
/// does) when it is not waiting.
#[derive(Default)]
pub(crate) struct SessionWake {
    /// A notification not yet taken by the driver.
    notified: AtomicBool,
    /// Who waits for it.
    waiter: Mutex<Waiter>,
}

impl std::fmt::Debug for SessionWake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWake")
            .field("notified", &self.notified)
            .finish_non_exhaustive()
    }
}

impl SessionWake {
    /// Wakes the driver (or its pool), or keeps the notification for its next look.
    pub(crate) fn notify_one(&self) {
        // Already notified: whoever set the flag wakes the driver (or has), and the driver
        // takes the flag on its next poll. Deliveries call this once per message, so the
        // lock is taken only by the first of a burst.
        if self.notified.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiter = std::mem::take(&mut *self.waiter.lock());
        match waiter {
            Waiter::None => {}
            Waiter::Task(waker) => waker.wake(),
            Waiter::Dormant { alarm, place } => alarm.ring(place),
        }
    }

    /// Ready (taking the notification) once notified since the last time it was ready.
    pub(crate) fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.notified.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut waiter = self.waiter.lock();
            match &mut *waiter {
                Waiter::Task(waker) if waker.will_wake(cx.waker()) => {}
                waiter => *waiter = Waiter::Task(cx.waker().clone()),
            }
        }
        // A notification between the first look and the waker's registration found no
        // waker to wake: it is seen here. One after the registration finds the waker.
        if self.notified.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Has `alarm` rung for `place` at the next notification; whether there is one already
    /// (then it may ring too). The notification stays for the driver, once it is awake.
    pub(crate) fn arm(&self, alarm: Arc<dyn Alarm>, place: u32) -> bool {
        if self.is_notified() {
            return true;
        }
        *self.waiter.lock() = Waiter::Dormant { alarm, place };
        // As in `poll_woken`: one that came before the alarm was set found none to ring.
        self.is_notified()
    }

    /// Whether a notification waits for the driver.
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Forgets the driver's waker (or the pool's alarm): the driver has stopped, and its
    /// waker would keep its task's memory alive for as long as the session lasts.
    pub(crate) fn forget_waker(&self) {
        // Dropped once the lock is let go.
        let _waiter = std::mem::take(&mut *self.waiter.lock());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    #[test]
    fn a_notification_before_the_wait_is_kept_once() {
        let wake = SessionWake::default();
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        wake.notify_one();
        wake.notify_one();
        assert_eq!(wake.poll_woken(&mut cx), Poll::Ready(()));
        assert_eq!(wake.poll_woken(&mut cx), Poll::Pending);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiting_driver_is_woken_once_per_look() {
        let wake = SessionWake::default();
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(wake.poll_woken(&mut cx), Poll::Pending);
        wake.notify_one();
        wake.notify_one();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(wake.poll_woken(&mut cx), Poll::Ready(()));
        assert_eq!(wake.poll_woken(&mut cx), Poll::Pending);
        wake.notify_one();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_forgotten_waker_is_not_woken_and_not_kept() {
        let wake = SessionWake::default();
        let (counter, waker) = counting();
        assert_eq!(
            wake.poll_woken(&mut Context::from_waker(&waker)),
            Poll::Pending
        );
        drop(waker);
        wake.forget_waker();
        assert_eq!(Arc::strong_count(&counter), 1);
        wake.notify_one();
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[derive(Default)]
    struct Rings(parking_lot::Mutex<Vec<u32>>);

    impl Alarm for Rings {
        fn ring(&self, place: u32) {
            self.0.lock().push(place);
        }
    }

    #[test]
    fn an_armed_alarm_rings_once_with_its_place_and_leaves_the_notification() {
        let wake = SessionWake::default();
        let rings = Arc::new(Rings::default());
        assert!(!wake.arm(Arc::clone(&rings) as _, 7));
        wake.notify_one();
        wake.notify_one();
        assert_eq!(*rings.0.lock(), [7]);
        assert!(wake.is_notified());
        // The woken driver takes it.
        let (_counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(wake.poll_woken(&mut cx), Poll::Ready(()));
        assert!(!wake.is_notified());
    }

    #[test]
    fn arming_finds_a_notification_already_there_and_a_forgotten_alarm_stays_silent() {
        let wake = SessionWake::default();
        let rings = Arc::new(Rings::default());
        wake.notify_one();
        assert!(wake.arm(Arc::clone(&rings) as _, 1));
        assert!(wake.is_notified());

        let wake = SessionWake::default();
        assert!(!wake.arm(Arc::clone(&rings) as _, 2));
        wake.forget_waker();
        assert_eq!(Arc::strong_count(&rings), 1);
        wake.notify_one();
        assert!(rings.0.lock().is_empty());
    }
}
