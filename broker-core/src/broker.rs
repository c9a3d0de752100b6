//! The broker: the session registry, the subscription index, retained messages, wills and
//! session expiry, and routing a published message to every session that wants it.
//!
//! This file holds the broker itself (building it, its counters, serving a connection,
//! shutting down); `sessions` attaches and detaches connections and ends sessions, `routing`
//! routes messages and keeps retained messages and the subscription index, `restore` fills
//! a new broker from its store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mqtt_codec::{ClientId, TopicFilter};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};

use crate::auth::{AccessControl, EnhancedAuth};
use crate::events::ClientEvents;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::retained::RetainedIndex;
use crate::store::{Journal, Store, StoreError, SyncPolicy};
use crate::subscriptions::SubscriptionIndex;
use crate::{Limits, MqttConfig, TransportInfo};

mod admin;
pub use admin::{AdminError, ClientDetail, ClientSummary, Kick, SubscriptionSummary};
#[cfg(feature = "fuzzing")]
mod invariants;
#[cfg(feature = "fuzzing")]
pub(crate) use invariants::probe_for;
mod registry;
mod restore;
pub(crate) use restore::broker_message;
mod routing;
mod sessions;

pub(crate) use routing::{Parked, Routed};

/// How long [`Broker::shutdown`] waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An MQTT broker, shared by every connection (`Arc<Broker>`).
pub struct Broker {
    pub(crate) config: MqttConfig,
    pub(crate) index: SubscriptionIndex,
    retained: RwLock<RetainedIndex>,
    registry: Mutex<registry::Registry>,
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
    /// The extended (AUTH packet) authentication method, if any; replaced whole by
    /// [`Broker::set_enhanced_auth`]. Read at CONNECT and AUTH only, never per PUBLISH.
    auth: RwLock<Option<Arc<dyn EnhancedAuth>>>,
    /// The limits in force (the configuration's at first); replaced whole by
    /// [`Broker::set_limits`].
    limits: RwLock<Arc<Limits>>,
    /// Bumped by every [`Broker::set_limits`], so connections know to refresh theirs.
    limits_generation: AtomicU64,
    /// Who may connect and what they may do; replaced whole by [`Broker::set_access`].
    access: RwLock<Arc<AccessControl>>,
    /// Bumped by every [`Broker::set_access`], so connections know to re-resolve theirs.
    access_generation: AtomicU64,
    /// Where durable changes go, if the broker has a store.
    pub(crate) journal: Option<Arc<Journal>>,
    /// Told about clients connecting and disconnecting, if anyone asked.
    client_events: RwLock<Option<Arc<dyn ClientEvents>>>,
    /// Where quiet TCP connections wait without a task (started with the first).
    pub(crate) dormant: crate::connection::DormantPool,
}

/// An open connection, counted in the broker's live connections while this lives.
/// It owns a reference to the broker: a dormant connection (see `connection::dormant`) keeps
/// it while no task holds the connection.
pub(crate) struct LiveConnection(Arc<Broker>);

