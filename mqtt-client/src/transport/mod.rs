//! Opening the byte stream a client speaks MQTT over: TCP, TLS (`tls` feature), WebSocket
//! (`ws` feature) or WebSocket over TLS (both).
//!
//! A [`Connector`] is prepared once (the TLS configuration, certificates read and checked)
//! and opens any number of connections, so that `nanomq bench` pays for the set-up once.
//! Each connection is returned as a read half and a write half, for a reader task and a
//! writer task.

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::endpoint::{Endpoint, Scheme};
use crate::error::Error;

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "ws")]
mod ws;

/// The read half of a connection.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// The TLS flags: whom to trust, and who we are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the certificate authorities to trust (default: the system's).
    pub cafile: Option<PathBuf>,
    /// PEM file of our certificate chain, for brokers that ask for one.
    pub cert: Option<PathBuf>,
    /// PEM file of our certificate's private key.
    pub key: Option<PathBuf>,
    /// The name the broker's certificate must carry, sent as SNI (default: the host).
    pub server_name: Option<String>,
    /// Do not verify the broker's certificate: for tests only, never in production (the
    /// connection is encrypted but anyone can pose as the broker).
    pub insecure: bool,
}

impl TlsOptions {
    /// Whether any TLS flag was given (which turns `mqtt://` into `mqtts://`, as with
    /// mosquitto's `--cafile`).
    pub fn any(&self) -> bool {
        self.cafile.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.server_name.is_some()
            || self.insecure
    }
}

/// Opens connections to one endpoint.
pub struct Connector {
    /// Where to.
    endpoint: Endpoint,
    /// The TLS client, for `mqtts` and `wss`.
    #[cfg(feature = "tls")]
    tls: Option<tls::TlsClient>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint.to_string())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Prepares connections to `endpoint`: reads and checks the TLS files, and refuses a
    /// transport this build does not have.
    pub fn new(endpoint: Endpoint, tls: &TlsOptions) -> Result<Self, Error> {
        if endpoint.scheme.is_websocket() && !cfg!(feature = "ws") {
            return Err(Error::Usage(format!(
                "{endpoint}: this build of mqtt-client has no WebSocket client (its `ws` \
                 feature)"
            )));
        }
        if !endpoint.scheme.is_tls() && tls.any() {
            return Err(Error::Usage(format!(
                "{endpoint}: TLS options given for a connection without TLS"
            )));
        }
        #[cfg(feature = "tls")]
        {
            let client = if endpoint.scheme.is_tls() {
                Some(tls::TlsClient::new(&endpoint.host, tls)?)
            } else {
                None
            };
            Ok(Self {
                endpoint,
                tls: client,
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            if endpoint.scheme.is_tls() {
                return Err(Error::Usage(format!(
                    "{endpoint}: this build of mqtt-client has no TLS client (its `tls` \
                     feature)"
                )));
            }
            Ok(Self { endpoint })
        }
    }

    /// Prepares connections to a URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`; user name,
    /// password and topic in it are ignored here).
    pub fn from_url(url: &str, tls: &TlsOptions) -> Result<Self, Error> {
        let parsed =
            crate::endpoint::parse_url(url).map_err(|e| Error::Usage(format!("{url}: {e}")))?;
        Self::new(parsed.endpoint, tls)
    }

    /// Where it connects.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens one connection: TCP, then TLS and the WebSocket upgrade as the scheme asks.
    pub async fn open(&self) -> Result<(ReadHalf, WriteHalf), Error> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|source| Error::Connect {
                endpoint: self.endpoint.to_string(),
                source: std::sync::Arc::new(source),
            })?;
        // Acknowledgements and pings are small: do not hold them back (Nagle).
        tcp.set_nodelay(true)?;
        match self.endpoint.scheme {
            Scheme::Mqtt => {
                let (read, write) = tcp.into_split();
                Ok((Box::new(read), Box::new(write)))
            }
            #[cfg(feature = "tls")]
            Scheme::Mqtts => {
                let stream = self.tls_handshake(tcp).await?;
                let (read, write) = tokio::io::split(stream);
                Ok((Box::new(read), Box::new(write)))
            }
            #[cfg(feature = "ws")]
            Scheme::Ws => {
                let stream = ws::handshake(&self.endpoint, tcp).await?;
                let (read, write) = tokio::io::split(stream);
                Ok((Box::new(read), Box::new(write)))
            }
            #[cfg(all(feature = "ws", feature = "tls"))]
            Scheme::Wss => {
                let tls = self.tls_handshake(tcp).await?;
                let stream = ws::handshake(&self.endpoint, tls).await?;
                let (read, write) = tokio::io::split(stream);
                Ok((Box::new(read), Box::new(write)))
            }
            #[allow(
                unreachable_patterns,
                reason = "reachable only in builds without ws or tls"
            )]
            other => Err(Error::Usage(format!(
                "this build of mqtt-client cannot connect over {}",
                other.as_str()
            ))),
        }
    }

    /// The TLS handshake over `tcp`.
    #[cfg(feature = "tls")]
    async fn tls_handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        match &self.tls {
            Some(client) => client.handshake(tcp).await,
            None => Err(Error::Tls("no TLS configuration".to_owned())),
        }
    }
}
