//! Counters the broker keeps about itself: relaxed atomics, read as a snapshot.
//!
//! What is counted once per message or packet is counted where the work already happens
//! in batches (a connection's read, its write, one routing): a connection adds up its
//! packets and bytes and adds them to these counters once per read or write, so
//! publishers on different cores do not all write one cache line per packet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mqtt_codec::QoS;

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) connections: AtomicU64,
    pub(crate) connections_max: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_dormant: AtomicU64,
    pub(crate) sockets_total: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) received_qos0: AtomicU64,
    pub(crate) received_qos1: AtomicU64,
    pub(crate) received_qos2: AtomicU64,
    pub(crate) sent_qos0: AtomicU64,
    pub(crate) sent_qos1: AtomicU64,
    pub(crate) sent_qos2: AtomicU64,
    pub(crate) packets_received: AtomicU64,
    pub(crate) packets_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) dropped_no_subscribers: AtomicU64,
    pub(crate) dropped_acl: AtomicU64,
    pub(crate) sessions_timed_out: AtomicU64,
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

/// The upper bounds, in microseconds, of the buckets of a [`LatencyHistogram`] (a last
/// bucket, above the largest, holds the rest).
pub const LATENCY_BUCKETS_MICROS: [u64; 12] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000,
];

/// How long something took, counted in fixed buckets (see [`LATENCY_BUCKETS_MICROS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// How many took at most each bucket's bound: cumulative, as Prometheus histograms are
    /// (`cumulative[i]` counts everything up to `LATENCY_BUCKETS_MICROS[i]`).
    pub cumulative: [u64; LATENCY_BUCKETS_MICROS.len()],
    /// How many were measured (the `+Inf` bucket).
    pub count: u64,
    /// The sum of all of them, in microseconds.
    pub sum_micros: u64,
}

/// The session store's writer, when the broker has a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreMetrics {
    /// Changes recorded and not yet durable: how far the writer is behind.
    pub pending: u64,
    /// Batches written (one transaction each).
    pub batches: u64,
    /// Changes taken into those batches (before those that cancel out were dropped).
    pub changes: u64,
    /// The number of changes in the last batch.
    pub last_batch: u64,
    /// Batches the store refused (each retried).
    pub write_errors: u64,
    /// How long writing a batch took, its commit (and so its fsync) included.
    pub commit: LatencyHistogram,
}

/// A snapshot of the broker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Connections open now (after CONNECT).
    pub connections: u64,
    /// The most connections open at once since start.
    pub connections_max: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections open now that are dormant: quiet, waiting without a task of their own.
    pub connections_dormant: u64,
    /// Streams the transports handed over since start (before CONNECT: refused and
    /// unfinished handshakes included).
    pub sockets_total: u64,
    /// Connections closed because the same client id connected again.
    pub takeovers: u64,
    /// Sessions in the registry now.
    pub sessions: u64,
    /// Retained messages stored now.
    pub retained_messages: u64,
    /// Subscriptions in the index now (shared ones included).
    pub subscriptions: u64,
    /// Shared subscriptions (`$share/...`) in the index now.
    pub shared_subscriptions: u64,
    /// Distinct topic filters in the index now (a shared subscription counts by the filter
    /// after its group): the broker's "topics".
    pub topics: u64,
    /// Messages accepted from publishers (wills included; not the broker's own `$SYS`
    /// messages): the sum of `received_by_qos`.
    pub messages_received: u64,
    /// PUBLISH packets sent to subscribers: the sum of `sent_by_qos`.
    pub messages_sent: u64,
    /// Messages accepted from publishers, by the QoS they were published with (index 0, 1, 2).
    pub received_by_qos: [u64; 3],
    /// PUBLISH packets sent to subscribers, by the QoS they were sent with.
    pub sent_by_qos: [u64; 3],
    /// MQTT packets read from clients, of every type (CONNECT included).
    pub packets_received: u64,
    /// MQTT packets written to clients, of every type.
    pub packets_sent: u64,
    /// Bytes read from clients (MQTT packets: below WebSocket and TLS framing).
    pub bytes_received: u64,
    /// Bytes of MQTT packets written to clients.
    pub bytes_sent: u64,
    /// Messages no subscription matched (retained ones are not counted: they are kept).
    pub dropped_no_subscribers: u64,
    /// PUBLISHes (and wills) not routed because the client may not publish to the topic.
    pub dropped_acl: u64,
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
    /// Sessions of disconnected clients that ended because their expiry interval ran out.
    pub sessions_timed_out: u64,
    /// Connections closed for a malformed packet or a protocol error.
    pub protocol_errors: u64,
    /// Refusals for passing the broker's limits.
    pub limits: LimitsExceeded,
    /// Access-control decisions.
    pub access: AccessCounts,
    /// The session store's writer; `None` without a store.
    pub store: Option<StoreMetrics>,
}

impl MetricsSnapshot {
    /// Messages dropped for any reason: no subscriber, access control, and every
    /// subscriber's drop (queue full, too large, expired, QoS 0 for an offline session).
    pub fn dropped(&self) -> u64 {
        self.dropped_no_subscribers
            + self.dropped_acl
            + self.dropped_queue_full
            + self.dropped_too_large
            + self.dropped_expired
            + self.dropped_offline_qos0
    }
}

