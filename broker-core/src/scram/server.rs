//! The server side of one SCRAM exchange (RFC 5802 section 5), as an [`AuthExchange`]:
//! client-first -> server-first (Continue), client-final -> server-final (Success) or a
//! refusal. Sans-IO: the server nonce comes in from outside, so RFC 7677's exchange can be
//! replayed byte for byte.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::credentials::{CredentialStore, ScramCredentials};
use super::messages::{parse_client_final, parse_client_first};
use super::{Mechanism, ScramError};
use crate::auth::{AuthExchange, AuthStep};

/// One SCRAM authentication in progress.
pub(super) struct ScramServer {
    mechanism: Mechanism,
    store: Arc<CredentialStore>,
    secret: Arc<[u8; 32]>,
    /// Our half of the nonce; `None` if the system could not make one (the exchange then
    /// fails at once: a guessable nonce would allow replay).
    server_nonce: Option<String>,
    state: State,
}

enum State {
    /// Waiting for client-first.
    Start,
    /// server-first sent, waiting for client-final.
    Challenged(Box<Challenge>),
    /// Succeeded or failed: nothing more to do.
    Done,
}

/// What the exchange remembers between server-first and client-final.
struct Challenge {
    username: String,
    /// Whether the user has credentials; if not, `credentials` are made up and the proof
    /// is checked against them all the same.
    known: bool,
    credentials: ScramCredentials,
    gs2_header: String,
    /// The client's nonce and ours.
    nonce: String,
    /// `client-first-message-bare "," server-first-message ","`.
    auth_message_start: String,
}

impl ScramServer {
    pub(super) fn new(
        mechanism: Mechanism,
        store: Arc<CredentialStore>,
        secret: Arc<[u8; 32]>,
        server_nonce: Option<String>,
    ) -> Self {
        Self {
            mechanism,
            store,
            secret,
            server_nonce,
            state: State::Start,
        }
    }

    fn client_first(&self, data: Option<&Bytes>) -> Result<(Challenge, Bytes), ScramError> {
        let server_nonce = self
            .server_nonce
            .as_deref()
            .ok_or(ScramError::NoRandomness)?;
        let message = text(data)?;
        let first = parse_client_first(message)?;
        // Made up for every user, known or not, so that both cost the same.
        let (iterations, salt_len) = self.store.common_shape(self.mechanism);
        let fake = fake_credentials(
            &self.secret,
            self.mechanism,
            &first.username,
            iterations,
            salt_len,
        );
        let (known, credentials) = match self.store.get(self.mechanism, &first.username) {
            Some(real) => (true, real.clone()),
            None => (false, fake),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credentials.salt),
            credentials.iterations
        );
        let auth_message_start = format!("{},{server_first},", first.bare);
        let challenge = Challenge {
            username: first.username,
            known,
            credentials,
            gs2_header: first.gs2_header.to_owned(),
            nonce,
            auth_message_start,
        };
        Ok((challenge, Bytes::from(server_first)))
    }

    fn client_final(
        &self,
        challenge: &Challenge,
        data: Option<&Bytes>,
    ) -> Result<Bytes, ScramError> {
        let message = text(data)?;
        let last = parse_client_final(message)?;
        if last.channel_binding != challenge.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if last.nonce != challenge.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let m = self.mechanism;
        let c = &challenge.credentials;
        let auth_message = [
            challenge.auth_message_start.as_bytes(),
            last.without_proof.as_bytes(),
        ];
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must be
        // StoredKey. A proof of the wrong length gives a ClientKey that matches nothing;
        // the work is the same.
        let signature = m.hmac(&c.stored_key, &auth_message);
        let client_key: Vec<u8> = signature
            .iter()
            .zip(last.proof.iter().chain(std::iter::repeat(&0)))
            .map(|(s, p)| s ^ p)
            .collect();
        let matches = m.hash(&client_key).ct_eq(&c.stored_key)
            & u8::from(last.proof.len() == m.hash_len()).ct_eq(&1)
            & u8::from(challenge.known).ct_eq(&1);
        let server_signature = m.hmac(&c.server_key, &auth_message);
        if bool::from(matches) {
            Ok(Bytes::from(format!("v={}", B64.encode(server_signature))))
        } else {
            Err(ScramError::InvalidProof)
        }
    }
}

impl AuthExchange for ScramServer {
    fn step(&mut self, data: Option<&Bytes>) -> AuthStep {
        let mut user = None;
        let outcome = match std::mem::replace(&mut self.state, State::Done) {
            State::Start => self.client_first(data).map(|(challenge, server_first)| {
                self.state = State::Challenged(Box::new(challenge));
                AuthStep::Continue(server_first)
            }),
            State::Challenged(challenge) => {
                let outcome = self.client_final(&challenge, data);
                user = Some(challenge.username);
                outcome.map(|server_final| AuthStep::Success {
                    data: Some(server_final),
                    identity: user.as_deref().map(Into::into),
                })
            }
            State::Done => Err(ScramError::Malformed("the exchange is over")),
        };
        outcome.unwrap_or_else(|e| {
            tracing::debug!(mechanism = %self.mechanism, user, error = %e, "SCRAM authentication failed");
            AuthStep::Fail(e.reason_code())
        })
    }
}

/// The client's data as text (SCRAM messages are UTF-8).
fn text(data: Option<&Bytes>) -> Result<&str, ScramError> {
    let data = data.ok_or(ScramError::Malformed("no authentication data"))?;
    std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))
}

/// Credentials for a user who has none: derived from the user name with the server's
/// secret, so that the same name always gets the same salt (a fresh one each time would
/// tell that the user does not exist), and unguessable without the secret.
fn fake_credentials(
    secret: &[u8; 32],
    mechanism: Mechanism,
    username: &str,
    iterations: u32,
    salt_len: usize,
) -> ScramCredentials {
    let part = |label: &[u8], counter: u8| {
        mechanism.hmac(
            secret,
            &[
                label,
                &[counter],
                mechanism.name().as_bytes(),
                b"\0",
                username.as_bytes(),
            ],
        )
    };
    let mut salt = Vec::with_capacity(salt_len);
    let mut counter = 0u8;
    while salt.len() < salt_len {
        salt.extend(part(b"salt", counter));
        counter = counter.wrapping_add(1);
    }
    salt.truncate(salt_len);
    ScramCredentials {
        mechanism,
        iterations,
        salt,
        stored_key: part(b"stored-key", 0),
        server_key: part(b"server-key", 0),
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
