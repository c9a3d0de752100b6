//! The configuration file: TOML text in, a validated [`Config`] out, or an error that names
//! every offending key (`mqtt.max_inflight: must be between 1 and 65535, got 0`).
//!
//! Parsing happens in two steps. Serde reads the text into `Raw*` structs that mirror the file
//! (unknown keys are errors; absent keys take their defaults); then [`RawConfig::validate`]
//! checks ranges and turns it into the broker's own types. Nothing is started until both
//! succeed, so the broker never runs half-configured. The defaults of the `[mqtt]` table are
//! [`MqttConfig::default`]'s: broker-core owns them, and a test keeps the example file
//! `etc/nanomq.toml` (which is also the embedded default configuration) in line with them.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use broker_core::{DropPolicy, MqttConfig, QueueFull, SharedStrategy, SyncPolicy};
use serde::{Deserialize, Deserializer};

use crate::units::{ByteSize, Expiry, HumanDuration};

mod limits;

/// The configuration `nanomq start` runs on without `--conf`: the documented example file.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("../etc/nanomq.toml");

/// The smallest `mqtt.max_packet_size` accepted: below this not even a CONNECT fits.
const MIN_PACKET_SIZE: u64 = 64;

/// The largest packet MQTT can express: a 5-byte fixed header and 268,435,455 bytes.
const MAX_PACKET_SIZE: u64 = 268_435_460;

/// A validated configuration: everything `nanomq start` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The listeners to open, at least one.
    pub(crate) listeners: Vec<ListenerConfig>,
    /// The broker's settings.
    pub(crate) mqtt: MqttConfig,
    /// Where and what to log.
    pub(crate) log: LogConfig,
    /// The session store, if persistence is on.
    pub(crate) persistence: Option<PersistenceConfig>,
}

/// The `[persistence]` table of a configuration that turns persistence on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersistenceConfig {
    /// The SQLite database file.
    pub(crate) path: PathBuf,
    /// When publishers are acknowledged relative to the store.
    pub(crate) sync: SyncPolicy,
}

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
    fn feature(self) -> &'static str {
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
}

/// The least severe level that is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogLevel {
    /// Everything.
    Trace,
    /// Per-connection detail (a rejected packet, a closed connection).
    Debug,
    /// Start, stop, listeners.
    Info,
    /// Something went wrong but the broker carries on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The level as a tracing filter directive.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// When a log file is replaced by a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Rotation {
    /// One file, appended to.
    Never,
    /// A new file every day, the date appended to its name.
    Daily,
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogTarget {
    /// Standard error.
    Console,
    /// A file.
    File {
        /// Its directory (created if missing).
        dir: PathBuf,
        /// Its name within `dir`.
        file: String,
        /// When a new file is started.
        rotation: Rotation,
    },
}

/// The `[log]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogConfig {
    /// The least severe level logged (`RUST_LOG`, when set, overrides it).
    pub(crate) level: LogLevel,
    /// Where the log goes.
    pub(crate) target: LogTarget,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The dotted key it is about (`mqtt.max_inflight`); `None` for a TOML syntax error.
    pub(crate) key: Option<String>,
    /// What is wrong with it.
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a configuration was refused: every problem found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The problems, at least one.
    pub(crate) problems: Vec<Problem>,
}

impl ConfigError {
    /// An error with a single problem about `key`.
    fn one(key: Option<String>, message: String) -> Self {
        Self {
            problems: vec![Problem { key, message }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses and validates a configuration file's text.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    read(text)?.validate()
}

/// The embedded default configuration ([`DEFAULT_CONFIG`]), less the listeners this build
/// lacks: a broker built with `--no-default-features --features tcp` starts on TCP alone
/// instead of refusing its own default.
pub(crate) fn parse_default() -> Result<Config, ConfigError> {
    let mut raw = read(DEFAULT_CONFIG)?;
    let listeners = &mut raw.listeners;
    if !ListenerKind::Tcp.compiled_in() {
        listeners.tcp = None;
    }
    if !ListenerKind::Tls.compiled_in() {
        listeners.ssl = None;
    }
    if !ListenerKind::Ws.compiled_in() {
        listeners.ws = None;
    }
    if !ListenerKind::Wss.compiled_in() {
        listeners.wss = None;
    }
    raw.validate()
}

/// Reads the text into the file's structure, without validating values.
fn read(text: &str) -> Result<RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::one(None, format!("invalid TOML: {}", describe(&e, text))))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        // The path of an error at the top level is ".".
        let key = (key != ".").then_some(key);
        ConfigError::one(key, describe(e.inner(), text))
    })
}

/// A toml error's message and, when it has one, its position in `text`.
fn describe(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let (line, column) = position(text, &span);
            format!("{message} (line {line}, column {column})")
        }
        None => message.to_owned(),
    }
}

/// The 1-based line and column (in characters) where `span` starts in `text`.
fn position(text: &str, span: &Range<usize>) -> (usize, usize) {
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The file as written: every table optional, every key in it optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a configuration file")]
struct RawConfig {
    /// `[listeners.*]`.
    listeners: RawListeners,
    /// `[mqtt]`.
    mqtt: RawMqtt,
    /// `[limits]`.
    limits: limits::RawLimits,
    /// `[log]`.
    log: RawLog,
    /// `[persistence]`.
    persistence: RawPersistence,
}

/// `[persistence]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [persistence] table")]
struct RawPersistence {
    enabled: bool,
    path: PathBuf,
    sync: RawSync,
    flush_interval: HumanDuration,
}

impl Default for RawPersistence {
    fn default() -> Self {
        Self {
            enabled: false,
            path: PathBuf::from("data/nanomq.db"),
            sync: RawSync::Always,
            flush_interval: HumanDuration(Duration::from_millis(100)),
        }
    }
}

/// `persistence.sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSync {
    Always,
    Periodic,
}

