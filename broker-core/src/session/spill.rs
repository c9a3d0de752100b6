//! A persistent session's queue past its memory window: with a store, a session keeps at
//! most the journal's window of queued messages in memory; the QoS 1/2 messages queued
//! behind them are in the store alone, and are read back, in order, as the queue drains
//! below half the window. A fleet of devices offline for days can so queue more messages
//! than the broker's memory holds.
//!
//! Order is kept by one rule: while anything is in the store alone, every new QoS 1/2
//! message goes there too (QoS 0 messages, never stored, stay in memory). A read asked for
//! after the last message stored sees all of them ([`crate::store::Journal::read_queued`]).
//!
//! A session that resumes as no longer persistent (MQTT 5 Session Expiry Interval 0) while
//! part of its queue is in the store alone keeps its place in the store, marked to end at
//! once, until that part is read back ([`crate::session::Durable::until_drained`]): reading
//! it all back at once would bring the whole queue into memory.

use std::sync::{Arc, Weak};

use super::{Delivery, SessionShared, SessionState};
use crate::broker::broker_message;
use crate::store::{QueueRead, StoreError, StoreOp, StoredDelivery, Unread};

/// What of a session's queue is not in memory.
#[derive(Debug)]
pub(crate) struct Spill {
    /// The sequence number from which deliveries are read back next.
    next_seq: u64,
    /// How many deliveries are in the store alone, and their payload bytes.
    stored: usize,
    stored_bytes: usize,
    /// Whether a read was asked for and not answered yet.
    reading: bool,
}

impl Spill {
    fn new(next_seq: u64) -> Self {
        Self {
            next_seq,
            stored: 0,
            stored_bytes: 0,
            reading: false,
        }
    }
}

impl SessionState {
    /// How many messages the queue holds, in memory or not.
    pub(crate) fn queued_len(&self) -> usize {
        self.queue.len() + self.spill.as_ref().map_or(0, |s| s.stored)
    }

    /// Whether part of the queue is in the store alone.
    pub(crate) fn has_stored_only(&self) -> bool {
        self.spill.is_some()
    }

    /// The payload bytes the queue holds, in memory or not.
    pub(super) fn queued_bytes_total(&self) -> usize {
        self.queued_bytes + self.spill.as_ref().map_or(0, |s| s.stored_bytes)
    }

    /// Takes `delivery` if the queue's memory is full or part of it is in the store alone
    /// (then it is stored); gives it back otherwise. Returns the journal ticket of its
    /// storing.
    pub(super) fn spill(&mut self, mut delivery: Delivery) -> Result<u64, Delivery> {
        let size = delivery.message.payload.len();
        let Some(durable) = &self.durable else {
            return Err(delivery);
        };
        let stored_only = delivery.qos != mqtt_codec::QoS::AtMostOnce
            && (self.spill.is_some() || self.queue.len() >= durable.journal.window());
        if !stored_only {
            return Err(delivery);
        }
        let ticket = self.store_delivery(&mut delivery);
        let spill = self
            .spill
            .get_or_insert_with(|| Box::new(Spill::new(delivery.seq)));
        spill.stored += 1;
        spill.stored_bytes += size;
        Ok(ticket)
    }

    /// A session restored with queued deliveries left in the store: they are read back as
    /// the queue drains.
    pub(crate) fn restored_unread(&mut self, unread: Unread) {
        let mut spill = Spill::new(unread.first_seq);
        spill.stored = usize::try_from(unread.count).unwrap_or(usize::MAX);
        spill.stored_bytes = usize::try_from(unread.bytes).unwrap_or(usize::MAX);
        self.spill = Some(Box::new(spill));
    }

    /// Asks for the next deliveries from the store when the queue's memory is down to half
    /// the window and more is stored. `session` is the session this state is of.
    pub(crate) fn refill(&mut self, session: &Arc<SessionShared>) {
        let (Some(spill), Some(durable)) = (self.spill.as_mut(), &self.durable) else {
            return;
        };
        let window = durable.journal.window();
        if spill.reading || spill.stored == 0 || self.queue.len() > window / 2 {
            return;
        }
        spill.reading = true;
        durable.journal.read_queued(QueueRead {
            session: durable.key,
            from_seq: spill.next_seq,
            limit: window - self.queue.len(),
            reply: reply_to(session, durable.key),
        });
    }

