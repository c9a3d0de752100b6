//! A strict, zero-copy, streaming codec for MQTT 3.1, 3.1.1 and 5.0.
//!
//! - **Complete**: every packet of the three versions, AUTH included, and every MQTT 5
//!   property, each in a typed struct per packet ([`ConnectProperties`], ...).
//! - **Streaming**: [`Decoder::decode`] takes a `BytesMut` and returns `Ok(None)` until a
//!   whole packet is there. The maximum packet size is checked on the fixed header, before the
//!   body is buffered.
//! - **Zero copy**: topics, strings and payloads of a decoded packet are slices of the received
//!   bytes ([`bytes::Bytes`], [`ByteString`]). A decoded [`Publish`] holds one handle, on its
//!   frame, with its topic and payload as ranges of it.
//! - **Strict**: reserved bits, QoS 3, UTF-8 rules, wildcard placement, packet identifiers,
//!   which properties each packet may carry, CONNECT flag consistency, shared subscription
//!   syntax. Every [`DecodeError`] maps to the MQTT 5 [`ReasonCode`] a server sends for it.
//! - **Safe to encode**: [`Packet::encode`] refuses, rather than writes, what the wire format
//!   or the chosen version cannot carry, and [`Packet::encoded_len`] sizes a packet without
//!   encoding it.
//!
//! No async runtime is required; the `tokio-codec` feature adds `MqttCodec` for
//! `tokio_util::codec::Framed`.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use mqtt_codec::{Decoder, Packet, ProtocolVersion, Publish, PublishQoS, PacketId, TopicName};
//!
//! let mut publish = Publish::new(TopicName::new("home/kitchen/temp")?, Bytes::from("21.5"));
//! publish.qos = PublishQoS::AtLeastOnce(PacketId::new(1).unwrap());
//!
//! let mut wire = BytesMut::new();
//! Packet::Publish(publish.clone()).encode(ProtocolVersion::V5, &mut wire)?;
//!
//! let mut decoder = Decoder::with_version(ProtocolVersion::V5);
//! assert_eq!(decoder.decode(&mut wire)?, Some(Packet::Publish(publish)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//! - `frame`: the fixed header, read before the body arrives.
//! - `decoder`: [`Decoder`], the streaming entry point.
//! - `packet`: [`Packet`] and one module per packet type.
//! - `properties`: MQTT 5 properties, typed per packet.
//! - `topic`: [`TopicName`], [`TopicFilter`], [`ClientId`].
//! - `reason`, `error`: reason codes and the errors that map to them.
//! - `parse`: the nom parsers bodies are built from.

mod decoder;
mod error;
mod frame;
mod packet;
mod packet_id;
mod parse;
mod properties;
mod qos;
mod reason;
#[cfg(feature = "tokio-codec")]
mod tokio_codec;
mod topic;
mod version;

pub use bytestring::ByteString;
pub use decoder::{Decoder, MAX_PACKET_SIZE};
pub use error::{DecodeError, EncodeError};
pub use frame::{FixedHeader, PacketType};
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, Publish, PublishQoS, SubAck,
    Subscribe, Subscription, UnsubAck, Unsubscribe,
};
pub use packet_id::PacketId;
pub use parse::MAX_VARIABLE_INTEGER;
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PayloadFormat, PropertyId, PublishProperties, SubscribeProperties, SubscriptionId,
    UnsubscribeProperties, UserProperty, WillProperties,
};
pub use qos::{QoS, RetainHandling, SubscriptionOptions};
pub use reason::ReasonCode;
#[cfg(feature = "tokio-codec")]
pub use tokio_codec::{CodecError, MqttCodec};
pub use topic::{
    ClientId, InvalidTopic, MAX_STRING_LEN, SHARED_PREFIX, SharedFilter, TopicFilter, TopicName,
};
pub use version::ProtocolVersion;

/// The README's examples, run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
