//! The broker's core, independent of any transport: sessions, subscriptions, retained
//! messages, QoS 0/1/2 in both directions, wills, keep-alive, topic aliases, flow control.
//!
//! Transports hand each accepted byte stream to [`Broker::serve_connection`]. There, in the
//! connection's own task, CONNECT is read and validated into a [`ConnParam`], and a [`Pipe`]
//! is built that owns it: the parameters live exactly as long as the connection. A session
//! (which outlives connections) keeps only what is its own; each connection that drives it
//! supplies its own parameters, so a resumed session's queued messages go out under the new
//! connection's receive maximum, packet size limit and protocol version.
//!
//! # Modules
//! - `broker`: [`Broker`], the registry, routing, retained messages, wills, session expiry.
//! - `connection`: the handshake and the per-connection driver.
//! - `session`: a session's state (queue, in-flight window, packet identifiers).
//! - `subscriptions`: the sharded topic tree that matches topics to subscribers.
//! - `retained`: [`RetainedIndex`], retained messages in a topic tree, looked up by filter.
//! - `topic_tree`: what both trees share (compact children, walks that never recurse).
//! - `conn_param`, `pipe`: the connection's parameters and the pipe that owns them.
//! - `store`: the durable state (the [`Store`] trait, the journal and its writer thread).
//! - `auth`: access control ([`AccessControl`]: authenticators, authorizers, their policies)
//!   and the AUTH exchange hook.
//! - `config`, `metrics`, `message`: settings, counters, messages.
//! - `events`: the [`ClientEvents`] hook, told as clients connect and disconnect.
//! - [`scram`]: SCRAM-SHA-256/512, an [`EnhancedAuth`] with its credentials file.
//! - [`acl`]: authorization rules (TOML rules and Mosquitto's `acl_file`), compiled.
//! - `limits`: checks against the limits of what one client may cost, and their log.
//! - `fuzzing` (feature `fuzzing`): the script interpreter of the broker's fuzz target.

pub mod acl;
mod auth;
mod bridge_metrics;
mod broker;
mod client_info;
mod config;
mod conn_param;
mod connection;
mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod message;
mod metrics;
mod pipe;
mod retained;
pub mod scram;
mod session;
mod store;
mod subscriptions;
mod topic_levels;
mod topic_tree;

pub use auth::{
    AccessControl, AclCheck, AclResult, Action, AuthContext, AuthExchange, AuthStep, Authenticator,
    AuthnDenial, AuthnResult, Authorizer, BoxFuture, ClientAuthorizer, DenyAction, EnhancedAuth,
};
pub use auth::{
    DEFAULT_PBKDF2_ITERATIONS, HashAlgorithm, HashError, LoadPasswordFileError, PasswordCheck,
    PasswordFile, PasswordFileAuthenticator, PasswordFileEditor, PasswordFileError,
    PasswordFileErrorKind, PasswordHash, UsernameError, check_username, hash_password,
};
pub use bridge_metrics::{BridgeCounters, BridgeSnapshot};
pub use broker::{
    AdminError, Broker, ClientDetail, ClientSummary, DEFAULT_QUEUE_WINDOW, Kick,
    SubscriptionSummary,
};
pub use client_info::ClientInfo;
pub(crate) use client_info::ClientRecord;
pub use config::{DropPolicy, Limits, MqttConfig, QueueFull, SharedStrategy};
pub use conn_param::{
    CertificateIdentity, ConnParam, INTERNAL_CLIENT_ID_PREFIX, Internal, SessionExpiry,
    TransportInfo, TransportKind,
};
pub use events::ClientEvents;
pub use message::Message;
pub use metrics::{
    AccessCounts, LATENCY_BUCKETS_MICROS, LatencyHistogram, LimitsExceeded, MetricsSnapshot,
    StoreMetrics,
};
pub use pipe::{Pipe, StreamPipe};
pub use retained::{RetainedIndex, RetainedLookup};
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{
    DeliveryState, MemoryStore, Snapshot, Store, StoreError, StoreOp, StoredDelivery,
    StoredMessage, StoredSession, StoredSubscription, StoredWill, SyncPolicy, Unread,
};
