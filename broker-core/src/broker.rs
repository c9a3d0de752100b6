//! The broker: the session registry, the subscription index, retained messages, wills and
//! session expiry, and routing a published message to every session that wants it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mqtt_codec::{ClientId, LastWill, PublishProperties, QoS, TopicFilter};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, OwnedMutexGuard, watch};

use crate::auth::{AccessControl, EnhancedAuth};
use crate::message::Message;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::retained::RetainedIndex;
use crate::session::{Control, Delivery, Dropped, Durable, SessionShared, Waiting};
use crate::store::{Journal, Store, StoreError, StoreOp, StoredWill, SyncPolicy};
use crate::subscriptions::{Subscriber, SubscriptionIndex};
use crate::{MqttConfig, SessionExpiry, TransportInfo};

mod admin;
pub use admin::{AdminError, ClientDetail, ClientSummary, Kick, SubscriptionSummary};
#[cfg(feature = "fuzzing")]
mod invariants;
#[cfg(feature = "fuzzing")]
pub(crate) use invariants::probe_for;
mod restore;

/// How long [`Broker::shutdown`] waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An MQTT broker, shared by every connection (`Arc<Broker>`).
pub struct Broker {
    pub(crate) config: MqttConfig,
    pub(crate) index: SubscriptionIndex,
    retained: RwLock<RetainedIndex>,
    registry: Mutex<HashMap<ClientId, Arc<SessionShared>>>,
    /// Delayed wills, by client identifier, until they fire or the client returns.
    wills: Mutex<HashMap<ClientId, tokio::task::AbortHandle>>,
    next_session_key: AtomicU64,
    next_client_id: AtomicU64,
    client_id_prefix: String,
    pub(crate) metrics: Metrics,
    /// Each bridge's counters.
    bridges: crate::bridge_metrics::BridgeRegistry,
    pub(crate) stopping: watch::Sender<bool>,
    live_connections: AtomicUsize,
    all_closed: Notify,
    pub(crate) auth: Option<Arc<dyn EnhancedAuth>>,
    /// Who may connect and what they may do; replaced whole by [`Broker::set_access`].
    access: RwLock<Arc<AccessControl>>,
    /// Bumped by every [`Broker::set_access`], so connections know to re-resolve theirs.
    access_generation: AtomicU64,
    /// Where durable changes go, if the broker has a store.
    pub(crate) journal: Option<Arc<Journal>>,
}

/// Builds a [`Broker`]: its configuration, and optionally an extended authentication method
/// and a store for persistent sessions.
pub struct BrokerBuilder {
    config: MqttConfig,
    auth: Option<Arc<dyn EnhancedAuth>>,
    access: AccessControl,
    store: Option<(Box<dyn Store>, SyncPolicy)>,
}

