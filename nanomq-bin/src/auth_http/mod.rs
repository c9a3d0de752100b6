//! Authentication and authorization by an HTTP service (`[auth.http]`), as NanoMQ's
//! `http_auth` and EMQX's HTTP authenticator and authorizer do: at CONNECT the broker sends
//! `[auth.http.authn]`'s request with the client's credentials, at each PUBLISH and
//! SUBSCRIBE filter `[auth.http.acl]`'s with the action and topic, and the answer's status
//! (or EMQX's JSON) decides. broker-core knows only its `Authenticator` and `Authorizer`
//! traits; the HTTP lives here.
//!
//! - `template`: strings with placeholders, rendered with a client's values.
//! - `request`: the request for one check, built from its templates.
//! - `answer`: what a status and a body mean.
//! - `client`: the pooled HTTP client, its timeout and bounds.
//! - `cache`: answers kept for `cache_ttl`, keyed without the password.
//!
//! An ACL check that misses the cache is answered `Pending`: the connection waits for that
//! packet only and keeps running (see broker-core's `connection/driver/authorize.rs`).
//! When the service gives no answer, `on_error` decides: `deny` fails closed (CONNACK 0x88,
//! a denied PUBLISH or SUBSCRIBE), `ignore` passes to the next source.

mod answer;
mod cache;
mod client;
mod request;
mod template;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use broker_core::{
    AclCheck, AclResult, Action, Authenticator, AuthnDenial, AuthnResult, Authorizer, BoxFuture,
    ClientAuthorizer, ConnParam,
};

use self::answer::{AnswerError, Verdict};
use self::cache::{Key, Keyer, TtlCache};
use self::client::CallError;
pub(crate) use self::client::SetupError;
// Also the client of `nanomq reload`.
pub(crate) use self::client::{ClientSettings, HttpClient};
use self::request::RenderError;
pub(crate) use self::request::{HttpMethod, RequestSpec, Scope};
use self::template::{ClientValues, Values};
use crate::config::{HttpAuthConfig, OnError};

/// The callout's authenticator and authorizer, as `[auth.http]` configures them; they share
/// one connection pool.
#[derive(Debug)]
pub(crate) struct HttpAuth {
    /// With `[auth.http.authn]`.
    pub(crate) authenticator: Option<Arc<HttpAuthenticator>>,
    /// With `[auth.http.acl]`.
    pub(crate) authorizer: Option<Arc<HttpAuthorizer>>,
}

impl HttpAuth {
    /// Sets up the client (reading the trusted certificates for https) and both checks.
    pub(crate) fn new(config: &HttpAuthConfig) -> Result<Self, SetupError> {
        let https = [&config.authn, &config.acl]
            .into_iter()
            .flatten()
            .any(RequestSpec::is_https);
        let client = Arc::new(HttpClient::new(&ClientSettings {
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            pool_size: config.pool_size,
            cacertfile: config.cacertfile.clone(),
            https,
        })?);
        let service = |spec: &RequestSpec, scope: Scope| {
            Arc::new(Service {
                spec: spec.clone(),
                scope,
                client: Arc::clone(&client),
                cache: TtlCache::new(config.cache_ttl, config.cache_max_entries),
                keyer: Keyer::new(),
                on_error: config.on_error,
                failures: FailureLog::new(),
            })
        };
        Ok(Self {
            authenticator: config.authn.as_ref().map(|spec| {
                Arc::new(HttpAuthenticator {
                    service: service(spec, Scope::Authn),
                })
            }),
            authorizer: config.acl.as_ref().map(|spec| {
                Arc::new(HttpAuthorizer {
                    service: service(spec, Scope::Acl),
                })
            }),
        })
    }
}

/// Why a check got no verdict.
#[derive(Debug)]
enum Failure {
    /// The client's values cannot be sent (the client's doing: refused, whatever
    /// `on_error` says).
    Render(RenderError),
    /// No answer (the service's doing: `on_error` applies).
    Call(CallError),
    /// An answer that says nothing (`on_error` applies).
    Answer(AnswerError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Render(e) => e.fmt(f),
            Self::Call(e) => e.fmt(f),
            Self::Answer(e) => e.fmt(f),
        }
    }
}

/// One request (authentication or ACL) with its cache.
#[derive(Debug)]
struct Service {
    spec: RequestSpec,
    scope: Scope,
    client: Arc<HttpClient>,
    cache: TtlCache<Verdict>,
    keyer: Keyer,
    on_error: OnError,
    failures: FailureLog,
}

impl Service {
    fn key(&self, values: &Values<'_>) -> Key {
        self.keyer
            .key(|hasher| self.spec.hash_values(values, hasher))
    }

    fn cached(&self, key: &Key) -> Option<Verdict> {
        self.cache.get(key, Instant::now())
    }

    /// Asks the service, and keeps its verdict.
    async fn ask(&self, values: &Values<'_>, key: Key) -> Result<Verdict, Failure> {
        let request = self.spec.build(values).map_err(Failure::Render)?;
        let reply = self.client.call(request).await.map_err(Failure::Call)?;
        let verdict = answer::interpret(reply.status, reply.content_type.as_deref(), &reply.body)
            .map_err(Failure::Answer)?;
        self.cache.insert(key, verdict, Instant::now());
        Ok(verdict)
    }

