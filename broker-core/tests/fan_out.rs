//! One message to many sessions that take it in different ways: the subscribers that take
//! it the plain way share one encoding (each with its own packet identifier); the others
//! (subscription identifiers, topic aliases, a small maximum packet size, another QoS or
//! retain flag, MQTT 3.1.1 beside 5) each get exactly the packet they would get alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::num::NonZeroU32;
use std::time::Duration;

use broker_core::MqttConfig;
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// A subscriber's client id, version, QoS, retain as published, subscription id, topic
/// alias maximum and maximum packet size.
type Kind = (
    &'static str,
    ProtocolVersion,
    QoS,
    bool,
    Option<u32>,
    Option<u16>,
    Option<u32>,
);

/// A subscriber to `t/#`, and how it expects each message.
struct Sub {
    client: Client,
    qos: QoS,
    retain_as_published: bool,
    subscription_id: Option<u32>,
}

async fn subscriber(
    broker: &std::sync::Arc<broker_core::Broker>,
    connect: Connect,
    qos: QoS,
    retain_as_published: bool,
    subscription_id: Option<u32>,
) -> Sub {
    let (mut client, ack) = Client::connect_with(broker, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let mut options = SubscriptionOptions::new(qos);
    options.retain_as_published = retain_as_published;
    client.subscribe_with("t/#", options, subscription_id).await;
    Sub {
        client,
        qos,
        retain_as_published,
        subscription_id,
    }
}

#[tokio::test(start_paused = true)]
async fn every_subscriber_gets_its_own_packet_from_a_shared_encoding() {
    let broker = broker(MqttConfig::default());
    let kinds: [Kind; 11] = [
        ("v31", V3_1, QoS::AtLeastOnce, false, None, None, None),
        ("v311", V3_1_1, QoS::AtLeastOnce, false, None, None, None),
        ("v311b", V3_1_1, QoS::AtLeastOnce, false, None, None, None),
        ("v5", V5, QoS::AtLeastOnce, false, None, None, None),
        ("v5b", V5, QoS::AtLeastOnce, false, None, None, None),
        ("qos0", V3_1_1, QoS::AtMostOnce, false, None, None, None),
        ("qos2", V5, QoS::ExactlyOnce, false, None, None, None),
        ("rap", V5, QoS::AtLeastOnce, true, None, None, None),
        ("id", V5, QoS::AtLeastOnce, false, Some(7), None, None),
        ("alias", V5, QoS::AtLeastOnce, false, None, Some(4), None),
        // Takes the first message, then is sent only what fits in 40 bytes.
        ("small", V5, QoS::AtLeastOnce, false, None, None, Some(40)),
    ];
    let small_at = kinds.len() - 1;
    let mut subs = Vec::new();
    for (id, version, qos, rap, sub_id, alias_max, max_size) in kinds {
        let mut connect = connect_packet(version, id);
        connect.properties.topic_alias_maximum = alias_max;
        connect.properties.maximum_packet_size = max_size.and_then(NonZeroU32::new);
        subs.push(subscriber(&broker, connect, qos, rap, sub_id).await);
    }

    // One subscriber's packet identifiers run ahead of the others'.
    let connect = connect_packet(V3_1_1, "ahead");
    let mut ahead = subscriber(&broker, connect, QoS::AtLeastOnce, false, None).await;
    ahead.client.subscribe("warm-up", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for _ in 0..3 {
        publisher
            .publish("warm-up", b"w", QoS::AtLeastOnce, false)
            .await;
        let p = ahead.client.expect_publish().await;
        ahead.client.ack(&p).await;
    }
    subs.push(ahead);

    let messages: [(&str, &[u8], QoS, bool); 4] = [
        ("t/a", b"one", QoS::AtLeastOnce, false),
        ("t/b/c", &[b'x'; 200], QoS::ExactlyOnce, true),
        ("t/a", b"three", QoS::AtMostOnce, false),
        ("t/d", &[b'y'; 20_000], QoS::AtLeastOnce, false),
    ];
    for (topic_str, payload, qos, retain) in messages {
        publisher.publish(topic_str, payload, qos, retain).await;
        for (i, sub) in subs.iter_mut().enumerate() {
            let too_large = i == small_at && payload.len() > 20;
            if too_large {
                continue;
            }
            let p = sub.client.expect_publish().await;
            let expected_qos = qos.min(sub.qos);
            assert_eq!(p.qos.qos(), expected_qos, "subscriber {i}, {topic_str}");
            assert_eq!(
                p.payload(),
                Bytes::copy_from_slice(payload),
                "subscriber {i}"
            );
            assert!(!p.dup, "subscriber {i}");
            assert_eq!(
                p.retain,
                retain && sub.retain_as_published,
                "subscriber {i}"
            );
            if sub.client.version.is_v5() {
                let props = p.properties();
                let ids: Vec<u32> = props
                    .subscription_identifiers
                    .iter()
                    .map(|i| i.get())
                    .collect();
                assert_eq!(
                    ids,
                    sub.subscription_id.into_iter().collect::<Vec<_>>(),
                    "subscriber {i}"
                );
                if props.topic_alias.is_none() {
                    assert_eq!(p.topic(), topic_str, "subscriber {i}");
                }
            } else {
                assert_eq!(p.topic(), topic_str, "subscriber {i}");
            }
            sub.client.ack(&p).await;
        }
    }
    // The subscriber ahead got identifiers after its warm-up ones, all acknowledged: nothing
    // comes again, to anyone.
    for (i, sub) in subs.iter_mut().enumerate() {
        assert!(
            sub.client.try_recv(Duration::from_secs(1)).await.is_none(),
            "subscriber {i} got a packet twice"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_packet_identifiers_of_a_shared_encoding_are_each_subscriber_s_own() {
    let broker = broker(MqttConfig::default());
    let mut a = Client::connect(&broker, V3_1_1, "a").await;
    let mut b = Client::connect(&broker, V3_1_1, "b").await;
    a.subscribe("t", QoS::AtLeastOnce).await;
    b.subscribe("t", QoS::AtLeastOnce).await;
    b.subscribe("only-b", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V3_1_1, "pub").await;
    // b's next identifier is 3, a's is 1; neither acknowledges yet.
    for _ in 0..2 {
        publisher
            .publish("only-b", b"b", QoS::AtLeastOnce, false)
            .await;
        b.expect_publish().await;
    }
    publisher
        .publish("t", b"shared", QoS::AtLeastOnce, false)
        .await;
    let pa = a.expect_publish().await;
    let pb = b.expect_publish().await;
    assert_eq!(pa.qos, PublishQoS::AtLeastOnce(pid(1)));
    assert_eq!(pb.qos, PublishQoS::AtLeastOnce(pid(3)));
    assert_eq!(
        (pa.payload(), pb.payload()),
        (&b"shared"[..], &b"shared"[..])
    );
}