impl BrokerBuilder {
    /// Offers extended (AUTH packet) authentication through `auth`.
    pub fn auth(mut self, auth: Arc<dyn EnhancedAuth>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Decides who may connect and what they may do with `access` (default: everyone,
    /// everything).
    pub fn access(mut self, access: AccessControl) -> Self {
        self.access = access;
        self
    }

    /// Keeps persistent sessions, their messages, retained messages and delayed wills in
    /// `store`, acknowledging publishers as `sync` says.
    pub fn store(mut self, store: impl Store, sync: SyncPolicy) -> Self {
        self.store = Some((Box::new(store), sync));
        self
    }

    /// The broker, with everything the store holds restored: persistent sessions (waiting
    /// for their clients, their expiry running), retained messages, delayed wills. Must be
    /// called inside a tokio runtime when there is a store (it schedules their timers).
    pub fn build(self) -> Result<Arc<Broker>, StoreError> {
        let Some((mut store, sync)) = self.store else {
            return Ok(Broker::build(self.config, self.auth, self.access, None));
        };
        let snapshot = store.load()?;
        let first_message_id = restore::first_message_id(&snapshot);
        let journal =
            Journal::start(store, sync, first_message_id).map_err(|e| StoreError::Write {
                location: "the store's writer thread".into(),
                reason: e.to_string(),
            })?;
        let broker = Broker::build(self.config, self.auth, self.access, Some(journal));
        broker.restore(snapshot);
        Ok(broker)
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.config)
            .field("metrics", &self.metrics.snapshot())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker with `config`, no extended authentication method, and no store: persistent
    /// sessions last as long as the process.
    pub fn new(config: MqttConfig) -> Arc<Self> {
        Self::build(config, None, AccessControl::default(), None)
    }

    /// A broker that offers extended (AUTH packet) authentication through `auth`.
    pub fn with_auth(config: MqttConfig, auth: Arc<dyn EnhancedAuth>) -> Arc<Self> {
        Self::build(config, Some(auth), AccessControl::default(), None)
    }

    /// A builder, for a broker with a store.
    pub fn builder(config: MqttConfig) -> BrokerBuilder {
        BrokerBuilder {
            config,
            auth: None,
            access: AccessControl::default(),
            store: None,
        }
    }

    fn build(
        config: MqttConfig,
        auth: Option<Arc<dyn EnhancedAuth>>,
        access: AccessControl,
        journal: Option<Arc<Journal>>,
    ) -> Arc<Self> {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        Arc::new(Self {
            index: SubscriptionIndex::new(config.shared_strategy),
            config,
            retained: RwLock::default(),
            registry: Mutex::default(),
            wills: Mutex::default(),
            next_session_key: AtomicU64::new(1),
            next_client_id: AtomicU64::new(1),
            client_id_prefix: format!("nanomq-{:08x}", seed as u32),
            metrics: Metrics::default(),
            bridges: crate::bridge_metrics::BridgeRegistry::default(),
            stopping: watch::Sender::new(false),
            live_connections: AtomicUsize::new(0),
            all_closed: Notify::new(),
            auth,
            access: RwLock::new(Arc::new(access)),
            access_generation: AtomicU64::new(0),
            journal,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// Replaces who may connect and what they may do. Connections see the new rules from
    /// their next check on; clients already connected stay connected.
    pub fn set_access(&self, access: AccessControl) {
        let mut current = self.access.write();
        *current = Arc::new(access);
        self.access_generation.fetch_add(1, Ordering::Release);
    }

    /// The access control in force, and its generation.
    pub(crate) fn access(&self) -> (Arc<AccessControl>, u64) {
        let current = self.access.read();
        (
            Arc::clone(&current),
            self.access_generation.load(Ordering::Acquire),
        )
    }

    /// Whether access control was replaced since `generation`.
    pub(crate) fn access_changed(&self, generation: u64) -> bool {
        self.access_generation.load(Ordering::Relaxed) != generation
    }

    /// The filters the session of `client_id` subscribes to (none without a session), in
    /// no particular order: a bridge drops what an earlier configuration's forwards left.
    pub fn session_filters(&self, client_id: &ClientId) -> Vec<TopicFilter> {
        let session = self.registry.lock().get(client_id).cloned();
        session.map_or_else(Vec::new, |session| {
            session.state.lock().subscriptions.keys().cloned().collect()
        })
    }

    /// Counters and gauges, as of now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.metrics.snapshot();
        snapshot.sessions = self.registry.lock().len() as u64;
        snapshot.retained_messages = self.retained.read().len() as u64;
        snapshot
    }

    /// The counters of the bridge `name`, for the bridge to count into (made on first use).
    pub fn bridge_counters(&self, name: &str) -> Arc<crate::BridgeCounters> {
        self.bridges.counters(name)
    }

    /// Every bridge's counters, in name order.
    pub fn bridge_metrics(&self) -> Vec<crate::BridgeSnapshot> {
        self.bridges.snapshot()
    }

    /// Runs one connection to its end: reads CONNECT (within the connect timeout), builds the
    /// connection's pipe, and drives its session until the connection closes. Transports
    /// call this in a task of its own for each accepted stream.
    pub fn serve_connection<S>(
        self: Arc<Self>,
        stream: S,
        transport: TransportInfo,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Not an async fn: its arguments would stay in the task for the connection's life.
        let handshake = crate::connection::start(Arc::clone(&self), stream, transport);
        async move {
            if *self.stopping.borrow() {
                return;
            }
            self.live_connections.fetch_add(1, Ordering::AcqRel);
            crate::connection::run(&self, handshake).await;
            if self.live_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.all_closed.notify_waiters();
            }
        }
    }

    /// The connections open now, those still in their handshake included.
    pub(crate) fn live_connections(&self) -> usize {
        self.live_connections.load(Ordering::Acquire)
    }

    /// Stops the broker: every connection is closed (MQTT 5 clients get DISCONNECT with
    /// Server shutting down) after flushing what it was sending, and new connections are
    /// refused. Waits up to five seconds for the connections to finish.
    pub async fn shutdown(&self) {
        self.stopping.send_replace(true);
        let wait = async {
            loop {
                let closed = self.all_closed.notified();
                if self.live_connections.load(Ordering::Acquire) == 0 {
                    return;
                }
                closed.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, wait).await.is_err() {
            tracing::warn!(
                remaining = self.live_connections.load(Ordering::Acquire),
                "connections still open after the shutdown grace period"
            );
        }
        if let Some(journal) = &self.journal {
            journal.close().await;
        }
    }

    /// A client identifier for a client that sent none.
    pub(crate) fn assign_client_id(&self) -> Result<ClientId, mqtt_codec::InvalidTopic> {
        let n = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        ClientId::new(format!("{}-{n}", self.client_id_prefix))
    }

    /// Attaches a new connection to the session of `client_id`: creates it, resumes it, or
    /// takes it over from a connection still attached (which is told to close with Session
    /// taken over, and finishes before this returns). Returns the session, the guard the
    /// connection holds while attached, and whether an existing session was resumed.
    pub(crate) async fn attach(
        &self,
        client_id: &ClientId,
        clean_start: bool,
        expiry: SessionExpiry,
    ) -> (Arc<SessionShared>, OwnedMutexGuard<()>, bool) {
        loop {
            let existing = self.registry.lock().get(client_id).cloned();
            let Some(session) = existing else {
                let key = self.next_session_key.fetch_add(1, Ordering::Relaxed);
                let session = Arc::new(SessionShared::new(client_id.clone(), key));
                let guard = Arc::clone(&session.attach).lock_owned().await;
                let mut registry = self.registry.lock();
                if registry.contains_key(client_id) {
                    // Another connection with this id got in first; start over and take over.
                    continue;
                }
                registry.insert(client_id.clone(), Arc::clone(&session));
                drop(registry);
                self.cancel_will(client_id);
                return self.attached(session, guard, expiry, false);
            };
            if session.is_online() {
                self.metrics.takeovers.fetch_add(1, Ordering::Relaxed);
            }
            let session_ends = clean_start || *session.expiry.lock() == SessionExpiry::Immediately;
            session
                .control
                .send_replace(Control::TakenOver { session_ends });
            let guard = Arc::clone(&session.attach).lock_owned().await;
            let still_registered = self
                .registry
                .lock()
                .get(client_id)
                .is_some_and(|s| Arc::ptr_eq(s, &session));
            if !still_registered {
                continue;
            }
            session.control.send_replace(Control::Run);
            if let Some(task) = session.expiry_task.lock().take() {
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

    fn attached(
        &self,
        session: Arc<SessionShared>,
        guard: OwnedMutexGuard<()>,
        expiry: SessionExpiry,
        present: bool,
    ) -> (Arc<SessionShared>, OwnedMutexGuard<()>, bool) {
        *session.expiry.lock() = expiry;
        let durable = match (&self.journal, expiry) {
            (Some(journal), SessionExpiry::After(_) | SessionExpiry::Never) => Some(Durable {
                journal: Arc::clone(journal),
                key: session.key,
            }),
            _ => None,
        };
        let op = match durable {
            Some(_) => session.stored(expiry, None),
            None => StoreOp::SessionEnded { key: session.key },
        };
        session.state.lock().set_durable(durable, op);
        session.set_online(true);
        (session, guard, present)
    }

    /// Ends a session: its subscriptions leave the index and it leaves the registry.
    fn discard(&self, session: &Arc<SessionShared>) {
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
            shrink_if_sparse(&mut registry);
        }
        drop(registry);
        if let Some(task) = session.expiry_task.lock().take() {
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
        if let Some(client) = session.client.lock().as_mut() {
            client.disconnected_at = Some(SystemTime::now());
        }
        let expiry = *session.expiry.lock();
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
    fn schedule_expiry(self: &Arc<Self>, session: &Arc<SessionShared>, after: Duration) {
        let broker = Arc::downgrade(self);
        let weak = Arc::downgrade(session);
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let (Some(broker), Some(session)) = (broker.upgrade(), weak.upgrade())
                && !session.is_online()
            {
                session.expiry_task.lock().take();
                broker.discard(&session);
            }
        });
        if let Some(old) = session.expiry_task.lock().replace(task.abort_handle()) {
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

    fn cancel_will(&self, client_id: &ClientId) {
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

    /// Routes a message to every session subscribed to its topic, and stores or clears it
    /// as the topic's retained message if it is retained. Full queues apply the drop policy:
    /// nobody waits (wills).
    pub(crate) fn publish(&self, message: Message) -> Routed {
        self.route(message, false)
    }

    /// Like `publish`, for a client's PUBLISH: a QoS 1/2 delivery to an online session
    /// whose queue is full waits for room (`mqueue_full = "backpressure"`), and `parked`
    /// says where; the publisher holds its acknowledgement until then.
    pub(crate) fn publish_or_wait(&self, message: Message) -> Routed {
        self.route(message, true)
    }

    fn route(&self, message: Message, can_wait: bool) -> Routed {
        let message = Arc::new(message);
        self.metrics
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        let mut ticket = 0;
        if message.retain {
            ticket = self.store_retained(&message);
        }
        let matches = self.index.matches(&message.topic);
        let mut direct = matches.direct;
        // One delivery per session: at the highest QoS of its matching subscriptions, with
        // every matching subscription identifier (MQTT 5 3.3.4).
        direct.retain(|s| !(s.options.no_local && message.publisher == Some(s.session.key)));
        direct.sort_by_key(|s| s.session.key);
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

    /// Stores or clears the retained message of the message's topic; returns the journal
    /// ticket of the change (0 without a store).
    fn store_retained(&self, message: &Arc<Message>) -> u64 {
        let mut retained = self.retained.write();
        // Recorded under the lock, so the store sees the changes of one topic in order.
        if message.payload.is_empty() {
            retained.remove(&message.topic);
            self.journal.as_ref().map_or(0, |journal| {
                journal.record(StoreOp::RetainedCleared {
                    topic: message.topic.clone(),
                })
            })
        } else {
            retained.insert(Arc::clone(message));
            self.journal.as_ref().map_or(0, |journal| {
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

impl Drop for Broker {
    fn drop(&mut self) {
        // The writer thread holds the journal; it ends once it has written what is left.
        if let Some(journal) = &self.journal {
            journal.stop();
        }
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

/// Gives back a map's memory once it holds less than a quarter of what it has room for:
/// after a burst of clients has come and gone, the broker returns to its idle footprint.
pub(crate) fn shrink_if_sparse<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}
