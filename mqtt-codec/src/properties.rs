//! MQTT 5 properties: one typed struct per packet, holding exactly the properties the
//! specification allows in that packet.
//!
//! A property that is not allowed, unknown, repeated where it may not be, or out of its range
//! is a decode error; a struct can only hold what its packet may carry, so encoding cannot
//! write a forbidden property. Values keep their ranges in their types (`NonZeroU16` for the
//! receive maximum, [`SubscriptionId`] for subscription identifiers, ...).

use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes};
use bytestring::ByteString;
use nom::bytes::complete::take;

use crate::parse::{
    MAX_VARIABLE_INTEGER, PResult, binary, fail, put_varint, string, u8 as byte, u16, u32, varint,
    varint_len,
};
use crate::topic::MAX_STRING_LEN;
use crate::{DecodeError, EncodeError, PacketType, QoS, TopicName};

macro_rules! property_ids {
    ($( $(#[$meta:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        /// A property identifier.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum PropertyId {
            $( $(#[$meta])* $name = $value, )*
        }

        impl PropertyId {
            /// The property with this identifier, if the specification defines one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }

            /// The specification's name for the property.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$name => $text, )*
                }
            }
        }
    };
}

property_ids! {
    /// 0x01 Payload Format Indicator.
    PayloadFormatIndicator = 0x01, "Payload Format Indicator";
    /// 0x02 Message Expiry Interval.
    MessageExpiryInterval = 0x02, "Message Expiry Interval";
    /// 0x03 Content Type.
    ContentType = 0x03, "Content Type";
    /// 0x08 Response Topic.
    ResponseTopic = 0x08, "Response Topic";
    /// 0x09 Correlation Data.
    CorrelationData = 0x09, "Correlation Data";
    /// 0x0B Subscription Identifier.
    SubscriptionIdentifier = 0x0B, "Subscription Identifier";
    /// 0x11 Session Expiry Interval.
    SessionExpiryInterval = 0x11, "Session Expiry Interval";
    /// 0x12 Assigned Client Identifier.
    AssignedClientIdentifier = 0x12, "Assigned Client Identifier";
    /// 0x13 Server Keep Alive.
    ServerKeepAlive = 0x13, "Server Keep Alive";
    /// 0x15 Authentication Method.
    AuthenticationMethod = 0x15, "Authentication Method";
    /// 0x16 Authentication Data.
    AuthenticationData = 0x16, "Authentication Data";
    /// 0x17 Request Problem Information.
    RequestProblemInformation = 0x17, "Request Problem Information";
    /// 0x18 Will Delay Interval.
    WillDelayInterval = 0x18, "Will Delay Interval";
    /// 0x19 Request Response Information.
    RequestResponseInformation = 0x19, "Request Response Information";
    /// 0x1A Response Information.
    ResponseInformation = 0x1A, "Response Information";
    /// 0x1C Server Reference.
    ServerReference = 0x1C, "Server Reference";
    /// 0x1F Reason String.
    ReasonString = 0x1F, "Reason String";
    /// 0x21 Receive Maximum.
    ReceiveMaximum = 0x21, "Receive Maximum";
    /// 0x22 Topic Alias Maximum.
    TopicAliasMaximum = 0x22, "Topic Alias Maximum";
    /// 0x23 Topic Alias.
    TopicAlias = 0x23, "Topic Alias";
    /// 0x24 Maximum QoS.
    MaximumQoS = 0x24, "Maximum QoS";
    /// 0x25 Retain Available.
    RetainAvailable = 0x25, "Retain Available";
    /// 0x26 User Property.
    UserProperty = 0x26, "User Property";
    /// 0x27 Maximum Packet Size.
    MaximumPacketSize = 0x27, "Maximum Packet Size";
    /// 0x28 Wildcard Subscription Available.
    WildcardSubscriptionAvailable = 0x28, "Wildcard Subscription Available";
    /// 0x29 Subscription Identifier Available.
    SubscriptionIdentifierAvailable = 0x29, "Subscription Identifier Available";
    /// 0x2A Shared Subscription Available.
    SharedSubscriptionAvailable = 0x2A, "Shared Subscription Available";
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), *self as u8)
    }
}

