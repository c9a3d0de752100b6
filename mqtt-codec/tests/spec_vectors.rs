//! Byte vectors built from the examples in the MQTT 3.1.1 and 5.0 specifications (the
//! figures of each packet's variable header and payload), decoded to the packet the text
//! describes and encoded back to the same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// Tests fill property structs field by field, as users of the codec do.
#![allow(clippy::field_reassign_with_default)]

use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use mqtt_codec::*;

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// Decodes `bytes` as one whole packet and checks that encoding it gives `bytes` back.
fn check(version: ProtocolVersion, bytes: &[u8], expected: Packet) {
    let mut decoder = match expected {
        Packet::Connect(_) => Decoder::new(),
        _ => Decoder::with_version(version),
    };
    let mut buf = BytesMut::from(bytes);
    let decoded = decoder.decode(&mut buf).unwrap().expect("a whole packet");
    assert!(buf.is_empty(), "bytes left after the packet");
    assert_eq!(decoded, expected);
    let mut out = BytesMut::new();
    expected.encode(version, &mut out).unwrap();
    assert_eq!(
        &out[..],
        bytes,
        "encoding differs from the specification's bytes"
    );
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).unwrap()
}

/// The CONNECT of 3.1.1 figure 3.6 / 5.0 figure 3-7: flags 0xCE (user name, password,
/// will QoS 1, will, clean session), keep alive 10; the payload is ours.
fn example_connect(version: ProtocolVersion) -> Connect {
    let mut c = Connect::new(version, ClientId::new("c1").unwrap());
    c.keep_alive = 10;
    c.will = Some(LastWill {
        topic: topic("w"),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    c.username = Some(ByteString::from("u"));
    c.password = Some(Bytes::from_static(b"p"));
    c
}

#[test]
fn connect_v3_1_1_figure_3_6() {
    let bytes = [
        0x10, 0x1A, // fixed header
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A, // variable header
        0x00, 0x02, b'c', b'1', // client id
        0x00, 0x01, b'w', 0x00, 0x01, b'x', // will topic, will payload
        0x00, 0x01, b'u', 0x00, 0x01, b'p', // user name, password
    ];
    check(
        V3_1_1,
        &bytes,
        Packet::Connect(Box::new(example_connect(V3_1_1))),
    );
}

#[test]
fn connect_v5_figure_3_7_with_session_expiry_10() {
    let bytes = [
        0x10, 0x21, // fixed header
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xCE, 0x00, 0x0A, // variable header
        0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, // properties: session expiry interval 10
        0x00, 0x02, b'c', b'1', // client id
        0x00, // will properties: none
        0x00, 0x01, b'w', 0x00, 0x01, b'x', // will topic, will payload
        0x00, 0x01, b'u', 0x00, 0x01, b'p', // user name, password
    ];
    let mut c = example_connect(V5);
    c.properties.session_expiry_interval = Some(10);
    check(V5, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v3_1_uses_mqisdp() {
    let bytes = [
        0x10, 0x10, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3C, 0x00,
        0x02, b'c', b'1',
    ];
    let c = Connect::new(V3_1, ClientId::new("c1").unwrap());
    check(V3_1, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn connack_v3_1_1_accepted_and_refused() {
    check(
        V3_1_1,
        &[0x20, 0x02, 0x00, 0x00],
        Packet::ConnAck(Box::default()),
    );
    let mut present = ConnAck::default();
    present.session_present = true;
    check(
        V3_1_1,
        &[0x20, 0x02, 0x01, 0x00],
        Packet::ConnAck(Box::new(present)),
    );
    let mut refused = ConnAck::default();
    refused.reason_code = ReasonCode::BadUserNameOrPassword;
    check(
        V3_1_1,
        &[0x20, 0x02, 0x00, 0x04],
        Packet::ConnAck(Box::new(refused)),
    );
}

#[test]
fn connack_v5_with_properties() {
    let bytes = [
        0x20, 0x0D, 0x00, 0x00, // flags, success
        0x0A, // properties length
        0x21, 0x00, 0x14, // receive maximum 20
        0x24, 0x01, // maximum QoS 1
        0x12, 0x00, 0x02, b'i', b'd', // assigned client identifier "id"
    ];
    let mut ack = ConnAck::default();
    ack.properties.receive_maximum = NonZeroU16::new(20);
    ack.properties.maximum_qos = Some(QoS::AtLeastOnce);
    ack.properties.assigned_client_identifier = Some(ByteString::from("id"));
    check(V5, &bytes, Packet::ConnAck(Box::new(ack)));
}

#[test]
fn publish_v3_1_1_figure_3_11_topic_a_b_id_10() {
    let bytes = [
        0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i',
    ];
    let mut p = Publish::new(topic("a/b"), Bytes::from_static(b"hi"));
    p.qos = PublishQoS::AtLeastOnce(id(10));
    check(V3_1_1, &bytes, Packet::Publish(p));
}

#[test]
fn publish_v5_figure_3_9_with_empty_properties() {
    let bytes = [
        0x3D, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, 0x00, b'h', b'i',
    ];
    let mut p = Publish::new(topic("a/b"), Bytes::from_static(b"hi"));
    p.qos = PublishQoS::ExactlyOnce(id(10));
    p.dup = true;
    p.retain = true;
    check(V5, &bytes, Packet::Publish(p));
}

#[test]
fn utf8_example_a_with_cjk_supplementary_character() {
    // Figure 1.3 (3.1.1) / 1-1 (5.0): "A\u{2A6D4}" is 0x00 0x05 0x41 0xF0 0xAA 0x9B 0x94.
    let bytes = [0x30, 0x07, 0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94];
    let p = Publish::new(topic("A\u{2A6D4}"), Bytes::new());
    check(V3_1_1, &bytes, Packet::Publish(p));
}

#[test]
fn publish_v5_with_alias_and_no_topic() {
    let bytes = [0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07];
    let mut p = Publish::new(TopicName::empty(), Bytes::new());
    p.properties_mut().topic_alias = NonZeroU16::new(7);
    check(V5, &bytes, Packet::Publish(p));
}

#[test]
fn acknowledgements_v3_1_1() {
    check(
        V3_1_1,
        &[0x40, 0x02, 0x00, 0x0A],
        Packet::PubAck(Ack::new(id(10))),
    );
    check(
        V3_1_1,
        &[0x50, 0x02, 0x00, 0x0A],
        Packet::PubRec(Ack::new(id(10))),
    );
    check(
        V3_1_1,
        &[0x62, 0x02, 0x00, 0x0A],
        Packet::PubRel(Ack::new(id(10))),
    );
    check(
        V3_1_1,
        &[0x70, 0x02, 0x00, 0x0A],
        Packet::PubComp(Ack::new(id(10))),
    );
}

#[test]
fn acknowledgements_v5_short_forms_and_reason_codes() {
    // Remaining length 2: success without properties (3.4.2.1).
    check(
        V5,
        &[0x40, 0x02, 0x00, 0x0A],
        Packet::PubAck(Ack::new(id(10))),
    );
    let mut ack = Ack::new(id(10));
    ack.reason_code = ReasonCode::NoMatchingSubscribers;
    check(V5, &[0x40, 0x03, 0x00, 0x0A, 0x10], Packet::PubAck(ack));
    let mut rel = Ack::new(id(1));
    rel.reason_code = ReasonCode::PacketIdentifierNotFound;
    rel.properties.reason_string = Some(ByteString::from("gone"));
    check(
        V5,
        &[
            0x62, 0x0B, 0x00, 0x01, 0x92, 0x07, 0x1F, 0x00, 0x04, b'g', b'o', b'n', b'e',
        ],
        Packet::PubRel(rel),
    );
    // An explicit success code with zero-length properties decodes to the same packet.
    let mut decoder = Decoder::with_version(V5);
    let mut long = BytesMut::from(&[0x40, 0x04, 0x00, 0x0A, 0x00, 0x00][..]);
    assert_eq!(
        decoder.decode(&mut long).unwrap(),
        Some(Packet::PubAck(Ack::new(id(10))))
    );
}

#[test]
fn subscribe_v3_1_1_figure_3_23_two_filters() {
    let bytes = [
        0x82, 0x0E, 0x00, 0x0A, // packet id 10
        0x00, 0x03, b'a', b'/', b'b', 0x01, // "a/b" QoS 1
        0x00, 0x03, b'c', b'/', b'd', 0x02, // "c/d" QoS 2
    ];
    let sub = Subscribe {
        packet_id: id(10),
        subscriptions: vec![
            Subscription {
                filter: filter("a/b"),
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            },
            Subscription {
                filter: filter("c/d"),
                options: SubscriptionOptions::new(QoS::ExactlyOnce),
            },
        ],
        properties: SubscribeProperties::default(),
    };
    check(V3_1_1, &bytes, Packet::Subscribe(sub));
}

#[test]
fn subscribe_v5_options_and_subscription_identifier() {
    let bytes = [
        0x82, 0x0F, 0x00, 0x01, // packet id 1
        0x02, 0x0B, 0x05, // subscription identifier 5
        0x00, 0x03, b'a', b'/', b'#', 0x2E, // QoS 2, no local, retain as published, RH 2
        0x00, 0x01, b'+', 0x00,
    ];
    let mut properties = SubscribeProperties::default();
    properties.subscription_identifier = SubscriptionId::new(5);
    let sub = Subscribe {
        packet_id: id(1),
        subscriptions: vec![
            Subscription {
                filter: filter("a/#"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            Subscription {
                filter: filter("+"),
                options: SubscriptionOptions::new(QoS::AtMostOnce),
            },
        ],
        properties,
    };
    check(V5, &bytes, Packet::Subscribe(sub));
}

#[test]
fn suback_v3_1_1_figure_3_26() {
    let ack = SubAck {
        packet_id: id(10),
        reason_codes: vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ],
        properties: AckProperties::default(),
    };
    check(
        V3_1_1,
        &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80],
        Packet::SubAck(ack),
    );
}

#[test]
fn unsubscribe_and_unsuback() {
    let unsub = Unsubscribe {
        packet_id: id(10),
        filters: vec![filter("a/b"), filter("c/d")],
        properties: UnsubscribeProperties::default(),
    };
    let bytes = [
        0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd',
    ];
    check(V3_1_1, &bytes, Packet::Unsubscribe(unsub.clone()));
    let mut v5 = bytes.to_vec();
    v5[1] += 1;
    v5.insert(4, 0x00);
    check(V5, &v5, Packet::Unsubscribe(unsub));

    let v3_ack = UnsubAck {
        packet_id: id(10),
        reason_codes: Vec::new(),
        properties: AckProperties::default(),
    };
    check(V3_1_1, &[0xB0, 0x02, 0x00, 0x0A], Packet::UnsubAck(v3_ack));
    let v5_ack = UnsubAck {
        packet_id: id(10),
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        properties: AckProperties::default(),
    };
    check(
        V5,
        &[0xB0, 0x05, 0x00, 0x0A, 0x00, 0x00, 0x11],
        Packet::UnsubAck(v5_ack),
    );
}

#[test]
fn ping_and_disconnect() {
    for v in [V3_1, V3_1_1, V5] {
        check(v, &[0xC0, 0x00], Packet::PingReq);
        check(v, &[0xD0, 0x00], Packet::PingResp);
        check(v, &[0xE0, 0x00], Packet::Disconnect(Disconnect::default()));
    }
    check(
        V5,
        &[0xE0, 0x01, 0x8E],
        Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver)),
    );
    let mut d = Disconnect::new(ReasonCode::DisconnectWithWillMessage);
    d.properties.session_expiry_interval = Some(0);
    check(
        V5,
        &[0xE0, 0x07, 0x04, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00],
        Packet::Disconnect(d),
    );
}

#[test]
fn auth_v5() {
    check(V5, &[0xF0, 0x00], Packet::Auth(Auth::default()));
    let mut a = Auth::default();
    a.reason_code = ReasonCode::ContinueAuthentication;
    a.properties.authentication_method = Some(ByteString::from("SCRAM"));
    a.properties.authentication_data = Some(Bytes::from_static(&[1, 2]));
    check(
        V5,
        &[
            0xF0, 0x0F, 0x18, 0x0D, 0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', 0x16, 0x00,
            0x02, 0x01, 0x02,
        ],
        Packet::Auth(a),
    );
}

#[test]
fn user_properties_keep_order_and_repeats() {
    let bytes = [
        0x30, 0x14, 0x00, 0x01, b't', 0x10, // topic, properties length 16
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'1', // k=1
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'2', // k=2
        0x0B, 0x01, // subscription id 1
    ];
    let mut p = Publish::new(topic("t"), Bytes::new());
    p.properties_mut().user_properties =
        vec![UserProperty::new("k", "1"), UserProperty::new("k", "2")];
    p.properties_mut().subscription_identifiers = vec![SubscriptionId::new(1).unwrap()];
    // Encoding writes declared properties before user properties, so compare the decode
    // only, then round-trip.
    let mut buf = BytesMut::from(&bytes[..]);
    let decoded = Decoder::with_version(V5).decode(&mut buf).unwrap().unwrap();
    assert_eq!(decoded, Packet::Publish(p.clone()));
    let mut out = BytesMut::new();
    decoded.encode(V5, &mut out).unwrap();
    assert_eq!(
        Decoder::with_version(V5).decode(&mut out).unwrap(),
        Some(Packet::Publish(p))
    );
}

#[test]
fn a_large_remaining_length_uses_four_bytes() {
    let payload = Bytes::from(vec![0xAB; 2_097_152]);
    let p = Packet::Publish(Publish::new(topic("t"), payload));
    let mut out = BytesMut::new();
    p.encode(V3_1_1, &mut out).unwrap();
    // 3 + 2,097,152 = 2^21 + 3: 0x83 0x80 0x80 0x01.
    assert_eq!(&out[..5], &[0x30, 0x83, 0x80, 0x80, 0x01]);
    assert_eq!(
        Decoder::with_version(V3_1_1).decode(&mut out).unwrap(),
        Some(p)
    );
}

/// Decodes `bytes` as one whole packet on a connection of `version` (no re-encoding check).
fn decode_one(version: Option<ProtocolVersion>, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut decoder = match version {
        Some(v) => Decoder::with_version(v),
        None => Decoder::new(),
    };
    let mut buf = BytesMut::from(bytes);
    decoder.decode(&mut buf).map(|p| p.expect("a whole packet"))
}

#[test]
fn bridges_set_bit_0x80_of_the_protocol_level_in_3_1_and_3_1_1() {
    // Mosquitto's bridge with try_private: "MQTT", level 0x84.
    let bytes = [
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x84, 0x02, 0x00, 0x3C, 0x00, 0x02, b'c',
        b'1',
    ];
    let mut c = Connect::new(V3_1_1, ClientId::new("c1").unwrap());
    c.bridge = true;
    check(V3_1_1, &bytes, Packet::Connect(Box::new(c)));
    let bytes = [
        0x10, 0x10, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x83, 0x02, 0x00, 0x3C, 0x00,
        0x02, b'c', b'1',
    ];
    let mut c = Connect::new(V3_1, ClientId::new("c1").unwrap());
    c.bridge = true;
    check(V3_1, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn the_bridge_bit_does_not_exist_in_5_0() {
    let bytes = [
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x85, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x02,
        b'c', b'1',
    ];
    assert_eq!(
        decode_one(None, &bytes),
        Err(DecodeError::UnsupportedProtocol {
            level: 0x85,
            known_name: true
        })
    );
    let mut c = Connect::new(V5, ClientId::new("c1").unwrap());
    c.bridge = true;
    let mut out = BytesMut::new();
    assert!(Packet::Connect(Box::new(c)).encode(V5, &mut out).is_err());
}

#[test]
fn mqtt_3_1_allows_dup_on_pubrel_subscribe_and_unsubscribe() {
    // A PUBREL resent with DUP, as 3.1 clients do: `6A 02 00 01`.
    assert_eq!(
        decode_one(Some(V3_1), &[0x6A, 0x02, 0x00, 0x01]),
        Ok(Packet::PubRel(Ack::new(id(1))))
    );
    let subscribe = decode_one(
        Some(V3_1),
        &[0x8A, 0x06, 0x00, 0x02, 0x00, 0x01, b't', 0x01],
    );
    assert!(
        matches!(subscribe, Ok(Packet::Subscribe(_))),
        "{subscribe:?}"
    );
    let unsubscribe = decode_one(Some(V3_1), &[0xAA, 0x05, 0x00, 0x03, 0x00, 0x01, b't']);
    assert!(
        matches!(unsubscribe, Ok(Packet::Unsubscribe(_))),
        "{unsubscribe:?}"
    );
    // 3.1.1 and 5.0 require exactly 0b0010.
    for version in [V3_1_1, V5] {
        assert_eq!(
            decode_one(Some(version), &[0x6A, 0x02, 0x00, 0x01]),
            Err(DecodeError::InvalidFixedHeaderFlags {
                packet: PacketType::PubRel,
                flags: 0x0A
            })
        );
    }
}

#[test]
fn mqtt_3_1_connack_has_no_session_present_flag() {
    check(
        V3_1,
        &[0x20, 0x02, 0x00, 0x00],
        Packet::ConnAck(Box::default()),
    );
    let ack = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    let mut out = BytesMut::new();
    assert!(
        Packet::ConnAck(Box::new(ack))
            .encode(V3_1, &mut out)
            .is_err()
    );
}
