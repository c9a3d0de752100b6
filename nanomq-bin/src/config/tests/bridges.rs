//! `[[bridges]]`: the defaults of a minimal bridge, every key read, and the problem each
//! mistake is named by (`bridges[N].key`).

#![cfg(feature = "tcp")]

use std::path::PathBuf;
use std::time::Duration;

use mqtt_client::TlsOptions;
use mqtt_client::endpoint::{Endpoint, parse_url};
use mqtt_codec::{ProtocolVersion, QoS, RetainHandling, TopicFilter};

use super::*;

/// A bridge that is fine: the tests spoil one thing at a time with [`spoilt`].
const GOOD: &str = r#"
[[bridges]]
name = "cloud"
servers = ["mqtt://broker.example.com:1883"]
[[bridges.forwards]]
local_topic = "sensors/#"
"#;

/// The bridges of a configuration with a TCP listener and `bridges`.
fn bridges(bridges: &str) -> Vec<BridgeConfig> {
    match parse(&with_tcp(bridges)) {
        Ok(config) => config.bridges,
        Err(e) => panic!("refused:\n{bridges}\n=> {e}"),
    }
}

/// [`GOOD`] with `from` replaced by `to` (which must be there), in a configuration.
fn spoilt(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} is not in the good bridge");
    with_tcp(&GOOD.replacen(from, to, 1))
}

/// [`GOOD`] with the keys `lines` added to its `[[bridges]]` table, in a configuration.
fn with_lines(lines: &str) -> String {
    spoilt(
        "name = \"cloud\"\n",
        &format!("name = \"cloud\"\n{lines}\n"),
    )
}

/// [`GOOD`] with its server's scheme `scheme` and a `[bridges.ssl]` table of `ssl` lines.
fn with_ssl(scheme: &str, ssl: &str) -> String {
    format!("{}[bridges.ssl]\n{ssl}\n", spoilt("mqtt://", scheme))
}

/// [`GOOD`] with its forward's `local_topic = "sensors/#"` line replaced by `lines`.
fn with_forward(lines: &str) -> String {
    spoilt("local_topic = \"sensors/#\"\n", &format!("{lines}\n"))
}

/// [`GOOD`] with a subscription of `lines`.
fn with_subscription(lines: &str) -> String {
    with_tcp(&format!("{GOOD}[[bridges.subscriptions]]\n{lines}\n"))
}

/// The endpoint `url` names.
fn endpoint(url: &str) -> Endpoint {
    parse_url(url).unwrap().endpoint
}

/// A topic map.
fn map(topic: &str, prefix: &str, suffix: &str) -> TopicMap {
    TopicMap {
        topic: topic.to_owned(),
        prefix: prefix.to_owned(),
        suffix: suffix.to_owned(),
    }
}

#[test]
fn no_bridges_unless_configured() {
    assert_eq!(parse(&with_tcp("")).unwrap().bridges, []);
}

#[test]
fn a_minimal_bridge_takes_the_defaults() {
    let config = bridges(&format!(
        "{GOOD}[[bridges.subscriptions]]\nremote_topic = \"commands/#\"\n"
    ));
    assert_eq!(
        config,
        [BridgeConfig {
            name: "cloud".to_owned(),
            servers: vec![endpoint("mqtt://broker.example.com:1883")],
            version: ProtocolVersion::V5,
            client_id: "nanomq-bridge-cloud".to_owned(),
            keep_alive: 60,
            clean_start: false,
            session_expiry: 3600,
            username: None,
            password: None,
            tls: TlsOptions::default(),
            forwards: vec![Forward {
                filter: TopicFilter::new("sensors/#").unwrap(),
                remote: map("", "", ""),
                qos: QoS::AtLeastOnce,
                retain: None,
            }],
            subscriptions: vec![RemoteSubscription {
                filter: TopicFilter::new("commands/#").unwrap(),
                local: map("", "", ""),
                qos: QoS::AtLeastOnce,
                retain_as_published: true,
                retain_handling: RetainHandling::SendAtSubscribe,
            }],
            max_send_queue_len: 100_000,
            max_inflight: 1024,
            backoff_max: Duration::from_secs(60),
        }]
    );
}

