//! `nanomq reload`: asks a running broker to re-read its configuration file, through its
//! admin API (`POST /api/v4/reload`), and prints what changed. The address and credentials
//! come from the flags, or from the configuration file's `[http_server]` (`--conf`), read
//! loosely: only that table, so a file broken elsewhere still reaches the broker, whose
//! answer names the problem.
//!
//! The request goes through the HTTP client of the authentication callout (hyper-util's,
//! with its timeout and answer bound), so there is one HTTP client in the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH};
use hyper::{Method, Request, StatusCode};

use crate::auth_http::{ClientSettings, HttpClient};

/// The API's address when neither `--url` nor `--conf` gives one (NanoMQ's port).
const DEFAULT_URL: &str = "http://127.0.0.1:8081";

/// The path of the reload.
const RELOAD_PATH: &str = "/api/v4/reload";

/// How long the whole exchange may take: a reload that stops a bridge waits for it to say
/// goodbye upstream.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Exit code: the broker refused the file (nothing changed).
const EXIT_REFUSED: u8 = 1;

/// Exit code: the broker could not be asked (unreachable, credentials, bad flags).
const EXIT_NOT_ASKED: u8 = 2;

/// What `nanomq reload --help` adds.
pub(crate) const AFTER_HELP: &str = "\
The broker re-reads the file it was started with (`nanomq start --conf FILE`) and applies
what can change live; the report lists the keys changed and those that need a restart.

Examples:
  nanomq reload --conf /etc/nanomq.toml     address and credentials from its [http_server]
  nanomq reload --url http://127.0.0.1:8081 -u admin:secret
  kill -HUP $(pidof nanomq)                 the same, without the API (see the log)

Exit codes: 0 reloaded; 1 the broker refused the file (the answer names the key and the
problem; nothing changed); 2 the broker could not be asked (unreachable, wrong credentials,
a bad flag).";

/// The options of `nanomq reload`.
#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// The admin API's base URL [default: http://127.0.0.1:8081, or the --conf file's
    /// http_server.bind].
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// Basic authentication, `user:password`.
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER:PASSWORD",
        conflicts_with = "api_key"
    )]
    pub(crate) user: Option<String>,
    /// A bearer API key (one of http_server.api_keys).
    #[arg(long, value_name = "KEY")]
    pub(crate) api_key: Option<String>,
    /// Take the URL and credentials from this configuration file's [http_server] (flags
    /// given as well win).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub(crate) conf: Option<PathBuf>,
}

/// How to reach the API.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The reload's full URL.
    url: String,
    /// The `Authorization` header, if any.
    authorization: Option<String>,
}

/// Runs `nanomq reload`.
pub(crate) fn main(args: ReloadArgs) -> ExitCode {
    let target = match target(&args) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("nanomq reload: {e:#}");
            return ExitCode::from(EXIT_NOT_ASKED);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("nanomq reload: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_NOT_ASKED);
        }
    };
    match runtime.block_on(ask(&target)) {
        Ok(Answer::Reloaded(report)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(Answer::Refused(message)) => {
            eprintln!("nanomq reload: refused, nothing changed: {message}");
            ExitCode::from(EXIT_REFUSED)
        }
        Err(e) => {
            eprintln!("nanomq reload: {e:#}");
            ExitCode::from(EXIT_NOT_ASKED)
        }
    }
}

/// Where and as whom to ask, from the flags and the file.
fn target(args: &ReloadArgs) -> Result<Target> {
    let file = args.conf.as_deref().map(read_http_server).transpose()?;
    let base = match (&args.url, &file) {
        (Some(url), _) => url.clone(),
        (None, Some(file)) => format!("http://{}", reachable(file.bind)),
        (None, None) => DEFAULT_URL.to_owned(),
    };
    let url = reload_url(&base)?;
    let authorization = if let Some(user) = &args.user {
        if !user.contains(':') {
            return Err(anyhow!("-u: expected USER:PASSWORD, got no ':'"));
        }
        Some(basic(user))
    } else if let Some(key) = &args.api_key {
        Some(format!("Bearer {key}"))
    } else {
        file.map(|f| f.authorization()).transpose()?.flatten()
    };
    Ok(Target { url, authorization })
}

/// The reload's URL under `base` (which may already end with the path).
fn reload_url(base: &str) -> Result<String> {
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(anyhow!("--url: expected http://HOST:PORT, got \"{base}\""));
    }
    let base = base.trim_end_matches('/');
    if base.ends_with(RELOAD_PATH) {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}{RELOAD_PATH}"))
    }
}

