//! The bridge across an outage of its upstream: a publisher streams 20,000 numbered messages
//! to the edge `nanomq`, whose bridge forwards them to a real Mosquitto (persistence on); a
//! subscriber with a persistent session on Mosquitto receives them. A quarter of the way in,
//! Mosquitto is stopped gracefully (SIGTERM, waited for) for about 2.5 s and started again on
//! the same port and store; the bridge queues meanwhile, the subscriber reconnects to its
//! session.
//!
//! - QoS 1 (MQTT 3.1.1 bridge and subscriber): every message arrives, in order of first
//!   arrival; duplicates are allowed and reported.
//! - QoS 2 end to end (MQTT 5 bridge and subscriber): exactly once, in order: no duplicate,
//!   nothing missing.
//! - The upstream down from the start: what a publisher sends the moment the edge accepts
//!   it (before the bridge has ever connected) waits in the bridge's queue and arrives once
//!   Mosquitto is up.
//! - Every bridge has subscribed its forwards before the edge serves its first client. It
//!   used to serve first, so that what came in meanwhile went nowhere (an MQTT 5 publisher
//!   got "no matching subscribers"); with 40 bridges, a message for the last one did, every
//!   time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod bridge_support;
mod e2e;

use std::time::{Duration, Instant};

use bridge_support::clients::{
    Stream, Subscriber, SubscriberOptions, publish, publish_when_up, runtime,
};
use bridge_support::tally::Tally;
use bridge_support::{
    Edge, Mosquitto, SUBSCRIBER_RECEIVE_MAXIMUM, free_port, wait_link, watch_link,
};
use e2e::{Broker, report};
use mqtt_client::mqtt_codec::{ProtocolVersion, QoS};

/// How many messages the publisher sends.
const MESSAGES: u32 = 20_000;

/// The publisher's pace (messages per second): the stream lasts about 8 s, so that it runs
/// on through the outage.
const RATE: u32 = 2_500;

/// How long Mosquitto stays down.
const OUTAGE: Duration = Duration::from_millis(2_500);

/// How long the messages may take to arrive once the publisher is done.
const DELIVERY: Duration = Duration::from_secs(30);

/// How long to go on listening for late duplicates once every message has arrived.
const QUIET: Duration = Duration::from_millis(750);

/// How many bridges the start-up test's edge has: each subscribes its forwards in turn, so
/// the last one's come well after the edge could first accept a client.
const BRIDGES: usize = 40;

fn outage(name: &str, qos: QoS, version: ProtocolVersion) {
    let started = Instant::now();
    let rt = runtime();
    let mut mosquitto = Mosquitto::start(name);
    let cloud = Subscriber::start(
        &rt,
        SubscriberOptions {
            address: mosquitto.address(),
            client_id: "cloud-subscriber".to_owned(),
            version,
            filter: "sensors/#".to_owned(),
            qos,
            receive_maximum: Some(SUBSCRIBER_RECEIVE_MAXIMUM),
        },
    );
    let edge = Broker::start_with_config(
        name,
        &Edge {
            upstream: mosquitto.address(),
            proto_ver: if version.is_v5() { 5 } else { 4 },
            qos: qos as u8,
            store: None,
            max_inflight: None,
            backoff_max: None,
        }
        .config(),
    );
    let state = watch_link(&rt, edge.address());
    wait_link(&state, true);

    let publishing = publish(
        &rt,
        edge.address(),
        Stream {
            client_id: "edge-publisher".to_owned(),
            version,
            numbers: 0..MESSAGES,
            qos,
            rate: RATE,
            topic: |n| format!("sensors/{}", n % 8),
            size: |_| 64,
            ahead: None,
        },
    );
    cloud.wait_until(Duration::from_secs(20), "a quarter of the messages", |r| {
        r.unique.len() >= (MESSAGES / 4) as usize
    });
    let down = Instant::now();
    let before_outage = cloud.unique();
    mosquitto.stop();
    wait_link(&state, false);
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    mosquitto.start_again();
    let outage = down.elapsed();
    let sent_during_outage = publishing.sent();
    wait_link(&state, true);

    let published = publishing.finish(&rt, Duration::from_secs(30));
    assert_eq!(published.error, None, "the publisher failed");
    assert_eq!(published.acked.len(), MESSAGES as usize);
    // Missing messages are reported with the rest of the figures below.
    if cloud.wait_for(DELIVERY, |r| r.unique.len() >= MESSAGES as usize) {
        std::thread::sleep(QUIET);
    }
    let received = cloud.stop(&rt);
    let tally = Tally::of(&received.numbers, 0..MESSAGES);
    report(&format!(
        "{name}: {MESSAGES} messages at QoS {} ({version:?}), {} received, {} duplicates \
         {:?}, {} missing, {} out of order; Mosquitto down {outage:.2?} after {before_outage} \
         had arrived (the publisher at {sent_during_outage}); subscriber connects {}, \
         sessions lost {}, connections ended by {:?}; total {:.2?}",
        qos as u8,
        tally.received,
        tally.duplicates,
        tally.duplicated_sample(),
        tally.missing.len(),
        tally.out_of_order,
        received.connects,
        received.sessions_lost,
        received.endings,
        started.elapsed()
    ));
    assert!(
        tally.missing.is_empty(),
        "missing {} messages: {:?}",
        tally.missing.len(),
        tally.missing_sample()
    );
    assert_eq!(tally.unexpected, 0);
    assert_eq!(tally.out_of_order, 0, "messages arrived out of order");
    assert_eq!(
        received.sessions_lost, 0,
        "Mosquitto lost the subscriber's session"
    );
    assert!(
        received.connects >= 2,
        "the subscriber never reconnected: was Mosquitto down at all?"
    );
    if qos == QoS::ExactlyOnce {
        assert_eq!(
            tally.duplicates,
            0,
            "QoS 2 delivered these more than once: {:?}\n(number, how it came) for each \
             arrival: {:?}\nMosquitto's log:\n{}",
            tally.duplicated_sample(),
            received.duplicate_arrivals(40),
            mosquitto.log()
        );
    }
    drop(state);
    edge.stop();
}

