//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as MQTT 5 enhanced authentication
//! (MQTT 5.0 section 4.12): [`ScramAuth`] is an [`EnhancedAuth`] over a [`CredentialStore`].
//!
//! # The exchange in MQTT packets
//!
//! The Authentication Method is the SASL mechanism name, `SCRAM-SHA-256` or `SCRAM-SHA-512`;
//! the Authentication Data carries the SCRAM messages as they are (UTF-8, no framing).
//!
//! ```text
//! CONNECT  method, data = client-first   n,,n=user,r=<client nonce>
//! AUTH 0x18        data = server-first   r=<client nonce><server nonce>,s=<salt>,i=<iterations>
//! AUTH 0x18        data = client-final   c=biws,r=<both nonces>,p=<ClientProof>
//! CONNACK 0x00     data = server-final   v=<ServerSignature>
//! ```
//!
//! Re-authentication is the same with AUTH 0x19 (Re-authenticate) in place of CONNECT and
//! AUTH 0x00 in place of CONNACK; it must name the method of the CONNECT (else the broker
//! closes with Protocol Error) and prove the same user (else Not authorized).
//!
//! The server nonce is 18 bytes from the operating system's CSPRNG, in base64. The client
//! proof is checked in constant time. Logging in costs a few HMACs and hashes: PBKDF2 runs
//! only when credentials are made ([`ScramCredentials::derive`]), which is why the file
//! keeps StoredKey and ServerKey rather than anything a password check would recompute.
//!
//! # Refusals
//!
//! | what went wrong | CONNACK | DISCONNECT (re-authentication) |
//! | --- | --- | --- |
//! | a method this broker does not serve | 0x8C Bad authentication method | 0x82 Protocol Error (not the CONNECT's method) |
//! | wrong password, or no such user | 0x86 Bad user name or password | 0x87 Not authorized (0x86 is not a DISCONNECT code) |
//! | a malformed SCRAM message, channel binding asked for (`p=`), an authzid other than the user, a reserved `m=` extension, a nonce or `c=` that does not match | 0x87 Not authorized | 0x87 Not authorized |
//! | no random numbers for a nonce (local) | 0x80 Unspecified error | 0x80 Unspecified error |
//!
//! Malformed SCRAM data is 0x87, not 0x82 Protocol Error: the MQTT packets were well formed
//! (Protocol Error is about them), and it is the authentication that failed.
//!
//! An unknown user cannot be told from a wrong password: its server-first carries a salt
//! derived from the user name with a server secret (the same name always gets the same
//! salt) and the iteration count most users have, the proof is checked against made-up keys
//! with the same work as a real check, and the refusal is the same 0x86.
//!
//! # What is not supported
//!
//! Channel binding (the `-PLUS` mechanisms and `p=`; `y` is accepted, as RFC 5802 section 6
//! allows a server without channel binding), an authorization identity other than the user
//! name, and SASLprep: user names and passwords are compared as their UTF-8 bytes, which is
//! SASLprep's result for ASCII, so clients that prepare non-ASCII names differently will
//! not match.
//!
//! # The credentials file
//!
//! One line per user and mechanism; blank lines and lines starting with `#` are skipped;
//! each line is trimmed at both ends:
//!
//! ```text
//! user:$scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey>
//! user:$scram-sha-512$<iterations>$<salt>$<StoredKey>$<ServerKey>
//! ```
//!
//! The salt and keys are standard base64 with padding; the iterations at least
//! [`MIN_ITERATIONS`] (4096, RFC 7677's minimum), enforced on load and on creation. The user
//! name is everything before the last `:` (the credentials hold none), exactly as the client
//! sends it after unescaping (`=2C`, `=3D`). A user may have a line for each mechanism, but
//! only one per mechanism. Any bad line makes the whole file an error naming that line.

mod credentials;
mod mechanism;
mod messages;
mod server;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mqtt_codec::ReasonCode;
use parking_lot::RwLock;

pub use self::credentials::{
    CredentialError, CredentialFileError, CredentialStore, DEFAULT_ITERATIONS, EntryError,
    MIN_ITERATIONS, SALT_LEN, ScramCredentials,
};
pub use self::mechanism::Mechanism;
pub use self::messages::escape_saslname;
use self::server::ScramServer;
use crate::auth::{AuthContext, AuthExchange, EnhancedAuth};

