//! The end-to-end scenarios: the `nanomq bench` command line of each, and the figures read
//! from its JSON report. The comparison with Mosquitto runs over plain TCP ([`all`]); a few
//! throughput scenarios also run over each of nanomq's transports ([`transports`]), and a
//! QoS 1 fan-in to an offline persistent subscriber with each of nanomq's stores
//! ([`persistence`]).

use std::time::Duration;

use serde_json::Value;

use super::broker::{MAX_INFLIGHT, MAX_QUEUED, Store, Transport, Tuning};
use super::output;
use super::retained::{self, Filters};

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, memory).
    Lower,
}

/// A figure read from a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metric {
    /// What it is, with its unit.
    pub(crate) label: &'static str,
    /// The JSON pointer into the report.
    pub(crate) pointer: &'static str,
    /// Which way is better.
    pub(crate) better: Better,
}

/// Delivered messages per second.
pub(crate) const RECEIVED_RATE: Metric = Metric {
    label: "msg/s delivered",
    pointer: "/rates/received_per_s",
    better: Better::Higher,
};

/// One scenario.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scenario {
    /// Its name in the table.
    pub(crate) name: String,
    /// `nanomq bench` arguments (the broker's address and `--json --quiet` are added).
    pub(crate) args: Vec<String>,
    /// The figures it yields.
    pub(crate) metrics: Vec<Metric>,
    /// Whether to pass `--rss-pid` with the broker's process id.
    pub(crate) rss: bool,
    /// How long the run may take at most.
    pub(crate) timeout: Duration,
    /// How the clients reach the broker.
    pub(crate) transport: Transport,
    /// What it asks of nanomq beyond the shared configuration.
    pub(crate) tuning: Tuning,
    /// What runs beside `nanomq bench`.
    pub(crate) beside: Beside,
}

/// What a scenario runs beside `nanomq bench`, started before it and ended after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beside {
    /// Nothing.
    Nothing,
    /// A QoS 1 subscriber to this filter that never reads (the slow-subscriber scenario).
    Stalled(&'static str),
    /// [`retained::RETAINED`] retained messages, published before the run.
    Retained,
    /// Those, and a client flooding the broker with SUBSCRIBEs of these filters, which
    /// match none of them, during the run.
    SubscribeFlood(Filters),
}

impl Beside {
    /// What the same `nanomq bench` runs beside in the run this one is compared with, for
    /// the scenarios that are compared with one: the slow subscriber's run with the same
    /// run without it, the flood's with the retained messages alone.
    pub(crate) fn without(self) -> Option<Self> {
        match self {
            Self::Stalled(_) => Some(Self::Nothing),
            Self::SubscribeFlood(_) => Some(Self::Retained),
            Self::Nothing | Self::Retained => None,
        }
    }
}

/// The settings of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Seconds of publishing per throughput scenario.
    pub(crate) seconds: u64,
    /// Clients on the varying side of fan-in, fan-out and pairs.
    pub(crate) clients: usize,
    /// Idle connections.
    pub(crate) connections: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            seconds: 5,
            clients: 50,
            connections: 10_000,
        }
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// Every scenario, in the order they run.
pub(crate) fn all(sizes: Sizes) -> Vec<Scenario> {
    let d = format!("{}s", sizes.seconds);
    let c = sizes.clients.to_string();
    let timeout = Duration::from_secs(sizes.seconds + 60);
    let mut list = Vec::new();
    for (preset, label) in [
        ("fanin", format!("fan-in {c}→1")),
        ("fanout", format!("fan-out 1→{c}")),
        ("pairs", format!("{c} pairs")),
    ] {
        for qos in ["0", "1"] {
            list.push(Scenario {
                name: format!("{label}, QoS {qos}"),
                args: args(&[preset, "-c", &c, "-q", qos, "-d", &d, "-s", "64"]),
                metrics: vec![RECEIVED_RATE],
                rss: false,
                timeout,
                transport: Transport::Tcp,
                tuning: Tuning::default(),
                beside: Beside::Nothing,
            });
        }
    }
    // Flooding shows behaviour under overload; a paced fan-in shows what a broker sustains
    // (every message delivered, or not).
    list.push(Scenario {
        name: format!("fan-in {c}→1, QoS 0, paced 4,000 msg/s per publisher"),
        args: args(&[
            "fanin", "-c", &c, "-q", "0", "-d", &d, "-s", "64", "--rate", "4000",
        ]),
        metrics: vec![RECEIVED_RATE],
        rss: false,
        timeout,
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    });
    list.push(Scenario {
        name: "latency, 10 pairs × 1000 msg/s, QoS 1".to_owned(),
        args: args(&[
            "latency", "-c", "10", "--rate", "1000", "-q", "1", "-d", &d, "-s", "64",
        ]),
        metrics: vec![
            Metric {
                label: "p50 latency (µs)",
                pointer: "/latency_us/p50",
                better: Better::Lower,
            },
            Metric {
                label: "p99 latency (µs)",
                pointer: "/latency_us/p99",
                better: Better::Lower,
            },
            Metric {
                label: "p99.9 latency (µs)",
                pointer: "/latency_us/p999",
                better: Better::Lower,
            },
        ],
        rss: false,
        timeout,
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    });
    list.extend(backpressure(sizes));
    list.extend(retained_lookup(sizes));
    let n = sizes.connections.to_string();
    list.push(Scenario {
        name: format!("{n} idle connections"),
        // A long keep alive: idle means idle. Connections as fast as the broker takes them
        // (128 handshakes at a time).
        args: args(&["conn", "-c", &n, "-d", "2s", "-k", "600"]),
        metrics: vec![
            Metric {
                label: "RSS per connection (bytes)",
                pointer: "/rss/per_connection_bytes",
                better: Better::Lower,
            },
            Metric {
                label: "connections/s accepted",
                pointer: "/connections/rate_per_s",
                better: Better::Higher,
            },
        ],
        rss: true,
        timeout: Duration::from_secs(120),
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    });
    list
}

