//! `[[bridges]]`: links to upstream brokers, in the spirit of NanoMQ's `bridges.mqtt.<name>`.
//! Each bridge names its servers (failover in order), the MQTT version and session it keeps
//! upstream, its forwards (local filter to remote topic) and subscriptions (remote filter to
//! local topic), TLS in `[bridges.ssl]`, and how much it holds for an outage.

use std::path::PathBuf;
use std::time::Duration;

use mqtt_client::TlsOptions;
use mqtt_client::endpoint::Endpoint;
use mqtt_codec::{ProtocolVersion, QoS, RetainHandling, TopicFilter, TopicName};
use serde::Deserialize;

use super::Problems;
use crate::units::HumanDuration;

/// One validated bridge.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BridgeConfig {
    /// Its name: in logs, metrics and its local session's client id.
    pub(crate) name: String,
    /// The upstream servers, tried in order.
    pub(crate) servers: Vec<Endpoint>,
    /// MQTT 3.1.1 or 5.
    pub(crate) version: ProtocolVersion,
    /// The client identifier upstream.
    pub(crate) client_id: String,
    /// Keep alive upstream, in seconds.
    pub(crate) keep_alive: u16,
    /// Start a new upstream session at every connection.
    pub(crate) clean_start: bool,
    /// MQTT 5: how long the upstream keeps our session while the link is down, in seconds.
    pub(crate) session_expiry: u32,
    /// Credentials upstream.
    pub(crate) username: Option<String>,
    /// Password upstream.
    pub(crate) password: Option<String>,
    /// TLS towards `mqtts://` and `wss://` servers.
    pub(crate) tls: TlsOptions,
    /// Local filters whose messages go upstream.
    pub(crate) forwards: Vec<Forward>,
    /// Remote filters whose messages come down.
    pub(crate) subscriptions: Vec<RemoteSubscription>,
    /// How many messages the bridge's local session queues while the link is down.
    pub(crate) max_send_queue_len: usize,
    /// How many messages the bridge takes from its local session before the upstream has
    /// acknowledged them (its local Receive Maximum).
    pub(crate) max_inflight: u16,
    /// The longest wait between two connection attempts.
    pub(crate) backoff_max: Duration,
}

/// A topic as the other side sees it: `prefix` + (`topic`, or the message's own topic when
/// empty) + `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMap {
    /// Replaces the message's topic when not empty.
    pub(crate) topic: String,
    /// Put in front.
    pub(crate) prefix: String,
    /// Put after.
    pub(crate) suffix: String,
}

/// `[[bridges.forwards]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    /// The local filter.
    pub(crate) filter: TopicFilter,
    /// Where its messages go upstream.
    pub(crate) remote: TopicMap,
    /// The QoS of the local subscription: messages go upstream at the lower of it and their
    /// own.
    pub(crate) qos: QoS,
    /// The retain flag upstream: `None` keeps the message's own.
    pub(crate) retain: Option<bool>,
}

/// `[[bridges.subscriptions]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteSubscription {
    /// The remote filter.
    pub(crate) filter: TopicFilter,
    /// Where its messages go locally.
    pub(crate) local: TopicMap,
    /// The QoS of the remote subscription.
    pub(crate) qos: QoS,
    /// MQTT 5 retain as published (3.1.1: the bridge bit asks for it).
    pub(crate) retain_as_published: bool,
    /// MQTT 5 retain handling: 0 send retained at subscribe, 1 only for a new
    /// subscription, 2 never.
    pub(crate) retain_handling: RetainHandling,
}

