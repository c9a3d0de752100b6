//! A table of malformed and forbidden inputs, each with the exact error the decoder must
//! return and the MQTT 5 reason code a server would send for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::BytesMut;
use mqtt_codec::{
    DecodeError as E, Decoder, InvalidTopic, PacketType as T, PropertyId as P, ProtocolVersion,
    ReasonCode as R,
};

use ProtocolVersion::{V3_1_1, V5};

/// A whole packet: the first byte, the remaining length, the body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![first, body.len() as u8];
    out.extend_from_slice(body);
    out
}

/// A CONNECT with protocol `name`, `level`, `flags`, keep alive 60, and `rest` after that.
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0, 60]);
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

/// A v5 PUBLISH to topic "t" carrying the given property bytes.
fn publish_v5_props(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', props.len() as u8];
    body.extend_from_slice(props);
    packet(0x30, &body)
}

struct Case {
    name: &'static str,
    version: Option<ProtocolVersion>,
    bytes: Vec<u8>,
    error: E,
    reason: R,
}

fn case(
    name: &'static str,
    version: Option<ProtocolVersion>,
    bytes: Vec<u8>,
    error: E,
    reason: R,
) -> Case {
    Case {
        name,
        version,
        bytes,
        error,
        reason,
    }
}

fn cases() -> Vec<Case> {
    let v3 = Some(V3_1_1);
    let v5 = Some(V5);
    vec![
        // Fixed header.
        case(
            "packet type 0",
            v5,
            vec![0x00, 0x00],
            E::ReservedPacketType(0),
            R::MalformedPacket,
        ),
        case(
            "AUTH before MQTT 5",
            v3,
            vec![0xF0, 0x00],
            E::ReservedPacketType(15),
            R::MalformedPacket,
        ),
        case(
            "PUBREL without its 0010 flags",
            v5,
            packet(0x60, &[0, 1]),
            E::InvalidFixedHeaderFlags {
                packet: T::PubRel,
                flags: 0,
            },
            R::MalformedPacket,
        ),
        case(
            "SUBSCRIBE without its 0010 flags",
            v3,
            packet(0x80, &[0, 1, 0, 1, b'a', 0]),
            E::InvalidFixedHeaderFlags {
                packet: T::Subscribe,
                flags: 0,
            },
            R::MalformedPacket,
        ),
        case(
            "PINGREQ with a flag",
            v3,
            vec![0xC1, 0x00],
            E::InvalidFixedHeaderFlags {
                packet: T::PingReq,
                flags: 1,
            },
            R::MalformedPacket,
        ),
        case(
            "PUBLISH QoS 3",
            v3,
            packet(0x36, &[0, 1, b't', 0, 1]),
            E::InvalidQoS,
            R::MalformedPacket,
        ),
        case(
            "DUP on QoS 0",
            v3,
            packet(0x38, &[0, 1, b't']),
            E::DupWithQoS0,
            R::MalformedPacket,
        ),
        case(
            "remaining length of five bytes",
            v3,
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            E::MalformedVariableInteger,
            R::MalformedPacket,
        ),
        case(
            "remaining length padded with a zero byte",
            v3,
            vec![0xC0, 0x80, 0x00],
            E::MalformedVariableInteger,
            R::MalformedPacket,
        ),
        case(
            "PUBLISH before CONNECT",
            None,
            packet(0x30, &[0, 1, b't']),
            E::ProtocolVersionUnknown(T::Publish),
            R::ProtocolError,
        ),
        case(
            "PINGREQ with a body",
            v3,
            packet(0xC0, &[0]),
            E::TrailingBytes,
            R::MalformedPacket,
        ),
        // CONNECT.
        case(
            "unknown protocol name",
            None,
            connect(b"MQTX", 4, 0x02, &[0, 0]),
            E::UnsupportedProtocol {
                level: 4,
                known_name: false,
            },
            R::UnsupportedProtocolVersion,
        ),
        case(
            "unknown protocol level",
            None,
            connect(b"MQTT", 6, 0x02, &[0, 0]),
            E::UnsupportedProtocol {
                level: 6,
                known_name: true,
            },
            R::UnsupportedProtocolVersion,
        ),
        case(
            "MQIsdp with level 4",
            None,
            connect(b"MQIsdp", 4, 0x02, &[0, 0]),
            E::UnsupportedProtocol {
                level: 4,
                known_name: true,
            },
            R::UnsupportedProtocolVersion,
        ),
        case(
            "CONNECT reserved flag",
            None,
            connect(b"MQTT", 4, 0x03, &[0, 0]),
            E::ConnectReservedFlag,
            R::MalformedPacket,
        ),
        case(
            "will QoS without will flag",
            None,
            connect(b"MQTT", 4, 0x0A, &[0, 0]),
            E::InvalidWillFlags,
            R::MalformedPacket,
        ),
        case(
            "will retain without will flag",
            None,
            connect(b"MQTT", 4, 0x22, &[0, 0]),
            E::InvalidWillFlags,
            R::MalformedPacket,
        ),
        case(
            "will QoS 3",
            None,
            connect(b"MQTT", 4, 0x1E, &[0, 0, 0, 1, b'w', 0, 0]),
            E::InvalidWillFlags,
            R::MalformedPacket,
        ),
        case(
            "3.1.1 password without user name",
            None,
            connect(b"MQTT", 4, 0x42, &[0, 0, 0, 1, b'p']),
            E::PasswordWithoutUsername,
            R::ProtocolError,
        ),
        case(
            "client id that is not UTF-8",
            None,
            connect(b"MQTT", 4, 0x02, &[0, 2, 0xC3, 0x28]),
            E::InvalidUtf8,
            R::MalformedPacket,
        ),
        case(
            "client id with an encoded surrogate",
            None,
            connect(b"MQTT", 4, 0x02, &[0, 3, 0xED, 0xA0, 0x80]),
            E::InvalidUtf8,
            R::MalformedPacket,
        ),
        case(
            "client id with U+0000",
            None,
            connect(b"MQTT", 4, 0x02, &[0, 2, b'a', 0]),
            E::InvalidString(InvalidTopic::NullCharacter),
            R::MalformedPacket,
        ),
        case(
            "will topic with a wildcard",
            None,
            connect(b"MQTT", 4, 0x06, &[0, 0, 0, 1, b'#', 0, 0]),
            E::InvalidTopicName(InvalidTopic::WildcardInName),
            R::TopicNameInvalid,
        ),
        case(
            "CONNECT cut inside the client id",
            None,
            connect(b"MQTT", 4, 0x02, &[0, 5, b'a']),
            E::UnexpectedEnd,
            R::MalformedPacket,
        ),
        case(
            "CONNECT with bytes after the last field",
            None,
            connect(b"MQTT", 4, 0x02, &[0, 0, 9]),
            E::TrailingBytes,
            R::MalformedPacket,
        ),
        case(
            "CONNECT receive maximum 0",
            None,
            connect(b"MQTT", 5, 0x02, &[3, 0x21, 0, 0, 0, 0]),
            E::InvalidPropertyValue(P::ReceiveMaximum),
            R::ProtocolError,
        ),
        case(
            "CONNECT maximum packet size 0",
            None,
            connect(b"MQTT", 5, 0x02, &[5, 0x27, 0, 0, 0, 0, 0, 0]),
            E::InvalidPropertyValue(P::MaximumPacketSize),
            R::ProtocolError,
        ),
        case(
            "CONNECT request problem information 2",
            None,
            connect(b"MQTT", 5, 0x02, &[2, 0x17, 2, 0, 0]),
            E::InvalidPropertyValue(P::RequestProblemInformation),
            R::ProtocolError,
        ),
        case(
            "CONNECT with a topic alias property",
            None,
            connect(b"MQTT", 5, 0x02, &[3, 0x23, 0, 1, 0, 0]),
            E::PropertyNotAllowed {
                property: P::TopicAlias,
                packet: T::Connect,
            },
            R::MalformedPacket,
        ),
        case(
            "will properties with a session expiry",
            None,
            connect(
                b"MQTT",
                5,
                0x06,
                &[0, 0, 0, 5, 0x11, 0, 0, 0, 1, 0, 1, b'w', 0, 0],
            ),
            E::PropertyNotAllowed {
                property: P::SessionExpiryInterval,
                packet: T::Connect,
            },
            R::MalformedPacket,
        ),
        case(
            "property length of five bytes",
            None,
            connect(b"MQTT", 5, 0x02, &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            E::MalformedVariableInteger,
            R::MalformedPacket,
        ),
        // PUBLISH.
        case(
            "topic name with +",
            v3,
            packet(0x30, &[0, 3, b'a', b'/', b'+']),
            E::InvalidTopicName(InvalidTopic::WildcardInName),
            R::TopicNameInvalid,
        ),
        case(
            "topic name with U+0000",
            v3,
            packet(0x30, &[0, 2, b'a', 0]),
            E::InvalidTopicName(InvalidTopic::NullCharacter),
            R::MalformedPacket,
        ),
        case(
            "topic name that is not UTF-8",
            v3,
            packet(0x30, &[0, 1, 0xFF]),
            E::InvalidUtf8,
            R::MalformedPacket,
        ),
        case(
            "long topic name with # in its last eight bytes",
            v3,
            packet(0x30, b"\0\x0bsensors/a/#"),
            E::InvalidTopicName(InvalidTopic::WildcardInName),
            R::TopicNameInvalid,
        ),
        case(
            "long topic name with U+0000 in its first eight bytes",
            v3,
            packet(0x30, b"\0\x11sens\0rs/kitchen/t"),
            E::InvalidTopicName(InvalidTopic::NullCharacter),
            R::MalformedPacket,
        ),
        case(
            "long topic name with an overlong UTF-8 encoding",
            v3,
            packet(0x30, b"\0\x0csensors/\xC0\xAFab"),
            E::InvalidUtf8,
            R::MalformedPacket,
        ),
        case(
            "long topic name with a UTF-16 surrogate",
            v3,
            packet(0x30, b"\0\x0bsensors/\xED\xA0\x80"),
            E::InvalidUtf8,
            R::MalformedPacket,
        ),
        case(
            "3.1.1 empty topic name",
            v3,
            packet(0x30, &[0, 0]),
            E::InvalidTopicName(InvalidTopic::Empty),
            R::TopicNameInvalid,
        ),
        case(
            "5.0 empty topic name without alias",
            v5,
            packet(0x30, &[0, 0, 0]),
            E::EmptyTopicWithoutAlias,
            R::ProtocolError,
        ),
        case(
            "QoS 1 packet identifier 0",
            v3,
            packet(0x32, &[0, 1, b't', 0, 0]),
            E::ZeroPacketId,
            R::MalformedPacket,
        ),
        case(
            "unknown property 0x7F",
            v5,
            publish_v5_props(&[0x7F, 0]),
            E::UnknownProperty(0x7F),
            R::MalformedPacket,
        ),
        case(
            "session expiry in PUBLISH",
            v5,
            publish_v5_props(&[0x11, 0, 0, 0, 1]),
            E::PropertyNotAllowed {
                property: P::SessionExpiryInterval,
                packet: T::Publish,
            },
            R::MalformedPacket,
        ),
        case(
            "message expiry twice",
            v5,
            publish_v5_props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
            E::DuplicateProperty(P::MessageExpiryInterval),
            R::ProtocolError,
        ),
        case(
            "payload format indicator 2",
            v5,
            publish_v5_props(&[0x01, 2]),
            E::InvalidPropertyValue(P::PayloadFormatIndicator),
            R::ProtocolError,
        ),
        case(
            "topic alias 0",
            v5,
            publish_v5_props(&[0x23, 0, 0]),
            E::InvalidPropertyValue(P::TopicAlias),
            R::ProtocolError,
        ),
        case(
            "response topic with a wildcard",
            v5,
            publish_v5_props(&[0x08, 0, 1, b'#']),
            E::InvalidPropertyValue(P::ResponseTopic),
            R::ProtocolError,
        ),
        case(
            "property cut short",
            v5,
            publish_v5_props(&[0x02, 0, 0]),
            E::UnexpectedEnd,
            R::MalformedPacket,
        ),
        case(
            "properties longer than the packet",
            v5,
            packet(0x30, &[0, 1, b't', 9, 0x01, 0]),
            E::UnexpectedEnd,
            R::MalformedPacket,
        ),
        case(
            "user property value not UTF-8",
            v5,
            publish_v5_props(&[0x26, 0, 1, b'k', 0, 1, 0xC0]),
            E::InvalidUtf8,
            R::MalformedPacket,
        ),
        // Acknowledgements.
        case(
            "PUBACK packet identifier 0",
            v3,
            packet(0x40, &[0, 0]),
            E::ZeroPacketId,
            R::MalformedPacket,
        ),
        case(
            "3.1.1 PUBACK with a reason code",
            v3,
            packet(0x40, &[0, 1, 0]),
            E::TrailingBytes,
            R::MalformedPacket,
        ),
        case(
            "PUBACK with a PUBREL reason code",
            v5,
            packet(0x40, &[0, 1, 0x92]),
            E::InvalidReasonCode {
                packet: T::PubAck,
                code: 0x92,
            },
            R::MalformedPacket,
        ),
        case(
            "PUBCOMP with an undefined reason code",
            v5,
            packet(0x70, &[0, 1, 0x03]),
            E::InvalidReasonCode {
                packet: T::PubComp,
                code: 0x03,
            },
            R::MalformedPacket,
        ),
        case(
            "PUBACK with user data after its properties",
            v5,
            packet(0x40, &[0, 1, 0, 0, 7]),
            E::TrailingBytes,
            R::MalformedPacket,
        ),
        // CONNACK.
        case(
            "3.1.1 CONNACK return code 6",
            v3,
            packet(0x20, &[0, 6]),
            E::InvalidReasonCode {
                packet: T::ConnAck,
                code: 6,
            },
            R::MalformedPacket,
        ),
        case(
            "CONNACK reserved flag",
            v3,
            packet(0x20, &[2, 0]),
            E::InvalidConnackFlags,
            R::MalformedPacket,
        ),
        case(
            "CONNACK session present on a refusal",
            v5,
            packet(0x20, &[1, 0x87, 0]),
            E::InvalidConnackFlags,
            R::MalformedPacket,
        ),
        case(
            "CONNACK maximum QoS 2",
            v5,
            packet(0x20, &[0, 0, 2, 0x24, 2]),
            E::InvalidPropertyValue(P::MaximumQoS),
            R::ProtocolError,
        ),
        case(
            "CONNACK with a reason code of SUBACK",
            v5,
            packet(0x20, &[0, 0x01, 0]),
            E::InvalidReasonCode {
                packet: T::ConnAck,
                code: 0x01,
            },
            R::MalformedPacket,
        ),
        // SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.
        case(
            "3.1.1 subscription options with reserved bits",
            v3,
            packet(0x82, &[0, 1, 0, 1, b'a', 0x04]),
            E::InvalidSubscriptionOptions(0x04),
            R::MalformedPacket,
        ),
        case(
            "5.0 subscription options with reserved bits",
            v5,
            packet(0x82, &[0, 1, 0, 0, 1, b'a', 0x40]),
            E::InvalidSubscriptionOptions(0x40),
            R::MalformedPacket,
        ),
        case(
            "retain handling 3",
            v5,
            packet(0x82, &[0, 1, 0, 0, 1, b'a', 0x30]),
            E::InvalidRetainHandling,
            R::ProtocolError,
        ),
        case(
            "subscription QoS 3",
            v3,
            packet(0x82, &[0, 1, 0, 1, b'a', 0x03]),
            E::InvalidQoS,
            R::MalformedPacket,
        ),
        case(
            "filter with # before the last level",
            v3,
            packet(0x82, &[0, 1, 0, 5, b'a', b'/', b'#', b'/', b'b', 0]),
            E::InvalidTopicFilter(InvalidTopic::MisplacedWildcard),
            R::TopicFilterInvalid,
        ),
        case(
            "filter with + inside a level",
            v3,
            packet(0x82, &[0, 1, 0, 2, b'a', b'+', 0]),
            E::InvalidTopicFilter(InvalidTopic::MisplacedWildcard),
            R::TopicFilterInvalid,
        ),
        case(
            "empty filter",
            v3,
            packet(0x82, &[0, 1, 0, 0, 0]),
            E::InvalidTopicFilter(InvalidTopic::Empty),
            R::TopicFilterInvalid,
        ),
        case(
            "shared subscription without a filter",
            v5,
            packet(
                0x82,
                &[
                    0, 1, 0, 0, 9, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', 0,
                ],
            ),
            E::InvalidTopicFilter(InvalidTopic::InvalidSharedSubscription),
            R::TopicFilterInvalid,
        ),
        case(
            "no local on a shared subscription",
            v5,
            packet(
                0x82,
                &[
                    0, 1, 0, 0, 10, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'a',
                    0x04,
                ],
            ),
            E::NoLocalOnSharedSubscription,
            R::ProtocolError,
        ),
        case(
            "subscription identifier 0",
            v5,
            packet(0x82, &[0, 1, 2, 0x0B, 0, 0, 1, b'a', 0]),
            E::InvalidPropertyValue(P::SubscriptionIdentifier),
            R::ProtocolError,
        ),
        case(
            "two subscription identifiers in SUBSCRIBE",
            v5,
            packet(0x82, &[0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0]),
            E::DuplicateProperty(P::SubscriptionIdentifier),
            R::ProtocolError,
        ),
        case(
            "SUBSCRIBE without filters",
            v3,
            packet(0x82, &[0, 1]),
            E::EmptyPayload(T::Subscribe),
            R::ProtocolError,
        ),
        case(
            "SUBSCRIBE cut after a filter",
            v3,
            packet(0x82, &[0, 1, 0, 1, b'a']),
            E::UnexpectedEnd,
            R::MalformedPacket,
        ),
        case(
            "UNSUBSCRIBE without filters",
            v5,
            packet(0xA2, &[0, 1, 0]),
            E::EmptyPayload(T::Unsubscribe),
            R::ProtocolError,
        ),
        case(
            "3.1.1 SUBACK return code 3",
            v3,
            packet(0x90, &[0, 1, 3]),
            E::InvalidReasonCode {
                packet: T::SubAck,
                code: 3,
            },
            R::MalformedPacket,
        ),
        case(
            "5.0 UNSUBACK without reason codes",
            v5,
            packet(0xB0, &[0, 1, 0]),
            E::EmptyPayload(T::UnsubAck),
            R::ProtocolError,
        ),
        // DISCONNECT and AUTH.
        case(
            "3.1.1 DISCONNECT with a body",
            v3,
            packet(0xE0, &[0]),
            E::TrailingBytes,
            R::MalformedPacket,
        ),
        case(
            "DISCONNECT with a SUBACK reason code",
            v5,
            packet(0xE0, &[0x01]),
            E::InvalidReasonCode {
                packet: T::Disconnect,
                code: 0x01,
            },
            R::MalformedPacket,
        ),
        case(
            "DISCONNECT with an assigned client identifier",
            v5,
            packet(0xE0, &[0, 4, 0x12, 0, 1, b'x']),
            E::PropertyNotAllowed {
                property: P::AssignedClientIdentifier,
                packet: T::Disconnect,
            },
            R::MalformedPacket,
        ),
        case(
            "AUTH with a DISCONNECT reason code",
            v5,
            packet(0xF0, &[0x04]),
            E::InvalidReasonCode {
                packet: T::Auth,
                code: 0x04,
            },
            R::MalformedPacket,
        ),
    ]
}

#[test]
fn each_malformed_input_gives_its_error_and_reason_code() {
    let cases = cases();
    assert!(cases.len() > 70);
    let mut failures = Vec::new();
    for c in &cases {
        let mut decoder = match c.version {
            Some(v) => Decoder::with_version(v),
            None => Decoder::new(),
        };
        let mut buf = BytesMut::from(&c.bytes[..]);
        let got = decoder.decode(&mut buf);
        if got.as_ref().err() != Some(&c.error) {
            failures.push(format!("{}: expected {:?}, got {:?}", c.name, c.error, got));
        } else if c.error.reason_code() != c.reason {
            failures.push(format!(
                "{}: expected reason {}, got {}",
                c.name,
                c.reason,
                c.error.reason_code()
            ));
        }
        // The message must say something, for the log line a server writes.
        assert!(!c.error.to_string().is_empty());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn oversize_packets_are_refused_from_the_fixed_header() {
    let mut decoder = Decoder::with_version(V5).with_max_packet_size(100);
    // Only the fixed header has arrived: the body never needs to be buffered.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x01][..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        E::PacketTooLarge {
            size: 258,
            max: 100
        }
    );
    assert_eq!(err.reason_code(), R::PacketTooLarge);
    // Exactly at the limit is fine.
    let mut at_limit = vec![0x30, 98, 0, 1, b't'];
    at_limit.resize(100, 0);
    let mut buf = BytesMut::from(&at_limit[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_some());
}
