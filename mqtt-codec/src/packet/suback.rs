//! SUBACK: one reason code (granted QoS or failure) per filter of the SUBSCRIBE.

use bytes::{BufMut, Bytes};

use super::{check_reason, no_properties_before_v5, reason_code};
use crate::parse::{end, u8 as byte};
use crate::properties::PropertyBlock;
use crate::{
    AckProperties, DecodeError, EncodeError, PacketId, PacketType, ProtocolVersion, ReasonCode,
};

/// SUBACK.
///
/// In MQTT 3.1.1 the return codes 0, 1, 2 and 0x80 are the reason codes of the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// One code per filter, in the SUBSCRIBE's order.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl SubAck {
    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (mut i, packet_id) = crate::parse::packet_id(i)?;
        let properties = if version.is_v5() {
            let (rest, props) = AckProperties::parse(frame, i, PacketType::SubAck)?;
            i = rest;
            props
        } else {
            AckProperties::default()
        };
        let mut reason_codes = Vec::with_capacity(i.len());
        while !i.is_empty() {
            let (rest, code) = if version.is_v5() {
                reason_code(i, PacketType::SubAck)?
            } else {
                let (rest, code) = byte(i)?;
                match ReasonCode::from_u8(code).filter(|c| c.is_v3_suback()) {
                    Some(reason) => (rest, reason),
                    None => {
                        return Err(DecodeError::InvalidReasonCode {
                            packet: PacketType::SubAck,
                            code,
                        });
                    }
                }
            };
            reason_codes.push(code);
            i = rest;
        }
        end(i)?;
        if reason_codes.is_empty() {
            return Err(DecodeError::EmptyPayload(PacketType::SubAck));
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        no_properties_before_v5(&self.properties, version)?;
        if self.reason_codes.is_empty() {
            return Err(EncodeError::InvalidValue("SUBACK without a reason code"));
        }
        for &code in &self.reason_codes {
            if version.is_v5() {
                check_reason(code, PacketType::SubAck)?;
            } else if !code.is_v3_suback() {
                return Err(EncodeError::NotInVersion {
                    what: "this SUBACK reason code",
                    version,
                });
            }
        }
        let props = if version.is_v5() {
            self.properties.block_len()?
        } else {
            0
        };
        Ok(2 + props + self.reason_codes.len())
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write_block(buf);
        }
        for code in &self.reason_codes {
            buf.put_u8(code.as_u8());
        }
    }
}
