//! The flags the client tools share, as mosquitto_pub/mosquitto_sub users know them:
//! [`ServerArgs`] (where and how to connect; also used by `nanomq bench`) and [`SessionArgs`]
//! (who connects, and with which CONNECT options), and their translation into an
//! [`Endpoint`], [`TlsOptions`] and mqtt-client's [`ConnectOptions`].
//!
//! `-h` is the host, as in mosquitto, so help is `--help` only.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Args};
use mqtt_client::endpoint::{Endpoint, Scheme, parse_url};
use mqtt_client::{ConnectOptions, TlsOptions, Will};
use mqtt_codec::{ProtocolVersion, QoS, TopicName, UserProperty};

use super::error::ClientError;

/// Where the broker is, and how to reach it.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// The broker's host name or IP address.
    #[arg(short = 'h', long, value_name = "HOST", default_value = "localhost")]
    pub(crate) host: String,

    /// The broker's port [default: 1883; 8883 with TLS].
    #[arg(short = 'p', long, value_name = "PORT")]
    pub(crate) port: Option<u16>,

    /// The broker as a URL: mqtt://, mqtts://, ws://, wss:// [user[:password]@]host[:port]
    /// [/path]. Overrides -h and -p. For mqtt(s) the path is a topic (as mosquitto's -L);
    /// for ws(s) it is the HTTP path [default: /mqtt].
    #[arg(short = 'L', long, value_name = "URL")]
    pub(crate) url: Option<String>,

    /// MQTT version: 3.1, 3.1.1 or 5 (also mqttv31, mqttv311, mqttv5).
    #[arg(
        short = 'V',
        long = "protocol-version",
        value_name = "VERSION",
        default_value = "3.1.1",
        value_parser = parse_version
    )]
    pub(crate) version: ProtocolVersion,

    /// User name.
    #[arg(short = 'u', long, value_name = "USER")]
    pub(crate) username: Option<String>,

    /// Password.
    #[arg(
        short = 'P',
        long = "pw",
        visible_alias = "password",
        value_name = "PASSWORD"
    )]
    pub(crate) password: Option<String>,

    /// Keep alive in seconds (0: off).
    #[arg(short = 'k', long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) keepalive: u16,

    /// Trust the certificate authorities of this PEM file (turns TLS on).
    #[arg(long, value_name = "FILE")]
    pub(crate) cafile: Option<PathBuf>,

    /// Our certificate chain (PEM), for brokers that verify clients (turns TLS on).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub(crate) cert: Option<PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<PathBuf>,

    /// Do not verify the broker's certificate (turns TLS on; for testing only).
    #[arg(long)]
    pub(crate) insecure: bool,

    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub(crate) help: Option<bool>,
}

/// Who connects, with which session and CONNECT options.
#[derive(Debug, Clone, Args)]
pub(crate) struct SessionArgs {
    /// Client identifier [default: nanomq-pub-PID / nanomq-sub-PID].
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub(crate) client_id: Option<String>,

    /// Keep the session (clean session / clean start = 0); needs -i.
    #[arg(short = 'c', long = "disable-clean-session")]
    pub(crate) no_clean: bool,

    /// Session expiry interval in seconds (MQTT 5).
    #[arg(short = 'x', long = "session-expiry", value_name = "SECONDS")]
    pub(crate) session_expiry: Option<u32>,

    /// A user property KEY=VALUE (MQTT 5), on CONNECT and on the PUBLISH or SUBSCRIBE;
    /// repeatable.
    #[arg(
        short = 'D',
        long = "user-property",
        visible_alias = "property",
        value_name = "KEY=VALUE",
        value_parser = parse_user_property
    )]
    pub(crate) user_properties: Vec<(String, String)>,

    /// Extended authentication method (MQTT 5). This tool cannot continue an AUTH
    /// exchange: a broker that starts one ends the run.
    #[arg(long, value_name = "METHOD")]
    pub(crate) auth_method: Option<String>,

    /// Extended authentication data, with --auth-method.
    #[arg(long, value_name = "DATA", requires = "auth_method")]
    pub(crate) auth_data: Option<String>,

    /// The will's topic.
    #[arg(long, value_name = "TOPIC")]
    pub(crate) will_topic: Option<String>,

    /// The will's payload.
    #[arg(long, value_name = "TEXT", requires = "will_topic")]
    pub(crate) will_payload: Option<String>,

    /// The will's QoS.
    #[arg(long, value_name = "QOS", default_value = "0", value_parser = parse_qos, requires = "will_topic")]
    pub(crate) will_qos: QoS,

    /// Publish the will retained.
    #[arg(long, requires = "will_topic")]
    pub(crate) will_retain: bool,

    /// Give up after this many seconds (fractions allowed): the whole run, connection
    /// included. For sub, the time to receive -C messages.
    #[arg(short = 'W', long = "timeout", value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<Duration>,

    /// Print the packets sent and received to standard error.
    #[arg(short = 'd', long)]
    pub(crate) debug: bool,
}

/// MQTT version names, as mosquitto and nanomq_cli write them.
pub(crate) fn parse_version(text: &str) -> Result<ProtocolVersion, String> {
    match text.to_ascii_lowercase().as_str() {
        "3.1" | "31" | "3" | "mqttv31" => Ok(ProtocolVersion::V3_1),
        "3.1.1" | "311" | "4" | "mqttv311" => Ok(ProtocolVersion::V3_1_1),
        "5" | "5.0" | "50" | "mqttv5" | "mqttv50" => Ok(ProtocolVersion::V5),
        _ => Err(format!(
            "unknown MQTT version `{text}` (expected 3.1, 3.1.1 or 5)"
        )),
    }
}

