//! The `$SYS` publisher: every `[sys] interval`, Mosquitto's statistics topics, from
//! broker-core's counters, published by the broker itself (QoS 2 and retained, as Mosquitto
//! publishes them: a client that subscribes later gets the latest values at once).
//!
//! As in Mosquitto, `$SYS/broker/version` goes out once, `uptime` at every interval, and
//! every other topic only when its value changed since it was last published (so an idle
//! broker sends one message per interval). The names and formats are Mosquitto's, since
//! exporters turn these topics into metric names:
//!
//! - `messages/{received,sent}` count MQTT packets of every type, `publish/messages/...`
//!   PUBLISH packets only (Mosquitto's meanings); `publish/messages/dropped` counts every
//!   reason a message was dropped (the same total as `nanomq_messages_dropped`).
//! - `clients/total` is sessions held (connected or not), `clients/disconnected` those
//!   without a connection, `clients/maximum` the most connections open at once,
//!   `clients/expired` sessions ended by their expiry interval.
//! - `load/.../{1min,5min,15min}` are per-minute rates, each an exponentially decayed
//!   average over that window, computed as Mosquitto does (`"%.2f"`, published when they
//!   move by 0.01 or more).
//!
//! Mosquitto's `heap/*` topics are left out: the allocator (jemalloc, built without its
//! statistics) cannot say how much heap is in use; so are `messages/stored` and
//! `publish/bytes/*`, which broker-core does not count.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, Message, MetricsSnapshot};
use bytes::Bytes;
use mqtt_codec::{QoS, TopicName};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// What each `$SYS` message is published with (Mosquitto's `SYS_TREE_QOS`).
const QOS: QoS = QoS::ExactlyOnce;

/// The windows of the load averages: topic suffix and length in seconds.
const WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

/// Reads one figure from the counters.
type Figure = fn(&MetricsSnapshot) -> u64;

/// The counters whose rates the `load` topics show: the topic part, and the counter.
const LOADS: [(&str, Figure); 9] = [
    ("messages/received", |m| m.packets_received),
    ("messages/sent", |m| m.packets_sent),
    ("publish/received", |m| m.messages_received),
    ("publish/sent", |m| m.messages_sent),
    ("publish/dropped", MetricsSnapshot::dropped),
    ("bytes/received", |m| m.bytes_received),
    ("bytes/sent", |m| m.bytes_sent),
    ("sockets", |m| m.sockets_total),
    ("connections", |m| m.connections_total),
];

/// The topics that show one value each: the topic, and the value.
const VALUES: [(&str, Figure); 15] = [
    ("$SYS/broker/clients/connected", |m| m.connections),
    ("$SYS/broker/clients/total", |m| m.sessions),
    ("$SYS/broker/clients/disconnected", |m| {
        m.sessions.saturating_sub(m.connections)
    }),
    ("$SYS/broker/clients/maximum", |m| m.connections_max),
    ("$SYS/broker/clients/expired", |m| m.sessions_timed_out),
    ("$SYS/broker/messages/received", |m| m.packets_received),
    ("$SYS/broker/messages/sent", |m| m.packets_sent),
    ("$SYS/broker/bytes/received", |m| m.bytes_received),
    ("$SYS/broker/bytes/sent", |m| m.bytes_sent),
    ("$SYS/broker/publish/messages/received", |m| {
        m.messages_received
    }),
    ("$SYS/broker/publish/messages/sent", |m| m.messages_sent),
    (
        "$SYS/broker/publish/messages/dropped",
        MetricsSnapshot::dropped,
    ),
    ("$SYS/broker/subscriptions/count", |m| m.subscriptions),
    ("$SYS/broker/shared_subscriptions/count", |m| {
        m.shared_subscriptions
    }),
    ("$SYS/broker/retained messages/count", |m| {
        m.retained_messages
    }),
];

