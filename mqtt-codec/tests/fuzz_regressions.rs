//! The fuzz targets' checks as ordinary tests: `fuzz/checks.rs` (shared with the cargo-fuzz
//! targets through `#[path]`) runs over the seed corpus, `fuzz/seeds/<target>/`, and over every
//! crash input kept in `tests/fuzz_regressions/`, so `cargo test` needs neither nightly nor
//! cargo-fuzz to catch a regression.
//!
//! The seeds are written by the ignored test `write_seeds`:
//! `cargo test -p mqtt-codec --test fuzz_regressions -- --ignored write_seeds`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::num::{NonZeroU16, NonZeroU32};
use std::panic;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    Ack, AckProperties, Auth, AuthProperties, ClientId, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, LastWill, Packet, PacketId, PayloadFormat,
    ProtocolVersion, Publish, PublishProperties, PublishQoS, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions,
    TopicFilter, TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperty,
    WillProperties,
};

use checks::Input;

/// The fuzz targets, each with its seed directory `fuzz/seeds/<target>/`.
const TARGETS: [&str; 2] = ["decode", "roundtrip"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seeds_dir(target: &str) -> PathBuf {
    crate_dir().join("fuzz").join("seeds").join(target)
}

fn regressions_dir() -> PathBuf {
    crate_dir().join("tests").join("fuzz_regressions")
}

/// The input files directly in `dir`, sorted; documentation (`*.md`) and dot files are not
/// inputs. A missing directory has none.
fn input_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".md")
        })
        .collect();
    files.sort();
    files
}

fn seed_files() -> Vec<PathBuf> {
    TARGETS
        .iter()
        .flat_map(|target| input_files(&seeds_dir(target)))
        .collect()
}

/// Runs `check` over every seed of every target and every kept crash input, and fails
/// listing each input it panicked on.
fn check_every_input(check: fn(&[u8])) {
    let seeds = seed_files();
    assert!(!seeds.is_empty(), "no seed files under fuzz/seeds/*/");
    let inputs: Vec<PathBuf> = seeds
        .into_iter()
        .chain(input_files(&regressions_dir()))
        .collect();
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = fs::read(path).unwrap();
            panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "the check failed on {} of {} inputs (see the panics above):\n  {}",
        failed.len(),
        inputs.len(),
        failed.join("\n  ")
    );
}

#[test]
fn decode_check_holds_for_every_seed_and_regression() {
    check_every_input(checks::check_decode);
}

#[test]
fn roundtrip_check_holds_for_every_seed_and_regression() {
    check_every_input(checks::check_roundtrip);
}

/// A seed the codec refuses only teaches the fuzzer about the refusal: every seed must be
/// a stream of valid packets, read to its last byte.
#[test]
fn seeds_are_streams_of_valid_packets() {
    for target in TARGETS {
        let files = input_files(&seeds_dir(target));
        assert!(!files.is_empty(), "no seeds in fuzz/seeds/{target}/");
        for path in files {
            let data = fs::read(&path).unwrap();
            let input = Input::parse(&data).unwrap();
            let outcome = checks::decode_chunks(input.decoder, &[input.stream]);
            assert_eq!(
                outcome.end,
                Ok(Vec::new()),
                "{} does not decode to its end",
                path.display()
            );
            assert!(!outcome.packets.is_empty(), "{} is empty", path.display());
        }
    }
}

/// Rewrites the seed corpus from [`seeds`]. Run by hand after changing them.
#[test]
#[ignore = "writes fuzz/seeds/; run it by hand to regenerate the seed corpus"]
fn write_seeds() {
    for target in TARGETS {
        let dir = seeds_dir(target);
        fs::create_dir_all(&dir).unwrap();
        for path in input_files(&dir) {
            fs::remove_file(path).unwrap();
        }
        for (name, data) in seeds() {
            fs::write(dir.join(name), data).unwrap();
        }
    }
}

