//! Where a client connects: a transport scheme, a host, a port and, for WebSocket, a path.
//!
//! An [`Endpoint`] comes from `--url` ([`parse_url`], which also yields the user name,
//! password and topic a mosquitto-style URL may carry) or from `-h`/`-p`.

use std::fmt;

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// MQTT over TCP (`mqtt://`, `tcp://`).
    Mqtt,
    /// MQTT over TLS (`mqtts://`, `ssl://`, `tls://`).
    Mqtts,
    /// MQTT over WebSocket (`ws://`).
    Ws,
    /// MQTT over WebSocket over TLS (`wss://`).
    Wss,
}

impl Scheme {
    /// The scheme a URL names, if it is one of ours.
    fn from_url_scheme(scheme: &str) -> Option<Self> {
        match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Some(Self::Mqtt),
            "mqtts" | "ssl" | "tls" | "mqtt+ssl" => Some(Self::Mqtts),
            "ws" => Some(Self::Ws),
            "wss" => Some(Self::Wss),
            _ => None,
        }
    }

    /// The port a URL without one means (NanoMQ's defaults).
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => 1883,
            Self::Mqtts => 8883,
            Self::Ws => 8083,
            Self::Wss => 8086,
        }
    }

    /// Whether the connection is encrypted.
    pub const fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    /// Whether MQTT travels in WebSocket frames.
    pub const fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The canonical URL scheme.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Mqtts => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// The same transport with TLS added (`mqtt` -> `mqtts`, `ws` -> `wss`).
    pub const fn with_tls(self) -> Self {
        match self {
            Self::Mqtt | Self::Mqtts => Self::Mqtts,
            Self::Ws | Self::Wss => Self::Wss,
        }
    }
}

/// The WebSocket path when a URL names none (NanoMQ's default).
pub const DEFAULT_WS_PATH: &str = "/mqtt";

/// A broker's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The HTTP path of a WebSocket connection (unused otherwise).
    pub path: String,
}

impl Endpoint {
    /// An endpoint on `host:port` (the scheme's default port when `None`).
    pub fn new(scheme: Scheme, host: &str, port: Option<u16>) -> Self {
        Self {
            scheme,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: port.unwrap_or(scheme.default_port()),
            path: DEFAULT_WS_PATH.to_owned(),
        }
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())?;
        if self.scheme.is_websocket() {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

/// What a `--url` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// `user` of `mqtt://user:pass@host`.
    pub username: Option<String>,
    /// `pass` of `mqtt://user:pass@host`.
    pub password: Option<String>,
    /// For `mqtt`/`mqtts` URLs, the path without its leading `/` is a topic (as in
    /// mosquitto's `-L mqtt://host/topic`).
    pub topic: Option<String>,
}

/// Why a `--url` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// No `scheme://`.
    NoScheme,
    /// A scheme other than mqtt, mqtts, ws, wss (and their aliases).
    UnknownScheme(String),
    /// Nothing between `://` and the port or path.
    NoHost,
    /// The port is not a number from 1 to 65535.
    BadPort(String),
    /// A `%` not followed by two hexadecimal digits, or an escape that is not UTF-8.
    BadEscape,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoScheme => {
                f.write_str("no scheme (expected mqtt://, mqtts://, ws:// or wss://)")
            }
            Self::UnknownScheme(s) => write!(
                f,
                "unknown scheme `{s}` (expected mqtt, mqtts, ws or wss; also tcp, ssl, tls)"
            ),
            Self::NoHost => f.write_str("no host"),
            Self::BadPort(p) => write!(f, "invalid port `{p}`"),
            Self::BadEscape => f.write_str("invalid %-escape"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Parses `scheme://[user[:password]@]host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<ParsedUrl, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::NoScheme)?;
    let scheme = Scheme::from_url_scheme(scheme)
        .ok_or_else(|| UrlError::UnknownScheme(scheme.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (Some(unescape(user)?), Some(unescape(pass)?)),
            None => (Some(unescape(info)?), None),
        },
    };
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let mut endpoint = Endpoint::new(scheme, host, port);
    let mut topic = None;
    if scheme.is_websocket() {
        if !path.is_empty() {
            endpoint.path = path.to_owned();
        }
    } else if let Some(t) = path.strip_prefix('/').filter(|t| !t.is_empty()) {
        topic = Some(unescape(t)?);
    }
    Ok(ParsedUrl {
        endpoint,
        username,
        password,
        topic,
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), UrlError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::NoHost)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(UrlError::BadPort(after.to_owned())),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(UrlError::BadPort(p.to_owned())),
        },
    };
    Ok((host, port))
}

/// Decodes `%XX` escapes.
fn unescape(text: &str) -> Result<String, UrlError> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).ok_or(UrlError::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::BadEscape)?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::BadEscape)?);
            rest = tail.get(2..).unwrap_or_default();
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| UrlError::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_transport_host_port_and_path() {
        let url = parse_url("mqtt://127.0.0.1:1999").unwrap();
        assert_eq!(
            url.endpoint,
            Endpoint::new(Scheme::Mqtt, "127.0.0.1", Some(1999))
        );
        assert_eq!(url.endpoint.to_string(), "mqtt://127.0.0.1:1999");

        let url = parse_url("wss://broker.example/ws").unwrap();
        assert_eq!(url.endpoint.scheme, Scheme::Wss);
        assert_eq!(url.endpoint.port, 8086);
        assert_eq!(url.endpoint.to_string(), "wss://broker.example:8086/ws");

        let url = parse_url("ws://[::1]:8083").unwrap();
        assert_eq!(url.endpoint.host, "::1");
        assert_eq!(url.endpoint.to_string(), "ws://[::1]:8083/mqtt");

        let url = parse_url("mqtts://h").unwrap();
        assert_eq!(
            (url.endpoint.scheme, url.endpoint.port),
            (Scheme::Mqtts, 8883)
        );
        assert_eq!(parse_url("tcp://h").unwrap().endpoint.scheme, Scheme::Mqtt);
    }

    #[test]
    fn mosquitto_style_urls_carry_credentials_and_a_topic() {
        let url = parse_url("mqtt://al%40ice:p%3Ass@localhost:1883/a/b%2Fc").unwrap();
        assert_eq!(url.username.as_deref(), Some("al@ice"));
        assert_eq!(url.password.as_deref(), Some("p:ss"));
        assert_eq!(url.topic.as_deref(), Some("a/b/c"));
        let url = parse_url("mqtt://bob@localhost").unwrap();
        assert_eq!((url.username.as_deref(), url.password), (Some("bob"), None));
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        assert_eq!(parse_url("localhost:1883"), Err(UrlError::NoScheme));
        assert_eq!(
            parse_url("http://h"),
            Err(UrlError::UnknownScheme("http".into()))
        );
        assert_eq!(parse_url("mqtt://:1883"), Err(UrlError::NoHost));
        assert_eq!(parse_url("mqtt://h:0"), Err(UrlError::BadPort("0".into())));
        assert_eq!(parse_url("mqtt://h:x"), Err(UrlError::BadPort("x".into())));
        assert_eq!(parse_url("mqtt://u%4@h"), Err(UrlError::BadEscape));
    }
}