    /// Takes an answer of the store to a read.
    fn read_back(
        &mut self,
        client: &str,
        key: u64,
        answer: Result<Vec<StoredDelivery>, StoreError>,
    ) {
        if self.durable.as_ref().is_none_or(|d| d.key != key) {
            // Asked for by the session before it ended, or before a clean start.
            return;
        }
        // Out while the queue takes what came; put back unless everything did.
        let Some(mut spill) = self.spill.take() else {
            return;
        };
        spill.reading = false;
        let deliveries = match answer {
            Ok(deliveries) => deliveries,
            Err(error) => {
                self.spill = Some(spill);
                tracing::error!(client, %error, "could not read queued messages back from the session store; trying again with the next delivery");
                return;
            }
        };
        let found = !deliveries.is_empty();
        for d in deliveries {
            // Already taken (an answer to a read asked before a takeover).
            if d.seq < spill.next_seq {
                continue;
            }
            spill.next_seq = d.seq + 1;
            spill.stored = spill.stored.saturating_sub(1);
            let size = d.message.message.payload.len();
            spill.stored_bytes = spill.stored_bytes.saturating_sub(size);
            let mut delivery = Delivery::new(
                broker_message(d.message),
                d.qos,
                d.retain,
                d.subscription_ids,
            );
            delivery.seq = d.seq;
            self.queued_bytes += size;
            self.note_expiry(&delivery);
            self.queue.push_back(delivery);
        }
        if spill.stored > 0 && found {
            self.spill = Some(spill);
            return;
        }
        if spill.stored > 0 {
            tracing::warn!(
                client,
                missing = spill.stored,
                "the session store holds fewer queued messages than the session counted"
            );
        }
        if let Some(durable) = self.durable.as_ref().filter(|d| d.until_drained) {
            let key = durable.key;
            self.set_durable(None, StoreOp::SessionEnded { key });
        }
    }
}

