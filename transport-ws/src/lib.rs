//! The WebSocket transport: MQTT in binary WebSocket messages (tokio-tungstenite), on a
//! configurable path (default `/mqtt`), over plain TCP (`ws://`) or, with the `tls` feature,
//! over transport-tls (`wss://`).
//!
//! - [`serve`] (and [`serve_tls`]): the accept loop (transport-tcp's). Each connection's
//!   upgrade (and TLS handshake, for WSS) runs in its own task, within the broker's connect
//!   timeout, then the connection goes to [`Broker::serve_connection`] as a byte stream.
//! - [`accept`] (module `upgrade`): the HTTP upgrade: path check (404 otherwise), MQTT
//!   subprotocol negotiation, message size limits.
//! - [`WsStream`] (module `stream`): the WebSocket as `AsyncRead + AsyncWrite`; packets may
//!   span messages and messages may hold several packets; text messages close the
//!   connection; pings are answered; the close handshake is done properly.

mod stream;
mod upgrade;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use broker_core::{Broker, TransportInfo, TransportKind};
use tokio::net::TcpListener;

pub use stream::WsStream;
pub use upgrade::{DEFAULT_PATH, SUBPROTOCOLS, WsSettings, accept};

/// Binds a TCP listener on `addr` for WebSocket connections (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    transport_tcp::bind(addr).await
}

/// Accepts connections on `listener` until `shutdown` completes; each one is upgraded to a
/// WebSocket in its own task, within the broker's connect timeout, then served by `broker`.
/// A failed or late upgrade is logged at debug level and closed.
pub async fn serve(
    listener: TcpListener,
    settings: WsSettings,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let settings = Arc::new(settings);
    let timeout = broker.config().connect_timeout;
    let local = listener.local_addr().ok();
    transport_tcp::accept_loop(listener, shutdown, |stream, peer| {
        let settings = Arc::clone(&settings);
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let ws = match tokio::time::timeout(timeout, accept(stream, &settings)).await {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "WebSocket upgrade failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "WebSocket upgrade not finished within {timeout:?}");
                    return;
                }
            };
            let info = TransportInfo::new(TransportKind::Ws, Some(peer)).on_listener(local);
            broker.serve_connection(ws, info).await;
        });
    })
    .await;
}

/// [`serve`] over TLS (WSS): each connection's TLS handshake and then its WebSocket upgrade
/// run in its own task, together within the broker's connect timeout. The verified client
/// certificate's identity goes to the broker as for a TLS listener.
#[cfg(feature = "tls")]
pub async fn serve_tls(
    listener: TcpListener,
    settings: WsSettings,
    tls: transport_tls::TlsAcceptor,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let settings = Arc::new(settings);
    let timeout = broker.config().connect_timeout;
    let local = listener.local_addr().ok();
    transport_tcp::accept_loop(listener, shutdown, |stream, peer| {
        let settings = Arc::clone(&settings);
        let broker = Arc::clone(&broker);
        let tls = tls.clone();
        tokio::spawn(async move {
            let handshakes = async {
                let tls_stream = tls.accept(stream).await.map_err(|e| format!("TLS: {e}"))?;
                let identity = tls_stream.client_identity();
                let ws = accept(tls_stream, &settings)
                    .await
                    .map_err(|e| format!("WebSocket upgrade: {e}"))?;
                Ok::<_, String>((ws, identity))
            };
            let (ws, identity) = match tokio::time::timeout(timeout, handshakes).await {
                Ok(Ok(done)) => done,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "WSS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "WSS handshakes not finished within {timeout:?}");
                    return;
                }
            };
            let info = tls
                .transport_info(TransportKind::Wss, Some(peer), identity)
                .on_listener(local);
            broker.serve_connection(ws, info).await;
        });
    })
    .await;
}
