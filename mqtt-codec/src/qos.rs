//! Quality of service levels and the per-subscription options that carry one.

use core::fmt;

/// A quality of service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS with this value (0, 1 or 2).
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The value on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for QoS {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QoS {}", self.as_u8())
    }
}

/// When the server sends retained messages for a new subscription (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist before.
    SendIfNew = 1,
    /// 2: never send them.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The retain handling with this value (0, 1 or 2).
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::SendAtSubscribe),
            1 => Some(Self::SendIfNew),
            2 => Some(Self::DoNotSend),
            _ => None,
        }
    }
}

/// What a subscriber asks for one topic filter in SUBSCRIBE.
///
/// MQTT 3.1 and 3.1.1 carry only the QoS; the other options are MQTT 5 and must keep their
/// defaults when encoding for an older version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// The maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// Do not send this client the messages it publishes itself.
    pub no_local: bool,
    /// Keep the retain flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options asking for `qos` and the defaults for everything else.
    pub const fn new(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    /// The options byte.
    pub const fn to_byte(self) -> u8 {
        self.qos.as_u8()
            | (self.no_local as u8) << 2
            | (self.retain_as_published as u8) << 3
            | (self.retain_handling as u8) << 4
    }

    /// The options an options byte holds, or `None` if it has a reserved bit set or an
    /// invalid QoS or retain handling.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        if byte & 0b1100_0000 != 0 {
            return None;
        }
        let (Some(qos), Some(retain_handling)) = (
            QoS::from_u8(byte & 0b11),
            RetainHandling::from_u8((byte >> 4) & 0b11),
        ) else {
            return None;
        };
        Some(Self {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    /// Whether these are the defaults for everything but the QoS, as MQTT 3.1.1 requires.
    pub const fn is_v3_compatible(self) -> bool {
        !self.no_local
            && !self.retain_as_published
            && matches!(self.retain_handling, RetainHandling::SendAtSubscribe)
    }
}
