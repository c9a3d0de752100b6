//! Topics and filters as deep as MQTT can encode (65,535 levels: a string of 65,534 `/`),
//! on every path that walks the subscription index or the retained index: subscribe,
//! unsubscribe, routing a PUBLISH or a will, retained store and lookup, shared groups, the
//! end of a session (clean-session disconnect, expiry, clean-start takeover) and a restart
//! from the store.
//!
//! Each case runs on a thread of its own with a 2 MiB stack, the stack of a tokio worker:
//! an index that recursed once per level overflows it, which aborts this test binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, MemoryStore, MqttConfig, SyncPolicy};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

/// The deepest topic: 65,535 empty levels.
const LEVELS: usize = 65_535;

/// The broker configuration of every case here: packets large enough for the deepest
/// filters. (Limits on topic levels, when the broker has them, must allow 65,535 here.)
fn deep_config() -> MqttConfig {
    MqttConfig {
        max_packet_size: 4 * 1024 * 1024,
        // MQTT's own bound: every depth a topic can have.
        limits: broker_core::Limits {
            max_topic_levels: 65_535,
            max_topic_length: 65_535,
            ..broker_core::Limits::default()
        },
        ..MqttConfig::default()
    }
}

/// `n` empty levels: `n - 1` slashes (a valid topic name and filter).
fn empty_levels(n: usize) -> String {
    "/".repeat(n - 1)
}

/// `n` levels of `level` joined by `/`.
fn levels_of(level: &str, n: usize) -> String {
    vec![level; n].join("/")
}

/// The deepest filter of each form that fits in an MQTT string (65,535 bytes).
fn deep_filters() -> Vec<String> {
    let a = levels_of("a", 32_768);
    let shared = format!("$share/g/{}", empty_levels(LEVELS - 9));
    let hash = format!("{}/#", levels_of("a", 32_767));
    let plus = levels_of("+", 32_768);
    let filters = vec![empty_levels(LEVELS), a, plus, shared, hash];
    for f in &filters {
        assert!(f.len() <= 65_535 && TopicFilter::new(f.as_str()).is_ok());
    }
    filters
}

/// Runs `case` on a thread with a 2 MiB stack, in a current-thread runtime (in paused time
/// if `paused`), and passes its panic on.
fn on_worker_stack<F, Fut>(paused: bool, case: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::Builder::new()
        .name("deep-case".into())
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(paused)
                .build()
                .unwrap();
            runtime.block_on(case());
        })
        .unwrap();
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn unsubscribe_all(client: &mut Client, filters: &[String]) -> Vec<ReasonCode> {
    let packet_id = client.next_pid();
    client
        .send(Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters: filters.iter().map(|f| filter(f)).collect(),
            properties: Default::default(),
        }))
        .await;
    match client.recv().await {
        Some(Packet::UnsubAck(ack)) => {
            assert_eq!(ack.packet_id, packet_id);
            ack.reason_codes
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

/// The broker still routes: a fresh subscriber on a shallow topic gets a message.
async fn still_serving(broker: &Arc<Broker>) {
    let mut sub = Client::connect(broker, V5, "probe-sub").await;
    sub.subscribe("probe", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker, V5, "probe-pub").await;
    publisher
        .publish("probe", b"alive", QoS::AtLeastOnce, false)
        .await;
    let p = sub.expect_publish().await;
    assert_eq!(p.payload(), Bytes::from_static(b"alive"));
    sub.ack(&p).await;
    sub.disconnect().await;
    publisher.disconnect().await;
}

fn persistent(version: ProtocolVersion, id: &str, expiry: u32) -> Connect {
    let mut c = connect_packet(version, id);
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(expiry);
    }
    c
}

#[test]
fn deep_filters_subscribe_and_unsubscribe() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let filters = deep_filters();
        let mut client = Client::connect(&broker, V5, "deep").await;
        let codes = client.subscribe_all(&filters, QoS::AtLeastOnce).await;
        assert_eq!(codes, vec![ReasonCode::GrantedQoS1; filters.len()]);
        let codes = unsubscribe_all(&mut client, &filters).await;
        assert_eq!(codes, vec![ReasonCode::Success; filters.len()]);
        let codes = unsubscribe_all(&mut client, &filters).await;
        assert_eq!(
            codes,
            vec![ReasonCode::NoSubscriptionExisted; filters.len()],
            "the first UNSUBSCRIBE removed them"
        );
        // Subscribed again and left in the index: the broker's drop takes them down.
        client.subscribe_all(&filters, QoS::AtLeastOnce).await;
        still_serving(&broker).await;
        drop(client);
        settle().await;
        drop(broker);
    });
}

