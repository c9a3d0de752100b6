//! Deliveries waiting for room in a full queue (`mqueue_full = "backpressure"`).
//!
//! A QoS 1/2 message for an online session whose queue is full is not dropped: it is parked
//! behind the queue, and its publisher holds the PUBACK/PUBREC (and reads no further
//! PUBLISH) until every session it was parked at has taken it in. A session takes parked
//! deliveries in, in the order they came, as its driver makes room (`admit_parked`); a
//! session that goes offline takes them with the drop policy (`release_parked`), and a
//! publisher that has waited `mqueue_full_wait` forces its own in the same way
//! (`force_parked`). Each publisher parks at most one message per session, so what is parked
//! is bounded by the number of publishers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use mqtt_codec::QoS;
use parking_lot::Mutex;

use super::{Delivery, Dropped, Enqueued, SessionShared, SessionState};
use crate::config::{MqttConfig, QueueFull};

/// One held PUBLISH, shared by every session it is parked at.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    /// Sessions that have not taken the message in yet.
    remaining: AtomicUsize,
    /// The highest store ticket of the deliveries taken in: the acknowledgement waits for it.
    ticket: AtomicU64,
    /// The held publisher's task, woken when `remaining` reaches zero. A plain waker, not a
    /// `Notify`: the wait sits in every connection's future, and a `Notified` would make
    /// each idle connection larger.
    waker: Mutex<Option<Waker>>,
}

impl Waiting {
    /// Whether every session has taken the message in.
    pub(crate) fn is_done(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// The store ticket the acknowledgement must wait for (0: none).
    pub(crate) fn ticket(&self) -> u64 {
        self.ticket.load(Ordering::Acquire)
    }

    /// Ready once every session has taken the message in. One task waits (the held
    /// publisher's).
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_done() {
            return Poll::Ready(());
        }
        *self.waker.lock() = Some(cx.waker().clone());
        // Taken in meanwhile, before the waker was there to be woken?
        if self.is_done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn parked(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
    }

    fn taken(&self, ticket: u64) {
        self.ticket.fetch_max(ticket, Ordering::AcqRel);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(waker) = self.waker.lock().take()
        {
            waker.wake();
        }
    }
}

impl SessionShared {
    /// Offers a delivery from the broker's routing. A publisher that can wait for room
    /// passes `waiting` (see `parked`): it is set once the message is parked at a session.
    pub(crate) fn offer(
        &self,
        delivery: Delivery,
        config: &MqttConfig,
        waiting: Option<&mut Option<Arc<Waiting>>>,
    ) -> Enqueued {
        if delivery.qos == QoS::AtMostOnce && !self.is_online() && !config.queue_qos0 {
            return Enqueued {
                result: Err(Dropped::OfflineQoS0),
                ticket: 0,
                parked: false,
                dropped: 0,
            };
        }
        let mut state = self.state.lock();
        // Read under the lock: `Broker::detach` marks the session offline before it takes
        // the lock to release what is parked, so nothing parks after that.
        let online = self.is_online();
        let outcome = state.offer(delivery, config, online, waiting);
        if !online && outcome.result.is_err() && !state.logged_offline_drop {
            state.logged_offline_drop = true;
            drop(state);
            self.log_offline_drop(config);
        } else {
            drop(state);
        }
        self.wake.notify_one();
        outcome
    }

    /// Says, once per session, that its queue overflowed while its client was away.
    pub(crate) fn log_offline_drop(&self, config: &MqttConfig) {
        tracing::warn!(
            client = %self.client_id,
            max_mqueue_len = config.max_mqueue_len,
            policy = ?config.mqueue_drop,
            "queue of an offline session full: dropping by mqueue_drop (logged once for this session, counted in dropped_queue_full)"
        );
    }
}

impl SessionState {
    /// Offers a delivery: parked if its publisher can wait (`waiting` is `Some`), the
    /// session is online, the message is QoS 1/2, backpressure is configured and the queue
    /// is full (or others are already waiting: they go first); queued, or dropped by
    /// policy, otherwise. The message's `Waiting` is created on its first parking.
    pub(crate) fn offer(
        &mut self,
        delivery: Delivery,
        config: &MqttConfig,
        online: bool,
        waiting: Option<&mut Option<Arc<Waiting>>>,
    ) -> Enqueued {
        let parks = online
            && delivery.qos != QoS::AtMostOnce
            && config.mqueue_full == QueueFull::Backpressure
            && (!self.parked.is_empty() || self.is_full(delivery.message.payload.len(), config));
        let Some(waiting) = waiting.filter(|_| parks) else {
            return self.push(delivery, config);
        };
        let waiting = Arc::clone(waiting.get_or_insert_with(Arc::default));
        waiting.parked();
        self.parked.push_back((delivery, waiting));
        Enqueued {
            result: Ok(()),
            ticket: 0,
            parked: true,
            dropped: 0,
        }
    }

