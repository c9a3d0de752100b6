//! Routing a published message to every session that wants it (one delivery per session,
//! shared groups picking one member), retained messages, and the subscription index.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mqtt_codec::{QoS, TopicFilter};

use super::Broker;
use crate::message::Message;
use crate::session::{Delivery, Dropped, SessionShared, Waiting};
use crate::store::StoreOp;
use crate::subscriptions::Subscriber;

impl Broker {
    /// Routes a message to every session subscribed to its topic, and stores or clears it
    /// as the topic's retained message if it is retained. Full queues apply the drop policy:
    /// nobody waits (wills).
    pub(crate) fn publish(&self, message: Message) -> Routed {
        self.route(message, Origin::Client { can_wait: false })
    }

    /// Publishes a message of the broker's own (`$SYS` statistics, client connection
    /// events): routed like any other, with no access-control check (no client published
    /// it), and not counted as a message received from a client (nor as one dropped for want
    /// of subscribers). A retained one replaces the topic's retained message in memory only:
    /// the broker's statistics of a run are not kept in the store for the next.
    pub fn publish_system(&self, message: Message) {
        self.route(message, Origin::System);
    }

    /// Like `publish`, for a client's PUBLISH: a QoS 1/2 delivery to an online session
    /// whose queue is full waits for room (`mqueue_full = "backpressure"`), and `parked`
    /// says where; the publisher holds its acknowledgement until then.
    pub(crate) fn publish_or_wait(&self, message: Message) -> Routed {
        self.route(message, Origin::Client { can_wait: true })
    }

    fn route(&self, message: Message, origin: Origin) -> Routed {
        let message = Arc::new(message);
        let (can_wait, counted) = match origin {
            Origin::Client { can_wait } => (can_wait, true),
            Origin::System => (false, false),
        };
        if counted {
            self.metrics
                .received(message.qos)
                .fetch_add(1, Ordering::Relaxed);
        }
        let mut ticket = 0;
        if message.retain {
            ticket = self.store_retained(&message, counted);
        }
        // After the retained message is stored: a SUBSCRIBE that the index does not show
        // yet looks up retained messages after it is indexed, so it finds this one.
        let matches = self.index.matches(&message.topic);
        if matches.direct.len() + matches.shared.len() > 1 {
            message.shared_encoding.enable();
        }
        let mut direct = matches.direct;
        // One delivery per session: at the highest QoS of its matching subscriptions, with
        // every matching subscription identifier (MQTT 5 3.3.4).
        direct.retain(|s| !(s.options.no_local && message.publisher == Some(s.session.key)));
        // Unstable (cheaper for a long fan-out list); the identifier orders a session's
        // subscriptions so that the identifiers of one delivery come in a fixed order.
        direct.sort_unstable_by_key(|s| (s.session.key, s.id));
        if counted && direct.is_empty() && matches.shared.is_empty() && !message.retain {
            self.metrics
                .dropped_no_subscribers
                .fetch_add(1, Ordering::Relaxed);
        }
        let mut parking = Parking::new(can_wait);
        let mut queued = 0;
        let mut i = 0;
        while let Some(first) = direct.get(i) {
            let mut qos = first.options.qos;
            let mut rap = first.options.retain_as_published;
            let mut ids = Vec::new();
            let mut j = i;
            while let Some(sub) = direct.get(j).filter(|s| s.session.key == first.session.key) {
                qos = qos.max(sub.options.qos);
                rap |= sub.options.retain_as_published;
                ids.extend(sub.id);
                j += 1;
            }
            let (delivered, stored) =
                self.deliver(&first.session, &message, qos, rap, ids, &mut parking);
            queued += usize::from(delivered);
            ticket = ticket.max(stored);
            i = j;
        }
        for sub in &matches.shared {
            let ids = sub.id.into_iter().collect();
            let (qos, rap) = (sub.options.qos, sub.options.retain_as_published);
            let (delivered, stored) =
                self.deliver(&sub.session, &message, qos, rap, ids, &mut parking);
            queued += usize::from(delivered);
            ticket = ticket.max(stored);
        }
        let parked = parking.finish();
        if parked.is_some() {
            self.metrics
                .backpressure_waits
                .fetch_add(1, Ordering::Relaxed);
        }
        Routed {
            queued,
            ticket,
            parked,
        }
    }