/// Where a client reaches an API bound at `bind`: a wildcard address is reached on
/// loopback.
fn reachable(bind: SocketAddr) -> SocketAddr {
    let mut addr = bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(match bind {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// `Basic base64(user:password)`.
fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// What the file's `[http_server]` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileApi {
    bind: SocketAddr,
    username: Option<String>,
    password: Option<String>,
    has_hash: bool,
    api_key: Option<String>,
}

impl FileApi {
    /// The credential to send: an API key, else Basic with the plain password.
    fn authorization(self) -> Result<Option<String>> {
        if let Some(key) = self.api_key {
            return Ok(Some(format!("Bearer {key}")));
        }
        match (self.username, self.password) {
            (Some(user), Some(password)) => Ok(Some(basic(&format!("{user}:{password}")))),
            (Some(_), None) if self.has_hash => Err(anyhow!(
                "the file's [http_server] keeps only a password_hash: give -u USER:PASSWORD \
                 or --api-key KEY"
            )),
            _ => Ok(None),
        }
    }
}

/// Reads `[http_server]` from the file at `path`, and nothing else of it.
fn read_http_server(path: &Path) -> Result<FileApi> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow!("{}: invalid TOML: {}", path.display(), e.message()))?;
    let http = table.get("http_server").and_then(toml::Value::as_table);
    let string = |key: &str| -> Result<Option<String>> {
        match http.and_then(|h| h.get(key)) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(anyhow!(
                "{}: http_server.{key}: expected a string",
                path.display()
            )),
        }
    };
    let enabled = http
        .and_then(|h| h.get("enabled"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    if !enabled {
        return Err(anyhow!(
            "{}: [http_server] is not enabled, so the broker has no API to ask \
             (send it SIGHUP instead)",
            path.display()
        ));
    }
    let bind = string("bind")?.unwrap_or_else(|| "0.0.0.0:8081".to_owned());
    let bind = bind
        .parse()
        .map_err(|e| anyhow!("{}: http_server.bind: \"{bind}\": {e}", path.display()))?;
    let api_key = match http.and_then(|h| h.get("api_keys")) {
        None => None,
        Some(toml::Value::Array(keys)) => {
            keys.iter().find_map(toml::Value::as_str).map(String::from)
        }
        Some(_) => {
            return Err(anyhow!(
                "{}: http_server.api_keys: expected a list of strings",
                path.display()
            ));
        }
    };
    Ok(FileApi {
        bind,
        username: string("username")?,
        password: string("password")?,
        has_hash: string("password_hash")?.is_some(),
        api_key,
    })
}

/// The broker's answer.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Reloaded: the report to print.
    Reloaded(String),
    /// Refused: why.
    Refused(String),
}

/// Sends the reload and reads the answer.
async fn ask(target: &Target) -> Result<Answer> {
    let client = HttpClient::new(&ClientSettings {
        timeout: TIMEOUT,
        connect_timeout: Duration::from_secs(5),
        pool_size: 1,
        cacertfile: None,
        https: target.url.starts_with("https://"),
    })
    .map_err(|e| anyhow!("{e}"))?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(&target.url)
        .header(CONTENT_LENGTH, "0");
    if let Some(authorization) = &target.authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("--url: \"{}\"", target.url))?;
    let reply = client
        .call(request)
        .await
        .map_err(|e| anyhow!("{}: {e}", target.url))?;
    let body: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| {
        anyhow!(
            "{}: answered {} with a body that is not the API's JSON ({e}): {}",
            target.url,
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )
    })?;
    interpret(reply.status, &body).map_err(|e| anyhow!("{}: {e}", target.url))
}

