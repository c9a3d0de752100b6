//! PUBLISH: the message itself, and the codec's hot path. A decoded PUBLISH keeps the frame
//! and reads its topic and payload as ranges of it (one reference count per message);
//! encoding copies the payload once, or not at all with [`Publish::encode_header`].

use core::fmt;

use bytes::{Buf, BufMut, Bytes};

use super::{checked_total, field_len, no_properties_before_v5};
use crate::parse::{packet_id, put_varint};
use crate::properties::{PropertyBlock, put_bytes};
use crate::topic::check_decoded_topic_name;
use crate::{
    DecodeError, EncodeError, InvalidTopic, PacketId, PacketType, ProtocolVersion,
    PublishProperties, QoS, TopicName,
};

/// A PUBLISH's QoS together with the packet identifier QoS 1 and 2 require, so that a QoS 0
/// message cannot carry one and a QoS 1 message cannot lack one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishQoS {
    /// QoS 0.
    AtMostOnce,
    /// QoS 1, with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2, with its packet identifier.
    ExactlyOnce(PacketId),
}

impl PublishQoS {
    /// The QoS level.
    pub const fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, for QoS 1 and 2.
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(id) | Self::ExactlyOnce(id) => Some(id),
        }
    }

    /// `qos` with `packet_id`, which is ignored for QoS 0.
    pub const fn with_packet_id(qos: QoS, packet_id: PacketId) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce(packet_id),
            QoS::ExactlyOnce => Self::ExactlyOnce(packet_id),
        }
    }
}

/// PUBLISH.
///
/// A decoded PUBLISH holds one handle, on the frame it came in, and reads its topic and
/// payload as ranges of it: one reference count per message, and nothing copied. A PUBLISH
/// built with [`Publish::new`] holds its topic and payload as given. Both behave the same:
/// [`Publish::topic`] and [`Publish::payload`] borrow, [`Publish::topic_name`] and
/// [`Publish::payload_bytes`] hand out shared handles, [`Publish::into_parts`] moves both out,
/// and a decoded PUBLISH equals a built one with the same content.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use mqtt_codec::{Decoder, Packet, ProtocolVersion, Publish, TopicName};
///
/// let publish = Publish::new(TopicName::new("a/b").unwrap(), Bytes::from_static(b"hello"));
/// let mut buf = BytesMut::new();
/// Packet::Publish(publish.clone()).encode(ProtocolVersion::V3_1_1, &mut buf).unwrap();
/// assert_eq!(&buf[..], b"\x30\x0a\x00\x03a/bhello");
///
/// let decoded = Decoder::with_version(ProtocolVersion::V3_1_1).decode(&mut buf).unwrap();
/// let Some(Packet::Publish(decoded)) = decoded else { panic!("not a PUBLISH") };
/// assert_eq!((decoded.topic(), decoded.payload()), ("a/b", &b"hello"[..]));
/// assert_eq!(decoded, publish);
/// ```
#[derive(Clone)]
pub struct Publish {
    /// Whether this is a re-delivery of an earlier attempt.
    pub dup: bool,
    /// The QoS and, for QoS 1 and 2, the packet identifier.
    pub qos: PublishQoS,
    /// Whether the message is (or was published as) retained.
    pub retain: bool,
    /// MQTT 5 properties, boxed and `None` when there are none: most messages carry none,
    /// and a small `Publish` is cheaper to decode and move. Read them with
    /// [`Publish::properties`], change them with [`Publish::properties_mut`].
    pub properties: Option<Box<PublishProperties>>,
    /// The topic and the payload.
    content: Content,
}

/// Where a PUBLISH's topic and payload are.
#[derive(Clone)]
enum Content {
    /// Built by a caller, or taken apart from a frame: each has its own handle.
    Parts {
        /// The topic; empty only in an MQTT 5 PUBLISH that carries a topic alias.
        topic: TopicName,
        /// The payload.
        payload: Bytes,
    },
    /// Decoded: the frame, with the topic name at `topic_start..topic_end` (checked when
    /// decoded: UTF-8, no wildcards, no U+0000) and the payload from `payload_start` to the
    /// end. `topic_start <= topic_end <= payload_start <= frame.len()`.
    Frame {
        frame: Bytes,
        topic_start: usize,
        topic_end: usize,
        payload_start: usize,
    },
}

impl Content {
    /// Nothing: what `Publish` holds for the moment its content is taken apart.
    const EMPTY: Self = Self::Parts {
        topic: TopicName::empty(),
        payload: Bytes::new(),
    };

