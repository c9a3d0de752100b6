//! What can go wrong decoding or encoding, and which reason code a server sends for it.

use core::fmt;

use crate::{InvalidTopic, PacketType, PropertyId, ProtocolVersion, ReasonCode};

/// Why bytes from a peer are not a valid MQTT packet.
///
/// Every variant is the peer's fault; [`DecodeError::reason_code`] is the MQTT 5 reason code a
/// server puts in the DISCONNECT (or CONNACK) that closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The fixed header announces a packet larger than the negotiated maximum.
    PacketTooLarge {
        /// The whole packet's size in bytes, fixed header included.
        size: usize,
        /// The maximum in force.
        max: u32,
    },
    /// A variable byte integer (the remaining length, a property length, a subscription
    /// identifier) uses more than four bytes, or more bytes than its value needs.
    MalformedVariableInteger,
    /// Packet type 0, or 15 (AUTH) before MQTT 5.
    ReservedPacketType(u8),
    /// The fixed header's flags are not the ones this packet type requires.
    InvalidFixedHeaderFlags {
        /// The packet type.
        packet: PacketType,
        /// The four flag bits received.
        flags: u8,
    },
    /// A QoS of 3.
    InvalidQoS,
    /// A PUBLISH with QoS 0 and the DUP flag set.
    DupWithQoS0,
    /// A packet other than CONNECT arrived while the protocol version was still unknown.
    ProtocolVersionUnknown(PacketType),
    /// CONNECT named a protocol or level this codec does not speak.
    UnsupportedProtocol {
        /// The protocol level byte (the name is MQTT or MQIsdp for a level we do not know).
        level: u8,
        /// Whether the protocol name was one of `MQTT` / `MQIsdp`.
        known_name: bool,
    },
    /// CONNECT's reserved flag bit is set.
    ConnectReservedFlag,
    /// CONNECT sets will QoS or will retain without the will flag, or a will QoS of 3.
    InvalidWillFlags,
    /// CONNECT (3.1 / 3.1.1) has the password flag without the user name flag.
    PasswordWithoutUsername,
    /// CONNACK's acknowledge flags have reserved bits set, or session present with an error.
    InvalidConnackFlags,
    /// A string is not valid UTF-8.
    InvalidUtf8,
    /// A string breaks an MQTT rule: U+0000, an invalid topic name or topic filter.
    InvalidString(InvalidTopic),
    /// A PUBLISH topic name is invalid (wildcards, U+0000).
    InvalidTopicName(InvalidTopic),
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter is invalid.
    InvalidTopicFilter(InvalidTopic),
    /// A PUBLISH without a topic name and without a topic alias.
    EmptyTopicWithoutAlias,
    /// A packet identifier of zero where one is required.
    ZeroPacketId,
    /// The packet ends before a field it must contain.
    UnexpectedEnd,
    /// Bytes left over after the last field.
    TrailingBytes,
    /// A property identifier the specification does not define.
    UnknownProperty(u8),
    /// A property the specification does not allow in this packet.
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet (the will's properties count as CONNECT's).
        packet: PacketType,
    },
    /// A property that may appear once appears twice.
    DuplicateProperty(PropertyId),
    /// A property has a value outside its range (a zero receive maximum, a boolean of 2, ...).
    InvalidPropertyValue(PropertyId),
    /// A reason code that this packet type may not carry.
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The code received.
        code: u8,
    },
    /// A subscription options byte with reserved bits set or a retain handling of 3.
    InvalidSubscriptionOptions(u8),
    /// A subscription's retain handling is 3.
    InvalidRetainHandling,
    /// No-local set on a shared subscription.
    NoLocalOnSharedSubscription,
    /// A SUBSCRIBE, UNSUBSCRIBE, SUBACK or MQTT 5 UNSUBACK with an empty payload.
    EmptyPayload(PacketType),
}