impl RawPersistence {
    /// The store's settings, if it is on; problems for an empty path or a zero interval.
    fn validate(self, problems: &mut Problems) -> Option<PersistenceConfig> {
        if self.path.as_os_str().is_empty() {
            problems.add("persistence.path", "must not be empty");
        }
        let interval = problems.positive("persistence.flush_interval", self.flush_interval.0);
        let sync = match self.sync {
            RawSync::Always => SyncPolicy::Always,
            RawSync::Periodic => SyncPolicy::Periodic(interval),
        };
        self.enabled.then_some(PersistenceConfig {
            path: self.path,
            sync,
        })
    }
}

/// `[listeners]`: one optional table per listener kind; an absent table means that listener is
/// off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of listener tables")]
struct RawListeners {
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
struct RawListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
}

/// `[listeners.ws]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
struct RawWsListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    /// `path = "/mqtt"`.
    #[serde(default = "default_ws_path")]
    path: String,
}

/// The TLS keys of `[listeners.ssl]` and `[listeners.wss]`, each optional here: `ssl`
/// requires `certfile` and `keyfile`, `wss` takes what it lacks from `ssl`.
#[derive(Debug, Default, Clone)]
struct RawTlsKeys {
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cacertfile: Option<PathBuf>,
    verify_peer: Option<bool>,
    fail_if_no_peer_cert: Option<bool>,
    use_identity_as_username: Option<bool>,
}

/// `[listeners.ssl]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
struct RawSslListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cacertfile: Option<PathBuf>,
    verify_peer: Option<bool>,
    fail_if_no_peer_cert: Option<bool>,
    use_identity_as_username: Option<bool>,
}

impl RawSslListener {
    /// Its TLS keys.
    fn tls_keys(&self) -> RawTlsKeys {
        RawTlsKeys {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cacertfile: self.cacertfile.clone(),
            verify_peer: self.verify_peer,
            fail_if_no_peer_cert: self.fail_if_no_peer_cert,
            use_identity_as_username: self.use_identity_as_username,
        }
    }
}

/// `[listeners.wss]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a listener table")]
struct RawWssListener {
    /// `bind = "IP:PORT"`; required.
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    /// `path = "/mqtt"`.
    #[serde(default = "default_ws_path")]
    path: String,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cacertfile: Option<PathBuf>,
    verify_peer: Option<bool>,
    fail_if_no_peer_cert: Option<bool>,
    use_identity_as_username: Option<bool>,
}

impl RawWssListener {
    /// Its TLS keys, each taken from `ssl` when this table lacks it.
    fn tls_keys(&self, ssl: Option<&RawTlsKeys>) -> RawTlsKeys {
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
        }
    }
}

/// The default WebSocket path.
fn default_ws_path() -> String {
    "/mqtt".to_owned()
}

/// `[mqtt]`. Integers are read as TOML's `i64` and range-checked in `validate`, so that every
/// out-of-range value gets the same kind of message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [mqtt] table")]
struct RawMqtt {
    max_packet_size: ByteSize,
    max_mqueue_len: i64,
    max_mqueue_bytes: ByteSize,
    mqueue_drop: RawDropPolicy,
    mqueue_full: RawQueueFull,
    mqueue_full_wait: HumanDuration,
    queue_qos0: bool,
    max_inflight: i64,
    retry_interval: HumanDuration,
    keepalive_multiplier: f64,
    session_expiry_default: Expiry,
    max_topic_alias: i64,
    server_keep_alive: i64,
    connect_timeout: HumanDuration,
    shared_strategy: RawSharedStrategy,
}

impl Default for RawMqtt {
    fn default() -> Self {
        let d = MqttConfig::default();
        Self {
            max_packet_size: ByteSize(d.max_packet_size.into()),
            max_mqueue_len: i64::try_from(d.max_mqueue_len).unwrap_or(i64::MAX),
            max_mqueue_bytes: ByteSize(u64::try_from(d.max_mqueue_bytes).unwrap_or(u64::MAX)),
            mqueue_drop: d.mqueue_drop.into(),
            mqueue_full: d.mqueue_full.into(),
            mqueue_full_wait: HumanDuration(d.mqueue_full_wait),
            queue_qos0: d.queue_qos0,
            max_inflight: d.max_inflight.into(),
            retry_interval: HumanDuration(d.retry_interval),
            keepalive_multiplier: d.keepalive_multiplier.into(),
            session_expiry_default: d
                .session_expiry_default
                .map_or(Expiry::Never, Expiry::After),
            max_topic_alias: d.max_topic_alias.into(),
            server_keep_alive: d.server_keep_alive.map_or(0, i64::from),
            connect_timeout: HumanDuration(d.connect_timeout),
            shared_strategy: d.shared_strategy.into(),
        }
    }
}

/// `mqtt.mqueue_drop`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawDropPolicy {
    DropOldest,
    DropNewest,
}

impl From<DropPolicy> for RawDropPolicy {
    fn from(policy: DropPolicy) -> Self {
        match policy {
            DropPolicy::DropOldest => Self::DropOldest,
            DropPolicy::DropNewest => Self::DropNewest,
        }
    }
}

