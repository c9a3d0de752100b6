//! A persistent session's queue longer than the broker keeps in memory: the messages past
//! the window stay in the store alone and come back in order, exactly once, as the queue
//! drains: while the broker runs, after a restart, with messages arriving during the
//! drain, and when the session stops being persistent. With `MemoryStore` and with
//! `SqliteStore`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, MemoryStore, MqttConfig, SqliteStore, Store, SyncPolicy};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

const WINDOW: usize = 8;

fn config() -> MqttConfig {
    MqttConfig {
        max_mqueue_len: 10_000,
        ..MqttConfig::default()
    }
}

fn start(store: impl Store) -> Arc<Broker> {
    Broker::builder(config())
        .store(store, SyncPolicy::Always)
        .queue_window(WINDOW)
        .build()
        .unwrap()
}

fn persistent(id: &str, expiry: u32) -> Connect {
    let mut c = connect_packet(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(expiry);
    c
}

/// `n` QoS 1 messages `from..from + n` (their number, big-endian, as payload).
async fn publish(broker: &Arc<Broker>, from: u32, n: u32) {
    let mut publisher = Client::connect(broker, ProtocolVersion::V5, "pub").await;
    for i in from..from + n {
        publisher
            .publish("q/a", &i.to_be_bytes(), QoS::AtLeastOnce, false)
            .await;
    }
    publisher.disconnect().await;
}

/// Receives and acknowledges messages `from..from + n`, in order, nothing else.
async fn receive(sub: &mut Client, from: u32, n: u32) {
    for i in from..from + n {
        let p = sub.expect_publish().await;
        assert_eq!(
            p.payload(),
            Bytes::from(i.to_be_bytes().to_vec()),
            "message {i}"
        );
        sub.ack(&p).await;
    }
}

async fn queued(broker: &Arc<Broker>, id: &str) -> usize {
    broker
        .clients()
        .into_iter()
        .find(|c| c.client_id.as_str() == id)
        .map_or(0, |c| c.queued)
}

async fn subscribed_then_away(broker: &Arc<Broker>) {
    let (mut sub, _) = Client::connect_with(broker, persistent("sub", 3600)).await;
    sub.subscribe("q/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
}

async fn drains_in_order_while_running(store: impl Store) {
    let broker = start(store);
    subscribed_then_away(&broker).await;
    publish(&broker, 0, 500).await;
    assert_eq!(
        queued(&broker, "sub").await,
        500,
        "all counted, in memory or not"
    );
    let (mut sub, ack) = Client::connect_with(&broker, persistent("sub", 3600)).await;
    assert!(ack.session_present);
    receive(&mut sub, 0, 500).await;
    assert!(sub.try_recv(Duration::from_millis(200)).await.is_none());
    sub.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_queue_past_the_window_drains_in_order_memory_store() {
    drains_in_order_while_running(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_queue_past_the_window_drains_in_order_sqlite() {
    let dir = TempDir::new("queue-window-running");
    drains_in_order_while_running(SqliteStore::open(dir.join("s.db"), SyncPolicy::Always).unwrap())
        .await;
}

#[tokio::test]
async fn messages_arriving_during_the_drain_come_after_the_stored_ones() {
    let dir = TempDir::new("queue-window-arriving");
    let broker = start(SqliteStore::open(dir.join("s.db"), SyncPolicy::Always).unwrap());
    subscribed_then_away(&broker).await;
    publish(&broker, 0, 100).await;
    let (mut sub, _) = Client::connect_with(&broker, persistent("sub", 3600)).await;
    // Half taken, then more published while the rest is in the store.
    receive(&mut sub, 0, 50).await;
    publish(&broker, 100, 100).await;
    receive(&mut sub, 50, 150).await;
    assert!(sub.try_recv(Duration::from_millis(200)).await.is_none());
    sub.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_restart_reads_back_only_the_window_and_delivers_everything() {
    let dir = TempDir::new("queue-window-restart");
    let path = dir.join("s.db");
    let broker = start(SqliteStore::open(&path, SyncPolicy::Always).unwrap());
    subscribed_then_away(&broker).await;
    publish(&broker, 0, 300).await;
    broker.shutdown().await;
    drop(broker);

    let mut store = SqliteStore::open(&path, SyncPolicy::Always).unwrap();
    let snapshot = store.load(WINDOW).unwrap();
    let session = &snapshot.sessions[0];
    assert_eq!(session.deliveries.len(), WINDOW, "only the window is read");
    let unread = session.unread.expect("the rest is counted");
    assert_eq!(
        (unread.count, unread.bytes),
        (300 - WINDOW as u64, 4 * (300 - WINDOW as u64))
    );
    assert_eq!(unread.first_seq, session.deliveries[WINDOW - 1].seq + 1);
    drop(store);

    let broker = start(SqliteStore::open(&path, SyncPolicy::Always).unwrap());
    assert_eq!(queued(&broker, "sub").await, 300);
    let (mut sub, ack) = Client::connect_with(&broker, persistent("sub", 3600)).await;
    assert!(ack.session_present);
    receive(&mut sub, 0, 300).await;
    // New messages get new identifiers and sequence numbers: nothing collides.
    publish(&broker, 300, 20).await;
    receive(&mut sub, 300, 20).await;
    assert!(sub.try_recv(Duration::from_millis(200)).await.is_none());
    sub.disconnect().await;
    broker.shutdown().await;
    drop(broker);

    let mut store = SqliteStore::open(&path, SyncPolicy::Always).unwrap();
    let snapshot = store.load(WINDOW).unwrap();
    assert!(snapshot.sessions[0].deliveries.is_empty());
    assert_eq!(
        snapshot.sessions[0].unread, None,
        "everything was delivered"
    );
}

#[tokio::test]
async fn a_session_that_stops_being_persistent_still_gets_its_stored_messages() {
    let dir = TempDir::new("queue-window-ending");
    let broker = start(SqliteStore::open(dir.join("s.db"), SyncPolicy::Always).unwrap());
    subscribed_then_away(&broker).await;
    publish(&broker, 0, 100).await;
    // Resumed with expiry 0: the session ends with this connection, and the store forgets
    // it now, but the messages it queued are still delivered, in order.
    let (mut sub, ack) = Client::connect_with(&broker, persistent("sub", 0)).await;
    assert!(ack.session_present);
    publish(&broker, 100, 10).await;
    receive(&mut sub, 0, 110).await;
    assert!(sub.try_recv(Duration::from_millis(200)).await.is_none());
    sub.disconnect().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn the_queue_bound_counts_what_is_in_the_store() {
    let broker = Broker::builder(MqttConfig {
        max_mqueue_len: 50,
        ..MqttConfig::default()
    })
    .store(MemoryStore::new(), SyncPolicy::Always)
    .queue_window(WINDOW)
    .build()
    .unwrap();
    subscribed_then_away(&broker).await;
    publish(&broker, 0, 80).await;
    assert_eq!(queued(&broker, "sub").await, 50);
    let (mut sub, _) = Client::connect_with(&broker, persistent("sub", 3600)).await;
    // Drop oldest, but the oldest are in memory only up to the window: those are dropped
    // first, then the newest, so what arrives is in order with a gap.
    let mut got = Vec::new();
    while let Some(p) = sub.try_recv(Duration::from_millis(200)).await {
        if let Packet::Publish(p) = p {
            got.push(u32::from_be_bytes(p.payload()[..4].try_into().unwrap()));
            sub.ack(&p).await;
        }
    }
    assert_eq!(got.len(), 50, "{got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    sub.disconnect().await;
    broker.shutdown().await;
}