impl LiveConnection {
    /// The broker the connection is open on.
    pub(crate) fn broker(&self) -> &Arc<Broker> {
        &self.0
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        if self.0.live_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

/// Builds a [`Broker`]: its configuration, and optionally an extended authentication method
/// and a store for persistent sessions.
pub struct BrokerBuilder {
    config: MqttConfig,
    auth: Option<Arc<dyn EnhancedAuth>>,
    access: AccessControl,
    store: Option<(Box<dyn Store>, SyncPolicy)>,
    queue_window: usize,
}

/// How many of a persistent session's queued messages stay in memory unless
/// [`BrokerBuilder::queue_window`] says otherwise. Half of it is what a session has to send
/// while its next read-back is on its way: enough to keep a client busy for the one batch
/// of the store's writer a read waits for.
pub const DEFAULT_QUEUE_WINDOW: usize = 1000;

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

    /// With a store, keeps at most `messages` (at least 1) of each persistent session's
    /// queued messages in memory (default [`DEFAULT_QUEUE_WINDOW`]): the rest are in the store
    /// alone, read back as the queue drains, so that sessions offline for long can
    /// queue more than memory holds. Messages in flight do not count.
    pub fn queue_window(mut self, messages: usize) -> Self {
        self.queue_window = messages.max(1);
        self
    }

    /// The broker, with everything the store holds restored: persistent sessions (waiting
    /// for their clients, their expiry running), retained messages, delayed wills. Must be
    /// called inside a tokio runtime when there is a store (it schedules their timers).
    pub fn build(self) -> Result<Arc<Broker>, StoreError> {
        let Some((mut store, sync)) = self.store else {
            return Ok(Broker::build(self.config, self.auth, self.access, None));
        };
        let snapshot = store.load(self.queue_window)?;
        let first_message_id = restore::first_message_id(&snapshot);
        let journal =
            Journal::start(store, sync, first_message_id, self.queue_window).map_err(|e| {
                StoreError::Write {
                    location: "the store's writer thread".into(),
                    reason: e.to_string(),
                }
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
            queue_window: DEFAULT_QUEUE_WINDOW,
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
            limits: RwLock::new(Arc::new(config.limits.clone())),
            limits_generation: AtomicU64::new(0),
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
            auth: RwLock::new(auth),
            access: RwLock::new(Arc::new(access)),
            access_generation: AtomicU64::new(0),
            journal,
            client_events: RwLock::new(None),
            dormant: crate::connection::DormantPool::default(),
        })
    }

    /// The configuration the broker was built with. Its `limits` are the first ones: those
    /// in force are [`Broker::limits`] (a reload may have replaced them).
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// The limits in force.
    pub fn limits(&self) -> Arc<Limits> {
        Arc::clone(&self.limits.read())
    }

    /// Replaces the limits. Each connection sees the new ones from its next packet on (it
    /// checks a generation counter, a relaxed load, and takes the new `Arc` only when it
    /// moved); what a client already holds past a lowered limit (subscriptions, levels of
    /// a filter it subscribed before) stays, and only new requests are checked.
    pub fn set_limits(&self, limits: Limits) {
        let mut current = self.limits.write();
        *current = Arc::new(limits);
        self.limits_generation.fetch_add(1, Ordering::Release);
    }

    /// The limits in force, and their generation.
    pub(crate) fn limits_now(&self) -> (Arc<Limits>, u64) {
        let current = self.limits.read();
        (
            Arc::clone(&current),
            self.limits_generation.load(Ordering::Acquire),
        )
    }

    /// Whether the limits were replaced since `generation`.
    pub(crate) fn limits_changed(&self, generation: u64) -> bool {
        self.limits_generation.load(Ordering::Relaxed) != generation
    }

    /// The extended authentication method in force, if any.
    pub(crate) fn enhanced_auth(&self) -> Option<Arc<dyn EnhancedAuth>> {
        self.auth.read().clone()
    }

    /// Replaces the extended (AUTH packet) authentication method (`None`: none). An
    /// exchange already under way finishes with the method it started with; the next
    /// CONNECT or re-authentication uses the new one.
    pub fn set_enhanced_auth(&self, auth: Option<Arc<dyn EnhancedAuth>>) {
        *self.auth.write() = auth;
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

    /// Tells `events` about every client that connects or disconnects from now on (`None`
    /// stops it); connections already open are told when they end.
    pub fn set_client_events(&self, events: Option<Arc<dyn ClientEvents>>) {
        *self.client_events.write() = events;
    }

    /// Who is told about clients connecting and disconnecting, if anyone.
    pub(crate) fn client_events(&self) -> Option<Arc<dyn ClientEvents>> {
        self.client_events.read().clone()
    }

    /// Counters and gauges, as of now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.metrics.snapshot();
        snapshot.sessions = self.registry.lock().len() as u64;
        snapshot.retained_messages = self.retained.read().len() as u64;
        let index = self.index.counts();
        snapshot.subscriptions = index.subscriptions;
        snapshot.shared_subscriptions = index.shared;
        snapshot.topics = index.filters;
        snapshot.store = self.journal.as_ref().map(|journal| journal.metrics());
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
        crate::connection::serve(self, handshake)
    }

    /// Counts a connection as open until the returned guard drops (see [`Broker::shutdown`]).
    pub(crate) fn connection_opened(self: &Arc<Self>) -> LiveConnection {
        self.metrics.sockets_total.fetch_add(1, Ordering::Relaxed);
        self.live_connections.fetch_add(1, Ordering::AcqRel);
        LiveConnection(Arc::clone(self))
    }

    /// Whether the broker is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
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
        // Every connection past its handshake drives a registered session and reads
        // `stopping` when woken: nothing waits on the channel in their tasks (a receiver's
        // `changed` future takes 120 bytes in each).
        for session in self.registry.lock().values() {
            session.wake.notify_one();
        }
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
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The writer thread holds the journal; it ends once it has written what is left.
        if let Some(journal) = &self.journal {
            journal.stop();
        }
        // No connection is dormant any more (each holds the broker): the pool's thread ends.
        self.dormant.stop();
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