    /// The topic name and the payload, as two handles. Taking a frame apart costs one
    /// reference count (none when the payload is empty).
    fn into_parts(self) -> (TopicName, Bytes) {
        match self {
            Self::Parts { topic, payload } => (topic, payload),
            Self::Frame {
                mut frame,
                topic_start,
                topic_end,
                payload_start,
            } => {
                let payload = if payload_start <= frame.len() {
                    frame.split_off(payload_start)
                } else {
                    Bytes::new()
                };
                (topic_from_frame(frame, topic_start, topic_end), payload)
            }
        }
    }
}

/// The topic name at `start..end` of a decoded frame, keeping the frame's handle.
fn topic_from_frame(mut frame: Bytes, start: usize, end: usize) -> TopicName {
    if start <= end && end <= frame.len() {
        frame.truncate(end);
        frame.advance(start);
        TopicName::from_decoded(frame)
    } else {
        TopicName::empty()
    }
}

/// The properties of a PUBLISH that has none.
static NO_PROPERTIES: PublishProperties = PublishProperties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    topic_alias: None,
    response_topic: None,
    correlation_data: None,
    subscription_identifiers: Vec::new(),
    content_type: None,
    user_properties: Vec::new(),
};

/// Equal when every field is, whether decoded or built, and whether "no properties" is
/// `None` or an empty box.
impl PartialEq for Publish {
    fn eq(&self, other: &Self) -> bool {
        self.dup == other.dup
            && self.qos == other.qos
            && self.retain == other.retain
            && self.topic_bytes() == other.topic_bytes()
            && self.payload() == other.payload()
            && self.properties() == other.properties()
    }
}

impl Eq for Publish {}

/// The same whether decoded or built: the topic as a string, the payload as `Bytes` shows it.
impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic())
            .field("payload", &self.payload_bytes())
            .field("properties", &self.properties)
            .finish()
    }
}

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;

impl Publish {
    /// A QoS 0, non-retained message.
    pub const fn new(topic: TopicName, payload: Bytes) -> Self {
        Self {
            dup: false,
            qos: PublishQoS::AtMostOnce,
            retain: false,
            properties: None,
            content: Content::Parts { topic, payload },
        }
    }

    /// The topic name; empty only in an MQTT 5 PUBLISH that names its topic by alias.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use mqtt_codec::{Publish, TopicName};
    ///
    /// let publish = Publish::new(TopicName::new("a/b").unwrap(), Bytes::new());
    /// assert_eq!(publish.topic(), "a/b");
    /// ```
    pub fn topic(&self) -> &str {
        match &self.content {
            Content::Parts { topic, .. } => topic,
            // Checked when decoded; checking UTF-8 again is the price of no `unsafe`.
            Content::Frame { .. } => core::str::from_utf8(self.topic_bytes()).unwrap_or_default(),
        }
    }

    /// The topic name as an owned, shared handle: for a decoded PUBLISH, a slice of the
    /// frame (one reference count, no copy).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use mqtt_codec::{Publish, TopicName};
    ///
    /// let topic = TopicName::new("a/b").unwrap();
    /// let publish = Publish::new(topic.clone(), Bytes::new());
    /// assert_eq!(publish.topic_name(), topic);
    /// ```
    pub fn topic_name(&self) -> TopicName {
        match &self.content {
            Content::Parts { topic, .. } => topic.clone(),
            Content::Frame {
                frame,
                topic_start,
                topic_end,
                ..
            } => topic_from_frame(frame.clone(), *topic_start, *topic_end),
        }
    }

    /// Replaces the topic name; [`TopicName::empty`] with a topic alias in the properties
    /// (MQTT 5). The payload stays where it is.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use mqtt_codec::{Publish, TopicName};
    ///
    /// let mut publish = Publish::new(TopicName::new("a/b").unwrap(), Bytes::from("x"));
    /// publish.set_topic(TopicName::new("c").unwrap());
    /// assert_eq!((publish.topic(), publish.payload()), ("c", &b"x"[..]));
    /// ```
    pub fn set_topic(&mut self, topic: TopicName) {
        let (_, payload) = core::mem::replace(&mut self.content, Content::EMPTY).into_parts();
        self.content = Content::Parts { topic, payload };
    }

    /// The payload.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use mqtt_codec::{Publish, TopicName};
    ///
    /// let mut publish = Publish::new(TopicName::new("t").unwrap(), Bytes::from("21.5"));
    /// assert_eq!(publish.payload(), b"21.5");
    /// publish.set_payload(Bytes::from("22.0"));
    /// assert_eq!((publish.topic(), publish.payload()), ("t", &b"22.0"[..]));
    /// ```
    pub fn payload(&self) -> &[u8] {
        match &self.content {
            Content::Parts { payload, .. } => payload,
            Content::Frame {
                frame,
                payload_start,
                ..
            } => frame.get(*payload_start..).unwrap_or_default(),
        }
    }

