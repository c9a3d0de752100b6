//! `[auth.http]`: authentication and authorization by an HTTP service (NanoMQ's
//! `http_auth`, EMQX's HTTP authenticator and authorizer): the client (timeouts, pool, what
//! an unreachable service means, how long answers are kept) and the two requests,
//! `[auth.http.authn]` at CONNECT and `[auth.http.acl]` at PUBLISH and SUBSCRIBE, each
//! `url`, `method`, `headers` and `params` with placeholders. The requests are compiled here,
//! so a bad placeholder or URL stops the start with its key named.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use crate::auth_http::{HttpMethod, RequestSpec, Scope};
use crate::units::HumanDuration;

/// What a check does when the service gives no answer (unreachable, too slow, 5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnError {
    /// Fail closed: CONNACK 0x88 Server unavailable (3.1.1: 3), a denied PUBLISH or
    /// SUBSCRIBE.
    Deny,
    /// As if the service had answered "ignore": the next source decides.
    Ignore,
}

/// The validated `[auth.http]` table (of a configuration where it is enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpAuthConfig {
    /// The bound on one request, answer included.
    pub(crate) timeout: Duration,
    /// The bound on opening a connection to the service.
    pub(crate) connect_timeout: Duration,
    /// What a check does without an answer.
    pub(crate) on_error: OnError,
    /// How long an answer is kept; zero keeps none.
    pub(crate) cache_ttl: Duration,
    /// The most answers kept, for authentication and for ACL each.
    pub(crate) cache_max_entries: usize,
    /// Requests at once (connections to the service), and idle connections kept.
    pub(crate) pool_size: usize,
    /// The certificate authorities trusted for https (else the system's bundle).
    pub(crate) cacertfile: Option<PathBuf>,
    /// The request at CONNECT.
    pub(crate) authn: Option<RequestSpec>,
    /// The request at PUBLISH and SUBSCRIBE.
    pub(crate) acl: Option<RequestSpec>,
}

/// `[auth.http]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [auth.http] table")]
pub(super) struct RawHttpAuth {
    enabled: bool,
    timeout: HumanDuration,
    /// Absent: `timeout`.
    connect_timeout: Option<HumanDuration>,
    on_error: OnError,
    cache_ttl: HumanDuration,
    cache_max_entries: i64,
    pool_size: i64,
    cacertfile: Option<PathBuf>,
    authn: Option<RawRequest>,
    acl: Option<RawRequest>,
}

impl Default for RawHttpAuth {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: HumanDuration(Duration::from_secs(5)),
            connect_timeout: None,
            on_error: OnError::Deny,
            cache_ttl: HumanDuration(Duration::from_secs(60)),
            cache_max_entries: 100_000,
            pool_size: 32,
            cacertfile: None,
            authn: None,
            acl: None,
        }
    }
}

/// `[auth.http.authn]` or `[auth.http.acl]` as written.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a request table: url, method, headers, params"
)]
struct RawRequest {
    url: String,
    #[serde(default = "post")]
    method: RawMethod,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

fn post() -> RawMethod {
    RawMethod::Post
}

/// `method`: `get` or `post`, in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum RawMethod {
    #[serde(alias = "GET")]
    #[serde(rename = "get")]
    Get,
    #[serde(alias = "POST")]
    #[serde(rename = "post")]
    Post,
}

impl RawRequest {
    fn validate(self, key: &str, scope: Scope, problems: &mut Problems) -> Option<RequestSpec> {
        let method = match self.method {
            RawMethod::Get => HttpMethod::Get,
            RawMethod::Post => HttpMethod::Post,
        };
        match RequestSpec::compile(&self.url, method, &self.headers, &self.params, scope) {
            Ok(spec) => {
                if spec.is_https() && !cfg!(feature = "tls") {
                    problems.add(
                        &format!("{key}.url"),
                        "https needs a nanomq built with the `tls` feature",
                    );
                }
                Some(spec)
            }
            Err(found) => {
                for problem in found {
                    problems.add(&format!("{key}.{}", problem.key), problem.message);
                }
                None
            }
        }
    }
}

