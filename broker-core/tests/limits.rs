//! The limits of what one client may cost, each tested at the limit and just past it, with
//! the reason code an MQTT 5 and an MQTT 3.1.1 client see, and the counter that records it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use broker_core::{Limits, MqttConfig};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

fn config(limits: Limits) -> MqttConfig {
    MqttConfig {
        limits,
        ..MqttConfig::default()
    }
}

/// A topic of `levels` levels, `a/a/.../a`.
fn deep(levels: usize) -> String {
    vec!["a"; levels].join("/")
}

#[tokio::test(start_paused = true)]
async fn filters_past_the_level_or_length_limit_are_refused_and_counted() {
    let broker = broker(config(Limits {
        max_topic_levels: 8,
        max_topic_length: 64,
        ..Limits::default()
    }));
    let mut v5 = Client::connect(&broker, V5, "v5").await;
    let filters = [
        deep(8),
        deep(9),
        "x".repeat(64),
        "x".repeat(65),
        "+/".repeat(8) + "#",
    ];
    let codes = v5.subscribe_all(&filters, QoS::AtLeastOnce).await;
    assert_eq!(
        codes,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::GrantedQoS1,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::TopicFilterInvalid,
        ]
    );
    let mut v3 = Client::connect(&broker, V3_1_1, "v3").await;
    let codes = v3
        .subscribe_all(&[deep(9), deep(2)], QoS::AtLeastOnce)
        .await;
    assert_eq!(
        codes,
        [ReasonCode::UnspecifiedError, ReasonCode::GrantedQoS1]
    );
    let limits = broker.metrics().limits;
    assert_eq!((limits.topic_levels, limits.topic_length), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn a_publish_past_the_topic_limits_is_refused_with_0x90_or_closed_in_3_1_1() {
    let broker = broker(config(Limits {
        max_topic_levels: 4,
        ..Limits::default()
    }));
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("#", QoS::AtLeastOnce).await;
    let mut v5 = Client::connect(&broker, V5, "v5").await;
    let mut p = Publish::new(topic(&deep(5)), Bytes::from_static(b"x"));
    p.qos = PublishQoS::AtLeastOnce(pid(1));
    v5.send(Packet::Publish(p)).await;
    match v5.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::TopicNameInvalid),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // At the limit it goes through; the connection stayed open.
    v5.publish(&deep(4), b"ok", QoS::AtLeastOnce, false).await;
    assert_eq!(sub.expect_publish().await.payload(), b"ok");

    let mut v3 = Client::connect(&broker, V3_1_1, "v3").await;
    v3.publish(&deep(5), b"x", QoS::AtMostOnce, false).await;
    assert_eq!(
        v3.expect_close().await,
        None,
        "3.1.1 cannot be told: closed"
    );
    assert_eq!(broker.metrics().limits.topic_levels, 2);
    assert_eq!(sub.try_recv(Duration::from_secs(1)).await.map(|_| ()), None);
}

