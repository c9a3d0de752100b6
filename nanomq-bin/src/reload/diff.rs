//! What differs between the running configuration and the file's, section by section, as
//! the keys an operator reads in the report (`auth.acl`, `listeners.tcp.bind`), and the
//! configuration a reload puts in force: the file's live sections over the running ones
//! (see [`effective`]).
//!
//! Each comparison destructures its struct whole, so a key added to the configuration
//! does not compile until someone has said here whether it changes live or needs a
//! restart.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use broker_core::{Limits, MqttConfig};

use crate::config::{
    AuthConfig, Config, HttpServerConfig, ListenerConfig, LogConfig, LogTarget, PersistenceConfig,
    SysConfig,
};

/// The configuration a reload to `file` puts in force: the live sections (limits, log,
/// auth and each listener's `allow_anonymous`, bridges, sys) from `file`, the rest (what
/// needs a restart) from `running`. Keeping the running values there makes the next reload
/// report them again, until the broker is restarted.
pub(super) fn effective(running: &Config, file: Config) -> Config {
    let listeners = running
        .listeners
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if let Some(new) = file.listeners.iter().find(|n| n.kind == l.kind) {
                l.allow_anonymous = new.allow_anonymous;
            }
            l
        })
        .collect();
    Config {
        listeners,
        mqtt: MqttConfig {
            limits: file.mqtt.limits,
            ..running.mqtt.clone()
        },
        log: file.log,
        persistence: running.persistence.clone(),
        auth: file.auth,
        bridges: file.bridges,
        http_server: running.http_server.clone(),
        sys: file.sys,
    }
}

/// The keys of `file` that differ from `running` and need a restart: listeners (but
/// `allow_anonymous`), `[mqtt]` (but what `[limits]` holds), persistence, the admin API.
pub(super) fn needs_restart(running: &Config, file: &Config) -> Vec<String> {
    let mut keys = listeners_restart(&running.listeners, &file.listeners);
    keys.extend(
        mqtt(&running.mqtt, &file.mqtt)
            .into_iter()
            .map(String::from),
    );
    keys.extend(
        persistence(running.persistence.as_ref(), file.persistence.as_ref())
            .into_iter()
            .map(String::from),
    );
    keys.extend(
        http_server(running.http_server.as_ref(), file.http_server.as_ref())
            .into_iter()
            .map(String::from),
    );
    keys
}

/// The `[mqtt]` keys that differ (limits aside: they are `[limits]`).
fn mqtt(old: &MqttConfig, new: &MqttConfig) -> Vec<&'static str> {
    let MqttConfig {
        max_packet_size,
        max_mqueue_len,
        max_mqueue_bytes,
        mqueue_drop,
        mqueue_full,
        mqueue_full_wait,
        queue_qos0,
        max_inflight,
        retry_interval,
        keepalive_multiplier,
        session_expiry_default,
        max_topic_alias,
        server_keep_alive,
        connect_timeout,
        shared_strategy,
        limits: _,
    } = old;
    let mut keys = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            keys.push(key);
        }
    };
    check(
        *max_packet_size != new.max_packet_size,
        "mqtt.max_packet_size",
    );
    check(*max_mqueue_len != new.max_mqueue_len, "mqtt.max_mqueue_len");
    check(
        *max_mqueue_bytes != new.max_mqueue_bytes,
        "mqtt.max_mqueue_bytes",
    );
    check(*mqueue_drop != new.mqueue_drop, "mqtt.mqueue_drop");
    check(*mqueue_full != new.mqueue_full, "mqtt.mqueue_full");
    check(
        *mqueue_full_wait != new.mqueue_full_wait,
        "mqtt.mqueue_full_wait",
    );
    check(*queue_qos0 != new.queue_qos0, "mqtt.queue_qos0");
    check(*max_inflight != new.max_inflight, "mqtt.max_inflight");
    check(*retry_interval != new.retry_interval, "mqtt.retry_interval");
    check(
        keepalive_multiplier.to_bits() != new.keepalive_multiplier.to_bits(),
        "mqtt.keepalive_multiplier",
    );
    check(
        *session_expiry_default != new.session_expiry_default,
        "mqtt.session_expiry_default",
    );
    check(
        *max_topic_alias != new.max_topic_alias,
        "mqtt.max_topic_alias",
    );
    check(
        *server_keep_alive != new.server_keep_alive,
        "mqtt.server_keep_alive",
    );
    check(
        *connect_timeout != new.connect_timeout,
        "mqtt.connect_timeout",
    );
    check(
        *shared_strategy != new.shared_strategy,
        "mqtt.shared_strategy",
    );
    keys
}

