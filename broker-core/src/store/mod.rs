//! Durable state: what the broker writes down so that persistent sessions, their queued and
//! in-flight QoS 1/2 messages, inbound QoS 2 identifiers, retained messages and pending
//! delayed wills survive a restart.
//!
//! The broker reads a store once at start-up ([`Store::load`]): everything, except the
//! queued messages of a persistent session past the first `window` of them, which stay in
//! the store until the session's queue drains to them ([`Store::read_queued`]). Otherwise
//! the broker only describes each change as a [`StoreOp`]. Changes are
//! appended to a journal in the order they happened and applied by one writer thread in
//! batches ([`Store::apply`]): a whole batch per transaction (group commit), so the cost of
//! making a change durable is shared by every change that arrived while the previous batch
//! was being written. A publisher's acknowledgement can wait for the batch holding its
//! message (`sync = "always"`), or not (`"periodic"`).
//!
//! Without a store the broker keeps all of this in memory only. [`MemoryStore`] is a store
//! that keeps it in memory *outside* the broker, so a broker built again on the same store
//! (in-process restart, tests) finds its sessions; `SqliteStore` (feature `sqlite`) keeps it
//! in a file.

mod journal;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;
mod window;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_codec::{ClientId, PacketId, QoS, SubscriptionId, SubscriptionOptions, TopicFilter};

use crate::SessionExpiry;
use crate::message::Message;

pub(crate) use journal::{Journal, QueueRead};
pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Where the broker keeps its durable state.
///
/// `load` runs once, before the broker serves anyone; `apply` and `read_queued` run on the
/// broker's writer thread, one at a time, in the order the broker asked for them (a read
/// sees every change recorded before it, and none after). A store applies a batch all or
/// nothing: after `apply` returns `Ok`, every change in it survives a crash of the process
/// (and, for a store that says so, of the machine). After an `Err` the broker retries the
/// same changes, followed by newer ones, so applying a change twice must be harmless.
pub trait Store: Send + 'static {
    /// Everything stored, except queued deliveries past the first `window` of a session
    /// ([`StoredSession::unread`] counts them). Deliveries in flight are always given.
    fn load(&mut self, window: usize) -> Result<Snapshot, StoreError>;

    /// Applies `batch` atomically.
    fn apply(&mut self, batch: &[StoreOp]) -> Result<(), StoreError>;

    /// Up to `limit` of `session`'s queued deliveries (not done, not in flight) from
    /// sequence number `from_seq` on, in sequence-number order.
    fn read_queued(
        &mut self,
        session: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError>;
}

/// When a publisher's QoS 1/2 PUBLISH is acknowledged, relative to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Only once it is durable for every persistent subscriber it was queued for (and, if
    /// retained, as the retained message). Changes are written as soon as the previous batch
    /// is done.
    Always,
    /// At once; changes are written every `interval`, so a crash loses at most that much.
    Periodic(Duration),
}

/// A change to the durable state.
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// A persistent session, new or resumed, or its expiry changed. `disconnected_at` is
    /// `None` while a connection drives it.
    Session {
        /// The session's key (unique in the store; a clean start makes a new one).
        key: u64,
        /// Its client identifier.
        client_id: ClientId,
        /// When it ends after its connection closes.
        expiry: SessionExpiry,
        /// When its connection closed.
        disconnected_at: Option<SystemTime>,
    },
    /// A session ended: it goes, with everything it holds.
    SessionEnded {
        /// The session's key.
        key: u64,
    },
    /// A subscription was made or replaced.
    Subscribed {
        /// The session's key.
        session: u64,
        /// The subscription.
        subscription: StoredSubscription,
    },
    /// A subscription was removed.
    Unsubscribed {
        /// The session's key.
        session: u64,
        /// Its filter.
        filter: TopicFilter,
    },
    /// A QoS 1/2 message was queued for a session.
    Queued {
        /// The session's key.
        session: u64,
        /// The delivery.
        delivery: StoredDelivery,
    },
    /// A queued message was sent, or its exchange moved on (PUBREC received).
    Progressed {
        /// The session's key.
        session: u64,
        /// The delivery's sequence number.
        seq: u64,
        /// Where it stands now.
        state: DeliveryState,
    },
    /// A delivery ended: acknowledged, refused, expired, dropped.
    Completed {
        /// The session's key.
        session: u64,
        /// The delivery's sequence number.
        seq: u64,
        /// Its message's identifier (a store may drop the message with its last delivery).
        message: u64,
    },
    /// A QoS 2 PUBLISH was received from the session's client: its identifier is held until
    /// PUBREL.
    Qos2Received {
        /// The session's key.
        session: u64,
        /// The packet identifier.
        packet_id: PacketId,
    },
    /// PUBREL released a QoS 2 identifier.
    Qos2Released {
        /// The session's key.
        session: u64,
        /// The packet identifier.
        packet_id: PacketId,
    },
    /// A retained message was stored (replacing the topic's previous one).
    Retained {
        /// The message.
        message: StoredMessage,
    },
    /// A topic's retained message was removed (empty payload, or expired).
    RetainedCleared {
        /// The topic.
        topic: mqtt_codec::TopicName,
    },
    /// A will was delayed: it is published at `fire_at` unless its client returns.
    WillScheduled {
        /// The will.
        will: StoredWill,
    },
    /// A delayed will was published or cancelled.
    WillDone {
        /// Its client identifier.
        client_id: ClientId,
    },
}

