//! End to end with Python paho-mqtt 2.x (MQTT 3.1.1 and 5.0): the real `nanomq` binary on an
//! ephemeral loopback port, driven by the scripts in `tests/python/`, run with the project's
//! venv (`WORKSPACE/.venv/bin/python`, which `cargo xtask test` provisions). Each script
//! prints a JSON summary of what it observed; the assertions are made here.
//!
//! Covered:
//! - publish/subscribe at QoS 0, 1 and 2, and the downgrade to the subscription's QoS;
//! - MQTT 5 properties passing through (user properties in order, content type, response
//!   topic, correlation data, payload format, message expiry with the remaining interval
//!   forwarded, an expired queued message never delivered);
//! - the seed scenario: a persistent session subscribed at QoS 1 and 2 is away while 1,000
//!   messages are published; it comes back with a smaller Receive Maximum (5) and Maximum
//!   Packet Size (256) than before, and gets every message that fits, promptly, in order,
//!   never twice, within its receive window, and none of the oversize ones. Then the same
//!   with MQTT 3.1.1 (no limits to announce; every message, in order, none lost).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Broker, python, python_script, run};
use serde_json::Value;

/// How long one script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `script` against `broker` with `--protocol protocol` and `extra` arguments, and returns
/// the JSON summary it printed (its last line of output).
fn run_script(broker: &Broker, script: &str, protocol: &str, extra: &[&str]) -> Value {
    let python = python();
    let started = Instant::now();
    let output = run(
        Command::new(python)
            .arg(python_script(script))
            .args([broker.host(), broker.port()])
            .args(["--protocol", protocol])
            .args(extra),
        SCRIPT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "{script} --protocol {protocol} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    println!("{script} --protocol {protocol}: {:.2?}", started.elapsed());
    let last = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON summary ({e}):\n{}", output.stdout))
}

fn as_u64(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn pubsub(protocol: &str) {
    let broker = Broker::start(&format!("paho-pubsub-{protocol}"), "");
    let count = 20;
    let summary = run_script(
        &broker,
        "pubsub.py",
        protocol,
        &["--count", &count.to_string()],
    );
    let cases = summary["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5, "{summary}");
    for case in cases {
        let topic = case["topic"].as_str().unwrap();
        let pub_qos = as_u64(&case["pub_qos"]);
        let sub_qos = as_u64(&case["sub_qos"]);
        assert_eq!(as_u64(&case["granted"]), sub_qos, "SUBACK for {topic}");
        let received = case["received"].as_array().unwrap();
        let payloads: Vec<&str> = received
            .iter()
            .map(|m| m["payload"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..count).map(|n| format!("{topic}#{n}")).collect();
        assert_eq!(
            payloads, want,
            "{protocol}: published at QoS {pub_qos}, subscribed at {sub_qos}"
        );
        for message in received {
            assert_eq!(
                as_u64(&message["qos"]),
                pub_qos.min(sub_qos),
                "{protocol}: delivered QoS on {topic}: {message}"
            );
            assert_eq!(message["retain"], false, "{message}");
            assert_eq!(message["dup"], false, "{message}");
        }
    }
    assert_eq!(as_u64(&summary["total_received"]), 5 * count, "{summary}");
    broker.stop();
}

#[test]
fn paho_publish_and_subscribe_at_every_qos_over_mqtt_3_1_1() {
    pubsub("311");
}

#[test]
fn paho_publish_and_subscribe_at_every_qos_over_mqtt_5() {
    pubsub("5");
}

#[test]
fn paho_mqtt_5_properties_and_message_expiry_pass_through() {
    let broker = Broker::start("paho-properties", "");
    let summary = run_script(&broker, "v5_properties.py", "5", &[]);

    let live = summary["live"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{summary}");
    let message = &live[0];
    assert_eq!(message["payload"], "{\"on\": true}");
    let props = &message["properties"];
    assert_eq!(
        props["UserProperty"],
        serde_json::json!([["colour", "blue"], ["size", "9"], ["colour", "green"]]),
        "user properties, in order: {message}"
    );
    assert_eq!(props["ContentType"], "application/json", "{message}");
    assert_eq!(props["ResponseTopic"], "paho/props/reply", "{message}");
    // b"\x00\x01req-42\xff", hex-encoded by the script.
    assert_eq!(props["CorrelationData"], "00017265712d3432ff", "{message}");
    assert_eq!(props["PayloadFormatIndicator"], 1, "{message}");
    let expiry = as_u64(&props["MessageExpiryInterval"]);
    assert!(
        (3590..=3600).contains(&expiry),
        "message expiry {expiry}: {message}"
    );

    assert_eq!(summary["session_present"], true, "{summary}");
    let offline = summary["offline"].as_array().unwrap();
    let topics: Vec<&str> = offline
        .iter()
        .map(|m| m["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        topics,
        ["paho/props/away/long", "paho/props/away/forever"],
        "the message that expired while queued must not be delivered: {summary}"
    );
    // Queued 2.5 s with a 60 s lifetime: forwarded with what is left of it.
    let remaining = as_u64(&offline[0]["properties"]["MessageExpiryInterval"]);
    assert!(
        (50..=58).contains(&remaining),
        "remaining expiry {remaining}: {summary}"
    );
    assert!(
        offline[1]["properties"]
            .get("MessageExpiryInterval")
            .is_none(),
        "a message without expiry got one: {summary}"
    );
    broker.stop();
}

/// The seed scenario's configuration: a queue long enough for the 1,000 messages.
const SEED_CONFIG: &str = "max_mqueue_len = 2000\nmax_inflight = 32";

/// The seed scenario's checks on a summary printed by `seed.py`.
fn check_seed(summary: &Value) {
    let protocol = summary["protocol"].as_str().unwrap();
    let count = as_u64(&summary["count"]);
    let oversize: BTreeSet<u64> = summary["oversize"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_u64)
        .collect();
    let messages = summary["messages"].as_array().unwrap();
    assert_eq!(
        summary["session_present"], true,
        "{protocol}: the session was not resumed: {}",
        summary["connack"]
    );
    assert_eq!(
        summary["disconnects"],
        serde_json::json!([]),
        "{protocol}: the broker closed the connection while delivering"
    );

    // Per stream (topic + QoS): the numbers, in arrival order.
    let mut streams: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut last_first_delivery = 0.0_f64;
    for message in messages {
        let fields = message.as_array().unwrap();
        let (number, qos, dup, at) = (
            as_u64(&fields[0]),
            as_u64(&fields[1]),
            fields[2].as_bool().unwrap(),
            fields[3].as_f64().unwrap(),
        );
        let want_qos = if number % 2 == 0 { 1 } else { 2 };
        assert_eq!(
            qos, want_qos,
            "{protocol}: message {number} delivered at QoS {qos}"
        );
        assert!(
            !oversize.contains(&number),
            "{protocol}: message {number} is larger than the client's Maximum Packet Size \
             and was delivered anyway"
        );
        if seen.insert(number) {
            last_first_delivery = last_first_delivery.max(at);
            streams.entry(qos).or_default().push(number);
        } else {
            assert!(
                qos == 1 && dup,
                "{protocol}: message {number} (QoS {qos}) delivered twice, DUP={dup}"
            );
        }
    }
    for (qos, numbers) in &streams {
        let out_of_order: Vec<(u64, u64)> = numbers
            .windows(2)
            .filter(|w| w[0] >= w[1])
            .map(|w| (w[0], w[1]))
            .take(5)
            .collect();
        assert!(
            out_of_order.is_empty(),
            "{protocol}: QoS {qos} stream out of order (pairs {out_of_order:?})"
        );
    }
    let expected: BTreeSet<u64> = (0..count).filter(|n| !oversize.contains(n)).collect();
    let missing: Vec<u64> = expected.difference(&seen).copied().collect();
    assert!(
        missing.is_empty(),
        "{protocol}: {} of {} messages never delivered, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        last_first_delivery < 30.0,
        "{protocol}: the queue took {last_first_delivery:.1} s to drain after CONNACK"
    );
    let window = if summary["receive_maximum"].is_null() {
        String::new()
    } else {
        format!(
            ", at most {} unacknowledged at once (Receive Maximum {})",
            summary["max_unacked"], summary["receive_maximum"]
        )
    };
    e2e::report(&format!(
        "seed scenario, MQTT {protocol}: {} of {count} delivered ({} deliveries), {} oversize \
         not delivered, the last one {last_first_delivery:.2} s after CONNACK{window}",
        seen.len(),
        messages.len(),
        oversize.len(),
    ));
}

#[test]
fn seed_scenario_mqtt_5_offline_queue_under_the_new_connection_limits() {
    let broker = Broker::start("paho-seed-v5", SEED_CONFIG);
    let summary = run_script(
        &broker,
        "seed.py",
        "5",
        &[
            "--count",
            "1000",
            "--receive-maximum",
            "5",
            "--max-packet-size",
            "256",
        ],
    );
    let oversize = summary["oversize"].as_array().unwrap().len();
    assert_eq!(
        oversize, 100,
        "the script sends every tenth message of each stream oversize"
    );
    check_seed(&summary);
    // paho acknowledges manually every 5 ms: the broker must never have had more than the
    // client's Receive Maximum of messages out unacknowledged (the script sees a lower bound
    // of that number: QoS 2 messages awaiting PUBREL are not visible to it).
    let max_unacked = as_u64(&summary["max_unacked"]);
    assert!(
        (1..=5).contains(&max_unacked),
        "the client's Receive Maximum is 5, yet it held {max_unacked} unacknowledged messages"
    );
    broker.stop();
}

#[test]
fn seed_scenario_mqtt_3_1_1_offline_queue() {
    let broker = Broker::start("paho-seed-v311", SEED_CONFIG);
    let summary = run_script(&broker, "seed.py", "311", &["--count", "1000"]);
    assert_eq!(summary["oversize"], serde_json::json!([]), "{summary}");
    check_seed(&summary);
    broker.stop();
}
