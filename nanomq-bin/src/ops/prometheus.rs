//! The Prometheus text exposition (format 0.0.4, served as `text/plain; version=0.0.4`) of
//! the broker's counters: a pure function from broker-core's snapshots (and the process's
//! own figures) to text, for the admin API's `GET /api/v4/prometheus` to serve. Nothing is
//! counted here: every number is one broker-core keeps (see DESIGN.md, "Operations").
//!
//! Names:
//! - NanoMQ's own, as its `/api/v4/prometheus` writes them, for the dashboards built on
//!   them: `nanomq_connections_count`, `nanomq_connections_max`, `nanomq_sessions_count`,
//!   `nanomq_topics_count`, `nanomq_subscribers_count`, `nanomq_memory_usage`, and the
//!   counters `nanomq_messages_{received,sent,dropped}` (which NanoMQ writes without
//!   `_total`; kept so).
//! - The rest after Prometheus's conventions: `nanomq_` and a unit, counters ending in
//!   `_total`, gauges not, labels for what splits a total: `qos`, `reason` (why a message
//!   was dropped), `limit`, `result`, `bridge`; EMQX's `_count` gauges
//!   (`nanomq_subscriptions_count`, `nanomq_retained_count`).
//! - The process's figures under the names every Prometheus client library gives them
//!   (`process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`, ...),
//!   so that the standard process dashboards work unchanged.
//!
//! No two families share a base name once a counter's `_total` is taken off (as the
//! OpenMetrics data model and Prometheus's Python parser do), so nothing is ambiguous.

#![cfg_attr(
    not(feature = "http-api"),
    allow(
        dead_code,
        reason = "served only by the admin HTTP API (GET /api/v4/prometheus)"
    )
)]

use std::fmt::{Display, Write as _};
use std::time::Duration;

use broker_core::{BridgeSnapshot, LATENCY_BUCKETS_MICROS, MetricsSnapshot, StoreMetrics};

use super::process::ProcessStats;

/// Everything one exposition shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exposition<'a> {
    /// The broker's counters.
    pub(crate) metrics: &'a MetricsSnapshot,
    /// Each bridge's counters.
    pub(crate) bridges: &'a [BridgeSnapshot],
    /// The process's figures, where `/proc` could be read.
    pub(crate) process: Option<&'a ProcessStats>,
    /// How long the broker has been running.
    pub(crate) uptime: Duration,
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// The text, written family by family.
#[derive(Debug, Default)]
struct Text(String);

impl Text {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per value of `label`.
    fn labelled(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        label: &str,
        values: &[(&str, u64)],
    ) {
        self.family(name, kind, help);
        for (value, n) in values {
            self.sample(name, &[(label, value)], n);
        }
    }
}

/// A HELP text with `\` and newlines escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds from microseconds.
fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// The exposition's text.
pub(crate) fn render(exposition: &Exposition<'_>) -> String {
    let mut text = Text::default();
    let m = exposition.metrics;
    nanomq_compatible(&mut text, m, exposition.process);
    broker(&mut text, m, exposition.uptime);
    messages(&mut text, m);
    access(&mut text, m);
    if let Some(store) = &m.store {
        self::store(&mut text, store);
    }
    bridges(&mut text, exposition.bridges);
    if let Some(process) = exposition.process {
        self::process(&mut text, process);
    }
    text.0
}

/// NanoMQ's names, as NanoMQ writes them.
fn nanomq_compatible(text: &mut Text, m: &MetricsSnapshot, process: Option<&ProcessStats>) {
    use Kind::{Counter, Gauge};
    text.single(
        "nanomq_connections_count",
        Gauge,
        "Connections open now (after CONNECT).",
        m.connections,
    );
    text.single(
        "nanomq_connections_max",
        Gauge,
        "The most connections open at once since start.",
        m.connections_max,
    );
    text.single(
        "nanomq_sessions_count",
        Gauge,
        "Sessions held now, of connected and disconnected clients.",
        m.sessions,
    );
    text.single(
        "nanomq_topics_count",
        Gauge,
        "Distinct topic filters subscribed to now.",
        m.topics,
    );
    text.single(
        "nanomq_subscribers_count",
        Gauge,
        "Subscriptions now (NanoMQ's name; the same as nanomq_subscriptions_count).",
        m.subscriptions,
    );
    text.single("nanomq_messages_received", Counter, "Messages received from publishers, wills included (NanoMQ's name; by QoS in nanomq_publish_received_total).", m.messages_received);
    text.single(
        "nanomq_messages_sent",
        Counter,
        "PUBLISH packets sent to subscribers (NanoMQ's name; by QoS in nanomq_publish_sent_total).",
        m.messages_sent,
    );
    text.single("nanomq_messages_dropped", Counter, "Messages dropped for any reason (NanoMQ's name; by reason in nanomq_publish_dropped_total).", m.dropped());
    if let Some(process) = process {
        text.single(
            "nanomq_memory_usage",
            Gauge,
            "Resident memory in bytes (NanoMQ's name; the same as process_resident_memory_bytes).",
            process.resident_bytes,
        );
    }
}