/// Counts durations into the buckets of [`LATENCY_BUCKETS_MICROS`].
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Not cumulative: each measurement adds to one bucket (the last is above them all).
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(LATENCY_BUCKETS_MICROS.len());
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        let mut out = LatencyHistogram {
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
            ..LatencyHistogram::default()
        };
        let mut total = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            if let Some(slot) = out.cumulative.get_mut(i) {
                *slot = total;
            }
        }
        out.count = total;
        out
    }
}

impl Metrics {
    /// The counter of messages received at `qos`.
    pub(crate) fn received(&self, qos: QoS) -> &AtomicU64 {
        match qos {
            QoS::AtMostOnce => &self.received_qos0,
            QoS::AtLeastOnce => &self.received_qos1,
            QoS::ExactlyOnce => &self.received_qos2,
        }
    }

    /// Adds `sent[q]` PUBLISH packets sent at QoS `q`.
    pub(crate) fn count_sent(&self, sent: [u64; 3]) {
        for (counter, n) in [&self.sent_qos0, &self.sent_qos1, &self.sent_qos2]
            .into_iter()
            .zip(sent)
        {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Adds `packets` packets of `bytes` bytes in all, read from clients.
    pub(crate) fn count_read(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.packets_received.fetch_add(packets, Ordering::Relaxed);
        }
        if bytes > 0 {
            self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Adds `packets` packets of `bytes` bytes in all, written to clients.
    pub(crate) fn count_written(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.packets_sent.fetch_add(packets, Ordering::Relaxed);
        }
        if bytes > 0 {
            self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts a connection that completed its handshake.
    pub(crate) fn connected(&self) {
        let now = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.connections_max.fetch_max(now, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

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
        let received_by_qos = [
            get(&self.received_qos0),
            get(&self.received_qos1),
            get(&self.received_qos2),
        ];
        let sent_by_qos = [
            get(&self.sent_qos0),
            get(&self.sent_qos1),
            get(&self.sent_qos2),
        ];
        MetricsSnapshot {
            connections: get(&self.connections),
            connections_max: get(&self.connections_max),
            connections_total: get(&self.connections_total),
            connections_dormant: get(&self.connections_dormant),
            sockets_total: get(&self.sockets_total),
            takeovers: get(&self.takeovers),
            sessions: 0,
            retained_messages: 0,
            subscriptions: 0,
            shared_subscriptions: 0,
            topics: 0,
            messages_received: received_by_qos.iter().sum(),
            messages_sent: sent_by_qos.iter().sum(),
            received_by_qos,
            sent_by_qos,
            packets_received: get(&self.packets_received),
            packets_sent: get(&self.packets_sent),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
            dropped_no_subscribers: get(&self.dropped_no_subscribers),
            dropped_acl: get(&self.dropped_acl),
            dropped_queue_full: get(&self.dropped_queue_full),
            backpressure_waits: get(&self.backpressure_waits),
            backpressure_timeouts: get(&self.backpressure_timeouts),
            dropped_offline_qos0: get(&self.dropped_offline_qos0),
            dropped_too_large: get(&self.dropped_too_large),
            dropped_expired: get(&self.dropped_expired),
            sessions_expired: get(&self.sessions_expired),
            sessions_timed_out: get(&self.sessions_timed_out),
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
            store: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_counts_each_duration_in_the_first_bucket_that_holds_it() {
        let histogram = Histogram::default();
        for micros in [0, 500, 501, 3_000, 2_500_000, 2_500_001, 60_000_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 7);
        assert_eq!(snapshot.sum_micros, 65_004_002);
        // <= 0.5 ms: 0 and 500; <= 1 ms: 501 too; <= 5 ms: 3 000 too; ...
        assert_eq!(snapshot.cumulative[0], 2);
        assert_eq!(snapshot.cumulative[1], 3);
        assert_eq!(snapshot.cumulative[2], 3);
        assert_eq!(snapshot.cumulative[3], 4);
        assert_eq!(
            snapshot.cumulative[11], 5,
            "2.5 s is in the last bounded bucket"
        );
    }

    #[test]
    fn per_qos_counts_add_up_and_the_maximum_follows_the_peak() {
        let metrics = Metrics::default();
        metrics
            .received(QoS::AtMostOnce)
            .fetch_add(2, Ordering::Relaxed);
        metrics
            .received(QoS::ExactlyOnce)
            .fetch_add(1, Ordering::Relaxed);
        metrics.count_sent([0, 3, 1]);
        metrics.connected();
        metrics.connected();
        metrics.connections.fetch_sub(1, Ordering::Relaxed);
        metrics.connected();
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.received_by_qos, [2, 0, 1]);
        assert_eq!(snapshot.messages_received, 3);
        assert_eq!(snapshot.sent_by_qos, [0, 3, 1]);
        assert_eq!(snapshot.messages_sent, 4);
        assert_eq!(
            (
                snapshot.connections,
                snapshot.connections_max,
                snapshot.connections_total
            ),
            (2, 2, 3)
        );
    }
}
