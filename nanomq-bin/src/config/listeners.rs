//! `[listeners.*]`: which transports listen where, and their TLS and WebSocket settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::Problems;

/// A kind of listener. Every kind is known to the configuration whatever the cargo features,
/// so that asking for one that is compiled out is a clear error, not an unknown key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    /// MQTT over plain TCP (`[listeners.tcp]`, feature `tcp`).
    Tcp,
    /// MQTT over TLS (`[listeners.ssl]`, feature `tls`).
    Tls,
    /// MQTT over WebSocket (`[listeners.ws]`, feature `ws`).
    Ws,
    /// MQTT over WebSocket over TLS (`[listeners.wss]`, features `ws` and `tls`).
    Wss,
}

impl ListenerKind {
    /// The URL scheme, also the name of its table under `[listeners]`.
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "ssl",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// The cargo features that compile this listener in, as `--features` takes them.
    pub(super) fn feature(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "ws,tls",
        }
    }

    /// Whether this binary was built with the listener.
    pub(crate) fn compiled_in(self) -> bool {
        match self {
            Self::Tcp => cfg!(feature = "tcp"),
            Self::Tls => cfg!(feature = "tls"),
            Self::Ws => cfg!(feature = "ws"),
            Self::Wss => cfg!(all(feature = "ws", feature = "tls")),
        }
    }
}

/// One listener to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerConfig {
    /// What it speaks.
    pub(crate) kind: ListenerKind,
    /// Where it listens (port 0: a free port, logged once bound).
    pub(crate) bind: SocketAddr,
    /// WebSocket settings (`ws`, `wss`).
    pub(crate) ws: Option<WsConfig>,
    /// TLS settings (`ssl`, `wss`).
    pub(crate) tls: Option<TlsConfig>,
    /// Whether clients without credentials may connect here, if not as `[auth]` says.
    pub(crate) allow_anonymous: Option<bool>,
}

#[cfg(test)]
impl ListenerConfig {
    /// A listener of `kind` on `bind` with no WebSocket or TLS settings (`tcp`).
    #[allow(dead_code, reason = "used by the tests of the listeners compiled in")]
    pub(crate) fn plain(kind: ListenerKind, bind: SocketAddr) -> Self {
        Self {
            kind,
            bind,
            ws: None,
            tls: None,
            allow_anonymous: None,
        }
    }
}

/// The WebSocket settings of a `ws` or `wss` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsConfig {
    /// The path MQTT is served on (`/mqtt`); other paths get 404.
    pub(crate) path: String,
    /// The largest WebSocket message accepted: `mqtt.max_packet_size`.
    pub(crate) max_message_size: usize,
}

/// The TLS settings of an `ssl` or `wss` listener (files are read when it is bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub(crate) certfile: PathBuf,
    /// The server's private key (PEM).
    pub(crate) keyfile: PathBuf,
    /// The CA certificates client certificates are verified against (PEM).
    pub(crate) cacertfile: Option<PathBuf>,
    /// Ask for and verify client certificates.
    pub(crate) verify_peer: bool,
    /// Refuse clients without a certificate.
    pub(crate) fail_if_no_peer_cert: bool,
    /// The verified certificate's common name is the client's username.
    pub(crate) use_identity_as_username: bool,
    /// The verified certificate's whole subject is the client's username.
    pub(crate) use_subject_as_username: bool,
}

/// `[listeners]`: one optional table per listener kind; an absent table means that listener is
/// off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of listener tables")]
pub(super) struct RawListeners {
    /// `[listeners.tcp]`.
    tcp: Option<RawListener>,
    /// `[listeners.ssl]`.
    ssl: Option<RawSslListener>,
    /// `[listeners.ws]`.
    ws: Option<RawWsListener>,
    /// `[listeners.wss]`.
    wss: Option<RawWssListener>,
}

/// The keys of a listener table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
pub(super) struct RawListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    /// `allow_anonymous`: overrides `[auth] allow_anonymous` for this listener.
    allow_anonymous: Option<bool>,
}

/// `[listeners.ws]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
pub(super) struct RawWsListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    /// `allow_anonymous`: overrides `[auth] allow_anonymous` for this listener.
    allow_anonymous: Option<bool>,
    /// `path = "/mqtt"`.
    #[serde(default = "default_ws_path")]
    path: String,
}