/// The seed corpus: for each version, one file per packet type (a few variants of PUBLISH
/// and the acks) and one whole session read by a server-side decoder. Each file is a fuzz
/// input: the scene byte, then the encoded packets.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (tag, version) in [
        ("v31", ProtocolVersion::V3_1),
        ("v311", ProtocolVersion::V3_1_1),
        ("v5", ProtocolVersion::V5),
    ] {
        let v5 = version.is_v5();
        let mut add = |name: &str, scene: Option<ProtocolVersion>, packets: &[Packet]| {
            let mut data = BytesMut::new();
            data.extend_from_slice(&[Input::scene_byte(scene)]);
            for packet in packets {
                packet.encode(version, &mut data).unwrap();
            }
            seeds.push((format!("{tag}-{name}"), data.to_vec()));
        };
        let connect = Packet::Connect(Box::new(connect(version)));
        add("connect", None, std::slice::from_ref(&connect));
        add("connack", Some(version), &[connack(v5)]);
        add(
            "publish-qos0",
            Some(version),
            &[publish(v5, QoS::AtMostOnce)],
        );
        add(
            "publish-qos2",
            Some(version),
            &[publish(v5, QoS::ExactlyOnce)],
        );
        add("puback", Some(version), &[Packet::PubAck(ack(v5, 1, None))]);
        let no_match = Some(ReasonCode::NoMatchingSubscribers);
        add(
            "pubrec",
            Some(version),
            &[Packet::PubRec(ack(v5, 2, no_match))],
        );
        let not_found = Some(ReasonCode::PacketIdentifierNotFound);
        add(
            "pubrel",
            Some(version),
            &[Packet::PubRel(ack(v5, 3, not_found))],
        );
        add(
            "pubcomp",
            Some(version),
            &[Packet::PubComp(ack(v5, 4, None))],
        );
        add("subscribe", Some(version), &[subscribe(v5)]);
        add("suback", Some(version), &[suback(v5)]);
        add("unsubscribe", Some(version), &[unsubscribe(v5)]);
        add("unsuback", Some(version), &[unsuback(v5)]);
        add("ping", Some(version), &[Packet::PingReq, Packet::PingResp]);
        add("disconnect", Some(version), &[disconnect(v5)]);
        if v5 {
            add("auth", Some(version), &[auth()]);
        }
        add(
            "session",
            None,
            &[
                connect,
                subscribe(v5),
                publish(v5, QoS::AtLeastOnce),
                Packet::PubAck(ack(v5, 1, None)),
                Packet::PingReq,
                unsubscribe(v5),
                disconnect(v5),
            ],
        );
    }
    seeds
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

fn filter(filter: &str) -> TopicFilter {
    TopicFilter::new(filter).unwrap()
}

fn user_properties() -> Vec<UserProperty> {
    vec![
        UserProperty::new("region", "eu-west"),
        UserProperty::new("region", "eu-north"),
    ]
}

fn connect(version: ProtocolVersion) -> Connect {
    let v5 = version.is_v5();
    let mut connect = Connect::new(version, ClientId::new("sensor-42").unwrap());
    connect.keep_alive = 30;
    connect.username = Some("user".into());
    connect.password = Some(Bytes::from_static(b"\x00secret\xff"));
    let mut will = LastWill {
        topic: topic("devices/sensor-42/status"),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    };
    if v5 {
        will.properties = WillProperties {
            will_delay_interval: Some(10),
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(3600),
            content_type: Some("text/plain".into()),
            response_topic: Some(topic("devices/sensor-42/reply")),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: user_properties(),
        };
        connect.properties = ConnectProperties {
            session_expiry_interval: Some(120),
            receive_maximum: NonZeroU16::new(20),
            maximum_packet_size: NonZeroU32::new(65_536),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"client-first")),
            user_properties: user_properties(),
        };
    }
    connect.will = Some(will);
    connect
}

fn connack(v5: bool) -> Packet {
    let mut connack = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    if v5 {
        connack.properties = ConnAckProperties {
            session_expiry_interval: Some(60),
            receive_maximum: NonZeroU16::new(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(true),
            maximum_packet_size: NonZeroU32::new(1 << 20),
            assigned_client_identifier: Some("auto-1f2e".into()),
            topic_alias_maximum: Some(16),
            reason_string: Some("welcome".into()),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(false),
            server_keep_alive: Some(45),
            response_information: Some("responses/".into()),
            server_reference: Some("backup:1883".into()),
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"server-final")),
            user_properties: user_properties(),
        };
    }
    Packet::ConnAck(Box::new(connack))
}

