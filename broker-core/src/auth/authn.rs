//! Authentication: who a client is, decided once at CONNECT from what its pipe's
//! [`ConnParam`] holds (username, password, client id, peer address, certificate identity).
//! Each source of credentials (a password file, an HTTP service) is an [`Authenticator`];
//! the broker asks them in the configured order (see [`AccessControl`](super::AccessControl)).

use std::future::Future;
use std::pin::Pin;

use mqtt_codec::ReasonCode;

use crate::ConnParam;

/// A boxed future, as the access-control traits return (they are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one authenticator says about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthnResult {
    /// The client is who it says it is. A superuser is not subject to authorization.
    Allow {
        /// Whether every authorization check passes for this client.
        superuser: bool,
    },
    /// The client is refused.
    Deny(AuthnDenial),
    /// This authenticator knows nothing of the client (no such user, no username): the next
    /// one decides.
    Ignore,
}

/// Why a client was refused at CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthnDenial {
    /// Wrong password, or a user name no authenticator knows (CONNACK 0x86; 3.1.1: 4).
    BadCredentials,
    /// Credentials are fine, or absent, but the client may not connect: an anonymous client
    /// where anonymous access is off, a service that refuses it (CONNACK 0x87; 3.1.1: 5).
    NotAuthorized,
    /// The authenticator could not decide (its service is unreachable) and fails closed
    /// (CONNACK 0x88 Server unavailable; 3.1.1: 3).
    Unavailable,
}

impl AuthnDenial {
    /// The MQTT 5 reason code the CONNACK carries (mapped onto 3.1.1's return codes when
    /// it is sent).
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Self::BadCredentials => ReasonCode::BadUserNameOrPassword,
            Self::NotAuthorized => ReasonCode::NotAuthorized,
            Self::Unavailable => ReasonCode::ServerUnavailable,
        }
    }
}

/// A source of credentials, asked at CONNECT.
pub trait Authenticator: Send + Sync + 'static {
    /// A short name for logs (`password_file`, `http`).
    fn name(&self) -> &str;

    /// Decides about the client `client`. Slow work (a password hash by design, a network
    /// round trip) must not block the calling task's thread: run it with
    /// `tokio::task::spawn_blocking` or await I/O.
    fn authenticate<'a>(&'a self, client: &'a ConnParam) -> BoxFuture<'a, AuthnResult>;
}
