//! A session: what outlives a connection. Its subscriptions, the messages queued for it, the
//! QoS 1/2 messages in flight to it, the QoS 2 packet identifiers it has sent us and not yet
//! released, and when it expires. Never a connection's parameters: the connection driving the
//! session passes its own (receive maximum, packet size, version) into each call.
//!
//! The state machine is sans-IO: calls take `now` and return what to send.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mqtt_codec::{ClientId, PacketId, QoS, SubscriptionId, SubscriptionOptions, TopicFilter};
use parking_lot::Mutex;

use crate::config::{DropPolicy, MqttConfig};
use crate::store::{DeliveryState, Journal, StoreOp, StoredDelivery, StoredSubscription};

mod attach;
mod delivery;
mod deque;
mod filters;
mod lifecycle;
mod parked;
mod spill;
mod wake;

pub(crate) use attach::AttachGuard;
pub(crate) use delivery::{Awaiting, Delivery, InFlight};
use deque::LazyDeque;
use filters::SessionFilters;
use lifecycle::Lifecycle;
use parked::ParkedQueue;
pub(crate) use parked::Waiting;
use spill::Spill;
pub(crate) use wake::Alarm;
use wake::SessionWake;

/// A persistent session's link to the store: every change to what it holds is recorded.
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    pub(crate) journal: Arc<Journal>,
    pub(crate) key: u64,
    /// The session is not persistent (it ends with its connection); it stays in the store
    /// only until the part of its queue that is there alone has been read back.
    pub(crate) until_drained: bool,
}

impl Durable {
    pub(crate) fn record(&self, op: StoreOp) -> u64 {
        self.journal.record(op)
    }

    fn completed(&self, delivery: &Delivery) {
        if delivery.seq != 0 {
            self.record(StoreOp::Completed {
                session: self.key,
                seq: delivery.seq,
                message: self.journal.message_id(&delivery.message),
            });
        }
    }
}

/// The earlier of two optional times (`None`: never).
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A delivery as the store records it, still queued.
fn stored_delivery(journal: &Journal, delivery: &Delivery) -> StoredDelivery {
    StoredDelivery {
        seq: delivery.seq,
        message: journal.stored_message(&delivery.message),
        qos: delivery.qos,
        retain: delivery.retain,
        subscription_ids: delivery.subscription_ids.clone(),
        state: DeliveryState::Queued,
    }
}

/// Why a message did not reach a session's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The queue was full (the new message, or the oldest one, was dropped).
    QueueFull,
    /// QoS 0 for an offline session that does not queue QoS 0.
    OfflineQoS0,
}

/// What to tell a connection driving a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Keep going.
    Run,
    /// Close with Administrative action: an operator kicked the client.
    Kicked,
    /// Close with Session taken over: another connection with the same client identifier
    /// has come. `session_ends` when that connection starts clean or the session was not
    /// persistent; otherwise the session continues on the new connection, and (as
    /// Mosquitto does, MQTT 5 3.1.3.2.2) the closing connection's will is not published.
    TakenOver { session_ends: bool },
}

/// Packet identifiers (QoS 2 received, not yet released), allocated while there are any: an
/// empty `HashSet` inline would take 48 bytes in every session, and the set of a session
/// that does not use QoS 2 stays empty.
// Boxed on purpose: the box (8 bytes) is what an idle connection holds, not the
// collection's header.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub(crate) struct PacketIdSet(Option<Box<HashSet<u16>>>);

impl PacketIdSet {
    pub(crate) fn insert(&mut self, id: u16) -> bool {
        self.0.get_or_insert_default().insert(id)
    }

    pub(crate) fn remove(&mut self, id: u16) -> bool {
        let Some(set) = &mut self.0 else {
            return false;
        };
        let removed = set.remove(&id);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }

    pub(crate) fn contains(&self, id: u16) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains(&id))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().flat_map(|set| set.iter().copied())
    }
}