impl DecodeError {
    /// The MQTT 5 reason code a server sends when it closes a connection for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::UnsupportedProtocol { .. } => ReasonCode::UnsupportedProtocolVersion,
            // U+0000 breaks the string encoding itself, whatever the string is for.
            Self::InvalidTopicName(InvalidTopic::NullCharacter)
            | Self::InvalidTopicFilter(InvalidTopic::NullCharacter) => ReasonCode::MalformedPacket,
            Self::InvalidTopicName(_) => ReasonCode::TopicNameInvalid,
            Self::InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            Self::ProtocolVersionUnknown(_)
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::EmptyTopicWithoutAlias
            | Self::NoLocalOnSharedSubscription
            | Self::InvalidRetainHandling
            | Self::EmptyPayload(_)
            | Self::PasswordWithoutUsername => ReasonCode::ProtocolError,
            Self::MalformedVariableInteger
            | Self::ReservedPacketType(_)
            | Self::InvalidFixedHeaderFlags { .. }
            | Self::InvalidQoS
            | Self::DupWithQoS0
            | Self::ConnectReservedFlag
            | Self::InvalidWillFlags
            | Self::InvalidConnackFlags
            | Self::InvalidUtf8
            | Self::InvalidString(_)
            | Self::ZeroPacketId
            | Self::UnexpectedEnd
            | Self::TrailingBytes
            | Self::UnknownProperty(_)
            | Self::PropertyNotAllowed { .. }
            | Self::InvalidReasonCode { .. }
            | Self::InvalidSubscriptionOptions(_) => ReasonCode::MalformedPacket,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max}")
            }
            Self::MalformedVariableInteger => f.write_str("malformed variable byte integer"),
            Self::ReservedPacketType(t) => write!(f, "reserved packet type {t}"),
            Self::InvalidFixedHeaderFlags { packet, flags } => {
                write!(f, "invalid fixed header flags {flags:#06b} for {packet}")
            }
            Self::InvalidQoS => f.write_str("QoS 3 is not a valid QoS"),
            Self::DupWithQoS0 => f.write_str("DUP flag set on a QoS 0 PUBLISH"),
            Self::ProtocolVersionUnknown(p) => {
                write!(f, "{p} received before CONNECT set the protocol version")
            }
            Self::UnsupportedProtocol { level, known_name } => {
                if *known_name {
                    write!(f, "unsupported protocol level {level}")
                } else {
                    f.write_str("unknown protocol name")
                }
            }
            Self::ConnectReservedFlag => f.write_str("CONNECT reserved flag is set"),
            Self::InvalidWillFlags => f.write_str("will QoS or retain set without a valid will"),
            Self::PasswordWithoutUsername => f.write_str("password flag without user name flag"),
            Self::InvalidConnackFlags => f.write_str("invalid CONNACK acknowledge flags"),
            Self::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            Self::InvalidString(e) => write!(f, "invalid string: {e}"),
            Self::InvalidTopicName(e) => write!(f, "invalid topic name: {e}"),
            Self::InvalidTopicFilter(e) => write!(f, "invalid topic filter: {e}"),
            Self::EmptyTopicWithoutAlias => f.write_str("empty topic name without a topic alias"),
            Self::ZeroPacketId => f.write_str("packet identifier 0"),
            Self::UnexpectedEnd => f.write_str("packet ends before its last field"),
            Self::TrailingBytes => f.write_str("bytes left after the packet's last field"),
            Self::UnknownProperty(id) => write!(f, "unknown property identifier {id:#04x}"),
            Self::PropertyNotAllowed { property, packet } => {
                write!(f, "property {property} is not allowed in {packet}")
            }
            Self::DuplicateProperty(p) => write!(f, "property {p} appears more than once"),
            Self::InvalidPropertyValue(p) => write!(f, "invalid value for property {p}"),
            Self::InvalidReasonCode { packet, code } => {
                write!(f, "reason code {code:#04x} is not valid in {packet}")
            }
            Self::InvalidSubscriptionOptions(b) => {
                write!(f, "invalid subscription options {b:#010b}")
            }
            Self::InvalidRetainHandling => f.write_str("retain handling 3"),
            Self::NoLocalOnSharedSubscription => {
                f.write_str("no-local set on a shared subscription")
            }
            Self::EmptyPayload(p) => write!(f, "{p} without any topic filter or reason code"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet cannot be encoded. Nothing is written when encoding fails.
///
/// Every variant is the caller's fault: the packet holds a value the wire format (or the
/// chosen protocol version, or the negotiated maximum) cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    FieldTooLong {
        /// What the field is.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The packet's remaining length would exceed 268,435,455.
    RemainingLengthTooLarge(usize),
    /// The encoded packet is larger than the maximum packet size in force.
    PacketTooLarge {
        /// The encoded size.
        size: usize,
        /// The maximum.
        max: u32,
    },
    /// The packet uses something the protocol version cannot express.
    NotInVersion {
        /// What it is (AUTH, properties, a reason code, ...).
        what: &'static str,
        /// The version encoded for.
        version: ProtocolVersion,
    },
    /// A field holds a value the specification forbids.
    InvalidValue(&'static str),
    /// The buffer has less room than the packet needs.
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has room for.
        remaining: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldTooLong { field, len } => {
                write!(f, "{field} is {len} bytes, more than 65535")
            }
            Self::RemainingLengthTooLarge(len) => {
                write!(f, "remaining length {len} exceeds 268435455")
            }
            Self::PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max}")
            }
            Self::NotInVersion { what, version } => {
                write!(f, "{what} cannot be sent with MQTT {version}")
            }
            Self::InvalidValue(what) => write!(f, "invalid value: {what}"),
            Self::BufferTooSmall { needed, remaining } => {
                write!(
                    f,
                    "packet needs {needed} bytes, buffer has room for {remaining}"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// The error type of the nom parsers: a decode error, or nom's own "ran out of input".
impl<I> nom::error::ParseError<I> for DecodeError {
    fn from_error_kind(_input: I, _kind: nom::error::ErrorKind) -> Self {
        // Body parsers run over exactly the bytes the remaining length announced, with nom's
        // `complete` combinators, so a primitive failing can only mean the body ran out.
        Self::UnexpectedEnd
    }

    fn append(_input: I, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

impl From<nom::Err<DecodeError>> for DecodeError {
    fn from(err: nom::Err<DecodeError>) -> Self {
        match err {
            nom::Err::Error(e) | nom::Err::Failure(e) => e,
            nom::Err::Incomplete(_) => Self::UnexpectedEnd,
        }
    }
}