#[test]
fn every_key_is_read() {
    let config = bridges(
        r#"
        [[bridges]]
        name = "edge.to-cloud_1"
        servers = ["mqtts://a.example.com", "wss://b.example.com:443/ws", "mqtt://[::1]:2883"]
        proto_ver = 4
        clientid = "edge-1"
        keepalive = "30s"
        clean_start = true
        session_expiry = "2h"
        username = "edge"
        password = "secret"
        max_send_queue_len = 50
        max_inflight = 8
        backoff_max = "500ms"
        [bridges.ssl]
        cacertfile = "/etc/nanomq/ca.pem"
        certfile = "/etc/nanomq/edge.pem"
        keyfile = "/etc/nanomq/edge.key"
        server_name = "cloud.example.com"
        insecure = true
        [[bridges.forwards]]
        local_topic = "sensors/+/temp"
        remote_topic = "temperatures"
        prefix = "edge-1/"
        suffix = "/raw"
        qos = 2
        retain = false
        [[bridges.forwards]]
        local_topic = "state/#"
        qos = 0
        retain = true
        [[bridges.subscription]]
        remote_topic = "commands/edge-1/#"
        local_topic = "commands"
        prefix = "cloud/"
        suffix = "/in"
        qos = 0
        retain_as_published = false
        "#,
    );
    let [bridge] = config.as_slice() else {
        panic!("{config:?}")
    };
    assert_eq!(bridge.name, "edge.to-cloud_1");
    assert_eq!(
        bridge.servers,
        [
            endpoint("mqtts://a.example.com:8883"),
            endpoint("wss://b.example.com:443/ws"),
            endpoint("mqtt://[::1]:2883"),
        ]
    );
    assert_eq!(bridge.servers[1].path, "/ws");
    assert_eq!(bridge.version, ProtocolVersion::V3_1_1);
    assert_eq!(bridge.client_id, "edge-1");
    assert_eq!(bridge.keep_alive, 30);
    assert!(bridge.clean_start);
    assert_eq!(bridge.session_expiry, 7200);
    assert_eq!(bridge.username.as_deref(), Some("edge"));
    assert_eq!(bridge.password.as_deref(), Some("secret"));
    assert_eq!(
        bridge.tls,
        TlsOptions {
            cafile: Some(PathBuf::from("/etc/nanomq/ca.pem")),
            cert: Some(PathBuf::from("/etc/nanomq/edge.pem")),
            key: Some(PathBuf::from("/etc/nanomq/edge.key")),
            server_name: Some("cloud.example.com".to_owned()),
            insecure: true,
        }
    );
    assert_eq!(
        bridge.forwards,
        [
            Forward {
                filter: TopicFilter::new("sensors/+/temp").unwrap(),
                remote: map("temperatures", "edge-1/", "/raw"),
                qos: QoS::ExactlyOnce,
                retain: Some(false),
            },
            Forward {
                filter: TopicFilter::new("state/#").unwrap(),
                remote: map("", "", ""),
                qos: QoS::AtMostOnce,
                retain: Some(true),
            },
        ]
    );
    assert_eq!(
        bridge.subscriptions,
        [RemoteSubscription {
            filter: TopicFilter::new("commands/edge-1/#").unwrap(),
            local: map("commands", "cloud/", "/in"),
            qos: QoS::AtMostOnce,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }]
    );
    assert_eq!(bridge.max_send_queue_len, 50);
    assert_eq!(bridge.max_inflight, 8);
    assert_eq!(bridge.backoff_max, Duration::from_millis(500));
}