impl RawHttpAuth {
    /// The callout's settings if it is enabled; a problem for every bad value, and for an
    /// enabled table with neither request.
    pub(super) fn validate(self, problems: &mut Problems) -> Option<HttpAuthConfig> {
        let timeout = problems.positive("auth.http.timeout", self.timeout.0);
        let connect_timeout = match self.connect_timeout {
            Some(d) => problems.positive("auth.http.connect_timeout", d.0),
            None => timeout,
        };
        let cache_max_entries = problems
            .in_range(
                "auth.http.cache_max_entries",
                self.cache_max_entries,
                0,
                10_000_000,
            )
            .unwrap_or(0);
        let pool_size = problems
            .in_range("auth.http.pool_size", self.pool_size, 1, 1024)
            .unwrap_or(1);
        if let Some(path) = &self.cacertfile
            && path.as_os_str().is_empty()
        {
            problems.add(
                "auth.http.cacertfile",
                "must not be empty (leave the key out for the system's certificates)",
            );
        }
        let has_request = self.authn.is_some() || self.acl.is_some();
        let authn = self
            .authn
            .and_then(|r| r.validate("auth.http.authn", Scope::Authn, problems));
        let acl = self
            .acl
            .and_then(|r| r.validate("auth.http.acl", Scope::Acl, problems));
        if !self.enabled {
            return None;
        }
        if !has_request {
            problems.add(
                "auth.http",
                "is enabled but has neither [auth.http.authn] nor [auth.http.acl]",
            );
        }
        Some(HttpAuthConfig {
            timeout,
            connect_timeout,
            on_error: self.on_error,
            cache_ttl: self.cache_ttl.0,
            cache_max_entries,
            pool_size,
            cacertfile: self.cacertfile,
            authn,
            acl,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::super::{AuthnSource, DEFAULT_CONFIG, parse};
    use super::*;

    fn config(auth: &str) -> String {
        format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n{auth}")
    }

    /// The problems of a refused configuration, as displayed.
    fn refused(auth: &str) -> String {
        match parse(&config(auth)) {
            Ok(config) => panic!("accepted:\n{auth}\n=> {:?}", config.auth),
            Err(error) => error.to_string(),
        }
    }

    #[track_caller]
    fn assert_refused(auth: &str, key: &str, words: &str) {
        let message = refused(auth);
        assert!(
            message.contains(&format!("{key}: ")) && message.contains(words),
            "expected `{key}` and \"{words}\" for\n{auth}\ngot: {message}"
        );
    }

    const FULL: &str = r#"
[auth]
password_file = "etc/passwd"

[auth.http]
timeout = "2s"
connect_timeout = "500ms"
on_error = "ignore"
cache_ttl = "30s"
cache_max_entries = 10
pool_size = 4

[auth.http.authn]
url = "http://127.0.0.1:9000/mqtt/auth"
method = "POST"
headers = { "content-type" = "application/x-www-form-urlencoded", "x-api-key" = "k" }
params = { clientid = "%c", username = "${username}", password = "%P" }

[auth.http.acl]
url = "http://127.0.0.1:9000/mqtt/acl/${clientid}"
method = "get"
params = { access = "%A", topic = "${topic}" }
"#;

    /// The example file's `[auth.http]` section, uncommented: it documents every key and
    /// parses.
    #[test]
    fn the_example_file_documents_a_working_table() {
        let start = DEFAULT_CONFIG
            .find("# [auth.http]\n")
            .expect("etc/nanomq.toml documents [auth.http]");
        let section: String = DEFAULT_CONFIG[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .filter(|line| !line.starts_with("# #") && *line != "#")
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        for key in [
            "enabled =",
            "timeout =",
            "connect_timeout =",
            "on_error =",
            "cache_ttl =",
            "cache_max_entries =",
            "pool_size =",
            "cacertfile =",
            "[auth.http.authn]",
            "[auth.http.acl]",
            "url =",
            "method =",
            "headers =",
            "params =",
        ] {
            assert!(section.contains(key), "the example does not document {key}");
        }
        let http = parse(&config(&section)).unwrap().auth.http.unwrap();
        assert_eq!(http.timeout, Duration::from_secs(5));
        assert_eq!(http.on_error, OnError::Deny);
        assert!(http.authn.is_some() && http.acl.is_some());
    }

    #[test]
    fn a_full_table_parses() {
        let auth = parse(&config(FULL)).unwrap().auth;
        let http = auth.http.unwrap();
        assert_eq!(http.timeout, Duration::from_secs(2));
        assert_eq!(http.connect_timeout, Duration::from_millis(500));
        assert_eq!(http.on_error, OnError::Ignore);
        assert_eq!(http.cache_ttl, Duration::from_secs(30));
        assert_eq!((http.cache_max_entries, http.pool_size), (10, 4));
        assert!(http.authn.is_some() && http.acl.is_some());
        // No chain: every configured source, the password file first.
        assert_eq!(auth.chain, [AuthnSource::PasswordFile, AuthnSource::Http]);
    }

    #[test]
    fn defaults_and_the_chain() {
        let only_acl = "[auth.http.acl]\nurl = \"http://h/acl\"\n";
        let auth = parse(&config(only_acl)).unwrap().auth;
        let http = auth.http.unwrap();
        assert_eq!(http.timeout, Duration::from_secs(5));
        assert_eq!(http.connect_timeout, http.timeout);
        assert_eq!(http.on_error, OnError::Deny);
        assert_eq!(http.cache_ttl, Duration::from_secs(60));
        assert!(http.authn.is_none());
        // An ACL service alone authenticates no one.
        assert!(auth.chain.is_empty());

        let ordered = format!(
            "{}chain = [\"http\", \"password_file\"]\n{}",
            "[auth]\npassword_file = \"p\"\n", "[auth.http.authn]\nurl = \"http://h/auth\"\n"
        );
        assert_eq!(
            parse(&config(&ordered)).unwrap().auth.chain,
            [AuthnSource::Http, AuthnSource::PasswordFile]
        );

        let off = "[auth.http]\nenabled = false\n[auth.http.authn]\nurl = \"http://h/\"\n";
        let auth = parse(&config(off)).unwrap().auth;
        assert_eq!((auth.http, auth.chain), (None, Vec::new()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let authn = "[auth.http.authn]\nurl = \"http://h/\"\n";
        assert_refused(
            "[auth]\nchain = [\"http\"]\n[auth.http.acl]\nurl = \"http://h/\"\n",
            "auth.chain",
            "[auth.http.authn]",
        );
        assert_refused(
            &format!("[auth.http]\ntimeout = \"0s\"\n{authn}"),
            "auth.http.timeout",
            "greater than zero",
        );
        assert_refused(
            &format!("[auth.http]\ntimeout = \"soon\"\n{authn}"),
            "auth.http.timeout",
            "invalid duration",
        );
        assert_refused(
            &format!("[auth.http]\non_error = \"allow\"\n{authn}"),
            "auth.http.on_error",
            "unknown variant",
        );
        assert_refused(
            &format!("[auth.http]\npool_size = 0\n{authn}"),
            "auth.http.pool_size",
            "between 1 and 1024",
        );
        assert_refused(
            &format!("[auth.http]\nurl = \"http://h/\"\n{authn}"),
            "auth.http.url",
            "unknown field `url`",
        );
        assert_refused("[auth.http]\ntimeout = \"1s\"\n", "auth.http", "neither");
        assert_refused(
            "[auth.http.authn]\nurl = \"tcp://h/\"\n",
            "auth.http.authn.url",
            "http://",
        );
        assert_refused(
            "[auth.http.authn]\nurl = \"http://h/\"\nmethod = \"put\"\n",
            "auth.http.authn.method",
            "unknown variant",
        );
        assert_refused(
            "[auth.http.authn]\nurl = \"http://h/\"\nparams = { t = \"${topic}\" }\n",
            "auth.http.authn.params.t",
            "only known in [auth.http.acl]",
        );
        assert_refused(
            "[auth.http.acl]\nurl = \"http://h/\"\nparams = { u = \"${user}\" }\n",
            "auth.http.acl.params.u",
            "unknown placeholder ${user}",
        );
        assert_refused(
            "[auth.http.acl]\nurl = \"http://h/\"\nheaders = { \"content-type\" = \"text/xml\" }\n",
            "auth.http.acl.headers.content-type",
            "application/json",
        );
        assert_refused(
            "[auth.http.acl]\nmethod = \"get\"\n",
            "auth.http.acl",
            "missing field `url`",
        );
    }
}
