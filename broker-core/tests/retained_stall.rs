//! A SUBSCRIBE with a very large filter set, against a broker holding 10,000 retained
//! messages, must not hold other clients hostage: looking up each filter's retained
//! messages walks only the branches the filter can match, instead of testing every
//! retained message against every filter on the subscriber's worker thread.
//!
//! The broker runs on a multi-thread runtime with one worker, standing for a broker whose
//! workers are all busy: whatever the subscriber's connection does without yielding, every
//! other connection on that worker waits for. The test's own clients run on the main thread,
//! outside the worker, and time their round trips on the wall clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use broker_core::MqttConfig;
use mqtt_codec::*;
use support::*;

const RETAINED: usize = 10_000;
const SUBSCRIBES: usize = 4;
const FILTERS_PER_SUBSCRIBE: usize = 5_000;
/// Generous: the broker keeps answering, not how fast (that is `cargo xtask bench`'s).
const ROUND_TRIP_BOUND: Duration = Duration::from_secs(5);

/// Large enough for SUBSCRIBEs of 5,000 filters each, far past the default limits: the broker
/// must keep answering others even when an operator raised them.
fn stall_config() -> MqttConfig {
    MqttConfig {
        max_packet_size: 4 * 1024 * 1024,
        limits: broker_core::Limits {
            max_filters_per_packet: FILTERS_PER_SUBSCRIBE,
            max_subscriptions: SUBSCRIBES * FILTERS_PER_SUBSCRIBE,
            ..broker_core::Limits::default()
        },
        ..MqttConfig::default()
    }
}

/// A runtime whose one worker serves the broker (the test's clients run on the thread
/// that blocks on it).
fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A broker holding [`RETAINED`] retained messages, `retained/<i>`.
async fn retaining_broker() -> std::sync::Arc<broker_core::Broker> {
    let broker = broker(stall_config());
    let mut retainer = Client::connect(&broker, ProtocolVersion::V5, "retainer").await;
    for i in 0..RETAINED {
        retainer
            .publish(&format!("retained/{i}"), b"r", QoS::AtMostOnce, true)
            .await;
    }
    // Handled in order: once this is acknowledged, every retained message is stored.
    retainer.publish("sync", b"", QoS::AtLeastOnce, false).await;
    assert_eq!(broker.metrics().retained_messages, RETAINED as u64);
    broker
}

#[test]
fn a_huge_subscribe_does_not_stall_other_clients() {
    one_worker().block_on(async {
        let broker = retaining_broker().await;

        let mut pinger = Client::connect(&broker, ProtocolVersion::V5, "pinger").await;
        let mut big = Client::connect(&broker, ProtocolVersion::V5, "big").await;
        let subscriber = tokio::spawn(async move {
            for chunk in 0..SUBSCRIBES {
                let packet_id = big.next_pid();
                let subscriptions = (0..FILTERS_PER_SUBSCRIBE)
                    .map(|i| Subscription {
                        filter: filter(&format!("none/{chunk}/{i}")),
                        options: SubscriptionOptions::new(QoS::AtLeastOnce),
                    })
                    .collect();
                big.send(Packet::Subscribe(Subscribe {
                    packet_id,
                    subscriptions,
                    properties: SubscribeProperties::default(),
                }))
                .await;
                match big.recv().await {
                    Some(Packet::SubAck(ack)) => {
                        assert_eq!(ack.packet_id, packet_id);
                        assert_eq!(ack.reason_codes.len(), FILTERS_PER_SUBSCRIBE);
                    }
                    other => panic!("expected SUBACK, got {other:?}"),
                }
            }
            assert!(big.try_recv(Duration::from_millis(100)).await.is_none());
        });

        let started = Instant::now();
        let mut worst = Duration::ZERO;
        let mut trips = 0;
        while !subscriber.is_finished() {
            let sent = Instant::now();
            pinger.publish("ping", b"p", QoS::AtLeastOnce, false).await;
            let took = sent.elapsed();
            worst = worst.max(took);
            trips += 1;
            assert!(
                took < ROUND_TRIP_BOUND,
                "a QoS 1 round trip took {took:?} during the large SUBSCRIBE (trip {trips})"
            );
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the SUBACKs did not arrive within 120 s"
            );
            // Not tokio's sleep: its timer is driven by the worker, which may be busy.
            std::thread::sleep(Duration::from_millis(5));
        }
        subscriber.await.unwrap();
        println!(
            "{trips} round trips during {:?} of subscribing, the slowest {worst:?}",
            started.elapsed()
        );
    });
}

