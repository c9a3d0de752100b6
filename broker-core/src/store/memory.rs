//! A store that keeps the durable state in memory, outside any one broker: a broker built
//! again on a clone of the same `MemoryStore` resumes where the last one stopped. For
//! in-process restarts and tests; nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mqtt_codec::{ClientId, TopicName};
use parking_lot::Mutex;

use super::window::Windowed;
use super::{DeliveryState, Snapshot, Store, StoreError, StoreOp, StoredSession, StoredWill};
use super::{StoredDelivery, StoredMessage, StoredSubscription};

/// A [`Store`] in memory; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    sessions: BTreeMap<u64, StoredSession>,
    retained: HashMap<TopicName, StoredMessage>,
    wills: HashMap<ClientId, StoredWill>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the store holds now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.lock();
        Snapshot {
            sessions: state.sessions.values().cloned().collect(),
            retained: state.retained.values().cloned().collect(),
            wills: state.wills.values().cloned().collect(),
        }
    }
}

impl Store for MemoryStore {
    fn load(&mut self, window: usize) -> Result<Snapshot, StoreError> {
        let mut snapshot = self.snapshot();
        for session in &mut snapshot.sessions {
            let mut windowed = Windowed::new(window);
            for delivery in std::mem::take(&mut session.deliveries) {
                windowed.offer(delivery);
            }
            (session.deliveries, session.unread) = windowed.finish();
        }
        Ok(snapshot)
    }

    fn read_queued(
        &mut self,
        session: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let state = self.state.lock();
        let mut queued: Vec<StoredDelivery> = state
            .sessions
            .get(&session)
            .map(|s| {
                s.deliveries
                    .iter()
                    .filter(|d| d.seq >= from_seq && d.state == DeliveryState::Queued)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        queued.sort_by_key(|d| d.seq);
        queued.truncate(limit);
        Ok(queued)
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        for op in batch {
            state.apply(op);
        }
        Ok(())
    }
}

impl State {
    fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::Session {
                key,
                client_id,
                expiry,
                disconnected_at,
            } => {
                let session = self.sessions.entry(*key).or_insert_with(|| StoredSession {
                    key: *key,
                    client_id: client_id.clone(),
                    expiry: *expiry,
                    disconnected_at: None,
                    subscriptions: Vec::new(),
                    deliveries: Vec::new(),
                    inbound_qos2: Vec::new(),
                    unread: None,
                });
                session.expiry = *expiry;
                session.disconnected_at = *disconnected_at;
            }
            StoreOp::SessionEnded { key } => {
                self.sessions.remove(key);
            }
            StoreOp::Subscribed {
                session,
                subscription,
            } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.subscriptions.retain(|x| x.filter != subscription.filter);
                    s.subscriptions.push(subscription.clone());
                }
            }
            StoreOp::Unsubscribed { session, filter } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.subscriptions
                        .retain(|x: &StoredSubscription| &x.filter != filter);
                }
            }
            StoreOp::Queued { session, delivery } => {
                if let Some(s) = self.sessions.get_mut(session)
                    && !s.deliveries.iter().any(|d| d.seq == delivery.seq)
                {
                    s.deliveries.push(delivery.clone());
                }
            }
            StoreOp::Progressed {
                session,
                seq,
                state,
            } => {
                if let Some(d) = self
                    .sessions
                    .get_mut(session)
                    .and_then(|s| s.deliveries.iter_mut().find(|d| d.seq == *seq))
                {
                    d.state = *state;
                }
            }
            StoreOp::Completed { session, seq, .. } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.deliveries.retain(|d| d.seq != *seq);
                }
            }
            StoreOp::Qos2Received { session, packet_id } => {
                if let Some(s) = self.sessions.get_mut(session)
                    && !s.inbound_qos2.contains(packet_id)
                {
                    s.inbound_qos2.push(*packet_id);
                }
            }
            StoreOp::Qos2Released { session, packet_id } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.inbound_qos2.retain(|id| id != packet_id);
                }
            }
            StoreOp::Retained { message } => {
                self.retained
                    .insert(message.message.topic.clone(), message.clone());
            }
            StoreOp::RetainedCleared { topic } => {
                self.retained.remove(topic);
            }
            StoreOp::WillScheduled { will } => {
                self.wills.insert(will.client_id.clone(), will.clone());
            }
            StoreOp::WillDone { client_id } => {
                self.wills.remove(client_id);
            }
        }
    }
}
