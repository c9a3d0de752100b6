//! What can end a client run, and the exit code each outcome gives the shell.
//!
//! The codes are part of the command line's contract (they are listed in `nanomq pub --help`):
//! [`EXIT_OK`], [`EXIT_NETWORK`], [`EXIT_USAGE`], [`EXIT_REFUSED`], [`EXIT_TIMEOUT`].

use std::fmt;
use std::io;
use std::time::Duration;

use mqtt_client::PublishError;
use mqtt_codec::{EncodeError, ReasonCode};

/// Success.
pub(crate) const EXIT_OK: u8 = 0;
/// A network or protocol failure: the broker cannot be reached, the connection broke, or
/// the broker sent something invalid or closed the connection.
pub(crate) const EXIT_NETWORK: u8 = 1;
/// A usage error: a bad flag or value, an unreadable file (clap's own code for bad flags).
pub(crate) const EXIT_USAGE: u8 = 2;
/// The broker refused: CONNACK with a failure reason code (also a refused subscription or
/// publication).
pub(crate) const EXIT_REFUSED: u8 = 3;
/// `-W` elapsed before the command finished (for `sub`: before `-C` messages arrived).
pub(crate) const EXIT_TIMEOUT: u8 = 4;

/// The exit codes, as `--help` lists them.
pub(crate) const EXIT_CODES_HELP: &str = "\
EXIT CODES:
  0  success
  1  network or protocol error (cannot connect, connection lost, broker disconnected us)
  2  usage error (bad option or value, unreadable file)
  3  refused by the broker (CONNACK, SUBACK or PUBACK failure; the reason is printed)
  4  timeout: -W elapsed first";

/// Why a client command failed.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// Bad options; the text says which.
    Usage(String),
    /// Reading or writing failed (the output, standard input).
    Io(io::Error),
    /// The connection failed: the network, TLS, WebSocket, the broker breaking the protocol,
    /// keep alive (mqtt-client says which).
    Connection(mqtt_client::Error),
    /// CONNACK refused the connection.
    Refused {
        /// The reason code (MQTT 3.1.1 return codes are mapped onto these).
        reason: ReasonCode,
        /// The broker's Reason String, if it sent one.
        reason_string: Option<String>,
    },
    /// SUBACK refused a subscription.
    SubscribeRefused {
        /// The topic filter.
        filter: String,
        /// The reason code.
        reason: ReasonCode,
    },
    /// PUBACK, PUBREC or PUBCOMP carried a failure reason code.
    PublishRefused {
        /// The reason code.
        reason: ReasonCode,
        /// The broker's Reason String, if it sent one.
        reason_string: Option<String>,
    },
    /// A message was not sent: what the broker's CONNACK announced rules it out (too large,
    /// QoS or retain unsupported), or the connection ended before its acknowledgement.
    Publish(PublishError),
    /// The broker sent a packet that makes no sense here.
    Protocol(String),
    /// The broker closed the connection.
    Closed,
    /// The broker sent DISCONNECT.
    Disconnected {
        /// The reason code.
        reason: ReasonCode,
        /// The broker's Reason String, if it sent one.
        reason_string: Option<String>,
    },
    /// `-W` (or another deadline) elapsed.
    Timeout(Duration),
}

impl ClientError {
    /// The process exit code for this outcome.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Publish(PublishError::Encode(_)) => EXIT_USAGE,
            Self::Refused { .. }
            | Self::SubscribeRefused { .. }
            | Self::PublishRefused { .. }
            | Self::Publish(
                PublishError::TooLarge { .. }
                | PublishError::QosNotSupported { .. }
                | PublishError::RetainNotAvailable
                | PublishError::Refused { .. },
            ) => EXIT_REFUSED,
            Self::Timeout(_) => EXIT_TIMEOUT,
            Self::Io(_)
            | Self::Connection(_)
            | Self::Publish(PublishError::NotConnected | PublishError::ConnectionLost)
            | Self::Protocol(_)
            | Self::Closed
            | Self::Disconnected { .. } => EXIT_NETWORK,
        }
    }
}

