//! SUBSCRIBE: topic filters with their subscription options.

use bytes::{BufMut, Bytes};

use super::{field_len, no_properties_before_v5};
use crate::parse::{end, fail, packet_id, string, u8 as byte};
use crate::properties::{PropertyBlock, put_bytes};
use crate::{
    DecodeError, EncodeError, PacketId, PacketType, ProtocolVersion, QoS, RetainHandling,
    SubscribeProperties, SubscriptionOptions, TopicFilter,
};

/// One topic filter of a SUBSCRIBE and what the subscriber asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The topic filter.
    pub filter: TopicFilter,
    /// The options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The packet identifier SUBACK answers with.
    pub packet_id: PacketId,
    /// The filters, at least one.
    pub subscriptions: Vec<Subscription>,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
}

const V3_RESERVED: u8 = 0b1111_1100;
const V5_RESERVED: u8 = 0b1100_0000;

fn options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if version.is_v5() {
        V5_RESERVED
    } else {
        V3_RESERVED
    };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions(byte));
    }
    Ok(SubscriptionOptions {
        qos: QoS::from_u8(byte & 0b11).ok_or(DecodeError::InvalidQoS)?,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling: RetainHandling::from_u8((byte >> 4) & 0b11)
            .ok_or(DecodeError::InvalidRetainHandling)?,
    })
}

impl Subscribe {
    pub(crate) fn decode(
        frame: &Bytes,
        i: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (mut i, packet_id) = packet_id(i)?;
        let properties = if version.is_v5() {
            let (rest, props) = SubscribeProperties::parse(frame, i, PacketType::Subscribe)?;
            i = rest;
            props
        } else {
            SubscribeProperties::default()
        };
        let mut subscriptions = Vec::new();
        while !i.is_empty() {
            let (rest, filter) = string(frame, i)?;
            let filter = TopicFilter::from_mqtt_string(filter)
                .or_else(|e| fail(DecodeError::InvalidTopicFilter(e)))?;
            let (rest, options_byte) = byte(rest)?;
            let options = options(options_byte, version)?;
            if options.no_local && filter.starts_with(crate::SHARED_PREFIX) {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            subscriptions.push(Subscription { filter, options });
            i = rest;
        }
        end(i)?;
        if subscriptions.is_empty() {
            return Err(DecodeError::EmptyPayload(PacketType::Subscribe));
        }
        Ok(Self {
            packet_id,
            subscriptions,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        no_properties_before_v5(&self.properties, version)?;
        if self.subscriptions.is_empty() {
            return Err(EncodeError::InvalidValue(
                "SUBSCRIBE without a topic filter",
            ));
        }
        let mut len = 2;
        if version.is_v5() {
            len += self.properties.block_len()?;
        }
        for sub in &self.subscriptions {
            if !version.is_v5() && !sub.options.is_v3_compatible() {
                return Err(EncodeError::NotInVersion {
                    what: "subscription options other than QoS",
                    version,
                });
            }
            if sub.options.no_local && sub.filter.shared().is_some() {
                return Err(EncodeError::InvalidValue(
                    "no-local on a shared subscription",
                ));
            }
            len += field_len(sub.filter.len(), "topic filter")? + 1;
        }
        Ok(len)
    }

    pub(crate) fn write_body(&self, version: ProtocolVersion, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write_block(buf);
        }
        for sub in &self.subscriptions {
            put_bytes(buf, sub.filter.as_bytes());
            buf.put_u8(sub.options.to_byte());
        }
    }
}