/// A message as stored: the message, the identifier its deliveries refer to, and its
/// expiry as a wall-clock time (an `Instant` means nothing after a restart).
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The identifier, unique in the store.
    pub id: u64,
    /// The message. Its `expires_at` is meaningless here: see `expires_at`.
    pub message: Arc<Message>,
    /// When it expires.
    pub expires_at: Option<SystemTime>,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The filter.
    pub filter: TopicFilter,
    /// Its options.
    pub options: SubscriptionOptions,
    /// Its subscription identifier.
    pub id: Option<SubscriptionId>,
}

/// Where a stored delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Queued, not sent yet.
    Queued,
    /// QoS 1 PUBLISH sent with this identifier; PUBACK awaited.
    AwaitingPubAck(PacketId),
    /// QoS 2 PUBLISH sent; PUBREC awaited.
    AwaitingPubRec(PacketId),
    /// PUBREL sent; PUBCOMP awaited.
    AwaitingPubComp(PacketId),
}

/// A message on its way to one session, as stored.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    /// Its place in the session's order (increasing in the order messages were queued).
    pub seq: u64,
    /// The message (shared between the deliveries of one publish).
    pub message: StoredMessage,
    /// The QoS it is delivered with.
    pub qos: QoS,
    /// The retain flag it is delivered with.
    pub retain: bool,
    /// The identifiers of the subscriptions that matched.
    pub subscription_ids: Vec<SubscriptionId>,
    /// Where it stands.
    pub state: DeliveryState,
}

/// A delayed will, as stored.
#[derive(Debug, Clone)]
pub struct StoredWill {
    /// The client identifier whose return cancels it.
    pub client_id: ClientId,
    /// The will message (`id` unused).
    pub message: StoredMessage,
    /// The Message Expiry Interval applied when it is published.
    pub expiry_interval: Option<u32>,
    /// When it is published.
    pub fire_at: SystemTime,
}

/// A persistent session, as stored.
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// Its key.
    pub key: u64,
    /// Its client identifier.
    pub client_id: ClientId,
    /// When it ends after its connection closes.
    pub expiry: SessionExpiry,
    /// When its connection closed (`None`: it was connected when the broker stopped).
    pub disconnected_at: Option<SystemTime>,
    /// Its subscriptions.
    pub subscriptions: Vec<StoredSubscription>,
    /// Its queued and in-flight messages, in `seq` order.
    pub deliveries: Vec<StoredDelivery>,
    /// QoS 2 identifiers received and not yet released.
    pub inbound_qos2: Vec<PacketId>,
    /// The queued deliveries `load` left in the store (past its window), if any.
    pub unread: Option<Unread>,
}

/// A session's queued deliveries left in the store by [`Store::load`]: every queued
/// delivery from `first_seq` on (deliveries in flight are all loaded, whatever their
/// sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    /// The sequence number of the first.
    pub first_seq: u64,
    /// The sequence number of the last.
    pub last_seq: u64,
    /// How many.
    pub count: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The largest message identifier they refer to (identifiers are never reused).
    pub max_message_id: u64,
}

impl Unread {
    /// Adds a delivery to those left unread.
    pub fn add(unread: &mut Option<Self>, seq: u64, bytes: usize, message_id: u64) {
        let bytes = bytes as u64;
        match unread {
            Some(u) => {
                u.first_seq = u.first_seq.min(seq);
                u.last_seq = u.last_seq.max(seq);
                u.count += 1;
                u.bytes += bytes;
                u.max_message_id = u.max_message_id.max(message_id);
            }
            None => {
                *unread = Some(Self {
                    first_seq: seq,
                    last_seq: seq,
                    count: 1,
                    bytes,
                    max_message_id: message_id,
                });
            }
        }
    }
}

/// Everything a store holds.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Persistent sessions.
    pub sessions: Vec<StoredSession>,
    /// Retained messages.
    pub retained: Vec<StoredMessage>,
    /// Delayed wills.
    pub wills: Vec<StoredWill>,
}

/// A store could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// The store could not be opened or read (missing permissions, not a database, damaged).
    Unreadable {
        /// Where the store is.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// The store holds something this broker cannot understand (written by a newer version,
    /// or damaged).
    Corrupt {
        /// Where the store is.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing failed (disk full, I/O error).
    Write {
        /// Where the store is.
        location: String,
        /// What went wrong.
        reason: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable { location, reason } => {
                write!(f, "cannot read the session store {location}: {reason}")
            }
            Self::Corrupt { location, reason } => {
                write!(f, "the session store {location} is damaged: {reason}")
            }
            Self::Write { location, reason } => {
                write!(f, "cannot write the session store {location}: {reason}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// Converts between the monotonic clock the broker runs on and the wall clock a store keeps
/// (an `Instant` means nothing after a restart). Uses tokio's clock, so that it agrees with
/// the rest of the broker under paused test time.
pub(crate) fn to_wall_clock(at: std::time::Instant) -> SystemTime {
    let now = tokio::time::Instant::now().into_std();
    let wall = SystemTime::now();
    match at.checked_duration_since(now) {
        Some(ahead) => wall + ahead,
        None => wall - now.duration_since(at),
    }
}

/// The inverse of [`to_wall_clock`]: the `Instant` of a stored wall-clock time (now, if it
/// has passed).
pub(crate) fn from_wall_clock(at: SystemTime) -> std::time::Instant {
    let now = tokio::time::Instant::now().into_std();
    now + at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}