/// `reason (0xNN)` and the broker's reason string, if any.
fn describe(f: &mut fmt::Formatter<'_>, reason: ReasonCode, text: Option<&str>) -> fmt::Result {
    write!(f, "{} (0x{:02X})", reason.description(), reason.as_u8())?;
    if let Some(text) = text {
        write!(f, ": {text}")?;
    }
    Ok(())
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(text) => f.write_str(text),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Connection(e) => e.fmt(f),
            Self::Refused {
                reason,
                reason_string,
            } => {
                f.write_str("connection refused: ")?;
                describe(f, *reason, reason_string.as_deref())
            }
            Self::SubscribeRefused { filter, reason } => {
                write!(f, "subscription to `{filter}` refused: ")?;
                describe(f, *reason, None)
            }
            Self::PublishRefused {
                reason,
                reason_string,
            } => {
                f.write_str("publish refused: ")?;
                describe(f, *reason, reason_string.as_deref())
            }
            Self::Publish(e) => write!(f, "publish failed: {e}"),
            Self::Protocol(text) => write!(f, "protocol error: {text}"),
            Self::Closed => f.write_str("the broker closed the connection"),
            Self::Disconnected {
                reason,
                reason_string,
            } => {
                f.write_str("disconnected by the broker: ")?;
                describe(f, *reason, reason_string.as_deref())
            }
            Self::Timeout(after) => {
                write!(f, "timed out after {}", humantime::format_duration(*after))
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Connection(e) => Some(e),
            Self::Publish(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<mqtt_client::Error> for ClientError {
    fn from(e: mqtt_client::Error) -> Self {
        match e {
            mqtt_client::Error::Usage(text) => Self::Usage(text),
            mqtt_client::Error::Refused {
                reason,
                reason_string,
            } => Self::Refused {
                reason,
                reason_string,
            },
            mqtt_client::Error::Disconnected {
                reason,
                reason_string,
            } => Self::Disconnected {
                reason,
                reason_string,
            },
            mqtt_client::Error::Closed => Self::Closed,
            other => Self::Connection(other),
        }
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> Self {
        Self::Connection(mqtt_client::Error::Encode(e))
    }
}

impl From<PublishError> for ClientError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Refused {
                reason,
                reason_string,
            } => Self::PublishRefused {
                reason,
                reason_string,
            },
            other => Self::Publish(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_exit_code() {
        let refused = ClientError::Refused {
            reason: ReasonCode::BadAuthenticationMethod,
            reason_string: None,
        };
        assert_eq!(refused.exit_code(), EXIT_REFUSED);
        assert_eq!(
            refused.to_string(),
            "connection refused: Bad authentication method (0x8C)"
        );
        assert_eq!(
            ClientError::Timeout(Duration::from_secs(1)).exit_code(),
            EXIT_TIMEOUT
        );
        assert_eq!(ClientError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(ClientError::Closed.exit_code(), EXIT_NETWORK);
        let too_large = ClientError::from(PublishError::TooLarge { size: 9, max: 8 });
        assert_eq!(too_large.exit_code(), EXIT_REFUSED);
        let lost = ClientError::from(PublishError::ConnectionLost);
        assert_eq!(lost.exit_code(), EXIT_NETWORK);
        let refused = ClientError::from(mqtt_client::Error::Refused {
            reason: ReasonCode::NotAuthorized,
            reason_string: None,
        });
        assert_eq!(refused.exit_code(), EXIT_REFUSED);
        let codes = [
            EXIT_OK,
            EXIT_NETWORK,
            EXIT_USAGE,
            EXIT_REFUSED,
            EXIT_TIMEOUT,
        ];
        for code in codes {
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")), "{code}");
        }
    }
}