#[test]
fn a_publish_is_routed_along_deep_filters() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let mut sub = Client::connect(&broker, V5, "sub").await;
        let filters = vec![
            empty_levels(LEVELS),
            levels_of("+", 32_768),
            format!("{}/#", levels_of("a", 32_767)),
        ];
        sub.subscribe_all(&filters, QoS::AtLeastOnce).await;
        let mut publisher = Client::connect(&broker, V5, "pub").await;
        for (topic, payload) in [
            (empty_levels(LEVELS), "deepest"),
            (levels_of("b", 32_768), "plus"),
            (levels_of("a", 32_768), "hash"),
        ] {
            let mut p = Publish::new(support::topic(&topic), Bytes::from(payload));
            p.qos = PublishQoS::AtLeastOnce(publisher.next_pid());
            publisher.publish_packet(p).await;
            let got = sub.expect_publish().await;
            assert_eq!(got.topic(), topic.as_str());
            assert_eq!(got.payload(), Bytes::from(payload));
            sub.ack(&got).await;
        }
        // One level short of the deepest filter: no match.
        publisher
            .publish(&empty_levels(LEVELS - 1), b"x", QoS::AtLeastOnce, false)
            .await;
        assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
    });
}

#[test]
fn retained_messages_on_deep_topics_are_stored_found_and_cleared() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let deepest = empty_levels(LEVELS);
        let a_deep = levels_of("a", 32_768);
        let mut publisher = Client::connect(&broker, V5, "pub").await;
        publisher
            .publish(&deepest, b"deepest", QoS::AtLeastOnce, true)
            .await;
        publisher
            .publish(&a_deep, b"a-deep", QoS::AtLeastOnce, true)
            .await;
        assert_eq!(broker.metrics().retained_messages, 2);

        let mut sub = Client::connect(&broker, V5, "sub").await;
        for (f, expected) in [
            (deepest.clone(), vec!["deepest"]),
            (format!("{}/#", levels_of("a", 100)), vec!["a-deep"]),
            (levels_of("+", 32_768), vec!["a-deep"]),
            ("#".to_owned(), vec!["a-deep", "deepest"]),
            (empty_levels(LEVELS - 1), vec![]),
        ] {
            sub.subscribe_all(std::slice::from_ref(&f), QoS::AtLeastOnce)
                .await;
            let mut got = Vec::new();
            for _ in 0..expected.len() {
                let p = sub.expect_publish().await;
                assert!(p.retain);
                got.push(String::from_utf8(p.payload().to_vec()).unwrap());
                sub.ack(&p).await;
            }
            got.sort();
            assert_eq!(got, expected, "retained for a filter of {} bytes", f.len());
            assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
            unsubscribe_all(&mut sub, &[f]).await;
        }

        // Clearing prunes the deep branch; the other message stays.
        publisher
            .publish(&deepest, b"", QoS::AtLeastOnce, true)
            .await;
        assert_eq!(broker.metrics().retained_messages, 1);
        sub.subscribe_all(&["#".to_owned()], QoS::AtLeastOnce).await;
        let p = sub.expect_publish().await;
        assert_eq!(p.payload(), Bytes::from_static(b"a-deep"));
        sub.ack(&p).await;
        assert!(sub.try_recv(Duration::from_secs(1)).await.is_none());
        // The remaining deep message goes with the broker.
        drop((sub, publisher));
        settle().await;
        drop(broker);
    });
}

#[test]
fn a_will_is_routed_along_a_deep_filter() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let deepest = empty_levels(LEVELS);
        let mut sub = Client::connect(&broker, V5, "sub").await;
        sub.subscribe_all(std::slice::from_ref(&deepest), QoS::AtLeastOnce)
            .await;
        let mut c = connect_packet(V3_1_1, "dying");
        c.will = Some(LastWill {
            topic: topic(&deepest),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        let (dying, _) = Client::connect_with(&broker, c).await;
        dying.drop_abruptly();
        let will = sub.expect_publish().await;
        assert_eq!(will.topic(), deepest.as_str());
        assert_eq!(will.payload(), Bytes::from_static(b"gone"));
        sub.ack(&will).await;
    });
}

#[test]
fn deep_shared_subscriptions_get_each_message_once() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let inner = empty_levels(LEVELS - 9);
        let shared = format!("$share/g/{inner}");
        let mut a = Client::connect(&broker, V5, "a").await;
        let mut b = Client::connect(&broker, V5, "b").await;
        a.subscribe_all(std::slice::from_ref(&shared), QoS::AtLeastOnce)
            .await;
        b.subscribe_all(std::slice::from_ref(&shared), QoS::AtLeastOnce)
            .await;
        let mut publisher = Client::connect(&broker, V5, "pub").await;
        for i in 0..4u8 {
            publisher
                .publish(&inner, &[i], QoS::AtLeastOnce, false)
                .await;
        }
        let mut count = 0;
        for client in [&mut a, &mut b] {
            while let Some(packet) = client.try_recv(Duration::from_secs(1)).await {
                let Packet::Publish(p) = packet else {
                    panic!("expected PUBLISH, got {packet:?}")
                };
                client.ack(&p).await;
                count += 1;
            }
        }
        assert_eq!(count, 4, "each message to one member");
        assert_eq!(
            unsubscribe_all(&mut a, std::slice::from_ref(&shared)).await,
            vec![ReasonCode::Success]
        );
        // b's membership ends with its clean-start session.
        b.disconnect().await;
        publisher
            .publish(&inner, b"none", QoS::AtLeastOnce, false)
            .await;
        assert!(a.try_recv(Duration::from_secs(1)).await.is_none());
    });
}