    /// Logs a check that got no verdict: a refused client at info, a failing service at
    /// warn with at most one line per [`FailureLog::INTERVAL`] (a dead service during a
    /// connect storm is one line every few seconds, with how many were not logged).
    fn log_failure(&self, failure: &Failure, values: &Values<'_>) {
        let check = match self.scope {
            Scope::Authn => "authentication",
            Scope::Acl => "authorization",
        };
        let client = &values.client.client_id;
        let username = values.client.username.as_deref();
        let topic = values.acl.map(|(_, topic)| topic);
        match failure {
            Failure::Render(error) => tracing::info!(
                %client, ?username, ?topic, url = self.spec.url_text(),
                "HTTP {check} refused: {error}"
            ),
            Failure::Call(_) | Failure::Answer(_) => {
                if let Some(unlogged) = self.failures.due() {
                    tracing::warn!(
                        %client, ?username, ?topic, url = self.spec.url_text(),
                        on_error = ?self.on_error, not_logged_since = unlogged,
                        "HTTP {check} service failed: {failure}"
                    );
                }
            }
        }
    }
}

/// Rate limit for the log of a failing service.
#[derive(Debug)]
struct FailureLog {
    start: Instant,
    /// When the last line was logged, in milliseconds since `start`, plus one (0: never).
    last: AtomicU64,
    /// Failures not logged since.
    unlogged: AtomicU64,
}

impl FailureLog {
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Whether to log this failure; if so, how many were not logged before it.
    fn due(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let interval = u64::try_from(Self::INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.unlogged.swap(0, Ordering::Relaxed));
        }
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `[auth.http.authn]`: asked at CONNECT.
#[derive(Debug)]
pub(crate) struct HttpAuthenticator {
    service: Arc<Service>,
}

impl HttpAuthenticator {
    fn result(&self, verdict: Result<Verdict, Failure>, values: &Values<'_>) -> AuthnResult {
        match verdict {
            Ok(Verdict::Allow { superuser }) => AuthnResult::Allow { superuser },
            Ok(Verdict::Deny) => AuthnResult::Deny(AuthnDenial::BadCredentials),
            Ok(Verdict::Ignore) => AuthnResult::Ignore,
            Err(failure) => {
                self.service.log_failure(&failure, values);
                match (failure, self.service.on_error) {
                    (Failure::Render(_), _) => AuthnResult::Deny(AuthnDenial::BadCredentials),
                    (_, OnError::Deny) => AuthnResult::Deny(AuthnDenial::Unavailable),
                    (_, OnError::Ignore) => AuthnResult::Ignore,
                }
            }
        }
    }
}

impl Authenticator for HttpAuthenticator {
    fn name(&self) -> &str {
        "http"
    }

    fn authenticate<'a>(&'a self, client: &'a ConnParam) -> BoxFuture<'a, AuthnResult> {
        Box::pin(async move {
            let client = ClientValues::of(client);
            let values = Values {
                client: &client,
                acl: None,
            };
            let key = self.service.key(&values);
            let (verdict, cached) = match self.service.cached(&key) {
                Some(verdict) => (Ok(verdict), true),
                None => (self.service.ask(&values, key).await, false),
            };
            tracing::debug!(
                client = %client.client_id,
                username = ?client.username,
                ?verdict,
                cached,
                "HTTP authentication"
            );
            self.result(verdict, &values)
        })
    }
}

/// `[auth.http.acl]`: asked at PUBLISH and at each SUBSCRIBE filter.
#[derive(Debug)]
pub(crate) struct HttpAuthorizer {
    service: Arc<Service>,
}

impl Authorizer for HttpAuthorizer {
    fn name(&self) -> &str {
        "http"
    }

    fn for_client(&self, client: &ConnParam) -> Box<dyn ClientAuthorizer> {
        Box::new(HttpClientAuthorizer {
            service: Arc::clone(&self.service),
            client: Arc::new(ClientValues::of(client)),
        })
    }
}

/// One connection's view of the ACL service: its client's values, copied once.
struct HttpClientAuthorizer {
    service: Arc<Service>,
    client: Arc<ClientValues>,
}

impl HttpClientAuthorizer {
    fn result(
        service: &Service,
        verdict: Result<Verdict, Failure>,
        values: &Values<'_>,
    ) -> AclResult {
        match verdict {
            Ok(Verdict::Allow { .. }) => AclResult::Allow,
            Ok(Verdict::Deny) => AclResult::Deny,
            Ok(Verdict::Ignore) => AclResult::NoMatch,
            Err(failure) => {
                service.log_failure(&failure, values);
                match (failure, service.on_error) {
                    (Failure::Render(_), _) | (_, OnError::Deny) => AclResult::Deny,
                    (_, OnError::Ignore) => AclResult::NoMatch,
                }
            }
        }
    }
}

impl ClientAuthorizer for HttpClientAuthorizer {
    fn check(&self, action: Action, topic: &str) -> AclCheck {
        // Asked for every retained message a subscription would deliver, and it must be
        // answered at once: the subscription's own check (its filter) is the service's say.
        if action == Action::Receive {
            return AclCheck::Ready(AclResult::NoMatch);
        }
        let values = Values {
            client: &self.client,
            acl: Some((action, topic)),
        };
        let key = self.service.key(&values);
        if let Some(verdict) = self.service.cached(&key) {
            return AclCheck::Ready(Self::result(&self.service, Ok(verdict), &values));
        }
        let service = Arc::clone(&self.service);
        let client = Arc::clone(&self.client);
        let topic = topic.to_owned();
        AclCheck::Pending(Box::pin(async move {
            let values = Values {
                client: &client,
                acl: Some((action, &topic)),
            };
            let verdict = service.ask(&values, key).await;
            tracing::debug!(
                client = %client.client_id,
                action = action.name(),
                %topic,
                ?verdict,
                "HTTP authorization"
            );
            Self::result(&service, verdict, &values)
        }))
    }
}