/// One `[[bridges]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[bridges]] table")]
pub(super) struct RawBridge {
    name: String,
    servers: Vec<String>,
    #[serde(default = "default_proto_ver")]
    proto_ver: i64,
    clientid: Option<String>,
    #[serde(default = "default_keepalive")]
    keepalive: HumanDuration,
    #[serde(default)]
    clean_start: bool,
    #[serde(default = "default_session_expiry")]
    session_expiry: HumanDuration,
    username: Option<String>,
    password: Option<String>,
    ssl: Option<RawBridgeTls>,
    #[serde(default)]
    forwards: Vec<RawForward>,
    #[serde(default, alias = "subscription")]
    subscriptions: Vec<RawSubscription>,
    #[serde(default = "default_queue_len")]
    max_send_queue_len: i64,
    #[serde(default = "default_inflight")]
    max_inflight: i64,
    #[serde(default = "default_backoff_max")]
    backoff_max: HumanDuration,
}

fn default_proto_ver() -> i64 {
    5
}
fn default_keepalive() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_session_expiry() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_queue_len() -> i64 {
    100_000
}
fn default_inflight() -> i64 {
    1024
}
fn default_backoff_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// `[bridges.ssl]`, NanoMQ's key names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [bridges.ssl] table")]
struct RawBridgeTls {
    /// PEM file of the authorities to trust (default: the system's).
    cacertfile: Option<PathBuf>,
    /// PEM file of our certificate chain.
    certfile: Option<PathBuf>,
    /// PEM file of its key.
    keyfile: Option<PathBuf>,
    /// The name the server's certificate must carry, sent as SNI (default: the host).
    server_name: Option<String>,
    /// Do not verify the server's certificate: tests only.
    #[serde(default)]
    insecure: bool,
}

/// `[[bridges.forwards]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[bridges.forwards]] table")]
struct RawForward {
    local_topic: String,
    #[serde(default)]
    remote_topic: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    suffix: String,
    #[serde(default = "default_qos")]
    qos: i64,
    retain: Option<bool>,
}

/// `[[bridges.subscriptions]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[bridges.subscriptions]] table")]
struct RawSubscription {
    remote_topic: String,
    #[serde(default)]
    local_topic: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    suffix: String,
    #[serde(default = "default_qos")]
    qos: i64,
    #[serde(default = "default_true")]
    retain_as_published: bool,
    #[serde(default)]
    retain_handling: i64,
}

fn default_qos() -> i64 {
    1
}
fn default_true() -> bool {
    true
}

/// The bridges; a problem (naming `bridges[N].key`) for each thing wrong with one.
pub(super) fn validate(raw: Vec<RawBridge>, problems: &mut Problems) -> Vec<BridgeConfig> {
    let mut bridges: Vec<BridgeConfig> = Vec::new();
    for (i, bridge) in raw.into_iter().enumerate() {
        let key = format!("bridges[{i}]");
        if let Some(bridge) = bridge.validate(&key, problems) {
            if bridges.iter().any(|b| b.name == bridge.name) {
                problems.add(
                    &format!("{key}.name"),
                    format!("\"{}\" names another bridge too", bridge.name),
                );
            }
            // Two bridges with one client id take each other's upstream session over, in
            // turn, forever (when they share an upstream; and nothing says they do not).
            if bridges.iter().any(|b| b.client_id == bridge.client_id) {
                problems.add(
                    &format!("{key}.clientid"),
                    format!("\"{}\" is another bridge's client id too", bridge.client_id),
                );
            }
            bridges.push(bridge);
        }
    }
    bridges
}

