//! MQTT 5 reason codes, and which of them each packet type may carry.
//!
//! MQTT 3.1.1 return codes (CONNACK, SUBACK) are mapped onto the MQTT 5 codes of the same meaning
//! so that one type describes an outcome whatever the protocol version; see
//! [`ReasonCode::to_v3_connack`] and [`ReasonCode::from_v3_connack`].

use core::fmt;

use crate::PacketType;

macro_rules! reason_codes {
    ($( $(#[$meta:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        /// A reason code: the outcome of an operation, as carried by MQTT 5 packets.
        ///
        /// `0x00` has three names in the specification (Success, Normal disconnection, Granted
        /// QoS 0); this type calls it [`ReasonCode::Success`] and uses it for all three.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum ReasonCode {
            $( $(#[$meta])* $name = $value, )*
        }

        impl ReasonCode {
            /// The reason code with this value, if the specification defines one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $( $value => Some(Self::$name), )*
                    _ => None,
                }
            }

            /// The specification's name for this code.
            pub const fn description(self) -> &'static str {
                match self {
                    $( Self::$name => $text, )*
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00: Success, Normal disconnection, or Granted QoS 0.
    Success = 0x00, "Success";
    /// 0x01: Granted QoS 1.
    GrantedQoS1 = 0x01, "Granted QoS 1";
    /// 0x02: Granted QoS 2.
    GrantedQoS2 = 0x02, "Granted QoS 2";
    /// 0x04: Disconnect with Will Message.
    DisconnectWithWillMessage = 0x04, "Disconnect with Will Message";
    /// 0x10: No matching subscribers.
    NoMatchingSubscribers = 0x10, "No matching subscribers";
    /// 0x11: No subscription existed.
    NoSubscriptionExisted = 0x11, "No subscription existed";
    /// 0x18: Continue authentication.
    ContinueAuthentication = 0x18, "Continue authentication";
    /// 0x19: Re-authenticate.
    ReAuthenticate = 0x19, "Re-authenticate";
    /// 0x80: Unspecified error (also the MQTT 3.1.1 SUBACK failure code).
    UnspecifiedError = 0x80, "Unspecified error";
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81, "Malformed Packet";
    /// 0x82: Protocol Error.
    ProtocolError = 0x82, "Protocol Error";
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83, "Implementation specific error";
    /// 0x84: Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84, "Unsupported Protocol Version";
    /// 0x85: Client Identifier not valid.
    ClientIdentifierNotValid = 0x85, "Client Identifier not valid";
    /// 0x86: Bad User Name or Password.
    BadUserNameOrPassword = 0x86, "Bad User Name or Password";
    /// 0x87: Not authorized.
    NotAuthorized = 0x87, "Not authorized";
    /// 0x88: Server unavailable.
    ServerUnavailable = 0x88, "Server unavailable";
    /// 0x89: Server busy.
    ServerBusy = 0x89, "Server busy";
    /// 0x8A: Banned.
    Banned = 0x8A, "Banned";
    /// 0x8B: Server shutting down.
    ServerShuttingDown = 0x8B, "Server shutting down";
    /// 0x8C: Bad authentication method.
    BadAuthenticationMethod = 0x8C, "Bad authentication method";
    /// 0x8D: Keep Alive timeout.
    KeepAliveTimeout = 0x8D, "Keep Alive timeout";
    /// 0x8E: Session taken over.
    SessionTakenOver = 0x8E, "Session taken over";
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8F, "Topic Filter invalid";
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90, "Topic Name invalid";
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "Packet Identifier in use";
    /// 0x92: Packet Identifier not found.
    PacketIdentifierNotFound = 0x92, "Packet Identifier not found";
    /// 0x93: Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93, "Receive Maximum exceeded";
    /// 0x94: Topic Alias invalid.
    TopicAliasInvalid = 0x94, "Topic Alias invalid";
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95, "Packet too large";
    /// 0x96: Message rate too high.
    MessageRateTooHigh = 0x96, "Message rate too high";
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97, "Quota exceeded";
    /// 0x98: Administrative action.
    AdministrativeAction = 0x98, "Administrative action";
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99, "Payload format invalid";
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9A, "Retain not supported";
    /// 0x9B: QoS not supported.
    QoSNotSupported = 0x9B, "QoS not supported";
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9C, "Use another server";
    /// 0x9D: Server moved.
    ServerMoved = 0x9D, "Server moved";
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E, "Shared Subscriptions not supported";
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9F, "Connection rate exceeded";
    /// 0xA0: Maximum connect time.
    MaximumConnectTime = 0xA0, "Maximum connect time";
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1, "Subscription Identifiers not supported";
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2, "Wildcard Subscriptions not supported";
}

use ReasonCode as R;

const CONNACK: &[ReasonCode] = &[
    R::Success,
    R::UnspecifiedError,
    R::MalformedPacket,
    R::ProtocolError,
    R::ImplementationSpecificError,
    R::UnsupportedProtocolVersion,
    R::ClientIdentifierNotValid,
    R::BadUserNameOrPassword,
    R::NotAuthorized,
    R::ServerUnavailable,
    R::ServerBusy,
    R::Banned,
    R::BadAuthenticationMethod,
    R::TopicNameInvalid,
    R::PacketTooLarge,
    R::QuotaExceeded,
    R::PayloadFormatInvalid,
    R::RetainNotSupported,
    R::QoSNotSupported,
    R::UseAnotherServer,
    R::ServerMoved,
    R::ConnectionRateExceeded,
];

const PUBACK: &[ReasonCode] = &[
    R::Success,
    R::NoMatchingSubscribers,
    R::UnspecifiedError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::TopicNameInvalid,
    R::PacketIdentifierInUse,
    R::QuotaExceeded,
    R::PayloadFormatInvalid,
];

const PUBREL: &[ReasonCode] = &[R::Success, R::PacketIdentifierNotFound];

const SUBACK: &[ReasonCode] = &[
    R::Success,
    R::GrantedQoS1,
    R::GrantedQoS2,
    R::UnspecifiedError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::TopicFilterInvalid,
    R::PacketIdentifierInUse,
    R::QuotaExceeded,
    R::SharedSubscriptionsNotSupported,
    R::SubscriptionIdentifiersNotSupported,
    R::WildcardSubscriptionsNotSupported,
];

const UNSUBACK: &[ReasonCode] = &[
    R::Success,
    R::NoSubscriptionExisted,
    R::UnspecifiedError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::TopicFilterInvalid,
    R::PacketIdentifierInUse,
];

const DISCONNECT: &[ReasonCode] = &[
    R::Success,
    R::DisconnectWithWillMessage,
    R::UnspecifiedError,
    R::MalformedPacket,
    R::ProtocolError,
    R::ImplementationSpecificError,
    R::NotAuthorized,
    R::ServerBusy,
    R::ServerShuttingDown,
    R::KeepAliveTimeout,
    R::SessionTakenOver,
    R::TopicFilterInvalid,
    R::TopicNameInvalid,
    R::ReceiveMaximumExceeded,
    R::TopicAliasInvalid,
    R::PacketTooLarge,
    R::MessageRateTooHigh,
    R::QuotaExceeded,
    R::AdministrativeAction,
    R::PayloadFormatInvalid,
    R::RetainNotSupported,
    R::QoSNotSupported,
    R::UseAnotherServer,
    R::ServerMoved,
    R::SharedSubscriptionsNotSupported,
    R::ConnectionRateExceeded,
    R::MaximumConnectTime,
    R::SubscriptionIdentifiersNotSupported,
    R::WildcardSubscriptionsNotSupported,
];

const AUTH: &[ReasonCode] = &[R::Success, R::ContinueAuthentication, R::ReAuthenticate];

impl ReasonCode {
    /// The code's value on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether this code reports a failure (every code from 0x80 up).
    pub const fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether MQTT 5 allows this code in a packet of type `packet`.
    pub fn is_valid_for(self, packet: PacketType) -> bool {
        let allowed = match packet {
            PacketType::ConnAck => CONNACK,
            PacketType::PubAck | PacketType::PubRec => PUBACK,
            PacketType::PubRel | PacketType::PubComp => PUBREL,
            PacketType::SubAck => SUBACK,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            _ => return false,
        };
        allowed.contains(&self)
    }

    /// The MQTT 3.1 / 3.1.1 CONNACK return code for this outcome, if 3.1.1 has one.
    ///
    /// MQTT 3.1.1 has six return codes; a broker that refuses a 3.1.1 client for a reason
    /// 3.1.1 cannot express should choose the nearest one itself.
    pub const fn to_v3_connack(self) -> Option<u8> {
        match self {
            R::Success => Some(0),
            R::UnsupportedProtocolVersion => Some(1),
            R::ClientIdentifierNotValid => Some(2),
            R::ServerUnavailable => Some(3),
            R::BadUserNameOrPassword => Some(4),
            R::NotAuthorized => Some(5),
            _ => None,
        }
    }

    /// The outcome meant by an MQTT 3.1 / 3.1.1 CONNACK return code (0 to 5).
    pub const fn from_v3_connack(code: u8) -> Option<Self> {
        match code {
            0 => Some(R::Success),
            1 => Some(R::UnsupportedProtocolVersion),
            2 => Some(R::ClientIdentifierNotValid),
            3 => Some(R::ServerUnavailable),
            4 => Some(R::BadUserNameOrPassword),
            5 => Some(R::NotAuthorized),
            _ => None,
        }
    }

    /// Whether this code can be sent in an MQTT 3.1 / 3.1.1 SUBACK (granted QoS or 0x80).
    pub const fn is_v3_suback(self) -> bool {
        matches!(
            self,
            R::Success | R::GrantedQoS1 | R::GrantedQoS2 | R::UnspecifiedError
        )
    }
}

/// Success: what a packet that omits its reason code means.
impl Default for ReasonCode {
    fn default() -> Self {
        Self::Success
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.description(), self.as_u8())
    }
}

impl From<ReasonCode> for u8 {
    fn from(code: ReasonCode) -> u8 {
        code.as_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for value in 0..=u8::MAX {
            if let Some(code) = ReasonCode::from_u8(value) {
                assert_eq!(code.as_u8(), value);
            }
        }
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xA3), None);
    }

    #[test]
    fn per_packet_tables_follow_the_specification() {
        assert!(ReasonCode::SessionTakenOver.is_valid_for(PacketType::Disconnect));
        assert!(!ReasonCode::SessionTakenOver.is_valid_for(PacketType::ConnAck));
        assert!(ReasonCode::NoMatchingSubscribers.is_valid_for(PacketType::PubRec));
        assert!(!ReasonCode::NoMatchingSubscribers.is_valid_for(PacketType::PubRel));
        assert!(ReasonCode::ReAuthenticate.is_valid_for(PacketType::Auth));
        assert!(!ReasonCode::Success.is_valid_for(PacketType::Publish));
    }

    #[test]
    fn v3_connack_codes_map_both_ways() {
        for code in 0..=5 {
            let reason = ReasonCode::from_v3_connack(code).unwrap();
            assert_eq!(reason.to_v3_connack(), Some(code));
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
        assert_eq!(ReasonCode::Banned.to_v3_connack(), None);
    }
}