/// Connections, sessions, subscriptions, retained messages, packets and bytes.
fn broker(text: &mut Text, m: &MetricsSnapshot, uptime: Duration) {
    use Kind::{Counter, Gauge};
    text.single(
        "nanomq_uptime_seconds",
        Gauge,
        "How long the broker has been running.",
        uptime.as_secs_f64(),
    );
    text.single(
        "nanomq_connections_total",
        Counter,
        "Connections accepted (CONNECT answered with success).",
        m.connections_total,
    );
    text.single(
        "nanomq_connections_dormant",
        Gauge,
        "Connections open now that are dormant (quiet, waiting without a task of their own).",
        m.connections_dormant,
    );
    text.single("nanomq_sockets_total", Counter, "Streams the listeners handed to the broker, before CONNECT (refused and unfinished handshakes included).", m.sockets_total);
    text.single(
        "nanomq_takeovers_total",
        Counter,
        "Connections closed because the same client id connected again.",
        m.takeovers,
    );
    text.single(
        "nanomq_sessions_ended_total",
        Counter,
        "Sessions that ended: expired, or discarded by a clean start.",
        m.sessions_expired,
    );
    text.single(
        "nanomq_sessions_expired_total",
        Counter,
        "Sessions of disconnected clients that ended because their expiry interval ran out.",
        m.sessions_timed_out,
    );
    text.single(
        "nanomq_subscriptions_count",
        Gauge,
        "Subscriptions now, shared ones included.",
        m.subscriptions,
    );
    text.single(
        "nanomq_subscriptions_shared_count",
        Gauge,
        "Shared subscriptions ($share/...) now.",
        m.shared_subscriptions,
    );
    text.single(
        "nanomq_retained_count",
        Gauge,
        "Retained messages held now (the broker's own $SYS ones included, as Mosquitto counts them).",
        m.retained_messages,
    );
    text.single(
        "nanomq_packets_received_total",
        Counter,
        "MQTT packets of every type read from clients.",
        m.packets_received,
    );
    text.single(
        "nanomq_packets_sent_total",
        Counter,
        "MQTT packets of every type written to clients.",
        m.packets_sent,
    );
    text.single(
        "nanomq_bytes_received_total",
        Counter,
        "Bytes of MQTT packets read from clients (below TLS and WebSocket framing).",
        m.bytes_received,
    );
    text.single(
        "nanomq_bytes_sent_total",
        Counter,
        "Bytes of MQTT packets written to clients.",
        m.bytes_sent,
    );
    text.single(
        "nanomq_protocol_errors_total",
        Counter,
        "Connections closed for a malformed packet or a protocol error.",
        m.protocol_errors,
    );
}

/// Messages by QoS and drops by reason.
fn messages(text: &mut Text, m: &MetricsSnapshot) {
    use Kind::Counter;
    let by_qos = |counts: [u64; 3]| {
        let [q0, q1, q2] = counts;
        [("0", q0), ("1", q1), ("2", q2)]
    };
    text.labelled(
        "nanomq_publish_received_total",
        Counter,
        "Messages received from publishers (wills included), by the QoS they were published with.",
        "qos",
        &by_qos(m.received_by_qos),
    );
    text.labelled(
        "nanomq_publish_sent_total",
        Counter,
        "PUBLISH packets sent to subscribers, by the QoS they were sent with.",
        "qos",
        &by_qos(m.sent_by_qos),
    );
    text.labelled(
        "nanomq_publish_dropped_total",
        Counter,
        "Messages dropped, by reason: a subscriber's queue was full, larger than a subscriber's maximum packet size, expired in a queue, no subscriber matched (retained ones are kept, not counted), the publisher may not publish there, QoS 0 for an offline session.",
        "reason",
        &[
            ("queue_full", m.dropped_queue_full),
            ("too_large", m.dropped_too_large),
            ("expired", m.dropped_expired),
            ("no_subscribers", m.dropped_no_subscribers),
            ("acl", m.dropped_acl),
            ("offline_qos0", m.dropped_offline_qos0),
        ],
    );
    text.single(
        "nanomq_backpressure_waits_total",
        Counter,
        "QoS 1/2 PUBLISHes whose acknowledgement waited for room in a full subscriber queue.",
        m.backpressure_waits,
    );
    text.single(
        "nanomq_backpressure_timeouts_total",
        Counter,
        "Deliveries that waited mqueue_full_wait for room, then got the drop policy.",
        m.backpressure_timeouts,
    );
}

