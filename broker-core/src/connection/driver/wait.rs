//! What a connection waits for between rounds: the client's bytes, its session's wake-up
//! (a delivery, a takeover, a shutdown), the next deadline, and the rarer waits (the store
//! reaching a held acknowledgement, room in full queues, a remote authorization answer, a
//! SUBSCRIBE's next slice).
//!
//! One poll function over all of them rather than a `select!` of a future each: what is
//! waited on lives in the driver, the session and the timer already, so the wait holds a
//! few references, not a future per source, in every waiting connection's task (where an
//! idle connection spends its life).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio::time::Sleep;

use super::{Driver, authorize, flow};
use crate::auth::Decision;
use crate::connection::io::ReadError;
use crate::pipe::Pipe;

/// The wait for the store to make a held acknowledgement durable (boxed, and there only
/// while one waits: `sync = "always"` alone holds them).
type Durable = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What ended a wait.
pub(super) enum Woken {
    /// The store reached the first held acknowledgement.
    Durable,
    /// The blocked PUBLISH may have been taken in everywhere.
    Unblocked,
    /// The packet holding the others can go on: the remote answers about it, or (a
    /// SUBSCRIBE in slices) its next slice.
    Held(Vec<Decision>),
    /// Bytes from the client, or the end of its stream.
    Read(Result<(), ReadError>),
    /// The session's wake-up.
    Session,
    /// The timer's deadline.
    Timer,
}

/// What this round waits for besides the session and the rare waits.
#[derive(Clone, Copy)]
pub(super) struct Round {
    /// The timer is set.
    pub(super) timed: bool,
    /// The driver reads from the client.
    pub(super) reading: bool,
    /// The read buffer stays while the read waits.
    pub(super) keep: bool,
    /// Which source is looked at first: it turns each round, so that a source that is
    /// always ready (a flood of bytes, a flood of deliveries) cannot starve the others.
    pub(super) first: u8,
}

/// How many sources a wait polls.
pub(super) const SOURCES: u8 = 6;

impl<P: Pipe> Driver<'_, P> {
    /// Waits for the first source of `round` to be ready. Not an async fn: it would hold
    /// a second copy of each argument in the task.
    pub(super) fn wait<'s>(
        &'s mut self,
        mut timer: Pin<&'s mut Sleep>,
        round: Round,
    ) -> impl Future<Output = Woken> + 's {
        let awaited = self.held_acks.front().map(|(ticket, _)| *ticket);
        let mut durable = match (&self.broker.journal, awaited) {
            (Some(journal), Some(ticket)) => {
                Some(Box::pin(durable_reached(journal.durable(), ticket)) as Durable)
            }
            _ => None,
        };
        std::future::poll_fn(move |cx| self.poll_woken(cx, timer.as_mut(), durable.as_mut(), round))
    }

    /// Polls every source of `round`, from `round.first` on: the first that is ready ends
    /// the wait.
    fn poll_woken(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
        mut durable: Option<&mut Durable>,
        round: Round,
    ) -> Poll<Woken> {
        for i in 0..SOURCES {
            let woken = match (round.first + i) % SOURCES {
                0 => match durable.as_mut() {
                    Some(durable) => durable.as_mut().poll(cx).map(|()| Woken::Durable),
                    None => Poll::Pending,
                },
                1 => flow::poll_unblocked(&self.flow, cx).map(|()| Woken::Unblocked),
                2 => authorize::poll_held_ready(&mut self.holding, cx).map(Woken::Held),
                3 if round.reading => {
                    let stream = self.pipe.stream();
                    self.reader
                        .poll_fill(stream, round.keep, cx)
                        .map(Woken::Read)
                }
                4 => self.session.wake.poll_woken(cx).map(|()| Woken::Session),
                5 if round.timed => timer.as_mut().poll(cx).map(|()| Woken::Timer),
                _ => Poll::Pending,
            };
            if woken.is_ready() {
                return woken;
            }
        }
        Poll::Pending
    }
}

/// Waits until the store is durable up to `ticket`.
async fn durable_reached(mut durable: watch::Receiver<u64>, ticket: u64) {
    if durable.wait_for(|at| *at >= ticket).await.is_err() {
        // The writer is gone (the broker is stopping): these will never be durable.
        std::future::pending::<()>().await;
    }
}
