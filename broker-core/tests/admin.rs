//! The operator's view and levers (the admin API's core): sessions with their connections,
//! subscriptions, kicking a client, subscribing and unsubscribing on a client's behalf.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use broker_core::{AdminError, Kick, MqttConfig, SessionExpiry, TransportKind};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

fn persistent(version: ProtocolVersion, id: &str) -> Connect {
    let mut connect = connect_packet(version, id);
    connect.clean_start = false;
    connect.keep_alive = 30;
    if version.is_v5() {
        connect.properties.session_expiry_interval = Some(3600);
    }
    connect.username = Some("alice".into());
    connect.password = Some(Bytes::from_static(b"pw"));
    connect
}

#[tokio::test(start_paused = true)]
async fn clients_show_their_connection_and_session_connected_or_not() {
    let broker = broker(MqttConfig::default());
    let (mut a, _) = Client::connect_with(&broker, persistent(V5, "a")).await;
    a.subscribe("x/#", QoS::AtLeastOnce).await;
    let (b, _) = Client::connect_with(&broker, persistent(V3_1_1, "b")).await;
    b.disconnect().await;
    settle().await;

    let clients = broker.clients();
    assert_eq!(clients.len(), 2);
    let (a_info, b_info) = (&clients[0], &clients[1]);
    assert_eq!(a_info.client_id.as_str(), "a");
    assert!(a_info.connected);
    assert_eq!(a_info.subscriptions, 1);
    assert_eq!(
        a_info.session_expiry,
        SessionExpiry::After(Duration::from_secs(3600))
    );
    let conn = a_info.connection.as_ref().unwrap();
    assert_eq!(conn.username.as_deref(), Some("alice"));
    assert_eq!(conn.version, V5);
    assert_eq!(conn.keep_alive, 30);
    assert!(!conn.clean_start);
    assert_eq!(conn.transport, TransportKind::Memory);
    assert_eq!(conn.disconnected_at, None);

    assert_eq!(b_info.client_id.as_str(), "b");
    assert!(!b_info.connected);
    let conn = b_info.connection.as_ref().unwrap();
    assert_eq!(conn.version, V3_1_1);
    assert!(conn.disconnected_at.is_some());

    // Messages queue for the one away, and the operator sees them.
    let mut c = Client::connect(&broker, V5, "c").await;
    c.subscribe("x/#", QoS::AtLeastOnce).await;
    let (mut b, _) = Client::connect_with(&broker, persistent(V3_1_1, "b")).await;
    b.subscribe("x/#", QoS::AtLeastOnce).await;
    b.disconnect().await;
    settle().await;
    c.publish("x/1", b"m", QoS::AtLeastOnce, false).await;
    settle().await;
    let b_now = broker.client("b").unwrap();
    assert_eq!(b_now.summary.queued, 1);
    assert_eq!(b_now.subscriptions.len(), 1);
    assert_eq!(b_now.subscriptions[0].filter.as_str(), "x/#");
    assert_eq!(b_now.subscriptions[0].options.qos, QoS::AtLeastOnce);
    assert_eq!(broker.subscriptions().len(), 3);
    assert!(broker.client("nobody").is_none());
    drop(a.expect_publish().await);
}

#[tokio::test(start_paused = true)]
async fn a_kicked_client_is_told_why_its_will_goes_out_and_an_absent_one_loses_its_session() {
    let broker = broker(MqttConfig::default());
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;

    let mut connect = persistent(V5, "victim");
    connect.will = Some(LastWill {
        topic: topic("wills/victim"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let (mut victim, _) = Client::connect_with(&broker, connect).await;
    assert_eq!(broker.kick("victim"), Kick::Disconnected);
    let disconnect = victim.expect_close().await.unwrap();
    assert_eq!(disconnect.reason_code, ReasonCode::AdministrativeAction);
    let will = watcher.expect_publish().await;
    assert_eq!(will.payload(), b"gone");
    settle().await;

    // Away now, with a persistent session: kicking again removes it.
    assert!(broker.client("victim").is_some());
    assert_eq!(broker.kick("victim"), Kick::SessionRemoved);
    assert!(broker.client("victim").is_none());
    assert_eq!(broker.kick("victim"), Kick::NotFound);
}

#[tokio::test(start_paused = true)]
async fn an_operator_subscribes_and_unsubscribes_for_a_client() {
    let broker = broker(MqttConfig::default());
    let mut publisher = Client::connect(&broker, V5, "publisher").await;
    publisher
        .publish("news/old", b"retained", QoS::AtLeastOnce, true)
        .await;
    let mut reader = Client::connect(&broker, V5, "reader").await;

    let options = SubscriptionOptions::new(QoS::AtLeastOnce);
    assert_eq!(
        broker.subscribe_for("reader", filter("news/#"), options),
        Ok(true)
    );
    // The retained message first, as at a SUBSCRIBE; then what is published.
    let p = reader.expect_publish().await;
    assert_eq!((p.topic(), p.retain), ("news/old", true));
    reader.ack(&p).await;
    publisher
        .publish("news/new", b"fresh", QoS::AtLeastOnce, false)
        .await;
    let p = reader.expect_publish().await;
    assert_eq!(p.payload(), b"fresh");
    reader.ack(&p).await;

    assert_eq!(
        broker.unsubscribe_for("reader", &filter("news/#")),
        Ok(true)
    );
    assert_eq!(
        broker.unsubscribe_for("reader", &filter("news/#")),
        Ok(false)
    );
    publisher
        .publish("news/later", b"x", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(reader.try_recv(Duration::from_millis(200)).await, None);

    assert_eq!(
        broker.subscribe_for("nobody", filter("a"), options),
        Err(AdminError::NoSuchClient)
    );
    let deep = vec!["a"; 1000].join("/");
    assert_eq!(
        broker.subscribe_for("reader", filter(&deep), options),
        Err(AdminError::FilterTooLarge)
    );
}

#[tokio::test(start_paused = true)]
async fn the_retained_messages_are_listed_in_topic_order_a_page_at_a_time() {
    let broker = broker(MqttConfig::default());
    let mut publisher = Client::connect(&broker, V5, "publisher").await;
    for (topic, payload) in [("b/1", "one"), ("a", "root"), ("a/x", "ax"), ("c", "gone")] {
        publisher
            .publish(topic, payload.as_bytes(), QoS::AtLeastOnce, true)
            .await;
    }
    publisher
        .publish("not/retained", b"x", QoS::AtLeastOnce, false)
        .await;
    // An empty retained message clears the topic's.
    publisher.publish("c", b"", QoS::AtLeastOnce, true).await;
    settle().await;

    let listed = |skip, limit| -> Vec<(String, Vec<u8>)> {
        broker
            .retained_messages(skip, limit)
            .iter()
            .map(|m| (m.topic.to_string(), m.payload.to_vec()))
            .collect()
    };
    let all = listed(0, 10);
    assert_eq!(
        all,
        [
            ("a".to_owned(), b"root".to_vec()),
            ("a/x".to_owned(), b"ax".to_vec()),
            ("b/1".to_owned(), b"one".to_vec()),
        ]
    );
    assert_eq!(broker.retained_count(), 3);
    assert_eq!(listed(1, 1), all[1..2]);
    assert!(listed(3, 10).is_empty());
    assert_eq!(broker.retained_messages(0, 10)[0].qos, QoS::AtLeastOnce);
}
