//! The extended authentication hook (MQTT 5 AUTH exchange). The broker runs the packet flow;
//! an implementation of [`EnhancedAuth`] decides each step. With none configured, a CONNECT
//! that names an authentication method is refused with Bad authentication method (0x8C).

use bytes::Bytes;
use mqtt_codec::{ClientId, ReasonCode};

/// One step's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Authenticated; the data (if any) goes to the client in CONNACK or AUTH.
    Success(Option<Bytes>),
    /// Send this data in an AUTH (Continue authentication) and wait for the client's answer.
    Continue(Bytes),
    /// Refuse, with this reason code.
    Fail(ReasonCode),
}

/// An extended authentication method, such as SCRAM or Kerberos.
pub trait EnhancedAuth: Send + Sync + 'static {
    /// The method's name, as clients put it in Authentication Method.
    fn method(&self) -> &str;

    /// Handles the client's data for step `step` (0 for the data in CONNECT or in a
    /// Re-authenticate AUTH, then 1, 2, ... for each answer to a Continue).
    fn step(&self, client_id: &ClientId, step: u32, data: Option<&Bytes>) -> AuthStep;
}