    /// The payload as a shared handle (one reference count, no copy): to keep it, or send it
    /// after [`Publish::encode_header`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use mqtt_codec::{Publish, TopicName};
    ///
    /// let payload = Bytes::from(vec![1, 2, 3]);
    /// let publish = Publish::new(TopicName::new("t").unwrap(), payload.clone());
    /// assert_eq!(publish.payload_bytes().as_ptr(), payload.as_ptr());
    /// ```
    pub fn payload_bytes(&self) -> Bytes {
        match &self.content {
            Content::Parts { payload, .. } => payload.clone(),
            Content::Frame {
                frame,
                payload_start,
                ..
            } => {
                if *payload_start < frame.len() {
                    frame.slice(*payload_start..)
                } else {
                    Bytes::new()
                }
            }
        }
    }

    /// Replaces the payload. The topic stays where it is.
    pub fn set_payload(&mut self, payload: Bytes) {
        let (topic, _) = core::mem::replace(&mut self.content, Content::EMPTY).into_parts();
        self.content = Content::Parts { topic, payload };
    }

    /// The topic name and the payload, moved out: no copy, and for a decoded PUBLISH one
    /// reference count (the two share the frame). Read or take `dup`, `qos`, `retain` and
    /// `properties` first.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use mqtt_codec::{Decoder, Packet, ProtocolVersion, Publish, TopicName};
    ///
    /// let mut wire = BytesMut::new();
    /// let publish = Publish::new(TopicName::new("a/b").unwrap(), Bytes::from("hi"));
    /// Packet::Publish(publish).encode(ProtocolVersion::V5, &mut wire).unwrap();
    /// let decoded = Decoder::with_version(ProtocolVersion::V5).decode(&mut wire).unwrap();
    /// let Some(Packet::Publish(mut decoded)) = decoded else { panic!("not a PUBLISH") };
    ///
    /// let properties = decoded.properties.take();
    /// let (topic, payload) = decoded.into_parts();
    /// assert_eq!((topic.as_str(), &payload[..], properties), ("a/b", &b"hi"[..], None));
    /// ```
    pub fn into_parts(self) -> (TopicName, Bytes) {
        self.content.into_parts()
    }

    /// The topic name's bytes, without checking UTF-8 again.
    fn topic_bytes(&self) -> &[u8] {
        match &self.content {
            Content::Parts { topic, .. } => topic.as_bytes(),
            Content::Frame {
                frame,
                topic_start,
                topic_end,
                ..
            } => frame.get(*topic_start..*topic_end).unwrap_or_default(),
        }
    }

    /// The MQTT 5 properties (all unset when there are none).
    pub fn properties(&self) -> &PublishProperties {
        self.properties.as_deref().unwrap_or(&NO_PROPERTIES)
    }

    /// The MQTT 5 properties, to change; allocates them on first use.
    pub fn properties_mut(&mut self) -> &mut PublishProperties {
        self.properties.get_or_insert_with(Box::default)
    }

    pub(crate) fn flags(&self) -> u8 {
        let mut flags = self.qos.qos().as_u8() << 1;
        if self.dup {
            flags |= DUP;
        }
        if self.retain {
            flags |= RETAIN;
        }
        flags
    }

    /// Decodes the PUBLISH in `frame` (exactly one packet), whose body starts at
    /// `body_start`. The result keeps `frame` and nothing else: no reference count is taken.
    #[inline]
    pub(crate) fn decode(
        frame: Bytes,
        body_start: usize,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let i = frame.get(body_start..).unwrap_or_default();
        let [len_hi, len_lo, i @ ..] = i else {
            return Err(DecodeError::UnexpectedEnd);
        };
        let topic_len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        let (Some(topic), Some(i)) = (i.get(..topic_len), i.get(topic_len..)) else {
            return Err(DecodeError::UnexpectedEnd);
        };
        check_decoded_topic_name(topic)?;
        let dup = flags & DUP != 0;
        let (i, qos) = match (flags >> 1) & 0b11 {
            0 if dup => return Err(DecodeError::DupWithQoS0),
            0 => (i, PublishQoS::AtMostOnce),
            1 => {
                let (i, id) = packet_id(i)?;
                (i, PublishQoS::AtLeastOnce(id))
            }
            2 => {
                let (i, id) = packet_id(i)?;
                (i, PublishQoS::ExactlyOnce(id))
            }
            _ => return Err(DecodeError::InvalidQoS),
        };
        let (i, properties) = match (version.is_v5(), i.split_first()) {
            // The common case, a zero property length, takes neither a parse nor a box.
            (true, Some((0, rest))) => (rest, None),
            (true, _) => {
                let (i, props) = PublishProperties::parse(&frame, i, PacketType::Publish)?;
                (i, (!props.is_empty()).then(|| Box::new(props)))
            }
            (false, _) => (i, None),
        };
        if topic_len == 0 {
            empty_topic_allowed(version, properties.as_deref())?;
        }
        let topic_start = body_start + 2;
        let payload_start = frame.len() - i.len();
        Ok(Self {
            dup,
            qos,
            retain: flags & RETAIN != 0,
            properties,
            content: Content::Frame {
                frame,
                topic_start,
                topic_end: topic_start + topic_len,
                payload_start,
            },
        })
    }

