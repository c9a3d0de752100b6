//! Acknowledged means delivered: when an online subscriber's queue is full, a QoS 1/2
//! publisher's acknowledgement waits for room instead of the message being dropped; the
//! waiting publisher keeps handling acknowledgements (no deadlock between two clients
//! publishing to each other), the wait is bounded, and offline sessions keep the drop policy.
//!
//! The clients here read and write at the same time (a reader task and a writer task over
//! one in-memory pipe), as real clients do: the helper in `support` does one thing at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, MqttConfig, QueueFull, TransportInfo, TransportKind};
use bytes::{Bytes, BytesMut};
use mqtt_codec::*;
use parking_lot::Mutex;
use support::{filter, pid, topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use ProtocolVersion::V5;

/// A client that reads and writes concurrently. Every PUBLISH it receives is recorded and
/// acknowledged (QoS 1) after `delay`, while `gate` is open; everything else the broker
/// sends goes to `control`.
struct Peer {
    out: mpsc::UnboundedSender<Packet>,
    control: mpsc::UnboundedReceiver<Packet>,
    received: Arc<Mutex<Vec<Bytes>>>,
    gate: watch::Sender<bool>,
    reader: tokio::task::AbortHandle,
}

impl Drop for Peer {
    /// Closes the connection without DISCONNECT: the reader goes, and the writer ends with
    /// the last sender.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Peer {
    /// Connects `connect` to `broker`; the reader waits `delay` before taking each PUBLISH,
    /// and takes none while the gate is closed (`open` false).
    async fn connect(broker: &Arc<Broker>, connect: Connect, delay: Duration, open: bool) -> Self {
        let version = connect.version;
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(
            Arc::clone(broker)
                .serve_connection(server, TransportInfo::new(TransportKind::Memory, None)),
        );
        let (mut read, mut write) = tokio::io::split(client);
        let (out, mut to_write) = mpsc::unbounded_channel::<Packet>();
        out.send(Packet::Connect(Box::new(connect))).unwrap();
        tokio::spawn(async move {
            while let Some(packet) = to_write.recv().await {
                let mut buf = BytesMut::new();
                packet.encode(version, &mut buf).unwrap();
                if write.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
        let (to_control, control) = mpsc::unbounded_channel();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (gate, mut gate_rx) = watch::channel(open);
        let acks = out.clone();
        let got = Arc::clone(&received);
        let reader = tokio::spawn(async move {
            let mut decoder = Decoder::with_version(version);
            let mut buf = BytesMut::new();
            loop {
                let packet = loop {
                    if let Some(packet) = decoder.decode(&mut buf).unwrap() {
                        break Some(packet);
                    }
                    match read.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => break None,
                        Ok(_) => {}
                    }
                };
                let Some(packet) = packet else { return };
                match packet {
                    Packet::Publish(p) => {
                        if gate_rx.wait_for(|open| *open).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(delay).await;
                        got.lock().push(Bytes::copy_from_slice(p.payload()));
                        if let PublishQoS::AtLeastOnce(id) = p.qos {
                            let _ = acks.send(Packet::PubAck(Ack::new(id)));
                        }
                    }
                    other => {
                        let _ = to_control.send(other);
                    }
                }
            }
        });
        let mut peer = Self {
            out,
            control,
            received,
            gate,
            reader: reader.abort_handle(),
        };
        match peer.next().await {
            Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        peer
    }

    fn send(&self, packet: Packet) {
        self.out.send(packet).unwrap();
    }

    /// The next packet that is not a PUBLISH, or `None` if the connection closed. Panics
    /// after 60 s of (virtual) time.
    async fn next(&mut self) -> Option<Packet> {
        tokio::time::timeout(Duration::from_secs(60), self.control.recv())
            .await
            .expect("nothing from the broker within 60 s")
    }

    async fn subscribe(&mut self, filter_str: &str) {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            subscriptions: vec![Subscription {
                filter: filter(filter_str),
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            }],
            properties: Default::default(),
        }));
        assert!(matches!(self.next().await, Some(Packet::SubAck(_))));
    }

    fn received(&self) -> Vec<Bytes> {
        self.received.lock().clone()
    }
}

/// A clean-start MQTT 5 CONNECT without keep alive, with `receive_maximum`.
fn connect(id: &str, receive_maximum: u16) -> Connect {
    let mut c = support::connect_packet(V5, id);
    c.properties.receive_maximum = NonZeroU16::new(receive_maximum);
    c
}

/// A persistent MQTT 5 CONNECT (clean start 0, session expiry 1 h).
fn persistent(id: &str, receive_maximum: u16) -> Connect {
    let mut c = connect(id, receive_maximum);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    c
}

/// The payload of message `seq` of publisher `publisher`.
fn numbered(publisher: u8, seq: u32) -> Bytes {
    let mut b = vec![publisher];
    b.extend_from_slice(&seq.to_be_bytes());
    Bytes::from(b)
}

fn parse(payload: &Bytes) -> (u8, u32) {
    (
        payload[0],
        u32::from_be_bytes(payload[1..5].try_into().unwrap()),
    )
}

/// Publishes `count` numbered QoS 1 messages to `topic_str` as fast as the window allows
/// (`window` unacknowledged at most, the broker's receive maximum: no pacing), and returns
/// how many were acknowledged, checking that PUBACKs come in order.
async fn flood(peer: &mut Peer, publisher: u8, topic_str: &str, count: u32, window: u32) -> u32 {
    let mut sent = 0u32;
    let mut acked = 0u32;
    while acked < count {
        while sent < count && sent - acked < window {
            let mut p = Publish::new(topic(topic_str), numbered(publisher, sent));
            p.qos = PublishQoS::AtLeastOnce(pid(packet_id(sent)));
            peer.send(Packet::Publish(p));
            sent += 1;
        }
        match peer.next().await {
            Some(Packet::PubAck(ack)) => {
                assert_eq!(ack.packet_id, pid(packet_id(acked)), "PUBACKs out of order");
                acked += 1;
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    acked
}

fn packet_id(seq: u32) -> u16 {
    (seq % 60_000) as u16 + 1
}

/// Checks that `received` holds exactly messages 0..count of each publisher, each once, in
/// order per publisher.
fn assert_all_in_order(received: &[Bytes], publishers: &[u8], count: u32) {
    let mut next: HashMap<u8, u32> = publishers.iter().map(|p| (*p, 0)).collect();
    for payload in received {
        let (publisher, seq) = parse(payload);
        let expected = next.get_mut(&publisher).expect("unknown publisher");
        assert_eq!(
            seq, *expected,
            "publisher {publisher}: message {seq} where {expected} was due (lost, reordered or twice)"
        );
        *expected += 1;
    }
    for (publisher, got) in next {
        assert_eq!(
            got, count,
            "publisher {publisher}: {got} of {count} delivered"
        );
    }
}

/// Waits (virtual time) until `peer` has received `count` messages, or 600 s passed.
async fn received_at_least(peer: &Peer, count: usize) {
    for _ in 0..6_000 {
        if peer.received.lock().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (a) The flood: four publishers without pacing, one slow QoS 1 subscriber with a small
/// queue. Every acknowledged message arrives, once, in order per publisher.
#[tokio::test(start_paused = true)]
async fn a_flood_to_a_slow_subscriber_loses_nothing_that_was_acknowledged() {
    let config = MqttConfig {
        max_mqueue_len: 16,
        ..MqttConfig::default()
    };
    let window = u32::from(config.max_inflight);
    let broker = Broker::new(config);
    let mut sub = Peer::connect(&broker, connect("sub", 8), Duration::from_millis(1), true).await;
    sub.subscribe("flood/#").await;
    const COUNT: u32 = 400;
    let mut tasks = Vec::new();
    for publisher in 0..4u8 {
        let mut peer = Peer::connect(
            &broker,
            connect(&format!("pub{publisher}"), 32),
            Duration::ZERO,
            true,
        )
        .await;
        tasks.push(tokio::spawn(async move {
            flood(
                &mut peer,
                publisher,
                &format!("flood/{publisher}"),
                COUNT,
                window,
            )
            .await
        }));
    }
    let mut acknowledged = 0;
    for task in tasks {
        acknowledged += task.await.unwrap();
    }
    assert_eq!(acknowledged, 4 * COUNT);
    received_at_least(&sub, 4 * COUNT as usize).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_all_in_order(&sub.received(), &[0, 1, 2, 3], COUNT);
    let metrics = broker.metrics();
    assert_eq!(metrics.dropped_queue_full, 0);
    assert!(metrics.backpressure_waits > 0, "the queue never filled up");
}

/// (b) A stalled subscriber slows only the publisher that publishes to it: another
/// subscriber, on another topic, gets everything while the first is still stalled.
#[tokio::test(start_paused = true)]
async fn a_stalled_subscriber_does_not_slow_a_fast_one() {
    let config = MqttConfig {
        max_mqueue_len: 16,
        ..MqttConfig::default()
    };
    let window = u32::from(config.max_inflight);
    let broker = Broker::new(config);
    let mut slow = Peer::connect(&broker, connect("slow", 8), Duration::ZERO, false).await;
    slow.subscribe("slow").await;
    let mut fast = Peer::connect(&broker, connect("fast", 32), Duration::ZERO, true).await;
    fast.subscribe("fast").await;

    let mut to_slow = Peer::connect(&broker, connect("to-slow", 32), Duration::ZERO, true).await;
    let slow_publisher =
        tokio::spawn(async move { flood(&mut to_slow, 0, "slow", 200, window).await });
    let mut to_fast = Peer::connect(&broker, connect("to-fast", 32), Duration::ZERO, true).await;
    assert_eq!(flood(&mut to_fast, 1, "fast", 2_000, window).await, 2_000);
    received_at_least(&fast, 2_000).await;
    assert_all_in_order(&fast.received(), &[1], 2_000);
    // Meanwhile the slow subscriber took nothing, and its publisher is held.
    assert!(slow.received().is_empty());
    assert!(
        !slow_publisher.is_finished(),
        "the publisher to the stalled subscriber was not held"
    );

    slow.gate.send_replace(true);
    assert_eq!(slow_publisher.await.unwrap(), 200);
    received_at_least(&slow, 200).await;
    assert_all_in_order(&slow.received(), &[0], 200);
    assert_eq!(broker.metrics().dropped_queue_full, 0);
}

/// (c) Two clients publishing QoS 1 to each other, both queues tiny: no deadlock, each gets
/// everything the other sent.
#[tokio::test(start_paused = true)]
async fn two_clients_publishing_to_each_other_with_full_queues_make_progress() {
    let config = MqttConfig {
        max_mqueue_len: 2,
        ..MqttConfig::default()
    };
    let window = u32::from(config.max_inflight);
    let broker = Broker::new(config);
    let mut a = Peer::connect(&broker, connect("a", 2), Duration::from_millis(1), true).await;
    a.subscribe("to/a").await;
    let mut b = Peer::connect(&broker, connect("b", 2), Duration::from_millis(1), true).await;
    b.subscribe("to/b").await;
    let a_received = Arc::clone(&a.received);
    let b_received = Arc::clone(&b.received);
    const COUNT: u32 = 500;
    // Each task gives its client back, so that it stays connected (and acknowledging).
    let a_task = tokio::spawn(async move { (flood(&mut a, 0, "to/b", COUNT, window).await, a) });
    let b_task = tokio::spawn(async move { (flood(&mut b, 1, "to/a", COUNT, window).await, b) });
    let both = async { (a_task.await.unwrap(), b_task.await.unwrap()) };
    let ((a_acked, _a), (b_acked, _b)) = tokio::time::timeout(Duration::from_secs(600), both)
        .await
        .expect("deadlock: the publishers stopped");
    assert_eq!((a_acked, b_acked), (COUNT, COUNT));
    for _ in 0..100 {
        if a_received.lock().len() as u32 >= COUNT && b_received.lock().len() as u32 >= COUNT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_all_in_order(&a_received.lock(), &[1], COUNT);
    assert_all_in_order(&b_received.lock(), &[0], COUNT);
    assert_eq!(broker.metrics().dropped_queue_full, 0);
}

/// (d) The wait is bounded: a subscriber that never takes anything holds its publisher for
/// the configured wait (30 s by default), then the drop policy applies and is counted.
#[tokio::test(start_paused = true)]
async fn a_wait_past_the_bound_falls_back_to_the_drop_policy() {
    let config = MqttConfig {
        max_mqueue_len: 1,
        ..MqttConfig::default()
    };
    let broker = Broker::new(config);
    let mut sub = Peer::connect(&broker, connect("stuck", 1), Duration::ZERO, false).await;
    sub.subscribe("t").await;
    let mut publisher = Peer::connect(&broker, connect("pub", 32), Duration::ZERO, true).await;
    for seq in 0..3u32 {
        let mut p = Publish::new(topic("t"), numbered(0, seq));
        p.qos = PublishQoS::AtLeastOnce(pid(packet_id(seq)));
        publisher.send(Packet::Publish(p));
    }
    // Message 0 is in flight to the subscriber, message 1 fills its queue, message 2 waits.
    for seq in 0..2 {
        match publisher.next().await {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(packet_id(seq))),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let held = tokio::time::timeout(Duration::from_secs(29), publisher.next()).await;
    assert!(
        held.is_err(),
        "acknowledged before the wait ran out: {held:?}"
    );
    assert_eq!(broker.metrics().dropped_queue_full, 0);
    match tokio::time::timeout(Duration::from_secs(2), publisher.next()).await {
        Ok(Some(Packet::PubAck(ack))) => assert_eq!(ack.packet_id, pid(packet_id(2))),
        other => panic!("expected the PUBACK once the wait ran out, got {other:?}"),
    }
    // Drop oldest: message 1 made room for message 2.
    assert_eq!(broker.metrics().dropped_queue_full, 1);
    assert_eq!(broker.metrics().backpressure_timeouts, 1);
    sub.gate.send_replace(true);
    received_at_least(&sub, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sub.received(), vec![numbered(0, 0), numbered(0, 2)]);
}

/// (e) An offline persistent session keeps its bounded queue and the drop policy: the
/// publisher held by the online subscriber is released as soon as it goes away, and the
/// queue keeps the newest messages.
#[tokio::test(start_paused = true)]
async fn an_offline_session_drops_by_policy_instead_of_holding_publishers() {
    let config = MqttConfig {
        max_mqueue_len: 4,
        ..MqttConfig::default()
    };
    let window = u32::from(config.max_inflight);
    let broker = Broker::new(config);
    let mut sub = Peer::connect(&broker, persistent("sub", 1), Duration::ZERO, false).await;
    sub.subscribe("q").await;
    let mut publisher = Peer::connect(&broker, connect("pub", 32), Duration::ZERO, true).await;
    for seq in 0..10u32 {
        let mut p = Publish::new(topic("q"), numbered(0, seq));
        p.qos = PublishQoS::AtLeastOnce(pid(packet_id(seq)));
        publisher.send(Packet::Publish(p));
    }
    // Online: one in flight and four queued are acknowledged; the sixth waits for room.
    for seq in 0..5 {
        match publisher.next().await {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(packet_id(seq))),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let held = tokio::time::timeout(Duration::from_secs(5), publisher.next()).await;
    assert!(
        held.is_err(),
        "acknowledged while the queue was full: {held:?}"
    );

    // Offline: no waiting for a client that may never return.
    drop(sub);
    for seq in 5..10 {
        match tokio::time::timeout(Duration::from_secs(1), publisher.next()).await {
            Ok(Some(Packet::PubAck(ack))) => assert_eq!(ack.packet_id, pid(packet_id(seq))),
            other => panic!("expected PUBACK {seq} at once, got {other:?}"),
        }
    }
    let _ = window;
    assert_eq!(broker.metrics().dropped_queue_full, 5);
    let sub = Peer::connect(&broker, persistent("sub", 1), Duration::ZERO, true).await;
    received_at_least(&sub, 5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let expected: Vec<Bytes> = [0, 6, 7, 8, 9]
        .into_iter()
        .map(|s| numbered(0, s))
        .collect();
    assert_eq!(sub.received(), expected);
}

/// While held, an MQTT 5 publisher may still have only the broker's Receive Maximum of QoS
/// 1/2 PUBLISHes unacknowledged: one more closes it with 0x93.
#[tokio::test(start_paused = true)]
async fn a_held_publisher_past_the_receive_maximum_is_closed_with_0x93() {
    let config = MqttConfig {
        max_mqueue_len: 1,
        max_inflight: 4,
        ..MqttConfig::default()
    };
    let broker = Broker::new(config);
    let mut sub = Peer::connect(&broker, connect("stuck", 1), Duration::ZERO, false).await;
    sub.subscribe("t").await;
    let mut publisher = Peer::connect(&broker, connect("pub", 32), Duration::ZERO, true).await;
    let publish = |publisher: &Peer, seq: u32| {
        let mut p = Publish::new(topic("t"), numbered(0, seq));
        p.qos = PublishQoS::AtLeastOnce(pid(packet_id(seq)));
        publisher.send(Packet::Publish(p));
    };
    // As many as the Receive Maximum allows: 0 goes in flight, 1 is queued, 2 is held.
    for seq in 0..4u32 {
        publish(&publisher, seq);
    }
    for seq in 0..2 {
        match publisher.next().await {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(packet_id(seq))),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    // 2..=5 unacknowledged: still within it.
    publish(&publisher, 4);
    publish(&publisher, 5);
    let held = tokio::time::timeout(Duration::from_secs(5), publisher.next()).await;
    assert!(held.is_err(), "within the receive maximum, yet: {held:?}");
    // A PINGREQ is answered while held.
    publisher.send(Packet::PingReq);
    assert!(matches!(publisher.next().await, Some(Packet::PingResp)));
    publish(&publisher, 6);
    match publisher.next().await {
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, ReasonCode::ReceiveMaximumExceeded);
        }
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
    assert!(publisher.next().await.is_none());
    drop(sub);
}

/// `mqueue_full = Drop`: the publisher never waits, the drop policy applies at once.
#[tokio::test(start_paused = true)]
async fn with_mqueue_full_drop_a_full_online_queue_drops_at_once() {
    let config = MqttConfig {
        max_mqueue_len: 1,
        mqueue_full: QueueFull::Drop,
        ..MqttConfig::default()
    };
    let broker = Broker::new(config);
    let mut sub = Peer::connect(&broker, connect("stuck", 1), Duration::ZERO, false).await;
    sub.subscribe("t").await;
    let mut publisher = Peer::connect(&broker, connect("pub", 32), Duration::ZERO, true).await;
    for seq in 0..5u32 {
        let mut p = Publish::new(topic("t"), numbered(0, seq));
        p.qos = PublishQoS::AtLeastOnce(pid(packet_id(seq)));
        publisher.send(Packet::Publish(p));
    }
    for seq in 0..5 {
        match tokio::time::timeout(Duration::from_secs(1), publisher.next()).await {
            Ok(Some(Packet::PubAck(ack))) => assert_eq!(ack.packet_id, pid(packet_id(seq))),
            other => panic!("expected PUBACK {seq} at once, got {other:?}"),
        }
    }
    let metrics = broker.metrics();
    assert!(metrics.dropped_queue_full >= 3, "{metrics:?}");
    assert_eq!(metrics.backpressure_waits, 0);
    drop(sub);
}

/// A DISCONNECT that waited behind a held PUBLISH still ends the connection normally (no
/// will) once the PUBLISH is through, even if the client closed right after sending it.
#[tokio::test(start_paused = true)]
async fn a_disconnect_behind_a_held_publish_is_a_normal_disconnect() {
    let config = MqttConfig {
        max_mqueue_len: 1,
        ..MqttConfig::default()
    };
    let broker = Broker::new(config);
    let mut sub = Peer::connect(&broker, connect("sub", 1), Duration::ZERO, false).await;
    sub.subscribe("t").await;
    let mut watcher = Peer::connect(&broker, connect("watcher", 32), Duration::ZERO, true).await;
    watcher.subscribe("will").await;
    let mut c = connect("pub", 32);
    c.will = Some(LastWill {
        topic: topic("will"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let mut publisher = Peer::connect(&broker, c, Duration::ZERO, true).await;
    for seq in 0..3u32 {
        let mut p = Publish::new(topic("t"), numbered(0, seq));
        p.qos = PublishQoS::AtLeastOnce(pid(packet_id(seq)));
        publisher.send(Packet::Publish(p));
    }
    publisher.send(Packet::Disconnect(Disconnect::default()));
    for seq in 0..2 {
        match publisher.next().await {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(packet_id(seq))),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    drop(publisher);
    tokio::time::sleep(Duration::from_secs(1)).await;
    sub.gate.send_replace(true);
    received_at_least(&sub, 3).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sub.received().len(), 3);
    assert!(watcher.received().is_empty(), "the will was published");
    assert_eq!(broker.metrics().connections, 2);
}
