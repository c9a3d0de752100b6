//! The end of a run: every message accounted for (sent, acknowledged, received, lost,
//! duplicated, out of order), rates, latency percentiles, connection figures and memory, as a
//! human summary or as JSON (`--json`, one object on standard output).
//!
//! A message is *lost* when a subscriber whose filter matches its topic never received it;
//! when the publishers are not in this run (`bench sub`), only the gaps below the highest
//! sequence number received can be told.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::clients::{PubOutcome, SubOutcome};
use super::histogram::Histogram;
use super::plan::Plan;
use super::run::Results;

/// The JSON report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Report {
    /// The scenario's name.
    pub(crate) scenario: String,
    /// The broker.
    pub(crate) url: String,
    /// MQTT version.
    pub(crate) version: String,
    /// QoS.
    pub(crate) qos: u8,
    /// Payload bytes.
    pub(crate) payload_size: usize,
    /// Publishing clients.
    pub(crate) publishers: usize,
    /// Subscribing clients.
    pub(crate) subscribers: usize,
    /// Whether the subscribers were offline persistent sessions while publishers published
    /// (`--offline`): then `rates.acked_per_s` is the throughput to read.
    pub(crate) offline: bool,
    /// Connection figures.
    pub(crate) connections: Connections,
    /// Message accounting.
    pub(crate) messages: Messages,
    /// Throughput.
    pub(crate) rates: Rates,
    /// End-to-end latency in microseconds (distinct messages).
    pub(crate) latency_us: Latency,
    /// Seconds.
    pub(crate) elapsed_s: Elapsed,
    /// Resident memory of `--rss-pid`.
    pub(crate) rss: Option<Rss>,
    /// The first errors met (connections refused or lost).
    pub(crate) errors: Vec<String>,
}

/// Connection figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Connections {
    /// Attempted.
    pub(crate) requested: u64,
    /// Accepted.
    pub(crate) connected: u64,
    /// Failed or refused.
    pub(crate) failed: u64,
    /// Lost while running.
    pub(crate) lost: u64,
    /// Accepted connections per second over the connection phase.
    pub(crate) rate_per_s: f64,
    /// CONNECT to CONNACK (and SUBACK), milliseconds.
    pub(crate) handshake_ms: Percentiles,
}

/// Percentiles of a distribution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Percentiles {
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Maximum.
    pub(crate) max: f64,
}

/// Message accounting.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Messages {
    /// Written by publishers.
    pub(crate) sent: u64,
    /// Acknowledged with success (QoS 1: PUBACK; QoS 2: PUBCOMP).
    pub(crate) acked: u64,
    /// Acknowledged with a failure reason code.
    pub(crate) ack_errors: u64,
    /// Deliveries the topology calls for: each message times the subscribers that match it.
    pub(crate) expected: u64,
    /// Deliveries received, duplicates included.
    pub(crate) received: u64,
    /// Distinct deliveries.
    pub(crate) unique: u64,
    /// Expected and never received.
    pub(crate) lost: u64,
    /// Received more than once.
    pub(crate) duplicated: u64,
    /// Received after a later message of the same publisher.
    pub(crate) out_of_order: u64,
    /// Received but not sent to this subscriber by this run (no stamp, or a publisher its
    /// filter does not match).
    pub(crate) unexpected: u64,
}

/// Throughput.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Rates {
    /// Messages written per second of publishing.
    pub(crate) sent_per_s: f64,
    /// Messages acknowledged with success per second (QoS 1: PUBACK; QoS 2: PUBCOMP), from
    /// the start to the last acknowledgement; 0 at QoS 0.
    pub(crate) acked_per_s: f64,
    /// Distinct deliveries per second, from the start to the last delivery.
    pub(crate) received_per_s: f64,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Latency {
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// 99.9th percentile.
    pub(crate) p999: f64,
    /// Maximum.
    pub(crate) max: f64,
    /// Mean.
    pub(crate) mean: f64,
    /// How many messages were timed.
    pub(crate) samples: u64,
}

/// Durations, seconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Elapsed {
    /// Connecting every client.
    pub(crate) connecting: f64,
    /// From the start to the last message written.
    pub(crate) publishing: f64,
    /// From the start to the last acknowledgement.
    pub(crate) acknowledging: f64,
    /// From the start to the last distinct delivery.
    pub(crate) delivering: f64,
    /// From the start to the stop.
    pub(crate) running: f64,
}

