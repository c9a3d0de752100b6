//! The listeners: every configured one is bound before any serves (all or none), then each
//! serves in a task of its own until the shutdown future completes.
//!
//! Adding a transport means: a variant in `config::ListenerKind`, a cargo feature, and one
//! `#[cfg(feature = ...)]` arm in [`bind`] and in [`BoundListener::serve`].
//!
//! A TLS listener's certificate, key and CA files are loaded when it is bound, so a bad file
//! stops the start-up with the file and its problem named, before anything serves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

#[cfg(any(feature = "tcp", feature = "ws", feature = "tls"))]
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
    /// The WebSocket path, for `ws` and `wss`.
    path: Option<String>,
    /// The transport's listener.
    socket: Socket,
}

/// The transport-specific half of a [`BoundListener`].
#[derive(Debug)]
enum Socket {
    /// `[listeners.tcp]`.
    #[cfg(feature = "tcp")]
    Tcp(tokio::net::TcpListener),
    /// `[listeners.ssl]`.
    #[cfg(feature = "tls")]
    Tls(tokio::net::TcpListener, transport_tls::TlsAcceptor),
    /// `[listeners.ws]`.
    #[cfg(feature = "ws")]
    Ws(tokio::net::TcpListener, transport_ws::WsSettings),
    /// `[listeners.wss]`.
    #[cfg(all(feature = "ws", feature = "tls"))]
    Wss(
        tokio::net::TcpListener,
        transport_ws::WsSettings,
        transport_tls::TlsAcceptor,
    ),
}

impl BoundListener {
    /// The listener's URL with its actual address, such as `tcp://127.0.0.1:1883` or
    /// `ws://127.0.0.1:8083/mqtt`.
    pub(crate) fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.kind.scheme(),
            self.local_addr,
            self.path.as_deref().unwrap_or("")
        )
    }

    /// The address it bound (the real port when port 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections and hands them to `broker` until `shutdown` completes.
    // Built with no listener feature at all, `Socket` has no variant and nothing is used.
    #[cfg_attr(
        not(any(feature = "tcp", feature = "ws", feature = "tls")),
        allow(unused_variables)
    )]
    pub(crate) async fn serve(
        self,
        broker: Arc<Broker>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        match self.socket {
            #[cfg(feature = "tcp")]
            Socket::Tcp(listener) => transport_tcp::serve(listener, broker, shutdown).await,
            #[cfg(feature = "tls")]
            Socket::Tls(listener, acceptor) => {
                transport_tls::serve(listener, acceptor, broker, shutdown).await;
            }
            #[cfg(feature = "ws")]
            Socket::Ws(listener, settings) => {
                transport_ws::serve(listener, settings, broker, shutdown).await;
            }
            #[cfg(all(feature = "ws", feature = "tls"))]
            Socket::Wss(listener, settings, acceptor) => {
                transport_ws::serve_tls(listener, settings, acceptor, broker, shutdown).await;
            }
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

/// Binds a TCP socket for `config`; the address it got.
#[cfg(any(feature = "tcp", feature = "ws", feature = "tls"))]
async fn bind_tcp(config: &ListenerConfig) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let scheme = config.kind.scheme();
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot bind the {scheme} listener to {}", config.bind))?;
    let local_addr = listener.local_addr().with_context(|| {
        format!(
            "cannot read the address of the {scheme} listener on {}",
            config.bind
        )
    })?;
    Ok((listener, local_addr))
}

/// Loads the TLS files of `config`.
#[cfg(feature = "tls")]
fn tls_acceptor(config: &ListenerConfig) -> Result<transport_tls::TlsAcceptor> {
    let scheme = config.kind.scheme();
    let Some(tls) = &config.tls else {
        anyhow::bail!(
            "the {scheme} listener on {} has no TLS settings",
            config.bind
        );
    };
    let settings = transport_tls::TlsSettings {
        certfile: tls.certfile.clone(),
        keyfile: tls.keyfile.clone(),
        cacertfile: tls.cacertfile.clone(),
        verify_peer: tls.verify_peer,
        fail_if_no_peer_cert: tls.fail_if_no_peer_cert,
        use_identity_as_username: tls.use_identity_as_username,
        use_subject_as_username: tls.use_subject_as_username,
    };
    transport_tls::TlsAcceptor::new(&settings).with_context(|| {
        format!(
            "cannot load the TLS settings of the {scheme} listener on {} \
             (listeners.{scheme})",
            config.bind
        )
    })
}

/// The WebSocket settings of `config`.
#[cfg(feature = "ws")]
fn ws_settings(config: &ListenerConfig) -> transport_ws::WsSettings {
    let mut settings = transport_ws::WsSettings::default();
    if let Some(ws) = &config.ws {
        settings.path.clone_from(&ws.path);
        settings.max_message_size = ws.max_message_size;
    }
    settings
}

/// Binds one listener.
async fn bind(config: &ListenerConfig) -> Result<BoundListener> {
    let path = config.ws.as_ref().map(|ws| ws.path.clone());
    let socket = match config.kind {
        #[cfg(feature = "tcp")]
        ListenerKind::Tcp => {
            let (listener, local_addr) = bind_tcp(config).await?;
            (Socket::Tcp(listener), local_addr)
        }
        #[cfg(feature = "tls")]
        ListenerKind::Tls => {
            let acceptor = tls_acceptor(config)?;
            let (listener, local_addr) = bind_tcp(config).await?;
            (Socket::Tls(listener, acceptor), local_addr)
        }
        #[cfg(feature = "ws")]
        ListenerKind::Ws => {
            let (listener, local_addr) = bind_tcp(config).await?;
            (Socket::Ws(listener, ws_settings(config)), local_addr)
        }
        #[cfg(all(feature = "ws", feature = "tls"))]
        ListenerKind::Wss => {
            let acceptor = tls_acceptor(config)?;
            let (listener, local_addr) = bind_tcp(config).await?;
            (
                Socket::Wss(listener, ws_settings(config), acceptor),
                local_addr,
            )
        }
        // The configuration refuses compiled-out listeners; this is the last line of defence.
        #[allow(unreachable_patterns)]
        kind => anyhow::bail!("this nanomq was built without {} listeners", kind.scheme()),
    };
    let (socket, local_addr) = socket;
    Ok(BoundListener {
        kind: config.kind,
        local_addr,
        path,
        socket,
    })
}
