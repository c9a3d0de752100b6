//! Counters the broker keeps about itself: relaxed atomics, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) connections: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) backpressure_waits: AtomicU64,
    pub(crate) backpressure_timeouts: AtomicU64,
    pub(crate) dropped_offline_qos0: AtomicU64,
    pub(crate) dropped_too_large: AtomicU64,
    pub(crate) dropped_expired: AtomicU64,
    pub(crate) sessions_expired: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) limit_topic_levels: AtomicU64,
    pub(crate) limit_topic_length: AtomicU64,
    pub(crate) limit_filters_per_packet: AtomicU64,
    pub(crate) limit_subscriptions: AtomicU64,
    pub(crate) limit_connections: AtomicU64,
    pub(crate) authentication_success: AtomicU64,
    pub(crate) authentication_failure: AtomicU64,
    pub(crate) authorization_allow: AtomicU64,
    pub(crate) authorization_deny: AtomicU64,
    pub(crate) authorization_nomatch: AtomicU64,
}

/// How often clients were refused for passing each of the broker's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LimitsExceeded {
    /// Topic names and filters with more than `max_topic_levels` levels (wills included).
    pub topic_levels: u64,
    /// Topic names and filters longer than `max_topic_length` (wills included).
    pub topic_length: u64,
    /// SUBSCRIBE or UNSUBSCRIBE packets with more than `max_filters_per_packet` filters.
    pub filters_per_packet: u64,
    /// Subscriptions refused because the session held `max_subscriptions`.
    pub subscriptions: u64,
    /// Connections refused because the broker held `max_connections`.
    pub connections: u64,
}

/// What access control decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AccessCounts {
    /// Clients that passed authentication at CONNECT.
    pub authentication_success: u64,
    /// Clients refused at CONNECT (bad credentials, anonymous, not authorized).
    pub authentication_failure: u64,
    /// Publishes, subscriptions, wills and retained deliveries allowed.
    pub authorization_allow: u64,
    /// Those denied.
    pub authorization_deny: u64,
    /// Those no rule was about, decided by `no_match` (also counted as allowed or denied).
    pub authorization_nomatch: u64,
}

/// A snapshot of the broker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Connections open now (after CONNECT).
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections closed because the same client id connected again.
    pub takeovers: u64,
    /// Sessions in the registry now.
    pub sessions: u64,
    /// Retained messages stored now.
    pub retained_messages: u64,
    /// Messages accepted from publishers (wills included).
    pub messages_received: u64,
    /// PUBLISH packets sent to subscribers.
    pub messages_sent: u64,
    /// Messages dropped because a session's queue was full.
    pub dropped_queue_full: u64,
    /// QoS 1/2 PUBLISHes whose acknowledgement waited for room in an online subscriber's
    /// full queue (`mqueue_full = "backpressure"`).
    pub backpressure_waits: u64,
    /// Deliveries that waited `mqueue_full_wait` for room, then got the drop policy.
    pub backpressure_timeouts: u64,
    /// QoS 0 messages not queued for offline sessions.
    pub dropped_offline_qos0: u64,
    /// Messages dropped for a client because they exceed its Maximum Packet Size.
    pub dropped_too_large: u64,
    /// Queued messages dropped because they expired.
    pub dropped_expired: u64,
    /// Sessions that ended (expired, or replaced by a clean start).
    pub sessions_expired: u64,
    /// Connections closed for a malformed packet or a protocol error.
    pub protocol_errors: u64,
    /// Refusals for passing the broker's limits.
    pub limits: LimitsExceeded,
    /// Access-control decisions.
    pub access: AccessCounts,
}

impl Metrics {
    /// Counts one authorization decision.
    pub(crate) fn authorization(&self, decision: crate::auth::Decision) {
        let counter = if decision.allowed() {
            &self.authorization_allow
        } else {
            &self.authorization_deny
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !decision.by_rule() {
            self.authorization_nomatch.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            connections: get(&self.connections),
            connections_total: get(&self.connections_total),
            takeovers: get(&self.takeovers),
            sessions: 0,
            retained_messages: 0,
            messages_received: get(&self.messages_received),
            messages_sent: get(&self.messages_sent),
            dropped_queue_full: get(&self.dropped_queue_full),
            backpressure_waits: get(&self.backpressure_waits),
            backpressure_timeouts: get(&self.backpressure_timeouts),
            dropped_offline_qos0: get(&self.dropped_offline_qos0),
            dropped_too_large: get(&self.dropped_too_large),
            dropped_expired: get(&self.dropped_expired),
            sessions_expired: get(&self.sessions_expired),
            protocol_errors: get(&self.protocol_errors),
            limits: LimitsExceeded {
                topic_levels: get(&self.limit_topic_levels),
                topic_length: get(&self.limit_topic_length),
                filters_per_packet: get(&self.limit_filters_per_packet),
                subscriptions: get(&self.limit_subscriptions),
                connections: get(&self.limit_connections),
            },
            access: AccessCounts {
                authentication_success: get(&self.authentication_success),
                authentication_failure: get(&self.authentication_failure),
                authorization_allow: get(&self.authorization_allow),
                authorization_deny: get(&self.authorization_deny),
                authorization_nomatch: get(&self.authorization_nomatch),
            },
        }
    }
}