/// Resident memory.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Rss {
    /// The process.
    pub(crate) pid: u32,
    /// Before connecting, KiB.
    pub(crate) before_kib: u64,
    /// With the connections up, KiB.
    pub(crate) after_kib: u64,
    /// (after - before) / connections, bytes.
    pub(crate) per_connection_bytes: f64,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn per_second(count: u64, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        count as f64 / over.as_secs_f64()
    }
}

/// Rounds to two decimals, for readable JSON.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Messages accounting for `subscribers` given what `publishers` sent.
fn account(plan: &Plan, publishers: &[PubOutcome], subscribers: &[SubOutcome]) -> Messages {
    let known_senders = !publishers.is_empty();
    let mut m = Messages {
        sent: publishers.iter().map(|p| p.sent).sum(),
        acked: publishers.iter().map(|p| p.acked).sum(),
        ack_errors: publishers.iter().map(|p| p.ack_errors).sum(),
        expected: 0,
        received: 0,
        unique: 0,
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        unexpected: 0,
    };
    let no_routes = Vec::new();
    for (index, sub) in subscribers.iter().enumerate() {
        let routes = plan.routes.get(index).unwrap_or(&no_routes);
        m.unexpected += sub.tracker.foreign;
        m.received += sub.tracker.foreign;
        for (&publisher, flow) in &sub.tracker.flows {
            m.received += flow.unique + flow.duplicates;
            m.duplicated += flow.duplicates;
            m.out_of_order += flow.out_of_order;
            if !known_senders {
                m.unique += flow.unique;
                m.lost += flow.gaps();
            } else if routes.contains(&publisher) {
                m.unique += flow.unique;
            } else {
                m.unexpected += flow.unique;
            }
        }
        if known_senders {
            for &publisher in routes {
                let sent = publishers.get(publisher as usize).map_or(0, |p| p.sent);
                m.expected += sent;
                m.lost += sub
                    .tracker
                    .flows
                    .get(&publisher)
                    .map_or(sent, |flow| flow.missing(sent));
            }
        }
    }
    if !known_senders {
        m.expected = m.unique + m.lost;
    }
    m
}

impl Report {
    /// The report of a run.
    pub(crate) fn new(plan: &Plan, results: &Results) -> Self {
        let messages = account(plan, &results.publishers, &results.subscribers);
        let start = results.started;
        let since_start = |t: Option<tokio::time::Instant>| match (start, t) {
            (Some(s), Some(t)) => t.saturating_duration_since(s),
            _ => Duration::ZERO,
        };
        let publishing = since_start(results.publishers.iter().filter_map(|p| p.last_sent).max());
        let acknowledging =
            since_start(results.publishers.iter().filter_map(|p| p.last_acked).max());
        let delivering = since_start(
            results
                .subscribers
                .iter()
                .filter_map(|s| s.last_received)
                .max(),
        );
        let running = since_start(results.stopped);
        let mut latency = Histogram::default();
        for sub in &results.subscribers {
            latency.merge(&sub.latency);
        }
        let us = |ns: u64| round2(ns as f64 / 1000.0);
        let ms = |ns: u64| round2(ns as f64 / 1e6);
        let c = &results.connect;
        let lost_connections = results
            .publishers
            .iter()
            .filter(|p| p.error.is_some())
            .count()
            + results
                .subscribers
                .iter()
                .filter(|s| s.error.is_some())
                .count()
            + results.idle_errors.len();
        let mut errors = c.errors.clone();
        errors.extend(results.publishers.iter().filter_map(|p| p.error.clone()));
        errors.extend(results.subscribers.iter().filter_map(|s| s.error.clone()));
        errors.extend(results.idle_errors.iter().cloned());
        errors.truncate(10);
        let rss = results.rss.map(|r| Rss {
            pid: r.pid,
            before_kib: r.before_kib,
            after_kib: r.after_kib,
            per_connection_bytes: if c.connected == 0 {
                0.0
            } else {
                round2(
                    r.after_kib.saturating_sub(r.before_kib) as f64 * 1024.0 / c.connected as f64,
                )
            },
        });
        Self {
            scenario: plan.scenario.name().to_owned(),
            url: plan.server.endpoint.to_string(),
            version: plan.server_args.version.to_string(),
            qos: plan.qos.as_u8(),
            payload_size: plan.size,
            publishers: plan.publishers.len(),
            subscribers: plan.subscribers.len(),
            offline: plan.offline.is_some(),
            connections: Connections {
                requested: c.requested,
                connected: c.connected,
                failed: c.requested - c.connected,
                lost: lost_connections as u64,
                rate_per_s: round2(per_second(c.connected, c.elapsed)),
                handshake_ms: Percentiles {
                    p50: ms(c.latency.quantile(0.5)),
                    p99: ms(c.latency.quantile(0.99)),
                    max: ms(c.latency.max()),
                },
            },
            rates: Rates {
                sent_per_s: round2(per_second(messages.sent, publishing)),
                acked_per_s: round2(per_second(messages.acked, acknowledging)),
                received_per_s: round2(per_second(messages.unique, delivering)),
            },
            messages,
            latency_us: Latency {
                p50: us(latency.quantile(0.5)),
                p99: us(latency.quantile(0.99)),
                p999: us(latency.quantile(0.999)),
                max: us(latency.max()),
                mean: us(latency.mean()),
                samples: latency.len(),
            },
            elapsed_s: Elapsed {
                connecting: round2(secs(c.elapsed)),
                publishing: round2(secs(publishing)),
                acknowledging: round2(secs(acknowledging)),
                delivering: round2(secs(delivering)),
                running: round2(secs(running)),
            },
            rss,
            errors,
        }
    }

