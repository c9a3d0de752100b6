//! Sessions in the registry: attaching a connection (new, resumed, taken over), detaching
//! it, ending a session (expiry, clean start), and the wills a closing connection leaves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_codec::{ClientId, LastWill, PublishProperties, TopicFilter};

use super::{Broker, shrink_if_sparse};
use crate::SessionExpiry;
use crate::message::Message;
use crate::session::{AttachGuard, Control, Durable, SessionShared};
use crate::store::{StoreOp, StoredWill};
use std::sync::atomic::Ordering;

impl Broker {
    /// Attaches a new connection to the session of `client_id`: creates it, resumes it, or
    /// takes it over from a connection still attached (which is told to close with Session
    /// taken over, and finishes before this returns). Returns the session, the guard the
    /// connection holds while attached, and whether an existing session was resumed.
    pub(crate) async fn attach(
        &self,
        client_id: &ClientId,
        clean_start: bool,
        expiry: SessionExpiry,
    ) -> (Arc<SessionShared>, AttachGuard, bool) {
        loop {
            let existing = self.registry.lock().get(client_id).cloned();
            let Some(session) = existing else {
                let key = self.next_session_key.fetch_add(1, Ordering::Relaxed);
                let session = Arc::new(SessionShared::new(client_id.clone(), key));
                let guard = session.attach_lock().await;
                let mut registry = self.registry.lock();
                if registry.contains_key(client_id) {
                    // Another connection with this id got in first; start over and take over.
                    continue;
                }
                registry.insert(Arc::clone(&session));
                drop(registry);
                self.cancel_will(client_id);
                return self.attached(session, guard, expiry, false);
            };
            if session.is_online() {
                self.metrics.takeovers.fetch_add(1, Ordering::Relaxed);
            }
            let session_ends =
                clean_start || session.life.lock().expiry == SessionExpiry::Immediately;
            session.set_control(Control::TakenOver { session_ends });
            let guard = session.attach_lock().await;
            let still_registered = self
                .registry
                .lock()
                .get(client_id)
                .is_some_and(|s| Arc::ptr_eq(s, &session));
            if !still_registered {
                continue;
            }
            session.set_control(Control::Run);
            if let Some(task) = session.life.lock().expiry_task.take() {
                task.abort();
            }
            self.cancel_will(client_id);
            if clean_start {
                self.discard(&session);
                drop(guard);
                continue;
            }
            return self.attached(session, guard, expiry, true);
        }
    }

    pub(super) fn attached(
        &self,
        session: Arc<SessionShared>,
        guard: AttachGuard,
        expiry: SessionExpiry,
        present: bool,
    ) -> (Arc<SessionShared>, AttachGuard, bool) {
        session.life.lock().expiry = expiry;
        let persistent = matches!(expiry, SessionExpiry::After(_) | SessionExpiry::Never);
        let mut state = session.state.lock();
        // Not persistent any more, but part of the queue is in the store alone: the store
        // keeps the session (to end at once, should the broker stop) until it is read back.
        let keep = persistent || state.has_stored_only();
        let durable = self
            .journal
            .as_ref()
            .filter(|_| keep)
            .map(|journal| Durable {
                journal: Arc::clone(journal),
                key: session.key,
                until_drained: !persistent,
            });
        let op = match durable {
            Some(_) => session.stored(expiry, None),
            None => StoreOp::SessionEnded { key: session.key },
        };
        state.set_durable(durable, op);
        drop(state);
        session.set_online(true);
        (session, guard, present)
    }

