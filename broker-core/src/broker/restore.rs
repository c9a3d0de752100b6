//! Start-up from a store: the persistent sessions, retained messages and delayed wills it
//! holds become the broker's again, with the time that passed while it was down counted
//! against session expiry, message expiry and will delays.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use super::Broker;
use crate::SessionExpiry;
use crate::message::Message;
use crate::session::{Awaiting, Delivery, Durable, InFlight, SessionShared};
use crate::store::{DeliveryState, Snapshot, StoreOp, StoredMessage, from_wall_clock};

/// The first message identifier not used in `snapshot`: identifiers are never reused, or
/// a new message's deliveries would refer to an old message's row.
pub(super) fn first_message_id(snapshot: &Snapshot) -> u64 {
    let deliveries = snapshot
        .sessions
        .iter()
        .flat_map(|s| &s.deliveries)
        .map(|d| d.message.id);
    let unread = snapshot
        .sessions
        .iter()
        .filter_map(|s| s.unread)
        .map(|u| u.max_message_id);
    let retained = snapshot.retained.iter().map(|m| m.id);
    // A delayed will keeps its identifier: its deliveries, once it fires, refer to it.
    let wills = snapshot.wills.iter().map(|w| w.message.id);
    deliveries
        .chain(unread)
        .chain(retained)
        .chain(wills)
        .max()
        .unwrap_or(0)
        + 1
}

/// Rebuilds stored messages, one `Arc` per stored identifier (deliveries of one publish
/// share their message, as they did before the restart).
#[derive(Default)]
struct Messages {
    by_id: HashMap<u64, Arc<Message>>,
}

impl Messages {
    /// The broker's message for `stored`: the one already rebuilt for its identifier, or
    /// `stored`'s own, taken over when nothing else holds it (a copy otherwise), so that a
    /// restart with millions of queued messages does not hold each twice.
    fn take(&mut self, stored: StoredMessage) -> Arc<Message> {
        let StoredMessage {
            id,
            message,
            expires_at,
        } = stored;
        Arc::clone(self.by_id.entry(id).or_insert_with(|| {
            let message = Arc::try_unwrap(message).unwrap_or_else(|shared| copy(&shared));
            Arc::new(restored(message, id, expires_at))
        }))
    }
}

/// The broker's message for `stored`, read back while the broker runs: the store's own if
/// it made it the broker's already (its identifier set), a rebuilt one otherwise.
pub(crate) fn broker_message(stored: StoredMessage) -> Arc<Message> {
    if stored.message.store_id.get() == Some(&stored.id) && stored.message.publisher.is_none() {
        return stored.message;
    }
    Arc::new(rebuild(&stored))
}

/// A stored message as the broker holds it: expiry back on the monotonic clock, and its
/// store identifier kept so it is not stored twice.
fn rebuild(stored: &StoredMessage) -> Message {
    restored(copy(&stored.message), stored.id, stored.expires_at)
}

/// `message`, read from the store as `id`, made the broker's (no publisher: none was
/// stored).
fn restored(mut message: Message, id: u64, expires_at: Option<SystemTime>) -> Message {
    message.publisher = None;
    message.expires_at = expires_at.map(from_wall_clock);
    message.store_id = OnceLock::from(id);
    message
}

/// A new message with `m`'s content (no expiry, publisher or store identifier).
fn copy(m: &Message) -> Message {
    Message::new(
        m.topic.clone(),
        m.payload.clone(),
        m.qos,
        m.retain,
        m.properties.clone(),
    )
}