/// A SUBSCRIBE whose filters take long to look up (each `+` filter walks every retained
/// branch) is handled in slices: another client's PINGREQ, sent while it is being worked on,
/// is answered before its SUBACK; and what its client sent after it still comes after it (a
/// PUBLISH to a topic of its last filter reaches the client itself).
#[test]
fn a_long_subscribe_is_handled_in_slices_and_in_order() {
    const WILDCARDS: usize = 1_000;
    one_worker().block_on(async {
        let broker = retaining_broker().await;
        let mut pinger = Client::connect(&broker, ProtocolVersion::V5, "pinger").await;
        let mut big = Client::connect(&broker, ProtocolVersion::V5, "big").await;
        let packet_id = big.next_pid();
        let mut subscriptions: Vec<Subscription> = (0..WILDCARDS)
            .map(|k| Subscription {
                filter: filter(&format!("retained/+/none-{k}")),
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            })
            .collect();
        subscriptions.push(Subscription {
            filter: filter("after"),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        });
        big.send(Packet::Subscribe(Subscribe {
            packet_id,
            subscriptions,
            properties: SubscribeProperties::default(),
        }))
        .await;
        let publish_id = big.next_pid();
        let mut publish = Publish::new(topic("after"), bytes::Bytes::from_static(b"x"));
        publish.qos = PublishQoS::with_packet_id(QoS::AtLeastOnce, publish_id);
        big.send(Packet::Publish(publish)).await;
        // Let the worker start on the SUBSCRIBE (its lookups take far longer than this).
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        pinger.send(Packet::PingReq).await;
        assert!(matches!(pinger.recv().await, Some(Packet::PingResp)));
        let answered = started.elapsed();
        assert!(
            big.try_recv(Duration::ZERO).await.is_none(),
            "the SUBACK came before the PINGRESP ({answered:?}): the SUBSCRIBE was not sliced"
        );
        match big.recv().await {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.packet_id, packet_id);
                assert_eq!(
                    ack.reason_codes,
                    vec![ReasonCode::GrantedQoS1; WILDCARDS + 1]
                );
            }
            other => panic!("expected the SUBACK first, got {other:?}"),
        }
        let mut own = None;
        let mut acked = false;
        while own.is_none() || !acked {
            match big.recv().await {
                Some(Packet::Publish(p)) => own = Some(p.topic().to_owned()),
                Some(Packet::PubAck(ack)) => {
                    assert_eq!(ack.packet_id, publish_id);
                    acked = true;
                }
                other => panic!("expected its own message and the PUBACK, got {other:?}"),
            }
        }
        assert_eq!(own.as_deref(), Some("after"));
        println!(
            "PINGRESP {answered:?} after the PINGREQ, SUBACK {:?}",
            started.elapsed()
        );
    });
}

/// A subscriber is handed no more retained messages than its queue holds: the lookup stops
/// there, instead of collecting every match and dropping the overflow.
#[tokio::test(start_paused = true)]
async fn a_subscribe_gets_no_more_retained_messages_than_its_queue_holds() {
    let config = MqttConfig {
        max_mqueue_len: 10,
        ..stall_config()
    };
    let broker = broker(config);
    let mut retainer = Client::connect(&broker, ProtocolVersion::V5, "retainer").await;
    for i in 0..100 {
        retainer
            .publish(&format!("r/{i}"), b"r", QoS::AtMostOnce, true)
            .await;
    }
    retainer.publish("sync", b"", QoS::AtLeastOnce, false).await;
    let mut sub = Client::connect(&broker, ProtocolVersion::V5, "sub").await;
    sub.subscribe("r/#", QoS::AtMostOnce).await;
    let mut received = 0;
    while let Some(packet) = sub.try_recv(Duration::from_secs(1)).await {
        assert!(
            matches!(packet, Packet::Publish(ref p) if p.retain),
            "{packet:?}"
        );
        received += 1;
    }
    assert_eq!(received, 10);
    assert_eq!(
        broker.metrics().dropped_queue_full,
        0,
        "none collected to be dropped"
    );
}