/// A user property: a name and a value, both UTF-8 strings. Order and repeats are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: ByteString,
    /// The value.
    pub value: ByteString,
}

impl UserProperty {
    /// A user property from a name and a value.
    pub fn new(name: impl Into<ByteString>, value: impl Into<ByteString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What the payload of a PUBLISH or will is declared to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified = 0,
    /// 1: UTF-8 encoded character data.
    Utf8 = 1,
}

/// A subscription identifier: 1 to 268,435,455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest subscription identifier.
    pub const MAX: u32 = MAX_VARIABLE_INTEGER;

    /// The identifier `value`, or `None` if it is 0 or above [`SubscriptionId::MAX`].
    pub const fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        match NonZeroU32::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The identifier's value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// A value a property can hold: how it is read, measured and written.
pub(crate) trait PropertyValue: Sized {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self>;
    /// The encoded size of the value alone (without the identifier).
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError>;
    fn write(&self, buf: &mut impl BufMut);
}

fn invalid<T>(id: PropertyId) -> Result<T, nom::Err<DecodeError>> {
    fail(DecodeError::InvalidPropertyValue(id))
}

fn check_field_len(len: usize, id: PropertyId) -> Result<usize, EncodeError> {
    if len > MAX_STRING_LEN {
        Err(EncodeError::FieldTooLong {
            field: id.name(),
            len,
        })
    } else {
        Ok(2 + len)
    }
}

impl PropertyValue for u16 {
    fn parse<'a>(_: &Bytes, i: &'a [u8], _: PropertyId) -> PResult<'a, Self> {
        u16(i)
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u16(*self);
    }
}

impl PropertyValue for u32 {
    fn parse<'a>(_: &Bytes, i: &'a [u8], _: PropertyId) -> PResult<'a, Self> {
        u32(i)
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u32(*self);
    }
}

impl PropertyValue for NonZeroU16 {
    fn parse<'a>(_: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        let (i, v) = u16(i)?;
        match NonZeroU16::new(v) {
            Some(v) => Ok((i, v)),
            None => invalid(id),
        }
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.get());
    }
}

impl PropertyValue for NonZeroU32 {
    fn parse<'a>(_: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        let (i, v) = u32(i)?;
        match NonZeroU32::new(v) {
            Some(v) => Ok((i, v)),
            None => invalid(id),
        }
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.get());
    }
}

/// Boolean properties are a byte that must be 0 or 1.
impl PropertyValue for bool {
    fn parse<'a>(_: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        match byte(i)? {
            (i, 0) => Ok((i, false)),
            (i, 1) => Ok((i, true)),
            _ => invalid(id),
        }
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u8(u8::from(*self));
    }
}

impl PropertyValue for PayloadFormat {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        let (i, utf8) = bool::parse(frame, i, id)?;
        Ok((i, if utf8 { Self::Utf8 } else { Self::Unspecified }))
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u8(*self as u8);
    }
}

/// Only the Maximum QoS property holds a QoS, and it may only be 0 or 1.
impl PropertyValue for QoS {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        let (i, one) = bool::parse(frame, i, id)?;
        Ok((
            i,
            if one {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
        ))
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        match self {
            QoS::ExactlyOnce => Err(EncodeError::InvalidValue(
                "Maximum QoS is 0 or 1; a server supporting QoS 2 omits it",
            )),
            _ => Ok(1),
        }
    }
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.as_u8());
    }
}

impl PropertyValue for SubscriptionId {
    fn parse<'a>(_: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        let (i, v) = varint(i)?;
        match SubscriptionId::new(v) {
            Some(v) => Ok((i, v)),
            None => invalid(id),
        }
    }
    fn encoded_len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(varint_len(self.get() as usize))
    }
    fn write(&self, buf: &mut impl BufMut) {
        put_varint(buf, self.get() as usize);
    }
}

