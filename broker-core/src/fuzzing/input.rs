//! Reading a fuzz input: the byte cursor, and the packets built from its bytes by structured
//! choice (each byte picks from a small table), so that most inputs are packets the broker
//! accepts and the fuzzer spends its time past CONNECT, in the core.
//!
//! Every builder takes what it needs from the cursor, and past the end of the input reads
//! zeros: any byte string is a valid script.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use mqtt_codec::{
    Ack, Auth, ClientId, Connect, Disconnect, LastWill, Packet, PacketId, PayloadFormat,
    ProtocolVersion, Publish, PublishQoS, QoS, ReasonCode, RetainHandling, Subscribe,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, Unsubscribe, UserProperty,
};

/// The authentication method the fuzzing broker's AUTH hook answers to.
pub(super) const AUTH_METHOD: &str = "fuzz";

/// Client identifiers: few, so that clients meet (takeover, resumed sessions); `""` asks the
/// broker to assign one.
const CLIENT_IDS: [&str; 5] = ["c0", "c1", "c2", "c3", ""];

/// Topic levels for topic names and filters (`+` and `#` only in filters, and last).
pub(super) const LEVELS: [&str; 8] = ["a", "b", "sensor", "$SYS", "", "c", "+", "#"];

/// How many levels a deep topic or filter has. The deepest is kept at 200 (Mosquitto's
/// limit) so that the recursion on depth in the subscription index, a known crash being
/// fixed elsewhere, does not take every run.
const DEPTHS: [usize; 4] = [8, 32, 100, 200];

/// Keep alive values (seconds).
const KEEP_ALIVES: [u16; 4] = [0, 1, 10, 60];

/// MQTT 5 Session Expiry Interval values (seconds; `None`: not sent).
const EXPIRIES: [Option<u32>; 8] = [
    None,
    Some(0),
    Some(1),
    Some(10),
    Some(60),
    Some(3600),
    Some(u32::MAX),
    None,
];

/// Will Delay Interval values (seconds).
const WILL_DELAYS: [Option<u32>; 4] = [None, Some(0), Some(5), Some(120)];

/// Receive Maximum values a client asks for.
const RECEIVE_MAXIMUMS: [Option<u16>; 4] = [None, Some(1), Some(2), Some(65_535)];

/// Maximum Packet Size values a client asks for (small ones make the broker drop messages).
const PACKET_SIZES: [Option<u32>; 4] = [None, Some(24), Some(64), Some(512)];

/// Topic Alias Maximum values a client asks for.
const ALIAS_MAXIMUMS: [Option<u16>; 4] = [None, Some(0), Some(1), Some(4)];

/// Message Expiry Interval values (seconds).
const MESSAGE_EXPIRIES: [Option<u32>; 4] = [None, Some(0), Some(1), Some(30)];

/// Reason codes an acknowledgement of each kind may carry (MQTT 5).
const PUBACK_CODES: [ReasonCode; 4] = [
    ReasonCode::Success,
    ReasonCode::NoMatchingSubscribers,
    ReasonCode::UnspecifiedError,
    ReasonCode::PacketIdentifierInUse,
];
const PUBREL_CODES: [ReasonCode; 2] = [ReasonCode::Success, ReasonCode::PacketIdentifierNotFound];

/// DISCONNECT reason codes.
const DISCONNECT_CODES: [ReasonCode; 4] = [
    ReasonCode::Success,
    ReasonCode::DisconnectWithWillMessage,
    ReasonCode::UnspecifiedError,
    ReasonCode::ProtocolError,
];

/// AUTH reason codes.
const AUTH_CODES: [ReasonCode; 3] = [
    ReasonCode::ContinueAuthentication,
    ReasonCode::ReAuthenticate,
    ReasonCode::Success,
];

/// The acknowledgements a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names, reason = "each variant is the packet sent")]
pub(super) enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

/// A cursor over the fuzz input that reads zeros past its end.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether every byte has been read.
    pub(super) fn is_done(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, 0 past the end.
    pub(super) fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next `n` bytes, fewer at the end.
    pub(super) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data.get(start..end).unwrap_or_default()
    }

    /// One entry of `table`, chosen by the next byte.
    pub(super) fn pick<T: Copy, const N: usize>(&mut self, table: &[T; N]) -> T {
        choose(self.byte(), table)
    }
}

/// The entry of `table` that `b` selects.
fn choose<T: Copy, const N: usize>(b: u8, table: &[T; N]) -> T {
    #[allow(
        clippy::indexing_slicing,
        reason = "the index is taken modulo the table's length, and no table is empty"
    )]
    table[usize::from(b) % N]
}

/// Whether bit `n` of `b` is set.
fn bit(b: u8, n: u32) -> bool {
    b >> n & 1 == 1
}

/// Packet identifier 1.
const FIRST_ID: PacketId = match PacketId::new(1) {
    Some(id) => id,
    None => panic!("1 is a packet identifier"),
};