impl From<RawDropPolicy> for DropPolicy {
    fn from(policy: RawDropPolicy) -> Self {
        match policy {
            RawDropPolicy::DropOldest => Self::DropOldest,
            RawDropPolicy::DropNewest => Self::DropNewest,
        }
    }
}

/// `mqtt.mqueue_full`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawQueueFull {
    Backpressure,
    Drop,
}

impl From<QueueFull> for RawQueueFull {
    fn from(full: QueueFull) -> Self {
        match full {
            QueueFull::Backpressure => Self::Backpressure,
            QueueFull::Drop => Self::Drop,
        }
    }
}

impl From<RawQueueFull> for QueueFull {
    fn from(full: RawQueueFull) -> Self {
        match full {
            RawQueueFull::Backpressure => Self::Backpressure,
            RawQueueFull::Drop => Self::Drop,
        }
    }
}

/// `mqtt.shared_strategy`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawSharedStrategy {
    RoundRobin,
    Random,
}

impl From<SharedStrategy> for RawSharedStrategy {
    fn from(strategy: SharedStrategy) -> Self {
        match strategy {
            SharedStrategy::RoundRobin => Self::RoundRobin,
            SharedStrategy::Random => Self::Random,
        }
    }
}

impl From<RawSharedStrategy> for SharedStrategy {
    fn from(strategy: RawSharedStrategy) -> Self {
        match strategy {
            RawSharedStrategy::RoundRobin => Self::RoundRobin,
            RawSharedStrategy::Random => Self::Random,
        }
    }
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [log] table")]
struct RawLog {
    level: LogLevel,
    to: RawLogTo,
    dir: PathBuf,
    file: String,
    rotation: Rotation,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            to: RawLogTo::Console,
            dir: PathBuf::from("logs"),
            file: "nanomq.log".to_owned(),
            rotation: Rotation::Never,
        }
    }
}

/// `log.to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawLogTo {
    Console,
    File,
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

/// Collects the problems found while validating.
#[derive(Debug, Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// Records that `key` is wrong.
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }

    /// `value` as a `T` if it lies in `min..=max`; otherwise records a problem and gives `None`.
    fn in_range<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: i64,
        min: i64,
        max: i64,
    ) -> Option<T> {
        if (min..=max).contains(&value)
            && let Ok(value) = T::try_from(value)
        {
            return Some(value);
        }
        if max == i64::MAX {
            self.add(key, format!("must be at least {min}, got {value}"));
        } else {
            self.add(key, format!("must be between {min} and {max}, got {value}"));
        }
        None
    }

    /// `value` if it is not zero; otherwise records a problem.
    fn positive(&mut self, key: &str, value: Duration) -> Duration {
        if value.is_zero() {
            self.add(key, "must be greater than zero");
        }
        value
    }
}

impl RawConfig {
    /// Checks every value and converts the file into the broker's types, reporting every
    /// problem at once.
    fn validate(self) -> Result<Config, ConfigError> {
        let mut problems = Problems::default();
        let mut listeners = self.listeners.validate(&mut problems);
        let mut mqtt = self.mqtt.validate(&mut problems);
        mqtt.limits = self.limits.validate(&mut problems);
        // A WebSocket message may be as large as the largest packet.
        for ws in listeners.iter_mut().filter_map(|l| l.ws.as_mut()) {
            ws.max_message_size = usize::try_from(mqtt.max_packet_size).unwrap_or(usize::MAX);
        }
        let log = self.log.validate(&mut problems);
        let persistence = self.persistence.validate(&mut problems);
        if problems.0.is_empty() {
            Ok(Config {
                listeners,
                mqtt,
                log,
                persistence,
            })
        } else {
            Err(ConfigError {
                problems: problems.0,
            })
        }
    }
}

impl RawListeners {
    /// The listeners that are on; a problem if there are none or one is compiled out.
    fn validate(self, problems: &mut Problems) -> Vec<ListenerConfig> {
        let ssl_keys = self.ssl.as_ref().map(RawSslListener::tls_keys);
        let mut requested = Vec::new();
        if let Some(raw) = self.tcp {
            requested.push((ListenerKind::Tcp, raw.bind, None, None));
        }
        if let Some(raw) = &self.ssl {
            requested.push((ListenerKind::Tls, raw.bind, None, ssl_keys.clone()));
        }
        if let Some(raw) = self.ws {
            requested.push((ListenerKind::Ws, raw.bind, Some(raw.path), None));
        }
        if let Some(raw) = &self.wss {
            let keys = raw.tls_keys(ssl_keys.as_ref());
            requested.push((
                ListenerKind::Wss,
                raw.bind,
                Some(raw.path.clone()),
                Some(keys),
            ));
        }
        let mut listeners = Vec::new();
        for (kind, bind, path, tls) in requested {
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
    fn validate(
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
        })
    }
}

