//! `[auth]`: who may connect (anonymous access, Mosquitto's password file, SCRAM, an HTTP
//! service) and what they may do (`[[auth.acl]]` rules, Mosquitto's `acl_file`), with the
//! policies around them: what happens when no rule is about an action, what a denial does to
//! the connection, and the order the sources of credentials are asked in. The files are read
//! when the broker starts (see `access.rs`), so a bad line stops the start with the file and
//! the line named. `[auth.http]` is in `auth_http.rs`, `[[auth.acl]]` in `auth_acl.rs`,
//! `[auth.scram]` in `auth_scram.rs`.

use std::path::PathBuf;

use broker_core::DenyAction;
use broker_core::acl::Rule;
use serde::Deserialize;

use super::Problems;
use super::auth_acl::RawAclRule;
use super::auth_http::{HttpAuthConfig, RawHttpAuth};
use super::auth_scram::{RawScram, ScramConfig};

/// A source of credentials, as `[auth] chain` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthnSource {
    /// `password_file`.
    PasswordFile,
    /// `http`: `[auth.http.authn]`.
    Http,
}

impl AuthnSource {
    fn key(self) -> &'static str {
        match self {
            Self::PasswordFile => "password_file",
            Self::Http => "http",
        }
    }

    /// What configures it, for the message about a chain that names it without.
    fn setting(self) -> &'static str {
        match self {
            Self::PasswordFile => "auth.password_file",
            Self::Http => "[auth.http.authn]",
        }
    }
}

/// The validated `[auth]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthConfig {
    /// Whether clients without credentials may connect (listeners may override it).
    pub(crate) allow_anonymous: bool,
    /// Mosquitto's password file.
    pub(crate) password_file: Option<PathBuf>,
    /// Mosquitto's ACL file.
    pub(crate) acl_file: Option<PathBuf>,
    /// `[[auth.acl]]`, in order (asked before the `acl_file`).
    pub(crate) acl: Vec<Rule>,
    /// Whether an action no rule is about is allowed.
    pub(crate) no_match_allows: bool,
    /// What a denial does to the connection.
    pub(crate) deny_action: DenyAction,
    /// The configured sources of credentials, in the order they are asked.
    pub(crate) chain: Vec<AuthnSource>,
    /// SCRAM enhanced authentication (MQTT 5 AUTH), if `[auth.scram]` is there.
    pub(crate) scram: Option<ScramConfig>,
    /// The HTTP service, if `[auth.http]` is there and enabled.
    pub(crate) http: Option<HttpAuthConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            acl: Vec::new(),
            no_match_allows: true,
            deny_action: DenyAction::Ignore,
            chain: Vec::new(),
            scram: None,
            http: None,
        }
    }
}

/// `[auth]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [auth] table")]
pub(super) struct RawAuth {
    allow_anonymous: bool,
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
    /// `[[auth.acl]]`.
    acl: Vec<RawAclRule>,
    /// Absent: `deny` with an `acl_file` (Mosquitto's rule), `allow` otherwise (NanoMQ's).
    no_match: Option<RawPermit>,
    deny_action: RawDenyAction,
    /// Absent: every configured source, in the order of this table's keys.
    chain: Option<Vec<AuthnSource>>,
    /// `[auth.scram]`.
    scram: Option<RawScram>,
    /// `[auth.http]`.
    http: Option<RawHttpAuth>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            acl: Vec::new(),
            no_match: None,
            deny_action: RawDenyAction::Ignore,
            chain: None,
            scram: None,
            http: None,
        }
    }
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawPermit {
    Allow,
    Deny,
}

/// `auth.deny_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawDenyAction {
    Ignore,
    Disconnect,
}

impl RawAuth {
    /// The access-control settings; problems for empty paths and a chain that names a
    /// source twice or one that is not configured.
    pub(super) fn validate(self, problems: &mut Problems) -> AuthConfig {
        let path = |problems: &mut Problems, key: &str, path: Option<PathBuf>| {
            let path = path?;
            if path.as_os_str().is_empty() {
                problems.add(key, "must not be empty (leave the key out for none)");
                return None;
            }
            Some(path)
        };
        let password_file = path(problems, "auth.password_file", self.password_file);
        let acl_file = path(problems, "auth.acl_file", self.acl_file);
        let http = self.http.and_then(|http| http.validate(problems));
        let configured = |source: AuthnSource| match source {
            AuthnSource::PasswordFile => password_file.is_some(),
            AuthnSource::Http => http.as_ref().is_some_and(|h| h.authn.is_some()),
        };
        let chain = match self.chain {
            None => [AuthnSource::PasswordFile, AuthnSource::Http]
                .into_iter()
                .filter(|s| configured(*s))
                .collect(),
            Some(chain) => {
                for (i, source) in chain.iter().enumerate() {
                    if chain.get(..i).is_some_and(|before| before.contains(source)) {
                        problems.add("auth.chain", format!("names \"{}\" twice", source.key()));
                    } else if !configured(*source) {
                        problems.add(
                            "auth.chain",
                            format!(
                                "names \"{}\", which is not configured (set {})",
                                source.key(),
                                source.setting()
                            ),
                        );
                    }
                }
                chain
            }
        };
        let no_match = self.no_match.unwrap_or(if acl_file.is_some() {
            RawPermit::Deny
        } else {
            RawPermit::Allow
        });
        let scram = self.scram.as_ref().and_then(|s| s.validate(problems));
        let acl = super::auth_acl::validate(self.acl, problems);
        AuthConfig {
            allow_anonymous: self.allow_anonymous,
            password_file,
            acl_file,
            acl,
            no_match_allows: no_match == RawPermit::Allow,
            deny_action: match self.deny_action {
                RawDenyAction::Ignore => DenyAction::Ignore,
                RawDenyAction::Disconnect => DenyAction::Disconnect,
            },
            chain,
            scram,
            http,
        }
    }
}
