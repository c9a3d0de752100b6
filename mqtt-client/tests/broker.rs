//! The client against our own broker (broker-core over transport-tcp, in process, on a
//! loopback port): QoS 0/1/2 both ways in 3.1.1 and 5, the server's limits (Receive Maximum
//! 1, a small Maximum Packet Size, a Topic Alias Maximum), a reconnect that resends what was
//! in flight with DUP, and the errors a server causes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use broker_core::MqttConfig;
use bytes::Bytes;
use mqtt_client::mqtt_codec::{
    ProtocolVersion, QoS, ReasonCode, TopicFilter, UnsubscribeProperties,
};
use mqtt_client::{Client, Error, Incoming, Message, PublishError, SessionState};
use std::sync::atomic::Ordering;
use support::*;
use tokio::net::TcpListener;

#[tokio::test]
async fn qos_0_1_2_both_ways_in_3_1_1_and_5() {
    let addr = broker(MqttConfig::default()).await;
    let connector = tcp(addr);
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut sub = connect(&connector, &options(&format!("sub-{version}"), version)).await;
        subscribe(&sub, &format!("v{}/#", version.level()), QoS::ExactlyOnce).await;
        let publisher = connect(&connector, &options(&format!("pub-{version}"), version)).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("v{}/q{}", version.level(), qos.as_u8());
            let message =
                Message::new(&topic, Bytes::from(format!("m{}", qos.as_u8())), qos).unwrap();
            let code = within(publisher.publish(message)).await.unwrap();
            assert_eq!(code, ReasonCode::Success, "{version} QoS {qos:?}");
            let got = next_message(&mut sub).await;
            assert_eq!(
                (got.topic(), got.payload(), got.qos.qos()),
                (topic.as_str(), format!("m{}", qos.as_u8()).as_bytes(), qos)
            );
        }
        // The subscriber publishes back; the publisher receives (QoS 2 both ways).
        subscribe(&publisher, "back", QoS::ExactlyOnce).await;
        let mut publisher = publisher;
        within(sub.publish(Message::new("back", "b", QoS::ExactlyOnce).unwrap()))
            .await
            .unwrap();
        assert_eq!(next_message(&mut publisher).await.payload(), b"b");
        let codes = within(sub.unsubscribe(
            vec![TopicFilter::new("nothing").unwrap()],
            UnsubscribeProperties::default(),
        ))
        .await
        .unwrap();
        let expected = if version.is_v5() {
            ReasonCode::NoSubscriptionExisted
        } else {
            ReasonCode::Success
        };
        assert_eq!(codes, [expected]);
        for client in [sub, publisher] {
            assert!(client.disconnect().await.error.is_none());
        }
    }
}

#[tokio::test]
async fn the_servers_limits_are_kept_receive_maximum_1_packet_size_and_aliases() {
    let addr = broker(MqttConfig {
        max_inflight: 1,
        max_packet_size: 300,
        max_topic_alias: 2,
        ..MqttConfig::default()
    })
    .await;
    let connector = tcp(addr);
    let mut sub = connect(&connector, &options("limits-sub", ProtocolVersion::V5)).await;
    subscribe(&sub, "lim/#", QoS::AtLeastOnce).await;
    let recorder = Recorder::default();
    let (publisher, params) = within(Client::start(
        &connector,
        &options("limits-pub", ProtocolVersion::V5),
        SessionState::new(),
        Some(recorder.observer()),
    ))
    .await
    .unwrap();
    assert_eq!(
        (
            params.receive_maximum,
            params.maximum_packet_size,
            params.topic_alias_maximum
        ),
        (1, 300, 2)
    );

    // Twenty QoS 1 messages at once, on three topics: one in flight at a time.
    let publisher = Arc::new(publisher);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let publisher = Arc::clone(&publisher);
        tasks.push(tokio::spawn(async move {
            let topic = format!("lim/{}", i % 3);
            publisher
                .publish(
                    Message::new(&topic, Bytes::from(i.to_string()), QoS::AtLeastOnce).unwrap(),
                )
                .await
        }));
    }
    for task in tasks {
        assert_eq!(within(task).await.unwrap(), Ok(ReasonCode::Success));
    }
    assert_eq!(recorder.max_in_flight(), 1);
    let mut received = Vec::new();
    for _ in 0..20 {
        let got = next_message(&mut sub).await;
        received.push((
            got.topic().to_owned(),
            String::from_utf8(got.payload().to_vec()).unwrap(),
        ));
    }
    received.sort_by_key(|(_, n)| n.parse::<u32>().unwrap());
    for (i, (topic, n)) in received.iter().enumerate() {
        assert_eq!(
            (topic.clone(), n.clone()),
            (format!("lim/{}", i % 3), i.to_string())
        );
    }
    // Aliases: two topics got one each, the third never; later messages send no topic.
    let sent = recorder.sent_publishes();
    let aliases: std::collections::BTreeSet<u16> = sent
        .iter()
        .filter_map(|p| p.properties().topic_alias.map(|a| a.get()))
        .collect();
    assert_eq!(aliases, [1, 2].into());
    assert!(sent.iter().any(|p| p.topic().is_empty()));
    assert!(
        sent.iter()
            .all(|p| !p.topic().is_empty() || p.properties().topic_alias.is_some())
    );

    // Too large for the server: refused here, never sent, and the connection stays up.
    let big = Message::new("lim/big", vec![0u8; 400], QoS::AtLeastOnce).unwrap();
    assert!(matches!(
        publisher.publish(big).await,
        Err(PublishError::TooLarge { max: 300, .. })
    ));
    assert_eq!(recorder.sent_publishes().len(), 20);
    let fits = Message::new("lim/0", vec![0u8; 200], QoS::AtLeastOnce).unwrap();
    assert_eq!(
        within(publisher.publish(fits)).await,
        Ok(ReasonCode::Success)
    );
}