/// The `[limits]` keys that differ (all live).
pub(super) fn limits(old: &Limits, new: &Limits) -> Vec<&'static str> {
    let Limits {
        max_topic_levels,
        max_topic_length,
        max_filters_per_packet,
        max_subscriptions,
        max_connections,
    } = old;
    [
        (
            *max_topic_levels != new.max_topic_levels,
            "limits.max_topic_levels",
        ),
        (
            *max_topic_length != new.max_topic_length,
            "limits.max_topic_length",
        ),
        (
            *max_filters_per_packet != new.max_filters_per_packet,
            "limits.max_filters_per_packet",
        ),
        (
            *max_subscriptions != new.max_subscriptions,
            "limits.max_subscriptions",
        ),
        (
            *max_connections != new.max_connections,
            "limits.max_connections",
        ),
    ]
    .into_iter()
    .filter_map(|(differs, key)| differs.then_some(key))
    .collect()
}

/// The `[log]` keys that differ (all live).
pub(super) fn log(old: &LogConfig, new: &LogConfig) -> Vec<&'static str> {
    let LogConfig { level, target } = old;
    let mut keys = Vec::new();
    if *level != new.level {
        keys.push("log.level");
    }
    match (target, &new.target) {
        (LogTarget::Console, LogTarget::Console) => {}
        (
            LogTarget::File {
                dir,
                file,
                rotation,
            },
            LogTarget::File {
                dir: new_dir,
                file: new_file,
                rotation: new_rotation,
            },
        ) => {
            for (differs, key) in [
                (dir != new_dir, "log.dir"),
                (file != new_file, "log.file"),
                (rotation != new_rotation, "log.rotation"),
            ] {
                if differs {
                    keys.push(key);
                }
            }
        }
        _ => keys.push("log.to"),
    }
    keys
}

/// The `[auth]` keys that differ (all live).
pub(super) fn auth(old: &AuthConfig, new: &AuthConfig) -> Vec<&'static str> {
    let AuthConfig {
        allow_anonymous,
        password_file,
        acl_file,
        acl,
        no_match_allows,
        deny_action,
        chain,
        scram,
        http,
    } = old;
    [
        (
            *allow_anonymous != new.allow_anonymous,
            "auth.allow_anonymous",
        ),
        (*password_file != new.password_file, "auth.password_file"),
        (*acl_file != new.acl_file, "auth.acl_file"),
        (*acl != new.acl, "auth.acl"),
        (*no_match_allows != new.no_match_allows, "auth.no_match"),
        (*deny_action != new.deny_action, "auth.deny_action"),
        (*chain != new.chain, "auth.chain"),
        (*scram != new.scram, "auth.scram"),
        (*http != new.http, "auth.http"),
    ]
    .into_iter()
    .filter_map(|(differs, key)| differs.then_some(key))
    .collect()
}

/// The `[sys]` keys that differ (all live).
pub(super) fn sys(old: &SysConfig, new: &SysConfig) -> Vec<&'static str> {
    let SysConfig {
        interval,
        client_events,
    } = old;
    let mut keys = Vec::new();
    if *interval != new.interval {
        keys.push("sys.interval");
    }
    if *client_events != new.client_events {
        keys.push("sys.client_events");
    }
    keys
}

