//! DISCONNECT: the last packet of a connection, from either side in MQTT 5.

use bytes::{BufMut, Bytes};

use super::{
    check_reason, reason_and_properties, reason_and_properties_len, write_reason_and_properties,
};
use crate::parse::end;
use crate::{
    DecodeError, DisconnectProperties, EncodeError, PacketType, ProtocolVersion, ReasonCode,
};

/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Why the connection ends (MQTT 5; Success is a normal disconnection).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with this reason code and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        if !version.is_v5() {
            end(i)?;
            return Ok(Self::default());
        }
        let (reason_code, properties) = reason_and_properties(frame, i, PacketType::Disconnect)?;
        Ok(Self {
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if version.is_v5() {
            check_reason(self.reason_code, PacketType::Disconnect)?;
            reason_and_properties_len(self.reason_code, &self.properties)
        } else if *self == Self::default() {
            Ok(0)
        } else {
            Err(EncodeError::NotInVersion {
                what: "DISCONNECT reason codes and properties",
                version,
            })
        }
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        if version.is_v5() {
            write_reason_and_properties(self.reason_code, &self.properties, buf);
        }
    }
}