#[tokio::test(start_paused = true)]
async fn a_will_past_the_topic_limits_refuses_the_connection() {
    let broker = broker(config(Limits {
        max_topic_levels: 4,
        ..Limits::default()
    }));
    for (version, expected) in [
        (V5, ReasonCode::TopicNameInvalid),
        (V3_1_1, ReasonCode::ServerUnavailable),
    ] {
        let mut c = connect_packet(version, "w");
        c.will = Some(LastWill {
            topic: topic(&deep(5)),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        let (_, ack) = Client::connect_with(&broker, c).await;
        assert_eq!(ack.reason_code, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn a_subscribe_with_too_many_filters_is_refused_whole() {
    let broker = broker(config(Limits {
        max_filters_per_packet: 10,
        ..Limits::default()
    }));
    let filters: Vec<String> = (0..11).map(|i| format!("f/{i}")).collect();
    let mut v5 = Client::connect(&broker, V5, "v5").await;
    assert_eq!(
        v5.subscribe_all(&filters[..10], QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1; 10]
    );
    assert_eq!(
        v5.subscribe_all(&filters, QoS::AtLeastOnce).await,
        [ReasonCode::QuotaExceeded; 11]
    );
    let mut v3 = Client::connect(&broker, V3_1_1, "v3").await;
    assert_eq!(
        v3.subscribe_all(&filters, QoS::AtLeastOnce).await,
        [ReasonCode::UnspecifiedError; 11]
    );
    // None of the refused packet's filters was subscribed.
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher
        .publish("f/10", b"x", QoS::AtMostOnce, false)
        .await;
    assert_eq!(v3.try_recv(Duration::from_secs(1)).await, None);

    // UNSUBSCRIBE alike: MQTT 5 gets 0x83 (UNSUBACK has no 0x97) for each, 3.1.1 (which
    // cannot be told) is closed.
    let packet_id = v5.next_pid();
    v5.send(Packet::Unsubscribe(Unsubscribe {
        packet_id,
        filters: filters.iter().map(|f| filter(f)).collect(),
        properties: Default::default(),
    }))
    .await;
    match v5.recv().await {
        Some(Packet::UnsubAck(ack)) => {
            assert_eq!(
                ack.reason_codes,
                [ReasonCode::ImplementationSpecificError; 11]
            );
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let packet_id = v3.next_pid();
    v3.send(Packet::Unsubscribe(Unsubscribe {
        packet_id,
        filters: filters.iter().map(|f| filter(f)).collect(),
        properties: Default::default(),
    }))
    .await;
    assert_eq!(v3.expect_close().await, None);
    assert_eq!(broker.metrics().limits.filters_per_packet, 4);
}

#[tokio::test(start_paused = true)]
async fn subscriptions_past_the_session_limit_are_refused_but_replacing_one_is_not() {
    let broker = broker(config(Limits {
        max_subscriptions: 3,
        ..Limits::default()
    }));
    let mut v5 = Client::connect(&broker, V5, "v5").await;
    let filters: Vec<String> = (0..4).map(|i| format!("s/{i}")).collect();
    assert_eq!(
        v5.subscribe_all(&filters, QoS::AtLeastOnce).await,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1,
            ReasonCode::QuotaExceeded
        ]
    );
    // Subscribing again to a filter the session holds replaces it: no new subscription.
    assert_eq!(
        v5.subscribe_all(&filters[..1], QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
    v5.subscribe_with("s/0", SubscriptionOptions::new(QoS::AtMostOnce), None)
        .await;
    let mut v3 = Client::connect(&broker, V3_1_1, "v3").await;
    assert_eq!(
        v3.subscribe_all(&filters, QoS::AtLeastOnce).await[3],
        ReasonCode::UnspecifiedError
    );
    assert_eq!(broker.metrics().limits.subscriptions, 2);
}

#[tokio::test(start_paused = true)]
async fn a_connection_past_the_limit_is_refused_with_0x97_or_server_unavailable() {
    let broker = broker(config(Limits {
        max_connections: 2,
        ..Limits::default()
    }));
    let first = Client::connect(&broker, V5, "one").await;
    let _second = Client::connect(&broker, V3_1_1, "two").await;
    let (_, ack) = Client::connect_with(&broker, connect_packet(V5, "three")).await;
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
    let (_, ack) = Client::connect_with(&broker, connect_packet(V3_1_1, "four")).await;
    assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable);
    assert_eq!(broker.metrics().limits.connections, 2);
    // Once one leaves, there is room again.
    first.disconnect().await;
    settle().await;
    let _third = Client::connect(&broker, V5, "three").await;
}

#[tokio::test(start_paused = true)]
async fn limits_replaced_while_clients_are_connected_apply_to_their_next_packets() {
    let broker = broker(config(Limits::default()));
    let mut v5 = Client::connect(&broker, V5, "v5").await;
    assert_eq!(
        v5.subscribe_all(&[deep(6)], QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
    broker.set_limits(Limits {
        max_topic_levels: 4,
        max_filters_per_packet: 2,
        ..Limits::default()
    });
    assert_eq!(broker.limits().max_topic_levels, 4);
    // The same connection, its next SUBSCRIBE: past the new bounds, refused.
    assert_eq!(
        v5.subscribe_all(&[deep(5), deep(4)], QoS::AtLeastOnce)
            .await,
        [ReasonCode::TopicFilterInvalid, ReasonCode::GrantedQoS1]
    );
    assert_eq!(
        v5.subscribe_all(&[deep(1), deep(2), deep(3)], QoS::AtLeastOnce)
            .await,
        [ReasonCode::QuotaExceeded; 3]
    );
    // Its next PUBLISH too; the connection stays open.
    let mut p = Publish::new(topic(&deep(5)), Bytes::from_static(b"x"));
    p.qos = PublishQoS::AtLeastOnce(pid(1));
    v5.send(Packet::Publish(p)).await;
    match v5.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::TopicNameInvalid),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // What it subscribed before the change stays: deep(6) still delivers.
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    broker.set_limits(Limits::default());
    publisher
        .publish(&deep(6), b"kept", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(v5.expect_publish().await.payload(), b"kept");
    // Raised again: the five-level filter is granted now.
    assert_eq!(
        v5.subscribe_all(&[deep(5)], QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lowered_connection_limit_refuses_the_next_connect() {
    let broker = broker(config(Limits::default()));
    let _a = Client::connect(&broker, V5, "a").await;
    let _b = Client::connect(&broker, V5, "b").await;
    broker.set_limits(Limits {
        max_connections: 1,
        ..Limits::default()
    });
    let (_, ack) = Client::connect_with(&broker, connect_packet(V5, "c")).await;
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
}