/// QoS 1 messages acknowledged and never delivered: acknowledged minus distinct
/// deliveries (one subscriber), computed by [`read`].
pub(crate) const ACKED_NOT_DELIVERED: Metric = Metric {
    label: "acknowledged, not delivered",
    pointer: "/messages/acked",
    better: Better::Lower,
};

/// How much more resident memory the broker holds once the run is over than it did fresh,
/// MB (10^6 bytes): sampled by the harness ([`RSS_SETTLE`] after `nanomq bench` exited and
/// its clients with it), while what runs beside it (the stalled subscriber, with its queue)
/// is still connected. Computed by [`read`] from the report's `rss_left`.
pub(crate) const RSS_LEFT: Metric = Metric {
    label: "RSS left after the run (MB)",
    pointer: "/rss_left/held_kib",
    better: Better::Lower,
};

/// How long the harness lets a broker's allocator return freed memory before it reads
/// [`RSS_LEFT`] (nanomq's purges within 250 ms).
pub(crate) const RSS_SETTLE: Duration = Duration::from_secs(1);

/// Queue length of the flood scenario: the issue's measurement (88% of acknowledged QoS 1
/// messages dropped with this queue, before backpressure).
const FLOOD_QUEUE: u32 = 100_000;

/// Payload of the slow-subscriber scenario, bytes.
const STALLED_PAYLOAD: u32 = 64;

/// Messages the configuration lets the stalled subscriber of the slow-subscriber scenario
/// hold: its queue and in-flight window (both brokers), and its publisher's held window
/// (nanomq's backpressure: at most the Receive Maximum it announces).
pub(crate) const STALLED_BOUND: u32 = MAX_QUEUED + 2 * MAX_INFLIGHT;

/// [`STALLED_BOUND`] and what it means in payload, for the notes.
pub(crate) fn stalled_bound() -> String {
    format!(
        "bound for the stalled subscriber: {} msgs ({MAX_QUEUED} queued + {MAX_INFLIGHT} in \
         flight + {MAX_INFLIGHT} held at its publisher) × {STALLED_PAYLOAD} B payload = {:.2} MB \
         of payload",
        output::number(f64::from(STALLED_BOUND)),
        f64::from(STALLED_BOUND * STALLED_PAYLOAD) / 1e6
    )
}

