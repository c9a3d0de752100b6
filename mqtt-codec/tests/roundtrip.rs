//! Generated packets of every type and version: `decode(encode(p)) == p`, `encoded_len`
//! is exact, and every strict prefix of an encoding is "incomplete", never an error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// Tests fill property structs field by field, as users of the codec do.
#![allow(clippy::field_reassign_with_default)]

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use mqtt_codec::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5),
    ]
}

fn text() -> impl Strategy<Value = ByteString> {
    "[a-zA-Z0-9 _/éü€😀-]{0,12}".prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn topic() -> impl Strategy<Value = TopicName> {
    "[a-z0-9$é]{1,6}(/[a-z0-9é]{0,6}){0,3}".prop_map(|s| TopicName::new(s).unwrap())
}

fn filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof!["[a-z0-9]{0,5}", Just("+".to_string())];
    (vec(level, 1..4), any::<bool>(), of("[a-z0-9]{1,5}")).prop_map(|(levels, hash, share)| {
        let mut filter = levels.join("/");
        if filter.is_empty() {
            filter.push('x');
        }
        if hash {
            filter.push_str("/#");
        }
        if let Some(group) = share {
            filter = format!("$share/{group}/{filter}");
        }
        TopicFilter::new(filter).unwrap()
    })
}

fn qos() -> impl Strategy<Value = QoS> {
    (0u8..3).prop_map(|q| QoS::from_u8(q).unwrap())
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1u16..).prop_map(|id| PacketId::new(id).unwrap())
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(
        (text(), text()).prop_map(|(n, v)| UserProperty::new(n, v)),
        0..3,
    )
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    (1u16..).prop_map(|v| NonZeroU16::new(v).unwrap())
}

fn nz32() -> impl Strategy<Value = NonZeroU32> {
    (1u32..).prop_map(|v| NonZeroU32::new(v).unwrap())
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
}

fn sub_id() -> impl Strategy<Value = SubscriptionId> {
    (1u32..=SubscriptionId::MAX).prop_map(|v| SubscriptionId::new(v).unwrap())
}

fn reason(allowed: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(allowed).prop_map(|c| ReasonCode::from_u8(c).unwrap())
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (of(any::<u32>()), of(nz16()), of(nz32()), of(any::<u16>())),
        (
            of(any::<bool>()),
            of(any::<bool>()),
            of(text()),
            of(binary()),
        ),
        user_properties(),
    )
        .prop_map(|((a, b, c, d), (e, f, g, h), user)| {
            let mut p = ConnectProperties::default();
            p.session_expiry_interval = a;
            p.receive_maximum = b;
            p.maximum_packet_size = c;
            p.topic_alias_maximum = d;
            p.request_response_information = e;
            p.request_problem_information = f;
            p.authentication_method = g;
            p.authentication_data = h;
            p.user_properties = user;
            p
        })
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        (of(any::<u32>()), of(payload_format()), of(any::<u32>())),
        (of(text()), of(topic()), of(binary())),
        user_properties(),
    )
        .prop_map(|((a, b, c), (d, e, f), user)| {
            let mut p = WillProperties::default();
            p.will_delay_interval = a;
            p.payload_format_indicator = b;
            p.message_expiry_interval = c;
            p.content_type = d;
            p.response_topic = e;
            p.correlation_data = f;
            p.user_properties = user;
            p
        })
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (topic(), binary(), qos(), any::<bool>(), will_properties()).prop_map(
        move |(topic, payload, qos, retain, props)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: if v.is_v5() { props } else { Default::default() },
        },
    );
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        of(will),
        of(text()),
        of(binary()),
        connect_properties(),
        any::<bool>(),
    )
        .prop_map(
            move |(clean, keep_alive, id, will, user, password, props, bridge)| {
                let mut c = Connect::new(v, ClientId::new(id).unwrap());
                c.clean_start = clean;
                c.keep_alive = keep_alive;
                c.will = will;
                // 3.1 and 3.1.1 forbid a password without a user name.
                c.username = if v.is_v5() || password.is_some() {
                    user.or_else(|| Some(ByteString::from("u")))
                } else {
                    user
                };
                c.password = password;
                if v.is_v5() {
                    c.properties = props;
                } else {
                    c.bridge = bridge;
                }
                Packet::Connect(Box::new(c))
            },
        )
}