#[test]
fn retain_handling_and_several_bridges() {
    let config = bridges(
        r##"
        [[bridges]]
        name = "one"
        servers = ["mqtt://127.0.0.1:1"]
        [[bridges.subscriptions]]
        remote_topic = "a"
        retain_handling = 1
        [[bridges.subscriptions]]
        remote_topic = "b"
        retain_handling = 2
        [[bridges]]
        name = "two"
        servers = ["tcp://127.0.0.1:2"]
        password = "no username is fine with MQTT 5"
        [[bridges.forwards]]
        local_topic = "#"
        "##,
    );
    assert_eq!(config.len(), 2);
    let handling: Vec<_> = config[0]
        .subscriptions
        .iter()
        .map(|s| s.retain_handling)
        .collect();
    assert_eq!(
        handling,
        [RetainHandling::SendIfNew, RetainHandling::DoNotSend]
    );
    assert_eq!(config[0].forwards, []);
    assert_eq!(config[1].name, "two");
    assert_eq!(config[1].servers, [endpoint("mqtt://127.0.0.1:2")]);
    assert_eq!(config[1].subscriptions, []);
}

#[test]
fn bad_names_and_duplicates_are_refused() {
    for name in ["", "two words", "a/b", "é"] {
        assert_refused(
            &spoilt("\"cloud\"", &format!("\"{name}\"")),
            "bridges[0].name",
            "must be letters, digits",
        );
    }
    let twice = with_tcp(&format!("{GOOD}{GOOD}"));
    assert_refused(
        &twice,
        "bridges[1].name",
        "\"cloud\" names another bridge too",
    );
    assert!(
        !refused(&twice).contains("bridges[0]"),
        "{}",
        refused(&twice)
    );
    assert_refused(&twice, "bridges[1].clientid", "another bridge's client id");
    let path = spoilt("example.com:1883\"", "example.com:1883/topic\"");
    assert_refused(&path, "bridges[0].servers[0]", "has no path");
}

#[test]
fn bad_servers_are_refused() {
    let servers = "[\"mqtt://broker.example.com:1883\"]";
    assert_refused(
        &spoilt(servers, "[]"),
        "bridges[0].servers",
        "must name at least one server",
    );
    assert_refused(
        &spoilt(servers, "[\"mqtt://127.0.0.1:1\", \"http://example.com\"]"),
        "bridges[0].servers[1]",
        "http://example.com: unknown scheme `http`",
    );
    assert_refused(
        &spoilt(servers, "[\"broker.example.com:1883\"]"),
        "bridges[0].servers[0]",
        "no scheme",
    );
    assert_refused(
        &spoilt(servers, "[\"mqtt://broker.example.com:99999\"]"),
        "bridges[0].servers[0]",
        "invalid port",
    );
    assert_refused(
        &spoilt(servers, "[\"mqtt://user:pass@broker.example.com\"]"),
        "bridges[0].servers[0]",
        "credentials go in username and password",
    );
    assert_refused(
        &spoilt(servers, "\"mqtt://broker.example.com\""),
        "bridges[0].servers",
        "invalid type",
    );
    assert_refused(
        &spoilt(&format!("servers = {servers}\n"), ""),
        "bridges[0]",
        "missing field `servers`",
    );
}

#[test]
fn bad_tls_settings_are_refused() {
    assert_eq!(
        bridges(&GOOD.replace("mqtt://", "wss://"))[0].tls,
        TlsOptions::default()
    );
    let config = parse(&with_ssl("mqtts://", "cacertfile = \"ca.pem\"")).unwrap();
    assert_eq!(config.bridges[0].tls.cafile, Some(PathBuf::from("ca.pem")));
    assert_refused(
        &with_ssl("mqtt://", "cacertfile = \"ca.pem\""),
        "bridges[0].ssl",
        "given, but no server is mqtts:// or wss://",
    );
    for half in ["certfile = \"edge.pem\"", "keyfile = \"edge.key\""] {
        assert_refused(
            &with_ssl("mqtts://", half),
            "bridges[0].ssl",
            "certfile and keyfile go together",
        );
    }
    assert_refused(
        &with_ssl("wss://", "verify = true"),
        "bridges[0].ssl.verify",
        "unknown field",
    );
    assert_refused(
        &with_ssl("wss://", "insecure = \"yes\""),
        "bridges[0].ssl.insecure",
        "invalid type",
    );
}

