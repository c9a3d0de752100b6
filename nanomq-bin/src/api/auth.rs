//! Who may use the API: HTTP Basic with `[http_server]`'s user name and password (or hash),
//! or a bearer API key. Anything else is 401 with `WWW-Authenticate` and nothing more. An API
//! without credentials (possible only on loopback, see the configuration) answers anyone.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::reply::{ApiError, ResultCode};
use crate::config::HttpServerConfig;

/// The middleware: passes an authorized request on, answers 401 to the rest.
pub(super) async fn require(
    State(config): State<Arc<HttpServerConfig>>,
    request: Request,
    next: Next,
) -> Response {
    if !config.has_credentials() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match header.map(|h| authorized(&config, h)) {
        Some(true) => next.run(request).await,
        Some(false) => ApiError::unauthorized(ResultCode::WrongUsernameOrPassword).into_response(),
        None => ApiError::unauthorized(ResultCode::EmptyUsernameOrPassword).into_response(),
    }
}

/// Whether an `Authorization` header's value carries a credential the configuration knows.
fn authorized(config: &HttpServerConfig, header: &str) -> bool {
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        // Every key is compared, so the time taken does not say which one nearly matched.
        return config.api_keys.iter().fold(false, |found, key| {
            same(key.as_bytes(), value.as_bytes()) | found
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Some((user, secret)) = &config.basic else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, password) = decoded.split_at(colon);
    let password = password.get(1..).unwrap_or_default();
    // The password is checked even for a wrong user name: the answer takes as long.
    let password_ok = secret.matches(password);
    same(name, user.as_bytes()) && password_ok
}

/// Byte strings compared without a shortcut at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Secret;

    fn config() -> HttpServerConfig {
        HttpServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            basic: Some(("admin".to_owned(), Secret::Plain("s3cret".to_owned()))),
            api_keys: vec!["0123456789abcdef-key".to_owned()],
        }
    }

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    #[test]
    fn basic_and_bearer_credentials_are_checked() {
        let c = config();
        assert!(authorized(&c, &basic("admin", "s3cret")));
        assert!(!authorized(&c, &basic("admin", "s3cre")));
        assert!(!authorized(&c, &basic("root", "s3cret")));
        assert!(authorized(&c, "Bearer 0123456789abcdef-key"));
        assert!(authorized(&c, "bearer  0123456789abcdef-key "));
        assert!(!authorized(&c, "Bearer 0123456789abcdef-ke"));
        assert!(!authorized(&c, "Basic !!!not-base64"));
        assert!(!authorized(&c, "Basic YWRtaW4="), "no colon");
        assert!(!authorized(&c, "Digest x"));
        assert!(!authorized(&c, ""));
    }
}