/// The listeners' `allow_anonymous` keys that differ (live: they are part of the access
/// control).
pub(super) fn listeners_live(old: &[ListenerConfig], new: &[ListenerConfig]) -> Vec<String> {
    old.iter()
        .filter_map(|o| {
            let n = new.iter().find(|n| n.kind == o.kind)?;
            (o.allow_anonymous != n.allow_anonymous)
                .then(|| format!("listeners.{}.allow_anonymous", o.kind.scheme()))
        })
        .collect()
}

/// The listener keys that differ and need a restart: a listener added or removed, its
/// address, WebSocket path or TLS files and flags.
fn listeners_restart(old: &[ListenerConfig], new: &[ListenerConfig]) -> Vec<String> {
    let mut keys = Vec::new();
    for o in old {
        let scheme = o.kind.scheme();
        let Some(n) = new.iter().find(|n| n.kind == o.kind) else {
            keys.push(format!("listeners.{scheme}"));
            continue;
        };
        let ListenerConfig {
            kind: _,
            bind,
            ws,
            tls,
            allow_anonymous: _,
        } = o;
        if *bind != n.bind {
            keys.push(format!("listeners.{scheme}.bind"));
        }
        // The WebSocket message size follows mqtt.max_packet_size, reported there.
        if ws.as_ref().map(|w| &w.path) != n.ws.as_ref().map(|w| &w.path) {
            keys.push(format!("listeners.{scheme}.path"));
        }
        match (tls, &n.tls) {
            (Some(t), Some(u)) => {
                for (differs, key) in [
                    (t.certfile != u.certfile, "certfile"),
                    (t.keyfile != u.keyfile, "keyfile"),
                    (t.cacertfile != u.cacertfile, "cacertfile"),
                    (t.verify_peer != u.verify_peer, "verify_peer"),
                    (
                        t.fail_if_no_peer_cert != u.fail_if_no_peer_cert,
                        "fail_if_no_peer_cert",
                    ),
                    (
                        t.use_identity_as_username != u.use_identity_as_username,
                        "use_identity_as_username",
                    ),
                    (
                        t.use_subject_as_username != u.use_subject_as_username,
                        "use_subject_as_username",
                    ),
                ] {
                    if differs {
                        keys.push(format!("listeners.{scheme}.{key}"));
                    }
                }
            }
            (None, None) => {}
            _ => keys.push(format!("listeners.{scheme}")),
        }
    }
    for n in new {
        if old.iter().all(|o| o.kind != n.kind) {
            keys.push(format!("listeners.{}", n.kind.scheme()));
        }
    }
    keys
}

/// The `[persistence]` keys that differ (all need a restart: the store is opened once).
fn persistence(
    old: Option<&PersistenceConfig>,
    new: Option<&PersistenceConfig>,
) -> Vec<&'static str> {
    match (old, new) {
        (None, None) => Vec::new(),
        (
            Some(PersistenceConfig {
                path,
                sync,
                queue_in_memory,
            }),
            Some(new),
        ) => {
            let mut keys = Vec::new();
            if *path != new.path {
                keys.push("persistence.path");
            }
            if *sync != new.sync {
                keys.push("persistence.sync");
            }
            if *queue_in_memory != new.queue_in_memory {
                keys.push("persistence.queue_in_memory");
            }
            keys
        }
        _ => vec!["persistence.enabled"],
    }
}

/// The `[http_server]` keys that differ (all need a restart).
fn http_server(
    old: Option<&HttpServerConfig>,
    new: Option<&HttpServerConfig>,
) -> Vec<&'static str> {
    match (old, new) {
        (None, None) => Vec::new(),
        (
            Some(HttpServerConfig {
                bind,
                basic,
                api_keys,
            }),
            Some(new),
        ) => {
            let mut keys = Vec::new();
            if *bind != new.bind {
                keys.push("http_server.bind");
            }
            if basic.as_ref().map(|b| &b.0) != new.basic.as_ref().map(|b| &b.0) {
                keys.push("http_server.username");
            }
            if basic.as_ref().map(|b| &b.1) != new.basic.as_ref().map(|b| &b.1) {
                keys.push("http_server.password");
            }
            if *api_keys != new.api_keys {
                keys.push("http_server.api_keys");
            }
            keys
        }
        _ => vec!["http_server.enabled"],
    }
}

