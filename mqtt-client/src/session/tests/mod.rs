//! The sans-IO core against a scripted server, in virtual time: no sockets, no sleeps.
//! Here: CONNECT/CONNACK, keep alive, inbound messages, SUBSCRIBE; `flow`: publishing (QoS
//! flows, Receive Maximum, sizes, aliases, reconnects, snapshots).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{
    Ack, ConnAck, ConnAckProperties, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS,
    ReasonCode, SubAck, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
    TopicName,
};

mod flow;

use super::{Connection, Event};
use crate::{
    ConnectOptions, Error, Message, ProtocolError, PublishError, SessionState, TimeoutKind,
};

pub(super) fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub(super) fn connack(session_present: bool, properties: ConnAckProperties) -> Packet {
    Packet::ConnAck(Box::new(ConnAck {
        session_present,
        reason_code: ReasonCode::Success,
        properties,
    }))
}

pub(super) fn limits(
    receive_maximum: u16,
    maximum_packet_size: u32,
    topic_alias_maximum: u16,
) -> ConnAckProperties {
    ConnAckProperties {
        receive_maximum: NonZeroU16::new(receive_maximum),
        maximum_packet_size: NonZeroU32::new(maximum_packet_size),
        topic_alias_maximum: Some(topic_alias_maximum),
        ..ConnAckProperties::default()
    }
}

pub(super) fn options() -> ConnectOptions {
    ConnectOptions::new("tester")
        .clean_start(false)
        .keep_alive(10)
}

/// Every packet queued, in order.
pub(super) fn sent(conn: &mut Connection, now: Instant) -> Vec<Packet> {
    std::iter::from_fn(|| conn.poll_transmit(now)).collect()
}

pub(super) fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// A connection past CONNACK (CONNECT and the Connected event drained).
pub(super) fn connected(
    state: SessionState,
    present: bool,
    props: ConnAckProperties,
    now: Instant,
) -> Connection {
    let mut conn = Connection::new(&options(), state, now).unwrap();
    assert!(matches!(conn.poll_transmit(now), Some(Packet::Connect(_))));
    conn.handle_packet(connack(present, props), now).unwrap();
    assert!(matches!(conn.poll_event(), Some(Event::Connected(_))));
    conn
}

pub(super) fn msg(topic: &str, qos: QoS) -> Message {
    Message::new(topic, Bytes::from_static(b"payload"), qos).unwrap()
}

/// (packet id, dup, topic, alias) of each PUBLISH among `packets`.
pub(super) fn publishes(packets: &[Packet]) -> Vec<(u16, bool, String, Option<u16>)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                p.qos.packet_id().map_or(0, PacketId::get),
                p.dup,
                p.topic().to_owned(),
                p.properties().topic_alias.map(NonZeroU16::get),
            )),
            _ => None,
        })
        .collect()
}

pub(super) fn ack(n: u16) -> Ack {
    Ack::new(id(n))
}

