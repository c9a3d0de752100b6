//! The password file as an [`Authenticator`]: a client's user name and password are checked
//! against Mosquitto's hashes. The hash functions are slow by design (PBKDF2, Argon2), so a
//! check runs on tokio's blocking pool, never on an async worker, and at most one per CPU at
//! a time: a storm of CONNECTs queues for the hashers instead of stalling routing or taking
//! every core (an Argon2 check also takes tens of MiB while it runs).

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::authn::{Authenticator, AuthnDenial, AuthnResult, BoxFuture};
use super::password_file::{PasswordCheck, PasswordFile};
use crate::ConnParam;

/// Authenticates clients by a [`PasswordFile`]. A user the file does not know is left to
/// the next authenticator (and refused if none knows it).
#[derive(Debug)]
pub struct PasswordFileAuthenticator {
    file: Arc<PasswordFile>,
    hashers: Arc<Semaphore>,
}

impl PasswordFileAuthenticator {
    /// Checks passwords against `file`, as many at once as the machine has CPUs.
    pub fn new(file: PasswordFile) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            file: Arc::new(file),
            hashers: Arc::new(Semaphore::new(cpus)),
        }
    }
}

impl Authenticator for PasswordFileAuthenticator {
    fn name(&self) -> &str {
        "password_file"
    }

    fn authenticate<'a>(&'a self, client: &'a ConnParam) -> BoxFuture<'a, AuthnResult> {
        Box::pin(async move {
            let Some(username) = client.username.as_deref() else {
                return AuthnResult::Ignore;
            };
            let username = username.to_owned();
            let password = client.password().cloned().unwrap_or_default();
            let Ok(permit) = Arc::clone(&self.hashers).acquire_owned().await else {
                return AuthnResult::Deny(AuthnDenial::Unavailable);
            };
            let file = Arc::clone(&self.file);
            let checked = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                file.check(&username, &password)
            })
            .await;
            match checked {
                Ok(PasswordCheck::Match) => AuthnResult::Allow { superuser: false },
                Ok(PasswordCheck::Mismatch) => AuthnResult::Deny(AuthnDenial::BadCredentials),
                Ok(PasswordCheck::UnknownUser) => AuthnResult::Ignore,
                // The hashing task panicked or the runtime is going away: fail closed.
                Err(_) => AuthnResult::Deny(AuthnDenial::Unavailable),
            }
        })
    }
}
