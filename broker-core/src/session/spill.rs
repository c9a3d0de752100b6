//! A persistent session's queue past its memory window: with a store, a session keeps at
//! most the journal's window of queued messages in memory; the QoS 1/2 messages queued
//! behind them are in the store alone, and are read back, in order, as the queue drains
//! below half the window. A fleet of devices offline for days can so queue more messages
//! than the broker's memory holds.
//!
//! Order is kept by one rule: while anything is in the store alone, every new QoS 1/2
//! message goes there too (QoS 0 messages, never stored, stay in memory). A read asked for
//! after the last message stored sees all of them ([`crate::store::Journal::read_queued`]).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use super::{Delivery, SessionShared, SessionState};
use crate::broker::broker_message;
use crate::store::{QueueRead, StoreError, StoredDelivery, Unread};

/// What of a session's queue is not in memory.
#[derive(Debug)]
pub(crate) struct Spill {
    /// The sequence number from which deliveries are read back next.
    next_seq: u64,
    /// How many deliveries are in the store alone, and their payload bytes.
    stored: usize,
    stored_bytes: usize,
    /// Reads asked for and not answered yet.
    reading: usize,
    /// The session stopped being persistent: everything is being read back at once, and
    /// what is queued meanwhile waits here, behind it.
    ending: bool,
    later: VecDeque<Delivery>,
    later_bytes: usize,
}

impl Spill {
    /// Whether everything is being read back (the session stopped being persistent).
    pub(super) fn is_ending(&self) -> bool {
        self.ending
    }

    fn new(next_seq: u64) -> Self {
        Self {
            next_seq,
            stored: 0,
            stored_bytes: 0,
            reading: 0,
            ending: false,
            later: VecDeque::new(),
            later_bytes: 0,
        }
    }
}

impl SessionState {
    /// How many messages the queue holds, in memory or not.
    pub(crate) fn queued_len(&self) -> usize {
        self.queue.len() + self.spill.as_ref().map_or(0, |s| s.stored + s.later.len())
    }

    /// The payload bytes the queue holds, in memory or not.
    pub(super) fn queued_bytes_total(&self) -> usize {
        self.queued_bytes
            + self
                .spill
                .as_ref()
                .map_or(0, |s| s.stored_bytes + s.later_bytes)
    }

    /// Takes `delivery` if the queue's memory is full or part of it is in the store alone
    /// (then it is stored, or held behind what is read back); gives it back otherwise.
    /// Returns the journal ticket of its storing.
    pub(super) fn spill(&mut self, mut delivery: Delivery) -> Result<u64, Delivery> {
        let size = delivery.message.payload.len();
        if let Some(spill) = self.spill.as_mut().filter(|s| s.ending) {
            spill.later_bytes += size;
            spill.later.push_back(delivery);
            return Ok(0);
        }
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
        if spill.reading > 0 || spill.ending || spill.stored == 0 || self.queue.len() > window / 2 {
            return;
        }
        spill.reading += 1;
        durable.journal.read_queued(QueueRead {
            session: durable.key,
            from_seq: spill.next_seq,
            limit: window - self.queue.len(),
            reply: reply_to(session),
        });
    }

    /// The session stops being persistent while part of its queue is in the store alone:
    /// all of it is read back before the store forgets the session (the caller records
    /// that after this), and what is queued meanwhile waits behind it.
    pub(crate) fn read_back_all(&mut self, session: &Arc<SessionShared>) {
        let (Some(spill), Some(durable)) = (self.spill.as_mut(), &self.durable) else {
            return;
        };
        if spill.ending || spill.stored == 0 {
            return;
        }
        spill.ending = true;
        spill.reading += 1;
        durable.journal.read_queued(QueueRead {
            session: durable.key,
            from_seq: spill.next_seq,
            limit: spill.stored,
            reply: reply_to(session),
        });
    }