    /// Ends a session: its subscriptions leave the index and it leaves the registry.
    pub(super) fn discard(&self, session: &Arc<SessionShared>) {
        let filters: Vec<TopicFilter> = {
            let mut state = session.state.lock();
            state.set_durable(None, StoreOp::SessionEnded { key: session.key });
            state.subscriptions.keys().cloned().collect()
        };
        for filter in &filters {
            self.index.remove(filter, session.key);
        }
        let mut registry = self.registry.lock();
        if registry
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            registry.remove(&session.client_id);
        }
        drop(registry);
        if let Some(task) = session.life.lock().expiry_task.take() {
            task.abort();
        }
        self.metrics
            .sessions_expired
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Detaches the closing connection from its session: schedules the will (if `will` is
    /// given: the connection did not end normally) and the session's end. A will goes out at
    /// once when `session_ended` (a clean start took the session over), whatever its delay.
    pub(crate) fn detach(
        self: &Arc<Self>,
        session: &Arc<SessionShared>,
        will: Option<&LastWill>,
        session_ended: bool,
    ) {
        session.set_online(false);
        let expiry = {
            let mut life = session.life.lock();
            if let Some(client) = life.client.as_mut() {
                client.disconnected();
            }
            life.expiry
        };
        {
            let mut state = session.state.lock();
            state.connection_lost();
            // Offline: publishers waiting for room here get the drop policy instead.
            let dropped = state.release_parked(&self.config);
            if dropped > 0 {
                self.metrics
                    .dropped_queue_full
                    .fetch_add(dropped, Ordering::Relaxed);
                if !std::mem::replace(&mut state.logged_offline_drop, true) {
                    session.log_offline_drop(&self.config);
                }
            }
            if expiry != SessionExpiry::Immediately
                && let Some(durable) = &state.durable
            {
                durable.record(session.stored(expiry, Some(SystemTime::now())));
            }
        }
        if let Some(will) = will {
            let will_delay =
                Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)));
            let expiry_interval = will.properties.message_expiry_interval;
            let will = Message::from_will(will, session.key);
            let delay = match expiry {
                _ if session_ended => Duration::ZERO,
                SessionExpiry::Immediately => Duration::ZERO,
                SessionExpiry::After(d) => will_delay.min(d),
                SessionExpiry::Never => will_delay,
            };
            self.schedule_will(session.client_id.clone(), will, expiry_interval, delay);
        }
        match expiry {
            SessionExpiry::Immediately => self.discard(session),
            SessionExpiry::Never => {}
            SessionExpiry::After(after) => self.schedule_expiry(session, after),
        }
    }

    /// Ends `session` after `after`, unless a client has attached to it by then.
    pub(super) fn schedule_expiry(self: &Arc<Self>, session: &Arc<SessionShared>, after: Duration) {
        let broker = Arc::downgrade(self);
        let weak = Arc::downgrade(session);
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let (Some(broker), Some(session)) = (broker.upgrade(), weak.upgrade())
                && !session.is_online()
            {
                session.life.lock().expiry_task.take();
                broker.discard(&session);
                broker
                    .metrics
                    .sessions_timed_out
                    .fetch_add(1, Ordering::Relaxed);
            }
        });
        let old = session.life.lock().expiry_task.replace(task.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
    }

    pub(crate) fn schedule_will(
        self: &Arc<Self>,
        client_id: ClientId,
        will: Message,
        expiry_interval: Option<u32>,
        delay: Duration,
    ) {
        if delay.is_zero() {
            self.publish(
                will.with_expiry_interval(expiry_interval, tokio::time::Instant::now().into_std()),
            );
            return;
        }
        let will = Arc::new(will);
        if let Some(journal) = &self.journal {
            journal.record(StoreOp::WillScheduled {
                will: StoredWill {
                    client_id: client_id.clone(),
                    message: journal.stored_message(&will),
                    expiry_interval,
                    fire_at: SystemTime::now() + delay,
                },
            });
        }
        let broker = Arc::downgrade(self);
        let id = client_id.clone();
        let task =
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(broker) = broker.upgrade() {
                    let mut wills = broker.wills.lock();
                    wills.remove(&id);
                    shrink_if_sparse(&mut wills);
                    drop(wills);
                    let will = Arc::unwrap_or_clone(will);
                    broker.publish(will.with_expiry_interval(
                        expiry_interval,
                        tokio::time::Instant::now().into_std(),
                    ));
                    if let Some(journal) = &broker.journal {
                        journal.record(StoreOp::WillDone { client_id: id });
                    }
                }
            });
        if let Some(old) = self.wills.lock().insert(client_id, task.abort_handle()) {
            old.abort();
        }
    }

    pub(super) fn cancel_will(&self, client_id: &ClientId) {
        let mut wills = self.wills.lock();
        if let Some(task) = wills.remove(client_id) {
            task.abort();
            shrink_if_sparse(&mut wills);
            drop(wills);
            if let Some(journal) = &self.journal {
                journal.record(StoreOp::WillDone {
                    client_id: client_id.clone(),
                });
            }
        }
    }
}

impl Message {
    /// The will message a closing connection leaves behind. Its expiry interval, if any,
    /// is applied when it is published (after the will delay).
    pub(crate) fn from_will(will: &LastWill, publisher: u64) -> Self {
        let p = &will.properties;
        let properties = PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
            ..PublishProperties::default()
        };
        let mut message = Self::new(
            will.topic.clone(),
            will.payload.clone(),
            will.qos,
            will.retain,
            Some(Box::new(properties)).filter(|p| !p.is_empty()),
        );
        message.publisher = Some(publisher);
        message
    }
}
