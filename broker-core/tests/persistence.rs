//! Durable sessions through the `Store` trait, with `MemoryStore` standing in for the disk:
//! a broker is stopped and a new one built on the same store, and what persistent sessions
//! held must be there (subscriptions, queued and in-flight messages with their packet
//! identifiers, inbound QoS 2 identifiers, retained messages, delayed wills). Also: what the
//! store holds after sessions end, and that `sync = "always"` holds acknowledgements until
//! the store has the message.
//!
//! These run in real time: the store's writer is a thread, and paused time would jump over
//! timers while a test waits for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use broker_core::{
    Broker, DeliveryState, MemoryStore, MqttConfig, Snapshot, Store, StoreError, StoreOp,
    StoredDelivery, SyncPolicy,
};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

const ALWAYS: SyncPolicy = SyncPolicy::Always;

fn start(store: &MemoryStore, sync: SyncPolicy) -> Arc<Broker> {
    Broker::builder(MqttConfig::default())
        .store(store.clone(), sync)
        .build()
        .unwrap()
}

async fn restart(broker: Arc<Broker>, store: &MemoryStore) -> Arc<Broker> {
    broker.shutdown().await;
    drop(broker);
    start(store, ALWAYS)
}

fn persistent(version: ProtocolVersion, id: &str, expiry: u32) -> Connect {
    let mut c = connect_packet(version, id);
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(expiry);
    }
    c
}