/// The `$SYS` tree between two updates: what was last published, and the loads.
#[derive(Debug, Default)]
pub(crate) struct SysTree {
    /// The payload last published on each value topic.
    published: HashMap<&'static str, u64>,
    /// Each load's current average (by `LOADS` then `WINDOWS`).
    loads: Vec<f64>,
    /// The uptime and counters of the last update.
    last: Option<(Duration, MetricsSnapshot)>,
}

impl SysTree {
    /// The messages to publish at `uptime`, given the counters `m`: `(topic, payload)`.
    pub(crate) fn update(
        &mut self,
        m: &MetricsSnapshot,
        uptime: Duration,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let first = self.last.is_none();
        if first {
            out.push((
                "$SYS/broker/version".to_owned(),
                format!("nanomq version {}", env!("CARGO_PKG_VERSION")),
            ));
        }
        out.push((
            "$SYS/broker/uptime".to_owned(),
            format!("{} seconds", uptime.as_secs()),
        ));
        self.update_loads(m, uptime, &mut out);
        for (topic, value) in &VALUES {
            let value = value(m);
            if self.published.insert(topic, value) != Some(value) {
                out.push(((*topic).to_owned(), value.to_string()));
            }
        }
        self.last = Some((uptime, *m));
        out
    }

    /// Mosquitto's loads: over the `dt` seconds since the last update the counter moved at
    /// `rate` per minute; each average moves towards it by `1 - e^(-dt/window)`. The first
    /// update publishes them all as 0.
    fn update_loads(
        &mut self,
        m: &MetricsSnapshot,
        uptime: Duration,
        out: &mut Vec<(String, String)>,
    ) {
        let topics = LOADS
            .iter()
            .flat_map(|(what, counter)| WINDOWS.iter().map(move |w| (*what, *counter, *w)));
        let Some((before, last)) = &self.last else {
            self.loads = vec![0.0; LOADS.len() * WINDOWS.len()];
            for (what, _, (window, _)) in topics {
                out.push((
                    format!("$SYS/broker/load/{what}/{window}"),
                    "0.00".to_owned(),
                ));
            }
            return;
        };
        let dt = uptime.saturating_sub(*before).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        for ((what, counter, (window, seconds)), current) in topics.zip(self.loads.iter_mut()) {
            let moved = counter(m).saturating_sub(counter(last)) as f64;
            let rate = moved * 60.0 / dt;
            let next = rate + (-dt / seconds).exp() * (*current - rate);
            if (next - *current).abs() >= 0.01 {
                out.push((
                    format!("$SYS/broker/load/{what}/{window}"),
                    format!("{next:.2}"),
                ));
            }
            *current = next;
        }
    }
}