impl PropertyValue for ByteString {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], _: PropertyId) -> PResult<'a, Self> {
        string(frame, i)
    }
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        check_field_len(self.len(), id)
    }
    fn write(&self, buf: &mut impl BufMut) {
        put_bytes(buf, self.as_bytes());
    }
}

impl PropertyValue for Bytes {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], _: PropertyId) -> PResult<'a, Self> {
        binary(frame, i)
    }
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        check_field_len(self.len(), id)
    }
    fn write(&self, buf: &mut impl BufMut) {
        put_bytes(buf, self);
    }
}

/// The Response Topic is a topic name: no wildcards, not empty.
impl PropertyValue for TopicName {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, Self> {
        let (i, s) = string(frame, i)?;
        match TopicName::new(s) {
            Ok(topic) => Ok((i, topic)),
            Err(_) => invalid(id),
        }
    }
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        if self.is_empty() {
            return Err(EncodeError::InvalidValue("empty Response Topic"));
        }
        check_field_len(self.len(), id)
    }
    fn write(&self, buf: &mut impl BufMut) {
        put_bytes(buf, self.as_bytes());
    }
}

impl PropertyValue for UserProperty {
    fn parse<'a>(frame: &Bytes, i: &'a [u8], _: PropertyId) -> PResult<'a, Self> {
        let (i, name) = string(frame, i)?;
        let (i, value) = string(frame, i)?;
        Ok((i, UserProperty { name, value }))
    }
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        Ok(check_field_len(self.name.len(), id)? + check_field_len(self.value.len(), id)?)
    }
    fn write(&self, buf: &mut impl BufMut) {
        put_bytes(buf, self.name.as_bytes());
        put_bytes(buf, self.value.as_bytes());
    }
}

/// Writes two-byte length-prefixed data whose length was checked by `encoded_len`.
pub(crate) fn put_bytes(buf: &mut impl BufMut, data: &[u8]) {
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

/// Where a property's values go in a struct: `Option` for a property that may appear once,
/// `Vec` for one that may repeat.
pub(crate) trait PropertySlot {
    fn parse_into<'a>(&mut self, frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, ()>;
    /// The encoded size of every value held, identifiers included.
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError>;
    fn write(&self, id: PropertyId, buf: &mut impl BufMut);
    fn is_unset(&self) -> bool;
}

impl<T: PropertyValue> PropertySlot for Option<T> {
    fn parse_into<'a>(&mut self, frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, ()> {
        if self.is_some() {
            return fail(DecodeError::DuplicateProperty(id));
        }
        let (i, value) = T::parse(frame, i, id)?;
        *self = Some(value);
        Ok((i, ()))
    }
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        self.as_ref().map_or(Ok(0), |v| Ok(1 + v.encoded_len(id)?))
    }
    fn write(&self, id: PropertyId, buf: &mut impl BufMut) {
        if let Some(v) = self {
            buf.put_u8(id as u8);
            v.write(buf);
        }
    }
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

impl<T: PropertyValue> PropertySlot for Vec<T> {
    fn parse_into<'a>(&mut self, frame: &Bytes, i: &'a [u8], id: PropertyId) -> PResult<'a, ()> {
        let (i, value) = T::parse(frame, i, id)?;
        self.push(value);
        Ok((i, ()))
    }
    fn encoded_len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        self.iter()
            .try_fold(0, |sum, v| Ok(sum + 1 + v.encoded_len(id)?))
    }
    fn write(&self, id: PropertyId, buf: &mut impl BufMut) {
        for v in self {
            buf.put_u8(id as u8);
            v.write(buf);
        }
    }
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}

/// The size of a property block, its length prefix included, once its body is measured.
pub(crate) fn block_len(body_len: usize) -> Result<usize, EncodeError> {
    if body_len > MAX_VARIABLE_INTEGER as usize {
        return Err(EncodeError::RemainingLengthTooLarge(body_len));
    }
    Ok(varint_len(body_len) + body_len)
}