/// A QoS level: 0, 1 or 2.
pub(crate) fn parse_qos(text: &str) -> Result<QoS, String> {
    text.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("invalid QoS `{text}` (expected 0, 1 or 2)"))
}

/// `KEY=VALUE`.
fn parse_user_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))
}

/// Seconds, fractions allowed.
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("expected a positive number of seconds, got `{text}`"))
}

/// What [`ServerArgs`] resolve to.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    /// Where to connect.
    pub(crate) endpoint: Endpoint,
    /// TLS options (used when the endpoint's scheme is TLS).
    pub(crate) tls: TlsOptions,
    /// The user name (from -u or the URL).
    pub(crate) username: Option<String>,
    /// The password (from -P or the URL).
    pub(crate) password: Option<String>,
    /// A topic the URL's path named.
    pub(crate) url_topic: Option<String>,
}

impl ServerArgs {
    /// The endpoint, TLS options and credentials these flags name.
    pub(crate) fn resolve(&self) -> Result<Server, ClientError> {
        let tls = TlsOptions {
            cafile: self.cafile.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            server_name: None,
            insecure: self.insecure,
        };
        let (mut endpoint, username, password, url_topic) = match &self.url {
            Some(url) => {
                let url =
                    parse_url(url).map_err(|e| ClientError::Usage(format!("--url {url}: {e}")))?;
                (url.endpoint, url.username, url.password, url.topic)
            }
            None => {
                let scheme = if tls.any() {
                    Scheme::Mqtts
                } else {
                    Scheme::Mqtt
                };
                (
                    Endpoint::new(scheme, &self.host, self.port),
                    None,
                    None,
                    None,
                )
            }
        };
        if tls.any() && !endpoint.scheme.is_tls() {
            // As mosquitto: a CA file means TLS.
            endpoint.scheme = endpoint.scheme.with_tls();
            if self.url.is_none() && self.port.is_none() {
                endpoint.port = endpoint.scheme.default_port();
            }
        }
        Ok(Server {
            endpoint,
            tls,
            username: self.username.clone().or(username),
            password: self.password.clone().or(password),
            url_topic,
        })
    }
}

/// The connect options of `nanomq pub` / `nanomq sub` (`role` names the default client id).
pub(crate) fn build_connect(
    server: &ServerArgs,
    resolved: &Server,
    session: &SessionArgs,
    role: &str,
) -> Result<ConnectOptions, ClientError> {
    let version = server.version;
    let usage = |text: &str| Err(ClientError::Usage(text.to_owned()));
    if session.no_clean && session.client_id.is_none() {
        return usage("-c (keep the session) needs a client id (-i)");
    }
    if !version.is_v5() {
        if !session.user_properties.is_empty() {
            return usage("user properties (-D) need MQTT 5 (-V 5)");
        }
        if session.session_expiry.is_some() {
            return usage("a session expiry (-x) needs MQTT 5 (-V 5)");
        }
        if session.auth_method.is_some() {
            return usage("--auth-method needs MQTT 5 (-V 5)");
        }
        if resolved.password.is_some() && resolved.username.is_none() {
            return usage("a password (-P) needs a user name (-u) before MQTT 5");
        }
    }
    let client_id = session
        .client_id
        .clone()
        .unwrap_or_else(|| format!("nanomq-{role}-{}", std::process::id()));
    let mut options = ConnectOptions::new(client_id)
        .version(version)
        .clean_start(!session.no_clean)
        .keep_alive(server.keepalive);
    options.username.clone_from(&resolved.username);
    options.password = resolved.password.clone().map(Bytes::from);
    options.session_expiry = session.session_expiry;
    options.auth_method.clone_from(&session.auth_method);
    options.auth_data = session.auth_data.clone().map(Bytes::from);
    options.user_properties.clone_from(&session.user_properties);
    // These tools never used topic aliases; a trace (-d) shows every topic in full.
    options.outbound_topic_aliases = false;
    // Only -W bounds the whole run, as before; no CONNACK deadline of its own.
    options.connect_timeout = Duration::MAX;
    if let Some(topic) = &session.will_topic {
        let topic = TopicName::new(topic.as_str())
            .map_err(|e| ClientError::Usage(format!("invalid will topic `{topic}`: {e}")))?;
        options.will = Some(Will {
            topic,
            payload: session
                .will_payload
                .clone()
                .map(Bytes::from)
                .unwrap_or_default(),
            qos: session.will_qos,
            retain: session.will_retain,
            delay: None,
        });
    }
    // The client id and the rest are checked as the CONNECT is built.
    options.to_connect()?;
    Ok(options)
}

/// The codec's user properties from `KEY=VALUE` pairs.
pub(crate) fn user_properties(pairs: &[(String, String)]) -> Vec<UserProperty> {
    pairs
        .iter()
        .map(|(k, v)| UserProperty::new(k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_named_as_mosquitto_names_them() {
        for (text, version) in [
            ("3.1", ProtocolVersion::V3_1),
            ("mqttv31", ProtocolVersion::V3_1),
            ("3.1.1", ProtocolVersion::V3_1_1),
            ("mqttv311", ProtocolVersion::V3_1_1),
            ("5", ProtocolVersion::V5),
            ("MQTTv5", ProtocolVersion::V5),
        ] {
            assert_eq!(parse_version(text), Ok(version), "{text}");
        }
        assert!(parse_version("6").is_err());
    }

    #[test]
    fn qos_seconds_and_properties_are_checked() {
        assert_eq!(parse_qos("2"), Ok(QoS::ExactlyOnce));
        assert!(parse_qos("3").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert_eq!(
            parse_user_property("a=b=c"),
            Ok(("a".to_owned(), "b=c".to_owned()))
        );
        assert!(parse_user_property("ab").is_err());
    }
}
