//! Criterion micro-benchmarks of the codec's hot paths, each run next to rumqttc's
//! `mqttbytes` (v4 for MQTT 3.1.1, v5 for MQTT 5.0) on the same bytes, in the same group, so
//! that the report shows them side by side (`decode_publish/ours/v5/1KiB` next to
//! `decode_publish/rumqttc/v5/1KiB`).
//!
//! - `decode_publish`: a buffer of back-to-back QoS 1 PUBLISH packets (16 B, 1 KiB and 64 KiB
//!   payloads), decoded to the end from a fresh `BytesMut` per iteration. The copy that makes
//!   the fresh buffer is not timed. Throughput is packets per second.
//! - `encode_publish`: one PUBLISH into a reused, cleared `BytesMut`; `ours_header_only` is
//!   [`Publish::encode_header`], which leaves the payload where it is. Throughput is wire bytes.
//! - `decode_connect_v5` / `encode_connect_v5`: a CONNECT with properties, a will with
//!   properties, a user name and a password.
//! - `decode_subscribe` / `encode_subscribe`: ten topic filters, MQTT 3.1.1 and MQTT 5 (with a
//!   subscription identifier).
//!
//! Before anything is timed, every fixture is checked: both codecs encode it to the same bytes,
//! and both decode those bytes back to the value they started from. A benchmark that measured
//! an error path, or two different inputs, would be worse than none.
//!
//! Run with `cargo bench -p mqtt-codec --bench codec`.

// Fixtures are built from constants; a failure is a broken benchmark and must stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use mqtt_codec::{
    ClientId, Connect, ConnectProperties, Decoder, LastWill, Packet, PacketId, PayloadFormat,
    ProtocolVersion, Publish, PublishQoS, QoS, RetainHandling, Subscribe, SubscribeProperties,
    Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, UserProperty,
    WillProperties,
};
use rumqttc::mqttbytes::QoS as Qos4;
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::QoS as Qos5;
use rumqttc::v5::mqttbytes::v5 as r5;

const TOPIC: &str = "sensors/building-7/floor-3/temperature";
const PAYLOAD_SIZES: [(&str, usize); 3] = [("16B", 16), ("1KiB", 1024), ("64KiB", 64 * 1024)];
/// How many bytes of back-to-back packets a decode benchmark works through per iteration.
const DECODE_BUFFER: usize = 256 * 1024;
/// At least this many packets per decode iteration, however large they are.
const MIN_PACKETS: usize = 4;
/// rumqttc's limit on the remaining length; ours is the protocol's maximum by default.
const RUMQTTC_MAX: usize = 268_435_455;

#[derive(Clone, Copy)]
enum Version {
    V311,
    V5,
}

impl Version {
    const ALL: [Self; 2] = [Self::V311, Self::V5];

    fn ours(self) -> ProtocolVersion {
        match self {
            Self::V311 => ProtocolVersion::V3_1_1,
            Self::V5 => ProtocolVersion::V5,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::V311 => "v3.1.1",
            Self::V5 => "v5",
        }
    }
}

/// Back-to-back encoded packets for a decode benchmark.
struct Wire {
    bytes: Vec<u8>,
    packets: usize,
}

impl Wire {
    /// Encodes packets `0..n` with `encode`, `n` chosen so that they fill [`DECODE_BUFFER`].
    fn repeat(one_len: usize, mut encode: impl FnMut(usize, &mut BytesMut)) -> Self {
        let packets = (DECODE_BUFFER / one_len).max(MIN_PACKETS);
        let mut buf = BytesMut::with_capacity(packets * one_len);
        for n in 0..packets {
            encode(n, &mut buf);
        }
        assert_eq!(
            buf.len(),
            packets * one_len,
            "fixture packets differ in size"
        );
        Self {
            bytes: buf.to_vec(),
            packets,
        }
    }
}

/// A packet identifier for the `n`th packet of a buffer: 1, 2, ..., 65535, 1, ...
fn packet_id(n: usize) -> u16 {
    (n % usize::from(u16::MAX)) as u16 + 1
}

fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Decode loops: each decodes every packet in `buf`, hands each one to `black_box`, and returns
// how many it decoded. They differ only in whose decoder runs.

fn decode_all_ours(version: ProtocolVersion, buf: &mut BytesMut) -> usize {
    let mut decoder = Decoder::with_version(version);
    let mut n = 0;
    while let Some(packet) = decoder.decode(buf).expect("fixture decodes") {
        black_box(packet);
        n += 1;
    }
    n
}