/// What every per-packet property struct can do.
pub(crate) trait PropertyBlock: Default {
    /// Whether no property is set.
    fn is_empty(&self) -> bool;
    /// Reads a property block (length prefix, then properties) of a packet of type `packet`.
    fn parse<'a>(frame: &Bytes, i: &'a [u8], packet: PacketType) -> PResult<'a, Self>;
    /// The size of the properties, without the length prefix.
    fn body_len(&self) -> Result<usize, EncodeError>;
    /// Writes the length prefix and the properties; `body_len` is [`PropertyBlock::body_len`].
    fn write(&self, body_len: usize, buf: &mut impl BufMut);

    /// The size of the block, length prefix included.
    fn block_len(&self) -> Result<usize, EncodeError> {
        if self.is_empty() {
            return Ok(1);
        }
        block_len(self.body_len()?)
    }

    /// Writes the whole block. Callers check [`PropertyBlock::block_len`] first, so the
    /// length computed here again cannot fail.
    fn write_block(&self, buf: &mut impl BufMut) {
        if self.is_empty() {
            buf.put_u8(0);
            return;
        }
        let body_len = self.body_len().unwrap_or(0);
        self.write(body_len, buf);
    }
}

macro_rules! properties {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty = $id:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// User properties, in the order they were sent.
            pub user_properties: Vec<UserProperty>,
        }

        impl $name {
            /// Whether no property is set.
            pub fn is_empty(&self) -> bool {
                $( self.$field.is_unset() && )* self.user_properties.is_empty()
            }
        }

        impl PropertyBlock for $name {
            fn is_empty(&self) -> bool {
                $name::is_empty(self)
            }

            fn parse<'a>(frame: &Bytes, i: &'a [u8], packet: PacketType) -> PResult<'a, Self> {
                let (rest, len) = varint(i)?;
                let (rest, mut block) = take(len)(rest)?;
                let mut props = Self::default();
                while let Some((&id, tail)) = block.split_first() {
                    let id = match PropertyId::from_u8(id) {
                        Some(id) => id,
                        None => return fail(DecodeError::UnknownProperty(id)),
                    };
                    block = match id {
                        $( PropertyId::$id => props.$field.parse_into(frame, tail, id)?.0, )*
                        PropertyId::UserProperty => {
                            props.user_properties.parse_into(frame, tail, id)?.0
                        }
                        property => {
                            return fail(DecodeError::PropertyNotAllowed { property, packet });
                        }
                    };
                }
                Ok((rest, props))
            }

            fn body_len(&self) -> Result<usize, EncodeError> {
                #[allow(unused_mut)]
                let mut len = 0;
                $( len += self.$field.encoded_len(PropertyId::$id)?; )*
                len += self.user_properties.encoded_len(PropertyId::UserProperty)?;
                Ok(len)
            }

            fn write(&self, body_len: usize, buf: &mut impl BufMut) {
                put_varint(buf, body_len);
                $( self.$field.write(PropertyId::$id, buf); )*
                self.user_properties.write(PropertyId::UserProperty, buf);
            }
        }
    };
}

properties! {
    /// The properties of CONNECT.
    ConnectProperties {
        /// Seconds the session outlives the connection; `0xFFFFFFFF` never expires.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1/2 messages the client accepts in flight at once.
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// The largest packet the client accepts.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        /// The highest topic alias the client accepts from the server.
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// Whether the client asks for Response Information in CONNACK.
        request_response_information: Option<bool> = RequestResponseInformation,
        /// Whether the server may send reason strings and user properties on failures.
        request_problem_information: Option<bool> = RequestProblemInformation,
        /// The extended authentication method.
        authentication_method: Option<ByteString> = AuthenticationMethod,
        /// Authentication data for the method.
        authentication_data: Option<Bytes> = AuthenticationData,
    }
}