/// The TLS keys of `[listeners.ssl]` and `[listeners.wss]`, each optional here: `ssl`
/// requires `certfile` and `keyfile`, `wss` takes what it lacks from `ssl`.
#[derive(Debug, Default, Clone)]
pub(super) struct RawTlsKeys {
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cacertfile: Option<PathBuf>,
    verify_peer: Option<bool>,
    fail_if_no_peer_cert: Option<bool>,
    use_identity_as_username: Option<bool>,
    use_subject_as_username: Option<bool>,
}

/// `[listeners.ssl]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
pub(super) struct RawSslListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    /// `allow_anonymous`: overrides `[auth] allow_anonymous` for this listener.
    allow_anonymous: Option<bool>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cacertfile: Option<PathBuf>,
    verify_peer: Option<bool>,
    fail_if_no_peer_cert: Option<bool>,
    use_identity_as_username: Option<bool>,
    use_subject_as_username: Option<bool>,
}

impl RawSslListener {
    /// Its TLS keys.
    pub(super) fn tls_keys(&self) -> RawTlsKeys {
        RawTlsKeys {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cacertfile: self.cacertfile.clone(),
            verify_peer: self.verify_peer,
            fail_if_no_peer_cert: self.fail_if_no_peer_cert,
            use_identity_as_username: self.use_identity_as_username,
            use_subject_as_username: self.use_subject_as_username,
        }
    }
}

/// `[listeners.wss]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
pub(super) struct RawWssListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    /// `allow_anonymous`: overrides `[auth] allow_anonymous` for this listener.
    allow_anonymous: Option<bool>,
    /// `path = "/mqtt"`.
    #[serde(default = "default_ws_path")]
    path: String,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cacertfile: Option<PathBuf>,
    verify_peer: Option<bool>,
    fail_if_no_peer_cert: Option<bool>,
    use_identity_as_username: Option<bool>,
    use_subject_as_username: Option<bool>,
}

impl RawWssListener {
    /// Its TLS keys, each taken from `ssl` when this table lacks it.
    pub(super) fn tls_keys(&self, ssl: Option<&RawTlsKeys>) -> RawTlsKeys {
        let ssl = ssl.cloned().unwrap_or_default();
        RawTlsKeys {
            certfile: self.certfile.clone().or(ssl.certfile),
            keyfile: self.keyfile.clone().or(ssl.keyfile),
            cacertfile: self.cacertfile.clone().or(ssl.cacertfile),
            verify_peer: self.verify_peer.or(ssl.verify_peer),
            fail_if_no_peer_cert: self.fail_if_no_peer_cert.or(ssl.fail_if_no_peer_cert),
            use_identity_as_username: self
                .use_identity_as_username
                .or(ssl.use_identity_as_username),
            use_subject_as_username: self.use_subject_as_username.or(ssl.use_subject_as_username),
        }
    }
}

/// The default WebSocket path.
fn default_ws_path() -> String {
    "/mqtt".to_owned()
}

/// Reads `"IP:PORT"`, with a message that says what is expected.
fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid address \"{text}\": expected IP:PORT, such as \"0.0.0.0:1883\", \
             \"[::]:1883\" or \"127.0.0.1:0\""
        ))
    })
}

impl RawListeners {
    /// Forgets the tables of listeners this build lacks, so the embedded default starts on
    /// what is compiled in.
    pub(super) fn drop_compiled_out(&mut self) {
        if !ListenerKind::Tcp.compiled_in() {
            self.tcp = None;
        }
        if !ListenerKind::Tls.compiled_in() {
            self.ssl = None;
        }
        if !ListenerKind::Ws.compiled_in() {
            self.ws = None;
        }
        if !ListenerKind::Wss.compiled_in() {
            self.wss = None;
        }
    }