/// A packet identifier from a small set, so that identifiers collide.
pub(super) fn packet_id(r: &mut Reader<'_>) -> PacketId {
    PacketId::new(1 + u16::from(r.byte() % 8)).unwrap_or(FIRST_ID)
}

/// A protocol version.
pub(super) fn version(b: u8) -> ProtocolVersion {
    choose(
        b,
        &[
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ],
    )
}

/// Topic levels: one to four from [`LEVELS`], or one level repeated to a depth of
/// [`DEPTHS`]; wildcards only if `filter`.
fn levels(r: &mut Reader<'_>, filter: bool) -> Vec<&'static str> {
    let shape = r.byte();
    let usable = if filter {
        LEVELS.len()
    } else {
        LEVELS.len() - 2
    };
    let level = |r: &mut Reader<'_>| {
        let i = usize::from(r.byte()) % usable;
        LEVELS.get(i).copied().unwrap_or("a")
    };
    if bit(shape, 7) {
        let depth = choose(shape, &DEPTHS);
        let repeated = level(r);
        // `#` is only valid last: a deep filter of it ends in it instead.
        let (body, last) = match repeated {
            "#" => ("+", Some("#")),
            other => (other, None),
        };
        let mut out = vec![body; depth];
        out.extend(last);
        return out;
    }
    let count = 1 + usize::from(shape & 3);
    let mut out: Vec<&str> = (0..count).map(|_| level(r)).collect();
    let last = out.len().saturating_sub(1);
    for (i, l) in out.iter_mut().enumerate() {
        if *l == "#" && i != last {
            *l = "+";
        }
    }
    out
}

/// A topic name.
pub(super) fn topic(r: &mut Reader<'_>) -> TopicName {
    let levels = levels(r, false);
    TopicName::new(levels.join("/")).unwrap_or_else(|_| TopicName::empty())
}

/// A topic filter, sometimes a shared one; `None` if the choices made an invalid one.
pub(super) fn filter(r: &mut Reader<'_>) -> Option<TopicFilter> {
    let prefix = choose(r.byte(), &["", "", "$share/g/", "$share/h/"]);
    let levels = levels(r, true);
    TopicFilter::new(format!("{prefix}{}", levels.join("/"))).ok()
}

/// A client identifier from [`CLIENT_IDS`].
pub(super) fn client_id(b: u8) -> Option<ClientId> {
    ClientId::new(choose(b, &CLIENT_IDS)).ok()
}