/// The scenarios of acknowledged-means-delivered: four publishers flooding QoS 1 (no
/// pacing) to one QoS 1 subscriber, counting what was acknowledged and not delivered; and
/// QoS 1 pairs on known topics without, then with, a stalled subscriber on pair 0's topic:
/// the others' throughput should not suffer from it, and the broker's memory should grow
/// by no more than what the stalled subscriber's queue may hold.
pub(crate) fn backpressure(sizes: Sizes) -> Vec<Scenario> {
    let d = format!("{}s", sizes.seconds);
    let c = sizes.clients.to_string();
    let timeout = Duration::from_secs(sizes.seconds + 60);
    let payload = STALLED_PAYLOAD.to_string();
    let pairs = |beside: Beside| Scenario {
        name: match beside {
            Beside::Stalled(_) => format!("{c} pairs, QoS 1, a stalled subscriber on pair 0"),
            _ => format!("{c} pairs, QoS 1, topics bench/%i"),
        },
        args: args(&[
            "pairs", "-c", &c, "-q", "1", "-d", &d, "-s", &payload, "-t", "bench/%i",
        ]),
        metrics: vec![RECEIVED_RATE, RSS_LEFT],
        rss: false,
        timeout,
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside,
    };
    vec![
        Scenario {
            name: format!("flood: fan-in 4→1, QoS 1, no pacing, queue {FLOOD_QUEUE}"),
            args: args(&["fanin", "-c", "4", "-q", "1", "-d", &d, "-s", "64"]),
            metrics: vec![ACKED_RATE, RECEIVED_RATE, ACKED_NOT_DELIVERED],
            rss: false,
            timeout,
            transport: Transport::Tcp,
            tuning: Tuning {
                max_queued: FLOOD_QUEUE,
                ..Tuning::default()
            },
            beside: Beside::Nothing,
        },
        pairs(Beside::Nothing),
        pairs(Beside::Stalled("bench/0")),
    ]
}

/// The retained-lookup scenarios: one pair's QoS 1 latency at 1,000 msg/s with
/// [`retained::RETAINED`] retained messages held, first alone, then while a third client
/// floods SUBSCRIBEs of filters matching none of them (literal ones, then ones with a `+`
/// that makes the lookup visit every retained topic's branch): the latency should not
/// suffer from another client's SUBSCRIBEs.
pub(crate) fn retained_lookup(sizes: Sizes) -> Vec<Scenario> {
    let d = format!("{}s", sizes.seconds);
    let timeout = Duration::from_secs(sizes.seconds + 60);
    let retained = output::number(retained::RETAINED as f64);
    let latency = |beside: Beside| Scenario {
        name: match beside {
            Beside::SubscribeFlood(filters) => format!(
                "retained lookup: latency, 1 pair × 1000 msg/s, QoS 1, {retained} retained, \
                 SUBSCRIBEs of {} × {}",
                retained::FILTERS_PER_PACKET,
                filters.describe()
            ),
            _ => {
                format!("retained lookup: latency, 1 pair × 1000 msg/s, QoS 1, {retained} retained")
            }
        },
        args: args(&[
            "latency", "-c", "1", "--rate", "1000", "-q", "1", "-d", &d, "-s", "64",
        ]),
        metrics: vec![
            Metric {
                label: "p50 latency (µs)",
                pointer: "/latency_us/p50",
                better: Better::Lower,
            },
            Metric {
                label: "p99 latency (µs)",
                pointer: "/latency_us/p99",
                better: Better::Lower,
            },
            Metric {
                label: "max latency (µs)",
                pointer: "/latency_us/max",
                better: Better::Lower,
            },
        ],
        rss: false,
        timeout,
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside,
    };
    vec![
        latency(Beside::Retained),
        latency(Beside::SubscribeFlood(Filters::Literal)),
        latency(Beside::SubscribeFlood(Filters::Wildcard)),
    ]
}

/// The transport scenarios (nanomq only): QoS 1 pairs and QoS 0 fan-out, each over every
/// transport in `transports`, TCP first; at most 3 s of publishing each, to keep the suite
/// short.
pub(crate) fn transports(sizes: Sizes, transports: &[Transport]) -> Vec<Scenario> {
    let d = format!("{}s", sizes.seconds.min(3));
    let c = sizes.clients.to_string();
    let timeout = Duration::from_secs(sizes.seconds.min(3) + 60);
    let mut list = Vec::new();
    for (preset, label, qos) in [
        ("pairs", format!("{c} pairs, QoS 1"), "1"),
        ("fanout", format!("fan-out 1→{c}, QoS 0"), "0"),
    ] {
        for &transport in transports {
            list.push(Scenario {
                name: label.clone(),
                args: args(&[preset, "-c", &c, "-q", qos, "-d", &d, "-s", "64"]),
                metrics: vec![RECEIVED_RATE],
                rss: false,
                timeout,
                transport,
                tuning: Tuning::default(),
                beside: Beside::Nothing,
            });
        }
    }
    list
}

/// Acknowledged messages per second (PUBACKs the publishers received).
pub(crate) const ACKED_RATE: Metric = Metric {
    label: "msg/s acknowledged",
    pointer: "/rates/acked_per_s",
    better: Better::Higher,
};

/// Publishers of the persistence scenarios, at most.
const PERSISTENCE_PUBLISHERS: usize = 20;