/// Why a SCRAM exchange failed. All but [`ScramError::NoRandomness`] are the client's doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// A message that does not follow RFC 5802's grammar (what is wrong with it).
    Malformed(&'static str),
    /// The client asked for channel binding (`p=`), which this server does not do.
    ChannelBindingNotSupported,
    /// The client asked to act as another identity (an authzid other than its user name).
    AuthzidNotSupported,
    /// A mandatory extension (`m=`), which this version of SCRAM must refuse.
    ExtensionNotSupported,
    /// client-final's `c=` is not the gs2 header of client-first.
    ChannelBindingMismatch,
    /// client-final's nonce is not the one of server-first.
    NonceMismatch,
    /// The proof is wrong: a wrong password, or a user without credentials.
    InvalidProof,
    /// The system's random number generator failed, so no server nonce could be made.
    NoRandomness,
}

impl ScramError {
    /// The reason code the client is refused with (see the module doc).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::InvalidProof => ReasonCode::BadUserNameOrPassword,
            Self::NoRandomness => ReasonCode::UnspecifiedError,
            Self::Malformed(_)
            | Self::ChannelBindingNotSupported
            | Self::AuthzidNotSupported
            | Self::ExtensionNotSupported
            | Self::ChannelBindingMismatch
            | Self::NonceMismatch => ReasonCode::NotAuthorized,
        }
    }
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed SCRAM message: {what}"),
            Self::ChannelBindingNotSupported => f.write_str("channel binding is not supported"),
            Self::AuthzidNotSupported => {
                f.write_str("an authorization identity other than the user is not supported")
            }
            Self::ExtensionNotSupported => f.write_str("mandatory extension (m=) not supported"),
            Self::ChannelBindingMismatch => {
                f.write_str("c= does not match the client-first gs2 header")
            }
            Self::NonceMismatch => f.write_str("the nonce does not match server-first's"),
            Self::InvalidProof => f.write_str("invalid proof"),
            Self::NoRandomness => f.write_str("no random numbers for a server nonce"),
        }
    }
}

impl std::error::Error for ScramError {}

/// SCRAM as the broker's [`EnhancedAuth`]: serves the mechanisms it is given from a
/// credential store that can be swapped whole (reload).
pub struct ScramAuth {
    mechanisms: Vec<Mechanism>,
    store: RwLock<Arc<CredentialStore>>,
    /// Keys the made-up salts and keys of unknown users.
    secret: Arc<[u8; 32]>,
}

impl fmt::Debug for ScramAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramAuth")
            .field("mechanisms", &self.mechanisms)
            .field("credentials", &self.store.read().len())
            .finish_non_exhaustive()
    }
}

impl ScramAuth {
    /// Serves `mechanisms` from `store`. `secret` derives the salts shown for users who do
    /// not exist: it must be secret (or they can be told from real ones) and stable across
    /// restarts (or a user's salt changing while a real one's does not tells the same); see
    /// [`ScramAuth::secret_from`].
    pub fn new(store: CredentialStore, mechanisms: &[Mechanism], secret: [u8; 32]) -> Self {
        let mut mechanisms = mechanisms.to_vec();
        mechanisms.sort();
        mechanisms.dedup();
        Self {
            mechanisms,
            store: RwLock::new(Arc::new(store)),
            secret: Arc::new(secret),
        }
    }

    /// A secret derived from `material` (a hash of it): something as secret and as stable
    /// as the credentials, such as the credentials file's own bytes or a configured key.
    pub fn secret_from(material: &[u8]) -> [u8; 32] {
        let hash = Mechanism::Sha256.hmac(b"nanomq-rs SCRAM unknown-user secret", &[material]);
        let mut secret = [0; 32];
        for (s, h) in secret.iter_mut().zip(hash) {
            *s = h;
        }
        secret
    }

    /// Replaces the credentials. Exchanges already started finish with the old ones.
    pub fn replace(&self, store: CredentialStore) {
        *self.store.write() = Arc::new(store);
    }

    /// The mechanisms served.
    pub fn mechanisms(&self) -> &[Mechanism] {
        &self.mechanisms
    }
}

impl EnhancedAuth for ScramAuth {
    fn start(&self, ctx: &AuthContext<'_>) -> Option<Box<dyn AuthExchange>> {
        let mechanism = Mechanism::from_name(ctx.method)?;
        if !self.mechanisms.contains(&mechanism) {
            return None;
        }
        let store = Arc::clone(&self.store.read());
        Some(Box::new(ScramServer::new(
            mechanism,
            store,
            Arc::clone(&self.secret),
            server_nonce(),
        )))
    }
}

/// A fresh server nonce, or `None` if the system has no randomness to give.
fn server_nonce() -> Option<String> {
    let mut bytes = [0; 18];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Some(B64.encode(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "no random numbers for a SCRAM nonce");
            None
        }
    }
}