#[test]
fn what_is_published_as_the_edge_starts_waits_for_an_upstream_not_up_yet() {
    const EARLY: u32 = 200;
    let rt = runtime();
    let mut mosquitto = Mosquitto::start("bridge_outage_start");
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
    mosquitto.stop();
    // The publisher connects the moment the edge accepts connections, before it says it
    // listens: on a port chosen here.
    let port = free_port();
    let edge_address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let publishing = publish_when_up(
        &rt,
        edge_address,
        Stream {
            client_id: "edge-publisher".to_owned(),
            version: ProtocolVersion::V5,
            numbers: 0..EARLY,
            qos: QoS::AtLeastOnce,
            rate: 100_000,
            topic: |n| format!("sensors/{}", n % 8),
            size: |_| 64,
            ahead: None,
        },
    );
    let config = Edge {
        upstream: mosquitto.address(),
        proto_ver: 5,
        qos: 1,
        store: None,
        max_inflight: None,
        backoff_max: None,
    }
    .config()
    .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let edge = Broker::start_with_config("bridge_outage_start", &config);
    let published = publishing.finish(&rt, DELIVERY);
    assert_eq!(
        published.error, None,
        "the edge did not take every message for the bridge"
    );
    mosquitto.start_again();
    cloud.wait_until(DELIVERY, "the early messages", |r| {
        r.unique.len() >= EARLY as usize
    });
    let received = cloud.stop(&rt);
    let tally = Tally::of(&received.numbers, 0..EARLY);
    report(&format!(
        "bridge_outage_start: {EARLY} messages published as the edge started, upstream down: \
         {} received, {} duplicates, {} missing, {} out of order",
        tally.received,
        tally.duplicates,
        tally.missing.len(),
        tally.out_of_order
    ));
    assert!(
        tally.missing.is_empty(),
        "missing: {:?}",
        tally.missing_sample()
    );
    assert_eq!(tally.out_of_order, 0);
    edge.stop();
}

#[test]
fn every_bridge_has_subscribed_its_forwards_before_the_edge_serves_a_client() {
    let rt = runtime();
    // Upstreams that are down: nothing listens there.
    let down = free_port();
    let port = free_port();
    let mut config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:{port}\"\n\n[log]\nlevel = \"info\"\nto = \"console\"\n\n"
    );
    for i in 0..BRIDGES {
        config.push_str(&format!(
            "[[bridges]]\nname = \"b{i}\"\nservers = [\"mqtt://127.0.0.1:{down}\"]\n\
             clientid = \"edge-b{i}\"\nbackoff_max = \"1s\"\n\
             [[bridges.forwards]]\nlocal_topic = \"b{i}/#\"\nqos = 1\n\n"
        ));
    }
    // One message for the last bridge, sent the moment the edge accepts the connection.
    let publishing = publish_when_up(
        &rt,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Stream {
            client_id: "early-publisher".to_owned(),
            version: ProtocolVersion::V5,
            numbers: 0..1,
            qos: QoS::AtLeastOnce,
            rate: 1_000,
            topic: |_| format!("b{}/x", BRIDGES - 1),
            size: |_| 64,
            ahead: None,
        },
    );
    let edge = Broker::start_with_config("bridge_outage_subscribed", &config);
    let published = publishing.finish(&rt, DELIVERY);
    // "No matching subscribers" here: the message went nowhere.
    assert_eq!(
        published.error, None,
        "the last bridge was not subscribed yet"
    );
    assert_eq!(published.acked, [0]);
    edge.stop();
}

#[test]
fn qos1_through_an_upstream_outage_every_message_arrives_in_order() {
    outage(
        "bridge_outage_qos1",
        QoS::AtLeastOnce,
        ProtocolVersion::V3_1_1,
    );
}

#[test]
fn qos2_through_an_upstream_outage_every_message_arrives_exactly_once() {
    outage("bridge_outage_qos2", QoS::ExactlyOnce, ProtocolVersion::V5);
}
