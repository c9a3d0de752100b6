//! The exposition's tests: what a populated snapshot renders to, its structure (every
//! sample under a family with HELP and TYPE, no family twice), and Prometheus's own Python
//! parser reading it back (`tests/python/parse_prometheus.py`, run in the project's venv).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use broker_core::{BridgeCounters, LatencyHistogram, StoreMetrics};
use serde_json::Value;

use super::*;

/// A snapshot in which every counter has a value of its own, so a mix-up shows.
fn populated() -> MetricsSnapshot {
    let mut m = MetricsSnapshot::default();
    m.connections = 3;
    m.connections_max = 7;
    m.connections_total = 11;
    m.sockets_total = 13;
    m.takeovers = 1;
    m.sessions = 5;
    m.retained_messages = 17;
    m.subscriptions = 19;
    m.shared_subscriptions = 2;
    m.topics = 23;
    m.received_by_qos = [100, 20, 3];
    m.messages_received = 123;
    m.sent_by_qos = [200, 40, 6];
    m.messages_sent = 246;
    m.packets_received = 1_000;
    m.packets_sent = 2_000;
    m.bytes_received = 65_536;
    m.bytes_sent = 131_072;
    m.dropped_queue_full = 31;
    m.dropped_too_large = 37;
    m.dropped_expired = 41;
    m.dropped_no_subscribers = 43;
    m.dropped_acl = 47;
    m.dropped_offline_qos0 = 53;
    m.backpressure_waits = 59;
    m.backpressure_timeouts = 61;
    m.sessions_expired = 67;
    m.sessions_timed_out = 71;
    m.protocol_errors = 73;
    m.limits.topic_levels = 79;
    m.limits.connections = 83;
    m.access.authentication_success = 89;
    m.access.authentication_failure = 97;
    m.access.authorization_allow = 101;
    m.access.authorization_deny = 103;
    let mut commit = LatencyHistogram::default();
    commit.cumulative = [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8];
    commit.count = 9;
    commit.sum_micros = 4_500_000;
    let mut store = StoreMetrics::default();
    store.pending = 107;
    store.batches = 9;
    store.changes = 109;
    store.last_batch = 4;
    store.commit = commit;
    m.store = Some(store);
    m
}

fn bridges() -> Vec<BridgeSnapshot> {
    let cloud = BridgeCounters::default();
    cloud.set_connected(true);
    cloud.forwarded();
    cloud.forwarded();
    cloud.set_queued(5);
    let edge = BridgeCounters::default();
    edge.reconnected();
    edge.dropped();
    vec![cloud.snapshot("cloud"), edge.snapshot("edge-2.b")]
}

fn process() -> ProcessStats {
    ProcessStats {
        resident_bytes: 4_194_304,
        virtual_bytes: 67_108_864,
        cpu_seconds: 1.25,
        open_fds: 12,
        max_fds: Some(1024),
        start_time_seconds: Some(1_796_177_290.5),
    }
}

fn rendered() -> String {
    let metrics = populated();
    let bridges = bridges();
    let process = process();
    render(&Exposition {
        metrics: &metrics,
        bridges: &bridges,
        process: Some(&process),
        uptime: Duration::from_millis(90_500),
    })
}

