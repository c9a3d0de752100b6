//! The broker's access control, built from `[auth]` and the listeners' `allow_anonymous`
//! once the listeners are bound (an override is found by the address a listener got). The
//! files it names are read here: a bad one stops the start with the file and its line.
//! The HTTP service (`[auth.http]`) is asked where `[auth] chain` puts "http" for
//! authentication, and after the local rules for authorization (they answer at once; the
//! service is asked only about what they leave open).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use broker_core::acl::{Acl, AclAuthorizer, MosquittoAcl, Permit};
use broker_core::{AccessControl, PasswordFile, PasswordFileAuthenticator};

use crate::auth_http::HttpAuth;
use crate::config::{AuthnSource, Config};

/// The access control `config` asks for, for listeners bound at `bound` (in the order of
/// `config.listeners`).
pub(crate) fn build(config: &Config, bound: &[SocketAddr]) -> Result<AccessControl> {
    let auth = &config.auth;
    let mut access = AccessControl::default()
        .allow_anonymous(auth.allow_anonymous)
        .no_match_allows(auth.no_match_allows)
        .deny_action(auth.deny_action);
    let http = auth.http.as_ref().map(HttpAuth::new).transpose()?;
    for source in &auth.chain {
        match source {
            AuthnSource::PasswordFile => {
                let Some(path) = &auth.password_file else {
                    continue;
                };
                let file =
                    PasswordFile::load(path).map_err(|e| anyhow!("auth.password_file: {e}"))?;
                tracing::info!(file = %path.display(), users = file.len(), "password file loaded");
                access = access.authenticator(Arc::new(PasswordFileAuthenticator::new(file)));
            }
            AuthnSource::Http => {
                if let Some(authenticator) = http.as_ref().and_then(|h| h.authenticator.clone()) {
                    access = access.authenticator(authenticator);
                }
            }
        }
    }
    // The local rules first: they answer at once, the service only about what they leave.
    if let Some(acl) = rules(config)? {
        access = access.authorizer(Arc::new(AclAuthorizer::new(acl)));
    }
    if let Some(authorizer) = http.and_then(|h| h.authorizer) {
        access = access.authorizer(authorizer);
    }
    for (listener, addr) in config.listeners.iter().zip(bound) {
        if let Some(allow) = listener.allow_anonymous {
            access = access.listener_allow_anonymous(*addr, allow);
        }
    }
    warn_if_open(&access, bound);
    Ok(access)
}

/// The `[[auth.acl]]` rules and the `acl_file`, compiled; `None` if there are neither.
fn rules(config: &Config) -> Result<Option<Acl>> {
    let auth = &config.auth;
    let file = match &auth.acl_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow!("auth.acl_file: cannot read {}: {e}", path.display()))?;
            let file = MosquittoAcl::parse(&text)
                .map_err(|e| anyhow!("auth.acl_file: {}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "ACL file loaded");
            Some(file)
        }
    };
    if auth.acl.is_empty() && file.is_none() {
        return Ok(None);
    }
    let no_match = if auth.no_match_allows {
        Permit::Allow
    } else {
        Permit::Deny
    };
    let acl = Acl::new(&auth.acl, file.as_ref(), no_match);
    tracing::info!(rules = acl.len(), no_match = ?no_match, "authorization rules compiled");
    Ok(Some(acl))
}

/// Says so at start when a listener reachable from other machines lets anyone in.
fn warn_if_open(access: &AccessControl, bound: &[SocketAddr]) {
    for addr in open_to_strangers(access, bound) {
        tracing::warn!(
            listener = %addr,
            "anyone who can reach this listener can connect: anonymous access is allowed \
             and no authentication is configured (set [auth] allow_anonymous = false and \
             password_file, or bind to 127.0.0.1)"
        );
    }
}

/// The listeners of `bound` that are not on a loopback address and let anyone in: anonymous
/// access allowed there, and no authenticator configured.
fn open_to_strangers(access: &AccessControl, bound: &[SocketAddr]) -> Vec<SocketAddr> {
    if access.has_authenticators() {
        return Vec::new();
    }
    bound
        .iter()
        .filter(|addr| !addr.ip().is_loopback() && access.anonymous_allowed(Some(**addr)))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use broker_core::{PasswordFile, PasswordFileAuthenticator};

    use super::*;

    #[test]
    fn only_a_listener_beyond_loopback_that_lets_anyone_in_is_reported() {
        let public: SocketAddr = "0.0.0.0:1883".parse().unwrap();
        let v6: SocketAddr = "[::]:1883".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        let closed: SocketAddr = "192.0.2.1:1883".parse().unwrap();
        let bound = [public, v6, local, closed];
        let access = AccessControl::default().listener_allow_anonymous(closed, false);
        assert_eq!(open_to_strangers(&access, &bound), [public, v6]);
        let nobody = AccessControl::default().allow_anonymous(false);
        assert!(open_to_strangers(&nobody, &bound).is_empty());
        let file = PasswordFile::parse("").unwrap();
        let checked =
            AccessControl::default().authenticator(Arc::new(PasswordFileAuthenticator::new(file)));
        assert!(open_to_strangers(&checked, &bound).is_empty());
    }
}