fn publish(v5: bool, qos: QoS) -> Packet {
    let mut publish = Publish::new(
        topic("home/kitchen/temperature"),
        Bytes::from_static(b"{\"celsius\":21.5}"),
    );
    publish.qos = PublishQoS::with_packet_id(qos, id(7));
    publish.dup = qos == QoS::ExactlyOnce;
    publish.retain = qos == QoS::AtMostOnce;
    if v5 {
        *publish.properties_mut() = PublishProperties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(300),
            topic_alias: NonZeroU16::new(3),
            response_topic: Some(topic("home/kitchen/reply")),
            correlation_data: Some(Bytes::from_static(b"req-1")),
            subscription_identifiers: vec![
                SubscriptionId::new(1).unwrap(),
                SubscriptionId::new(268_435_455).unwrap(),
            ],
            content_type: Some("application/json".into()),
            user_properties: user_properties(),
        };
    }
    Packet::Publish(publish)
}

/// A PUBACK-family packet; in MQTT 5 with `reason` (and a reason string) if given.
fn ack(v5: bool, packet_id: u16, reason: Option<ReasonCode>) -> Ack {
    let mut ack = Ack::new(id(packet_id));
    if let (true, Some(reason)) = (v5, reason) {
        ack.reason_code = reason;
        ack.properties = AckProperties {
            reason_string: Some(reason.description().into()),
            user_properties: user_properties(),
        };
    }
    ack
}

fn subscribe(v5: bool) -> Packet {
    let mut subscriptions = vec![
        Subscription {
            filter: filter("home/+/temperature"),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        },
        Subscription {
            filter: filter("alerts/#"),
            options: SubscriptionOptions::new(QoS::ExactlyOnce),
        },
    ];
    let mut properties = SubscribeProperties::default();
    if v5 {
        subscriptions.push(Subscription {
            filter: filter("$share/workers/jobs/#"),
            options: SubscriptionOptions {
                qos: QoS::AtMostOnce,
                no_local: false,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        });
        subscriptions.push(Subscription {
            filter: filter("chat/room-1"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: false,
                retain_handling: RetainHandling::SendIfNew,
            },
        });
        properties = SubscribeProperties {
            subscription_identifier: SubscriptionId::new(200),
            user_properties: user_properties(),
        };
    }
    Packet::Subscribe(Subscribe {
        packet_id: id(10),
        subscriptions,
        properties,
    })
}

fn suback(v5: bool) -> Packet {
    let mut suback = SubAck {
        packet_id: id(10),
        reason_codes: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::Success,
            ReasonCode::UnspecifiedError,
        ],
        properties: AckProperties::default(),
    };
    if v5 {
        suback
            .reason_codes
            .push(ReasonCode::SharedSubscriptionsNotSupported);
        suback.properties.reason_string = Some("partly granted".into());
    }
    Packet::SubAck(suback)
}

fn unsubscribe(v5: bool) -> Packet {
    let mut properties = UnsubscribeProperties::default();
    if v5 {
        properties.user_properties = user_properties();
    }
    Packet::Unsubscribe(Unsubscribe {
        packet_id: id(11),
        filters: vec![filter("home/+/temperature"), filter("alerts/#")],
        properties,
    })
}

fn unsuback(v5: bool) -> Packet {
    let mut unsuback = UnsubAck {
        packet_id: id(11),
        reason_codes: Vec::new(),
        properties: AckProperties::default(),
    };
    if v5 {
        unsuback.reason_codes = vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted];
        unsuback.properties.reason_string = Some("done".into());
    }
    Packet::UnsubAck(unsuback)
}

fn disconnect(v5: bool) -> Packet {
    if !v5 {
        return Packet::Disconnect(Disconnect::new(ReasonCode::Success));
    }
    let mut disconnect = Disconnect::new(ReasonCode::DisconnectWithWillMessage);
    disconnect.properties = DisconnectProperties {
        session_expiry_interval: Some(0),
        reason_string: Some("going away".into()),
        server_reference: None,
        user_properties: user_properties(),
    };
    Packet::Disconnect(disconnect)
}

fn auth() -> Packet {
    Packet::Auth(Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"client-final")),
            reason_string: None,
            user_properties: user_properties(),
        },
    })
}