#[tokio::test]
async fn a_reconnect_with_the_session_resends_in_flight_messages_with_dup_and_qos2_stays_once() {
    let addr = broker(MqttConfig::default()).await;
    let connector = tcp(addr);
    let mut watcher = connect(&connector, &options("watcher", ProtocolVersion::V5)).await;
    subscribe(&watcher, "r/#", QoS::ExactlyOnce).await;

    let relay = Relay::start(addr).await;
    let persistent = options("resender", ProtocolVersion::V5)
        .clean_start(false)
        .session_expiry(300);
    let client = connect(&tcp(relay.addr), &persistent).await;
    relay.blackhole.store(true, Ordering::SeqCst);
    // The broker gets both (the watcher sees them); its PUBACK and PUBREC never come back.
    let one = client.publish(Message::new("r/1", "one", QoS::AtLeastOnce).unwrap());
    let two = client.publish(Message::new("r/2", "two", QoS::ExactlyOnce).unwrap());
    let first_copies = async {
        let copies = vec![
            next_message(&mut watcher).await,
            next_message(&mut watcher).await,
        ];
        relay.cut.notify_one();
        copies
    };
    let (one, two, mut first_copies) = within(async { tokio::join!(one, two, first_copies) }).await;
    assert_eq!(
        (one, two),
        (
            Err(PublishError::ConnectionLost),
            Err(PublishError::ConnectionLost)
        )
    );
    let ended = client.disconnect().await;
    assert!(
        matches!(ended.error, Some(Error::Closed | Error::Io(_))),
        "{:?}",
        ended.error
    );
    assert_eq!(ended.state.in_flight(), 2);
    let tickets = ended.state.tickets();
    first_copies.sort_by(|a, b| a.topic().cmp(b.topic()));
    assert_eq!(
        first_copies.iter().map(|p| p.topic()).collect::<Vec<_>>(),
        ["r/1", "r/2"]
    );

    // Straight to the broker with the state: the session is there, both are resent with DUP
    // in order, and complete.
    let recorder = Recorder::default();
    let (mut client, params) = within(Client::start(
        &connector,
        &persistent,
        ended.state,
        Some(recorder.observer()),
    ))
    .await
    .unwrap();
    assert!(params.session_present);
    let mut completed = Vec::new();
    while completed.len() < 2 {
        match within(client.recv()).await.unwrap() {
            Incoming::Completed { ticket, result } => completed.push((ticket, result)),
            Incoming::Message(m) => panic!("unexpected {m:?}"),
        }
    }
    assert_eq!(
        completed,
        [
            (tickets[0], Ok(ReasonCode::Success)),
            (tickets[1], Ok(ReasonCode::Success))
        ]
    );
    let resent: Vec<(String, bool)> = recorder
        .sent_publishes()
        .iter()
        .map(|p| (p.topic().to_owned(), p.dup))
        .collect();
    assert_eq!(resent, [("r/1".to_owned(), true), ("r/2".to_owned(), true)]);
    within(client.publish(Message::new("r/end", "end", QoS::AtLeastOnce).unwrap()))
        .await
        .unwrap();
    // QoS 1 comes twice (the broker forwards the resend as a new delivery); QoS 2 exactly
    // once: the broker knew its identifier and only answered PUBREC again.
    let again = next_message(&mut watcher).await;
    assert_eq!((again.topic(), again.payload()), ("r/1", &b"one"[..]));
    assert_eq!(next_message(&mut watcher).await.topic(), "r/end");
    assert_eq!(client.disconnect().await.state.in_flight(), 0);
}

#[tokio::test]
async fn the_server_ends_connections_with_reasons_the_errors_carry() {
    let addr = broker(MqttConfig::default()).await;
    let connector = tcp(addr);
    let mut first = connect(&connector, &options("twin", ProtocolVersion::V5)).await;
    let second = connect(&connector, &options("twin", ProtocolVersion::V5)).await;
    match within(first.recv()).await {
        Err(Error::Disconnected { reason, .. }) => assert_eq!(reason, ReasonCode::SessionTakenOver),
        other => panic!("{other:?}"),
    }
    // After the end, calls fail with the cause and the state comes back.
    assert!(
        first
            .publish(Message::new("t", "x", QoS::AtLeastOnce).unwrap())
            .await
            .is_err()
    );
    let ended = first.disconnect().await;
    assert!(matches!(ended.error, Some(Error::Disconnected { .. })));
    drop(second);

    // A refusing CONNACK: 3.1.1 with an empty client id and no clean session is refused
    // locally; an invalid protocol choice by the server side is a Refused error.
    let nobody = Client::connect(
        &tcp(addr),
        &options("", ProtocolVersion::V3_1_1).clean_start(false),
    )
    .await;
    assert!(matches!(nobody, Err(Error::Usage(_))));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    assert!(matches!(
        Client::connect(&tcp(dead), &options("x", ProtocolVersion::V5)).await,
        Err(Error::Connect { .. })
    ));
}