impl RawBridge {
    fn validate(self, key: &str, problems: &mut Problems) -> Option<BridgeConfig> {
        let before = problems.0.len();
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.add(
                &format!("{key}.name"),
                "must be letters, digits, '-', '_' or '.', and not empty",
            );
        }
        let tls = self.ssl.map(|ssl| TlsOptions {
            cafile: ssl.cacertfile,
            cert: ssl.certfile,
            key: ssl.keyfile,
            server_name: ssl.server_name,
            insecure: ssl.insecure,
        });
        if let Some(tls) = &tls
            && tls.cert.is_some() != tls.key.is_some()
        {
            problems.add(
                &format!("{key}.ssl"),
                "certfile and keyfile go together: give both or neither",
            );
        }
        let servers = servers(key, &self.servers, tls.is_some(), problems);
        let version = match self.proto_ver {
            4 => ProtocolVersion::V3_1_1,
            5 => ProtocolVersion::V5,
            other => {
                problems.add(
                    &format!("{key}.proto_ver"),
                    format!("must be 4 (MQTT 3.1.1) or 5, got {other}"),
                );
                ProtocolVersion::V5
            }
        };
        let client_id = self
            .clientid
            .unwrap_or_else(|| format!("nanomq-bridge-{}", self.name));
        if client_id.is_empty() || client_id.len() > 65_535 {
            problems.add(&format!("{key}.clientid"), "must not be empty");
        }
        let keep_alive = seconds(&format!("{key}.keepalive"), self.keepalive.0, problems);
        let session_expiry = seconds(
            &format!("{key}.session_expiry"),
            self.session_expiry.0,
            problems,
        );
        if self.password.is_some() && self.username.is_none() && version != ProtocolVersion::V5 {
            problems.add(
                &format!("{key}.password"),
                "needs a username before MQTT 5 (proto_ver = 4)",
            );
        }
        if self.forwards.is_empty() && self.subscriptions.is_empty() {
            problems.add(
                key,
                "has neither forwards nor subscriptions: it would carry nothing",
            );
        }
        let forwards = self
            .forwards
            .into_iter()
            .enumerate()
            .filter_map(|(j, f)| f.validate(&format!("{key}.forwards[{j}]"), problems))
            .collect();
        let subscriptions = self
            .subscriptions
            .into_iter()
            .enumerate()
            .filter_map(|(j, s)| {
                s.validate(&format!("{key}.subscriptions[{j}]"), version, problems)
            })
            .collect();
        let max_send_queue_len = problems.in_range(
            &format!("{key}.max_send_queue_len"),
            self.max_send_queue_len,
            1,
            100_000_000,
        );
        let max_inflight =
            problems.in_range(&format!("{key}.max_inflight"), self.max_inflight, 1, 65_535);
        let backoff_max = problems.positive(&format!("{key}.backoff_max"), self.backoff_max.0);
        if problems.0.len() > before {
            return None;
        }
        Some(BridgeConfig {
            name: self.name,
            servers,
            version,
            client_id,
            keep_alive: u16::try_from(keep_alive).unwrap_or(u16::MAX),
            clean_start: self.clean_start,
            session_expiry,
            username: self.username,
            password: self.password,
            tls: tls.unwrap_or_default(),
            forwards,
            subscriptions,
            max_send_queue_len: max_send_queue_len?,
            max_inflight: max_inflight?,
            backoff_max,
        })
    }
}

/// The server URLs, parsed; TLS options only with a TLS server among them.
fn servers(key: &str, urls: &[String], tls: bool, problems: &mut Problems) -> Vec<Endpoint> {
    if urls.is_empty() {
        problems.add(&format!("{key}.servers"), "must name at least one server");
    }
    let mut endpoints = Vec::new();
    for (j, url) in urls.iter().enumerate() {
        match mqtt_client::endpoint::parse_url(url) {
            Ok(parsed) if parsed.username.is_some() || parsed.password.is_some() => problems.add(
                &format!("{key}.servers[{j}]"),
                "credentials go in username and password, not in the URL",
            ),
            Ok(parsed) if parsed.topic.is_some() => problems.add(
                &format!("{key}.servers[{j}]"),
                format!("{url}: an mqtt:// or mqtts:// server has no path"),
            ),
            Ok(parsed) => endpoints.push(parsed.endpoint),
            Err(e) => problems.add(&format!("{key}.servers[{j}]"), format!("{url}: {e}")),
        }
    }
    if tls && !endpoints.is_empty() && !endpoints.iter().any(|e| e.scheme.is_tls()) {
        problems.add(
            &format!("{key}.ssl"),
            "given, but no server is mqtts:// or wss://",
        );
    }
    endpoints
}

