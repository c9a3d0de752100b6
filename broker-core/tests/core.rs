//! The broker core driven through in-memory pipes in virtual time: QoS flows, sessions,
//! takeover, keep alive, retry, wills, expiry, queue bounds, retained messages, topic
//! aliases, shared subscriptions, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use broker_core::{DropPolicy, MqttConfig};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

fn persistent(version: ProtocolVersion, id: &str, expiry: u32) -> Connect {
    let mut c = connect_packet(version, id);
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(expiry);
    }
    c
}

#[tokio::test(start_paused = true)]
async fn qos_0_1_2_are_delivered_with_the_lower_qos() {
    let broker = broker(MqttConfig::default());
    for version in [V3_1_1, V5] {
        let mut sub = Client::connect(&broker, version, "sub").await;
        sub.subscribe("t/+", QoS::ExactlyOnce).await;
        let mut publisher = Client::connect(&broker, version, "pub").await;
        for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .enumerate()
        {
            publisher
                .publish("t/a", format!("m{i}").as_bytes(), qos, false)
                .await;
            let p = sub.expect_publish().await;
            assert_eq!(p.qos.qos(), qos);
            assert_eq!(p.payload(), Bytes::from(format!("m{i}")));
            assert_eq!(p.topic(), "t/a");
            sub.ack(&p).await;
        }
        // A QoS 1 subscription downgrades QoS 2 messages.
        sub.subscribe("d", QoS::AtLeastOnce).await;
        publisher.publish("d", b"x", QoS::ExactlyOnce, false).await;
        assert_eq!(sub.expect_publish().await.qos.qos(), QoS::AtLeastOnce);
        sub.disconnect().await;
        publisher.disconnect().await;
    }
}

#[tokio::test(start_paused = true)]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos_with_every_identifier() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe_with("a/#", SubscriptionOptions::new(QoS::AtMostOnce), Some(1))
        .await;
    sub.subscribe_with("a/+", SubscriptionOptions::new(QoS::AtLeastOnce), Some(2))
        .await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher
        .publish("a/b", b"x", QoS::AtLeastOnce, false)
        .await;
    let p = sub.expect_publish().await;
    assert_eq!(p.qos.qos(), QoS::AtLeastOnce);
    let mut ids: Vec<u32> = p
        .properties()
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
    sub.ack(&p).await;
    assert!(
        sub.try_recv(Duration::from_secs(1)).await.is_none(),
        "delivered twice"
    );
}