impl FromIterator<u16> for PacketIdSet {
    fn from_iter<I: IntoIterator<Item = u16>>(ids: I) -> Self {
        let set: HashSet<u16> = ids.into_iter().collect();
        Self((!set.is_empty()).then(|| Box::new(set)))
    }
}

/// The mutable state of a session.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) subscriptions: SessionFilters,
    pub(crate) queue: LazyDeque<Delivery>,
    queued_bytes: usize,
    /// QoS 1/2 deliveries waiting for room in the full queue, with their held publishers
    /// (see `parked`). Never empty while the queue has room.
    parked: ParkedQueue,
    /// Whether a drop for this session was logged already: a publisher's wait ran out,
    /// or the queue overflowed while the client was away (logged once, counted always).
    pub(crate) logged_wait_drop: bool,
    pub(crate) logged_offline_drop: bool,
    /// No queued message expires before this (`None`: none expires), so that looking for
    /// expired messages does not walk the whole queue every time something is sent.
    first_expiry: Option<Instant>,
    pub(crate) inflight: LazyDeque<InFlight>,
    /// QoS 2 packet identifiers received and not yet released by PUBREL.
    pub(crate) inbound_qos2: PacketIdSet,
    next_packet_id: u16,
    /// Set while the session is persistent and the broker has a store (boxed: most sessions
    /// are not, and it took 24 bytes in each).
    pub(crate) durable: Option<Box<Durable>>,
    /// The sequence number of the next stored delivery.
    next_seq: u64,
    /// How many messages the queue holds, when not the broker's `max_mqueue_len` (an
    /// internal client's session: a bridge's queue).
    /// (A `u32`: it packs beside the other small fields.)
    pub(crate) max_queued: Option<std::num::NonZeroU32>,
    /// What of the queue is in the store alone (see `spill`).
    spill: Option<Box<Spill>>,
}

/// A session, shared by the registry, the subscription index and the connection driving it.
#[derive(Debug)]
pub(crate) struct SessionShared {
    pub(crate) client_id: ClientId,
    /// Unique for the broker's lifetime: a clean start makes a new session with a new key.
    pub(crate) key: u64,
    pub(crate) state: Mutex<SessionState>,
    /// Wakes the connection driving the session when a message is queued.
    pub(crate) wake: SessionWake,
    online: AtomicBool,
    /// Tells the connection driving the session to close (see [`SessionShared::set_control`]).
    /// Not a watch channel: its shared state (344 bytes, on the heap) and the future waiting
    /// on it (120 bytes, in the task) were paid by every idle connection; [`Self::wake`]
    /// carries the news instead.
    control: Mutex<Control>,
    /// Whether a connection drives the session (see [`SessionShared::attach_lock`]): a new
    /// connection waits until it is down, so the old one has finished with the session
    /// before the new one starts.
    attached: AtomicBool,
    /// Its expiry, the timer that ends it while its client is away, its connection as the
    /// operator sees it, and the connections waiting to attach.
    pub(crate) life: Mutex<Lifecycle>,
}

impl SessionShared {
    pub(crate) fn new(client_id: ClientId, key: u64) -> Self {
        Self {
            client_id,
            key,
            state: Mutex::new(SessionState {
                subscriptions: SessionFilters::default(),
                queue: LazyDeque::default(),
                queued_bytes: 0,
                parked: ParkedQueue::default(),
                logged_wait_drop: false,
                logged_offline_drop: false,
                first_expiry: None,
                inflight: LazyDeque::default(),
                inbound_qos2: PacketIdSet::default(),
                next_packet_id: 1,
                durable: None,
                next_seq: 1,
                max_queued: None,
                spill: None,
            }),
            wake: SessionWake::default(),
            online: AtomicBool::new(false),
            control: Mutex::new(Control::Run),
            attached: AtomicBool::new(false),
            life: Mutex::new(Lifecycle::default()),
        }
    }

    /// Tells the connection driving the session (if any) `control`: it reads it when woken.
    pub(crate) fn set_control(&self, control: Control) {
        *self.control.lock() = control;
        self.wake.notify_one();
    }

