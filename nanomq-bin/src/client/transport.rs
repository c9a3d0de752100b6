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

use super::endpoint::{Endpoint, Scheme};
use super::error::ClientError;

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "ws")]
mod ws;

/// The read half of a connection.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// The TLS flags: whom to trust, and who we are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// PEM file of the certificate authorities to trust (default: the system's).
    pub(crate) cafile: Option<PathBuf>,
    /// PEM file of our certificate chain, for brokers that ask for one.
    pub(crate) cert: Option<PathBuf>,
    /// PEM file of our certificate's private key.
    pub(crate) key: Option<PathBuf>,
    /// Do not verify the broker's certificate (testing only).
    pub(crate) insecure: bool,
}

impl TlsOptions {
    /// Whether any TLS flag was given (which turns `mqtt://` into `mqtts://`, as with
    /// mosquitto's `--cafile`).
    pub(crate) fn any(&self) -> bool {
        self.cafile.is_some() || self.cert.is_some() || self.key.is_some() || self.insecure
    }
}

/// Opens connections to one endpoint.
pub(crate) struct Connector {
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
    pub(crate) fn new(endpoint: Endpoint, tls: &TlsOptions) -> Result<Self, ClientError> {
        if endpoint.scheme.is_websocket() && !cfg!(feature = "ws") {
            return Err(ClientError::Usage(format!(
                "{endpoint}: this build of nanomq has no WebSocket client (build it with \
                 `--features ws`)"
            )));
        }
        if !endpoint.scheme.is_tls() && tls.any() {
            return Err(ClientError::Usage(format!(
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
                return Err(ClientError::Usage(format!(
                    "{endpoint}: this build of nanomq has no TLS client (build it with \
                     `--features tls`)"
                )));
            }
            Ok(Self { endpoint })
        }
    }

    /// Opens one connection: TCP, then TLS and the WebSocket upgrade as the scheme asks.
    pub(crate) async fn open(&self) -> Result<(ReadHalf, WriteHalf), ClientError> {
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: self.endpoint.to_string(),
                source,
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
            other => Err(ClientError::Usage(format!(
                "this build of nanomq cannot connect over {}",
                other.as_str()
            ))),
        }
    }

    /// The TLS handshake over `tcp`.
    #[cfg(feature = "tls")]
    async fn tls_handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
        match &self.tls {
            Some(client) => client.handshake(tcp).await,
            None => Err(ClientError::Tls("no TLS configuration".to_owned())),
        }
    }
}
