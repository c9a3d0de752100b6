//! What can go wrong, sorted by who caused it: the network ([`Error::Connect`],
//! [`Error::Io`], TLS, WebSocket), the server breaking the protocol ([`ProtocolError`]), the
//! server refusing ([`Error::Refused`], [`Error::Disconnected`], [`PublishError::Refused`]),
//! time ([`Error::Timeout`]) or the caller ([`Error::Usage`], [`PublishError::TooLarge`]).

use std::fmt;
use std::io;
use std::sync::Arc;

use mqtt_codec::{DecodeError, EncodeError, PacketType, QoS, ReasonCode};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// No CONNACK within the connect timeout.
    Connect,
    /// Nothing received for 1.5 times the keep alive.
    KeepAlive,
}

/// The server sent something the protocol does not allow here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// Bytes that are not a valid packet.
    Decode(DecodeError),
    /// A packet a server never sends, or not at this point (a second CONNACK, a SUBSCRIBE).
    Unexpected(PacketType),
    /// An acknowledgement of the wrong kind for the packet identifier (PUBACK for QoS 2).
    WrongAck {
        /// The acknowledgement received.
        received: PacketType,
        /// Its packet identifier.
        packet_id: u16,
    },
    /// A SUBACK or UNSUBACK for no request of ours, or with the wrong number of codes.
    BadSubAck(u16),
    /// A topic alias of 0, above our maximum, or used before it was set.
    TopicAliasInvalid(u16),
    /// More QoS 2 messages awaiting PUBREL than our Receive Maximum.
    ReceiveMaximumExceeded,
    /// The server started an extended authentication exchange, which this client does not
    /// continue.
    Auth,
}

impl ProtocolError {
    /// The MQTT 5 reason code a DISCONNECT for this error carries.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Decode(e) => e.reason_code(),
            Self::TopicAliasInvalid(_) => ReasonCode::TopicAliasInvalid,
            Self::ReceiveMaximumExceeded => ReasonCode::ReceiveMaximumExceeded,
            Self::Auth => ReasonCode::BadAuthenticationMethod,
            Self::Unexpected(_) | Self::WrongAck { .. } | Self::BadSubAck(_) => {
                ReasonCode::ProtocolError
            }
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "the server sent an invalid packet: {e}"),
            Self::Unexpected(t) => write!(f, "unexpected {t:?} from the server"),
            Self::WrongAck {
                received,
                packet_id,
            } => write!(
                f,
                "{received:?} for packet {packet_id}, which awaits another"
            ),
            Self::BadSubAck(id) => write!(f, "an acknowledgement for no request (packet {id})"),
            Self::TopicAliasInvalid(a) => write!(f, "invalid topic alias {a}"),
            Self::ReceiveMaximumExceeded => f.write_str("the server exceeded our Receive Maximum"),
            Self::Auth => f.write_str(
                "the server started an extended authentication exchange, which this client \
                 cannot continue",
            ),
        }
    }
}