/// A server's view: every CONNECT starts a connection, so every one meets a new decoder.
fn decode_all_ours_connect(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(packet) = Decoder::new().decode(buf).expect("fixture decodes") {
        black_box(packet);
        n += 1;
    }
    n
}

fn decode_all_rumqttc_v4(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while !buf.is_empty() {
        black_box(r4::Packet::read(buf, RUMQTTC_MAX).expect("fixture decodes"));
        n += 1;
    }
    n
}

fn decode_all_rumqttc_v5(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while !buf.is_empty() {
        black_box(r5::Packet::read(buf, None).expect("fixture decodes"));
        n += 1;
    }
    n
}

fn decode_all_rumqttc(version: Version, buf: &mut BytesMut) -> usize {
    match version {
        Version::V311 => decode_all_rumqttc_v4(buf),
        Version::V5 => decode_all_rumqttc_v5(buf),
    }
}

/// A benchmark id's function name and the work it times: a decode loop over a buffer, or an
/// encode into one. Returns how many packets, or bytes, it produced.
type Contender<'a> = (&'a str, &'a dyn Fn(&mut BytesMut) -> usize);

/// Benchmarks `decoders` (name, decode loop) on `wire`, after checking that each decodes all
/// of it.
fn bench_decode(
    group: &mut BenchmarkGroup<'_, WallTime>,
    parameter: &str,
    wire: &Wire,
    decoders: &[Contender<'_>],
) {
    for (name, decode) in decoders {
        let mut buf = BytesMut::from(wire.bytes.as_slice());
        assert_eq!(
            decode(&mut buf),
            wire.packets,
            "{name} decoded a different count"
        );
        assert!(buf.is_empty(), "{name} left bytes behind");
    }
    group.throughput(Throughput::Elements(wire.packets as u64));
    for (name, decode) in decoders {
        group.bench_with_input(BenchmarkId::new(*name, parameter), wire, |b, wire| {
            b.iter_batched_ref(
                || BytesMut::from(wire.bytes.as_slice()),
                |buf| decode(buf),
                BatchSize::LargeInput,
            );
        });
    }
}

/// Benchmarks `encoders` (name, encode function returning the packet's size) writing into one
/// reused buffer, cleared before each packet.
fn bench_encode(
    group: &mut BenchmarkGroup<'_, WallTime>,
    parameter: &str,
    wire_len: usize,
    encoders: &[Contender<'_>],
) {
    group.throughput(Throughput::Bytes(wire_len as u64));
    for (name, encode) in encoders {
        let mut buf = BytesMut::with_capacity(wire_len);
        group.bench_function(BenchmarkId::new(*name, parameter), |b| {
            b.iter(|| {
                buf.clear();
                black_box(encode(&mut buf))
            });
        });
    }
}

/// Encodes with `encode` into a fresh buffer.
fn encoded(encode: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    buf.to_vec()
}

// ---------------------------------------------------------------------------------------------
// PUBLISH

fn publish_ours(payload: &Bytes, id: u16) -> Publish {
    let mut publish = Publish::new(TopicName::new(TOPIC).unwrap(), payload.clone());
    publish.qos = PublishQoS::AtLeastOnce(PacketId::new(id).unwrap());
    publish
}

fn publish_v4(payload: &Bytes, id: u16) -> r4::Publish {
    let mut publish = r4::Publish::from_bytes(TOPIC, Qos4::AtLeastOnce, payload.clone());
    publish.pkid = id;
    publish
}

fn publish_v5(payload: &Bytes, id: u16) -> r5::Publish {
    let mut publish = r5::Publish::new(TOPIC, Qos5::AtLeastOnce, payload.clone(), None);
    publish.pkid = id;
    publish
}

/// Both codecs write the same bytes for the fixture, and read them back to it.
fn check_publish(version: Version, payload: &Bytes) -> Vec<u8> {
    let ours = publish_ours(payload, 1);
    let wire = encoded(|buf| {
        Packet::Publish(ours.clone())
            .encode(version.ours(), buf)
            .unwrap();
    });
    let theirs = match version {
        Version::V311 => encoded(|buf| {
            publish_v4(payload, 1).write(buf).unwrap();
        }),
        Version::V5 => encoded(|buf| {
            publish_v5(payload, 1).write(buf).unwrap();
        }),
    };
    assert_eq!(wire, theirs, "the codecs encode PUBLISH differently");

    let mut buf = BytesMut::from(wire.as_slice());
    let decoded = Decoder::with_version(version.ours()).decode(&mut buf);
    assert_eq!(decoded, Ok(Some(Packet::Publish(ours))));
    let mut buf = BytesMut::from(wire.as_slice());
    match version {
        Version::V311 => assert_eq!(
            r4::Packet::read(&mut buf, RUMQTTC_MAX).unwrap(),
            r4::Packet::Publish(publish_v4(payload, 1))
        ),
        Version::V5 => assert_eq!(
            r5::Packet::read(&mut buf, None).unwrap(),
            r5::Packet::Publish(publish_v5(payload, 1))
        ),
    }
    wire
}

fn decode_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_publish");
    for (size_label, size) in PAYLOAD_SIZES {
        let payload = payload(size);
        if size >= 64 * 1024 {
            // Building the fresh input buffer (not timed) costs about 100x the decode (timed),
            // because decoding never touches the payload. Criterion sizes both warm-up and
            // measurement by timed work only, so at the command line's times these benchmarks
            // alone would take tens of minutes. These settings override the command line for
            // them; 150 ms of timed decoding is still over 10^6 packets.
            group.warm_up_time(Duration::from_millis(50));
            group.measurement_time(Duration::from_millis(150));
        }
        for version in Version::ALL {
            let one = check_publish(version, &payload);
            let v = version.ours();
            let wire = Wire::repeat(one.len(), |n, buf| {
                Packet::Publish(publish_ours(&payload, packet_id(n)))
                    .encode(v, buf)
                    .unwrap();
            });
            let parameter = format!("{}/{size_label}", version.label());
            bench_decode(
                &mut group,
                &parameter,
                &wire,
                &[
                    ("ours", &|buf| decode_all_ours(v, buf)),
                    ("rumqttc", &|buf| decode_all_rumqttc(version, buf)),
                ],
            );
        }
    }
    group.finish();
}

fn encode_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_publish");
    for (size_label, size) in PAYLOAD_SIZES {
        let payload = payload(size);
        for version in Version::ALL {
            let wire_len = check_publish(version, &payload).len();
            let v = version.ours();
            let publish = publish_ours(&payload, 1);
            let packet = Packet::Publish(publish.clone());
            let v4 = publish_v4(&payload, 1);
            let v5 = publish_v5(&payload, 1);
            let theirs: &dyn Fn(&mut BytesMut) -> usize = match version {
                Version::V311 => &|buf| v4.write(buf).unwrap(),
                Version::V5 => &|buf| v5.write(buf).unwrap(),
            };
            let header_len = encoded(|buf| {
                publish.encode_header(v, u32::MAX, buf).unwrap();
            })
            .len();
            assert_eq!(
                header_len + size,
                wire_len,
                "encode_header wrote the payload"
            );
            bench_encode(
                &mut group,
                &format!("{}/{size_label}", version.label()),
                wire_len,
                &[
                    ("ours", &|buf| packet.encode(v, buf).unwrap()),
                    ("rumqttc", theirs),
                    ("ours_header_only", &|buf| {
                        publish.encode_header(v, u32::MAX, buf).unwrap()
                    }),
                ],
            );
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// CONNECT (MQTT 5)

const CLIENT_ID: &str = "sensor-gateway-0042";
const WILL_TOPIC: &str = "devices/sensor-gateway-0042/status";
const WILL_PAYLOAD: &[u8] = br#"{"online":false,"reason":"connection lost"}"#;
const USERNAME: &str = "gateway-0042";
const PASSWORD: &str = "s3cr3t-passw0rd";
const USER_PROPERTIES: [(&str, &str); 2] = [("region", "eu-west-1"), ("firmware", "2.4.1")];

fn connect_ours() -> Connect {
    let mut connect = Connect::new(ProtocolVersion::V5, ClientId::new(CLIENT_ID).unwrap());
    connect.keep_alive = 30;
    connect.properties = ConnectProperties {
        session_expiry_interval: Some(3600),
        receive_maximum: NonZeroU16::new(64),
        maximum_packet_size: NonZeroU32::new(1 << 20),
        topic_alias_maximum: Some(16),
        request_problem_information: Some(true),
        user_properties: USER_PROPERTIES
            .iter()
            .map(|&(k, v)| UserProperty::new(k, v))
            .collect(),
        ..ConnectProperties::default()
    };
    connect.will = Some(LastWill {
        topic: TopicName::new(WILL_TOPIC).unwrap(),
        payload: Bytes::from_static(WILL_PAYLOAD),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: Some(10),
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(86_400),
            content_type: Some("application/json".into()),
            ..WillProperties::default()
        },
    });
    connect.username = Some(USERNAME.into());
    connect.password = Some(Bytes::from_static(PASSWORD.as_bytes()));
    connect
}

fn connect_v5() -> (r5::Connect, Option<r5::LastWill>, Option<r5::Login>) {
    let connect = r5::Connect {
        keep_alive: 30,
        client_id: CLIENT_ID.into(),
        clean_start: true,
        properties: Some(r5::ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(64),
            max_packet_size: Some(1 << 20),
            topic_alias_max: Some(16),
            request_problem_info: Some(1),
            user_properties: USER_PROPERTIES
                .iter()
                .map(|&(k, v)| (k.into(), v.into()))
                .collect(),
            ..r5::ConnectProperties::new()
        }),
    };
    let will = r5::LastWill {
        topic: Bytes::from_static(WILL_TOPIC.as_bytes()),
        message: Bytes::from_static(WILL_PAYLOAD),
        qos: Qos5::AtLeastOnce,
        retain: true,
        properties: Some(r5::LastWillProperties {
            delay_interval: Some(10),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(86_400),
            content_type: Some("application/json".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    };
    (
        connect,
        Some(will),
        Some(r5::Login::new(USERNAME, PASSWORD)),
    )
}

fn check_connect() -> Vec<u8> {
    let ours = Packet::Connect(Box::new(connect_ours()));
    let wire = encoded(|buf| {
        ours.encode(ProtocolVersion::V5, buf).unwrap();
    });
    let (connect, will, login) = connect_v5();
    let theirs = encoded(|buf| {
        connect.write(&will, &login, buf).unwrap();
    });
    assert_eq!(wire, theirs, "the codecs encode CONNECT differently");

    let mut buf = BytesMut::from(wire.as_slice());
    assert_eq!(Decoder::new().decode(&mut buf), Ok(Some(ours)));
    let mut buf = BytesMut::from(wire.as_slice());
    assert_eq!(
        r5::Packet::read(&mut buf, None).unwrap(),
        r5::Packet::Connect(connect, will, login)
    );
    wire
}

fn connect(c: &mut Criterion) {
    let one = check_connect();
    let wire = Wire::repeat(one.len(), |_, buf| buf.extend_from_slice(&one));
    let mut group = c.benchmark_group("decode_connect_v5");
    bench_decode(
        &mut group,
        "props+will+login",
        &wire,
        &[
            ("ours", &decode_all_ours_connect),
            ("rumqttc", &decode_all_rumqttc_v5),
        ],
    );
    group.finish();

    let ours = Packet::Connect(Box::new(connect_ours()));
    let (connect, will, login) = connect_v5();
    let mut group = c.benchmark_group("encode_connect_v5");
    bench_encode(
        &mut group,
        "props+will+login",
        one.len(),
        &[
            ("ours", &|buf| {
                ours.encode(ProtocolVersion::V5, buf).unwrap()
            }),
            ("rumqttc", &|buf| connect.write(&will, &login, buf).unwrap()),
        ],
    );
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE (ten filters)

/// Filters with their MQTT 5 options: QoS, no local, retain as published, retain handling.
const FILTERS: [(&str, u8, bool, bool, u8); 10] = [
    ("sensors/building-7/+/temperature", 1, false, false, 0),
    ("sensors/building-7/floor-3/#", 1, false, true, 0),
    ("alerts/+/critical", 2, false, false, 1),
    ("devices/sensor-gateway-0042/commands/#", 1, true, false, 0),
    ("$share/analytics/telemetry/+/power", 0, false, false, 0),
    ("home/kitchen/fridge/door", 0, false, false, 2),
    ("factory/line-2/+/+/vibration", 1, false, false, 0),
    ("fleet/truck-118/gps", 0, false, false, 0),
    ("metrics/cpu/#", 0, false, true, 1),
    ("notifications/user-7/inbox", 2, true, false, 0),
];
const SUBSCRIPTION_ID: u32 = 42;

fn qos(n: u8) -> QoS {
    QoS::from_u8(n).unwrap()
}

fn subscribe_ours(version: Version) -> Subscribe {
    let v5 = matches!(version, Version::V5);
    Subscribe {
        packet_id: PacketId::new(7).unwrap(),
        subscriptions: FILTERS
            .iter()
            .map(|&(filter, q, no_local, rap, rh)| Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                options: if v5 {
                    SubscriptionOptions {
                        qos: qos(q),
                        no_local,
                        retain_as_published: rap,
                        retain_handling: RetainHandling::from_u8(rh).unwrap(),
                    }
                } else {
                    SubscriptionOptions::new(qos(q))
                },
            })
            .collect(),
        properties: SubscribeProperties {
            subscription_identifier: if v5 {
                SubscriptionId::new(SUBSCRIPTION_ID)
            } else {
                None
            },
            ..SubscribeProperties::default()
        },
    }
}

fn qos4(n: u8) -> Qos4 {
    rumqttc::mqttbytes::qos(n).unwrap()
}

fn subscribe_v4() -> r4::Subscribe {
    let mut subscribe = r4::Subscribe::new_many(
        FILTERS
            .iter()
            .map(|&(filter, q, ..)| r4::SubscribeFilter::new(filter.into(), qos4(q))),
    );
    subscribe.pkid = 7;
    subscribe
}

fn subscribe_v5() -> r5::Subscribe {
    let filters = FILTERS
        .iter()
        .map(|&(filter, q, no_local, rap, rh)| r5::Filter {
            path: filter.into(),
            qos: rumqttc::v5::mqttbytes::qos(q).unwrap(),
            nolocal: no_local,
            preserve_retain: rap,
            retain_forward_rule: match rh {
                0 => r5::RetainForwardRule::OnEverySubscribe,
                1 => r5::RetainForwardRule::OnNewSubscribe,
                _ => r5::RetainForwardRule::Never,
            },
        });
    let properties = r5::SubscribeProperties {
        id: Some(SUBSCRIPTION_ID as usize),
        user_properties: Vec::new(),
    };
    let mut subscribe = r5::Subscribe::new_many(filters, Some(properties));
    subscribe.pkid = 7;
    subscribe
}

fn check_subscribe(version: Version) -> Vec<u8> {
    let ours = Packet::Subscribe(subscribe_ours(version));
    let wire = encoded(|buf| {
        ours.encode(version.ours(), buf).unwrap();
    });
    let theirs = match version {
        Version::V311 => encoded(|buf| {
            subscribe_v4().write(buf).unwrap();
        }),
        Version::V5 => encoded(|buf| {
            subscribe_v5().write(buf).unwrap();
        }),
    };
    assert_eq!(wire, theirs, "the codecs encode SUBSCRIBE differently");

    let mut buf = BytesMut::from(wire.as_slice());
    let decoded = Decoder::with_version(version.ours()).decode(&mut buf);
    assert_eq!(decoded, Ok(Some(ours)));
    let mut buf = BytesMut::from(wire.as_slice());
    match version {
        Version::V311 => assert_eq!(
            r4::Packet::read(&mut buf, RUMQTTC_MAX).unwrap(),
            r4::Packet::Subscribe(subscribe_v4())
        ),
        Version::V5 => assert_eq!(
            r5::Packet::read(&mut buf, None).unwrap(),
            r5::Packet::Subscribe(subscribe_v5())
        ),
    }
    wire
}

fn subscribe(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_subscribe");
    for version in Version::ALL {
        let one = check_subscribe(version);
        let wire = Wire::repeat(one.len(), |_, buf| buf.extend_from_slice(&one));
        let v = version.ours();
        bench_decode(
            &mut group,
            version.label(),
            &wire,
            &[
                ("ours", &|buf| decode_all_ours(v, buf)),
                ("rumqttc", &|buf| decode_all_rumqttc(version, buf)),
            ],
        );
    }
    group.finish();

    let mut group = c.benchmark_group("encode_subscribe");
    for version in Version::ALL {
        let wire_len = check_subscribe(version).len();
        let v = version.ours();
        let ours = Packet::Subscribe(subscribe_ours(version));
        let v4 = subscribe_v4();
        let v5 = subscribe_v5();
        let theirs: &dyn Fn(&mut BytesMut) -> usize = match version {
            Version::V311 => &|buf| v4.write(buf).unwrap(),
            Version::V5 => &|buf| v5.write(buf).unwrap(),
        };
        bench_encode(
            &mut group,
            version.label(),
            wire_len,
            &[
                ("ours", &|buf| ours.encode(v, buf).unwrap()),
                ("rumqttc", theirs),
            ],
        );
    }
    group.finish();
}

criterion_group!(benches, decode_publish, encode_publish, connect, subscribe);
criterion_main!(benches);