pub(super) fn published(events: &[Event]) -> Vec<(u64, Result<ReasonCode, PublishError>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Published { ticket, result } => Some((ticket.0, result.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_connect_follows_the_options_and_the_params_follow_the_connack() {
    let now = Instant::now();
    let mut conn =
        Connection::new(&options().session_expiry(60), SessionState::new(), now).unwrap();
    let Some(Packet::Connect(connect)) = conn.poll_transmit(now) else {
        panic!("no CONNECT");
    };
    assert_eq!(
        (
            connect.client_id.as_str(),
            connect.clean_start,
            connect.keep_alive
        ),
        ("tester", false, 10)
    );
    assert_eq!(connect.properties.session_expiry_interval, Some(60));
    assert!(conn.params().is_none());
    let mut props = limits(3, 200, 2);
    props.server_keep_alive = Some(5);
    props.assigned_client_identifier = Some("assigned".into());
    props.retain_available = Some(false);
    props.maximum_qos = Some(QoS::AtLeastOnce);
    conn.handle_packet(connack(true, props), now).unwrap();
    let params = conn.params().unwrap();
    assert_eq!(params.receive_maximum, 3);
    assert_eq!(params.maximum_packet_size, 200);
    assert_eq!(params.topic_alias_maximum, 2);
    assert_eq!(params.keep_alive, 5);
    assert_eq!(
        (params.client_id.as_str(), params.client_id_assigned),
        ("assigned", true)
    );
    assert!(params.session_present && !params.retain_available);
    assert_eq!(params.maximum_qos, QoS::AtLeastOnce);
    assert_eq!(params.session_expiry, Some(60));
    // What the CONNACK forbids is refused, never sent.
    assert_eq!(
        conn.publish(msg("t", QoS::ExactlyOnce)),
        Err(PublishError::QosNotSupported {
            max: QoS::AtLeastOnce
        })
    );
    assert_eq!(
        conn.publish(msg("t", QoS::AtMostOnce).retained()),
        Err(PublishError::RetainNotAvailable)
    );
    assert!(sent(&mut conn, now).is_empty());
}

#[test]
fn keep_alive_pings_when_idle_and_gives_up_after_one_and_a_half_periods() {
    let t0 = Instant::now();
    let mut conn = connected(SessionState::new(), false, ConnAckProperties::default(), t0);
    let s = Duration::from_secs;
    assert_eq!(conn.poll_timeout(), Some(t0 + s(10)));
    conn.handle_timeout(t0 + s(9)).unwrap();
    assert!(sent(&mut conn, t0 + s(9)).is_empty());
    conn.handle_timeout(t0 + s(10)).unwrap();
    assert_eq!(sent(&mut conn, t0 + s(10)), [Packet::PingReq]);
    // The server is silent: dead at 15 s.
    assert_eq!(conn.poll_timeout(), Some(t0 + s(15)));
    assert!(matches!(
        conn.handle_timeout(t0 + s(15)),
        Err(Error::Timeout(TimeoutKind::KeepAlive))
    ));
    assert!(conn.is_closed());

    // An answer keeps it alive; the server's keep alive overrides ours.
    let props = ConnAckProperties {
        server_keep_alive: Some(4),
        ..ConnAckProperties::default()
    };
    let mut conn = connected(SessionState::new(), false, props, t0);
    conn.handle_timeout(t0 + s(4)).unwrap();
    assert_eq!(sent(&mut conn, t0 + s(4)), [Packet::PingReq]);
    conn.handle_packet(Packet::PingResp, t0 + s(5)).unwrap();
    conn.handle_timeout(t0 + s(7)).unwrap();
    assert!(conn.is_connected());
    assert_eq!(conn.poll_timeout(), Some(t0 + s(8)));
}

#[test]
fn bytes_the_driver_holds_back_keep_the_server_alive() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut conn = connected(SessionState::new(), false, ConnAckProperties::default(), t0);
    conn.handle_activity(t0 + s(12));
    // Silent since CONNACK as far as handled packets go, but not dead at 15 s.
    conn.handle_timeout(t0 + s(15)).unwrap();
    assert!(conn.is_connected());
    assert_eq!(sent(&mut conn, t0 + s(15)), [Packet::PingReq]);
    conn.handle_timeout(t0 + s(26)).unwrap();
    assert!(matches!(
        conn.handle_timeout(t0 + s(27)),
        Err(Error::Timeout(TimeoutKind::KeepAlive))
    ));
}

#[test]
fn no_connack_in_time_is_a_timeout_and_a_refusal_says_why() {
    let t0 = Instant::now();
    let mut conn = Connection::new(&options(), SessionState::new(), t0).unwrap();
    assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    assert!(matches!(
        conn.handle_timeout(t0 + Duration::from_secs(10)),
        Err(Error::Timeout(TimeoutKind::Connect))
    ));
    let mut conn = Connection::new(&options(), SessionState::new(), t0).unwrap();
    let refused = Packet::ConnAck(Box::new(ConnAck {
        session_present: false,
        reason_code: ReasonCode::NotAuthorized,
        properties: ConnAckProperties::default(),
    }));
    assert!(matches!(
        conn.handle_packet(refused, t0),
        Err(Error::Refused {
            reason: ReasonCode::NotAuthorized,
            ..
        })
    ));
    // A timeout too long for the clock is no timeout (and no overflow).
    let mut forever = options();
    forever.connect_timeout = Duration::MAX;
    let conn = Connection::new(&forever, SessionState::new(), t0).unwrap();
    assert_eq!(conn.poll_timeout(), None);
    // Anything but CONNACK first is a protocol error.
    let mut conn = Connection::new(&options(), SessionState::new(), t0).unwrap();
    assert!(matches!(
        conn.handle_packet(Packet::PingResp, t0),
        Err(Error::Protocol(ProtocolError::Unexpected(_)))
    ));
}

#[test]
fn inbound_messages_are_acknowledged_deduplicated_and_aliases_resolved() {
    let now = Instant::now();
    let mut opts = options();
    opts.topic_alias_maximum = 2;
    opts.receive_maximum = NonZeroU16::new(1);
    let mut conn = Connection::new(&opts, SessionState::new(), now).unwrap();
    conn.handle_packet(connack(false, ConnAckProperties::default()), now)
        .unwrap();
    sent(&mut conn, now);
    events(&mut conn);

    let mut one = Publish::new(TopicName::new("x/y").unwrap(), Bytes::from("1"));
    one.qos = PublishQoS::AtLeastOnce(id(7));
    one.properties_mut().topic_alias = NonZeroU16::new(2);
    conn.handle_packet(Packet::Publish(one), now).unwrap();
    let mut two = Publish::new(TopicName::empty(), Bytes::from("2"));
    two.qos = PublishQoS::ExactlyOnce(id(8));
    two.properties_mut().topic_alias = NonZeroU16::new(2);
    conn.handle_packet(Packet::Publish(two.clone()), now)
        .unwrap();
    // The resend of a QoS 2 message is acknowledged, not delivered again.
    two.dup = true;
    conn.handle_packet(Packet::Publish(two.clone()), now)
        .unwrap();
    assert_eq!(
        sent(&mut conn, now),
        [
            Packet::PubAck(ack(7)),
            Packet::PubRec(ack(8)),
            Packet::PubRec(ack(8))
        ]
    );
    let delivered: Vec<(String, Vec<u8>)> = events(&mut conn)
        .into_iter()
        .map(|e| match e {
            Event::Message(p) => (p.topic().to_owned(), p.payload().to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        delivered,
        [("x/y".into(), b"1".to_vec()), ("x/y".into(), b"2".to_vec())]
    );
    // A second QoS 2 message before PUBREL exceeds our Receive Maximum of 1.
    let mut three = Publish::new(TopicName::new("z").unwrap(), Bytes::new());
    three.qos = PublishQoS::ExactlyOnce(id(9));
    let mut probe = Connection::new(&opts, conn.state().clone(), now).unwrap();
    probe
        .handle_packet(connack(true, ConnAckProperties::default()), now)
        .unwrap();
    assert!(matches!(
        probe.handle_packet(Packet::Publish(three), now),
        Err(Error::Protocol(ProtocolError::ReceiveMaximumExceeded))
    ));
    conn.handle_packet(Packet::PubRel(ack(8)), now).unwrap();
    assert_eq!(sent(&mut conn, now), [Packet::PubComp(ack(8))]);
    assert_eq!(conn.state().inbound_pending(), 0);
    // An alias never set ends the connection with 0x94.
    let mut unknown = Publish::new(TopicName::empty(), Bytes::new());
    unknown.properties_mut().topic_alias = NonZeroU16::new(1);
    assert!(matches!(
        conn.handle_packet(Packet::Publish(unknown), now),
        Err(Error::Protocol(ProtocolError::TopicAliasInvalid(1)))
    ));
    assert!(matches!(
        sent(&mut conn, now).as_slice(),
        [Packet::Disconnect(d)] if d.reason_code == ReasonCode::TopicAliasInvalid
    ));
}

#[test]
fn manual_acknowledgements_wait_for_the_user_and_a_held_message_is_delivered_once() {
    let now = Instant::now();
    let mut opts = options();
    opts.manual_acks = true;
    let mut conn = Connection::new(&opts, SessionState::new(), now).unwrap();
    conn.handle_packet(connack(false, ConnAckProperties::default()), now)
        .unwrap();
    sent(&mut conn, now);
    events(&mut conn);

    let mut one = Publish::new(TopicName::new("a").unwrap(), Bytes::from("1"));
    one.qos = PublishQoS::AtLeastOnce(id(1));
    let mut two = Publish::new(TopicName::new("b").unwrap(), Bytes::from("2"));
    two.qos = PublishQoS::ExactlyOnce(id(2));
    conn.handle_packet(Packet::Publish(one.clone()), now)
        .unwrap();
    conn.handle_packet(Packet::Publish(two.clone()), now)
        .unwrap();
    // A resend of the held QoS 2 message: neither acknowledged nor delivered again.
    let mut resent = two.clone();
    resent.dup = true;
    conn.handle_packet(Packet::Publish(resent.clone()), now)
        .unwrap();
    assert_eq!(sent(&mut conn, now), []);
    assert_eq!(events(&mut conn).len(), 2);

    conn.acknowledge(&two);
    conn.acknowledge(&one);
    assert_eq!(
        sent(&mut conn, now),
        [Packet::PubRec(ack(2)), Packet::PubAck(ack(1))]
    );
    // Twice is once.
    conn.acknowledge(&two);
    assert_eq!(sent(&mut conn, now), []);

    // The connection drops before PUBREL; the next one gets the resend and acknowledges it
    // at once, without delivering it a second time (the user had it).
    let mut next = Connection::new(&opts, conn.into_state(), now).unwrap();
    next.handle_packet(connack(true, ConnAckProperties::default()), now)
        .unwrap();
    sent(&mut next, now);
    events(&mut next);
    next.handle_packet(Packet::Publish(resent), now).unwrap();
    assert_eq!(sent(&mut next, now), [Packet::PubRec(ack(2))]);
    assert_eq!(events(&mut next), []);
    next.handle_packet(Packet::PubRel(ack(2)), now).unwrap();
    assert_eq!(sent(&mut next, now), [Packet::PubComp(ack(2))]);
}

#[test]
fn subscribe_gets_its_suback_and_a_stray_one_is_an_error() {
    let now = Instant::now();
    let mut conn = connected(
        SessionState::new(),
        false,
        ConnAckProperties::default(),
        now,
    );
    let subs = vec![
        Subscription {
            filter: TopicFilter::new("a/#").unwrap(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        },
        Subscription {
            filter: TopicFilter::new("b").unwrap(),
            options: SubscriptionOptions::new(QoS::ExactlyOnce),
        },
    ];
    let pid = conn
        .subscribe(subs, SubscribeProperties::default())
        .unwrap();
    // A publication meanwhile gets another identifier.
    conn.publish(msg("a", QoS::AtLeastOnce)).unwrap();
    let packets = sent(&mut conn, now);
    assert!(matches!(&packets[0], Packet::Subscribe(s) if s.packet_id == pid));
    assert_ne!(publishes(&packets)[0].0, pid.get());
    let codes = vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized];
    conn.handle_packet(
        Packet::SubAck(SubAck {
            packet_id: pid,
            reason_codes: codes.clone(),
            properties: Default::default(),
        }),
        now,
    )
    .unwrap();
    assert_eq!(
        events(&mut conn),
        [Event::Subscribed {
            packet_id: pid,
            reason_codes: codes
        }]
    );
    let stray = SubAck {
        packet_id: pid,
        reason_codes: vec![ReasonCode::Success],
        properties: Default::default(),
    };
    assert!(matches!(
        conn.handle_packet(Packet::SubAck(stray), now),
        Err(Error::Protocol(ProtocolError::BadSubAck(_)))
    ));
}

#[test]
fn mqtt_3_1_1_has_no_reason_codes_on_the_wire() {
    let now = Instant::now();
    let opts = options().version(ProtocolVersion::V3_1_1);
    let mut conn = Connection::new(&opts, SessionState::new(), now).unwrap();
    conn.handle_packet(connack(false, ConnAckProperties::default()), now)
        .unwrap();
    sent(&mut conn, now);
    // PUBREL for an identifier we do not have: PUBCOMP all the same (3.1.1 has no 0x92).
    conn.handle_packet(Packet::PubRel(ack(5)), now).unwrap();
    assert_eq!(sent(&mut conn, now), [Packet::PubComp(ack(5))]);
    // A protocol error closes without a DISCONNECT reason 3.1.1 cannot carry.
    assert!(conn.handle_packet(Packet::PingReq, now).is_err());
    assert!(sent(&mut conn, now).is_empty());
}