properties! {
    /// The properties of a will message, carried in CONNECT.
    WillProperties {
        /// Seconds to wait after the connection ends before publishing the will.
        will_delay_interval: Option<u32> = WillDelayInterval,
        /// What the will payload is.
        payload_format_indicator: Option<PayloadFormat> = PayloadFormatIndicator,
        /// Seconds the will message lives.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// The payload's content type.
        content_type: Option<ByteString> = ContentType,
        /// The topic for a response.
        response_topic: Option<TopicName> = ResponseTopic,
        /// Data pairing a response with its request.
        correlation_data: Option<Bytes> = CorrelationData,
    }
}

properties! {
    /// The properties of CONNACK.
    ConnAckProperties {
        /// The session expiry the server uses, if it differs from the client's.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1/2 messages the server accepts in flight at once.
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// The highest QoS the server supports (absent: 2).
        maximum_qos: Option<QoS> = MaximumQoS,
        /// Whether the server supports retained messages.
        retain_available: Option<bool> = RetainAvailable,
        /// The largest packet the server accepts.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        /// The client identifier the server assigned.
        assigned_client_identifier: Option<ByteString> = AssignedClientIdentifier,
        /// The highest topic alias the server accepts from the client.
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// A human-readable reason.
        reason_string: Option<ByteString> = ReasonString,
        /// Whether the server supports wildcard subscriptions.
        wildcard_subscription_available: Option<bool> = WildcardSubscriptionAvailable,
        /// Whether the server supports subscription identifiers.
        subscription_identifiers_available: Option<bool> = SubscriptionIdentifierAvailable,
        /// Whether the server supports shared subscriptions.
        shared_subscription_available: Option<bool> = SharedSubscriptionAvailable,
        /// The keep alive the server requires, overriding the client's.
        server_keep_alive: Option<u16> = ServerKeepAlive,
        /// The basis for building response topics.
        response_information: Option<ByteString> = ResponseInformation,
        /// Another server the client should use.
        server_reference: Option<ByteString> = ServerReference,
        /// The extended authentication method.
        authentication_method: Option<ByteString> = AuthenticationMethod,
        /// Authentication data for the method.
        authentication_data: Option<Bytes> = AuthenticationData,
    }
}

properties! {
    /// The properties of PUBLISH.
    PublishProperties {
        /// What the payload is.
        payload_format_indicator: Option<PayloadFormat> = PayloadFormatIndicator,
        /// Seconds the message lives (the remaining time, when a server forwards it).
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// A number standing for the topic name on this connection.
        topic_alias: Option<NonZeroU16> = TopicAlias,
        /// The topic for a response.
        response_topic: Option<TopicName> = ResponseTopic,
        /// Data pairing a response with its request.
        correlation_data: Option<Bytes> = CorrelationData,
        /// The identifiers of the subscriptions this message matched (server to client).
        subscription_identifiers: Vec<SubscriptionId> = SubscriptionIdentifier,
        /// The payload's content type.
        content_type: Option<ByteString> = ContentType,
    }
}

properties! {
    /// The properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
    AckProperties {
        /// A human-readable reason.
        reason_string: Option<ByteString> = ReasonString,
    }
}

properties! {
    /// The properties of SUBSCRIBE.
    SubscribeProperties {
        /// The identifier of this subscription, echoed in matching PUBLISH packets.
        subscription_identifier: Option<SubscriptionId> = SubscriptionIdentifier,
    }
}

properties! {
    /// The properties of UNSUBSCRIBE: user properties only.
    UnsubscribeProperties {}
}

properties! {
    /// The properties of DISCONNECT.
    DisconnectProperties {
        /// A new session expiry, sent by the client.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// A human-readable reason.
        reason_string: Option<ByteString> = ReasonString,
        /// Another server the client should use.
        server_reference: Option<ByteString> = ServerReference,
    }
}

properties! {
    /// The properties of AUTH.
    AuthProperties {
        /// The extended authentication method.
        authentication_method: Option<ByteString> = AuthenticationMethod,
        /// Authentication data for the method.
        authentication_data: Option<Bytes> = AuthenticationData,
        /// A human-readable reason.
        reason_string: Option<ByteString> = ReasonString,
    }
}
