//! PUBACK, PUBREC, PUBREL and PUBCOMP: the QoS 1 and QoS 2 acknowledgements, which share a
//! layout (packet identifier, then in MQTT 5 an optional reason code and properties).

use bytes::{BufMut, Bytes};

use super::{
    check_reason, reason_and_properties, reason_and_properties_len, write_reason_and_properties,
};
use crate::parse::{end, packet_id};
use crate::{
    AckProperties, DecodeError, EncodeError, PacketId, PacketType, ProtocolVersion, ReasonCode,
};

/// The body of PUBACK, PUBREC, PUBREL and PUBCOMP; [`crate::Packet`] says which it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The identifier of the PUBLISH (or PUBREC, PUBREL) being answered.
    pub packet_id: PacketId,
    /// The outcome (MQTT 5; always Success in 3.1.1).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgement of `packet_id`.
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        packet: PacketType,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (i, packet_id) = packet_id(i)?;
        let (reason_code, properties) = if version.is_v5() {
            reason_and_properties(frame, i, packet)?
        } else {
            end(i)?;
            (ReasonCode::Success, AckProperties::default())
        };
        Ok(Self {
            packet_id,
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
    ) -> Result<usize, EncodeError> {
        if version.is_v5() {
            check_reason(self.reason_code, packet)?;
            Ok(2 + reason_and_properties_len(self.reason_code, &self.properties)?)
        } else if self.reason_code == ReasonCode::Success && self.properties.is_empty() {
            Ok(2)
        } else {
            Err(EncodeError::NotInVersion {
                what: "reason codes and properties in acknowledgements",
                version,
            })
        }
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            write_reason_and_properties(self.reason_code, &self.properties, buf);
        }
    }
}