const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const V3_CONNACK_CODES: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = (
        (
            of(any::<u32>()),
            of(nz16()),
            of(any::<bool>()),
            of(any::<bool>()),
        ),
        (of(nz32()), of(text()), of(any::<u16>()), of(text())),
        (
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<u16>()),
        ),
        (of(text()), of(text()), of(text()), of(binary())),
        user_properties(),
    )
        .prop_map(
            |((a, b, c, d), (e, f, g, h), (i, j, k, l), (m, n, o, p), user)| {
                let mut x = ConnAckProperties::default();
                x.session_expiry_interval = a;
                x.receive_maximum = b;
                x.maximum_qos = c.map(|one| {
                    if one {
                        QoS::AtLeastOnce
                    } else {
                        QoS::AtMostOnce
                    }
                });
                x.retain_available = d;
                x.maximum_packet_size = e;
                x.assigned_client_identifier = f;
                x.topic_alias_maximum = g;
                x.reason_string = h;
                x.wildcard_subscription_available = i;
                x.subscription_identifiers_available = j;
                x.shared_subscription_available = k;
                x.server_keep_alive = l;
                x.response_information = m;
                x.server_reference = n;
                x.authentication_method = o;
                x.authentication_data = p;
                x.user_properties = user;
                x
            },
        );
    let codes = if v.is_v5() {
        CONNACK_CODES
    } else {
        V3_CONNACK_CODES
    };
    (any::<bool>(), reason(codes), props).prop_map(move |(present, code, props)| {
        Packet::ConnAck(Box::new(ConnAck {
            session_present: present && code == ReasonCode::Success && v != ProtocolVersion::V3_1,
            reason_code: code,
            properties: if v.is_v5() { props } else { Default::default() },
        }))
    })
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = (
        (
            of(payload_format()),
            of(any::<u32>()),
            of(nz16()),
            of(topic()),
        ),
        (of(binary()), vec(sub_id(), 0..3), of(text())),
        user_properties(),
    )
        .prop_map(|((a, b, c, d), (e, f, g), user)| {
            let mut p = PublishProperties::default();
            p.payload_format_indicator = a;
            p.message_expiry_interval = b;
            p.topic_alias = c;
            p.response_topic = d;
            p.correlation_data = e;
            p.subscription_identifiers = f;
            p.content_type = g;
            p.user_properties = user;
            p
        });
    (
        any::<bool>(),
        qos(),
        packet_id(),
        any::<bool>(),
        topic(),
        vec(any::<u8>(), 0..64),
        props,
    )
        .prop_map(move |(dup, qos, id, retain, topic, payload, props)| {
            let qos = PublishQoS::with_packet_id(qos, id);
            let mut p = Publish::new(topic, Bytes::from(payload));
            p.dup = dup && qos != PublishQoS::AtMostOnce;
            p.qos = qos;
            p.retain = retain;
            if v.is_v5() {
                // An alias lets the topic be empty; exercise that too.
                if props.topic_alias.is_some() && dup {
                    p.set_topic(TopicName::empty());
                }
                *p.properties_mut() = props;
            }
            Packet::Publish(p)
        })
}

const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES: &[u8] = &[0x00, 0x92];

fn ack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        0u8..4,
        packet_id(),
        reason(PUBACK_CODES),
        reason(PUBREL_CODES),
        of(text()),
        user_properties(),
    )
        .prop_map(
            move |(kind, id, puback_code, pubrel_code, reason_string, user)| {
                let mut ack = Ack::new(id);
                if v.is_v5() {
                    ack.reason_code = if kind < 2 { puback_code } else { pubrel_code };
                    ack.properties.reason_string = reason_string;
                    ack.properties.user_properties = user;
                }
                match kind {
                    0 => Packet::PubAck(ack),
                    1 => Packet::PubRec(ack),
                    2 => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                }
            },
        )
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let options =
        (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(move |(q, nl, rap, rh)| {
            let mut o = SubscriptionOptions::new(q);
            if v.is_v5() {
                o.no_local = nl;
                o.retain_as_published = rap;
                o.retain_handling = RetainHandling::from_u8(rh).unwrap();
            }
            o
        });
    let subscription = (filter(), options).prop_map(|(filter, mut options)| {
        if filter.shared().is_some() {
            options.no_local = false;
        }
        Subscription { filter, options }
    });
    (
        packet_id(),
        vec(subscription, 1..5),
        of(sub_id()),
        user_properties(),
    )
        .prop_map(move |(id, subscriptions, sub_id, user)| {
            let mut properties = SubscribeProperties::default();
            if v.is_v5() {
                properties.subscription_identifier = sub_id;
                properties.user_properties = user;
            }
            Packet::Subscribe(Subscribe {
                packet_id: id,
                subscriptions,
                properties,
            })
        })
}