    /// Takes an answer of the store to a read.
    fn read_back(&mut self, client: &str, answer: Result<Vec<StoredDelivery>, StoreError>) {
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        spill.reading = spill.reading.saturating_sub(1);
        let deliveries = match answer {
            Ok(deliveries) => deliveries,
            Err(error) if !spill.ending => {
                tracing::error!(client, %error, "could not read queued messages back from the session store; trying again with the next delivery");
                return;
            }
            Err(error) => {
                tracing::error!(client, %error, lost = spill.stored, "could not read queued messages back from the session store for a session that is no longer persistent; they are lost");
                Vec::new()
            }
        };
        let found = !deliveries.is_empty();
        // Read back for a session no longer persistent: the store forgets them.
        let ending = spill.ending;
        let mut taken = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            // An answer overlapping one before it (a refill, then the read of everything).
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
            if !ending {
                delivery.seq = d.seq;
            }
            taken.push(delivery);
        }
        let done = spill.stored == 0 || !found || (spill.ending && spill.reading == 0);
        let mut later = VecDeque::new();
        if done {
            if spill.stored > 0 {
                tracing::warn!(
                    client,
                    missing = spill.stored,
                    "the session store holds fewer queued messages than the session counted"
                );
            }
            later = std::mem::take(&mut spill.later);
            self.spill = None;
        }
        for mut delivery in taken.into_iter().chain(later) {
            if delivery.seq == 0 && self.durable.is_some() {
                // The session is persistent again: stored anew, behind what it had in
                // memory when it became so.
                self.store_delivery(&mut delivery);
            }
            self.queued_bytes += delivery.message.payload.len();
            self.note_expiry(&delivery);
            self.queue.push_back(delivery);
        }
    }
}

/// The reply of a read for `session`: its queue takes the deliveries, and its connection
/// is woken to send them.
fn reply_to(
    session: &Arc<SessionShared>,
) -> Box<dyn FnOnce(Result<Vec<StoredDelivery>, StoreError>) + Send> {
    let session: Weak<SessionShared> = Arc::downgrade(session);
    Box::new(move |answer| {
        let Some(session) = session.upgrade() else {
            return;
        };
        session
            .state
            .lock()
            .read_back(session.client_id.as_str(), answer);
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
    use crate::store::{Journal, MemoryStore, StoreOp, SyncPolicy};

    const WINDOW: usize = 10;

    fn persistent_session() -> (Arc<SessionShared>, MqttConfig) {
        let journal = Journal::start(Box::new(MemoryStore::new()), SyncPolicy::Always, 1, WINDOW)
            .unwrap_or_else(|e| panic!("{e}"));
        let client_id = ClientId::new("c".to_owned()).unwrap_or_else(|_| unreachable!());
        let session = Arc::new(SessionShared::new(client_id.clone(), 1));
        session.state.lock().set_durable(
            Some(Durable { journal, key: 1 }),
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
    fn a_session_no_longer_persistent_reads_everything_back_first() {
        let (session, config) = persistent_session();
        let mut state = session.state.lock();
        for n in 0..50 {
            state.push(delivery(n, QoS::AtLeastOnce), &config);
        }
        state.read_back_all(&session);
        state.set_durable(None, StoreOp::SessionEnded { key: 1 });
        for n in 50..55 {
            state.push(delivery(n, QoS::AtLeastOnce), &config);
        }
        assert_eq!(state.queued_len(), 55);
        drop(state);
        let deadline = Instant::now() + Duration::from_secs(10);
        while session.state.lock().spill.is_some() {
            assert!(Instant::now() < deadline, "never read back");
            std::thread::sleep(Duration::from_millis(1));
        }
        let state = session.state.lock();
        let got: Vec<u32> = state.queue.iter().map(number).collect();
        assert_eq!(got, (0..55).collect::<Vec<_>>());
        assert!(
            state.queue.iter().all(|d| d.seq == 0),
            "not stored any more"
        );
    }
}