#[test]
fn a_populated_snapshot_renders_to_the_names_people_graph() {
    let text = rendered();
    for line in [
        // NanoMQ's own names, as NanoMQ writes them.
        "# TYPE nanomq_connections_count gauge",
        "nanomq_connections_count 3",
        "nanomq_connections_max 7",
        "nanomq_sessions_count 5",
        "nanomq_topics_count 23",
        "nanomq_subscribers_count 19",
        "# TYPE nanomq_messages_received counter",
        "nanomq_messages_received 123",
        "nanomq_messages_sent 246",
        "nanomq_messages_dropped 252",
        "nanomq_memory_usage 4194304",
        // Labelled families.
        "nanomq_publish_received_total{qos=\"0\"} 100",
        "nanomq_publish_received_total{qos=\"2\"} 3",
        "nanomq_publish_sent_total{qos=\"1\"} 40",
        "nanomq_publish_dropped_total{reason=\"queue_full\"} 31",
        "nanomq_publish_dropped_total{reason=\"too_large\"} 37",
        "nanomq_publish_dropped_total{reason=\"expired\"} 41",
        "nanomq_publish_dropped_total{reason=\"no_subscribers\"} 43",
        "nanomq_publish_dropped_total{reason=\"acl\"} 47",
        "nanomq_publish_dropped_total{reason=\"offline_qos0\"} 53",
        "nanomq_limit_refusals_total{limit=\"max_topic_levels\"} 79",
        "nanomq_limit_refusals_total{limit=\"max_connections\"} 83",
        "nanomq_authentication_total{result=\"failure\"} 97",
        "nanomq_authorization_total{result=\"deny\"} 103",
        "nanomq_bridge_connected{bridge=\"cloud\"} 1",
        "nanomq_bridge_connected{bridge=\"edge-2.b\"} 0",
        "nanomq_bridge_forwarded_total{bridge=\"cloud\"} 2",
        "nanomq_bridge_queued{bridge=\"cloud\"} 5",
        "nanomq_bridge_reconnects_total{bridge=\"edge-2.b\"} 1",
        // Plain ones.
        "nanomq_uptime_seconds 90.5",
        "nanomq_packets_received_total 1000",
        "nanomq_bytes_sent_total 131072",
        "nanomq_subscriptions_shared_count 2",
        "nanomq_retained_count 17",
        "nanomq_sessions_expired_total 71",
        "nanomq_store_pending_changes 107",
        // The store's histogram: cumulative buckets in seconds, then +Inf, sum and count.
        "# TYPE nanomq_store_commit_seconds histogram",
        "nanomq_store_commit_seconds_bucket{le=\"0.0005\"} 1",
        "nanomq_store_commit_seconds_bucket{le=\"1\"} 8",
        "nanomq_store_commit_seconds_bucket{le=\"2.5\"} 8",
        "nanomq_store_commit_seconds_bucket{le=\"+Inf\"} 9",
        "nanomq_store_commit_seconds_sum 4.5",
        "nanomq_store_commit_seconds_count 9",
        // The process, under the standard names.
        "process_resident_memory_bytes 4194304",
        "process_cpu_seconds_total 1.25",
        "process_open_fds 12",
        "process_max_fds 1024",
        "process_start_time_seconds 1796177290.5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in:\n{text}"
        );
    }
}

#[test]
fn every_sample_belongs_to_a_family_declared_once_with_help_and_type() {
    let text = rendered();
    let mut helped = BTreeSet::new();
    let mut typed = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice for {name}"
            );
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| typed.get(*base).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            let kind = typed
                .get(family)
                .unwrap_or_else(|| panic!("`{line}` has no family"));
            assert!(
                name.starts_with("nanomq_") || name.starts_with("process_"),
                "{name}"
            );
            let compat = [
                "nanomq_messages_received",
                "nanomq_messages_sent",
                "nanomq_messages_dropped",
            ];
            match kind.as_str() {
                "counter" => assert!(
                    name.ends_with("_total") || compat.contains(&name),
                    "counter {name}"
                ),
                "gauge" => assert!(!name.ends_with("_total"), "gauge {name}"),
                _ => {}
            }
        }
    }
    // No two families meet once a counter's _total is taken off.
    let bases: BTreeSet<&str> = typed
        .iter()
        .map(|(name, kind)| match kind.as_str() {
            "counter" => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        })
        .collect();
    assert_eq!(bases.len(), typed.len());
}

