//! Acknowledged means delivered, end to end with Python paho-mqtt 2.x: four publishers (two
//! MQTT 3.1.1, two MQTT 5) each flood 1,000 numbered QoS 1 messages without pacing to one
//! QoS 1 subscriber that reads slowly at first (its paho callback sleeps), through the real
//! `nanomq` binary configured with a queue of 20 messages per session, so that the
//! subscriber's in-flight window and queue are full for most of the run. Every message a
//! publisher got a PUBACK for must reach the subscriber, exactly once, in its publisher's
//! order; with the default `mqueue_full = "backpressure"` the publishers wait instead of the
//! broker dropping.
//!
//! The same flood with `mqueue_full = "drop"` loses acknowledged messages: the control that
//! shows the queue really overflows here, so that the first assertion is not met by a
//! subscriber that happened to keep up.
//!
//! The script is `tests/python/backpressure.py`, run with the project's venv (see
//! `e2e_paho.rs`); it prints what it observed, and the assertions are made here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use e2e::{Broker, python, python_script, report, run};
use serde_json::Value;

/// How long the script may run (it gives itself 45 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Messages per publisher.
const COUNT: usize = 1000;

/// The publishers' MQTT versions.
const PUBLISHERS: &str = "311,5,311,5";

/// The broker's queue per session: small, so that the flood fills it.
const QUEUE: &str = "max_mqueue_len = 20";

/// Runs the flood against a broker with `mqtt` in its `[mqtt]` table and a subscriber of
/// MQTT version `protocol`; the script's summary.
fn flood(name: &str, mqtt: &str, protocol: &str) -> Value {
    let broker = Broker::start(name, mqtt);
    let output = run(
        Command::new(python())
            .arg(python_script("backpressure.py"))
            .args([broker.host(), broker.port()])
            .args(["--protocol", protocol, "--publishers", PUBLISHERS])
            .args(["--count", &COUNT.to_string()]),
        SCRIPT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "backpressure.py failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    let last = output.stdout.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "backpressure.py printed no JSON summary ({e}):\n{}",
            output.stdout
        )
    });
    broker.stop();
    summary
}

/// What one publisher's messages did.
#[derive(Debug, Default)]
struct Account {
    /// Acknowledged, never delivered.
    lost: Vec<u64>,
    /// Delivered more than once.
    duplicated: Vec<u64>,
    /// Delivered after a later one of the same publisher.
    out_of_order: Vec<u64>,
    /// Acknowledged.
    acked: usize,
}

/// Each publisher's account, from the script's summary.
fn accounts(summary: &Value) -> Vec<Account> {
    let received = summary["received"].as_array().unwrap();
    assert!(
        summary["unparsed"].as_array().unwrap().is_empty(),
        "payloads that are not the publishers': {summary}"
    );
    let publishers = summary["publishers"].as_array().unwrap();
    publishers
        .iter()
        .enumerate()
        .map(|(i, publisher)| {
            assert_eq!(publisher["sent"], COUNT, "{publisher}");
            let acked: BTreeSet<u64> = publisher["acked"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect();
            let delivered: Vec<u64> = received
                .iter()
                .filter(|m| m[0].as_u64() == Some(i as u64))
                .map(|m| m[1].as_u64().unwrap())
                .collect();
            let mut account = Account {
                acked: acked.len(),
                ..Account::default()
            };
            let mut seen = BTreeSet::new();
            let mut highest = None;
            for &n in &delivered {
                if !seen.insert(n) {
                    account.duplicated.push(n);
                } else if highest.is_some_and(|h| n < h) {
                    account.out_of_order.push(n);
                }
                highest = highest.max(Some(n));
            }
            account.lost = acked.difference(&seen).copied().collect();
            account
        })
        .collect()
}

fn every_acknowledged_message_is_delivered_once_in_order(protocol: &str) {
    let summary = flood(&format!("backpressure-{protocol}"), QUEUE, protocol);
    let accounts = accounts(&summary);
    assert_eq!(accounts.len(), 4);
    for (i, account) in accounts.iter().enumerate() {
        assert!(
            account.lost.is_empty() && account.duplicated.is_empty(),
            "publisher {i}: {} acknowledged and never delivered (first {:?}), {} \
             delivered twice (first {:?})",
            account.lost.len(),
            account.lost.first(),
            account.duplicated.len(),
            account.duplicated.first()
        );
        assert!(
            account.out_of_order.is_empty(),
            "publisher {i}: out of order: {:?}",
            account.out_of_order
        );
        // Backpressure delays the PUBACKs; it refuses nothing.
        assert_eq!(account.acked, COUNT, "publisher {i}");
    }
    report(&format!(
        "backpressure, {protocol} subscriber: {} messages acknowledged and delivered in {} s",
        4 * COUNT,
        summary["seconds"]
    ));
}

#[test]
fn paho_flood_to_a_slow_mqtt_3_1_1_subscriber_every_acknowledged_message_once_in_order() {
    every_acknowledged_message_is_delivered_once_in_order("311");
}

#[test]
fn paho_flood_to_a_slow_mqtt_5_subscriber_every_acknowledged_message_once_in_order() {
    every_acknowledged_message_is_delivered_once_in_order("5");
}

#[test]
fn the_same_flood_loses_acknowledged_messages_when_a_full_queue_drops() {
    let summary = flood(
        "backpressure-drop",
        &format!("{QUEUE}\nmqueue_full = \"drop\""),
        "5",
    );
    let accounts = accounts(&summary);
    let lost: usize = accounts.iter().map(|a| a.lost.len()).sum();
    let acked: usize = accounts.iter().map(|a| a.acked).sum();
    report(&format!(
        "mqueue_full = \"drop\": {lost} of {acked} acknowledged messages never delivered"
    ));
    assert!(
        lost > 0,
        "the queue never overflowed: the backpressure tests above prove nothing ({acked} \
         acknowledged, all delivered)"
    );
}