    /// What the connection driving the session must do now.
    pub(crate) fn control(&self) -> Control {
        *self.control.lock()
    }

    pub(crate) fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
    }

    /// The session as the store records it: its expiry and, once its connection has
    /// closed, when.
    pub(crate) fn stored(
        &self,
        expiry: crate::SessionExpiry,
        disconnected_at: Option<std::time::SystemTime>,
    ) -> StoreOp {
        StoreOp::Session {
            key: self.key,
            client_id: self.client_id.clone(),
            expiry,
            disconnected_at,
        }
    }
}

/// What became of a message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Enqueued {
    /// Queued, or why it (or an older message) was dropped.
    pub(crate) result: Result<(), Dropped>,
    /// The journal ticket of its storing, 0 if it was not stored.
    pub(crate) ticket: u64,
    /// Parked: waiting for room, its publisher held.
    pub(crate) parked: bool,
    /// How many queued messages were dropped to make room (drop oldest), or 1 for the
    /// message itself (drop newest).
    pub(crate) dropped: u64,
}

impl SessionState {
    fn push(&mut self, delivery: Delivery, config: &MqttConfig) -> Enqueued {
        let size = delivery.message.payload.len();
        let full = |s: &Self| s.is_full(size, config);
        let mut result = Ok(());
        let mut dropped = 0;
        if full(self) {
            match config.mqueue_drop {
                DropPolicy::DropNewest => {
                    return Enqueued {
                        result: Err(Dropped::QueueFull),
                        ticket: 0,
                        parked: false,
                        dropped: 1,
                    };
                }
                DropPolicy::DropOldest => {
                    while full(self) {
                        let Some(old) = self.queue.pop_front() else {
                            // The oldest are in the store alone, being read back: the
                            // newest goes instead.
                            return Enqueued {
                                result: Err(Dropped::QueueFull),
                                ticket: 0,
                                parked: false,
                                dropped: dropped + 1,
                            };
                        };
                        self.queued_bytes -= old.message.payload.len();
                        dropped += 1;
                        if let Some(durable) = &self.durable {
                            durable.completed(&old);
                        }
                        result = Err(Dropped::QueueFull);
                    }
                }
            }
        }
        let mut delivery = match self.spill(delivery) {
            Ok(ticket) => {
                return Enqueued {
                    result,
                    ticket,
                    parked: false,
                    dropped,
                };
            }
            Err(delivery) => delivery,
        };
        let ticket = self.store_delivery(&mut delivery);
        self.queued_bytes += size;
        self.note_expiry(&delivery);
        self.queue.push_back(delivery);
        Enqueued {
            result,
            ticket,
            parked: false,
            dropped,
        }
    }

    /// Stores a QoS 1/2 delivery of a persistent session under its next sequence number;
    /// returns the journal ticket (0: not stored).
    fn store_delivery(&mut self, delivery: &mut Delivery) -> u64 {
        match &self.durable {
            Some(durable) if delivery.qos != QoS::AtMostOnce => {
                delivery.seq = self.next_seq;
                self.next_seq += 1;
                durable.record(StoreOp::Queued {
                    session: durable.key,
                    delivery: stored_delivery(&durable.journal, delivery),
                })
            }
            _ => 0,
        }
    }

    /// Records that the delivery at `index` in flight moved on (sent, or PUBREC received).
    pub(crate) fn progressed(&self, index: usize) {
        if let (Some(durable), Some(f)) = (&self.durable, self.inflight.get(index))
            && f.delivery.seq != 0
        {
            durable.record(StoreOp::Progressed {
                session: durable.key,
                seq: f.delivery.seq,
                state: f.stored_state(),
            });
        }
    }

    /// Removes the delivery at `index` in flight: its exchange ended.
    pub(crate) fn remove_inflight(&mut self, index: usize) {
        if let Some(f) = self.inflight.remove(index)
            && let Some(durable) = &self.durable
        {
            durable.completed(&f.delivery);
        }
    }