impl Broker {
    /// Takes over what `snapshot` holds. Sessions whose expiry passed while the broker was
    /// down, and retained messages that expired, are removed from the store.
    pub(super) fn restore(self: &Arc<Self>, snapshot: Snapshot) {
        let Some(journal) = self.journal.clone() else {
            return;
        };
        let now = SystemTime::now();
        let mut messages = Messages::default();
        let mut max_key = 0;
        let (mut restored, mut ended) = (0usize, 0usize);
        for stored in snapshot.sessions {
            max_key = max_key.max(stored.key);
            // A session whose client was connected when the broker stopped lost its
            // connection then; without knowing when, its expiry starts now.
            let down_for = stored
                .disconnected_at
                .and_then(|at| now.duration_since(at).ok())
                .unwrap_or(Duration::ZERO);
            let remaining = match stored.expiry {
                SessionExpiry::Immediately => None,
                SessionExpiry::Never => Some(None),
                SessionExpiry::After(d) => d.checked_sub(down_for).map(Some),
            };
            let Some(remaining) = remaining.filter(|r| r != &Some(Duration::ZERO)) else {
                journal.record(StoreOp::SessionEnded { key: stored.key });
                ended += 1;
                continue;
            };
            let session = Arc::new(SessionShared::new(stored.client_id.clone(), stored.key));
            session.life.lock().expiry = stored.expiry;
            {
                let mut state = session.state.lock();
                for sub in &stored.subscriptions {
                    state
                        .subscriptions
                        .insert(sub.filter.clone(), (sub.options, sub.id));
                }
                state.inbound_qos2 = stored.inbound_qos2.iter().map(|id| id.get()).collect();
                let mut last_seq = 0;
                for d in stored.deliveries {
                    last_seq = last_seq.max(d.seq);
                    let mut delivery = Delivery::new(
                        messages.take(d.message),
                        d.qos,
                        d.retain,
                        d.subscription_ids,
                    );
                    delivery.seq = d.seq;
                    let (packet_id, awaiting) = match d.state {
                        DeliveryState::Queued => {
                            state.unpop_back(delivery);
                            continue;
                        }
                        DeliveryState::AwaitingPubAck(id) => (id, Awaiting::PubAck),
                        DeliveryState::AwaitingPubRec(id) => (id, Awaiting::PubRec),
                        DeliveryState::AwaitingPubComp(id) => (id, Awaiting::PubComp),
                    };
                    state.inflight.push_back(InFlight {
                        packet_id,
                        delivery,
                        state: awaiting,
                        sent_at: None,
                        ever_sent: true,
                    });
                }
                if let Some(unread) = stored.unread {
                    last_seq = last_seq.max(unread.last_seq);
                    state.restored_unread(unread);
                }
                state.restored(
                    Durable {
                        journal: Arc::clone(&journal),
                        key: stored.key,
                        until_drained: false,
                    },
                    last_seq + 1,
                );
            }
            for sub in &stored.subscriptions {
                self.index_subscription(&session, &sub.filter, sub.options, sub.id);
            }
            self.registry.lock().insert(Arc::clone(&session));
            if stored.disconnected_at.is_none() {
                journal.record(session.stored(stored.expiry, Some(now)));
            }
            if let Some(after) = remaining {
                self.schedule_expiry(&session, after);
            }
            restored += 1;
        }
        self.next_session_key.store(max_key + 1, Ordering::Relaxed);

        let instant_now = tokio::time::Instant::now().into_std();
        let mut retained = self.retained.write();
        for stored in snapshot.retained {
            let message = messages.take(stored);
            if message.is_expired(instant_now) {
                journal.record(StoreOp::RetainedCleared {
                    topic: message.topic.clone(),
                });
            } else {
                retained.insert(message);
            }
        }
        let retained_count = retained.len();
        drop(retained);

        let wills = snapshot.wills.len();
        for will in snapshot.wills {
            let delay = will.fire_at.duration_since(now).unwrap_or(Duration::ZERO);
            let message = rebuild(&will.message);
            if delay.is_zero() {
                journal.record(StoreOp::WillDone {
                    client_id: will.client_id.clone(),
                });
            }
            self.schedule_will(will.client_id, message, will.expiry_interval, delay);
        }
        tracing::info!(
            sessions = restored,
            expired_sessions = ended,
            retained = retained_count,
            delayed_wills = wills,
            "restored from the session store"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoredMessage, StoredWill};
    use bytes::Bytes;
    use mqtt_codec::{ClientId, QoS, TopicName};

    fn stored(id: u64) -> StoredMessage {
        let topic = TopicName::new("t").unwrap_or_else(|_| unreachable!());
        StoredMessage {
            id,
            message: Arc::new(Message::new(
                topic,
                Bytes::new(),
                QoS::AtLeastOnce,
                false,
                None,
            )),
            expires_at: None,
        }
    }

    #[test]
    fn new_message_identifiers_follow_every_stored_one() {
        let mut snapshot = Snapshot::default();
        assert_eq!(first_message_id(&snapshot), 1);
        snapshot.retained.push(stored(4));
        assert_eq!(first_message_id(&snapshot), 5);
        snapshot.wills.push(StoredWill {
            client_id: ClientId::new("w").unwrap_or_else(|_| unreachable!()),
            message: stored(9),
            expiry_interval: None,
            fire_at: SystemTime::now(),
        });
        assert_eq!(first_message_id(&snapshot), 10);
    }
}