#[test]
fn bad_protocol_and_session_settings_are_refused() {
    for version in ["3", "6", "0", "-4"] {
        assert_refused(
            &with_lines(&format!("proto_ver = {version}")),
            "bridges[0].proto_ver",
            &format!("must be 4 (MQTT 3.1.1) or 5, got {version}"),
        );
    }
    assert_refused(
        &with_lines("clientid = \"\""),
        "bridges[0].clientid",
        "must not be empty",
    );
    assert_refused(
        &with_lines("keepalive = \"19h\""),
        "bridges[0].keepalive",
        "is longer than MQTT can carry",
    );
    assert_eq!(
        bridges(&GOOD.replace(
            "name = \"cloud\"\n",
            "name = \"cloud\"\nkeepalive = 65535\n"
        ))[0]
            .keep_alive,
        u16::MAX
    );
    assert_refused(
        &with_lines("session_expiry = \"200years\""),
        "bridges[0].session_expiry",
        "is longer than MQTT can carry",
    );
    assert_refused(
        &with_lines("keepalive = \"soon\""),
        "bridges[0].keepalive",
        "invalid duration",
    );
    assert_refused(
        &with_lines("proto_ver = 4\npassword = \"secret\""),
        "bridges[0].password",
        "needs a username before MQTT 5",
    );
    assert_refused(
        &with_lines("clean_start = \"yes\""),
        "bridges[0].clean_start",
        "invalid type",
    );
}

#[test]
fn a_bridge_that_carries_nothing_is_refused() {
    let text = with_tcp(&GOOD.replace("[[bridges.forwards]]\nlocal_topic = \"sensors/#\"\n", ""));
    assert_refused(
        &text,
        "bridges[0]",
        "has neither forwards nor subscriptions: it would carry nothing",
    );
}

#[test]
fn bad_forwards_are_refused() {
    for filter in ["sensors/#/more", "a+", "", "a/#b"] {
        assert_refused(
            &with_forward(&format!("local_topic = \"{filter}\"")),
            "bridges[0].forwards[0].local_topic",
            &format!("\"{filter}\" is not a topic filter"),
        );
    }
    for topic in ["a/+", "a/#"] {
        assert_refused(
            &with_forward(&format!("local_topic = \"a\"\nremote_topic = \"{topic}\"")),
            "bridges[0].forwards[0].remote_topic",
            &format!("\"{topic}\" is not a topic name"),
        );
    }
    for key in ["prefix", "suffix"] {
        for text in ["+/", "#", "a\\u0000"] {
            assert_refused(
                &with_forward(&format!("local_topic = \"a\"\n{key} = \"{text}\"")),
                &format!("bridges[0].forwards[0].{key}"),
                "must not hold wildcards ('+', '#') or NUL",
            );
        }
    }
    for qos in ["3", "-1"] {
        assert_refused(
            &with_forward(&format!("local_topic = \"a\"\nqos = {qos}")),
            "bridges[0].forwards[0].qos",
            &format!("must be 0, 1 or 2, got {qos}"),
        );
    }
    assert_refused(
        &with_forward("local_topic = \"a\"\nretain = 1"),
        "bridges[0].forwards[0].retain",
        "invalid type",
    );
    assert_refused(
        &with_forward("remote_topic = \"a\""),
        "bridges[0].forwards[0]",
        "missing field `local_topic`",
    );
    assert_refused(
        &with_forward("local_topic = \"a\"\nretained = true"),
        "bridges[0].forwards[0].retained",
        "unknown field",
    );
}

