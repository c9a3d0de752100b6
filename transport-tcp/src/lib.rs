//! The TCP transport: a listener that accepts connections and gives each to
//! [`Broker::serve_connection`] in a task of its own, where CONNECT is read (with the broker's
//! connect timeout) and the connection's pipe is built. Nothing slow happens on the accept
//! loop, so one silent client cannot delay the next accept.
//!
//! [`accept_loop`] is that loop on its own; the TLS and WebSocket transports run theirs on it,
//! with their handshakes in the spawned connection tasks.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, TransportInfo, TransportKind};
use tokio::net::{TcpListener, TcpStream};

/// Binds a TCP listener on `addr` (port 0 picks a free port; see
/// [`TcpListener::local_addr`]).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections on `listener` until `shutdown` completes, handing each to `broker`.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    let local = listener.local_addr().ok();
    accept_loop(listener, shutdown, |stream, peer| {
        let transport = TransportInfo::new(TransportKind::Tcp, Some(peer)).on_listener(local);
        tokio::spawn(Arc::clone(&broker).serve_connection(stream, transport));
    })
    .await;
}

/// Accepts connections on `listener` until `shutdown` completes, giving each (with
/// `TCP_NODELAY` set) and its peer's address to `on_accept`, which must not block: it spawns
/// the connection's task and returns.
///
/// Accept errors (such as running out of file descriptors) are logged and retried after a
/// growing pause instead of ending the loop: the listener stays up for everyone else.
pub async fn accept_loop(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                // Small packets (acks, pings) should not wait for Nagle's algorithm.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                }
                on_accept(stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
