//! A session's wake-up: how a delivery, a change of the session's control or a shutdown
//! tells the one connection driving the session to look again.
//!
//! Not a `tokio::sync::Notify`: waiting on one takes a `Notified` future (64 bytes) in the
//! waiting task, and every idle connection waits on its session for its whole life. Here the
//! driver polls [`SessionWake::poll_woken`] from a future that holds a reference only, and
//! the session keeps the driver's waker (which a `Notify` keeps too, in its waiter list).

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// A wake-up with one waiter, that keeps one notification for it (as `Notify::notify_one`
/// does) when it is not waiting.
#[derive(Debug, Default)]
pub(crate) struct SessionWake {
    /// A notification not yet taken by the driver.
    notified: AtomicBool,
    /// The driver's waker, while it waits.
    waker: Mutex<Option<Waker>>,
}

impl SessionWake {
    /// Wakes the driver, or keeps the notification for its next look.
    pub(crate) fn notify_one(&self) {
        // Already notified: whoever set the flag wakes the driver (or has), and the driver
        // takes the flag on its next poll. Deliveries call this once per message, so the
        // lock is taken only by the first of a burst.
        if self.notified.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = self.waker.lock().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready (taking the notification) once notified since the last time it was ready.
    pub(crate) fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.notified.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut waker = self.waker.lock();
            match &mut *waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
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

    /// Forgets the driver's waker: the driver has stopped, and its waker would keep its
    /// task's memory alive for as long as the session lasts.
    pub(crate) fn forget_waker(&self) {
        self.waker.lock().take();
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
}