/// What the files `[auth]` names held when they were last read: a file edited in place
/// (a user added with `mosquitto_passwd`) changes the rules as much as a key does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AuthFiles {
    password_file: Option<Fingerprint>,
    acl_file: Option<Fingerprint>,
    scram_file: Option<Fingerprint>,
}

/// A file's contents, hashed (for telling whether it changed, not for security); `None`
/// when it cannot be read (building the access control then says why).
type Fingerprint = Option<u64>;

impl AuthFiles {
    /// Reads the files `auth` names.
    pub(super) fn read(auth: &AuthConfig) -> Self {
        Self {
            password_file: auth.password_file.as_deref().map(fingerprint),
            acl_file: auth.acl_file.as_deref().map(fingerprint),
            scram_file: auth.scram.as_ref().map(|s| fingerprint(&s.file)),
        }
    }

    /// Whether the password file or the ACL file differs (the access control is built
    /// again, and says so if one can no longer be read).
    pub(super) fn access_differs(&self, now: &Self) -> bool {
        self.password_file != now.password_file || self.acl_file != now.acl_file
    }

    /// Whether the SCRAM credentials file differs.
    pub(super) fn scram_differs(&self, now: &Self) -> bool {
        self.scram_file != now.scram_file
    }

    /// The keys whose file was read both times and changed in between.
    pub(super) fn changed(&self, now: &Self) -> Vec<&'static str> {
        let Self {
            password_file,
            acl_file,
            scram_file,
        } = self;
        [
            (password_file, &now.password_file, "auth.password_file"),
            (acl_file, &now.acl_file, "auth.acl_file"),
            (scram_file, &now.scram_file, "auth.scram"),
        ]
        .into_iter()
        .filter_map(|(before, after, key)| match (before, after) {
            (Some(Some(a)), Some(Some(b))) if a != b => Some(key),
            _ => None,
        })
        .collect()
    }
}

/// The fingerprint of the file at `path`.
fn fingerprint(path: &Path) -> Fingerprint {
    let bytes = std::fs::read(path).ok()?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(hasher.finish())
}