/// Long enough a queue that nothing is dropped in a persistence scenario: the offline
/// subscriber's session queues everything published.
pub(crate) const PERSISTENCE_QUEUE: u32 = 10_000_000;

/// The queue's byte limit to match [`PERSISTENCE_QUEUE`] (nanomq's default is 64 MB).
pub(crate) const PERSISTENCE_QUEUE_BYTES: u64 = 8 << 30;

/// How long the subscriber may take to receive its queue once back.
pub(crate) const PERSISTENCE_DRAIN: Duration = Duration::from_secs(120);

/// The persistence scenarios (nanomq only): QoS 1 fan-in from `sizes.clients` (at most 20)
/// publishers to one subscriber that is an offline persistent session (MQTT 5) while they
/// publish for at most 3 s, then reconnects and receives its queue; once for each store, in
/// memory first. The figure is the publishers' acknowledged rate.
pub(crate) fn persistence(sizes: Sizes) -> Vec<Scenario> {
    let seconds = sizes.seconds.min(3);
    let d = format!("{seconds}s");
    let c = sizes.clients.min(PERSISTENCE_PUBLISHERS).to_string();
    let drain = format!("{}s", PERSISTENCE_DRAIN.as_secs());
    Store::ALL
        .into_iter()
        .map(|store| Scenario {
            name: format!("fan-in {c}→1, QoS 1, offline persistent subscriber"),
            args: args(&[
                "fanin",
                "-c",
                &c,
                "-q",
                "1",
                "-d",
                &d,
                "-s",
                "64",
                "-V",
                "5",
                "--offline",
                "--drain",
                &drain,
            ]),
            metrics: vec![ACKED_RATE],
            rss: false,
            timeout: Duration::from_secs(seconds + 60) + PERSISTENCE_DRAIN,
            transport: Transport::Tcp,
            tuning: Tuning {
                max_queued: PERSISTENCE_QUEUE,
                max_queued_bytes: Some(PERSISTENCE_QUEUE_BYTES),
                store,
                queue_in_memory: None,
            },
            beside: Beside::Nothing,
        })
        .collect()
}

/// A figure of `report`, if it has it.
pub(crate) fn read(report: &Value, metric: &Metric) -> Option<f64> {
    if *metric == RSS_LEFT {
        let get = |p: &str| report.pointer(p).and_then(Value::as_u64);
        let (before, held) = (get("/rss_left/before_kib")?, get("/rss_left/held_kib")?);
        return Some((held as f64 - before as f64) * 1024.0 / 1e6);
    }
    if *metric == ACKED_NOT_DELIVERED {
        let get = |p: &str| report.pointer(p).and_then(Value::as_u64);
        let (acked, unique) = (get("/messages/acked")?, get("/messages/unique")?);
        return Some(acked.saturating_sub(unique) as f64);
    }
    report.pointer(metric.pointer).and_then(Value::as_f64)
}

