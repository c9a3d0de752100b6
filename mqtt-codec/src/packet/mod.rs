//! The [`Packet`] enum and the two operations every packet type has: decode from a complete
//! frame (`Bytes`), encode into a `BufMut`. One module per packet type holds the details.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

pub use ack::Ack;
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use publish::{Publish, PublishQoS};
pub use suback::SubAck;
pub use subscribe::{Subscribe, Subscription};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use bytes::{BufMut, Bytes};

use crate::parse::{MAX_VARIABLE_INTEGER, PResult, end, fail, put_varint, u8 as byte, varint_len};
use crate::properties::PropertyBlock;
use crate::topic::MAX_STRING_LEN;
use crate::{DecodeError, EncodeError, FixedHeader, PacketType, ProtocolVersion, ReasonCode};

/// An MQTT control packet of any version.
///
/// Version-specific parts (properties, reason codes, AUTH) are present in every variant;
/// decoding an MQTT 3.1.1 packet leaves them at their defaults, and encoding one for 3.1.1
/// refuses non-default values rather than drop them silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(Box<ConnAck>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (MQTT 5).
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Decodes one complete packet: `frame` starts with the fixed header `header` describes,
    /// followed by the body (bytes past the packet's end are ignored). [`crate::Decoder`]
    /// does the framing and calls this.
    ///
    /// `version` is the connection's version; CONNECT carries its own and ignores it. Topics,
    /// strings and payloads in the result are slices of `frame`.
    pub fn decode(
        header: &FixedHeader,
        mut frame: Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        if frame.len() < header.frame_len() {
            return Err(DecodeError::UnexpectedEnd);
        }
        frame.truncate(header.frame_len());
        let v = version;
        let flags = header.flags;
        if header.packet_type == PacketType::Publish {
            return Ok(Self::Publish(Publish::decode(
                frame,
                header.header_len,
                flags,
                v,
            )?));
        }
        Self::decode_other(header, &frame, v)
    }

    /// Every packet type but PUBLISH: kept out of line so the hot path stays small.
    #[inline(never)]
    fn decode_other(
        header: &FixedHeader,
        frame: &Bytes,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let body = frame
            .get(header.header_len..)
            .ok_or(DecodeError::UnexpectedEnd)?;
        Ok(match header.packet_type {
            PacketType::Connect => Self::Connect(Box::new(Connect::decode(frame, body)?)),
            PacketType::ConnAck => Self::ConnAck(Box::new(ConnAck::decode(frame, body, v)?)),
            PacketType::Publish => Self::Publish(Publish::decode(
                frame.clone(),
                header.header_len,
                header.flags,
                v,
            )?),
            PacketType::PubAck => Self::PubAck(Ack::decode(frame, body, PacketType::PubAck, v)?),
            PacketType::PubRec => Self::PubRec(Ack::decode(frame, body, PacketType::PubRec, v)?),
            PacketType::PubRel => Self::PubRel(Ack::decode(frame, body, PacketType::PubRel, v)?),
            PacketType::PubComp => Self::PubComp(Ack::decode(frame, body, PacketType::PubComp, v)?),
            PacketType::Subscribe => Self::Subscribe(Subscribe::decode(frame, body, v)?),
            PacketType::SubAck => Self::SubAck(SubAck::decode(frame, body, v)?),
            PacketType::Unsubscribe => Self::Unsubscribe(Unsubscribe::decode(frame, body, v)?),
            PacketType::UnsubAck => Self::UnsubAck(UnsubAck::decode(frame, body, v)?),
            PacketType::PingReq => {
                end(body)?;
                Self::PingReq
            }
            PacketType::PingResp => {
                end(body)?;
                Self::PingResp
            }
            PacketType::Disconnect => Self::Disconnect(Disconnect::decode(frame, body, v)?),
            PacketType::Auth => Self::Auth(Auth::decode(frame, body, v)?),
        })
    }

    /// The first byte of the fixed header.
    fn first_byte(&self) -> u8 {
        let flags = match self {
            Self::Publish(p) => p.flags(),
            other => other.packet_type().required_flags().unwrap_or(0),
        };
        (self.packet_type() as u8) << 4 | flags
    }

    /// The remaining length: the size of everything after the fixed header. Checks that
    /// every field is representable in `version`.
    fn remaining_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let v = version;
        match self {
            Self::Connect(p) => p.body_len(),
            Self::ConnAck(p) => p.body_len(v),
            Self::Publish(p) => p.body_len(v),
            Self::PubAck(p) => p.body_len(PacketType::PubAck, v),
            Self::PubRec(p) => p.body_len(PacketType::PubRec, v),
            Self::PubRel(p) => p.body_len(PacketType::PubRel, v),
            Self::PubComp(p) => p.body_len(PacketType::PubComp, v),
            Self::Subscribe(p) => p.body_len(v),
            Self::SubAck(p) => p.body_len(v),
            Self::Unsubscribe(p) => p.body_len(v),
            Self::UnsubAck(p) => p.body_len(v),
            Self::PingReq | Self::PingResp => Ok(0),
            Self::Disconnect(p) => p.body_len(v),
            Self::Auth(p) => p.body_len(v),
        }
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        let v = version;
        match self {
            Self::Connect(p) => p.write_body(buf),
            Self::ConnAck(p) => p.write_body(v, buf),
            Self::Publish(p) => p.write_body(v, buf),
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                p.write_body(v, buf)
            }
            Self::Subscribe(p) => p.write_body(v, buf),
            Self::SubAck(p) => p.write_body(v, buf),
            Self::Unsubscribe(p) => p.write_body(v, buf),
            Self::UnsubAck(p) => p.write_body(v, buf),
            Self::PingReq | Self::PingResp => {}
            Self::Disconnect(p) => p.write_body(v, buf),
            Self::Auth(p) => p.write_body(buf),
        }
    }

    /// The size of the encoded packet, computed without encoding it. Fails exactly when
    /// [`Packet::encode`] would.
    ///
    /// A CONNECT is encoded in its own [`Connect::version`] whatever `version` says.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let remaining = self.remaining_len(version)?;
        if remaining > MAX_VARIABLE_INTEGER as usize {
            return Err(EncodeError::RemainingLengthTooLarge(remaining));
        }
        Ok(1 + varint_len(remaining) + remaining)
    }

    /// Encodes the packet for a connection speaking `version` and returns its size.
    ///
    /// Nothing is written if the packet cannot be encoded: a field too long, a value the
    /// version cannot express, or too little room in `buf`. Payloads are copied once, into
    /// `buf`; see [`Publish::encode_header`] to write them without a copy.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use mqtt_codec::{Packet, ProtocolVersion};
    ///
    /// let mut buf = BytesMut::new();
    /// let n = Packet::PingReq.encode(ProtocolVersion::V5, &mut buf).unwrap();
    /// assert_eq!((n, &buf[..]), (2, &[0xC0, 0x00][..]));
    /// ```
    pub fn encode(
        &self,
        version: ProtocolVersion,
        buf: &mut impl BufMut,
    ) -> Result<usize, EncodeError> {
        self.encode_limited(version, u32::MAX, buf)
    }

    /// Like [`Packet::encode`], refusing a packet larger than `max_packet_size` (the
    /// Maximum Packet Size the peer announced).
    pub fn encode_limited(
        &self,
        version: ProtocolVersion,
        max_packet_size: u32,
        buf: &mut impl BufMut,
    ) -> Result<usize, EncodeError> {
        let remaining = self.remaining_len(version)?;
        let total = checked_total(remaining, max_packet_size, buf.remaining_mut())?;
        buf.put_u8(self.first_byte());
        put_varint(buf, remaining);
        self.write_body(version, buf);
        Ok(total)
    }
}