// Every case parses configurations with a TCP listener.
#[cfg(all(test, feature = "tcp"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::config::parse;

    fn config(extra: &str) -> Config {
        parse(&format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:1884\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn live_sections_come_from_the_file_the_rest_stays() {
        let running = config("[mqtt]\nmax_inflight = 10\n");
        let file = parse(
            "[listeners.tcp]\nbind = \"127.0.0.1:1999\"\nallow_anonymous = false\n\
             [mqtt]\nmax_inflight = 20\n[limits]\nmax_topic_levels = 5\n\
             [log]\nlevel = \"debug\"\n[auth]\nallow_anonymous = false\n\
             [sys]\ninterval = \"2s\"\n",
        )
        .unwrap();
        let next = effective(&running, file.clone());
        assert_eq!(next.listeners[0].bind, running.listeners[0].bind);
        assert_eq!(next.listeners[0].allow_anonymous, Some(false));
        assert_eq!(next.mqtt.max_inflight, 10);
        assert_eq!(next.mqtt.limits.max_topic_levels, 5);
        assert_eq!(next.log, file.log);
        assert_eq!(next.auth, file.auth);
        assert_eq!(next.sys, file.sys);

        assert_eq!(
            needs_restart(&running, &file),
            ["listeners.tcp.bind", "mqtt.max_inflight"]
        );
        // After the reload the same file still needs the restart, and nothing else.
        assert_eq!(
            needs_restart(&next, &file),
            ["listeners.tcp.bind", "mqtt.max_inflight"]
        );
        assert_eq!(
            listeners_live(&running.listeners, &next.listeners),
            ["listeners.tcp.allow_anonymous"]
        );
        assert_eq!(
            limits(&running.mqtt.limits, &next.mqtt.limits),
            ["limits.max_topic_levels"]
        );
        assert_eq!(log(&running.log, &next.log), ["log.level"]);
        assert_eq!(auth(&running.auth, &next.auth), ["auth.allow_anonymous"]);
        assert_eq!(sys(&running.sys, &next.sys), ["sys.interval"]);
    }

    #[test]
    fn each_section_names_the_keys_that_differ() {
        let base = config("");
        let same = config("");
        assert!(needs_restart(&base, &same).is_empty());
        assert!(auth(&base.auth, &same.auth).is_empty());
        assert!(log(&base.log, &same.log).is_empty());

        let acl = config(
            "[auth]\nno_match = \"deny\"\n[[auth.acl]]\npermit = \"allow\"\nall = true\n\
             topics = [\"a/#\"]\n",
        );
        assert_eq!(auth(&base.auth, &acl.auth), ["auth.acl", "auth.no_match"]);
        let file_log = config("[log]\nto = \"file\"\n");
        assert_eq!(log(&base.log, &file_log.log), ["log.to"]);
        let daily = config("[log]\nto = \"file\"\nrotation = \"daily\"\ndir = \"x\"\n");
        assert_eq!(log(&file_log.log, &daily.log), ["log.dir", "log.rotation"]);
        let stored = config("[persistence]\nenabled = true\n");
        assert_eq!(needs_restart(&base, &stored), ["persistence.enabled"]);
        let moved = config("[persistence]\nenabled = true\npath = \"other.db\"\n");
        assert_eq!(needs_restart(&stored, &moved), ["persistence.path"]);
        let api = config("[http_server]\nenabled = true\nbind = \"127.0.0.1:0\"\n");
        assert_eq!(needs_restart(&base, &api), ["http_server.enabled"]);
        let keyed = config(
            "[http_server]\nenabled = true\nbind = \"127.0.0.1:0\"\n\
             api_keys = [\"0123456789abcdef0\"]\n",
        );
        assert_eq!(needs_restart(&api, &keyed), ["http_server.api_keys"]);
    }

    #[test]
    fn listeners_added_removed_or_moved_need_a_restart() {
        let tcp = config("");
        let two = config("[listeners.ws]\nbind = \"127.0.0.1:8090\"\n");
        assert_eq!(needs_restart(&tcp, &two), ["listeners.ws"]);
        assert_eq!(needs_restart(&two, &tcp), ["listeners.ws"]);
        let path = config("[listeners.ws]\nbind = \"127.0.0.1:8090\"\npath = \"/m\"\n");
        assert_eq!(needs_restart(&two, &path), ["listeners.ws.path"]);
        // mqtt.max_packet_size moves the WebSocket message size: reported once, as itself.
        let big = config(
            "[listeners.ws]\nbind = \"127.0.0.1:8090\"\n[mqtt]\nmax_packet_size = \"2MB\"\n",
        );
        assert_eq!(needs_restart(&two, &big), ["mqtt.max_packet_size"]);
    }

    #[test]
    fn a_file_edited_in_place_is_a_change_of_its_key() {
        let dir = std::env::temp_dir().join(format!("nanomq-diff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, "a:x\n").unwrap();
        let auth = AuthConfig {
            password_file: Some(passwd.clone()),
            ..AuthConfig::default()
        };
        let before = AuthFiles::read(&auth);
        assert!(before.changed(&AuthFiles::read(&auth)).is_empty());
        std::fs::write(&passwd, "a:x\nb:y\n").unwrap();
        let after = AuthFiles::read(&auth);
        assert_eq!(before.changed(&after), ["auth.password_file"]);
        // A file that cannot be read is left to the access control's build to report.
        std::fs::remove_file(&passwd).unwrap();
        let gone = AuthFiles::read(&auth);
        assert_ne!(gone, after);
        assert!(after.changed(&gone).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