    /// Takes parked deliveries into the queue, oldest first, while it has room; returns how
    /// many.
    pub(crate) fn admit_parked(&mut self, config: &MqttConfig) -> usize {
        let mut admitted = 0;
        while let Some((d, _)) = self.parked.front() {
            if self.is_full(d.message.payload.len(), config) {
                break;
            }
            let Some((delivery, waiting)) = self.parked.pop_front() else {
                break;
            };
            let enqueued = self.push(delivery, config);
            waiting.taken(enqueued.ticket);
            admitted += 1;
        }
        admitted
    }

    /// The client went offline: every parked delivery goes into the queue under the drop
    /// policy, and its publisher is released. Returns how many messages were dropped.
    pub(crate) fn release_parked(&mut self, config: &MqttConfig) -> u64 {
        let mut dropped = 0;
        while let Some((delivery, waiting)) = self.parked.pop_front() {
            let enqueued = self.push(delivery, config);
            waiting.taken(enqueued.ticket);
            dropped += enqueued.dropped;
        }
        dropped
    }

    /// The publisher of `waiting` has waited long enough: its delivery, if still parked
    /// here, goes into the queue under the drop policy. Returns how many messages were
    /// dropped, `None` if it was not parked here (any more).
    pub(crate) fn force_parked(
        &mut self,
        waiting: &Arc<Waiting>,
        config: &MqttConfig,
    ) -> Option<u64> {
        let (delivery, waiting) = self.parked.take(waiting)?;
        let enqueued = self.push(delivery, config);
        waiting.taken(enqueued.ticket);
        Some(enqueued.dropped)
    }

    /// Whether the queue has no room for a message of `size` payload bytes.
    pub(super) fn is_full(&self, size: usize, config: &MqttConfig) -> bool {
        let len = self.queued_len();
        let max = self
            .max_queued
            .map_or(config.max_mqueue_len, |m| m.get() as usize);
        len >= max || (self.queued_bytes_total() + size > config.max_mqueue_bytes && len > 0)
    }
}

/// A session's parked deliveries, oldest first. Allocated only while something is parked:
/// every session has one, and most never use it.
#[derive(Debug, Default)]
#[allow(
    clippy::box_collection,
    reason = "8 bytes in every session instead of a VecDeque's 32"
)]
pub(super) struct ParkedQueue(Option<Box<VecDeque<ParkedDelivery>>>);

/// A delivery waiting for room, and the publisher it holds.
type ParkedDelivery = (Delivery, Arc<Waiting>);

impl ParkedQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    fn front(&self) -> Option<&ParkedDelivery> {
        self.0.as_ref()?.front()
    }

    fn push_back(&mut self, parked: ParkedDelivery) {
        self.0.get_or_insert_with(Box::default).push_back(parked);
    }

    fn pop_front(&mut self) -> Option<ParkedDelivery> {
        let parked = self.0.as_mut()?.pop_front();
        self.free_if_empty();
        parked
    }

    /// Takes out the delivery of `waiting`, if it is parked here.
    fn take(&mut self, waiting: &Arc<Waiting>) -> Option<ParkedDelivery> {
        let queue = self.0.as_mut()?;
        let at = queue.iter().position(|(_, w)| Arc::ptr_eq(w, waiting))?;
        let parked = queue.remove(at);
        self.free_if_empty();
        parked
    }

    fn free_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}