    /// Everything after the fixed header but the payload; checks what must be checked.
    fn header_body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.dup && self.qos == PublishQoS::AtMostOnce {
            return Err(EncodeError::InvalidValue("DUP set on a QoS 0 PUBLISH"));
        }
        let topic = self.topic_bytes();
        if topic.is_empty() && self.properties().topic_alias.is_none() {
            return Err(EncodeError::InvalidValue(
                "empty topic name without a topic alias",
            ));
        }
        let mut len = field_len(topic.len(), "topic name")?;
        if self.qos.packet_id().is_some() {
            len += 2;
        }
        // Most messages carry no properties: no need to look at each one.
        match (&self.properties, version.is_v5()) {
            (None, true) => len += 1,
            (None, false) => {}
            (Some(p), true) => len += p.block_len()?,
            (Some(p), false) => no_properties_before_v5(&**p, version)?,
        }
        Ok(len)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(self.header_body_len(version)? + self.payload().len())
    }

    fn write_header_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        put_bytes(buf, self.topic_bytes());
        if let Some(id) = self.qos.packet_id() {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            match &self.properties {
                None => buf.put_u8(0),
                Some(p) => p.write_block(buf),
            }
        }
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        self.write_header_body(version, buf);
        buf.put_slice(self.payload());
    }

    /// The size of this PUBLISH encoded for `version`, computed without encoding it (the
    /// same as [`crate::Packet::encoded_len`] of `Packet::Publish`, without building one).
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        checked_total(self.body_len(version)?, u32::MAX, usize::MAX)
    }

    /// Writes everything but the payload, so that a caller can send the payload straight
    /// from [`Publish::payload_bytes`] (with vectored I/O, or by chaining buffers) without
    /// copying it. Returns the size of the whole packet; nothing is written on error.
    ///
    /// ```
    /// use bytes::{Buf, Bytes, BytesMut};
    /// use mqtt_codec::{Packet, ProtocolVersion, Publish, TopicName};
    ///
    /// let publish = Publish::new(TopicName::new("t").unwrap(), Bytes::from_static(b"payload"));
    /// let mut header = BytesMut::new();
    /// let total = publish.encode_header(ProtocolVersion::V5, u32::MAX, &mut header).unwrap();
    /// let wire = header.freeze().chain(publish.payload_bytes());
    /// assert_eq!(wire.remaining(), total);
    /// ```
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut impl BufMut,
    ) -> Result<usize, EncodeError> {
        let payload_len = self.payload().len();
        let remaining = self.header_body_len(version)? + payload_len;
        let total = checked_total(remaining, max_packet_size, usize::MAX)?;
        let header_len = total - payload_len;
        if buf.remaining_mut() < header_len {
            return Err(EncodeError::BufferTooSmall {
                needed: header_len,
                remaining: buf.remaining_mut(),
            });
        }
        buf.put_u8((PacketType::Publish as u8) << 4 | self.flags());
        put_varint(buf, remaining);
        self.write_header_body(version, buf);
        Ok(total)
    }
}

/// An empty topic name is allowed only in MQTT 5, and only with a topic alias.
#[cold]
fn empty_topic_allowed(
    version: ProtocolVersion,
    properties: Option<&PublishProperties>,
) -> Result<(), DecodeError> {
    if !version.is_v5() {
        return Err(DecodeError::InvalidTopicName(InvalidTopic::Empty));
    }
    if properties.is_none_or(|p| p.topic_alias.is_none()) {
        return Err(DecodeError::EmptyTopicWithoutAlias);
    }
    Ok(())
}
