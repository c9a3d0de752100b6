//! The counters the exposition and `$SYS` read: packets and bytes each way, messages by QoS,
//! drops by reason, what the subscription index holds, the store's writer, the broker's own
//! messages (`publish_system`) and the client events hook. Exact values where the protocol
//! makes them exact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::{Arc, Mutex};

use broker_core::{Broker, ClientEvents, ConnParam, MemoryStore, Message, MqttConfig, SyncPolicy};
use bytes::Bytes;
use mqtt_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::{Client, broker, connect_packet, settle, topic};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test(start_paused = true)]
async fn packets_and_bytes_are_counted_each_way() {
    let broker = broker(MqttConfig::default());
    let connect = connect_packet(V3, "counted");
    let connect_len = Packet::Connect(Box::new(connect.clone()))
        .encoded_len(V3)
        .unwrap() as u64;
    let (mut client, _) = Client::connect_with(&broker, connect).await;
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Some(Packet::PingResp));
    client.disconnect().await;
    settle().await;
    let m = broker.metrics();
    // CONNECT, PINGREQ, DISCONNECT in; CONNACK (4 bytes), PINGRESP (2) out.
    assert_eq!(m.packets_received, 3);
    assert_eq!(m.bytes_received, connect_len + 2 + 2);
    assert_eq!(m.packets_sent, 2);
    assert_eq!(m.bytes_sent, 6);
    assert_eq!(m.sockets_total, 1);
    assert_eq!(
        (m.connections, m.connections_max, m.connections_total),
        (0, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn messages_are_counted_by_qos_and_drops_by_reason() {
    let broker = broker(MqttConfig::default());
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("t", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        publisher.publish("t", b"x", qos, false).await;
        let p = sub.expect_publish().await;
        sub.ack(&p).await;
    }
    // Nobody subscribes to these: one dropped; the retained one is kept, not dropped.
    publisher
        .publish("nobody", b"x", QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish("nobody/r", b"x", QoS::AtMostOnce, true)
        .await;
    // Nothing under $SYS is a client's: refused, counted as an access-control drop.
    publisher
        .publish("$SYS/mine", b"x", QoS::AtLeastOnce, false)
        .await;
    settle().await;
    let m = broker.metrics();
    assert_eq!(m.received_by_qos, [2, 2, 1]);
    assert_eq!(m.messages_received, 5);
    assert_eq!(m.sent_by_qos, [1, 1, 1]);
    assert_eq!(m.messages_sent, 3);
    assert_eq!(m.dropped_no_subscribers, 1);
    assert_eq!(m.dropped_acl, 1);
    assert_eq!(m.retained_messages, 1);
    assert_eq!(m.dropped(), 2);
    assert_eq!((m.connections, m.connections_max), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn the_index_counts_subscriptions_shared_ones_and_distinct_filters() {
    let broker = broker(MqttConfig::default());
    let mut a = Client::connect(&broker, V5, "a").await;
    let mut b = Client::connect(&broker, V5, "b").await;
    a.subscribe("x/+", QoS::AtMostOnce).await;
    b.subscribe("x/+", QoS::AtLeastOnce).await;
    // The same subscription again replaces it: still one.
    b.subscribe("x/+", QoS::AtMostOnce).await;
    a.subscribe("$share/g/x/+", QoS::AtMostOnce).await;
    b.subscribe("$share/g/y", QoS::AtMostOnce).await;
    let counts =
        |m: broker_core::MetricsSnapshot| (m.subscriptions, m.shared_subscriptions, m.topics);
    assert_eq!(counts(broker.metrics()), (4, 2, 2));
    // Sessions that end take their subscriptions with them.
    b.disconnect().await;
    settle().await;
    assert_eq!(counts(broker.metrics()), (2, 1, 1));
    a.disconnect().await;
    settle().await;
    assert_eq!(counts(broker.metrics()), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_broker_s_own_messages_are_routed_retained_and_not_counted_as_received() {
    let broker = broker(MqttConfig::default());
    let mut early = Client::connect(&broker, V5, "early").await;
    early.subscribe("$SYS/#", QoS::AtLeastOnce).await;
    let message = Message::new(
        topic("$SYS/broker/uptime"),
        Bytes::from_static(b"5 seconds"),
        QoS::AtLeastOnce,
        true,
        None,
    );
    broker.publish_system(message.clone());
    // Nobody subscribes here: not a drop, the broker published it.
    broker.publish_system(Message::new(
        topic("elsewhere"),
        Bytes::from_static(b"1"),
        QoS::AtMostOnce,
        false,
        None,
    ));
    let p = early.expect_publish().await;
    assert_eq!(p.topic(), "$SYS/broker/uptime");
    assert_eq!(p.payload(), b"5 seconds");
    early.ack(&p).await;
    let mut late = Client::connect(&broker, V5, "late").await;
    late.subscribe("$SYS/broker/+", QoS::AtMostOnce).await;
    let retained = late.expect_publish().await;
    assert!(retained.retain);
    assert_eq!(retained.payload(), b"5 seconds");
    settle().await;
    let m = broker.metrics();
    assert_eq!(m.messages_received, 0);
    assert_eq!(m.dropped_no_subscribers, 0);
    assert_eq!(m.sent_by_qos, [1, 1, 0]);
}

/// Records what the hook is told.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl ClientEvents for Recorder {
    fn connected(&self, _: &Broker, client: &ConnParam) {
        self.0
            .lock()
            .unwrap()
            .push(format!("+{}", client.client_id));
    }

    fn disconnected(&self, _: &Broker, client: &ConnParam, reason: ReasonCode) {
        self.0
            .lock()
            .unwrap()
            .push(format!("-{} {:#04x}", client.client_id, u8::from(reason)));
    }
}

#[tokio::test(start_paused = true)]
async fn the_client_events_hook_hears_every_connect_and_disconnect() {
    let broker = broker(MqttConfig::default());
    let recorder = Arc::new(Recorder::default());
    broker.set_client_events(Some(Arc::clone(&recorder) as Arc<dyn ClientEvents>));
    let polite = Client::connect(&broker, V5, "polite").await;
    polite.disconnect().await;
    let rude = Client::connect(&broker, V3, "rude").await;
    rude.drop_abruptly();
    settle().await;
    broker.set_client_events(None);
    let quiet = Client::connect(&broker, V5, "quiet").await;
    quiet.disconnect().await;
    settle().await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        ["+polite", "-polite 0x00", "+rude", "-rude 0x80"]
    );
}

// Real time: the store's writer is a thread.
#[tokio::test]
async fn the_store_writer_reports_its_batches_and_their_latency() {
    let broker = Broker::builder(MqttConfig::default())
        .store(MemoryStore::new(), SyncPolicy::Always)
        .build()
        .unwrap();
    assert_eq!(broker.metrics().store.unwrap().batches, 0);
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    // Acknowledged once durable (sync = always): the batch is written by then.
    publisher
        .publish("r", b"kept", QoS::AtLeastOnce, true)
        .await;
    let store = broker.metrics().store.unwrap();
    assert!(store.batches >= 1, "{store:?}");
    assert!(store.changes >= 1, "{store:?}");
    assert_eq!(store.pending, 0);
    assert_eq!(store.write_errors, 0);
    assert_eq!(store.commit.count, store.batches);
    assert_eq!(store.commit.cumulative.last().copied(), Some(store.batches));
    assert_eq!(
        broker_core::Broker::new(MqttConfig::default())
            .metrics()
            .store,
        None
    );
}