/// Waits until the store's contents satisfy `check` (the writer runs on its own thread).
async fn stored(store: &MemoryStore, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    for _ in 0..200 {
        let snapshot = store.snapshot();
        if check(&snapshot) {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the store never reached the expected state: {:?}",
        store.snapshot()
    );
}

#[tokio::test]
async fn a_restart_keeps_sessions_subscriptions_queued_messages_and_retained_messages() {
    let store = MemoryStore::new();
    for version in [V3_1_1, V5] {
        let broker = start(&store, ALWAYS);
        let (mut sub, ack) = Client::connect_with(&broker, persistent(version, "sub", 3600)).await;
        assert!(!ack.session_present);
        sub.subscribe("t/#", QoS::ExactlyOnce).await;
        sub.disconnect().await;
        let mut publisher = Client::connect(&broker, version, "pub").await;
        for i in 0..10u8 {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            publisher.publish("t/a", &[i], qos, false).await;
        }
        publisher
            .publish("r/1", b"kept", QoS::AtLeastOnce, true)
            .await;
        // Not stored: QoS 0 for an offline session.
        publisher
            .publish("t/a", b"q0", QoS::AtMostOnce, false)
            .await;
        publisher.disconnect().await;

        let broker = restart(broker, &store).await;
        let (mut sub, ack) = Client::connect_with(&broker, persistent(version, "sub", 3600)).await;
        assert!(ack.session_present, "{version}: the session survives");
        let mut received = Vec::new();
        for i in 0..10u8 {
            let p = sub.expect_publish().await;
            assert_eq!(p.payload(), Bytes::from(vec![i]), "{version}: in order");
            assert!(!p.dup, "never sent before the restart");
            received.push(p);
        }
        for p in &received {
            sub.ack(p).await;
        }
        assert!(sub.try_recv(Duration::from_millis(100)).await.is_none());
        // The subscription survived: new messages arrive without subscribing again.
        let mut publisher = Client::connect(&broker, version, "pub").await;
        publisher
            .publish("t/b", b"new", QoS::AtLeastOnce, false)
            .await;
        let p = sub.expect_publish().await;
        assert_eq!(p.payload(), Bytes::from_static(b"new"));
        sub.ack(&p).await;
        // So did the retained message.
        let mut other = Client::connect(&broker, version, "other").await;
        other.subscribe("r/#", QoS::AtLeastOnce).await;
        let p = other.expect_publish().await;
        assert!(p.retain);
        assert_eq!(p.payload(), Bytes::from_static(b"kept"));
        // Clear it for the next version's round.
        publisher.publish("r/1", b"", QoS::AtLeastOnce, true).await;
        publisher.disconnect().await;
        other.disconnect().await;
        // A clean start ends the stored session.
        let (sub2, ack) = Client::connect_with(&broker, connect_packet(version, "sub")).await;
        assert!(!ack.session_present);
        drop(sub);
        sub2.disconnect().await;
        broker.shutdown().await;
        drop(broker);
        let snapshot = store.snapshot();
        assert!(snapshot.sessions.is_empty(), "{:?}", snapshot.sessions);
        assert!(snapshot.retained.is_empty());
    }
}

#[tokio::test]
async fn in_flight_messages_are_resent_with_their_packet_ids_after_a_restart() {
    let store = MemoryStore::new();
    let broker = start(&store, ALWAYS);
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("t", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher.publish("t", b"1", QoS::AtLeastOnce, false).await;
    publisher.publish("t", b"2", QoS::ExactlyOnce, false).await;
    publisher.publish("t", b"3", QoS::ExactlyOnce, false).await;
    publisher.publish("t", b"4", QoS::AtLeastOnce, false).await;
    let first = sub.expect_publish().await;
    let second = sub.expect_publish().await;
    let third = sub.expect_publish().await;
    let fourth = sub.expect_publish().await;
    // 1: not acknowledged. 2: PUBREC sent, so the broker has moved on to PUBREL.
    // 3: not acknowledged. 4: acknowledged, done.
    let PublishQoS::ExactlyOnce(second_id) = second.qos else {
        panic!("{second:?}")
    };
    sub.send(Packet::PubRec(Ack::new(second_id))).await;
    match sub.recv().await {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, second_id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.ack(&fourth).await;
    stored(&store, |s| {
        s.sessions.iter().any(|s| {
            s.deliveries.len() == 3
                && s.deliveries
                    .iter()
                    .any(|d| d.state == DeliveryState::AwaitingPubComp(second_id))
        })
    })
    .await;
    sub.drop_abruptly();
    publisher.disconnect().await;

    let broker = restart(broker, &store).await;
    let (mut sub, ack) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    assert!(ack.session_present);
    let again = sub.expect_publish().await;
    assert!(again.dup);
    assert_eq!(again.qos, first.qos, "same packet identifier");
    assert_eq!(again.payload(), first.payload());
    match sub.recv().await {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, second_id),
        other => panic!("expected PUBREL for the PUBREC'd message, got {other:?}"),
    }
    let again3 = sub.expect_publish().await;
    assert!(again3.dup);
    assert_eq!(again3.qos, third.qos);
    assert_eq!(again3.payload(), third.payload());
    sub.ack(&again).await;
    sub.send(Packet::PubComp(Ack::new(second_id))).await;
    sub.ack(&again3).await;
    assert!(sub.try_recv(Duration::from_millis(100)).await.is_none());
    stored(&store, |s| {
        s.sessions.iter().all(|s| s.deliveries.is_empty())
    })
    .await;
    sub.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn an_inbound_qos2_message_is_not_routed_twice_across_a_restart() {
    let store = MemoryStore::new();
    let broker = start(&store, ALWAYS);
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("t", QoS::AtMostOnce).await;
    let (mut publisher, _) = Client::connect_with(&broker, persistent(V5, "pub", 3600)).await;
    let mut p = Publish::new(topic("t"), Bytes::from_static(b"once"));
    p.qos = PublishQoS::ExactlyOnce(pid(7));
    publisher.send(Packet::Publish(p.clone())).await;
    match publisher.recv().await {
        Some(Packet::PubRec(ack)) => assert_eq!(ack.packet_id, pid(7)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    assert_eq!(sub.expect_publish().await.payload(), p.payload());
    publisher.drop_abruptly();
    sub.disconnect().await;

    let broker = restart(broker, &store).await;
    let mut sub = Client::connect(&broker, V5, "sub").await;
    sub.subscribe("t", QoS::AtMostOnce).await;
    let (mut publisher, ack) = Client::connect_with(&broker, persistent(V5, "pub", 3600)).await;
    assert!(ack.session_present);
    // The publisher did not get PUBCOMP, so it sends the PUBLISH again.
    p.dup = true;
    publisher.send(Packet::Publish(p)).await;
    match publisher.recv().await {
        Some(Packet::PubRec(ack)) => assert_eq!(ack.packet_id, pid(7)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publisher.send(Packet::PubRel(Ack::new(pid(7)))).await;
    match publisher.recv().await {
        Some(Packet::PubComp(ack)) => {
            assert_eq!(
                ack.reason_code,
                ReasonCode::Success,
                "the identifier was known"
            )
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    assert!(
        sub.try_recv(Duration::from_millis(100)).await.is_none(),
        "delivered once only"
    );
    publisher.disconnect().await;
    sub.disconnect().await;
    broker.shutdown().await;
}

/// A store whose writes wait for the test to let them through.
#[derive(Clone)]
struct GatedStore {
    inner: MemoryStore,
    open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl GatedStore {
    fn set_open(&self, open: bool) {
        *self.open.0.lock().unwrap() = open;
        self.open.1.notify_all();
    }
}

impl Store for GatedStore {
    fn load(&mut self, window: usize) -> Result<Snapshot, StoreError> {
        self.inner.load(window)
    }

    fn read_queued(
        &mut self,
        session: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        self.inner.read_queued(session, from_seq, limit)
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        let (lock, cond) = &*self.open;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cond.wait(open).unwrap();
        }
        drop(open);
        self.inner.apply(batch)
    }
}

#[tokio::test]
async fn sync_always_acknowledges_only_what_the_store_has() {
    let gated = GatedStore {
        inner: MemoryStore::new(),
        open: Arc::new((std::sync::Mutex::new(true), std::sync::Condvar::new())),
    };
    let broker = Broker::builder(MqttConfig::default())
        .store(gated.clone(), ALWAYS)
        .build()
        .unwrap();
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("t/durable", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    stored(&gated.inner, |s| {
        s.sessions.iter().any(|s| s.disconnected_at.is_some())
    })
    .await;

    gated.set_open(false);
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    // Nothing stored for this one: acknowledged at once, the store being stuck or not.
    publisher
        .publish("t/nobody", b"x", QoS::AtLeastOnce, false)
        .await;
    let mut p = Publish::new(topic("t/durable"), Bytes::from_static(b"1"));
    p.qos = PublishQoS::AtLeastOnce(pid(1));
    publisher.send(Packet::Publish(p.clone())).await;
    // Acknowledgements go out in order: this one waits behind the first.
    p.set_topic(topic("t/nobody"));
    p.qos = PublishQoS::AtLeastOnce(pid(2));
    publisher.send(Packet::Publish(p)).await;
    assert!(
        publisher
            .try_recv(Duration::from_millis(300))
            .await
            .is_none(),
        "PUBACK before the message is durable"
    );
    gated.set_open(true);
    for id in [1, 2] {
        match publisher.recv().await {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(id)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let snapshot = gated.inner.snapshot();
    assert_eq!(snapshot.sessions[0].deliveries.len(), 1);
    publisher.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn sync_periodic_acknowledges_at_once_and_writes_later() {
    let store = MemoryStore::new();
    let broker = start(&store, SyncPolicy::Periodic(Duration::from_millis(200)));
    let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
    sub.subscribe("t", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher.publish("t", b"1", QoS::AtLeastOnce, false).await;
    stored(&store, |s| {
        s.sessions.first().is_some_and(|s| s.deliveries.len() == 1)
    })
    .await;
    publisher.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn ended_sessions_leave_the_store() {
    let store = MemoryStore::new();
    let broker = start(&store, ALWAYS);
    // Expires one second after its connection closes.
    let (mut a, _) = Client::connect_with(&broker, persistent(V5, "a", 1)).await;
    a.subscribe("t", QoS::AtLeastOnce).await;
    a.disconnect().await;
    // Says at DISCONNECT that it ends now.
    let (mut b, _) = Client::connect_with(&broker, persistent(V5, "b", 3600)).await;
    b.subscribe("t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher.publish("t", b"x", QoS::AtLeastOnce, false).await;
    let mut disconnect = Disconnect::default();
    disconnect.properties.session_expiry_interval = Some(0);
    b.send(Packet::Disconnect(disconnect)).await;
    // Not persistent at all: never stored.
    let mut c = Client::connect(&broker, V5, "c").await;
    c.subscribe("t", QoS::AtLeastOnce).await;
    stored(&store, |s| {
        s.sessions.len() == 1 && s.sessions[0].client_id.as_str() == "a"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stored(&store, |s| s.sessions.is_empty()).await;
    c.disconnect().await;
    publisher.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_session_that_expired_while_the_broker_was_down_is_gone() {
    let store = MemoryStore::new();
    let broker = start(&store, ALWAYS);
    let (mut a, _) = Client::connect_with(&broker, persistent(V5, "a", 1)).await;
    a.subscribe("t", QoS::AtLeastOnce).await;
    a.disconnect().await;
    broker.shutdown().await;
    drop(broker);
    assert_eq!(store.snapshot().sessions.len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let broker = start(&store, ALWAYS);
    stored(&store, |s| s.sessions.is_empty()).await;
    let (_a, ack) = Client::connect_with(&broker, persistent(V5, "a", 1)).await;
    assert!(!ack.session_present);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_delayed_will_survives_a_restart_and_is_cancelled_by_the_clients_return() {
    let store = MemoryStore::new();
    let broker = start(&store, ALWAYS);
    for (id, delay) in [("w1", 1), ("w2", 1)] {
        let mut connect = persistent(V5, id, 60);
        let mut will = LastWill {
            topic: topic(&format!("will/{id}")),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        };
        will.properties.will_delay_interval = Some(delay);
        connect.will = Some(will);
        let (client, _) = Client::connect_with(&broker, connect).await;
        client.drop_abruptly();
    }
    stored(&store, |s| s.wills.len() == 2).await;
    let broker = restart(broker, &store).await;
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;
    // w2 comes back in time: its will is cancelled.
    let (w2, ack) = Client::connect_with(&broker, persistent(V5, "w2", 60)).await;
    assert!(ack.session_present);
    let p = watcher.expect_publish().await;
    assert_eq!(p.topic(), "will/w1");
    watcher.ack(&p).await;
    assert!(
        watcher
            .try_recv(Duration::from_millis(1500))
            .await
            .is_none()
    );
    stored(&store, |s| s.wills.is_empty()).await;
    w2.disconnect().await;
    watcher.disconnect().await;
    broker.shutdown().await;
}
