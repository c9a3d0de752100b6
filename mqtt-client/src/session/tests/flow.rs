//! Publishing through the sans-IO core: QoS 1/2 exchanges, the server's Receive Maximum,
//! Maximum Packet Size and Topic Alias Maximum, resends after a reconnect, a lost session,
//! and snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use bytes::Bytes;
use mqtt_codec::{
    ConnAckProperties, Packet, Publish, PublishQoS, QoS, ReasonCode, SubscribeProperties,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};

use super::*;
use crate::session::Connection;
use crate::{Error, Message, PublishError, SessionState};

#[test]
fn each_attempt_uses_only_its_own_connack() {
    let now = Instant::now();
    let mut first = connected(SessionState::new(), false, limits(1, 100, 5), now);
    first.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    first.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    // Receive Maximum 1: one sent, one queued.
    assert_eq!(publishes(&sent(&mut first, now)).len(), 1);
    let state = first.into_state();
    assert_eq!((state.in_flight(), state.queued()), (1, 1));

    // The next server says nothing: the defaults hold, not the first one's limits.
    let mut second = connected(state, true, ConnAckProperties::default(), now);
    let params = second.params().unwrap().clone();
    assert_eq!(params.receive_maximum, u16::MAX);
    assert_eq!(params.maximum_packet_size, u32::MAX);
    assert_eq!(params.topic_alias_maximum, 0);
    // Both go out now (no window of 1), the resend first with DUP; no alias (max 0).
    assert_eq!(
        publishes(&sent(&mut second, now)),
        [(1, true, "a".into(), None), (2, false, "a".into(), None)]
    );
    // A big message fits here, though not under the first CONNACK's 100 bytes.
    let big = Message::new("a", vec![0u8; 500], QoS::AtLeastOnce).unwrap();
    assert!(second.publish(big).is_ok());
}

#[test]
fn qos1_and_qos2_complete_with_their_acknowledgements() {
    let now = Instant::now();
    let mut conn = connected(
        SessionState::new(),
        false,
        ConnAckProperties::default(),
        now,
    );
    let one = conn.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    let two = conn.publish(msg("b", QoS::ExactlyOnce)).unwrap();
    assert_eq!(publishes(&sent(&mut conn, now)).len(), 2);
    let mut puback = ack(1);
    puback.reason_code = ReasonCode::NoMatchingSubscribers;
    conn.handle_packet(Packet::PubAck(puback), now).unwrap();
    conn.handle_packet(Packet::PubRec(ack(2)), now).unwrap();
    assert_eq!(sent(&mut conn, now), [Packet::PubRel(ack(2))]);
    assert_eq!(
        published(&events(&mut conn)),
        [(one.0, Ok(ReasonCode::NoMatchingSubscribers))]
    );
    conn.handle_packet(Packet::PubComp(ack(2)), now).unwrap();
    assert_eq!(
        published(&events(&mut conn)),
        [(two.0, Ok(ReasonCode::Success))]
    );
    assert_eq!(conn.state().in_flight(), 0);

    // A failure code ends the exchange with the reason.
    conn.publish(msg("c", QoS::ExactlyOnce)).unwrap();
    sent(&mut conn, now);
    let mut rec = ack(3);
    rec.reason_code = ReasonCode::NotAuthorized;
    conn.handle_packet(Packet::PubRec(rec), now).unwrap();
    assert!(
        sent(&mut conn, now).is_empty(),
        "no PUBREL after a refused PUBREC"
    );
    assert!(matches!(
        &published(&events(&mut conn))[0].1,
        Err(PublishError::Refused {
            reason: ReasonCode::NotAuthorized,
            ..
        })
    ));
    // A PUBACK for a QoS 2 message is a protocol error, and says so in DISCONNECT.
    conn.publish(msg("d", QoS::ExactlyOnce)).unwrap();
    sent(&mut conn, now);
    let err = conn.handle_packet(Packet::PubAck(ack(4)), now).unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::WrongAck { .. })),
        "{err:?}"
    );
    assert!(matches!(
        sent(&mut conn, now).as_slice(),
        [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError
    ));
}