/// The reply of a read for `session`: its queue takes the deliveries, and its connection
/// is woken to send them.
fn reply_to(
    session: &Arc<SessionShared>,
    key: u64,
) -> Box<dyn FnOnce(Result<Vec<StoredDelivery>, StoreError>) + Send> {
    let session: Weak<SessionShared> = Arc::downgrade(session);
    Box::new(move |answer| {
        let Some(session) = session.upgrade() else {
            return;
        };
        session
            .state
            .lock()
            .read_back(session.client_id.as_str(), key, answer);
        session.wake.notify_one();
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use mqtt_codec::{ClientId, QoS, TopicName};

    use super::*;
    use crate::SessionExpiry;
    use crate::config::MqttConfig;
    use crate::message::Message;
    use crate::session::Durable;
    use crate::store::{Journal, MemoryStore, SyncPolicy};

    const WINDOW: usize = 10;

    fn persistent_session() -> (Arc<SessionShared>, MqttConfig) {
        let journal = Journal::start(Box::new(MemoryStore::new()), SyncPolicy::Always, 1, WINDOW)
            .unwrap_or_else(|e| panic!("{e}"));
        let client_id = ClientId::new("c".to_owned()).unwrap_or_else(|_| unreachable!());
        let session = Arc::new(SessionShared::new(client_id.clone(), 1));
        session.state.lock().set_durable(
            Some(Durable {
                journal,
                key: 1,
                until_drained: false,
            }),
            StoreOp::Session {
                key: 1,
                client_id,
                expiry: SessionExpiry::Never,
                disconnected_at: None,
            },
        );
        let config = MqttConfig {
            max_mqueue_len: 10_000,
            ..MqttConfig::default()
        };
        (session, config)
    }

    fn delivery(n: u32, qos: QoS) -> Delivery {
        let topic = TopicName::new("t").unwrap_or_else(|_| unreachable!());
        let payload = bytes::Bytes::from(n.to_be_bytes().to_vec());
        Delivery::new(
            Arc::new(Message::new(topic, payload, qos, false, None)),
            qos,
            false,
            Vec::new(),
        )
    }

    fn number(d: &Delivery) -> u32 {
        let bytes = d.message.payload.get(..4).unwrap_or_default();
        u32::from_be_bytes(<[u8; 4]>::try_from(bytes).unwrap_or_default())
    }

    /// Pops everything, refilling from the store as the driver does, until `n` came; never
    /// more than `bound` in memory.
    fn drain(session: &Arc<SessionShared>, n: usize, bound: usize) -> Vec<u32> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < n {
            assert!(Instant::now() < deadline, "stuck after {got:?}");
            let mut state = session.state.lock();
            assert!(
                state.queue.len() <= bound,
                "{} in memory",
                state.queue.len()
            );
            while let Some(d) = state.pop() {
                got.push(number(&d));
                state.discarded(&d);
            }
            state.refill(session);
            drop(state);
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn memory_holds_the_window_and_the_rest_comes_back_in_order() {
        let (session, config) = persistent_session();
        let mut state = session.state.lock();
        for n in 0..100 {
            assert!(
                state
                    .push(delivery(n, QoS::AtLeastOnce), &config)
                    .result
                    .is_ok()
            );
        }
        assert_eq!(state.queue.len(), WINDOW);
        assert_eq!(state.queued_len(), 100);
        assert_eq!(state.queued_bytes_total(), 400);
        drop(state);
        assert_eq!(drain(&session, 100, WINDOW), (0..100).collect::<Vec<_>>());
        assert!(session.state.lock().spill.is_none());
    }

    #[test]
    fn qos0_stays_in_memory_and_new_messages_queue_behind_the_stored_ones() {
        let (session, config) = persistent_session();
        let mut state = session.state.lock();
        for n in 0..30 {
            state.push(delivery(n, QoS::AtLeastOnce), &config);
        }
        state.push(delivery(1000, QoS::AtMostOnce), &config);
        assert_eq!(state.queue.len(), WINDOW + 1, "QoS 0 is never stored");
        drop(state);
        let first = drain(&session, 11, WINDOW + 1);
        assert_eq!(first[..10], (0..10).collect::<Vec<_>>()[..]);
        assert_eq!(first[10], 1000);
        let mut state = session.state.lock();
        for n in 30..40 {
            state.push(delivery(n, QoS::AtLeastOnce), &config);
        }
        drop(state);
        assert_eq!(drain(&session, 30, WINDOW), (10..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_session_no_longer_persistent_drains_through_the_window_then_leaves_the_store() {
        let (session, config) = persistent_session();
        let mut state = session.state.lock();
        for n in 0..50 {
            state.push(delivery(n, QoS::AtLeastOnce), &config);
        }
        let journal = state
            .durable
            .as_ref()
            .map(|d| Arc::clone(&d.journal))
            .unwrap_or_else(|| unreachable!());
        // Resumed with expiry 0, as `Sessions::attached` does it.
        state.set_durable(
            Some(Durable {
                journal,
                key: 1,
                until_drained: true,
            }),
            StoreOp::Session {
                key: 1,
                client_id: session.client_id.clone(),
                expiry: SessionExpiry::Immediately,
                disconnected_at: None,
            },
        );
        for n in 50..55 {
            state.push(delivery(n, QoS::AtLeastOnce), &config);
        }
        assert_eq!(state.queued_len(), 55);
        drop(state);
        assert_eq!(drain(&session, 55, WINDOW), (0..55).collect::<Vec<_>>());
        let state = session.state.lock();
        assert!(state.spill.is_none());
        assert!(state.durable.is_none(), "the store forgot the session");
        drop(state);
        let mut state = session.state.lock();
        state.push(delivery(55, QoS::AtLeastOnce), &config);
        assert_eq!(state.queue.back().map(|d| d.seq), Some(0), "not stored");
    }
}