    /// Whether the run itself went wrong (a client could not connect or lost its
    /// connection); losses of messages are measurements, not failures.
    pub(crate) fn failed(&self) -> bool {
        self.connections.failed > 0 || self.connections.lost > 0
    }

    /// The human summary.
    pub(crate) fn summary(&self) -> String {
        let mut s = String::new();
        let m = &self.messages;
        let c = &self.connections;
        let _ = writeln!(
            s,
            "nanomq bench {}: {} (MQTT {}), QoS {}, {} B payloads, {} publisher(s), {} {}subscriber(s)",
            self.scenario,
            self.url,
            self.version,
            self.qos,
            self.payload_size,
            self.publishers,
            self.subscribers,
            if self.offline {
                "offline persistent "
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "  connections  {} of {} up ({} failed, {} lost), {:.0}/s, handshake p50 {} ms, p99 {} ms",
            c.connected,
            c.requested,
            c.failed,
            c.lost,
            c.rate_per_s,
            c.handshake_ms.p50,
            c.handshake_ms.p99
        );
        if self.publishers > 0 || self.subscribers > 0 {
            let _ = writeln!(
                s,
                "  messages     sent {}  acked {}  ack errors {}  expected {}  received {}",
                m.sent, m.acked, m.ack_errors, m.expected, m.received
            );
            let _ = writeln!(
                s,
                "  integrity    lost {}  duplicated {}  out of order {}  unexpected {}",
                m.lost, m.duplicated, m.out_of_order, m.unexpected
            );
            let _ = writeln!(
                s,
                "  throughput   {:.0} msg/s sent, {:.0} msg/s acknowledged, {:.0} msg/s received",
                self.rates.sent_per_s, self.rates.acked_per_s, self.rates.received_per_s
            );
            let l = &self.latency_us;
            let _ = writeln!(
                s,
                "  latency      p50 {} us  p99 {} us  p99.9 {} us  max {} us  mean {} us",
                l.p50, l.p99, l.p999, l.max, l.mean
            );
        }
        if let Some(r) = &self.rss {
            let _ = writeln!(
                s,
                "  memory       pid {}: {} KiB -> {} KiB, {:.0} bytes per connection",
                r.pid, r.before_kib, r.after_kib, r.per_connection_bytes
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error        {e}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::plan::parse as plan;

    fn sent(n: u64) -> PubOutcome {
        PubOutcome {
            sent: n,
            acked: n,
            ..PubOutcome::default()
        }
    }

    #[test]
    fn every_message_is_accounted_for() {
        // Two pairs: subscriber 0 hears publisher 0, subscriber 1 publisher 1.
        let plan = plan(&["pairs", "-c", "2"]);
        let mut s0 = SubOutcome::default();
        for seq in [0, 1, 3, 2, 3] {
            s0.tracker.record(0, seq);
        }
        s0.tracker.record(1, 0); // not its publisher
        s0.tracker.foreign += 1;
        let s1 = SubOutcome::default();
        let m = account(&plan, &[sent(5), sent(2)], &[s0, s1]);
        assert_eq!(
            m,
            Messages {
                sent: 7,
                acked: 7,
                ack_errors: 0,
                expected: 7,
                received: 7,
                unique: 4,
                lost: 3,
                duplicated: 1,
                out_of_order: 1,
                unexpected: 2,
            }
        );
    }

    #[test]
    fn without_publishers_only_gaps_count_as_lost() {
        let plan = plan(&["sub", "-c", "1"]);
        let mut s = SubOutcome::default();
        for seq in [0, 4] {
            s.tracker.record(9, seq);
        }
        let m = account(&plan, &[], &[s]);
        assert_eq!((m.unique, m.lost, m.expected), (2, 3, 5));
    }
}