#[test]
fn never_more_in_flight_than_the_receive_maximum_and_in_order() {
    let now = Instant::now();
    let mut conn = connected(SessionState::new(), false, limits(2, 0, 0), now);
    for _ in 0..5 {
        conn.publish(msg("a", QoS::ExactlyOnce)).unwrap();
    }
    assert_eq!(
        publishes(&sent(&mut conn, now))
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    // PUBREC does not free a slot: QoS 2 counts until PUBCOMP.
    conn.handle_packet(Packet::PubRec(ack(1)), now).unwrap();
    assert_eq!(sent(&mut conn, now), [Packet::PubRel(ack(1))]);
    conn.handle_packet(Packet::PubComp(ack(1)), now).unwrap();
    assert_eq!(
        publishes(&sent(&mut conn, now))
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [3]
    );
    conn.handle_packet(Packet::PubRec(ack(2)), now).unwrap();
    conn.handle_packet(Packet::PubComp(ack(2)), now).unwrap();
    conn.handle_packet(Packet::PubRec(ack(3)), now).unwrap();
    conn.handle_packet(Packet::PubComp(ack(3)), now).unwrap();
    let packets = sent(&mut conn, now);
    assert_eq!(
        publishes(&packets).iter().map(|p| p.0).collect::<Vec<_>>(),
        [4, 5]
    );
    let done: Vec<u64> = published(&events(&mut conn))
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(done, [0, 1, 2]);
}

#[test]
fn a_message_larger_than_the_servers_maximum_is_an_error_and_is_not_sent() {
    let now = Instant::now();
    let mut conn = connected(SessionState::new(), false, limits(10, 64, 0), now);
    let small = Message::new("t", vec![0u8; 40], QoS::AtLeastOnce).unwrap();
    let big = Message::new("t", vec![0u8; 80], QoS::AtLeastOnce).unwrap();
    assert!(conn.publish(small).is_ok());
    assert!(matches!(
        conn.publish(big),
        Err(PublishError::TooLarge { max: 64, size }) if size > 64
    ));
    assert_eq!(publishes(&sent(&mut conn, now)).len(), 1);
    // A SUBSCRIBE too.
    let filter = TopicFilter::new("x".repeat(80)).unwrap();
    let sub = vec![Subscription {
        filter,
        options: SubscriptionOptions::new(QoS::AtMostOnce),
    }];
    assert!(matches!(
        conn.subscribe(sub, SubscribeProperties::default()),
        Err(Error::Encode(_))
    ));
}

#[test]
fn topic_aliases_stay_within_the_servers_maximum() {
    let now = Instant::now();
    let mut conn = connected(SessionState::new(), false, limits(10, 0, 1), now);
    for topic in ["a", "a", "b", "a"] {
        conn.publish(msg(topic, QoS::AtMostOnce)).unwrap();
    }
    assert_eq!(
        publishes(&sent(&mut conn, now)),
        [
            (0, false, "a".into(), Some(1)),
            (0, false, String::new(), Some(1)),
            (0, false, "b".into(), None),
            (0, false, String::new(), Some(1)),
        ]
    );
}

#[test]
fn a_reconnect_with_the_session_resends_in_flight_in_order_with_dup() {
    let now = Instant::now();
    let mut first = connected(SessionState::new(), false, limits(10, 0, 5), now);
    first.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    first.publish(msg("b", QoS::ExactlyOnce)).unwrap();
    first.publish(msg("a", QoS::ExactlyOnce)).unwrap();
    sent(&mut first, now);
    first.handle_packet(Packet::PubRec(ack(2)), now).unwrap();
    sent(&mut first, now);
    let state = first.into_state();

    let mut second = connected(state, true, limits(10, 0, 5), now);
    let packets = sent(&mut second, now);
    // In order: PUBLISH 1 (DUP, topic in full: aliases are per connection), PUBREL 2,
    // PUBLISH 3 (DUP).
    assert_eq!(packets.len(), 3);
    assert_eq!(publishes(&packets[..1]), [(1, true, "a".into(), Some(1))]);
    assert_eq!(packets[1], Packet::PubRel(ack(2)));
    assert_eq!(
        publishes(&packets[2..]),
        [(3, true, String::new(), Some(1))]
    );
    second.handle_packet(Packet::PubAck(ack(1)), now).unwrap();
    second.handle_packet(Packet::PubComp(ack(2)), now).unwrap();
    second.handle_packet(Packet::PubRec(ack(3)), now).unwrap();
    second.handle_packet(Packet::PubComp(ack(3)), now).unwrap();
    assert_eq!(published(&events(&mut second)).len(), 3);
    assert_eq!(second.state().in_flight(), 0);
}

#[test]
fn a_lost_session_resends_what_was_not_accepted_and_settles_what_was() {
    let now = Instant::now();
    let mut first = connected(
        SessionState::new(),
        false,
        ConnAckProperties::default(),
        now,
    );
    first.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    let released = first.publish(msg("b", QoS::ExactlyOnce)).unwrap();
    sent(&mut first, now);
    first.handle_packet(Packet::PubRec(ack(2)), now).unwrap();
    let mut inbound = Publish::new(TopicName::new("in").unwrap(), Bytes::new());
    inbound.qos = PublishQoS::ExactlyOnce(id(9));
    first.handle_packet(Packet::Publish(inbound), now).unwrap();
    let state = first.into_state();
    assert_eq!(state.inbound_pending(), 1);

    let mut second = Connection::new(&options(), state, now).unwrap();
    second
        .handle_packet(connack(false, ConnAckProperties::default()), now)
        .unwrap();
    let packets = sent(&mut second, now);
    assert_eq!(publishes(&packets), [(1, true, "a".into(), None)]);
    assert_eq!(packets.len(), 2, "CONNECT and the resend only: {packets:?}");
    assert_eq!(
        published(&events(&mut second)),
        [(released.0, Ok(ReasonCode::Success))]
    );
    assert_eq!(second.state().inbound_pending(), 0);
}

#[test]
fn publishing_before_connack_queues_qos1_and_refuses_qos0() {
    let now = Instant::now();
    let mut conn = Connection::new(&options(), SessionState::new(), now).unwrap();
    assert_eq!(
        conn.publish(msg("a", QoS::AtMostOnce)),
        Err(PublishError::NotConnected)
    );
    conn.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    assert_eq!(sent(&mut conn, now).len(), 1, "CONNECT only");
    conn.handle_packet(connack(false, ConnAckProperties::default()), now)
        .unwrap();
    assert_eq!(
        publishes(&sent(&mut conn, now)),
        [(1, false, "a".into(), None)]
    );
}

#[test]
fn messages_queued_between_connections_go_out_on_the_next_and_complete_there() {
    let now = Instant::now();
    let mut state = SessionState::new();
    assert_eq!(state.enqueue(msg("zero", QoS::AtMostOnce)), None);
    let first = state.enqueue(msg("one", QoS::AtLeastOnce)).unwrap();
    let second = state.enqueue(msg("two", QoS::ExactlyOnce)).unwrap();
    assert_eq!(state.queued(), 2);
    let mut conn = connected(state, false, limits(1, 1 << 20, 0), now);
    // Within the new connection's Receive Maximum of 1, in order.
    assert_eq!(
        publishes(&sent(&mut conn, now)),
        [(1, false, "one".into(), None)]
    );
    conn.handle_packet(Packet::PubAck(ack(1)), now).unwrap();
    assert_eq!(
        publishes(&sent(&mut conn, now)),
        [(2, false, "two".into(), None)]
    );
    conn.handle_packet(Packet::PubRec(ack(2)), now).unwrap();
    conn.handle_packet(Packet::PubComp(ack(2)), now).unwrap();
    let done: Vec<u64> = published(&events(&mut conn))
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(done, [first.0, second.0]);
}

#[test]
fn a_snapshot_restores_the_same_state_and_the_next_connection_resends_it() {
    let now = Instant::now();
    let mut conn = connected(SessionState::new(), false, limits(1, 0, 0), now);
    let mut with_props = msg("a", QoS::ExactlyOnce);
    with_props.properties.content_type = Some("text/plain".into());
    with_props.retain = true;
    conn.publish(with_props).unwrap();
    conn.publish(msg("b", QoS::AtLeastOnce)).unwrap();
    sent(&mut conn, now);
    conn.handle_packet(Packet::PubRec(ack(1)), now).unwrap();
    let mut inbound = Publish::new(TopicName::new("in").unwrap(), Bytes::new());
    inbound.qos = PublishQoS::ExactlyOnce(id(42));
    conn.handle_packet(Packet::Publish(inbound), now).unwrap();
    let state = conn.into_state();
    let snapshot = state.snapshot();
    assert_eq!(
        (
            snapshot.in_flight.len(),
            snapshot.queued.len(),
            snapshot.inbound_qos2.as_slice()
        ),
        (1, 1, &[42][..])
    );
    let restored = SessionState::restore(snapshot).unwrap();
    assert_eq!(restored, state);

    let mut next = connected(restored, true, ConnAckProperties::default(), now);
    let packets = sent(&mut next, now);
    assert_eq!(packets[0], Packet::PubRel(ack(1)));
    assert_eq!(publishes(&packets[1..]), [(2, false, "b".into(), None)]);
    // A snapshot that lies is refused.
    let mut bad = state.snapshot();
    bad.in_flight[0].publish.truncate(3);
    assert!(SessionState::restore(bad).is_err());
}
