//! AUTH: the MQTT 5 extended authentication exchange.

use bytes::{BufMut, Bytes};

use super::{
    check_reason, reason_and_properties, reason_and_properties_len, write_reason_and_properties,
};
use crate::{AuthProperties, DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// AUTH (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// The method and its data.
    pub properties: AuthProperties,
}

impl Auth {
    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        // The fixed header check refuses packet type 15 before MQTT 5; this is the backstop
        // for callers that decode frames themselves.
        if !version.is_v5() {
            return Err(DecodeError::ReservedPacketType(PacketType::Auth as u8));
        }
        let (reason_code, properties) = reason_and_properties(frame, i, PacketType::Auth)?;
        Ok(Self {
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if !version.is_v5() {
            return Err(EncodeError::NotInVersion {
                what: "AUTH",
                version,
            });
        }
        check_reason(self.reason_code, PacketType::Auth)?;
        reason_and_properties_len(self.reason_code, &self.properties)
    }

    pub(crate) fn write_body(&self, buf: &mut impl BufMut) {
        write_reason_and_properties(self.reason_code, &self.properties, buf);
    }
}
