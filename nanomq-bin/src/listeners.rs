//! The listeners: every configured one is bound before any serves (all or none), then each
//! serves in a task of its own until the shutdown future completes.
//!
//! Adding a transport means: a variant in `config::ListenerKind`, a cargo feature, and one
//! `#[cfg(feature = ...)]` arm in [`bind`] and in [`BoundListener::serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

#[cfg(feature = "tcp")]
use anyhow::Context;
use anyhow::Result;
use broker_core::Broker;

use crate::config::{ListenerConfig, ListenerKind};

/// A listener that is bound and ready to serve.
#[derive(Debug)]
pub(crate) struct BoundListener {
    /// What it speaks.
    kind: ListenerKind,
    /// The address it actually bound (the real port when port 0 was asked for).
    local_addr: SocketAddr,
    /// The transport's listener.
    socket: Socket,
}

/// The transport-specific half of a [`BoundListener`].
#[derive(Debug)]
enum Socket {
    /// `[listeners.tcp]`.
    #[cfg(feature = "tcp")]
    Tcp(tokio::net::TcpListener),
}

impl BoundListener {
    /// The listener's URL with its actual address, such as `tcp://127.0.0.1:1883`.
    pub(crate) fn url(&self) -> String {
        format!("{}://{}", self.kind.scheme(), self.local_addr)
    }

    /// Accepts connections and hands them to `broker` until `shutdown` completes.
    // Built with no listener feature at all, `Socket` has no variant and nothing is used.
    #[cfg_attr(not(feature = "tcp"), allow(unused_variables))]
    pub(crate) async fn serve(
        self,
        broker: Arc<Broker>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        match self.socket {
            #[cfg(feature = "tcp")]
            Socket::Tcp(listener) => transport_tcp::serve(listener, broker, shutdown).await,
        }
    }
}

/// Binds every listener in `configs`, or none: the first failure is returned (naming the
/// listener and its address) and the sockets bound so far are closed.
pub(crate) async fn bind_all(configs: &[ListenerConfig]) -> Result<Vec<BoundListener>> {
    let mut bound = Vec::with_capacity(configs.len());
    for config in configs {
        bound.push(bind(config).await?);
    }
    Ok(bound)
}

/// Binds one listener.
async fn bind(config: &ListenerConfig) -> Result<BoundListener> {
    match config.kind {
        #[cfg(feature = "tcp")]
        ListenerKind::Tcp => {
            let listener = transport_tcp::bind(config.bind)
                .await
                .with_context(|| format!("cannot bind the tcp listener to {}", config.bind))?;
            let local_addr = listener.local_addr().with_context(|| {
                format!(
                    "cannot read the address of the tcp listener on {}",
                    config.bind
                )
            })?;
            Ok(BoundListener {
                kind: config.kind,
                local_addr,
                socket: Socket::Tcp(listener),
            })
        }
        // The configuration refuses compiled-out listeners; this is the last line of defence.
        #[allow(unreachable_patterns)]
        kind => anyhow::bail!("this nanomq was built without {} listeners", kind.scheme()),
    }
}