/// `lost/duplicated/out of order` of a report, for the notes.
pub(crate) fn integrity(report: &Value) -> String {
    let get = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (expected, lost) = (get("/messages/expected"), get("/messages/lost"));
    let dup = get("/messages/duplicated");
    let ooo = get("/messages/out_of_order");
    if expected == 0 {
        return String::new();
    }
    let pct = lost as f64 * 100.0 / expected as f64;
    format!("lost {lost} ({pct:.1}%), dup {dup}, ooo {ooo}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_scenarios_are_all_there() {
        let names: Vec<String> = all(Sizes::default()).into_iter().map(|s| s.name).collect();
        for wanted in [
            "fan-in 50→1, QoS 0",
            "fan-in 50→1, QoS 1",
            "fan-in 50→1, QoS 0, paced 4,000 msg/s per publisher",
            "fan-out 1→50, QoS 1",
            "50 pairs, QoS 0",
            "latency, 10 pairs × 1000 msg/s, QoS 1",
            "10000 idle connections",
        ] {
            assert!(names.iter().any(|n| n == wanted), "{wanted}: {names:?}");
        }
    }

    #[test]
    fn transport_scenarios_run_over_each_transport_tcp_first() {
        let list = transports(Sizes::default(), &Transport::ALL);
        assert_eq!(list.len(), 8);
        let first: Vec<_> = list.iter().take(4).map(|s| s.transport).collect();
        assert_eq!(first, Transport::ALL);
        assert!(list.iter().take(4).all(|s| s.name == "50 pairs, QoS 1"));
        assert!(
            list.iter()
                .all(|s| s.args.windows(2).any(|w| w == ["-d", "3s"]))
        );
        assert!(
            all(Sizes::default())
                .iter()
                .all(|s| s.transport == Transport::Tcp)
        );
    }

    #[test]
    fn persistence_scenarios_run_once_per_store_in_memory_first() {
        let list = persistence(Sizes::default());
        let stores: Vec<Store> = list.iter().map(|s| s.tuning.store).collect();
        assert_eq!(stores, Store::ALL);
        for s in &list {
            assert_eq!(s.name, "fan-in 20→1, QoS 1, offline persistent subscriber");
            assert!(s.args.windows(2).any(|w| w == ["-d", "3s"]), "{:?}", s.args);
            assert!(s.args.iter().any(|a| a == "--offline"));
            assert!(s.args.windows(2).any(|w| w == ["-q", "1"]));
            assert_eq!(s.tuning.max_queued, PERSISTENCE_QUEUE);
            assert_eq!(s.metrics, [ACKED_RATE]);
        }
        let small = persistence(Sizes {
            seconds: 2,
            clients: 5,
            connections: 1,
        });
        assert!(small.iter().all(|s| s.name.starts_with("fan-in 5→1")));
        assert!(
            small
                .iter()
                .all(|s| s.args.windows(2).any(|w| w == ["-d", "2s"]))
        );
        // Only the flood asks for a longer queue (the issue's measurement).
        assert!(
            all(Sizes::default())
                .iter()
                .filter(|s| !s.name.starts_with("flood"))
                .all(|s| s.tuning == Tuning::default())
        );
    }

    #[test]
    fn figures_are_read_by_pointer() {
        let report: Value = serde_json::from_str(
            r#"{"rates":{"received_per_s":1234.5},
                "messages":{"expected":200,"lost":2,"duplicated":0,"out_of_order":1}}"#,
        )
        .unwrap_or_default();
        assert_eq!(read(&report, &RECEIVED_RATE), Some(1234.5));
        assert_eq!(integrity(&report), "lost 2 (1.0%), dup 0, ooo 1");
        assert_eq!(integrity(&Value::Null), "");
        let report: Value =
            serde_json::from_str(r#"{"messages":{"acked":1000,"unique":900}}"#).unwrap_or_default();
        assert_eq!(read(&report, &ACKED_NOT_DELIVERED), Some(100.0));
    }

    #[test]
    fn the_backpressure_scenarios_are_there_the_stalled_one_after_its_baseline() {
        let list = all(Sizes::default());
        let flood = list
            .iter()
            .find(|s| s.name.starts_with("flood: fan-in 4→1, QoS 1"))
            .expect("the flood scenario");
        assert!(flood.metrics.contains(&ACKED_NOT_DELIVERED));
        assert_eq!(flood.tuning.max_queued, FLOOD_QUEUE);
        let at = list
            .iter()
            .position(|s| matches!(s.beside, Beside::Stalled(_)))
            .expect("the stalled-subscriber scenario");
        assert!(at > 0);
        assert_eq!(list[at - 1].args, list[at].args);
        assert_eq!(list[at - 1].beside, Beside::Nothing);
        assert_eq!(list[at].beside, Beside::Stalled("bench/0"));
        // Memory is measured in both, once the pairs are gone.
        for s in [&list[at - 1], &list[at]] {
            assert!(s.metrics.contains(&RSS_LEFT), "{}", s.name);
        }
        assert!(stalled_bound().contains("2,248 msgs (2048 queued + 100 in flight"));
    }

    #[test]
    fn each_flood_of_subscribes_is_compared_with_the_retained_messages_alone() {
        let list = all(Sizes::default());
        let floods: Vec<&Scenario> = list
            .iter()
            .filter(|s| matches!(s.beside, Beside::SubscribeFlood(_)))
            .collect();
        assert_eq!(floods.len(), 2);
        for flood in floods {
            let without = flood.beside.without();
            assert_eq!(without, Some(Beside::Retained));
            assert!(
                list.iter()
                    .any(|s| Some(s.beside) == without && s.args == flood.args),
                "{}",
                flood.name
            );
            assert!(flood.args.windows(2).any(|w| w == ["-q", "1"]));
            assert_eq!(flood.metrics.len(), 3);
        }
    }

    #[test]
    fn the_rss_left_is_read_from_both_figures() {
        let report: Value =
            serde_json::from_str(r#"{"rss_left":{"before_kib":1000,"held_kib":3000}}"#)
                .unwrap_or_default();
        assert_eq!(read(&report, &RSS_LEFT), Some(2000.0 * 1024.0 / 1e6));
        assert_eq!(read(&Value::Null, &RSS_LEFT), None);
    }
}