impl RawMqtt {
    /// The broker's settings; problems for values out of range.
    fn validate(self, problems: &mut Problems) -> MqttConfig {
        let defaults = MqttConfig::default();
        let max_packet_size =
            if (MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&self.max_packet_size.0) {
                u32::try_from(self.max_packet_size.0).unwrap_or(u32::MAX)
            } else {
                problems.add(
                "mqtt.max_packet_size",
                format!(
                    "must be between {MIN_PACKET_SIZE} bytes and 256MB ({MAX_PACKET_SIZE} bytes), \
                     got {} bytes",
                    self.max_packet_size.0
                ),
            );
                defaults.max_packet_size
            };
        let max_mqueue_len = problems
            .in_range("mqtt.max_mqueue_len", self.max_mqueue_len, 1, i64::MAX)
            .unwrap_or(defaults.max_mqueue_len);
        let max_mqueue_bytes = match usize::try_from(self.max_mqueue_bytes.0) {
            Ok(bytes) if bytes > 0 => bytes,
            _ => {
                problems.add(
                    "mqtt.max_mqueue_bytes",
                    format!(
                        "must be between 1 byte and {} bytes, got {} bytes",
                        usize::MAX,
                        self.max_mqueue_bytes.0
                    ),
                );
                defaults.max_mqueue_bytes
            }
        };
        let max_inflight = problems
            .in_range("mqtt.max_inflight", self.max_inflight, 1, u16::MAX.into())
            .unwrap_or(defaults.max_inflight);
        let keepalive_multiplier = if self.keepalive_multiplier >= 1.0
            && self.keepalive_multiplier <= f64::from(u16::MAX)
        {
            // In range, so the conversion loses only precision nobody configures.
            #[allow(clippy::cast_possible_truncation)]
            let multiplier = self.keepalive_multiplier as f32;
            multiplier
        } else {
            problems.add(
                "mqtt.keepalive_multiplier",
                format!(
                    "must be between 1.0 and 65535, got {}",
                    self.keepalive_multiplier
                ),
            );
            defaults.keepalive_multiplier
        };
        let max_topic_alias = problems
            .in_range(
                "mqtt.max_topic_alias",
                self.max_topic_alias,
                0,
                u16::MAX.into(),
            )
            .unwrap_or(defaults.max_topic_alias);
        let server_keep_alive = problems
            .in_range::<u16>(
                "mqtt.server_keep_alive",
                self.server_keep_alive,
                0,
                u16::MAX.into(),
            )
            .filter(|&seconds| seconds > 0);
        MqttConfig {
            max_packet_size,
            max_mqueue_len,
            max_mqueue_bytes,
            mqueue_drop: self.mqueue_drop.into(),
            mqueue_full: self.mqueue_full.into(),
            mqueue_full_wait: problems.positive("mqtt.mqueue_full_wait", self.mqueue_full_wait.0),
            queue_qos0: self.queue_qos0,
            max_inflight,
            retry_interval: problems.positive("mqtt.retry_interval", self.retry_interval.0),
            keepalive_multiplier,
            session_expiry_default: match self.session_expiry_default {
                Expiry::Never => None,
                Expiry::After(duration) => Some(duration),
            },
            max_topic_alias,
            server_keep_alive,
            connect_timeout: problems.positive("mqtt.connect_timeout", self.connect_timeout.0),
            shared_strategy: self.shared_strategy.into(),
            // From [limits], set by the caller.
            limits: defaults.limits,
        }
    }
}