#[tokio::test(start_paused = true)]
async fn wildcards_do_not_match_system_topics_and_clients_cannot_publish_there() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("#", QoS::AtLeastOnce).await;
    sub.subscribe("$SYS/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    let mut p = Publish::new(topic("$SYS/broker/uptime"), Bytes::from_static(b"1"));
    p.qos = PublishQoS::AtLeastOnce(pid(1));
    publisher.send(Packet::Publish(p)).await;
    match publisher.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn no_local_and_retain_as_published() {
    let broker = broker(MqttConfig::default());
    let mut me = Client::connect(&broker, V5, "me").await;
    let mut options = SubscriptionOptions::new(QoS::AtLeastOnce);
    options.no_local = true;
    me.subscribe_with("t", options, None).await;
    let mut other = Client::connect(&broker, V5, "other").await;
    let mut rap = SubscriptionOptions::new(QoS::AtLeastOnce);
    rap.retain_as_published = true;
    other.subscribe_with("t", rap, None).await;

    me.publish("t", b"mine", QoS::AtLeastOnce, true).await;
    let p = other.expect_publish().await;
    assert!(p.retain, "retain as published keeps the flag");
    other.ack(&p).await;
    assert!(
        me.try_recv(Duration::from_secs(1)).await.is_none(),
        "no-local delivered to the publisher"
    );
}

#[tokio::test(start_paused = true)]
async fn retained_messages_are_stored_replaced_deleted_and_follow_retain_handling() {
    let broker = broker(MqttConfig::default());
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher
        .publish("r/1", b"old", QoS::AtLeastOnce, true)
        .await;
    publisher
        .publish("r/1", b"new", QoS::AtLeastOnce, true)
        .await;
    publisher
        .publish("r/2", b"two", QoS::AtMostOnce, true)
        .await;

    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("r/1", QoS::AtLeastOnce).await;
    let p = sub.expect_publish().await;
    assert_eq!((p.payload(), p.retain), (&b"new"[..], true));
    sub.ack(&p).await;

    // Retain handling 1: only for a new subscription.
    let mut if_new = SubscriptionOptions::new(QoS::AtLeastOnce);
    if_new.retain_handling = RetainHandling::SendIfNew;
    sub.subscribe_with("r/1", if_new, None).await;
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
    // Retain handling 2: never.
    let mut never = SubscriptionOptions::new(QoS::AtLeastOnce);
    never.retain_handling = RetainHandling::DoNotSend;
    sub.subscribe_with("r/2", never, None).await;
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());

    // An empty retained payload deletes.
    publisher.publish("r/1", b"", QoS::AtLeastOnce, true).await;
    let p = sub.expect_publish().await; // the empty message itself is delivered live
    sub.ack(&p).await;
    let mut late = Client::connect(&broker, V5, "late").await;
    late.subscribe("r/+", QoS::AtLeastOnce).await;
    let p = late.expect_publish().await;
    assert_eq!(p.topic(), "r/2");
    assert!(late.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn retained_messages_honour_message_expiry() {
    let broker = broker(MqttConfig::default());
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    let mut p = Publish::new(topic("e"), Bytes::from_static(b"x"));
    p.retain = true;
    p.properties_mut().message_expiry_interval = Some(10);
    publisher.publish_packet(p).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("e", QoS::AtMostOnce).await;
    let got = sub.expect_publish().await;
    assert_eq!(
        got.properties().message_expiry_interval,
        Some(6),
        "remaining interval forwarded"
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut later = Client::connect(&broker, V5, "later").await;
    later.subscribe("e", QoS::AtMostOnce).await;
    assert!(later.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn keep_alive_timeout_closes_with_0x8d_and_publishes_the_will() {
    let broker = broker(MqttConfig::default());
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;

    let mut c = connect_packet(V5, "sleepy");
    c.keep_alive = 10;
    c.will = Some(LastWill {
        topic: topic("wills/sleepy"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let (mut sleepy, _) = Client::connect_with(&broker, c).await;
    let start = tokio::time::Instant::now();
    let disconnect = sleepy.expect_close().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason_code, ReasonCode::KeepAliveTimeout);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(16),
        "closed after {waited:?}, expected 1.5 x 10 s"
    );
    let will = watcher.expect_publish().await;
    assert_eq!(will.payload(), b"gone");
}

#[tokio::test(start_paused = true)]
async fn pings_keep_a_connection_alive() {
    let broker = broker(MqttConfig::default());
    let mut c = connect_packet(V3_1_1, "pinger");
    c.keep_alive = 10;
    let (mut client, _) = Client::connect_with(&broker, c).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(9)).await;
        client.send(Packet::PingReq).await;
        assert_eq!(client.recv().await, Some(Packet::PingResp));
    }
}

#[tokio::test(start_paused = true)]
async fn a_normal_disconnect_does_not_publish_the_will_but_0x04_does() {
    let broker = broker(MqttConfig::default());
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("w", QoS::AtMostOnce).await;
    for (reason, expect_will) in [
        (ReasonCode::Success, false),
        (ReasonCode::DisconnectWithWillMessage, true),
    ] {
        let mut c = connect_packet(V5, "leaver");
        c.will = Some(LastWill {
            topic: topic("w"),
            payload: Bytes::from_static(b"will"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        let (mut leaver, _) = Client::connect_with(&broker, c).await;
        leaver
            .send(Packet::Disconnect(Disconnect::new(reason)))
            .await;
        assert_eq!(leaver.expect_close().await, None);
        let got = watcher.try_recv(Duration::from_secs(1)).await;
        assert_eq!(got.is_some(), expect_will, "reason {reason}");
    }
}

#[tokio::test(start_paused = true)]
async fn will_delay_is_honoured_and_cancelled_by_a_return() {
    let broker = broker(MqttConfig::default());
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("w", QoS::AtMostOnce).await;
    let will_connect = || {
        let mut c = persistent(V5, "flaky", 3600);
        let properties = WillProperties {
            will_delay_interval: Some(30),
            ..WillProperties::default()
        };
        c.will = Some(LastWill {
            topic: topic("w"),
            payload: Bytes::from_static(b"flaky is gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties,
        });
        c
    };
    // Gone for good: the will arrives after 30 s, not before.
    let (flaky, _) = Client::connect_with(&broker, will_connect()).await;
    flaky.drop_abruptly();
    assert!(watcher.try_recv(Duration::from_secs(29)).await.is_none());
    assert!(watcher.try_recv(Duration::from_secs(2)).await.is_some());

    // Back within the delay: no will.
    let (flaky, ack) = Client::connect_with(&broker, will_connect()).await;
    assert!(ack.session_present);
    flaky.drop_abruptly();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_back, _) = Client::connect_with(&broker, will_connect()).await;
    assert!(watcher.try_recv(Duration::from_secs(60)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn session_expiry_frees_the_session() {
    let broker = broker(MqttConfig::default());
    let (mut c, ack) = Client::connect_with(&broker, persistent(V5, "exp", 10)).await;
    assert!(!ack.session_present);
    c.subscribe("x", QoS::AtLeastOnce).await;
    c.disconnect().await;
    settle().await;
    assert_eq!(broker.metrics().sessions, 1);

    // Back within the expiry: the session (and its subscription) is there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c, ack) = Client::connect_with(&broker, persistent(V5, "exp", 10)).await;
    assert!(ack.session_present);
    c.disconnect().await;

    tokio::time::sleep(Duration::from_secs(11)).await;
    settle().await;
    assert_eq!(broker.metrics().sessions, 0);
    let (_c, ack) = Client::connect_with(&broker, persistent(V5, "exp", 10)).await;
    assert!(!ack.session_present);
    // A publish to the old subscription's topic reaches nobody.
    let mut p = Client::connect(&broker, V5, "p").await;
    let mut publish = Publish::new(topic("x"), Bytes::from_static(b"1"));
    publish.qos = PublishQoS::AtLeastOnce(pid(1));
    p.send(Packet::Publish(publish)).await;
    match p.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::NoMatchingSubscribers),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn v3_persistent_sessions_use_the_configured_default_expiry() {
    let config = MqttConfig {
        session_expiry_default: Some(Duration::from_secs(60)),
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let (c, _) = Client::connect_with(&broker, persistent(V3_1_1, "old", 0)).await;
    c.disconnect().await;
    tokio::time::sleep(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(broker.metrics().sessions, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(broker.metrics().sessions, 0);
}

#[tokio::test(start_paused = true)]
async fn takeover_closes_the_old_connection_with_0x8e_and_keeps_messages_in_flight() {
    let broker = broker(MqttConfig::default());
    let (mut first, _) = Client::connect_with(&broker, persistent(V5, "dup", 3600)).await;
    first.subscribe("t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher
        .publish("t", b"unacked", QoS::AtLeastOnce, false)
        .await;
    let p = first.expect_publish().await; // received, never acknowledged
    assert!(!p.dup);

    let (mut second, ack) = Client::connect_with(&broker, persistent(V5, "dup", 3600)).await;
    assert!(ack.session_present);
    let disconnect = first
        .expect_close()
        .await
        .expect("DISCONNECT to the old connection");
    assert_eq!(disconnect.reason_code, ReasonCode::SessionTakenOver);
    let resent = second.expect_publish().await;
    assert_eq!(resent.qos, p.qos, "same packet identifier");
    assert!(resent.dup);
    assert_eq!(resent.payload(), p.payload());
    second.ack(&resent).await;
    assert_eq!(broker.metrics().takeovers, 1);
}

#[tokio::test(start_paused = true)]
async fn v3_retries_unacknowledged_messages_after_the_retry_interval() {
    let config = MqttConfig {
        retry_interval: Duration::from_secs(20),
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let mut sub = Client::connect(&broker, V3_1_1, "sub").await;
    sub.subscribe("t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V3_1_1, "pub").await;
    publisher.publish("t", b"x", QoS::AtLeastOnce, false).await;
    let first = sub.expect_publish().await;
    assert!(sub.try_recv(Duration::from_secs(19)).await.is_none());
    let again = sub.expect_publish().await;
    assert!(again.dup);
    assert_eq!(again.qos, first.qos);
    sub.ack(&again).await;
    assert!(sub.try_recv(Duration::from_secs(60)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn offline_queue_is_bounded_and_drops_the_oldest() {
    let config = MqttConfig {
        max_mqueue_len: 5,
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("q", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for i in 0..10u8 {
        publisher.publish("q", &[i], QoS::AtLeastOnce, false).await;
    }
    let (mut sub, ack) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    assert!(ack.session_present);
    for i in 5..10u8 {
        let p = sub.expect_publish().await;
        assert_eq!(p.payload(), &[i]);
        sub.ack(&p).await;
    }
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
    assert_eq!(broker.metrics().dropped_queue_full, 5);
}

#[tokio::test(start_paused = true)]
async fn drop_newest_keeps_the_first_messages() {
    let config = MqttConfig {
        max_mqueue_len: 3,
        mqueue_drop: DropPolicy::DropNewest,
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("q", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for i in 0..6u8 {
        publisher.publish("q", &[i], QoS::AtLeastOnce, false).await;
    }
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    for i in 0..3u8 {
        let p = sub.expect_publish().await;
        assert_eq!(p.payload(), &[i]);
        sub.ack(&p).await;
    }
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
}

/// The seed scenario, in the core: a persistent MQTT 5 subscriber leaves; 1,000 QoS 1 and 2
/// messages arrive; it returns with a smaller receive maximum and maximum packet size. Every
/// message that fits arrives after CONNACK, in order, once; the others are dropped and
/// counted.
#[tokio::test(start_paused = true)]
async fn offline_messages_resume_under_the_new_connections_limits() {
    let broker = broker(MqttConfig::default());
    let mut c = persistent(V5, "seed", 3600);
    c.properties.receive_maximum = NonZeroU16::new(100);
    let (mut sub, _) = Client::connect_with(&broker, c).await;
    sub.subscribe("seed/q1", QoS::AtLeastOnce).await;
    sub.subscribe("seed/q2", QoS::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publisher = Client::connect(&broker, V5, "pub").await;
    let mut expected = Vec::new();
    let mut oversize = 0;
    for i in 0..1000u32 {
        let (t, qos) = if i % 2 == 0 {
            ("seed/q1", QoS::AtLeastOnce)
        } else {
            ("seed/q2", QoS::ExactlyOnce)
        };
        // Every 10th message is too large for the returning client's limit of 256 bytes.
        let len = if i % 10 == 9 { 400 } else { 20 };
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(len, b'.');
        publisher.publish(t, &payload, qos, false).await;
        if len == 400 {
            oversize += 1;
        } else {
            expected.push((i, qos));
        }
    }

    let mut c = persistent(V5, "seed", 3600);
    c.properties.receive_maximum = NonZeroU16::new(5);
    c.properties.maximum_packet_size = NonZeroU32::new(256);
    let (mut sub, ack) = Client::connect_with(&broker, c).await;
    assert!(ack.session_present);
    // Acknowledge as packets come: PUBACK for QoS 1, PUBREC then (on PUBREL) PUBCOMP for 2.
    let mut received = Vec::new();
    let mut awaiting_pubrel = 0;
    while received.len() < expected.len() || awaiting_pubrel > 0 {
        match sub.recv().await {
            Some(Packet::Publish(p)) => {
                assert!(!p.dup, "sent twice");
                received.push((
                    u32::from_be_bytes(p.payload()[..4].try_into().unwrap()),
                    p.qos.qos(),
                ));
                match p.qos {
                    PublishQoS::AtLeastOnce(id) => sub.send(Packet::PubAck(Ack::new(id))).await,
                    PublishQoS::ExactlyOnce(id) => {
                        awaiting_pubrel += 1;
                        sub.send(Packet::PubRec(Ack::new(id))).await;
                    }
                    PublishQoS::AtMostOnce => panic!("QoS 0 delivery"),
                }
            }
            Some(Packet::PubRel(rel)) => {
                awaiting_pubrel -= 1;
                sub.send(Packet::PubComp(Ack::new(rel.packet_id))).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        received, expected,
        "every message that fits, in order, once"
    );
    assert!(
        sub.try_recv(Duration::from_secs(2)).await.is_none(),
        "extra messages"
    );
    assert_eq!(broker.metrics().dropped_too_large, oversize);
}

#[tokio::test(start_paused = true)]
async fn the_receive_maximum_bounds_messages_in_flight() {
    let broker = broker(MqttConfig::default());
    let mut c = connect_packet(V5, "slow");
    c.properties.receive_maximum = NonZeroU16::new(3);
    let (mut slow, _) = Client::connect_with(&broker, c).await;
    slow.subscribe("t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for i in 0..10u8 {
        publisher.publish("t", &[i], QoS::AtLeastOnce, false).await;
    }
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(slow.expect_publish().await);
    }
    assert!(
        slow.try_recv(Duration::from_secs(1)).await.is_none(),
        "window exceeded"
    );
    slow.ack(&held[0]).await;
    assert_eq!(slow.expect_publish().await.payload(), &[3]);
}

#[tokio::test(start_paused = true)]
async fn inbound_qos2_duplicates_are_not_delivered_twice() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("t", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    let mut p = Publish::new(topic("t"), Bytes::from_static(b"once"));
    p.qos = PublishQoS::ExactlyOnce(pid(7));
    publisher.send(Packet::Publish(p.clone())).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
    p.dup = true;
    publisher.send(Packet::Publish(p)).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
    publisher.send(Packet::PubRel(Ack::new(pid(7)))).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubComp(_))));
    let got = sub.expect_publish().await;
    sub.ack(&got).await;
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_brokers_receive_maximum_is_a_protocol_error() {
    let config = MqttConfig {
        max_inflight: 2,
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for id in 1..=3 {
        let mut p = Publish::new(topic("t"), Bytes::new());
        p.qos = PublishQoS::ExactlyOnce(pid(id));
        publisher.send(Packet::Publish(p)).await;
    }
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
    let d = publisher.expect_close().await.unwrap();
    assert_eq!(d.reason_code, ReasonCode::ReceiveMaximumExceeded);
}

#[tokio::test(start_paused = true)]
async fn topic_aliases_work_both_ways() {
    let broker = broker(MqttConfig::default());
    let mut c = connect_packet(V5, "sub");
    c.properties.topic_alias_maximum = Some(5);
    let (mut sub, _) = Client::connect_with(&broker, c).await;
    sub.subscribe("long/topic/name", QoS::AtMostOnce).await;
    let (mut publisher, ack) = Client::connect_with(&broker, connect_packet(V5, "pub")).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(64));

    // Inbound: set alias 1, then use it with an empty topic.
    let mut p = Publish::new(topic("long/topic/name"), Bytes::from_static(b"1"));
    p.properties_mut().topic_alias = NonZeroU16::new(1);
    publisher.send(Packet::Publish(p)).await;
    let mut p = Publish::new(TopicName::empty(), Bytes::from_static(b"2"));
    p.properties_mut().topic_alias = NonZeroU16::new(1);
    publisher.send(Packet::Publish(p)).await;

    // Outbound: the first delivery names the topic and an alias, the second only the alias.
    let first = sub.expect_publish().await;
    assert_eq!(first.topic(), "long/topic/name");
    let alias = first.properties().topic_alias.expect("alias set up");
    let second = sub.expect_publish().await;
    assert!(second.topic().is_empty());
    assert_eq!(second.properties().topic_alias, Some(alias));
    assert_eq!(second.payload(), b"2");

    // An alias never set up is a protocol error.
    let mut p = Publish::new(TopicName::empty(), Bytes::new());
    p.properties_mut().topic_alias = NonZeroU16::new(2);
    publisher.send(Packet::Publish(p)).await;
    assert_eq!(
        publisher.expect_close().await.unwrap().reason_code,
        ReasonCode::ProtocolError
    );
}

#[tokio::test(start_paused = true)]
async fn shared_subscriptions_take_turns() {
    let broker = broker(MqttConfig::default());
    let mut a = Client::connect(&broker, V5, "a").await;
    let mut b = Client::connect(&broker, V5, "b").await;
    a.subscribe("$share/g/jobs/+", QoS::AtLeastOnce).await;
    b.subscribe("$share/g/jobs/+", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for i in 0..10u8 {
        publisher
            .publish("jobs/x", &[i], QoS::AtLeastOnce, false)
            .await;
    }
    let mut seen = Vec::new();
    for client in [&mut a, &mut b] {
        for _ in 0..5 {
            let p = client.expect_publish().await;
            seen.push(p.payload()[0]);
            client.ack(&p).await;
        }
        assert!(client.try_recv(Duration::from_secs(1)).await.is_none());
    }
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<u8>>());
}

#[tokio::test(start_paused = true)]
async fn message_expiry_drops_queued_messages_and_forwards_the_remaining_interval() {
    let broker = broker(MqttConfig::default());
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("t", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for (payload, expiry) in [(b"short", 5), (b"long_", 100)] {
        let mut p = Publish::new(topic("t"), Bytes::from_static(payload));
        p.qos = PublishQoS::AtLeastOnce(publisher.next_pid());
        p.properties_mut().message_expiry_interval = Some(expiry);
        publisher.publish_packet(p).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    let p = sub.expect_publish().await;
    assert_eq!(p.payload(), b"long_");
    assert_eq!(p.properties().message_expiry_interval, Some(90));
    sub.ack(&p).await;
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn properties_pass_through_in_order() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("rpc", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    let mut p = Publish::new(topic("rpc"), Bytes::from_static(b"{}"));
    p.properties_mut().payload_format_indicator = Some(PayloadFormat::Utf8);
    p.properties_mut().content_type = Some(ByteString::from("application/json"));
    p.properties_mut().response_topic = Some(topic("rpc/reply"));
    p.properties_mut().correlation_data = Some(Bytes::from_static(b"42"));
    p.properties_mut().user_properties = vec![
        UserProperty::new("b", "1"),
        UserProperty::new("a", "2"),
        UserProperty::new("b", "3"),
    ];
    publisher.send(Packet::Publish(p.clone())).await;
    let got = sub.expect_publish().await;
    assert_eq!(
        got.properties().payload_format_indicator,
        p.properties().payload_format_indicator
    );
    assert_eq!(got.properties().content_type, p.properties().content_type);
    assert_eq!(
        got.properties().response_topic,
        p.properties().response_topic
    );
    assert_eq!(
        got.properties().correlation_data,
        p.properties().correlation_data
    );
    assert_eq!(
        got.properties().user_properties,
        p.properties().user_properties
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_packets_close_only_their_connection() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("t", QoS::AtMostOnce).await;
    let mut bad = Client::connect(&broker, V5, "bad").await;
    bad.send_raw(&[0x30, 0x03, 0x00, 0x01, b'#']).await; // wildcard in a topic name
    assert_eq!(
        bad.expect_close().await.unwrap().reason_code,
        ReasonCode::TopicNameInvalid
    );
    let mut bad = Client::connect(&broker, V5, "bad2").await;
    bad.send_raw(&[0x00, 0x00]).await;
    assert_eq!(
        bad.expect_close().await.unwrap().reason_code,
        ReasonCode::MalformedPacket
    );
    let mut bad = Client::connect(&broker, V5, "bad3").await;
    bad.send(Packet::Connect(Box::new(connect_packet(V5, "again"))))
        .await;
    assert_eq!(
        bad.expect_close().await.unwrap().reason_code,
        ReasonCode::ProtocolError
    );

    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher
        .publish("t", b"still here", QoS::AtMostOnce, false)
        .await;
    assert_eq!(sub.expect_publish().await.payload(), b"still here");
    assert_eq!(broker.metrics().protocol_errors, 3);
}

#[tokio::test(start_paused = true)]
async fn packets_before_connect_and_silent_clients_are_dropped() {
    let config = MqttConfig {
        connect_timeout: Duration::from_secs(5),
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let mut early = Client::open(&broker, V3_1_1);
    early.send(Packet::PingReq).await;
    assert_eq!(early.recv().await, None);
    let mut silent = Client::open(&broker, V3_1_1);
    let start = tokio::time::Instant::now();
    assert_eq!(silent.recv().await, None);
    assert!(start.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn connack_codes_for_refused_connections() {
    let broker = broker(MqttConfig::default());
    // 3.1.1 empty client id with a persistent session: identifier rejected (2).
    let mut c = connect_packet(V3_1_1, "");
    c.clean_start = false;
    let (_, ack) = Client::connect_with(&broker, c).await;
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    // 5.0 empty client id: one is assigned.
    let (_, ack) = Client::connect_with(&broker, connect_packet(V5, "")).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(
        ack.properties
            .assigned_client_identifier
            .is_some_and(|id| !id.is_empty())
    );
    // An authentication method with none configured: 0x8C.
    let mut c = connect_packet(V5, "auth");
    c.properties.authentication_method = Some(ByteString::from("SCRAM-SHA-1"));
    let (_, ack) = Client::connect_with(&broker, c).await;
    assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod);
    // An unsupported protocol level: 3.1.1 return code 1.
    let mut raw = Client::open(&broker, V3_1_1);
    raw.send_raw(&[0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 9, 2, 0, 0, 0, 0])
        .await;
    match raw.recv().await {
        Some(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_0x8b_to_v5_clients() {
    let broker = broker(MqttConfig::default());
    let mut v5 = Client::connect(&broker, V5, "five").await;
    let mut v3 = Client::connect(&broker, V3_1_1, "three").await;
    let stopping = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.shutdown().await })
    };
    assert_eq!(
        v5.expect_close().await.unwrap().reason_code,
        ReasonCode::ServerShuttingDown
    );
    assert_eq!(v3.expect_close().await, None);
    stopping.await.unwrap();
    assert_eq!(broker.metrics().connections, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_clients_that_never_connected() {
    let broker = broker(MqttConfig::default());
    let mut silent = Client::open(&broker, V3_1_1);
    settle().await;
    let start = tokio::time::Instant::now();
    broker.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        start.elapsed()
    );
    assert_eq!(silent.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn unacknowledged_messages_too_large_for_the_new_connection_are_dropped_in_place() {
    let broker = broker(MqttConfig::default());
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for (i, len) in [(1u8, 20), (2, 400), (3, 20)] {
        publisher
            .publish("t", &vec![i; len], QoS::AtLeastOnce, false)
            .await;
    }
    for _ in 0..3 {
        sub.expect_publish().await; // never acknowledged
    }
    sub.drop_abruptly();
    let mut c = persistent(V5, "sub", 3600);
    c.properties.maximum_packet_size = NonZeroU32::new(256);
    let (mut sub, _) = Client::connect_with(&broker, c).await;
    for i in [1u8, 3] {
        let p = sub.expect_publish().await;
        assert!(p.dup);
        assert_eq!(p.payload()[0], i);
        sub.ack(&p).await;
    }
    assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
    assert_eq!(broker.metrics().dropped_too_large, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_gets_everything_queued_beyond_one_write_batch() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "slow").await;
    sub.subscribe("big", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    let payload = vec![7u8; 16 * 1024];
    for _ in 0..400 {
        publisher
            .publish("big", &payload, QoS::AtMostOnce, false)
            .await;
    }
    // Only now does the subscriber read: several write batches are waiting for it.
    for i in 0..400 {
        let p = sub.try_recv(Duration::from_secs(5)).await;
        assert!(
            matches!(p, Some(Packet::Publish(_))),
            "message {i} of 400 missing"
        );
    }
}