    /// Records that a delivery taken from the queue will never be sent (too large).
    pub(crate) fn discarded(&self, delivery: &Delivery) {
        if let Some(durable) = &self.durable {
            durable.completed(delivery);
        }
    }

    /// Remembers a QoS 2 identifier received from the client; returns the journal ticket
    /// of its storing (0 if not stored).
    pub(crate) fn qos2_received(&mut self, packet_id: PacketId) -> u64 {
        self.inbound_qos2.insert(packet_id.get());
        match &self.durable {
            Some(durable) => durable.record(StoreOp::Qos2Received {
                session: durable.key,
                packet_id,
            }),
            None => 0,
        }
    }

    /// Releases a QoS 2 identifier (PUBREL); returns whether it was held.
    pub(crate) fn qos2_released(&mut self, packet_id: PacketId) -> bool {
        let known = self.inbound_qos2.remove(packet_id.get());
        if let (true, Some(durable)) = (known, &self.durable) {
            durable.record(StoreOp::Qos2Released {
                session: durable.key,
                packet_id,
            });
        }
        known
    }

    /// Records a subscription made or replaced.
    pub(crate) fn subscribe(
        &mut self,
        filter: TopicFilter,
        options: SubscriptionOptions,
        id: Option<SubscriptionId>,
    ) -> bool {
        if let Some(durable) = &self.durable {
            durable.record(StoreOp::Subscribed {
                session: durable.key,
                subscription: StoredSubscription {
                    filter: filter.clone(),
                    options,
                    id,
                },
            });
        }
        self.subscriptions.insert(filter, (options, id)).is_some()
    }

    /// Removes a subscription; returns whether it existed.
    pub(crate) fn unsubscribe(&mut self, filter: &TopicFilter) -> bool {
        let existed = self.subscriptions.remove(filter).is_some();
        if let (true, Some(durable)) = (existed, &self.durable) {
            durable.record(StoreOp::Unsubscribed {
                session: durable.key,
                filter: filter.clone(),
            });
        }
        existed
    }

    /// Links the session to the store (`Some`) or unlinks it (`None`). A session that
    /// becomes persistent is written whole; one that stops being persistent leaves the store.
    pub(crate) fn set_durable(&mut self, durable: Option<Durable>, op: StoreOp) {
        match (&self.durable, &durable) {
            (None, Some(new)) => {
                new.record(op);
                for (filter, (options, id)) in &self.subscriptions {
                    new.record(StoreOp::Subscribed {
                        session: new.key,
                        subscription: StoredSubscription {
                            filter: filter.clone(),
                            options: *options,
                            id: *id,
                        },
                    });
                }
                for id in self.inbound_qos2.iter() {
                    if let Some(packet_id) = PacketId::new(id) {
                        new.record(StoreOp::Qos2Received {
                            session: new.key,
                            packet_id,
                        });
                    }
                }
                let mut in_order: Vec<(&mut Delivery, DeliveryState)> = Vec::new();
                for f in self.inflight.iter_mut() {
                    let state = f.stored_state();
                    in_order.push((&mut f.delivery, state));
                }
                for d in self.queue.iter_mut() {
                    in_order.push((d, DeliveryState::Queued));
                }
                for (delivery, state) in in_order {
                    if delivery.qos == QoS::AtMostOnce {
                        continue;
                    }
                    delivery.seq = self.next_seq;
                    self.next_seq += 1;
                    let mut stored = stored_delivery(&new.journal, delivery);
                    stored.state = state;
                    new.record(StoreOp::Queued {
                        session: new.key,
                        delivery: stored,
                    });
                }
            }
            (Some(_), Some(new)) => {
                new.record(op);
            }
            (Some(old), None) => {
                // What is in the store alone goes with the session.
                self.spill = None;
                old.record(op);
                for d in self.queue.iter_mut() {
                    d.seq = 0;
                }
                for f in self.inflight.iter_mut() {
                    f.delivery.seq = 0;
                }
            }
            (None, None) => {}
        }
        self.durable = durable.map(Box::new);
    }

