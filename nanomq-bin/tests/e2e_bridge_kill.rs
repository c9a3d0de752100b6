//! The edge `nanomq` killed with SIGKILL mid-stream while its bridge forwards QoS 1 to a real
//! Mosquitto. With persistence on (`sync = "always"`) the bridge's queue is its local
//! session's, in the store: after a restart on the same store, every message the edge
//! acknowledged to the publisher (each PUBACK counted) reaches the subscriber on Mosquitto.
//! Duplicates are allowed (what was in flight upstream at the kill goes again) and reported.
//! A second stream after the restart checks that the restarted bridge carries on.
//!
//! - Mid-stream: the bridge keeps up with the publisher; what it had in flight upstream and
//!   what the edge had taken but not yet handed to it are at stake.
//! - With a backlog: Mosquitto is stopped first, so thousands of acknowledged messages wait
//!   in the edge's store alone when it is killed; Mosquitto comes back before the edge does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod bridge_support;
mod e2e;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bridge_support::clients::{Stream, Subscriber, SubscriberOptions, publish, runtime};
use bridge_support::tally::Tally;
use bridge_support::{Edge, Mosquitto, SUBSCRIBER_RECEIVE_MAXIMUM, wait_link, watch_link};
use e2e::{Broker, report, scratch_dir};
use mqtt_client::mqtt_codec::{ProtocolVersion, QoS};

/// How many messages the first publisher means to send (it is cut off by the kill).
const MESSAGES: u32 = 20_000;

/// How many the second publisher sends, after the restart.
const AFTER: u32 = 2_000;

/// The publishers' pace (messages per second); with `sync = "always"` the edge's PUBACKs
/// are the real limit.
const RATE: u32 = 10_000;

/// With a backlog: Mosquitto stops once the edge has acknowledged this many.
const OUTAGE_AFTER: usize = 2_000;

/// The kill comes once the edge has acknowledged this many.
const KILL_AFTER: usize = 6_000;

/// How long the messages may take to arrive after the restart.
const DELIVERY: Duration = Duration::from_secs(30);

/// How long to go on listening for late duplicates once everything has arrived.
const QUIET: Duration = Duration::from_millis(500);

/// Message `n` of a publisher's stream.
fn stream(numbers: std::ops::Range<u32>, client_id: &str) -> Stream {
    Stream {
        client_id: client_id.to_owned(),
        version: ProtocolVersion::V5,
        numbers,
        qos: QoS::AtLeastOnce,
        rate: RATE,
        topic: |n| format!("sensors/{}", n % 8),
        size: |_| 64,
        ahead: None,
    }
}

/// Waits until the edge has acknowledged `count` messages.
fn wait_acked(publishing: &bridge_support::clients::Publishing, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while publishing.acked() < count {
        assert!(
            Instant::now() < deadline,
            "the edge acknowledged {} messages in 30 s, not {count}",
            publishing.acked()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(name: &str, with_backlog: bool) {
    let started = Instant::now();
    let rt = runtime();
    let mut mosquitto = Mosquitto::start(name);
    let cloud = Subscriber::start(
        &rt,
        SubscriberOptions {
            address: mosquitto.address(),
            client_id: "cloud-subscriber".to_owned(),
            version: ProtocolVersion::V5,
            filter: "sensors/#".to_owned(),
            qos: QoS::AtLeastOnce,
            receive_maximum: Some(SUBSCRIBER_RECEIVE_MAXIMUM),
        },
    );
    let store_dir = scratch_dir(&format!("{name}_store"));
    let store = store_dir.join("edge.db");
    let config = Edge {
        upstream: mosquitto.address(),
        proto_ver: 5,
        qos: 1,
        store: Some((&store, "always")),
        max_inflight: None,
        backoff_max: None,
    }
    .config();
    let edge = Broker::start_with_config(name, &config);
    let link = watch_link(&rt, edge.address());
    wait_link(&link, true);

    let publishing = publish(&rt, edge.address(), stream(0..MESSAGES, "edge-publisher"));
    if with_backlog {
        wait_acked(&publishing, OUTAGE_AFTER);
        mosquitto.stop();
        wait_link(&link, false);
    }
    wait_acked(&publishing, KILL_AFTER);
    let arrived_before_kill = cloud.unique();
    drop(link);
    edge.kill();
    let killed = Instant::now();
    let before = publishing.finish(&rt, Duration::from_secs(20));
    assert!(
        before.error.is_some(),
        "the publisher finished before the kill: nothing was cut off"
    );
    let acked: HashSet<u32> = before.acked.iter().copied().collect();
    if with_backlog {
        mosquitto.start_again();
    }

    let edge = Broker::start_with_config(name, &config);
    let restarted = killed.elapsed();
    let after = publish(
        &rt,
        edge.address(),
        stream(MESSAGES..MESSAGES + AFTER, "edge-publisher-2"),
    )
    .finish(&rt, Duration::from_secs(30));
    assert_eq!(after.error, None, "the second publisher failed");
    assert_eq!(after.acked.len(), AFTER as usize);
    let expected: HashSet<u32> = acked.iter().chain(&after.acked).copied().collect();
    let complete = cloud.wait_for(DELIVERY, |r| expected.is_subset(&r.unique));
    let recovered = killed.elapsed();
    if complete {
        std::thread::sleep(QUIET);
    }
    let received = cloud.stop(&rt);
    // What the edge took but had not acknowledged when it died may arrive or not.
    let tally = Tally::of(&received.numbers, expected.iter().copied());
    let unacknowledged_delivered = received
        .unique
        .iter()
        .filter(|n| **n < MESSAGES && !acked.contains(n))
        .count();
    report(&format!(
        "{name}: {} sent before the kill, {} acknowledged by the edge, {} of them upstream \
         at the kill (a backlog of {}); listening again {restarted:.2?} after the kill; then \
         {AFTER} more; every acknowledged one upstream {recovered:.2?} after the kill: {} \
         missing, {} duplicates {:?}, {} unacknowledged ones delivered too; total {:.2?}",
        before.sent,
        acked.len(),
        arrived_before_kill,
        acked.len().saturating_sub(arrived_before_kill),
        tally.missing.len(),
        tally.duplicates,
        tally.duplicated_sample(),
        unacknowledged_delivered,
        started.elapsed()
    ));
    assert!(
        tally.missing.is_empty(),
        "{} acknowledged messages never reached the upstream: {:?}",
        tally.missing.len(),
        tally.missing_sample()
    );
    assert_eq!(
        received.sessions_lost, 0,
        "Mosquitto lost the subscriber's session"
    );
    if with_backlog {
        assert!(
            acked.len() >= arrived_before_kill + (KILL_AFTER - OUTAGE_AFTER) / 2,
            "no backlog waited in the edge's store at the kill"
        );
    }
    edge.stop();
    let _ = std::fs::remove_dir_all(store_dir);
}

#[test]
fn after_a_kill_9_mid_stream_every_acknowledged_message_reaches_the_upstream() {
    kill("bridge_kill", false);
}

#[test]
fn after_a_kill_9_with_a_backlog_every_acknowledged_message_reaches_the_upstream() {
    kill("bridge_kill_backlog", true);
}
