//! The TLS transport: MQTT over TLS 1.2 or 1.3 (rustls, through tokio-rustls, with the ring
//! crypto provider), optionally verifying client certificates.
//!
//! - [`TlsSettings`] -> [`TlsAcceptor::new`]: certificate chain and key from PEM files,
//!   optional client-certificate verification against a CA file. Every problem is a
//!   [`TlsConfigError`] naming the file, found when the listener is set up, not at the first
//!   handshake.
//! - [`serve`]: the accept loop (transport-tcp's). Each connection's TLS handshake runs in
//!   its own task, within the broker's connect timeout, so a client that never finishes it
//!   cannot delay anyone else; then the connection goes to [`Broker::serve_connection`] with
//!   the verified certificate's subject and common name in its [`TransportInfo`].
//! - [`TlsAcceptor::accept`] and [`TlsStream`] are public for transports that run over TLS
//!   (WebSocket over TLS in transport-ws).
//!
//! Modules: `settings` (settings, loading, errors), `stream` (the connection and the client's
//! identity).

mod identity;
mod settings;
mod stream;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use broker_core::{Broker, CertificateIdentity, TransportInfo, TransportKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

pub use identity::ClientIdentity;
pub use settings::{TlsConfigError, TlsFile, TlsSettings};
pub use stream::TlsStream;

/// Binds a TCP listener on `addr` for TLS connections (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    transport_tcp::bind(addr).await
}

/// Performs server-side TLS handshakes with one set of [`TlsSettings`]. Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    /// tokio-rustls' acceptor over the loaded configuration.
    inner: tokio_rustls::TlsAcceptor,
    /// `use_identity_as_username`.
    identity_as_username: bool,
    /// `use_subject_as_username`.
    subject_as_username: bool,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("identity_as_username", &self.identity_as_username)
            .field("subject_as_username", &self.subject_as_username)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the certificate chain, the key and (with `verify_peer`) the CA certificates.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsConfigError> {
        let config = settings::server_config(settings)?;
        Ok(Self {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            identity_as_username: settings.use_identity_as_username,
            subject_as_username: settings.use_subject_as_username,
        })
    }

    /// Runs the server side of a TLS handshake over `stream`. It has no time limit of its
    /// own: the caller bounds it (as [`serve`] does).
    pub async fn accept<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.inner.accept(stream).await.map(TlsStream::new)
    }

    /// What the broker is told about a connection of `kind` from `peer` whose client proved
    /// `identity`.
    pub fn transport_info(
        &self,
        kind: TransportKind,
        peer: Option<SocketAddr>,
        identity: Option<ClientIdentity>,
    ) -> TransportInfo {
        let mut info = TransportInfo::new(kind, peer);
        if let Some(identity) = identity {
            info.certificate = Some(Box::new(CertificateIdentity {
                subject: identity.subject,
                common_name: identity.common_name,
            }));
        }
        info.identity_as_username = self.identity_as_username;
        info.subject_as_username = self.subject_as_username;
        info
    }
}

/// Accepts connections on `listener` until `shutdown` completes; each one's TLS handshake
/// runs in its own task within the broker's connect timeout, then the connection is served by
/// `broker`. A handshake that fails or times out is logged at debug level and closed.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let local = listener.local_addr().ok();
    let timeout = broker.config().connect_timeout;
    transport_tcp::accept_loop(listener, shutdown, |stream, peer| {
        let acceptor = acceptor.clone();
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not finished within {timeout:?}");
                    return;
                }
            };
            let info = acceptor
                .transport_info(TransportKind::Tls, Some(peer), tls.client_identity())
                .on_listener(local);
            broker.serve_connection(tls, info).await;
        });
    })
    .await;
}