#[test]
fn bad_subscriptions_are_refused() {
    assert_refused(
        &with_subscription("remote_topic = \"a/#/b\""),
        "bridges[0].subscriptions[0].remote_topic",
        "\"a/#/b\" is not a topic filter",
    );
    assert_refused(
        &with_subscription("remote_topic = \"a\"\nlocal_topic = \"b/+\""),
        "bridges[0].subscriptions[0].local_topic",
        "\"b/+\" is not a topic name",
    );
    assert_refused(
        &with_subscription("remote_topic = \"a\"\nprefix = \"x/#/\""),
        "bridges[0].subscriptions[0].prefix",
        "must not hold wildcards",
    );
    assert_refused(
        &with_subscription("remote_topic = \"a\"\nqos = 5"),
        "bridges[0].subscriptions[0].qos",
        "must be 0, 1 or 2, got 5",
    );
    assert_refused(
        &with_subscription("remote_topic = \"a\"\nretain_handling = 3"),
        "bridges[0].subscriptions[0].retain_handling",
        "must be 0, 1 or 2, got 3",
    );
    let v4 = |lines: &str| {
        with_tcp(&format!(
            "{}[[bridges.subscriptions]]\n{lines}\n",
            GOOD.replace("name = \"cloud\"\n", "name = \"cloud\"\nproto_ver = 4\n")
        ))
    };
    assert_refused(
        &v4("remote_topic = \"a\"\nretain_handling = 1"),
        "bridges[0].subscriptions[0].retain_handling",
        "is an MQTT 5 option (proto_ver = 5)",
    );
    assert!(parse(&v4("remote_topic = \"a\"\nretain_handling = 0")).is_ok());
    assert_refused(
        &with_subscription("local_topic = \"a\""),
        "bridges[0].subscriptions[0]",
        "missing field `remote_topic`",
    );
    assert_refused(
        &with_subscription("remote_topic = \"a\"\nno_local = true"),
        "bridges[0].subscriptions[0].no_local",
        "unknown field",
    );
}

#[test]
fn out_of_range_limits_are_refused() {
    let cases = [
        (
            "max_send_queue_len = 0",
            "bridges[0].max_send_queue_len",
            "between 1 and 100000000, got 0",
        ),
        (
            "max_send_queue_len = 100000001",
            "bridges[0].max_send_queue_len",
            "got 100000001",
        ),
        (
            "max_inflight = 0",
            "bridges[0].max_inflight",
            "between 1 and 65535, got 0",
        ),
        (
            "max_inflight = 65536",
            "bridges[0].max_inflight",
            "got 65536",
        ),
        (
            "backoff_max = \"0s\"",
            "bridges[0].backoff_max",
            "must be greater than zero",
        ),
        (
            "backoff_max = \"often\"",
            "bridges[0].backoff_max",
            "invalid duration",
        ),
    ];
    for (line, key, words) in cases {
        assert_refused(&with_lines(line), key, words);
    }
}

#[test]
fn unknown_keys_in_a_bridge_are_refused() {
    assert_refused(
        &with_lines("server = \"mqtt://127.0.0.1:1\""),
        "bridges[0].server",
        "unknown field",
    );
    assert_refused(
        &format!("bridges = 1\n{}", with_tcp("")),
        "bridges",
        "invalid type",
    );
    assert_refused(
        &with_tcp("[bridges]\nname = \"cloud\"\n"),
        "bridges",
        "invalid type",
    );
}

#[test]
fn every_problem_of_every_bridge_is_reported_at_once() {
    let message = refused(&with_tcp(
        r#"
        [[bridges]]
        name = "one"
        servers = []
        proto_ver = 3
        [[bridges.forwards]]
        local_topic = "a/#/b"
        qos = 7
        [[bridges]]
        name = "two"
        servers = ["mqtt://127.0.0.1:1"]
        max_inflight = 0
        [[bridges.subscriptions]]
        remote_topic = "c"
        retain_handling = 9
        "#,
    ));
    for key in [
        "bridges[0].servers:",
        "bridges[0].proto_ver:",
        "bridges[0].forwards[0].local_topic:",
        "bridges[0].forwards[0].qos:",
        "bridges[1].max_inflight:",
        "bridges[1].subscriptions[0].retain_handling:",
    ] {
        assert!(message.contains(key), "{key} missing from:\n{message}");
    }
    assert_eq!(message.lines().count(), 6, "{message}");
}