#[test]
fn labels_are_escaped_and_absent_parts_left_out() {
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    let metrics = MetricsSnapshot::default();
    let text = render(&Exposition {
        metrics: &metrics,
        bridges: &[],
        process: None,
        uptime: Duration::ZERO,
    });
    for absent in [
        "nanomq_store_",
        "nanomq_bridge_",
        "process_",
        "nanomq_memory_usage",
    ] {
        assert!(
            !text.contains(absent),
            "{absent} without its source:\n{text}"
        );
    }
    assert!(text.lines().any(|l| l == "nanomq_connections_count 0"));
}

/// The project's Python (`WORKSPACE/.venv/bin/python`), checked to have prometheus_client;
/// panics with the command that installs it otherwise.
fn python() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(manifest);
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    let hint = format!(
        "run `cargo xtask test` (which installs it), or `python3 -m venv {venv} && \
         {venv}/bin/pip install prometheus-client==0.26.0`",
        venv = venv.display()
    );
    assert!(
        python.is_file(),
        "the project's Python venv is missing: {hint}"
    );
    let check = Command::new(&python)
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "prometheus_client is not installed in {}: {hint}\n{}",
        python.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

#[test]
fn prometheus_s_own_parser_reads_the_exposition() {
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/parse_prometheus.py");
    let file = std::env::temp_dir().join(format!("nanomq-exposition-{}.txt", std::process::id()));
    std::fs::write(&file, rendered()).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the parser refused the exposition:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: BTreeMap<String, Value> = serde_json::from_slice(&output.stdout).unwrap();
    let kind = |name: &str| families[name]["type"].as_str().unwrap().to_owned();
    // The parser's value of the sample `sample` with `labels` in family `family`.
    let value = |family: &str, sample: &str, labels: &[(&str, &str)]| -> f64 {
        let samples = families[family]["samples"].as_array().unwrap();
        samples
            .iter()
            .find(|s| {
                s[0] == sample
                    && s[1].as_object().unwrap().len() == labels.len()
                    && labels.iter().all(|(k, v)| s[1][*k] == *v)
            })
            .unwrap_or_else(|| panic!("no {sample}{labels:?} in {family}: {samples:?}"))[2]
            .as_f64()
            .unwrap()
    };
    assert_eq!(kind("nanomq_connections_count"), "gauge");
    assert_eq!(
        value("nanomq_connections_count", "nanomq_connections_count", &[]),
        3.0
    );
    // NanoMQ's counters without _total: the parser reads them as counters all the same.
    assert_eq!(kind("nanomq_messages_received"), "counter");
    assert_eq!(
        value(
            "nanomq_messages_received",
            "nanomq_messages_received_total",
            &[]
        ),
        123.0
    );
    assert_eq!(kind("nanomq_publish_dropped"), "counter");
    assert_eq!(
        value(
            "nanomq_publish_dropped",
            "nanomq_publish_dropped_total",
            &[("reason", "no_subscribers")]
        ),
        43.0
    );
    assert_eq!(
        value(
            "nanomq_publish_sent",
            "nanomq_publish_sent_total",
            &[("qos", "2")]
        ),
        6.0
    );
    assert_eq!(
        value(
            "nanomq_bridge_queued",
            "nanomq_bridge_queued",
            &[("bridge", "cloud")]
        ),
        5.0
    );
    assert_eq!(kind("nanomq_store_commit_seconds"), "histogram");
    assert_eq!(
        value(
            "nanomq_store_commit_seconds",
            "nanomq_store_commit_seconds_bucket",
            &[("le", "+Inf")]
        ),
        9.0
    );
    assert_eq!(
        value(
            "nanomq_store_commit_seconds",
            "nanomq_store_commit_seconds_sum",
            &[]
        ),
        4.5
    );
    assert_eq!(kind("process_cpu_seconds"), "counter");
    assert_eq!(
        value("process_cpu_seconds", "process_cpu_seconds_total", &[]),
        1.25
    );
    assert_eq!(
        value("nanomq_uptime_seconds", "nanomq_uptime_seconds", &[]),
        90.5
    );
    // Every family the text declares, the parser found.
    let declared = rendered()
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .count();
    assert_eq!(families.len(), declared);
}
