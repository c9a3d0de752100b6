//! The HTTP client the callout sends its requests with: hyper-util's pooled client (HTTP/1.1
//! over tokio, keep-alive connections reused, at most `pool_size` kept idle per host), https
//! through hyper-rustls on the workspace's rustls with the ring provider (with the `tls`
//! feature), and a bound on everything a slow or hostile service could make the broker
//! hold: at most `pool_size` requests at once, `timeout` for a whole exchange (waiting for
//! a turn included), [`MAX_ANSWER`] bytes of answer.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

/// The most of an answer's body that is read: an authorization answer is a few bytes.
pub(crate) const MAX_ANSWER: usize = 64 * 1024;

/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// How the client connects.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// The bound on one exchange, from asking for a connection to the last byte of the
    /// answer.
    pub(crate) timeout: Duration,
    /// The bound on opening a connection (within `timeout`).
    pub(crate) connect_timeout: Duration,
    /// Requests at once, and idle connections kept per host.
    pub(crate) pool_size: usize,
    /// Whom to trust for https: this PEM file, or the system's bundle.
    #[cfg_attr(not(feature = "tls"), allow(dead_code, reason = "https needs `tls`"))]
    pub(crate) cacertfile: Option<PathBuf>,
    /// Whether any request goes to an https URL (the trusted certificates are read only
    /// then).
    #[cfg_attr(not(feature = "tls"), allow(dead_code, reason = "https needs `tls`"))]
    pub(crate) https: bool,
}

/// Why the client could not be set up (at start).
#[derive(Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code, reason = "only https can fail"))]
pub(crate) enum SetupError {
    /// A certificate file that cannot be read or holds no usable certificate.
    Certificates {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused its own configuration.
    Tls(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Certificates { path, message } => write!(
                f,
                "auth.http: cannot read trusted certificates from {}: {message}",
                path.display()
            ),
            Self::Tls(message) => write!(f, "auth.http: TLS: {message}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// Why a request got no answer: the service is unreachable, slow or broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// No complete answer within the timeout.
    Timeout(Duration),
    /// No connection (refused, unreachable, TLS handshake failed).
    Connect(String),
    /// The connection failed during the exchange.
    Exchange(String),
    /// The answer's body failed or was longer than [`MAX_ANSWER`].
    Body(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout(after) => {
                write!(f, "no answer within {}", humantime::format_duration(*after))
            }
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Exchange(e) => write!(f, "the exchange failed: {e}"),
            Self::Body(e) => write!(f, "the answer's body: {e}"),
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

/// The pooled client, shared by the authentication and the ACL requests.
pub(crate) struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    turns: Semaphore,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("turns", &self.turns.available_permits())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client as `settings` say; reads the trusted certificates if it will speak https.
    pub(crate) fn new(settings: &ClientSettings) -> Result<Self, SetupError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_nodelay(true);
        let connector = connector(http, settings)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.pool_size)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            timeout: settings.timeout,
            turns: Semaphore::new(settings.pool_size.max(1)),
        })
    }

    /// Sends `request` and reads the answer, within the timeout.
    pub(crate) async fn call(&self, request: Request<Full<Bytes>>) -> Result<Reply, CallError> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .unwrap_or(Err(CallError::Timeout(self.timeout)))
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Reply, CallError> {
        // Never closed: acquiring fails only on a closed semaphore.
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|e| CallError::Connect(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| {
            let chain = chain(&e);
            if e.is_connect() {
                CallError::Connect(chain)
            } else {
                CallError::Exchange(chain)
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| CallError::Body(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            content_type: parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
        })
    }
}

/// An error and its causes, `: `-separated (hyper-util's own message is only its kind). The
/// URL is never part of it, so a password in a query is not logged.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(feature = "tls")]
fn connector(mut http: HttpConnector, settings: &ClientSettings) -> Result<Connector, SetupError> {
    use std::sync::Arc;

    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?;
    let roots = if settings.https {
        roots(settings.cacertfile.as_deref())?
    } else {
        rustls::RootCertStore::empty()
    };
    let config = builder.with_root_certificates(roots).with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

#[cfg(not(feature = "tls"))]
fn connector(http: HttpConnector, _settings: &ClientSettings) -> Result<Connector, SetupError> {
    Ok(http)
}

/// Where Debian (and most Linux systems) keep the trusted certificate authorities.
#[cfg(feature = "tls")]
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The trusted authorities: `cacertfile`, else the system's bundle (`SSL_CERT_FILE` if set).
#[cfg(feature = "tls")]
fn roots(cacertfile: Option<&std::path::Path>) -> Result<rustls::RootCertStore, SetupError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let path = match cacertfile {
        Some(path) => path.to_owned(),
        None => {
            std::env::var_os("SSL_CERT_FILE").map_or_else(|| SYSTEM_BUNDLE.into(), PathBuf::from)
        }
    };
    let problem = |message: String| SetupError::Certificates {
        path: path.clone(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| problem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(e.to_string()))?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(problem("no usable certificate in the file".to_owned()));
    }
    Ok(store)
}
