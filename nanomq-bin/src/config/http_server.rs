//! `[http_server]`: the admin HTTP API (NanoMQ's v4 paths), its address and who may use it:
//! Basic authentication with `username` and `password` (or `password_hash`, in the password
//! file's formats), and bearer `api_keys`. An API reachable beyond loopback without any
//! credential is refused: there is no default password that works.

use std::net::SocketAddr;

use broker_core::PasswordHash;
use serde::Deserialize;

use super::Problems;

/// The shortest API key accepted: guessing one must cost more than a password's brute force.
const MIN_API_KEY_LEN: usize = 16;

/// The validated `[http_server]`, when the API is enabled. (A build without the `http-api`
/// feature reads it only to refuse it.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "http-api"), allow(dead_code))]
pub(crate) struct HttpServerConfig {
    /// Where it listens.
    pub(crate) bind: SocketAddr,
    /// Basic authentication: the user name and what its password must match.
    pub(crate) basic: Option<(String, Secret)>,
    /// Bearer keys.
    pub(crate) api_keys: Vec<String>,
}

impl HttpServerConfig {
    /// Whether any credential is configured (without one, the API answers anyone: loopback
    /// only).
    pub(crate) fn has_credentials(&self) -> bool {
        self.basic.is_some() || !self.api_keys.is_empty()
    }
}

/// The password of Basic authentication, as the configuration gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "http-api"), allow(dead_code))]
pub(crate) enum Secret {
    /// `password`: compared in constant time.
    Plain(String),
    /// `password_hash`: verified as the password file's hashes are.
    Hash(Box<PasswordHash>),
}

#[cfg_attr(not(feature = "http-api"), allow(dead_code))]
impl Secret {
    /// Whether `password` matches.
    pub(crate) fn matches(&self, password: &[u8]) -> bool {
        match self {
            Self::Plain(expected) => constant_time_eq(expected.as_bytes(), password),
            Self::Hash(hash) => hash.verify(password),
        }
    }
}

/// Byte strings compared without a shortcut at the first difference (the length shows).
#[cfg_attr(not(feature = "http-api"), allow(dead_code))]
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `[http_server]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [http_server] table")]
pub(super) struct RawHttpServer {
    enabled: bool,
    bind: String,
    username: Option<String>,
    password: Option<String>,
    password_hash: Option<String>,
    api_keys: Vec<String>,
}

impl Default for RawHttpServer {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: "0.0.0.0:8081".to_owned(),
            username: None,
            password: None,
            password_hash: None,
            api_keys: Vec::new(),
        }
    }
}

impl RawHttpServer {
    /// The API's settings, if it is enabled; a problem for each thing wrong.
    pub(super) fn validate(self, problems: &mut Problems) -> Option<HttpServerConfig> {
        let before = problems.0.len();
        let bind = match self.bind.parse::<SocketAddr>() {
            Ok(bind) => Some(bind),
            Err(e) => {
                problems.add(
                    "http_server.bind",
                    format!("\"{}\" is not an address and port: {e}", self.bind),
                );
                None
            }
        };
        let hash = match (&self.password, &self.password_hash) {
            (Some(_), Some(_)) => {
                problems.add(
                    "http_server.password_hash",
                    "give password or password_hash, not both",
                );
                None
            }
            (Some(password), None) if password.is_empty() => {
                problems.add("http_server.password", "must not be empty");
                None
            }
            (Some(password), None) => Some(Secret::Plain(password.clone())),
            (None, Some(text)) => PasswordHash::parse(text)
                .map(|hash| Secret::Hash(Box::new(hash)))
                .map_err(|e| problems.add("http_server.password_hash", e.to_string()))
                .ok(),
            (None, None) => None,
        };
        let basic = match (self.username, hash) {
            (Some(user), Some(hash)) if !user.is_empty() => Some((user, hash)),
            (Some(_), Some(_)) => {
                problems.add("http_server.username", "must not be empty");
                None
            }
            (Some(_), None) if problems.0.len() == before => {
                problems.add(
                    "http_server.password",
                    "username needs a password or password_hash",
                );
                None
            }
            (None, Some(_)) => {
                problems.add("http_server.username", "a password needs a username");
                None
            }
            _ => None,
        };
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.len() < MIN_API_KEY_LEN || key.chars().any(char::is_whitespace) {
                problems.add(
                    &format!("http_server.api_keys[{i}]"),
                    format!("must be at least {MIN_API_KEY_LEN} characters, without spaces"),
                );
            }
        }
        let config = HttpServerConfig {
            bind: bind?,
            basic,
            api_keys: self.api_keys,
        };
        if self.enabled && !config.bind.ip().is_loopback() && !config.has_credentials() {
            problems.add(
                "http_server",
                format!(
                    "the API on {} (beyond loopback) needs credentials: username and password \
                     (or password_hash), or api_keys",
                    config.bind
                ),
            );
        }
        (self.enabled && problems.0.len() == before).then_some(config)
    }
}