impl RawLog {
    /// Where and what to log; problems for an unusable directory or file name.
    fn validate(self, problems: &mut Problems) -> LogConfig {
        if self.dir.as_os_str().is_empty() {
            problems.add("log.dir", "must not be empty");
        }
        if self.file.is_empty() || self.file == "." || self.file == ".." {
            problems.add(
                "log.file",
                format!("must be a file name, got \"{}\"", self.file),
            );
        } else if self.file.contains(['/', '\\']) {
            problems.add(
                "log.file",
                format!(
                    "must be a file name without a directory (put the directory in log.dir), \
                     got \"{}\"",
                    self.file
                ),
            );
        }
        let target = match self.to {
            RawLogTo::Console => LogTarget::Console,
            RawLogTo::File => LogTarget::File {
                dir: self.dir,
                file: self.file,
                rotation: self.rotation,
            },
        };
        LogConfig {
            level: self.level,
            target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of a configuration that must be refused, as displayed.
    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("accepted a bad configuration:\n{text}\n=> {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// Asserts that `text` is refused with a message naming `key` and containing `words`.
    #[track_caller]
    fn assert_refused(text: &str, key: &str, words: &str) {
        let message = refused(text);
        assert!(
            message.contains(key) && message.contains(words),
            "expected an error naming `{key}` and saying \"{words}\" for\n{text}\ngot: {message}"
        );
    }

    /// A configuration with a TCP listener and `extra` appended.
    fn with_tcp(extra: &str) -> String {
        format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n{extra}")
    }

    #[cfg(all(feature = "tcp", feature = "ws"))]
    #[test]
    fn the_example_file_is_the_default_and_parses() {
        let config = parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(parse_default().unwrap().listeners, config.listeners);
        assert_eq!(
            config.listeners,
            [
                ListenerConfig::plain(ListenerKind::Tcp, "0.0.0.0:1883".parse().unwrap()),
                ListenerConfig {
                    kind: ListenerKind::Ws,
                    bind: "0.0.0.0:8083".parse().unwrap(),
                    ws: Some(WsConfig {
                        path: "/mqtt".to_owned(),
                        max_message_size: 1024 * 1024,
                    }),
                    tls: None,
                },
            ]
        );
        // The example documents the defaults, so it must say what broker-core defaults to.
        assert_eq!(config.mqtt, MqttConfig::default());
        assert_eq!(
            config.log,
            LogConfig {
                level: LogLevel::Info,
                target: LogTarget::Console,
            }
        );
    }

    #[cfg(all(feature = "tcp", not(feature = "ws")))]
    #[test]
    fn without_websocket_the_default_listens_on_tcp_alone() {
        // The example file asks for a ws listener, which this build cannot open.
        assert!(parse(DEFAULT_CONFIG).is_err());
        assert_eq!(
            parse_default().unwrap().listeners,
            [ListenerConfig::plain(
                ListenerKind::Tcp,
                "0.0.0.0:1883".parse().unwrap()
            )]
        );
    }

    #[test]
    fn the_example_file_on_disk_is_the_embedded_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/nanomq.toml");
        assert_eq!(std::fs::read_to_string(path).unwrap(), DEFAULT_CONFIG);
    }

    #[test]
    fn the_example_file_mentions_every_key() {
        for key in [
            "[listeners.tcp]",
            "bind =",
            "[listeners.ws]",
            "path =",
            "[listeners.ssl]",
            "certfile =",
            "keyfile =",
            "cacertfile =",
            "verify_peer =",
            "fail_if_no_peer_cert =",
            "use_identity_as_username =",
            "[listeners.wss]",
            "[mqtt]",
            "max_packet_size =",
            "max_mqueue_len =",
            "max_mqueue_bytes =",
            "mqueue_drop =",
            "mqueue_full =",
            "mqueue_full_wait =",
            "queue_qos0 =",
            "max_inflight =",
            "retry_interval =",
            "keepalive_multiplier =",
            "session_expiry_default =",
            "max_topic_alias =",
            "server_keep_alive =",
            "connect_timeout =",
            "shared_strategy =",
            "[log]",
            "level =",
            "to =",
            "dir =",
            "file =",
            "rotation =",
            "[persistence]",
            "enabled =",
            "sync =",
            "flush_interval =",
        ] {
            assert!(
                DEFAULT_CONFIG.contains(key),
                "etc/nanomq.toml does not document {key}"
            );
        }
    }

    #[cfg(feature = "tcp")]
    #[test]
    fn persistence_is_off_unless_enabled() {
        assert_eq!(parse(&with_tcp("")).unwrap().persistence, None);
        let off = "[persistence]\npath = \"x.db\"\nsync = \"periodic\"\n";
        assert_eq!(parse(&with_tcp(off)).unwrap().persistence, None);
        let on = parse(&with_tcp("[persistence]\nenabled = true\n")).unwrap();
        assert_eq!(
            on.persistence,
            Some(PersistenceConfig {
                path: PathBuf::from("data/nanomq.db"),
                sync: SyncPolicy::Always,
            })
        );
        let periodic = parse(&with_tcp(
            "[persistence]\nenabled = true\npath = \"/var/lib/nanomq/s.db\"\n\
             sync = \"periodic\"\nflush_interval = \"250ms\"\n",
        ))
        .unwrap();
        assert_eq!(
            periodic.persistence,
            Some(PersistenceConfig {
                path: PathBuf::from("/var/lib/nanomq/s.db"),
                sync: SyncPolicy::Periodic(Duration::from_millis(250)),
            })
        );
    }

    #[cfg(feature = "tcp")]
    #[test]
    fn bad_persistence_settings_are_refused() {
        assert_refused(
            &with_tcp("[persistence]\nsync = \"sometimes\"\n"),
            "persistence.sync",
            "sometimes",
        );
        assert_refused(
            &with_tcp("[persistence]\nenabled = true\npath = \"\"\n"),
            "persistence.path",
            "must not be empty",
        );
        assert_refused(
            &with_tcp("[persistence]\nflush_interval = \"0s\"\n"),
            "persistence.flush_interval",
            "greater than zero",
        );
        assert_refused(
            &with_tcp("[persistence]\nenabled = \"yes\"\n"),
            "persistence.enabled",
            "bool",
        );
        assert_refused(
            &with_tcp("[persistence]\ndurable = true\n"),
            "persistence",
            "durable",
        );
    }

    #[cfg(feature = "tcp")]
    #[test]
    fn absent_keys_take_the_defaults() {
        let config = parse(&with_tcp("")).unwrap();
        assert_eq!(config.mqtt, MqttConfig::default());
        assert_eq!(config.log.level, LogLevel::Info);
        assert_eq!(config.log.target, LogTarget::Console);
        let config = parse(&with_tcp("[mqtt]\n[log]\n")).unwrap();
        assert_eq!(config.mqtt, MqttConfig::default());
    }

    #[cfg(feature = "tcp")]
    #[test]
    fn every_key_is_read() {
        let config = parse(
            r#"
            [listeners.tcp]
            bind = "[::1]:2883"

            [mqtt]
            max_packet_size = "512KB"
            max_mqueue_len = 10
            max_mqueue_bytes = 4096
            mqueue_drop = "drop_newest"
            mqueue_full = "drop"
            mqueue_full_wait = "5s"
            queue_qos0 = true
            max_inflight = 5
            retry_interval = "1m 30s"
            keepalive_multiplier = 2
            session_expiry_default = "never"
            max_topic_alias = 0
            server_keep_alive = 30
            connect_timeout = 3
            shared_strategy = "random"

            [log]
            level = "debug"
            to = "file"
            dir = "/var/log/nanomq"
            file = "broker.log"
            rotation = "daily"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.listeners,
            [ListenerConfig::plain(
                ListenerKind::Tcp,
                "[::1]:2883".parse().unwrap()
            )]
        );
        assert_eq!(
            config.mqtt,
            MqttConfig {
                max_packet_size: 512 * 1024,
                max_mqueue_len: 10,
                max_mqueue_bytes: 4096,
                mqueue_drop: DropPolicy::DropNewest,
                mqueue_full: QueueFull::Drop,
                mqueue_full_wait: Duration::from_secs(5),
                queue_qos0: true,
                max_inflight: 5,
                retry_interval: Duration::from_secs(90),
                keepalive_multiplier: 2.0,
                session_expiry_default: None,
                max_topic_alias: 0,
                server_keep_alive: Some(30),
                connect_timeout: Duration::from_secs(3),
                shared_strategy: SharedStrategy::Random,
                limits: broker_core::Limits::default(),
            }
        );
        assert_eq!(
            config.log,
            LogConfig {
                level: LogLevel::Debug,
                target: LogTarget::File {
                    dir: PathBuf::from("/var/log/nanomq"),
                    file: "broker.log".to_owned(),
                    rotation: Rotation::Daily,
                },
            }
        );
    }

    #[cfg(feature = "tcp")]
    #[test]
    fn alternative_spellings() {
        let config = parse(&with_tcp(
            "[mqtt]\nmax_packet_size = 2048\nsession_expiry_default = 60\n\
             retry_interval = \"500ms\"\nkeepalive_multiplier = 1.0\nserver_keep_alive = 0\n",
        ))
        .unwrap();
        assert_eq!(config.mqtt.max_packet_size, 2048);
        assert_eq!(
            config.mqtt.session_expiry_default,
            Some(Duration::from_secs(60))
        );
        assert_eq!(config.mqtt.retry_interval, Duration::from_millis(500));
        assert!((config.mqtt.keepalive_multiplier - 1.0).abs() < f32::EPSILON);
        assert_eq!(config.mqtt.server_keep_alive, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert_refused(
            &with_tcp("[mqtt]\nmax_inflght = 5\n"),
            "mqtt.max_inflght",
            "unknown field",
        );
        assert_refused(
            &with_tcp("[log]\ncolour = true\n"),
            "log.colour",
            "unknown field",
        );
        assert_refused(&with_tcp("[mqttt]\n"), "mqttt", "unknown field");
        assert_refused(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\nport = 1\n",
            "listeners.tcp.port",
            "unknown field",
        );
        assert_refused(
            "[listeners.quic]\nbind = \"127.0.0.1:0\"\n",
            "listeners.quic",
            "unknown field",
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        assert_refused(
            &with_tcp("[mqtt]\nmax_inflight = \"lots\"\n"),
            "mqtt.max_inflight",
            "invalid type",
        );
        assert_refused(
            &with_tcp("[mqtt]\nqueue_qos0 = 1\n"),
            "mqtt.queue_qos0",
            "invalid type",
        );
        assert_refused(
            &with_tcp("[mqtt]\nmax_packet_size = true\n"),
            "mqtt.max_packet_size",
            "invalid type",
        );
        assert_refused(
            &with_tcp("[mqtt]\nretry_interval = [1]\n"),
            "mqtt.retry_interval",
            "invalid type",
        );
        assert_refused(
            &with_tcp("[log]\nlevel = 3\n"),
            "log.level",
            "wanted string",
        );
        assert_refused(
            "[listeners.tcp]\nbind = 1883\n",
            "listeners.tcp.bind",
            "invalid type",
        );
        assert_refused("listeners = 1\n", "listeners", "invalid type");
    }

    #[test]
    fn bad_values_are_refused() {
        assert_refused(
            "[listeners.tcp]\nbind = \"localhost:1883\"\n",
            "listeners.tcp.bind",
            "expected IP:PORT",
        );
        assert_refused(
            "[listeners.tcp]\nbind = \"0.0.0.0\"\n",
            "listeners.tcp.bind",
            "expected IP:PORT",
        );
        assert_refused(
            "[listeners.tcp]\nbind = \"0.0.0.0:99999\"\n",
            "listeners.tcp.bind",
            "expected IP:PORT",
        );
        assert_refused(
            &with_tcp("[mqtt]\nmax_packet_size = \"1TB\"\n"),
            "mqtt.max_packet_size",
            "unknown unit",
        );
        assert_refused(
            &with_tcp("[mqtt]\nretry_interval = \"soon\"\n"),
            "mqtt.retry_interval",
            "invalid duration",
        );
        assert_refused(
            &with_tcp("[mqtt]\nsession_expiry_default = \"forever\"\n"),
            "mqtt.session_expiry_default",
            "invalid duration",
        );
        assert_refused(
            &with_tcp("[mqtt]\nmqueue_drop = \"drop_random\"\n"),
            "mqtt.mqueue_drop",
            "unknown variant",
        );
        assert_refused(
            &with_tcp("[mqtt]\nmqueue_full = \"block\"\n"),
            "mqtt.mqueue_full",
            "unknown variant",
        );
        assert_refused(
            &with_tcp("[mqtt]\nmqueue_full_wait = \"a while\"\n"),
            "mqtt.mqueue_full_wait",
            "invalid duration",
        );
        assert_refused(
            &with_tcp("[mqtt]\nshared_strategy = \"sticky\"\n"),
            "mqtt.shared_strategy",
            "unknown variant",
        );
        assert_refused(
            &with_tcp("[log]\nlevel = \"verbose\"\n"),
            "log.level",
            "unknown variant",
        );
        assert_refused(
            &with_tcp("[log]\nto = \"syslog\"\n"),
            "log.to",
            "unknown variant",
        );
        assert_refused(
            &with_tcp("[log]\nrotation = \"hourly\"\n"),
            "log.rotation",
            "unknown variant",
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let cases = [
            (
                "max_inflight = 0",
                "mqtt.max_inflight",
                "between 1 and 65535, got 0",
            ),
            ("max_inflight = 65536", "mqtt.max_inflight", "got 65536"),
            ("max_inflight = -3", "mqtt.max_inflight", "got -3"),
            (
                "keepalive_multiplier = 0.5",
                "mqtt.keepalive_multiplier",
                "got 0.5",
            ),
            (
                "keepalive_multiplier = nan",
                "mqtt.keepalive_multiplier",
                "got NaN",
            ),
            (
                "keepalive_multiplier = inf",
                "mqtt.keepalive_multiplier",
                "got inf",
            ),
            (
                "max_packet_size = 10",
                "mqtt.max_packet_size",
                "got 10 bytes",
            ),
            ("max_packet_size = \"1GB\"", "mqtt.max_packet_size", "256MB"),
            (
                "max_packet_size = -1",
                "mqtt.max_packet_size",
                "invalid value",
            ),
            ("max_mqueue_len = 0", "mqtt.max_mqueue_len", "got 0"),
            (
                "max_mqueue_bytes = 0",
                "mqtt.max_mqueue_bytes",
                "got 0 bytes",
            ),
            (
                "max_topic_alias = 65536",
                "mqtt.max_topic_alias",
                "between 0 and 65535",
            ),
            (
                "server_keep_alive = 70000",
                "mqtt.server_keep_alive",
                "got 70000",
            ),
            (
                "retry_interval = \"0s\"",
                "mqtt.retry_interval",
                "greater than zero",
            ),
            (
                "connect_timeout = 0",
                "mqtt.connect_timeout",
                "greater than zero",
            ),
            (
                "mqueue_full_wait = \"0s\"",
                "mqtt.mqueue_full_wait",
                "greater than zero",
            ),
            (
                "session_expiry_default = -5",
                "mqtt.session_expiry_default",
                "invalid value",
            ),
        ];
        for (line, key, words) in cases {
            assert_refused(&with_tcp(&format!("[mqtt]\n{line}\n")), key, words);
        }
        assert_refused(
            &with_tcp("[log]\nfile = \"\"\n"),
            "log.file",
            "must be a file name",
        );
        assert_refused(
            &with_tcp("[log]\nfile = \"a/b.log\"\n"),
            "log.file",
            "without a directory",
        );
        assert_refused(
            &with_tcp("[log]\ndir = \"\"\n"),
            "log.dir",
            "must not be empty",
        );
    }

    #[cfg(feature = "tcp")]
    #[test]
    fn every_range_problem_is_reported_at_once() {
        let message = refused(&with_tcp(
            "[mqtt]\nmax_inflight = 0\nkeepalive_multiplier = 0.9\n",
        ));
        assert!(message.contains("mqtt.max_inflight"), "{message}");
        assert!(message.contains("mqtt.keepalive_multiplier"), "{message}");
        assert_eq!(message.lines().count(), 2, "{message}");
    }

    #[test]
    fn a_configuration_without_a_listener_is_refused() {
        assert_refused("", "listeners", "no listener is configured");
        assert_refused(
            "[mqtt]\nmax_inflight = 8\n",
            "listeners",
            "no listener is configured",
        );
        assert_refused("[listeners]\n", "listeners", "no listener is configured");
    }

    #[test]
    fn syntax_errors_give_the_position() {
        let message = refused("[listeners.tcp]\nbind = \"127.0.0.1:0\n");
        assert!(message.starts_with("invalid TOML: "), "{message}");
        assert!(message.contains("line 2"), "{message}");
        let message = refused(&with_tcp("[mqtt]\nmax_inflight = 5\nmax_inflight = 6\n"));
        assert!(message.contains("duplicate key"), "{message}");
    }

    #[test]
    fn errors_give_the_position_of_the_value() {
        let message = refused(&with_tcp("[mqtt]\nmax_inflight = \"x\"\n"));
        assert!(message.contains("(line 4, column 16)"), "{message}");
    }

    #[test]
    fn listener_kinds_name_their_feature() {
        assert_eq!(ListenerKind::Tcp.scheme(), "tcp");
        assert_eq!(ListenerKind::Tcp.feature(), "tcp");
        assert_eq!(ListenerKind::Tcp.compiled_in(), cfg!(feature = "tcp"));
        assert_eq!(ListenerKind::Tls.scheme(), "ssl");
        assert_eq!(ListenerKind::Tls.feature(), "tls");
        assert_eq!(ListenerKind::Tls.compiled_in(), cfg!(feature = "tls"));
        assert_eq!(ListenerKind::Ws.scheme(), "ws");
        assert_eq!(ListenerKind::Ws.feature(), "ws");
        assert_eq!(ListenerKind::Ws.compiled_in(), cfg!(feature = "ws"));
        assert_eq!(ListenerKind::Wss.scheme(), "wss");
        assert_eq!(ListenerKind::Wss.feature(), "ws,tls");
        assert_eq!(
            ListenerKind::Wss.compiled_in(),
            cfg!(all(feature = "ws", feature = "tls"))
        );
    }

    /// The TLS settings with `certfile` and `keyfile` and nothing else.
    #[cfg(all(feature = "ws", feature = "tls"))]
    fn tls(certfile: &str, keyfile: &str) -> TlsConfig {
        TlsConfig {
            certfile: PathBuf::from(certfile),
            keyfile: PathBuf::from(keyfile),
            cacertfile: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
            use_identity_as_username: false,
        }
    }

    #[cfg(all(feature = "ws", feature = "tls"))]
    #[test]
    fn websocket_and_tls_listeners_are_read() {
        let config = parse(
            r#"
            [listeners.ssl]
            bind = "0.0.0.0:8883"
            certfile = "/etc/nanomq/cert.pem"
            keyfile = "/etc/nanomq/key.pem"
            cacertfile = "/etc/nanomq/ca.pem"
            verify_peer = true
            fail_if_no_peer_cert = true
            use_identity_as_username = true

            [listeners.ws]
            bind = "127.0.0.1:8083"

            [listeners.wss]
            bind = "0.0.0.0:8086"
            path = "/ws"
            keyfile = "/etc/nanomq/wss-key.pem"
            fail_if_no_peer_cert = false

            [mqtt]
            max_packet_size = "64KB"
            "#,
        )
        .unwrap();
        let ssl = TlsConfig {
            cacertfile: Some(PathBuf::from("/etc/nanomq/ca.pem")),
            verify_peer: true,
            fail_if_no_peer_cert: true,
            use_identity_as_username: true,
            ..tls("/etc/nanomq/cert.pem", "/etc/nanomq/key.pem")
        };
        assert_eq!(
            config.listeners,
            [
                ListenerConfig {
                    tls: Some(ssl.clone()),
                    ..ListenerConfig::plain(ListenerKind::Tls, "0.0.0.0:8883".parse().unwrap())
                },
                ListenerConfig {
                    ws: Some(WsConfig {
                        path: "/mqtt".to_owned(),
                        max_message_size: 64 * 1024,
                    }),
                    ..ListenerConfig::plain(ListenerKind::Ws, "127.0.0.1:8083".parse().unwrap())
                },
                // What [listeners.wss] does not say, it takes from [listeners.ssl].
                ListenerConfig {
                    ws: Some(WsConfig {
                        path: "/ws".to_owned(),
                        max_message_size: 64 * 1024,
                    }),
                    tls: Some(TlsConfig {
                        keyfile: PathBuf::from("/etc/nanomq/wss-key.pem"),
                        fail_if_no_peer_cert: false,
                        ..ssl
                    }),
                    ..ListenerConfig::plain(ListenerKind::Wss, "0.0.0.0:8086".parse().unwrap())
                },
            ]
        );

        // A wss listener on its own.
        let config = parse(
            "[listeners.wss]\nbind = \"127.0.0.1:0\"\ncertfile = \"c.pem\"\nkeyfile = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].tls, Some(tls("c.pem", "k.pem")));
        assert_eq!(config.listeners[0].ws.as_ref().unwrap().path, "/mqtt");
    }

    #[cfg(all(feature = "ws", feature = "tls"))]
    #[test]
    fn incomplete_tls_settings_are_refused() {
        assert_refused(
            "[listeners.ssl]\nbind = \"127.0.0.1:0\"\nkeyfile = \"k.pem\"\n",
            "listeners.ssl.certfile",
            "required: the server's certificate chain",
        );
        assert_refused(
            "[listeners.ssl]\nbind = \"127.0.0.1:0\"\ncertfile = \"c.pem\"\n",
            "listeners.ssl.keyfile",
            "required",
        );
        assert_refused(
            "[listeners.wss]\nbind = \"127.0.0.1:0\"\n",
            "listeners.wss.certfile",
            "required (here or in [listeners.ssl])",
        );
        let files = "certfile = \"c.pem\"\nkeyfile = \"k.pem\"\n";
        assert_refused(
            &format!("[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}verify_peer = true\n"),
            "listeners.ssl.cacertfile",
            "required with verify_peer = true",
        );
        assert_refused(
            &format!(
                "[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}fail_if_no_peer_cert = true\n"
            ),
            "listeners.ssl.fail_if_no_peer_cert",
            "needs verify_peer = true",
        );
        assert_refused(
            &format!(
                "[listeners.wss]\nbind = \"127.0.0.1:0\"\n{files}\
                 use_identity_as_username = true\n"
            ),
            "listeners.wss.use_identity_as_username",
            "needs verify_peer = true",
        );
        assert_refused(
            &format!("[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}path = \"/mqtt\"\n"),
            "listeners.ssl.path",
            "unknown field",
        );
        assert_refused(
            &format!("[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}verify_peer = \"yes\"\n"),
            "listeners.ssl.verify_peer",
            "invalid type",
        );
    }

    #[cfg(feature = "ws")]
    #[test]
    fn a_websocket_path_must_be_absolute() {
        assert_refused(
            "[listeners.ws]\nbind = \"127.0.0.1:0\"\npath = \"mqtt\"\n",
            "listeners.ws.path",
            "must start with \"/\"",
        );
        assert_refused(
            "[listeners.ws]\nbind = \"127.0.0.1:0\"\nversion = 1\n",
            "listeners.ws.version",
            "unknown field",
        );
    }

    #[cfg(not(feature = "ws"))]
    #[test]
    fn a_compiled_out_websocket_listener_is_refused() {
        assert_refused(
            "[listeners.ws]\nbind = \"127.0.0.1:0\"\n",
            "listeners.ws",
            "built without ws listeners (cargo feature `ws`)",
        );
        assert_refused(
            "[listeners.wss]\nbind = \"127.0.0.1:0\"\n",
            "listeners.wss",
            "rebuild with `--features ws,tls`",
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_compiled_out_tls_listener_is_refused() {
        assert_refused(
            "[listeners.ssl]\nbind = \"127.0.0.1:0\"\n",
            "listeners.ssl",
            "built without ssl listeners (cargo feature `tls`)",
        );
        assert_refused(
            "[listeners.wss]\nbind = \"127.0.0.1:0\"\n",
            "listeners.wss",
            "built without wss listeners (cargo features `ws,tls`)",
        );
    }

    #[cfg(not(feature = "tcp"))]
    #[test]
    fn a_compiled_out_listener_is_refused() {
        assert_refused(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n",
            "listeners.tcp",
            "built without tcp",
        );
    }
}