const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const V3_SUBACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

fn ack_properties(v: ProtocolVersion) -> impl Strategy<Value = AckProperties> {
    (of(text()), user_properties()).prop_map(move |(reason_string, user)| {
        let mut p = AckProperties::default();
        if v.is_v5() {
            p.reason_string = reason_string;
            p.user_properties = user;
        }
        p
    })
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if v.is_v5() {
        SUBACK_CODES
    } else {
        V3_SUBACK_CODES
    };
    (packet_id(), vec(reason(codes), 1..5), ack_properties(v)).prop_map(
        |(packet_id, reason_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        },
    )
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (packet_id(), vec(filter(), 1..5), user_properties()).prop_map(move |(id, filters, user)| {
        let mut properties = UnsubscribeProperties::default();
        if v.is_v5() {
            properties.user_properties = user;
        }
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id,
            filters,
            properties,
        })
    })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(reason(UNSUBACK_CODES), 1..5),
        ack_properties(v),
    )
        .prop_map(move |(packet_id, codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes: if v.is_v5() { codes } else { Vec::new() },
                properties,
            })
        })
}

const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

fn disconnect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        reason(DISCONNECT_CODES),
        of(any::<u32>()),
        of(text()),
        of(text()),
        user_properties(),
    )
        .prop_map(move |(code, expiry, reason_string, reference, user)| {
            let mut d = Disconnect::default();
            if v.is_v5() {
                d.reason_code = code;
                d.properties.session_expiry_interval = expiry;
                d.properties.reason_string = reason_string;
                d.properties.server_reference = reference;
                d.properties.user_properties = user;
            }
            Packet::Disconnect(d)
        })
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason(&[0x00, 0x18, 0x19]),
        of(text()),
        of(binary()),
        of(text()),
        user_properties(),
    )
        .prop_map(|(code, method, data, reason_string, user)| {
            let mut a = Auth::default();
            a.reason_code = code;
            a.properties.authentication_method = method;
            a.properties.authentication_data = data;
            a.properties.reason_string = reason_string;
            a.properties.user_properties = user;
            Packet::Auth(a)
        })
}

fn packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| {
        let any_version = prop_oneof![
            connect(v),
            connack(v),
            publish(v),
            ack(v),
            subscribe(v),
            suback(v),
            unsubscribe(v),
            unsuback(v),
            disconnect(v),
            Just(Packet::PingReq),
            Just(Packet::PingResp),
        ];
        let packet = if v.is_v5() {
            prop_oneof![10 => any_version, 1 => auth()].boxed()
        } else {
            any_version.boxed()
        };
        (Just(v), packet)
    })
}

fn encode(v: ProtocolVersion, p: &Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    let written = p.encode(v, &mut buf).unwrap();
    assert_eq!(written, buf.len());
    assert_eq!(p.encoded_len(v).unwrap(), buf.len());
    if let Packet::Publish(publish) = p {
        assert_eq!(publish.encoded_len(v).unwrap(), buf.len());
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn decode_of_encode_is_identity((v, p) in packet()) {
        let mut buf = encode(v, &p);
        let mut decoder = match p {
            Packet::Connect(_) => Decoder::new(),
            _ => Decoder::with_version(v),
        };
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), Some(p));
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoder.version(), Some(v));
    }

    #[test]
    fn every_strict_prefix_is_incomplete((v, p) in packet()) {
        let whole = encode(v, &p);
        for len in 0..whole.len() {
            let mut prefix = BytesMut::from(&whole[..len]);
            let mut decoder = Decoder::with_version(v);
            prop_assert_eq!(decoder.decode(&mut prefix), Ok(None), "prefix of {} bytes", len);
            prop_assert_eq!(prefix.len(), len, "an incomplete decode consumed bytes");
        }
    }

    #[test]
    fn packets_stream_back_to_back((v, packets) in version().prop_flat_map(|v| {
        (Just(v), vec(publish(v), 1..6))
    }), split in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        for p in &packets {
            p.encode(v, &mut wire).unwrap();
        }
        // Deliver in two reads split at an arbitrary point.
        let at = split.index(wire.len() + 1);
        let second = wire.split_off(at);
        let mut decoder = Decoder::with_version(v);
        let mut buf = wire;
        let mut decoded = Vec::new();
        while let Some(p) = decoder.decode(&mut buf).unwrap() {
            decoded.push(p);
        }
        buf.extend_from_slice(&second);
        while let Some(p) = decoder.decode(&mut buf).unwrap() {
            decoded.push(p);
        }
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
    }
}