/// What the status and JSON body say.
fn interpret(status: StatusCode, body: &serde_json::Value) -> Result<Answer> {
    let message = body
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let code = body.get("code").and_then(serde_json::Value::as_u64);
    match status {
        StatusCode::OK if code == Some(0) => {
            let keys = |name: &str| -> Vec<String> {
                body.get("data")
                    .and_then(|data| data.get(name))
                    .and_then(serde_json::Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let changed = keys("changed");
            let restart = keys("needs_restart");
            let mut report = if changed.is_empty() {
                "nothing changed".to_owned()
            } else {
                format!("changed: {}", changed.join(", "))
            };
            if !restart.is_empty() {
                report.push_str(&format!("\nneeds a restart: {}", restart.join(", ")));
            }
            Ok(Answer::Reloaded(report))
        }
        StatusCode::BAD_REQUEST => Ok(Answer::Refused(message)),
        StatusCode::UNAUTHORIZED => Err(anyhow!(
            "the API refused the credentials (401; give -u USER:PASSWORD, --api-key KEY or \
             --conf FILE)"
        )),
        StatusCode::NOT_FOUND => Err(anyhow!(
            "no reload there (404): is this a nanomq admin API?"
        )),
        other => Err(anyhow!("unexpected answer {other}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::*;

    fn args(
        url: Option<&str>,
        user: Option<&str>,
        key: Option<&str>,
        conf: Option<&Path>,
    ) -> ReloadArgs {
        ReloadArgs {
            url: url.map(String::from),
            user: user.map(String::from),
            api_key: key.map(String::from),
            conf: conf.map(Path::to_path_buf),
        }
    }

    #[test]
    fn the_url_and_credentials_come_from_the_flags() {
        let t = target(&args(None, None, None, None)).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:8081/api/v4/reload");
        assert_eq!(t.authorization, None);
        let t = target(&args(Some("http://10.0.0.1:9/"), Some("a:b"), None, None)).unwrap();
        assert_eq!(t.url, "http://10.0.0.1:9/api/v4/reload");
        assert_eq!(t.authorization.as_deref(), Some("Basic YTpi"));
        let t = target(&args(
            Some("http://h:1/api/v4/reload"),
            None,
            Some("k"),
            None,
        ))
        .unwrap();
        assert_eq!(t.url, "http://h:1/api/v4/reload");
        assert_eq!(t.authorization.as_deref(), Some("Bearer k"));
        assert!(target(&args(Some("h:1"), None, None, None)).is_err());
        assert!(target(&args(None, Some("nocolon"), None, None)).is_err());
    }

    #[test]
    fn the_file_gives_the_address_and_credentials_flags_win() {
        let dir = std::env::temp_dir().join(format!("nanomq-reload-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("n.toml");
        std::fs::write(
            &conf,
            "[listeners.tcp]\nbind = \"127.0.0.1:1\"\n[http_server]\nenabled = true\n\
             bind = \"0.0.0.0:18081\"\nusername = \"admin\"\npassword = \"pw\"\n\
             [auth]\nbroken = \"elsewhere, still read\"\n",
        )
        .unwrap();
        let t = target(&args(None, None, None, Some(&conf))).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:18081/api/v4/reload");
        assert_eq!(t.authorization, Some(basic("admin:pw")));
        let t = target(&args(Some("http://x:2"), None, Some("k"), Some(&conf))).unwrap();
        assert_eq!(t.url, "http://x:2/api/v4/reload");
        assert_eq!(t.authorization.as_deref(), Some("Bearer k"));

        std::fs::write(
            &conf,
            "[http_server]\nenabled = true\nbind = \"[::]:5\"\nusername = \"a\"\n\
             password_hash = \"$7$...\"\n",
        )
        .unwrap();
        let e = target(&args(None, None, None, Some(&conf))).unwrap_err();
        assert!(e.to_string().contains("password_hash"), "{e}");
        let t = target(&args(None, Some("a:b"), None, Some(&conf))).unwrap();
        assert_eq!(t.url, "http://[::1]:5/api/v4/reload");

        std::fs::write(&conf, "[http_server]\nbind = \"127.0.0.1:5\"\n").unwrap();
        let e = target(&args(None, None, None, Some(&conf))).unwrap_err();
        assert!(e.to_string().contains("not enabled"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn answers_are_read_as_the_api_writes_them() {
        let ok = json!({"code": 0, "data": {"changed": ["auth.acl", "bridges.b"], "needs_restart": ["listeners.tcp.bind"]}});
        assert_eq!(
            interpret(StatusCode::OK, &ok).unwrap(),
            Answer::Reloaded(
                "changed: auth.acl, bridges.b\nneeds a restart: listeners.tcp.bind".into()
            )
        );
        let none = json!({"code": 0, "data": {"changed": [], "needs_restart": []}});
        assert_eq!(
            interpret(StatusCode::OK, &none).unwrap(),
            Answer::Reloaded("nothing changed".into())
        );
        let refused = json!({"code": 108, "message": "limits.max_topic_levels: must be between 1 and 65535, got 0"});
        assert_eq!(
            interpret(StatusCode::BAD_REQUEST, &refused).unwrap(),
            Answer::Refused("limits.max_topic_levels: must be between 1 and 65535, got 0".into())
        );
        assert!(interpret(StatusCode::UNAUTHORIZED, &json!({"code": 104})).is_err());
        assert!(interpret(StatusCode::NOT_FOUND, &json!({})).is_err());
    }
}
