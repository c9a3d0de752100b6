//! UNSUBSCRIBE: the topic filters to remove.

use bytes::{BufMut, Bytes};

use super::{field_len, no_properties_before_v5};
use crate::parse::{end, fail, packet_id, string};
use crate::properties::{PropertyBlock, put_bytes};
use crate::{
    DecodeError, EncodeError, PacketId, PacketType, ProtocolVersion, TopicFilter,
    UnsubscribeProperties,
};

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The packet identifier UNSUBACK answers with.
    pub packet_id: PacketId,
    /// The filters to remove, at least one.
    pub filters: Vec<TopicFilter>,
    /// MQTT 5 properties.
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (mut i, packet_id) = packet_id(i)?;
        let properties = if version.is_v5() {
            let (rest, props) = UnsubscribeProperties::parse(frame, i, PacketType::Unsubscribe)?;
            i = rest;
            props
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !i.is_empty() {
            let (rest, filter) = string(frame, i)?;
            filters.push(
                TopicFilter::from_mqtt_string(filter)
                    .or_else(|e| fail(DecodeError::InvalidTopicFilter(e)))?,
            );
            i = rest;
        }
        end(i)?;
        if filters.is_empty() {
            return Err(DecodeError::EmptyPayload(PacketType::Unsubscribe));
        }
        Ok(Self {
            packet_id,
            filters,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        no_properties_before_v5(&self.properties, version)?;
        if self.filters.is_empty() {
            return Err(EncodeError::InvalidValue(
                "UNSUBSCRIBE without a topic filter",
            ));
        }
        let mut len = 2;
        if version.is_v5() {
            len += self.properties.block_len()?;
        }
        for filter in &self.filters {
            len += field_len(filter.len(), "topic filter")?;
        }
        Ok(len)
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write_block(buf);
        }
        for filter in &self.filters {
            put_bytes(buf, filter.as_bytes());
        }
    }
}