/// Decodes a single PUBLISH.
fn decode_publish(v: ProtocolVersion, p: &Publish) -> Publish {
    let mut buf = encode(v, &Packet::Publish(p.clone()));
    match Decoder::with_version(v).decode(&mut buf) {
        Ok(Some(Packet::Publish(decoded))) => decoded,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A decoded PUBLISH (one frame handle) and the one it was built from (a topic and a
    /// payload) answer every accessor alike, and stay alike when their parts are replaced.
    #[test]
    fn decoded_and_built_publishes_agree((v, p) in version().prop_flat_map(|v| (Just(v), publish(v))),
                                         other in topic(), new_payload in binary()) {
        let Packet::Publish(mut built) = p else { unreachable!() };
        if built.properties().is_empty() {
            // Decoding makes "no properties" `None`; Debug shows the difference.
            built.properties = None;
        }
        let decoded = decode_publish(v, &built);
        prop_assert_eq!(decoded.topic(), built.topic());
        prop_assert_eq!(decoded.topic_name(), built.topic_name());
        prop_assert_eq!(decoded.payload(), built.payload());
        prop_assert_eq!(decoded.payload_bytes(), built.payload_bytes());
        prop_assert_eq!(format!("{decoded:?}"), format!("{built:?}"));
        prop_assert_eq!(decoded.clone().into_parts(), built.clone().into_parts());
        prop_assert_eq!(decoded.encoded_len(v), built.encoded_len(v));

        let (mut decoded_t, mut built_t) = (decoded.clone(), built.clone());
        decoded_t.set_topic(other.clone());
        built_t.set_topic(other);
        prop_assert_eq!(&decoded_t, &built_t);
        prop_assert_eq!(decoded_t.payload(), built.payload());

        let (mut decoded_p, mut built_p) = (decoded, built.clone());
        decoded_p.set_payload(new_payload.clone());
        built_p.set_payload(new_payload);
        prop_assert_eq!(&decoded_p, &built_p);
        prop_assert_eq!(decoded_p.topic(), built.topic());
    }
}

#[test]
fn a_publish_prints_as_before() {
    let mut p = Publish::new(TopicName::new("a/b").unwrap(), Bytes::from_static(b"hi\n"));
    p.qos = PublishQoS::AtLeastOnce(PacketId::new(3).unwrap());
    let expected = "Publish { dup: false, qos: AtLeastOnce(PacketId(3)), retain: false, \
                    topic: \"a/b\", payload: b\"hi\\n\", properties: None }";
    assert_eq!(format!("{p:?}"), expected);
    assert_eq!(
        format!("{:?}", decode_publish(ProtocolVersion::V5, &p)),
        expected
    );
}

#[test]
fn decoding_a_publish_borrows_the_topic_and_payload() {
    let payload = Bytes::from(vec![7u8; 4096]);
    let p = Packet::Publish(Publish::new(TopicName::new("t/1").unwrap(), payload));
    let mut buf = encode(ProtocolVersion::V5, &p);
    let frame_start = buf.as_ptr() as usize;
    let frame_end = frame_start + buf.len();
    let Some(Packet::Publish(decoded)) = Decoder::with_version(ProtocolVersion::V5)
        .decode(&mut buf)
        .unwrap()
    else {
        panic!("not a PUBLISH")
    };
    let topic = decoded.topic_name();
    let payload = decoded.payload_bytes();
    let (owned_topic, owned_payload) = decoded.clone().into_parts();
    for ptr in [
        decoded.payload().as_ptr(),
        decoded.topic().as_ptr(),
        topic.as_ptr(),
        payload.as_ptr(),
        owned_topic.as_ptr(),
        owned_payload.as_ptr(),
    ] {
        let ptr = ptr as usize;
        assert!(
            (frame_start..frame_end).contains(&ptr),
            "decoded slice does not point into the received buffer"
        );
    }
}