/// A CONNECT: version, client id, clean start, keep alive, will, credentials, and in MQTT 5
/// session expiry, receive maximum, packet size, alias maximum and the AUTH method.
pub(super) fn connect(r: &mut Reader<'_>) -> Option<Connect> {
    let who = r.byte();
    let flags = r.byte();
    let times = r.byte();
    let limits = r.byte();
    let version = version(who & 3);
    let v5 = version.is_v5();
    let mut connect = Connect::new(version, client_id(who >> 2)?);
    connect.clean_start = bit(flags, 0);
    connect.keep_alive = choose(times, &KEEP_ALIVES);
    if bit(flags, 5) {
        connect.username = Some("user".into());
        connect.password = Some(Bytes::from_static(b"secret"));
    }
    if bit(flags, 1) {
        let mut will = LastWill {
            topic: topic(r),
            payload: Bytes::from_static(b"gone"),
            qos: choose(
                flags >> 3,
                &[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
            ),
            retain: bit(flags, 2),
            properties: Default::default(),
        };
        if v5 {
            will.properties.will_delay_interval = choose(times >> 5, &WILL_DELAYS);
            will.properties.message_expiry_interval = choose(limits >> 6, &MESSAGE_EXPIRIES);
        }
        connect.will = Some(will);
    }
    if v5 {
        let p = &mut connect.properties;
        p.session_expiry_interval = choose(times >> 2, &EXPIRIES);
        p.receive_maximum = choose(limits, &RECEIVE_MAXIMUMS).and_then(NonZeroU16::new);
        p.maximum_packet_size = choose(limits >> 2, &PACKET_SIZES).and_then(NonZeroU32::new);
        p.topic_alias_maximum = choose(limits >> 4, &ALIAS_MAXIMUMS);
        p.request_problem_information = bit(flags, 7).then_some(false);
        if bit(flags, 6) {
            p.authentication_method = Some(AUTH_METHOD.into());
            p.authentication_data = Some(Bytes::copy_from_slice(r.bytes(2)));
        }
    }
    Some(connect)
}

/// A SUBSCRIBE of one to four filters with their options (and an identifier in MQTT 5).
pub(super) fn subscribe(r: &mut Reader<'_>, v5: bool) -> Option<Subscribe> {
    let shape = r.byte();
    let packet_id = packet_id(r);
    let mut subscriptions = Vec::new();
    for _ in 0..=shape & 3 {
        let options = r.byte();
        let Some(filter) = filter(r) else { continue };
        subscriptions.push(mqtt_codec::Subscription {
            filter,
            options: SubscriptionOptions {
                qos: choose(
                    options,
                    &[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
                ),
                no_local: v5 && bit(options, 2),
                retain_as_published: v5 && bit(options, 3),
                retain_handling: if v5 {
                    choose(
                        options >> 4,
                        &[
                            RetainHandling::SendAtSubscribe,
                            RetainHandling::SendIfNew,
                            RetainHandling::DoNotSend,
                        ],
                    )
                } else {
                    RetainHandling::SendAtSubscribe
                },
            },
        });
    }
    if subscriptions.is_empty() {
        return None;
    }
    let mut subscribe = Subscribe {
        packet_id,
        subscriptions,
        properties: Default::default(),
    };
    if v5 && bit(shape, 2) {
        subscribe.properties.subscription_identifier =
            SubscriptionId::new(u32::from(shape >> 3) + 1);
    }
    Some(subscribe)
}

/// An UNSUBSCRIBE of one to four filters.
pub(super) fn unsubscribe(r: &mut Reader<'_>) -> Option<Unsubscribe> {
    let shape = r.byte();
    let packet_id = packet_id(r);
    let filters: Vec<TopicFilter> = (0..=shape & 3).filter_map(|_| filter(r)).collect();
    (!filters.is_empty()).then(|| Unsubscribe {
        packet_id,
        filters,
        properties: Default::default(),
    })
}

/// A PUBLISH: QoS, retain, DUP, topic (or a topic alias in MQTT 5), payload, properties.
pub(super) fn publish(r: &mut Reader<'_>, v5: bool) -> Publish {
    let shape = r.byte();
    let topic = topic(r);
    let size = r.byte();
    let payload = if bit(shape, 6) {
        Bytes::new()
    } else {
        Bytes::from(vec![b'p'; usize::from(size) * 3])
    };
    let mut publish = Publish::new(topic, payload);
    let qos = choose(
        shape,
        &[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
    );
    if qos != QoS::AtMostOnce {
        publish.qos = PublishQoS::with_packet_id(qos, packet_id(r));
        publish.dup = bit(shape, 3);
    }
    publish.retain = bit(shape, 2);
    if v5 && bit(shape, 4) {
        let props = r.byte();
        let p = publish.properties_mut();
        p.message_expiry_interval = choose(props, &MESSAGE_EXPIRIES);
        if bit(props, 2) {
            p.payload_format_indicator = Some(PayloadFormat::Utf8);
        }
        if bit(props, 3) {
            p.response_topic = TopicName::new("reply").ok();
            p.correlation_data = Some(Bytes::from_static(b"corr"));
        }
        if bit(props, 4) {
            p.user_properties.push(UserProperty::new("k", "v"));
        }
        if bit(shape, 5) {
            // An alias (1-5, beyond the broker's maximum of 4 at 5), sometimes in place of
            // the topic, which then must have been set up before.
            p.topic_alias = NonZeroU16::new(1 + u16::from(props >> 5) % 5);
            if bit(props, 7) {
                publish.set_topic(TopicName::empty());
            }
        }
    }
    publish
}

/// An acknowledgement of `kind` for `packet_id`, with a reason code in MQTT 5.
pub(super) fn ack(kind: AckKind, packet_id: PacketId, code: u8, v5: bool) -> Packet {
    let mut ack = Ack::new(packet_id);
    if v5 {
        ack.reason_code = match kind {
            AckKind::PubAck | AckKind::PubRec => choose(code, &PUBACK_CODES),
            AckKind::PubRel | AckKind::PubComp => choose(code, &PUBREL_CODES),
        };
    }
    match kind {
        AckKind::PubAck => Packet::PubAck(ack),
        AckKind::PubRec => Packet::PubRec(ack),
        AckKind::PubRel => Packet::PubRel(ack),
        AckKind::PubComp => Packet::PubComp(ack),
    }
}

/// The kind of acknowledgement a byte picks.
pub(super) fn ack_kind(b: u8) -> AckKind {
    choose(
        b,
        &[
            AckKind::PubAck,
            AckKind::PubRec,
            AckKind::PubRel,
            AckKind::PubComp,
        ],
    )
}

/// A DISCONNECT, in MQTT 5 with a reason code and maybe a new session expiry.
pub(super) fn disconnect(r: &mut Reader<'_>, v5: bool) -> Disconnect {
    let b = r.byte();
    if !v5 {
        return Disconnect::new(ReasonCode::Success);
    }
    let mut disconnect = Disconnect::new(choose(b, &DISCONNECT_CODES));
    disconnect.properties.session_expiry_interval =
        choose(b >> 2, &[None, Some(0), Some(10), Some(u32::MAX)]);
    disconnect
}

/// An AUTH: continue, re-authenticate or success, with our method or another, and data.
pub(super) fn auth(r: &mut Reader<'_>) -> Auth {
    let b = r.byte();
    let mut auth = Auth {
        reason_code: choose(b, &AUTH_CODES),
        ..Auth::default()
    };
    let method = if bit(b, 2) { "other" } else { AUTH_METHOD };
    auth.properties.authentication_method = Some(method.into());
    auth.properties.authentication_data = Some(Bytes::copy_from_slice(r.bytes(2)));
    auth
}
