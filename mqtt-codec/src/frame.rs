//! The fixed header: packet type, flags and remaining length, read from a stream before the
//! body is buffered, so that an oversize or nonsensical packet is refused on its first bytes.

use core::fmt;

use nom::number::streaming::be_u8;

use crate::parse::{VarInt, decode_varint};
use crate::{DecodeError, ProtocolVersion};

/// The DUP bit of the fixed header's flags.
const DUP_FLAG: u8 = 0b1000;

/// The type of an MQTT control packet (the high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketType {
    /// CONNECT (1).
    Connect = 1,
    /// CONNACK (2).
    ConnAck = 2,
    /// PUBLISH (3).
    Publish = 3,
    /// PUBACK (4).
    PubAck = 4,
    /// PUBREC (5).
    PubRec = 5,
    /// PUBREL (6).
    PubRel = 6,
    /// PUBCOMP (7).
    PubComp = 7,
    /// SUBSCRIBE (8).
    Subscribe = 8,
    /// SUBACK (9).
    SubAck = 9,
    /// UNSUBSCRIBE (10).
    Unsubscribe = 10,
    /// UNSUBACK (11).
    UnsubAck = 11,
    /// PINGREQ (12).
    PingReq = 12,
    /// PINGRESP (13).
    PingResp = 13,
    /// DISCONNECT (14).
    Disconnect = 14,
    /// AUTH (15, MQTT 5 only).
    Auth = 15,
}

impl PacketType {
    /// The packet type with this number, in the given version (AUTH exists only in MQTT 5).
    pub const fn from_u8(value: u8, version: Option<ProtocolVersion>) -> Option<Self> {
        Some(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 if !matches!(
                version,
                Some(ProtocolVersion::V3_1 | ProtocolVersion::V3_1_1)
            ) =>
            {
                Self::Auth
            }
            _ => return None,
        })
    }

    /// The flags every packet of this type carries, or `None` for PUBLISH, whose flags vary.
    pub const fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// The specification's name for the type, in capitals.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low nibble of the first byte.
    pub flags: u8,
    /// The number of bytes after the fixed header.
    pub remaining_length: u32,
    /// The fixed header's own size: 2 to 5 bytes.
    pub header_len: usize,
}

impl FixedHeader {
    /// The size of the whole packet.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_length as usize
    }

    /// Reads the fixed header at the front of `buf` as far as the bytes allow.
    ///
    /// Returns `Ok(None)` when `buf` ends inside the fixed header. The packet type and flags
    /// are checked on the first byte, and `max_packet_size` as soon as the remaining length is
    /// known: a peer cannot make us buffer a packet we would refuse.
    ///
    /// `version` is the connection's protocol version, or `None` before CONNECT, when only a
    /// CONNECT is acceptable.
    pub fn parse(
        buf: &[u8],
        version: Option<ProtocolVersion>,
        max_packet_size: u32,
    ) -> Result<Option<Self>, DecodeError> {
        let (rest, first) = match be_u8::<_, DecodeError>(buf) {
            Ok(ok) => ok,
            Err(nom::Err::Incomplete(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let type_bits = first >> 4;
        let flags = first & 0x0F;
        let packet_type = PacketType::from_u8(type_bits, version)
            .ok_or(DecodeError::ReservedPacketType(type_bits))?;
        if version.is_none() && packet_type != PacketType::Connect {
            return Err(DecodeError::ProtocolVersionUnknown(packet_type));
        }
        match packet_type.required_flags() {
            // MQTT 3.1 gives PUBREL, SUBSCRIBE and UNSUBSCRIBE a DUP flag, set on a resend.
            Some(required)
                if version == Some(ProtocolVersion::V3_1) && flags == required | DUP_FLAG => {}
            Some(required) if required != flags => {
                return Err(DecodeError::InvalidFixedHeaderFlags {
                    packet: packet_type,
                    flags,
                });
            }
            Some(_) => {}
            None => {
                if (flags >> 1) & 0b11 == 3 {
                    return Err(DecodeError::InvalidQoS);
                }
            }
        }
        let (remaining_length, len_bytes) = match decode_varint(rest) {
            VarInt::Value(value, len) => (value, len),
            VarInt::Incomplete => return Ok(None),
            VarInt::Malformed => return Err(DecodeError::MalformedVariableInteger),
        };
        let header = Self {
            packet_type,
            flags,
            remaining_length,
            header_len: 1 + len_bytes,
        };
        if header.frame_len() > max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size: header.frame_len(),
                max: max_packet_size,
            });
        }
        Ok(Some(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);

    #[test]
    fn header_is_incomplete_until_the_length_ends() {
        assert_eq!(FixedHeader::parse(&[], V5, u32::MAX), Ok(None));
        assert_eq!(FixedHeader::parse(&[0x30], V5, u32::MAX), Ok(None));
        assert_eq!(FixedHeader::parse(&[0x30, 0x80], V5, u32::MAX), Ok(None));
        let header = FixedHeader::parse(&[0x30, 0x80, 0x01], V5, u32::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(header.remaining_length, 128);
        assert_eq!(header.frame_len(), 131);
    }

    #[test]
    fn size_is_checked_before_the_body_arrives() {
        assert_eq!(
            FixedHeader::parse(&[0x30, 0xFF, 0x7F], V5, 1024),
            Err(DecodeError::PacketTooLarge {
                size: 16_386,
                max: 1024
            })
        );
    }

    #[test]
    fn first_byte_is_checked_at_once() {
        assert_eq!(
            FixedHeader::parse(&[0x00], V5, u32::MAX),
            Err(DecodeError::ReservedPacketType(0))
        );
        assert_eq!(
            FixedHeader::parse(&[0xF0], Some(ProtocolVersion::V3_1_1), u32::MAX),
            Err(DecodeError::ReservedPacketType(15))
        );
        assert_eq!(
            FixedHeader::parse(&[0x36], V5, u32::MAX),
            Err(DecodeError::InvalidQoS)
        );
        assert_eq!(
            FixedHeader::parse(&[0x80], V5, u32::MAX),
            Err(DecodeError::InvalidFixedHeaderFlags {
                packet: PacketType::Subscribe,
                flags: 0
            })
        );
        assert_eq!(
            FixedHeader::parse(&[0x30], None, u32::MAX),
            Err(DecodeError::ProtocolVersionUnknown(PacketType::Publish))
        );
    }
}