/// Publishes the `$SYS` tree every `interval` (none while it is `None`) from now (the broker
/// started at `started`) until `stopped` says stop. A new interval (a reload) starts over
/// at once with an update, then keeps the new pace; the tree (what was published, the load
/// averages) carries on across it.
pub(crate) async fn run(
    broker: Arc<Broker>,
    mut interval: watch::Receiver<Option<Duration>>,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tree = SysTree::default();
    // Once the sender is gone the interval can no longer change.
    let mut changeable = true;
    loop {
        let period = *interval.borrow_and_update();
        let mut ticks = period.map(|period| {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(ticks) => {
                        ticks.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tick => publish(&broker, &mut tree, started),
                changed = interval.changed(), if changeable => {
                    match changed {
                        Ok(()) => break,
                        Err(_) => changeable = false,
                    }
                }
                // An error means the sender is gone, which also means stop.
                _ = stopped.wait_for(|&stop| stop) => return,
            }
        }
        match *interval.borrow() {
            Some(period) => {
                tracing::info!(interval = %humantime::format_duration(period), "$SYS statistics interval changed")
            }
            None => tracing::info!("$SYS statistics off"),
        }
    }
}

/// Publishes one update of the tree.
fn publish(broker: &Broker, tree: &mut SysTree, started: Instant) {
    for (topic, payload) in tree.update(&broker.metrics(), started.elapsed()) {
        match TopicName::new(topic) {
            Ok(topic) => {
                broker.publish_system(Message::new(topic, Bytes::from(payload), QOS, true, None))
            }
            Err(e) => tracing::error!(error = %e, "invalid $SYS topic"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(out: &[(String, String)]) -> Vec<&str> {
        out.iter().map(|(t, _)| t.as_str()).collect()
    }

    fn payload<'a>(out: &'a [(String, String)], topic: &str) -> Option<&'a str> {
        out.iter()
            .find(|(t, _)| t == topic)
            .map(|(_, p)| p.as_str())
    }

    #[test]
    fn the_first_update_publishes_everything_then_only_what_changed() {
        let mut tree = SysTree::default();
        let mut m = MetricsSnapshot::default();
        m.connections = 2;
        m.sessions = 5;
        m.connections_max = 3;
        let first = tree.update(&m, Duration::from_secs(0));
        assert_eq!(
            payload(&first, "$SYS/broker/version"),
            Some(concat!("nanomq version ", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(payload(&first, "$SYS/broker/uptime"), Some("0 seconds"));
        assert_eq!(payload(&first, "$SYS/broker/clients/connected"), Some("2"));
        assert_eq!(
            payload(&first, "$SYS/broker/clients/disconnected"),
            Some("3")
        );
        assert_eq!(
            payload(&first, "$SYS/broker/retained messages/count"),
            Some("0")
        );
        assert_eq!(
            payload(&first, "$SYS/broker/load/bytes/sent/15min"),
            Some("0.00")
        );
        // 1 version + 1 uptime + 9 loads x 3 windows + 15 values.
        assert_eq!(first.len(), 2 + 27 + 15, "{:?}", topics(&first));

        // Nothing moved: the uptime alone.
        let idle = tree.update(&m, Duration::from_secs(10));
        assert_eq!(topics(&idle), ["$SYS/broker/uptime"]);
        assert_eq!(payload(&idle, "$SYS/broker/uptime"), Some("10 seconds"));

        m.connections = 3;
        m.retained_messages = 1;
        let changed = tree.update(&m, Duration::from_secs(20));
        assert_eq!(
            topics(&changed),
            [
                "$SYS/broker/uptime",
                "$SYS/broker/clients/connected",
                "$SYS/broker/clients/disconnected",
                "$SYS/broker/retained messages/count",
            ]
        );
    }

    #[test]
    fn loads_are_mosquitto_s_decayed_averages_per_minute() {
        let mut tree = SysTree::default();
        let mut m = MetricsSnapshot::default();
        tree.update(&m, Duration::ZERO);
        // 60 packets in 60 s: a rate of 60 per minute, reached by 1 - e^(-60/window).
        m.packets_received = 60;
        m.messages_received = 1;
        let out = tree.update(&m, Duration::from_secs(60));
        assert_eq!(
            payload(&out, "$SYS/broker/load/messages/received/1min"),
            Some("37.93")
        );
        assert_eq!(
            payload(&out, "$SYS/broker/load/messages/received/5min"),
            Some("10.88")
        );
        assert_eq!(
            payload(&out, "$SYS/broker/load/messages/received/15min"),
            Some("3.87")
        );
        assert_eq!(
            payload(&out, "$SYS/broker/load/publish/received/1min"),
            Some("0.63")
        );
        assert_eq!(
            payload(&out, "$SYS/broker/load/publish/received/15min"),
            Some("0.06")
        );
        // Still 0 (moved by less than 0.01): not published again.
        assert_eq!(payload(&out, "$SYS/broker/load/bytes/received/1min"), None);
        // Then nothing more: the averages decay towards 0.
        let out = tree.update(&m, Duration::from_secs(120));
        let one_minute = payload(&out, "$SYS/broker/load/messages/received/1min").unwrap();
        let e = std::f64::consts::E;
        assert_eq!(one_minute, format!("{:.2}", 60.0 * (1.0 - 1.0 / e) / e));
    }
}
