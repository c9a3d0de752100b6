//! PUBLISH: the message itself, and the codec's hot path. Decoding slices the topic and the
//! payload out of the frame; encoding copies the payload once, or not at all with
//! [`Publish::encode_header`].

use bytes::{Buf, BufMut, Bytes};
use bytestring::ByteString;

use super::{checked_total, field_len, no_properties_before_v5};
use crate::parse::{binary, fail, packet_id, put_varint};
use crate::properties::{PropertyBlock, put_bytes};
use crate::{
    DecodeError, EncodeError, PacketId, PacketType, ProtocolVersion, PublishProperties, QoS,
    TopicName,
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
/// assert_eq!(decoded, Some(Packet::Publish(publish)));
/// ```
#[derive(Debug, Clone, Eq)]
pub struct Publish {
    /// Whether this is a re-delivery of an earlier attempt.
    pub dup: bool,
    /// The QoS and, for QoS 1 and 2, the packet identifier.
    pub qos: PublishQoS,
    /// Whether the message is (or was published as) retained.
    pub retain: bool,
    /// The topic; empty only in an MQTT 5 PUBLISH that carries a topic alias.
    pub topic: TopicName,
    /// The payload: a slice of the received frame when decoded.
    pub payload: Bytes,
    /// MQTT 5 properties, boxed and `None` when there are none: most messages carry none,
    /// and a small `Publish` is cheaper to decode and move. Read them with
    /// [`Publish::properties`], change them with [`Publish::properties_mut`].
    pub properties: Option<Box<PublishProperties>>,
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

/// Equal when every field is, whether "no properties" is `None` or an empty box.
impl PartialEq for Publish {
    fn eq(&self, other: &Self) -> bool {
        self.dup == other.dup
            && self.qos == other.qos
            && self.retain == other.retain
            && self.topic == other.topic
            && self.payload == other.payload
            && self.properties() == other.properties()
    }
}

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;

impl Publish {
    /// A QoS 0, non-retained message.
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        Self {
            dup: false,
            qos: PublishQoS::AtMostOnce,
            retain: false,
            topic,
            payload,
            properties: None,
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

    /// Decodes the PUBLISH in `frame`, whose body starts at `body_start`. Takes the frame by
    /// value so that the payload can be the frame's own handle, advanced: one reference
    /// count fewer per message than slicing it.
    #[inline]
    pub(crate) fn decode(
        mut frame: Bytes,
        body_start: usize,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (topic, qos, properties, payload_start) =
            Self::decode_header(&frame, body_start, flags, version)?;
        frame.advance(payload_start);
        Ok(Self {
            dup: flags & DUP != 0,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            payload: frame,
            properties,
        })
    }

    /// Everything of a PUBLISH but the payload, and where the payload starts.
    #[allow(clippy::type_complexity)]
    fn decode_header(
        frame: &Bytes,
        body_start: usize,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<(TopicName, PublishQoS, Option<Box<PublishProperties>>, usize), DecodeError> {
        let i = frame.get(body_start..).ok_or(DecodeError::UnexpectedEnd)?;
        let dup = flags & DUP != 0;
        let (i, topic) = binary(frame, i)?;
        let topic = ByteString::try_from(topic).or_else(|_| fail(DecodeError::InvalidUtf8))?;
        let topic = TopicName::new_allow_empty(topic).map_err(DecodeError::InvalidTopicName)?;
        let (i, qos) = match QoS::from_u8((flags >> 1) & 0b11) {
            Some(QoS::AtMostOnce) if dup => return Err(DecodeError::DupWithQoS0),
            Some(QoS::AtMostOnce) => (i, PublishQoS::AtMostOnce),
            Some(QoS::AtLeastOnce) => {
                let (i, id) = packet_id(i)?;
                (i, PublishQoS::AtLeastOnce(id))
            }
            Some(QoS::ExactlyOnce) => {
                let (i, id) = packet_id(i)?;
                (i, PublishQoS::ExactlyOnce(id))
            }
            None => return Err(DecodeError::InvalidQoS),
        };
        let (i, properties) = match (version.is_v5(), i.split_first()) {
            // The common case, a zero property length, takes neither a parse nor a box.
            (true, Some((0, rest))) => (rest, None),
            (true, _) => {
                let (i, props) = PublishProperties::parse(frame, i, PacketType::Publish)?;
                (i, (!props.is_empty()).then(|| Box::new(props)))
            }
            (false, _) => (i, None),
        };
        if topic.is_empty() {
            if !version.is_v5() {
                return Err(DecodeError::InvalidTopicName(crate::InvalidTopic::Empty));
            }
            if properties.as_ref().is_none_or(|p| p.topic_alias.is_none()) {
                return Err(DecodeError::EmptyTopicWithoutAlias);
            }
        }
        Ok((topic, qos, properties, frame.len() - i.len()))
    }

    /// Everything after the fixed header but the payload; checks what must be checked.
    fn header_body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.dup && self.qos == PublishQoS::AtMostOnce {
            return Err(EncodeError::InvalidValue("DUP set on a QoS 0 PUBLISH"));
        }
        if self.topic.is_empty() && self.properties().topic_alias.is_none() {
            return Err(EncodeError::InvalidValue(
                "empty topic name without a topic alias",
            ));
        }
        let mut len = field_len(self.topic.len(), "topic name")?;
        if self.qos.packet_id().is_some() {
            len += 2;
        }
        if version.is_v5() {
            len += self.properties().block_len()?;
        } else {
            no_properties_before_v5(self.properties(), version)?;
        }
        Ok(len)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(self.header_body_len(version)? + self.payload.len())
    }

    fn write_header_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        put_bytes(buf, self.topic.as_bytes());
        if let Some(id) = self.qos.packet_id() {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties().write_block(buf);
        }
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        self.write_header_body(version, buf);
        buf.put_slice(&self.payload);
    }

    /// The size of this PUBLISH encoded for `version`, computed without encoding it (the
    /// same as [`crate::Packet::encoded_len`] of `Packet::Publish`, without building one).
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        checked_total(self.body_len(version)?, u32::MAX, usize::MAX)
    }

    /// Writes everything but the payload, so that a caller can send the payload straight
    /// from [`Publish::payload`] (with vectored I/O, or by chaining buffers) without copying
    /// it. Returns the size of the whole packet; nothing is written on error.
    ///
    /// ```
    /// use bytes::{Buf, Bytes, BytesMut};
    /// use mqtt_codec::{Packet, ProtocolVersion, Publish, TopicName};
    ///
    /// let publish = Publish::new(TopicName::new("t").unwrap(), Bytes::from_static(b"payload"));
    /// let mut header = BytesMut::new();
    /// let total = publish.encode_header(ProtocolVersion::V5, u32::MAX, &mut header).unwrap();
    /// let wire = header.freeze().chain(publish.payload.clone());
    /// assert_eq!(wire.remaining(), total);
    /// ```
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut impl BufMut,
    ) -> Result<usize, EncodeError> {
        let header_body = self.header_body_len(version)?;
        let remaining = header_body + self.payload.len();
        let total = checked_total(remaining, max_packet_size, usize::MAX)?;
        let header_len = total - self.payload.len();
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
