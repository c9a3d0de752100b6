//! CONNACK: the server's answer to CONNECT.

use bytes::{BufMut, Bytes};

use super::{check_reason, no_properties_before_v5, reason_code};
use crate::parse::{end, u8 as byte};
use crate::properties::PropertyBlock;
use crate::{ConnAckProperties, DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// CONNACK.
///
/// MQTT 3.1.1 return codes are carried as the [`ReasonCode`] of the same meaning
/// (see [`ReasonCode::from_v3_connack`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Whether the server resumed a session for this client.
    pub session_present: bool,
    /// The outcome; anything but Success refuses the connection.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (i, flags) = byte(i)?;
        if flags & !1 != 0 {
            return Err(DecodeError::InvalidConnackFlags);
        }
        // 3.1 has no session present flag: the byte is reserved (some servers set the bit
        // anyway, as if they spoke 3.1.1; it means nothing).
        let session_present = flags == 1 && version != ProtocolVersion::V3_1;
        let (i, reason_code, properties) = if version.is_v5() {
            let (i, code) = reason_code(i, PacketType::ConnAck)?;
            let (i, props) = ConnAckProperties::parse(frame, i, PacketType::ConnAck)?;
            (i, code, props)
        } else {
            let (i, code) = byte(i)?;
            let reason =
                ReasonCode::from_v3_connack(code).ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::ConnAck,
                    code,
                })?;
            (i, reason, ConnAckProperties::default())
        };
        end(i)?;
        if session_present && reason_code != ReasonCode::Success {
            return Err(DecodeError::InvalidConnackFlags);
        }
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        no_properties_before_v5(&self.properties, version)?;
        if self.session_present && self.reason_code != ReasonCode::Success {
            return Err(EncodeError::InvalidValue(
                "session present with a refusing reason code",
            ));
        }
        if self.session_present && version == ProtocolVersion::V3_1 {
            // MQTT 3.1's CONNACK has no flags: its first byte is reserved.
            return Err(EncodeError::NotInVersion {
                what: "session present",
                version,
            });
        }
        if version.is_v5() {
            check_reason(self.reason_code, PacketType::ConnAck)?;
            Ok(2 + self.properties.block_len()?)
        } else if self.reason_code.to_v3_connack().is_some() {
            Ok(2)
        } else {
            Err(EncodeError::NotInVersion {
                what: "this CONNACK reason code",
                version,
            })
        }
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        buf.put_u8(u8::from(self.session_present));
        if version.is_v5() {
            buf.put_u8(self.reason_code.as_u8());
            self.properties.write_block(buf);
        } else {
            buf.put_u8(self.reason_code.to_v3_connack().unwrap_or(0x03));
        }
    }
}
