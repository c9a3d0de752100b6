//! CONNECT: the first packet of every connection, which also names the protocol version.

use bytes::{BufMut, Bytes};
use bytestring::ByteString;

use super::{field_len, no_properties_before_v5};
use crate::parse::{binary, end, fail, string, u8 as byte, u16};
use crate::properties::{PropertyBlock, put_bytes};
use crate::{
    ClientId, ConnectProperties, DecodeError, EncodeError, PacketType, ProtocolVersion, QoS,
    TopicName, WillProperties,
};

/// A will message: published by the server when the connection ends without a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// The topic to publish to.
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS to publish with.
    pub qos: QoS,
    /// Whether to publish it retained.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: WillProperties,
}

/// CONNECT.
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{ClientId, Connect, Decoder, Packet, ProtocolVersion};
///
/// let connect = Connect::new(ProtocolVersion::V5, ClientId::new("sensor-1").unwrap());
/// let mut buf = BytesMut::new();
/// Packet::Connect(Box::new(connect.clone())).encode(ProtocolVersion::V5, &mut buf).unwrap();
///
/// // A server's decoder learns the version from CONNECT.
/// let mut decoder = Decoder::new();
/// let packet = decoder.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(packet, Packet::Connect(Box::new(connect)));
/// assert_eq!(decoder.version(), Some(ProtocolVersion::V5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks.
    pub version: ProtocolVersion,
    /// Clean Start (MQTT 5) or Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The client identifier; empty asks the server to assign one.
    pub client_id: ClientId,
    /// The will message.
    pub will: Option<LastWill>,
    /// The user name.
    pub username: Option<ByteString>,
    /// The password (binary data).
    pub password: Option<Bytes>,
    /// MQTT 5 properties.
    pub properties: ConnectProperties,
    /// MQTT 3.1/3.1.1 only: the client is a bridge and set bit 0x80 of the protocol level
    /// (0x83, 0x84), as Mosquitto's and NanoMQ's bridges do with `try_private`: it asks the
    /// server not to send back the messages it publishes (no local) and to keep their retain
    /// flag (retain as published), which 3.1.1 subscriptions cannot say themselves.
    pub bridge: bool,
}

/// The bit of the protocol level a 3.1/3.1.1 bridge sets.
const BRIDGE_LEVEL_BIT: u8 = 0x80;

const RESERVED: u8 = 0b0000_0001;
const CLEAN_START: u8 = 0b0000_0010;
const WILL: u8 = 0b0000_0100;
const WILL_RETAIN: u8 = 0b0010_0000;
const PASSWORD: u8 = 0b0100_0000;
const USERNAME: u8 = 0b1000_0000;

impl Connect {
    /// A CONNECT with clean start, a 60-second keep alive and nothing else.
    pub fn new(version: ProtocolVersion, client_id: ClientId) -> Self {
        Self {
            version,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
            bridge: false,
        }
    }

    pub(crate) fn decode(frame: &Bytes, i: &[u8]) -> Result<Self, DecodeError> {
        let (i, name) = binary(frame, i)?;
        let (i, level) = byte(i)?;
        let unsupported = DecodeError::UnsupportedProtocol {
            level,
            known_name: matches!(&name[..], b"MQTT" | b"MQIsdp"),
        };
        let bridge = level & BRIDGE_LEVEL_BIT != 0;
        let version = ProtocolVersion::from_name_and_level(&name, level & !BRIDGE_LEVEL_BIT)
            .filter(|v| !(bridge && v.is_v5()))
            .ok_or(unsupported)?;
        let (i, flags) = byte(i)?;
        if flags & RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let will_qos = QoS::from_u8((flags >> 3) & 0b11).ok_or(DecodeError::InvalidWillFlags)?;
        let will_retain = flags & WILL_RETAIN != 0;
        if flags & WILL == 0 && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(DecodeError::InvalidWillFlags);
        }
        if !version.is_v5() && flags & PASSWORD != 0 && flags & USERNAME == 0 {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let (i, keep_alive) = u16(i)?;
        let (i, properties) = if version.is_v5() {
            ConnectProperties::parse(frame, i, PacketType::Connect)?
        } else {
            (i, ConnectProperties::default())
        };
        let (i, client_id) = string(frame, i)?;
        let (i, will) = if flags & WILL != 0 {
            let (i, properties) = if version.is_v5() {
                WillProperties::parse(frame, i, PacketType::Connect)?
            } else {
                (i, WillProperties::default())
            };
            let (i, topic) = string(frame, i)?;
            let topic =
                TopicName::new(topic).or_else(|e| fail(DecodeError::InvalidTopicName(e)))?;
            let (i, payload) = binary(frame, i)?;
            let will = LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            };
            (i, Some(will))
        } else {
            (i, None)
        };
        let (i, username) = if flags & USERNAME != 0 {
            let (i, name) = string(frame, i)?;
            (i, Some(name))
        } else {
            (i, None)
        };
        let (i, password) = if flags & PASSWORD != 0 {
            let (i, password) = binary(frame, i)?;
            (i, Some(password))
        } else {
            (i, None)
        };
        end(i)?;
        Ok(Self {
            version,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id: ClientId::new(client_id).map_err(DecodeError::InvalidString)?,
            will,
            username,
            password,
            properties,
            bridge,
        })
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL | will.qos.as_u8() << 3;
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        flags
    }

    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        let v = self.version;
        no_properties_before_v5(&self.properties, v)?;
        if !v.is_v5() && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::NotInVersion {
                what: "a password without a user name",
                version: v,
            });
        }
        if v.is_v5() && self.bridge {
            return Err(EncodeError::NotInVersion {
                what: "the bridge bit of the protocol level",
                version: v,
            });
        }
        let mut len = 2 + v.protocol_name().len() + 1 + 1 + 2;
        if v.is_v5() {
            len += self.properties.block_len()?;
        }
        len += field_len(self.client_id.len(), "client identifier")?;
        if let Some(will) = &self.will {
            no_properties_before_v5(&will.properties, v)?;
            if v.is_v5() {
                len += will.properties.block_len()?;
            }
            if will.topic.is_empty() {
                return Err(EncodeError::InvalidValue("empty will topic"));
            }
            len += field_len(will.topic.len(), "will topic")?;
            len += field_len(will.payload.len(), "will payload")?;
        }
        if let Some(username) = &self.username {
            len += field_len(username.len(), "user name")?;
        }
        if let Some(password) = &self.password {
            len += field_len(password.len(), "password")?;
        }
        Ok(len)
    }

    pub(crate) fn write_body(&self, buf: &mut impl BufMut) {
        let v = self.version;
        put_bytes(buf, v.protocol_name().as_bytes());
        let bridge = if self.bridge { BRIDGE_LEVEL_BIT } else { 0 };
        buf.put_u8(v.level() | bridge);
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        if v.is_v5() {
            self.properties.write_block(buf);
        }
        put_bytes(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if v.is_v5() {
                will.properties.write_block(buf);
            }
            put_bytes(buf, will.topic.as_bytes());
            put_bytes(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_bytes(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_bytes(buf, password);
        }
    }
}