#[test]
fn a_clean_session_disconnect_removes_deep_subscriptions() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let filters = deep_filters();
        for version in [V3_1_1, V5] {
            let mut client = Client::connect(&broker, version, "clean").await;
            let codes = client.subscribe_all(&filters, QoS::AtLeastOnce).await;
            assert_eq!(codes.len(), filters.len());
            client.disconnect().await;
            settle().await;
            assert_eq!(broker.metrics().sessions, 0, "{version}");
        }
        still_serving(&broker).await;
    });
}

#[test]
fn session_expiry_removes_deep_subscriptions() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let filters = deep_filters();
        let (mut client, _) = Client::connect_with(&broker, persistent(V5, "expiring", 10)).await;
        client.subscribe_all(&filters, QoS::AtLeastOnce).await;
        client.disconnect().await;
        settle().await;
        assert_eq!(broker.metrics().sessions, 1);
        tokio::time::sleep(Duration::from_secs(11)).await;
        settle().await;
        assert_eq!(broker.metrics().sessions, 0, "the session expired");
        still_serving(&broker).await;
    });
}

#[test]
fn a_clean_start_takeover_removes_deep_subscriptions() {
    on_worker_stack(true, || async {
        let broker = broker(deep_config());
        let filters = deep_filters();
        let (mut first, _) = Client::connect_with(&broker, persistent(V5, "dup", 3600)).await;
        first.subscribe_all(&filters, QoS::AtLeastOnce).await;
        let (mut second, ack) = Client::connect_with(&broker, connect_packet(V5, "dup")).await;
        assert!(!ack.session_present, "a clean start ends the old session");
        let disconnect = first.expect_close().await.expect("DISCONNECT");
        assert_eq!(disconnect.reason_code, ReasonCode::SessionTakenOver);
        let mut publisher = Client::connect(&broker, V5, "pub").await;
        publisher
            .publish(&empty_levels(LEVELS), b"x", QoS::AtLeastOnce, false)
            .await;
        assert!(
            second.try_recv(Duration::from_secs(1)).await.is_none(),
            "the old session's subscriptions are gone"
        );
    });
}

#[test]
fn a_restart_restores_deep_subscriptions_and_retained_messages() {
    // Real time: the store's writer is a thread.
    on_worker_stack(false, || async {
        let store = MemoryStore::new();
        let start = |store: &MemoryStore| {
            Broker::builder(deep_config())
                .store(store.clone(), SyncPolicy::Always)
                .build()
                .unwrap()
        };
        let deepest = empty_levels(LEVELS);
        let filters = deep_filters();
        let broker = start(&store);
        let (mut sub, _) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
        sub.subscribe_all(&filters, QoS::AtLeastOnce).await;
        sub.disconnect().await;
        let mut publisher = Client::connect(&broker, V5, "pub").await;
        publisher
            .publish(&deepest, b"retained", QoS::AtLeastOnce, true)
            .await;
        publisher.disconnect().await;
        broker.shutdown().await;
        drop(broker);

        let broker = start(&store);
        assert_eq!(broker.metrics().retained_messages, 1);
        let (mut sub, ack) = Client::connect_with(&broker, persistent(V5, "sub", 3600)).await;
        assert!(ack.session_present);
        // Queued before the restart (the deepest filter matched the retained publish).
        let queued = sub.expect_publish().await;
        assert_eq!(queued.payload(), Bytes::from_static(b"retained"));
        sub.ack(&queued).await;
        // The restored subscription routes.
        let mut publisher = Client::connect(&broker, V5, "pub").await;
        publisher
            .publish(&deepest, b"after", QoS::AtLeastOnce, false)
            .await;
        let p = sub.expect_publish().await;
        assert_eq!(p.payload(), Bytes::from_static(b"after"));
        sub.ack(&p).await;
        // The restored retained message is found.
        let mut other = Client::connect(&broker, V5, "other").await;
        other
            .subscribe_all(std::slice::from_ref(&deepest), QoS::AtLeastOnce)
            .await;
        let p = other.expect_publish().await;
        assert!(p.retain);
        assert_eq!(p.payload(), Bytes::from_static(b"retained"));
        other.ack(&p).await;
        // A clean start ends the restored session and takes its deep filters out.
        drop(sub);
        let (sub, ack) = Client::connect_with(&broker, connect_packet(V5, "sub")).await;
        assert!(!ack.session_present);
        sub.disconnect().await;
        other.disconnect().await;
        publisher.disconnect().await;
        broker.shutdown().await;
        drop(broker);
        assert!(store.snapshot().sessions.is_empty());
    });
}
