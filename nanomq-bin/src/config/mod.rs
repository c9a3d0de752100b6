//! The configuration file: TOML text in, a validated [`Config`] out, or an error that names
//! every offending key (`mqtt.max_inflight: must be between 1 and 65535, got 0`).
//!
//! Parsing happens in two steps. Serde reads the text into `Raw*` structs that mirror the file
//! (unknown keys are errors; absent keys take their defaults); then [`RawConfig::validate`]
//! checks ranges and turns it into the broker's own types. Nothing is started until both
//! succeed, so the broker never runs half-configured. The defaults of the `[mqtt]` table are
//! [`MqttConfig::default`]'s: broker-core owns them, and a test keeps the example file
//! `etc/nanomq.toml` (which is also the embedded default configuration) in line with them.

use std::ops::Range;

use broker_core::MqttConfig;
use serde::Deserialize;

mod auth;
mod auth_acl;
mod auth_http;
mod auth_scram;
mod bridges;
mod http_server;
mod limits;
mod listeners;
mod log;
mod mqtt;
mod persistence;
mod problems;
mod sys;
#[cfg(test)]
mod tests;

use auth::RawAuth;
pub(crate) use auth::{AuthConfig, AuthnSource};
pub(crate) use auth_http::{HttpAuthConfig, OnError};
pub(crate) use bridges::{BridgeConfig, Forward, RemoteSubscription, TopicMap};
pub(crate) use http_server::HttpServerConfig;
#[cfg(test)]
pub(crate) use http_server::Secret;
use listeners::RawListeners;
pub(crate) use listeners::{ListenerConfig, ListenerKind};
use log::RawLog;
pub(crate) use log::{LogConfig, LogTarget, Rotation};
use mqtt::RawMqtt;
pub(crate) use persistence::PersistenceConfig;
use persistence::RawPersistence;
pub(crate) use problems::ConfigError;
use problems::Problems;
pub(crate) use sys::SysConfig;

/// The configuration `nanomq start` runs on without `--conf`: the documented example file.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("../../etc/nanomq.toml");

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
    /// Who may connect and what they may do.
    pub(crate) auth: AuthConfig,
    /// The bridges to upstream brokers.
    pub(crate) bridges: Vec<BridgeConfig>,
    /// The admin HTTP API, if enabled.
    pub(crate) http_server: Option<HttpServerConfig>,
    /// The `$SYS` topics.
    pub(crate) sys: SysConfig,
}

/// Parses and validates a configuration file's text.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    read(text)?.validate()
}

/// The embedded default configuration ([`DEFAULT_CONFIG`]), less the listeners this build
/// lacks: a broker built with `--no-default-features --features tcp` starts on TCP alone
/// instead of refusing its own default.
pub(crate) fn parse_default() -> Result<Config, ConfigError> {
    let mut raw = read(DEFAULT_CONFIG)?;
    raw.listeners.drop_compiled_out();
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
    /// `[auth]`.
    auth: RawAuth,
    /// `[[bridges]]`.
    bridges: Vec<bridges::RawBridge>,
    /// `[http_server]`.
    http_server: http_server::RawHttpServer,
    /// `[sys]`.
    sys: sys::RawSys,
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
        let auth = self.auth.validate(&mut problems);
        let bridges = bridges::validate(self.bridges, &mut problems);
        let http_server = self.http_server.validate(&mut problems);
        let sys = self.sys.validate(&mut problems);
        if problems.0.is_empty() {
            Ok(Config {
                listeners,
                mqtt,
                log,
                persistence,
                auth,
                bridges,
                http_server,
                sys,
            })
        } else {
            Err(ConfigError {
                problems: problems.0,
            })
        }
    }
}
