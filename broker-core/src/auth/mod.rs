//! Who may connect and what they may do: the authentication and authorization traits, the
//! chain that asks them in order ([`AccessControl`]), Mosquitto's password files, and the
//! extended authentication hook (MQTT 5 AUTH exchange). For the AUTH exchange the broker
//! runs the packet flow; an implementation of [`EnhancedAuth`] starts one [`AuthExchange`]
//! per authentication (at CONNECT, and again at each re-authentication), which keeps
//! whatever it must remember between steps (SCRAM's nonces and messages) and decides each
//! one. With none configured, or one that does not serve the method, a CONNECT that names an
//! authentication method is refused with Bad authentication method (0x8C).

use std::net::SocketAddr;

mod access;
mod authn;
mod authz;
mod hash_format;
mod password_authn;
mod password_file;
mod password_file_edit;
mod password_hash;

pub use access::{AccessControl, DenyAction};
pub(crate) use access::{Checked, ClientAccess, Decision, Identity};
pub use authn::{Authenticator, AuthnDenial, AuthnResult, BoxFuture};
pub use authz::{AclCheck, AclResult, Action, Authorizer, ClientAuthorizer};
pub use hash_format::HashError;
pub use password_authn::PasswordFileAuthenticator;
pub use password_file::{
    LoadPasswordFileError, PasswordCheck, PasswordFile, PasswordFileError, PasswordFileErrorKind,
};
pub use password_file_edit::{PasswordFileEditor, UsernameError, check_username};
pub use password_hash::{DEFAULT_PBKDF2_ITERATIONS, HashAlgorithm, PasswordHash, hash_password};

use bytes::Bytes;
use mqtt_codec::{ByteString, ClientId, ReasonCode};

/// One step's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Authenticated.
    Success {
        /// Data for the client, in CONNACK (or in the AUTH that ends a re-authentication).
        data: Option<Bytes>,
        /// Who the client proved to be. The broker uses it as the connection's user name
        /// (for authorization), in place of CONNECT's; a re-authentication must prove the
        /// same identity.
        identity: Option<ByteString>,
    },
    /// Send this data in an AUTH (Continue authentication) and wait for the client's answer.
    Continue(Bytes),
    /// Refuse, with this reason code.
    Fail(ReasonCode),
}

/// What the broker knows of the client when an authentication starts.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// The Authentication Method the client named.
    pub method: &'a str,
    /// The client identifier (as assigned, if the broker assigned it).
    pub client_id: &'a ClientId,
    /// CONNECT's User Name, if any.
    pub username: Option<&'a str>,
    /// The client's address, if the transport has one.
    pub peer: Option<SocketAddr>,
    /// Whether this is a re-authentication (AUTH 0x19) of a connected client.
    pub reauthentication: bool,
}

/// An extended authentication method, such as SCRAM or Kerberos.
pub trait EnhancedAuth: Send + Sync + 'static {
    /// Starts an exchange for `ctx.method`, or `None` if this hook does not serve that
    /// method (the client is then refused with Bad authentication method).
    fn start(&self, ctx: &AuthContext<'_>) -> Option<Box<dyn AuthExchange>>;
}

/// One authentication in progress.
pub trait AuthExchange: Send {
    /// Handles the client's next data: first the data in CONNECT (or in the Re-authenticate
    /// AUTH), then each answer to a Continue. Not called again after `Success` or `Fail`.
    fn step(&mut self, data: Option<&Bytes>) -> AuthStep;
}