/// The packet's full size from its remaining length, checked against the limits.
pub(crate) fn checked_total(
    remaining: usize,
    max_packet_size: u32,
    room: usize,
) -> Result<usize, EncodeError> {
    if remaining > MAX_VARIABLE_INTEGER as usize {
        return Err(EncodeError::RemainingLengthTooLarge(remaining));
    }
    let total = 1 + varint_len(remaining) + remaining;
    if total > max_packet_size as usize {
        return Err(EncodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    if room < total {
        return Err(EncodeError::BufferTooSmall {
            needed: total,
            remaining: room,
        });
    }
    Ok(total)
}

/// The encoded size of a length-prefixed string or binary field, checked.
pub(crate) fn field_len(len: usize, field: &'static str) -> Result<usize, EncodeError> {
    if len > MAX_STRING_LEN {
        Err(EncodeError::FieldTooLong { field, len })
    } else {
        Ok(2 + len)
    }
}

/// Fails when an MQTT 3.1.1 packet would carry MQTT 5 properties.
pub(crate) fn no_properties_before_v5(
    props: &impl PropertyBlock,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if version.is_v5() || props.is_empty() {
        Ok(())
    } else {
        Err(EncodeError::NotInVersion {
            what: "properties",
            version,
        })
    }
}

/// A reason code byte, which must be one `packet` may carry.
pub(crate) fn reason_code(i: &[u8], packet: PacketType) -> PResult<'_, ReasonCode> {
    let (i, code) = byte(i)?;
    match ReasonCode::from_u8(code) {
        Some(reason) if reason.is_valid_for(packet) => Ok((i, reason)),
        _ => fail(DecodeError::InvalidReasonCode { packet, code }),
    }
}

/// Reads the tail of PUBACK-family, DISCONNECT and AUTH packets: an optional reason code
/// (absent means Success) and optional properties, then the end of the packet.
pub(crate) fn reason_and_properties<P: PropertyBlock>(
    frame: &Bytes,
    i: &[u8],
    packet: PacketType,
) -> Result<(ReasonCode, P), DecodeError> {
    if i.is_empty() {
        return Ok((ReasonCode::Success, P::default()));
    }
    let (i, code) = reason_code(i, packet)?;
    if i.is_empty() {
        return Ok((code, P::default()));
    }
    let (i, props) = P::parse(frame, i, packet)?;
    end(i)?;
    Ok((code, props))
}

/// The size of that tail, in its shortest form.
pub(crate) fn reason_and_properties_len(
    code: ReasonCode,
    props: &impl PropertyBlock,
) -> Result<usize, EncodeError> {
    if !props.is_empty() {
        Ok(1 + props.block_len()?)
    } else if code != ReasonCode::Success {
        Ok(1)
    } else {
        Ok(0)
    }
}

/// Writes that tail, in its shortest form.
pub(crate) fn write_reason_and_properties(
    code: ReasonCode,
    props: &impl PropertyBlock,
    buf: &mut impl BufMut,
) {
    if !props.is_empty() {
        buf.put_u8(code.as_u8());
        props.write_block(buf);
    } else if code != ReasonCode::Success {
        buf.put_u8(code.as_u8());
    }
}

/// Checks that a reason code can be sent in `packet`.
pub(crate) fn check_reason(code: ReasonCode, packet: PacketType) -> Result<(), EncodeError> {
    if code.is_valid_for(packet) {
        Ok(())
    } else {
        Err(EncodeError::InvalidValue(
            "reason code not valid for this packet type",
        ))
    }
}
