//! Which connection drives a session: one at a time. A new connection to a session waits
//! until the one before it has finished with the session (its will, its goodbye), so that
//! the two never drive it together.
//!
//! Not a `tokio::sync::Mutex`: that one is a separate allocation (56 bytes, in the 64-byte
//! class) that every session kept for its whole life, to be waited on only in a takeover.
//! Here the session holds a flag (`attached`), and the few connections that wait share a
//! `Notify` allocated while they wait (in its `Lifecycle`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::SessionShared;

impl SessionShared {
    fn try_hold(&self) -> bool {
        self.attached
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn release(&self) {
        self.attached.store(false, Ordering::Release);
        // Taken under the lock a waiter registers under, after the flag is down: a waiter
        // either saw the flag down or is registered to be told.
        let waiters = self.life.lock().attach_waiters.take();
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
    }
}

/// Held by the connection driving a session; dropping it lets the next one in.
#[derive(Debug)]
pub(crate) struct AttachGuard(Arc<SessionShared>);

impl AttachGuard {
    /// The session it holds.
    pub(crate) fn session(&self) -> &Arc<SessionShared> {
        &self.0
    }
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl SessionShared {
    /// Waits until no other connection drives this session, and takes it.
    pub(crate) async fn attach_lock(self: &Arc<Self>) -> AttachGuard {
        loop {
            if self.try_hold() {
                return AttachGuard(Arc::clone(self));
            }
            let waiters = {
                let mut life = self.life.lock();
                // Again under the lock: a release in between took no waiter to tell.
                if self.try_hold() {
                    return AttachGuard(Arc::clone(self));
                }
                Arc::clone(life.attach_waiters.get_or_insert_default())
            };
            let released = waiters.notified();
            let mut released = std::pin::pin!(released);
            // Registered before the flag is looked at again: a release from now on wakes it.
            released.as_mut().enable();
            if self.try_hold() {
                return AttachGuard(Arc::clone(self));
            }
            released.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mqtt_codec::ClientId;

    use super::*;

    fn session() -> Arc<SessionShared> {
        Arc::new(SessionShared::new(ClientId::new("c").unwrap(), 1))
    }

    #[tokio::test]
    async fn one_connection_at_a_time_and_the_next_once_it_lets_go() {
        let session = session();
        let first = session.attach_lock().await;
        let waiting = tokio::spawn({
            let session = Arc::clone(&session);
            async move { session.attach_lock().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "took the session while it was held");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter was not let in")
            .unwrap();
        assert!(session.attached.load(Ordering::Acquire));
        drop(second);
        assert!(!session.attached.load(Ordering::Acquire));
        assert!(session.life.lock().attach_waiters.is_none());
    }

    #[tokio::test]
    async fn several_waiters_each_get_their_turn() {
        let session = session();
        let first = session.attach_lock().await;
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let session = Arc::clone(&session);
                tokio::spawn(async move { drop(session.attach_lock().await) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("a waiter was not let in")
                .unwrap();
        }
    }
}