/// A duration in whole seconds that fits MQTT's fields (keep alive: 16 bits, expiry: 32).
fn seconds(key: &str, duration: Duration, problems: &mut Problems) -> u32 {
    match u32::try_from(duration.as_secs()) {
        Ok(s) if !key.ends_with("keepalive") || s <= u32::from(u16::MAX) => s,
        _ => {
            problems.add(key, "is longer than MQTT can carry");
            0
        }
    }
}

/// A QoS from 0, 1 or 2.
fn qos(key: &str, value: i64, problems: &mut Problems) -> Option<QoS> {
    let qos = match value {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => {
            problems.add(key, format!("must be 0, 1 or 2, got {value}"));
            return None;
        }
    };
    Some(qos)
}

/// A filter, checked.
fn filter(key: &str, text: &str, problems: &mut Problems) -> Option<TopicFilter> {
    match TopicFilter::new(text) {
        Ok(filter) => Some(filter),
        Err(e) => {
            problems.add(key, format!("\"{text}\" is not a topic filter: {e}"));
            None
        }
    }
}

/// A topic map: the replacement topic (if any) and prefix/suffix must make topic names.
fn topic_map(
    key: &str,
    field: &str,
    topic: String,
    prefix: String,
    suffix: String,
    problems: &mut Problems,
) -> Option<TopicMap> {
    let before = problems.0.len();
    if !topic.is_empty()
        && let Err(e) = TopicName::new(topic.as_str())
    {
        problems.add(
            &format!("{key}.{field}"),
            format!("\"{topic}\" is not a topic name: {e}"),
        );
    }
    for (name, text) in [("prefix", &prefix), ("suffix", &suffix)] {
        if text.contains(['+', '#']) || text.contains('\0') {
            problems.add(
                &format!("{key}.{name}"),
                "must not hold wildcards ('+', '#') or NUL",
            );
        }
    }
    (problems.0.len() == before).then_some(TopicMap {
        topic,
        prefix,
        suffix,
    })
}

impl RawForward {
    fn validate(self, key: &str, problems: &mut Problems) -> Option<Forward> {
        let filter = filter(&format!("{key}.local_topic"), &self.local_topic, problems);
        let remote = topic_map(
            key,
            "remote_topic",
            self.remote_topic,
            self.prefix,
            self.suffix,
            problems,
        );
        let qos = qos(&format!("{key}.qos"), self.qos, problems);
        Some(Forward {
            filter: filter?,
            remote: remote?,
            qos: qos?,
            retain: self.retain,
        })
    }
}

impl RawSubscription {
    fn validate(
        self,
        key: &str,
        version: ProtocolVersion,
        problems: &mut Problems,
    ) -> Option<RemoteSubscription> {
        let filter = filter(&format!("{key}.remote_topic"), &self.remote_topic, problems);
        let local = topic_map(
            key,
            "local_topic",
            self.local_topic,
            self.prefix,
            self.suffix,
            problems,
        );
        let qos = qos(&format!("{key}.qos"), self.qos, problems);
        let retain_handling = match self.retain_handling {
            0 => Some(RetainHandling::SendAtSubscribe),
            1 => Some(RetainHandling::SendIfNew),
            2 => Some(RetainHandling::DoNotSend),
            other => {
                problems.add(
                    &format!("{key}.retain_handling"),
                    format!("must be 0, 1 or 2, got {other}"),
                );
                None
            }
        };
        if version != ProtocolVersion::V5 && self.retain_handling != 0 {
            problems.add(
                &format!("{key}.retain_handling"),
                "is an MQTT 5 option (proto_ver = 5)",
            );
        }
        Some(RemoteSubscription {
            filter: filter?,
            local: local?,
            qos: qos?,
            retain_as_published: self.retain_as_published,
            retain_handling: retain_handling?,
        })
    }
}