/// Why a connection could not be made, or ended. Cloneable (I/O errors are shared), so
/// that every waiter on a connection can be told why it ended.
#[derive(Debug, Clone)]
pub enum Error {
    /// Bad options or a transport this build lacks; the text says which.
    Usage(String),
    /// The server could not be reached.
    Connect {
        /// `mqtt://host:port`.
        endpoint: String,
        /// Why.
        source: Arc<io::Error>,
    },
    /// Reading or writing the connection failed.
    Io(Arc<io::Error>),
    /// The TLS set-up or handshake failed.
    Tls(String),
    /// The WebSocket handshake or framing failed.
    WebSocket(String),
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// A packet of ours could not be encoded (a field too long, a v5 feature on 3.1.1).
    Encode(EncodeError),
    /// CONNACK refused the connection.
    Refused {
        /// The reason code (MQTT 3.1.1 return codes mapped onto these).
        reason: ReasonCode,
        /// The server's Reason String, if any.
        reason_string: Option<String>,
    },
    /// The server sent DISCONNECT.
    Disconnected {
        /// The reason code.
        reason: ReasonCode,
        /// The server's Reason String, if any.
        reason_string: Option<String>,
    },
    /// The server closed the connection without DISCONNECT.
    Closed,
    /// A deadline passed.
    Timeout(TimeoutKind),
    /// Not connected (before CONNACK, or after the connection ended).
    NotConnected,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(text) => f.write_str(text),
            Self::Connect { endpoint, source } => {
                write!(f, "cannot connect to {endpoint}: {source}")
            }
            Self::Io(e) => write!(f, "connection error: {e}"),
            Self::Tls(e) => write!(f, "TLS error: {e}"),
            Self::WebSocket(e) => write!(f, "WebSocket error: {e}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Encode(e) => write!(f, "cannot encode the packet: {e}"),
            Self::Refused {
                reason,
                reason_string,
            } => {
                f.write_str("connection refused: ")?;
                describe_reason(f, *reason, reason_string.as_deref())
            }
            Self::Disconnected {
                reason,
                reason_string,
            } => {
                f.write_str("disconnected by the broker: ")?;
                describe_reason(f, *reason, reason_string.as_deref())
            }
            Self::Closed => f.write_str("the broker closed the connection"),
            Self::Timeout(TimeoutKind::Connect) => f.write_str("no CONNACK in time"),
            Self::Timeout(TimeoutKind::KeepAlive) => {
                f.write_str("nothing received for 1.5 times the keep alive")
            }
            Self::NotConnected => f.write_str("not connected"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect { source, .. } | Self::Io(source) => Some(&**source),
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Self::Protocol(ProtocolError::Decode(e))
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

/// Why one publication did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The encoded PUBLISH is larger than the server's Maximum Packet Size (never sent).
    TooLarge {
        /// Its size.
        size: usize,
        /// The server's maximum.
        max: u32,
    },
    /// The server's CONNACK says it supports QoS up to `max` only (never sent).
    QosNotSupported {
        /// The server's Maximum QoS.
        max: QoS,
    },
    /// The server's CONNACK says it has no retained messages (never sent).
    RetainNotAvailable,
    /// It cannot be encoded for this connection (never sent).
    Encode(EncodeError),
    /// PUBACK, PUBREC or PUBCOMP carried a failure reason code.
    Refused {
        /// The reason code.
        reason: ReasonCode,
        /// The server's Reason String, if any.
        reason_string: Option<String>,
    },
    /// QoS 0 before CONNACK or after the connection ended (QoS 1/2 are queued instead).
    NotConnected,
    /// The connection ended first. A QoS 1/2 message stays in the [`crate::SessionState`]
    /// and is sent again on the next connection made with that state.
    ConnectionLost,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, max } => write!(
                f,
                "the message ({size} bytes) exceeds the server's maximum packet size ({max})"
            ),
            Self::QosNotSupported { max } => {
                write!(f, "the server supports QoS up to {} only", max.as_u8())
            }
            Self::RetainNotAvailable => f.write_str("the server has no retained messages"),
            Self::Encode(e) => write!(f, "cannot encode the message: {e}"),
            Self::Refused {
                reason,
                reason_string,
            } => {
                f.write_str("publish refused: ")?;
                describe_reason(f, *reason, reason_string.as_deref())
            }
            Self::NotConnected => f.write_str("not connected"),
            Self::ConnectionLost => f.write_str("the connection ended before the acknowledgement"),
        }
    }
}

impl std::error::Error for PublishError {}

/// `Description (0xNN)` and the server's reason string, if any.
pub(crate) fn describe_reason(
    f: &mut fmt::Formatter<'_>,
    reason: ReasonCode,
    text: Option<&str>,
) -> fmt::Result {
    write!(f, "{} (0x{:02X})", reason.description(), reason.as_u8())?;
    if let Some(text) = text {
        write!(f, ": {text}")?;
    }
    Ok(())
}
