//! The listener tables: TLS and WebSocket settings, and listeners compiled out.

#[cfg(all(feature = "ws", feature = "tls"))]
use std::path::PathBuf;

#[cfg(all(feature = "ws", feature = "tls"))]
use super::super::listeners::{TlsConfig, WsConfig};
use super::*;

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
        use_subject_as_username: false,
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
        &format!("[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}fail_if_no_peer_cert = true\n"),
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
        &format!(
            "[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}use_subject_as_username = true\n"
        ),
        "listeners.ssl.use_subject_as_username",
        "needs verify_peer = true",
    );
    assert_refused(
        &format!(
            "[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{files}cacertfile = \"ca.pem\"\n\
             verify_peer = true\nuse_subject_as_username = true\nuse_identity_as_username = true\n"
        ),
        "listeners.ssl.use_subject_as_username",
        "cannot be on together with use_identity_as_username",
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