/// Limits and access control.
fn access(text: &mut Text, m: &MetricsSnapshot) {
    use Kind::Counter;
    let l = &m.limits;
    text.labelled(
        "nanomq_limit_refusals_total",
        Counter,
        "Refusals for passing one of the broker's [limits].",
        "limit",
        &[
            ("max_topic_levels", l.topic_levels),
            ("max_topic_length", l.topic_length),
            ("max_filters_per_packet", l.filters_per_packet),
            ("max_subscriptions", l.subscriptions),
            ("max_connections", l.connections),
        ],
    );
    let a = &m.access;
    text.labelled(
        "nanomq_authentication_total",
        Counter,
        "Clients authenticated at CONNECT, by result.",
        "result",
        &[
            ("success", a.authentication_success),
            ("failure", a.authentication_failure),
        ],
    );
    text.labelled("nanomq_authorization_total", Counter, "Publishes, subscriptions, wills and retained deliveries checked against the rules, by result.", "result", &[("allow", a.authorization_allow), ("deny", a.authorization_deny)]);
    text.single(
        "nanomq_authorization_nomatch_total",
        Counter,
        "Checks no rule was about, decided by no_match (also counted by result).",
        a.authorization_nomatch,
    );
}

/// The session store's writer.
fn store(text: &mut Text, s: &StoreMetrics) {
    use Kind::{Counter, Gauge, Histogram};
    text.single(
        "nanomq_store_pending_changes",
        Gauge,
        "Changes recorded for the session store and not yet durable.",
        s.pending,
    );
    text.single(
        "nanomq_store_batches_total",
        Counter,
        "Batches written to the session store, one transaction each.",
        s.batches,
    );
    text.single(
        "nanomq_store_changes_total",
        Counter,
        "Changes taken into those batches.",
        s.changes,
    );
    text.single(
        "nanomq_store_last_batch_changes",
        Gauge,
        "The number of changes in the last batch.",
        s.last_batch,
    );
    text.single(
        "nanomq_store_write_errors_total",
        Counter,
        "Batches the session store refused (each is retried).",
        s.write_errors,
    );
    let name = "nanomq_store_commit_seconds";
    text.family(
        name,
        Histogram,
        "How long writing a batch took, its commit (and fsync) included.",
    );
    let bucket = format!("{name}_bucket");
    for (bound, count) in LATENCY_BUCKETS_MICROS.iter().zip(s.commit.cumulative) {
        text.sample(&bucket, &[("le", &seconds(*bound).to_string())], count);
    }
    text.sample(&bucket, &[("le", "+Inf")], s.commit.count);
    text.sample(&format!("{name}_sum"), &[], seconds(s.commit.sum_micros));
    text.sample(&format!("{name}_count"), &[], s.commit.count);
}

/// Each bridge's counters, labelled with its name.
fn bridges(text: &mut Text, bridges: &[BridgeSnapshot]) {
    use Kind::{Counter, Gauge};
    if bridges.is_empty() {
        return;
    }
    type Value = fn(&BridgeSnapshot) -> u64;
    let families: [(&str, Kind, &str, Value); 6] = [
        (
            "nanomq_bridge_connected",
            Gauge,
            "Whether the bridge's link to its upstream is up (1) or not (0).",
            |b| u64::from(b.connected),
        ),
        (
            "nanomq_bridge_forwarded_total",
            Counter,
            "Messages forwarded upstream and acknowledged there.",
            |b| b.forwarded,
        ),
        (
            "nanomq_bridge_received_total",
            Counter,
            "Messages received from upstream and published locally.",
            |b| b.received,
        ),
        (
            "nanomq_bridge_queued",
            Gauge,
            "Messages held for the upstream now.",
            |b| b.queued,
        ),
        (
            "nanomq_bridge_dropped_total",
            Counter,
            "Messages the bridge could not forward.",
            |b| b.dropped,
        ),
        (
            "nanomq_bridge_reconnects_total",
            Counter,
            "Connection attempts after the first.",
            |b| b.reconnects,
        ),
    ];
    for (name, kind, help, value) in families {
        text.family(name, kind, help);
        for bridge in bridges {
            text.sample(name, &[("bridge", &bridge.name)], value(bridge));
        }
    }
}

/// The process's figures, under the standard names.
fn process(text: &mut Text, p: &ProcessStats) {
    use Kind::{Counter, Gauge};
    text.single(
        "process_resident_memory_bytes",
        Gauge,
        "Resident memory size in bytes.",
        p.resident_bytes,
    );
    text.single(
        "process_virtual_memory_bytes",
        Gauge,
        "Virtual memory size in bytes.",
        p.virtual_bytes,
    );
    text.single(
        "process_cpu_seconds_total",
        Counter,
        "Total user and system CPU time spent in seconds.",
        p.cpu_seconds,
    );
    text.single(
        "process_open_fds",
        Gauge,
        "Number of open file descriptors.",
        p.open_fds,
    );
    if let Some(max) = p.max_fds {
        text.single(
            "process_max_fds",
            Gauge,
            "Maximum number of open file descriptors.",
            max,
        );
    }
    if let Some(start) = p.start_time_seconds {
        text.single(
            "process_start_time_seconds",
            Gauge,
            "Start time of the process since unix epoch in seconds.",
            start,
        );
    }
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
