//! The broker's tunable limits and policies, with the defaults a fresh install runs on.
//!
//! This is plain data: the binary fills it from its configuration file, tests build it
//! directly. Every field is used by the core; none exists only to be read.

use std::time::Duration;

/// What to drop when a session's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// Drop the oldest queued message to make room (the newest data is worth more).
    #[default]
    DropOldest,
    /// Refuse the new message.
    DropNewest,
}

/// What a full queue does to a QoS 1/2 message for a session whose client is online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueFull {
    /// The publisher waits: its PUBACK/PUBREC is held, and it is read no further, until
    /// the queue has room (at most `mqueue_full_wait`, then the drop policy applies). An
    /// acknowledged message is then delivered to every online subscriber.
    #[default]
    Backpressure,
    /// Apply the drop policy at once (the publisher never waits for a subscriber).
    Drop,
}

/// How a shared subscription group picks the member that receives a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// A member picked at random.
    Random,
}

/// The broker's MQTT settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    /// The largest packet the broker accepts, and announces in CONNACK (bytes).
    pub max_packet_size: u32,
    /// How many messages a session may queue (offline, or beyond its in-flight window).
    pub max_mqueue_len: usize,
    /// How many payload bytes a session may queue.
    pub max_mqueue_bytes: usize,
    /// What to drop when a queue is full (offline sessions, QoS 0, and online QoS 1/2 once
    /// `mqueue_full_wait` has passed or with `mqueue_full` = `Drop`).
    pub mqueue_drop: DropPolicy,
    /// What a full queue does to a QoS 1/2 message for an online session.
    pub mqueue_full: QueueFull,
    /// How long a publisher waits for room in a full queue before the drop policy applies.
    pub mqueue_full_wait: Duration,
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    pub queue_qos0: bool,
    /// QoS 1/2 messages in flight per client, each way: the broker's Receive Maximum, and the
    /// most it sends unacknowledged (less if the client's Receive Maximum is lower).
    pub max_inflight: u16,
    /// When an MQTT 3.1/3.1.1 client has not acknowledged a message for this long, it is sent
    /// again (MQTT 5 forbids resending on a live connection; it resends on reconnect only).
    pub retry_interval: Duration,
    /// A connection silent for this many keep-alive periods is closed.
    pub keepalive_multiplier: f32,
    /// Session expiry for MQTT 3.1/3.1.1 clients that connect with clean session = 0 (they
    /// cannot say one themselves). `None`: never expire.
    pub session_expiry_default: Option<Duration>,
    /// The highest topic alias the broker accepts from a client, and uses towards a client
    /// (less if the client accepts fewer). 0 turns topic aliases off.
    pub max_topic_alias: u16,
    /// If set, the keep alive the broker imposes on MQTT 5 clients (Server Keep Alive).
    pub server_keep_alive: Option<u16>,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// How shared subscription groups distribute messages.
    pub shared_strategy: SharedStrategy,
    /// What one client may make the broker hold or do.
    pub limits: Limits,
}

/// Bounds on what one client can make the broker hold or do, each a quantity the client
/// controls. Past one, the client gets the reason code MQTT 5 names for it (3.1.1: a refused
/// SUBACK entry, or the connection closed), the broker logs it once per connection with the
/// client identifier and counts it ([`crate::MetricsSnapshot::limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The most levels a topic name or filter may have (`a/b/c` has three). Every level is a
    /// node of the subscription and retained indexes.
    pub max_topic_levels: usize,
    /// The longest topic name or filter, in bytes (MQTT's own bound is 65,535).
    pub max_topic_length: usize,
    /// The most filters one SUBSCRIBE or UNSUBSCRIBE may carry.
    pub max_filters_per_packet: usize,
    /// The most subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// The most connections the broker holds at once, counting those still in their
    /// handshake; one more is refused (MQTT 5: CONNACK Quota exceeded; 3.1.1: Server
    /// unavailable).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // EMQX's default; Mosquitto allows 200. Real topic trees are rarely ten deep.
            max_topic_levels: 128,
            max_topic_length: 4096,
            max_filters_per_packet: 256,
            max_subscriptions: 1024,
            max_connections: 1_000_000,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            max_packet_size: 1024 * 1024,
            max_mqueue_len: 2048,
            max_mqueue_bytes: 64 * 1024 * 1024,
            mqueue_drop: DropPolicy::DropOldest,
            mqueue_full: QueueFull::Backpressure,
            mqueue_full_wait: Duration::from_secs(30),
            queue_qos0: false,
            max_inflight: 32,
            retry_interval: Duration::from_secs(10),
            keepalive_multiplier: 1.5,
            session_expiry_default: Some(Duration::from_secs(2 * 60 * 60)),
            max_topic_alias: 64,
            server_keep_alive: None,
            connect_timeout: Duration::from_secs(10),
            shared_strategy: SharedStrategy::RoundRobin,
            limits: Limits::default(),
        }
    }
}