    fn deliver(
        &self,
        session: &Arc<SessionShared>,
        message: &Arc<Message>,
        max_qos: QoS,
        retain_as_published: bool,
        subscription_ids: Vec<mqtt_codec::SubscriptionId>,
        parking: &mut Parking,
    ) -> (bool, u64) {
        let delivery = Delivery::new(
            Arc::clone(message),
            message.qos.min(max_qos),
            retain_as_published && message.retain,
            subscription_ids,
        );
        let waiting = parking.can_wait.then_some(&mut parking.waiting);
        let enqueued = session.offer(delivery, &self.config, waiting);
        if enqueued.parked {
            parking.sessions.push(Arc::clone(session));
        }
        let delivered = match enqueued.result {
            Ok(()) => true,
            Err(Dropped::QueueFull) => {
                self.metrics
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(Dropped::OfflineQoS0) => {
                self.metrics
                    .dropped_offline_qos0
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        (delivered, enqueued.ticket)
    }

    /// Stores or clears the retained message of the message's topic, in the store too when
    /// `durable`; returns the journal ticket of the change (0 without a store).
    fn store_retained(&self, message: &Arc<Message>, durable: bool) -> u64 {
        let mut retained = self.retained.write();
        let journal = self.journal.as_ref().filter(|_| durable);
        // Recorded under the lock, so the store sees the changes of one topic in order.
        if message.payload.is_empty() {
            retained.remove(&message.topic);
            journal.map_or(0, |journal| {
                journal.record(StoreOp::RetainedCleared {
                    topic: message.topic.clone(),
                })
            })
        } else {
            retained.insert(Arc::clone(message));
            journal.map_or(0, |journal| {
                journal.record(StoreOp::Retained {
                    message: journal.stored_message(message),
                })
            })
        }
    }

    /// The live retained messages matching `filter`, at most `limit` (the room the
    /// subscriber has for them). Expired ones met on the way are removed.
    pub(crate) fn retained_matching(
        &self,
        filter: &TopicFilter,
        now: Instant,
        limit: usize,
    ) -> Vec<Arc<Message>> {
        let found = self.retained.read().matching(filter, now, limit);
        if !found.expired.is_empty() {
            let mut retained = self.retained.write();
            for topic in found.expired {
                if retained.get(&topic).is_some_and(|m| m.is_expired(now)) {
                    retained.remove(&topic);
                    if let Some(journal) = &self.journal {
                        journal.record(StoreOp::RetainedCleared { topic });
                    }
                }
            }
        }
        found.live
    }

    /// Adds a session's subscription to the index.
    pub(crate) fn index_subscription(
        &self,
        session: &Arc<SessionShared>,
        filter: &TopicFilter,
        options: mqtt_codec::SubscriptionOptions,
        id: Option<mqtt_codec::SubscriptionId>,
    ) {
        self.index.insert(
            filter,
            Subscriber {
                session: Arc::clone(session),
                options,
                id,
            },
        );
    }
}

/// What routing a message did.
#[derive(Debug)]
pub(crate) struct Routed {
    /// How many sessions it was queued (or parked) for.
    pub(crate) queued: usize,
    /// The journal ticket of the last change it made to the store (0: none).
    pub(crate) ticket: u64,
    /// The sessions whose full queue it waits at, if any: its acknowledgement waits.
    pub(crate) parked: Option<Parked>,
}

/// A client's PUBLISH parked at sessions with full queues (see `session::parked`).
#[derive(Debug)]
pub(crate) struct Parked {
    /// Done once every session has taken the message in.
    pub(crate) waiting: Arc<Waiting>,
    /// The sessions it is parked at, to force it in when the wait runs out.
    pub(crate) sessions: Vec<Arc<SessionShared>>,
}

/// Who published a message being routed.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A client (or its will); `can_wait`: a QoS 1/2 delivery to a full queue may wait.
    Client { can_wait: bool },
    /// The broker itself ([`Broker::publish_system`]).
    System,
}

/// Where one message is being parked while it is routed.
struct Parking {
    can_wait: bool,
    waiting: Option<Arc<Waiting>>,
    sessions: Vec<Arc<SessionShared>>,
}

impl Parking {
    fn new(can_wait: bool) -> Self {
        Self {
            can_wait,
            waiting: None,
            sessions: Vec::new(),
        }
    }

    fn finish(self) -> Option<Parked> {
        let waiting = self.waiting?;
        Some(Parked {
            waiting,
            sessions: self.sessions,
        })
    }
}