    /// The listeners that are on; a problem if there are none or one is compiled out.
    pub(super) fn validate(self, problems: &mut Problems) -> Vec<ListenerConfig> {
        let ssl_keys = self.ssl.as_ref().map(RawSslListener::tls_keys);
        let mut requested = Vec::new();
        if let Some(raw) = self.tcp {
            requested.push((ListenerKind::Tcp, raw.bind, raw.allow_anonymous, None, None));
        }
        if let Some(raw) = &self.ssl {
            requested.push((
                ListenerKind::Tls,
                raw.bind,
                raw.allow_anonymous,
                None,
                ssl_keys.clone(),
            ));
        }
        if let Some(raw) = self.ws {
            requested.push((
                ListenerKind::Ws,
                raw.bind,
                raw.allow_anonymous,
                Some(raw.path),
                None,
            ));
        }
        if let Some(raw) = &self.wss {
            let keys = raw.tls_keys(ssl_keys.as_ref());
            requested.push((
                ListenerKind::Wss,
                raw.bind,
                raw.allow_anonymous,
                Some(raw.path.clone()),
                Some(keys),
            ));
        }
        let mut listeners = Vec::new();
        for (kind, bind, allow_anonymous, path, tls) in requested {
            let table = format!("listeners.{}", kind.scheme());
            if !kind.compiled_in() {
                let features = kind.feature();
                problems.add(
                    &table,
                    format!(
                        "this nanomq was built without {} listeners (cargo feature{} `{}`); \
                         remove the table or rebuild with `--features {}`",
                        kind.scheme(),
                        if features.contains(',') { "s" } else { "" },
                        features,
                        features
                    ),
                );
                continue;
            }
            let ws = path.map(|path| {
                if !path.starts_with('/') {
                    problems.add(
                        &format!("{table}.path"),
                        format!("must start with \"/\", such as \"/mqtt\", got \"{path}\""),
                    );
                }
                WsConfig {
                    path,
                    max_message_size: 0,
                }
            });
            let tls = tls.and_then(|keys| keys.validate(&table, kind, problems));
            listeners.push(ListenerConfig {
                kind,
                bind,
                ws,
                tls,
                allow_anonymous,
            });
        }
        if listeners.is_empty() && problems.0.is_empty() {
            problems.add(
                "listeners",
                "no listener is configured: add one, such as [listeners.tcp] with \
                 bind = \"0.0.0.0:1883\"",
            );
        }
        listeners
    }
}

impl RawTlsKeys {
    /// The TLS settings of the listener `table` (`listeners.ssl`); problems for a missing
    /// file or contradictory switches. The files themselves are read when it is bound.
    pub(super) fn validate(
        self,
        table: &str,
        kind: ListenerKind,
        problems: &mut Problems,
    ) -> Option<TlsConfig> {
        let elsewhere = if kind == ListenerKind::Wss {
            " (here or in [listeners.ssl])"
        } else {
            ""
        };
        if self.certfile.is_none() {
            problems.add(
                &format!("{table}.certfile"),
                format!("required{elsewhere}: the server's certificate chain (PEM file)"),
            );
        }
        if self.keyfile.is_none() {
            problems.add(
                &format!("{table}.keyfile"),
                format!("required{elsewhere}: the server's private key (PEM file)"),
            );
        }
        let verify_peer = self.verify_peer.unwrap_or(false);
        let fail_if_no_peer_cert = self.fail_if_no_peer_cert.unwrap_or(false);
        let use_identity_as_username = self.use_identity_as_username.unwrap_or(false);
        let use_subject_as_username = self.use_subject_as_username.unwrap_or(false);
        if use_identity_as_username && use_subject_as_username {
            problems.add(
                &format!("{table}.use_subject_as_username"),
                "cannot be on together with use_identity_as_username: the username is either \
                 the certificate's common name or its whole subject",
            );
        }
        if verify_peer && self.cacertfile.is_none() {
            problems.add(
                &format!("{table}.cacertfile"),
                format!(
                    "required{elsewhere} with verify_peer = true: the CA certificates (PEM \
                     file) client certificates are verified against"
                ),
            );
        }
        for (key, on) in [
            ("fail_if_no_peer_cert", fail_if_no_peer_cert),
            ("use_identity_as_username", use_identity_as_username),
            ("use_subject_as_username", use_subject_as_username),
        ] {
            if on && !verify_peer {
                problems.add(
                    &format!("{table}.{key}"),
                    "needs verify_peer = true (client certificates are not asked for)",
                );
            }
        }
        Some(TlsConfig {
            certfile: self.certfile?,
            keyfile: self.keyfile?,
            cacertfile: self.cacertfile,
            verify_peer,
            fail_if_no_peer_cert,
            use_identity_as_username,
            use_subject_as_username,
        })
    }
}
