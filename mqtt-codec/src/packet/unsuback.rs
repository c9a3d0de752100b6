//! UNSUBACK: in MQTT 5, one reason code per filter of the UNSUBSCRIBE; in 3.1.1, none.

use bytes::{BufMut, Bytes};

use super::{check_reason, no_properties_before_v5, reason_code};
use crate::parse::{end, packet_id};
use crate::properties::PropertyBlock;
use crate::{
    AckProperties, DecodeError, EncodeError, PacketId, PacketType, ProtocolVersion, ReasonCode,
};

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5: one code per filter, in the UNSUBSCRIBE's order. Empty in 3.1.1.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl UnsubAck {
    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (i, packet_id) = packet_id(i)?;
        if !version.is_v5() {
            end(i)?;
            return Ok(Self {
                packet_id,
                reason_codes: Vec::new(),
                properties: AckProperties::default(),
            });
        }
        let (mut i, properties) = AckProperties::parse(frame, i, PacketType::UnsubAck)?;
        let mut reason_codes = Vec::with_capacity(i.len());
        while !i.is_empty() {
            let (rest, code) = reason_code(i, PacketType::UnsubAck)?;
            reason_codes.push(code);
            i = rest;
        }
        if reason_codes.is_empty() {
            return Err(DecodeError::EmptyPayload(PacketType::UnsubAck));
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        no_properties_before_v5(&self.properties, version)?;
        if !version.is_v5() {
            if !self.reason_codes.is_empty() {
                return Err(EncodeError::NotInVersion {
                    what: "UNSUBACK reason codes",
                    version,
                });
            }
            return Ok(2);
        }
        if self.reason_codes.is_empty() {
            return Err(EncodeError::InvalidValue("UNSUBACK without a reason code"));
        }
        for &code in &self.reason_codes {
            check_reason(code, PacketType::UnsubAck)?;
        }
        Ok(2 + self.properties.block_len()? + self.reason_codes.len())
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write_block(buf);
            for code in &self.reason_codes {
                buf.put_u8(code.as_u8());
            }
        }
    }
}