    /// Takes the next queued delivery.
    pub(crate) fn pop(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.message.payload.len();
        // A queue that once held thousands gives the room back once it has drained.
        if self.queue.capacity() > 64 && self.queue.len() * 4 < self.queue.capacity() {
            self.queue.shrink_to(self.queue.len() * 2);
        }
        Some(d)
    }

    /// Puts a delivery back at the front of the queue (the window closed before it went).
    pub(crate) fn unpop(&mut self, d: Delivery) {
        self.queued_bytes += d.message.payload.len();
        self.note_expiry(&d);
        self.queue.push_front(d);
    }

    /// Appends a delivery read back from the store (already stored: nothing is recorded).
    pub(crate) fn unpop_back(&mut self, d: Delivery) {
        self.queued_bytes += d.message.payload.len();
        self.note_expiry(&d);
        self.queue.push_back(d);
    }

    /// Links a session read back from the store to it; its next delivery gets `next_seq`.
    pub(crate) fn restored(&mut self, durable: Durable, next_seq: u64) {
        self.durable = Some(Box::new(durable));
        self.next_seq = next_seq;
    }

    /// The payload bytes the queue holds, as counted (the invariant checks compare it with
    /// the queue itself).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// How many messages count against the client's receive maximum.
    pub(crate) fn sent_in_flight(&self) -> usize {
        self.inflight.iter().filter(|f| f.sent_at.is_some()).count()
    }

    /// A packet identifier not used by any message in flight.
    pub(crate) fn allocate_packet_id(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            let candidate = PacketId::new(self.next_packet_id)?;
            self.next_packet_id = candidate.next().get();
            if !self.inflight.iter().any(|f| f.packet_id == candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// Ends the exchange of `packet_id` if it awaits `awaited` (PUBACK or PUBCOMP); an
    /// acknowledgement of anything else is ignored.
    pub(crate) fn complete(&mut self, packet_id: PacketId, awaited: Awaiting) {
        if let Some(i) = self
            .inflight
            .iter()
            .position(|f| f.packet_id == packet_id && f.state == awaited)
        {
            self.remove_inflight(i);
        }
    }

    /// Marks everything in flight as needing a resend: the connection it was sent on is gone.
    pub(crate) fn connection_lost(&mut self) {
        for f in self.inflight.iter_mut() {
            f.sent_at = None;
        }
        self.release_idle();
    }

    /// Gives back the room of an empty queue and in-flight window: the session has gone
    /// quiet (its connection dormant or gone), and may stay so for days.
    pub(crate) fn release_idle(&mut self) {
        self.queue.release_if_empty();
        self.inflight.release_if_empty();
    }

    /// Drops queued messages that expired by `now`; returns how many. Messages in flight
    /// stay: once a PUBLISH has gone out, its exchange is completed.
    pub(crate) fn drop_expired(&mut self, now: Instant) -> usize {
        if self.first_expiry.is_none_or(|first| first > now) {
            return 0;
        }
        let before = self.queue.len();
        let mut bytes = 0;
        let mut first = None;
        let durable = self.durable.as_ref();
        self.queue.retain(|d| {
            let keep = !d.message.is_expired(now);
            if keep {
                first = earlier(first, d.message.expires_at);
            } else {
                bytes += d.message.payload.len();
                if let Some(durable) = durable {
                    durable.completed(d);
                }
            }
            keep
        });
        self.first_expiry = first;
        self.queued_bytes -= bytes;
        before - self.queue.len()
    }

    fn note_expiry(&mut self, d: &Delivery) {
        self.first_expiry = earlier(self.first_expiry, d.message.expires_at);
    }

    /// When the oldest unacknowledged message sent on this connection is due for a resend.
    pub(crate) fn next_retry(&self, interval: Duration) -> Option<Instant> {
        self.inflight
            .iter()
            .filter_map(|f| f.sent_at)
            .min()
            .map(|at| at + interval)
    }
}
