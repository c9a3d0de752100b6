//! The configuration's tests: the example file, every key's validation and its messages.
//! Each section's own are in `tests/`: listeners, `[auth]`, `[[bridges]]`, `[http_server]`,
//! `[sys]`.

mod auth;
mod bridges;
mod http_server;
mod listeners;
mod sys;

// Most tests need a TCP listener; a build without it compiles only the others.
#[cfg(feature = "tcp")]
use std::path::PathBuf;
#[cfg(feature = "tcp")]
use std::time::Duration;

#[cfg(feature = "tcp")]
use broker_core::{DropPolicy, QueueFull, SharedStrategy, SyncPolicy};

#[cfg(all(feature = "tcp", feature = "ws"))]
use super::listeners::WsConfig;
#[cfg(feature = "tcp")]
use super::log::LogLevel;
use super::*;

/// The problems of a configuration that must be refused, as displayed.
pub(super) fn refused(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("accepted a bad configuration:\n{text}\n=> {config:?}"),
        Err(error) => error.to_string(),
    }
}

/// Asserts that `text` is refused with a message naming `key` and containing `words`.
#[track_caller]
pub(super) fn assert_refused(text: &str, key: &str, words: &str) {
    let message = refused(text);
    assert!(
        message.contains(key) && message.contains(words),
        "expected an error naming `{key}` and saying \"{words}\" for\n{text}\ngot: {message}"
    );
}

/// A configuration with a TCP listener and `extra` appended.
pub(super) fn with_tcp(extra: &str) -> String {
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
                allow_anonymous: None,
            },
        ]
    );
    // The example documents the defaults, so it must say what broker-core defaults to.
    assert_eq!(config.mqtt, MqttConfig::default());
    assert_eq!(config.auth, AuthConfig::default());
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
            queue_in_memory: 1000,
        })
    );
    let periodic = parse(&with_tcp(
        "[persistence]\nenabled = true\npath = \"/var/lib/nanomq/s.db\"\n\
         sync = \"periodic\"\nflush_interval = \"250ms\"\nqueue_in_memory = 64\n",
    ))
    .unwrap();
    assert_eq!(
        periodic.persistence,
        Some(PersistenceConfig {
            path: PathBuf::from("/var/lib/nanomq/s.db"),
            sync: SyncPolicy::Periodic(Duration::from_millis(250)),
            queue_in_memory: 64,
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
        &with_tcp("[persistence]\nqueue_in_memory = 0\n"),
        "persistence.queue_in_memory",
        "at least 1, got 0",
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
