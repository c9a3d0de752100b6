//! `[[bridges]]` end to end: an edge `nanomq` bridged to a real upstream broker started by the
//! test, on loopback ports of their own, driven by `mosquitto_pub` / `mosquitto_sub`.
//!
//! - The round trip, against Mosquitto and against a second `nanomq`, with `proto_ver` 4 and
//!   5 (the same body for all four): forwards and subscriptions at QoS 0, 1 and 2 (the
//!   subscriber on the far side sees the QoS the message went at, capped by the forward's or
//!   subscription's), topics kept, replaced and wrapped in a prefix and suffix, a forwarded
//!   retained message retained upstream (a late subscriber gets it) unless `retain = false`,
//!   and a retained message upstream landing retained locally. Each message arrives once.
//! - Two `nanomq`s bridged both ways on one topic, and a `nanomq` and Mosquitto: each
//!   message, published on either side, arrives exactly once on each side (no loop), through
//!   a few seconds of quiet.
//! - A bridge over `ws://` to a second `nanomq`.
//! - Failover: a dead server first in `servers`, the live one second.
//! - A bad `[[bridges]]` table stops `nanomq start` with the key named.
//!
//! TLS bridges are in `e2e_bridge_tls.rs`. Missing tools fail these tests with the command
//! that installs them; they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod bridge;
mod e2e;

use std::fs;
use std::process::Command;
use std::thread;
use std::time::Duration;

use bridge::{
    Mosquitto, PATIENCE, Sub, Upstream, Version, assert_exactly, count_lines, edge_config,
    free_port, msg, publish, wait_connected,
};
use e2e::{Broker, run, scratch_dir};

/// How long to keep listening for duplicates once every message of a round trip arrived.
const QUIET: Duration = Duration::from_secs(1);

/// How long to keep listening for messages going round in a loop.
const LOOP_QUIET: Duration = Duration::from_secs(3);

/// The edge's bridge in the round trip: one forward or subscription per thing under test.
fn round_trip_bridge(upstream: &Upstream, version: Version) -> String {
    format!(
        r#"
[[bridges]]
name = "cloud"
servers = ["mqtt://{upstream}"]
proto_ver = {proto_ver}
clientid = "edge-1"
keepalive = "60s"
clean_start = false
session_expiry = "1h"
backoff_max = "500ms"

# The topic kept; QoS as published.
[[bridges.forwards]]
local_topic = "sensors/#"
qos = 2
# QoS capped at 1.
[[bridges.forwards]]
local_topic = "cap/#"
qos = 1
[[bridges.forwards]]
local_topic = "rename/me"
remote_topic = "renamed/topic"
qos = 2
[[bridges.forwards]]
local_topic = "wrap/#"
prefix = "edge-1/"
suffix = "/up"
qos = 2
# Retained as published.
[[bridges.forwards]]
local_topic = "state/#"
qos = 1
[[bridges.forwards]]
local_topic = "noretain/#"
qos = 1
retain = false

[[bridges.subscriptions]]
remote_topic = "commands/#"
qos = 2
[[bridges.subscriptions]]
remote_topic = "downcap/#"
qos = 1
[[bridges.subscriptions]]
remote_topic = "down/rename"
local_topic = "local/renamed"
qos = 2
[[bridges.subscriptions]]
remote_topic = "down/wrap/#"
prefix = "from-cloud/"
suffix = "/in"
qos = 2
"#,
        upstream = upstream.address(),
        proto_ver = version.proto_ver(),
    )
}

/// The round trip through an edge bridged to `upstream` with `version`.
fn round_trip(name: &str, upstream: &Upstream, version: Version) {
    let cloud = upstream.address();
    // Retained upstream before the bridge exists: it comes down when the bridge subscribes,
    // which tells the test that the remote subscriptions are in place.
    publish(cloud, version, "commands/ready", "ready", 1, true);
    let edge = Broker::start_with_config(
        name,
        &edge_config("info", &round_trip_bridge(upstream, version)),
    );
    wait_connected(&edge, "edge-1");
    let down_filters = [
        "commands/#",
        "downcap/#",
        "down/#",
        "local/#",
        "from-cloud/#",
    ];
    let mut down = Sub::start(edge.address(), version, &down_filters);
    down.wait("commands/ready", "ready");
    // Where forwarded messages belong upstream, and where they would be with their topic
    // wrongly kept.
    let up_filters = [
        "sensors/#",
        "cap/#",
        "rename/#",
        "renamed/#",
        "wrap/#",
        "edge-1/#",
        "state/#",
        "noretain/#",
    ];
    let mut up = Sub::start(cloud, version, &up_filters);

    // Up.
    let local = edge.address();
    for qos in 0..=2 {
        publish(
            local,
            version,
            &format!("sensors/t{qos}"),
            &format!("s{qos}"),
            qos,
            false,
        );
    }
    publish(local, version, "cap/t2", "c2", 2, false);
    publish(local, version, "rename/me", "r", 1, false);
    publish(local, version, "wrap/a", "w", 2, false);
    publish(local, version, "state/door", "open", 1, true);
    publish(local, version, "noretain/door", "closed", 1, true);
    // Down.
    for qos in 0..=2 {
        publish(
            cloud,
            version,
            &format!("commands/c{qos}"),
            &format!("k{qos}"),
            qos,
            false,
        );
    }
    publish(cloud, version, "downcap/x", "d", 2, false);
    publish(cloud, version, "down/rename", "n", 2, false);
    publish(cloud, version, "down/wrap/x", "w", 1, false);
    // Retained as published (MQTT 5's option; the bridge bit asks for it in 3.1.1).
    publish(cloud, version, "commands/colour", "blue", 1, true);

    // Live deliveries carry retain 0 (the subscribers do not ask for retain as published).
    let up_expected = vec![
        msg("sensors/t0", 0, false, "s0"),
        msg("sensors/t1", 1, false, "s1"),
        msg("sensors/t2", 2, false, "s2"),
        msg("cap/t2", 1, false, "c2"),
        msg("renamed/topic", 1, false, "r"),
        msg("edge-1/wrap/a/up", 2, false, "w"),
        msg("state/door", 1, false, "open"),
        msg("noretain/door", 1, false, "closed"),
    ];
    let down_expected = vec![
        msg("commands/c0", 0, false, "k0"),
        msg("commands/c1", 1, false, "k1"),
        msg("commands/c2", 2, false, "k2"),
        msg("downcap/x", 1, false, "d"),
        msg("local/renamed", 2, false, "n"),
        msg("from-cloud/down/wrap/x/in", 1, false, "w"),
        msg("commands/colour", 1, false, "blue"),
    ];
    for m in &up_expected {
        up.wait(&m.topic, &m.payload);
    }
    for m in &down_expected {
        down.wait(&m.topic, &m.payload);
    }

    // Retained upstream: a late subscriber gets the retained forward, not the one forwarded
    // with `retain = false`. Retained messages come right after the SUBACK, so once a message
    // published after it arrives, every retained one has.
    let mut late = Sub::start(cloud, version, &["state/#", "noretain/#", "late/#"]);
    publish(cloud, version, "late/sentinel", "end", 1, false);
    late.wait("late/sentinel", "end");
    assert_exactly(
        &late.stop_sorted(),
        vec![
            msg("late/sentinel", 1, false, "end"),
            msg("state/door", 1, true, "open"),
        ],
        "a late subscriber upstream",
    );
    // The retained messages that came down, at the subscription and after it, are retained
    // locally.
    let mut late_local = Sub::start(local, version, &["commands/ready", "commands/colour"]);
    let ready = late_local.wait("commands/ready", "ready");
    assert_eq!(ready, msg("commands/ready", 1, true, "ready"), "locally");
    let colour = late_local.wait("commands/colour", "blue");
    assert_eq!(colour, msg("commands/colour", 1, true, "blue"), "locally");

    thread::sleep(QUIET);
    assert_exactly(&up.stop_sorted(), up_expected, "upstream");
    // The ready message came live or, if it landed before the subscriber, retained.
    let mut got_down = down.stop_sorted();
    let ready: Vec<_> = got_down
        .iter()
        .filter(|m| m.topic == "commands/ready")
        .cloned()
        .collect();
    assert_eq!(ready.len(), 1, "the ready message came {ready:?}");
    got_down.retain(|m| m.topic != "commands/ready");
    assert_exactly(&got_down, down_expected, "locally");
    assert!(
        count_lines(&edge.log(), &["bridge connected", "bridge=cloud"]) == 1,
        "the bridge connected more than once:\n{}",
        edge.log()
    );
    edge.stop();
}

fn mosquitto_round_trip(version: Version) {
    let name = format!("bridge-mosquitto-v{}", version.proto_ver());
    let upstream = Upstream::Mosquitto(Mosquitto::start(&name, "", &[]));
    round_trip(&name, &upstream, version);
}

fn nanomq_round_trip(version: Version) {
    let name = format!("bridge-nanomq-v{}", version.proto_ver());
    let upstream = Upstream::Nanomq(Broker::start(&format!("{name}-upstream"), ""));
    round_trip(&name, &upstream, version);
}

#[test]
fn round_trip_through_mosquitto_with_mqtt_5() {
    mosquitto_round_trip(Version::V5);
}

#[test]
fn round_trip_through_mosquitto_with_mqtt_3_1_1() {
    mosquitto_round_trip(Version::V4);
}

#[test]
fn round_trip_through_nanomq_with_mqtt_5() {
    nanomq_round_trip(Version::V5);
}

#[test]
fn round_trip_through_nanomq_with_mqtt_3_1_1() {
    nanomq_round_trip(Version::V4);
}

/// A (a `nanomq`) bridged both ways to `b` on `loop/#`: each message once on each side.
fn no_loop(name: &str, b: &Upstream, version: Version) {
    publish(b.address(), version, "loop/ready", "ready", 1, true);
    let bridge = format!(
        r#"
[[bridges]]
name = "b"
servers = ["mqtt://{b}"]
proto_ver = {proto_ver}
clientid = "a-to-b"
backoff_max = "500ms"
[[bridges.forwards]]
local_topic = "loop/#"
qos = 2
[[bridges.subscriptions]]
remote_topic = "loop/#"
qos = 2
"#,
        b = b.address(),
        proto_ver = version.proto_ver(),
    );
    let a = Broker::start_with_config(&format!("{name}-a"), &edge_config("info", &bridge));
    wait_connected(&a, "a-to-b");
    let mut on_a = Sub::start(a.address(), version, &["loop/#"]);
    on_a.wait("loop/ready", "ready");
    let mut on_b = Sub::start(b.address(), version, &["loop/#"]);
    on_b.wait("loop/ready", "ready");

    let mut expected = vec![msg("loop/ready", 1, false, "ready")];
    for (side, address) in [("a", a.address()), ("b", b.address())] {
        for qos in 0..=2 {
            let topic = format!("loop/{side}{qos}");
            let payload = format!("from {side} at {qos}");
            publish(address, version, &topic, &payload, qos, false);
            expected.push(msg(&topic, qos, false, &payload));
        }
    }
    for m in &expected {
        on_a.wait(&m.topic, &m.payload);
        on_b.wait(&m.topic, &m.payload);
    }
    thread::sleep(LOOP_QUIET);
    // Whether `loop/ready` came retained depends on when each subscriber subscribed.
    let unretained = |sub: Sub| {
        let mut got = sub.stop_sorted();
        for m in &mut got {
            m.retain = false;
        }
        got
    };
    assert_exactly(&unretained(on_a), expected.clone(), "on A");
    assert_exactly(&unretained(on_b), expected, "on B");
    a.stop();
}

fn nanomqs_no_loop(version: Version) {
    let name = format!("bridge-loop-v{}", version.proto_ver());
    let b = Upstream::Nanomq(Broker::start(&format!("{name}-b"), ""));
    no_loop(&name, &b, version);
}

fn mosquitto_no_loop(version: Version) {
    let name = format!("bridge-loop-mosquitto-v{}", version.proto_ver());
    let b = Upstream::Mosquitto(Mosquitto::start(&name, "", &[]));
    no_loop(&name, &b, version);
}

#[test]
fn two_nanomqs_bridged_both_ways_deliver_each_message_once_with_mqtt_5() {
    nanomqs_no_loop(Version::V5);
}

#[test]
fn two_nanomqs_bridged_both_ways_deliver_each_message_once_with_mqtt_3_1_1() {
    nanomqs_no_loop(Version::V4);
}

#[test]
fn bridged_both_ways_with_mosquitto_each_message_arrives_once_with_mqtt_5() {
    mosquitto_no_loop(Version::V5);
}

#[test]
fn bridged_both_ways_with_mosquitto_each_message_arrives_once_with_mqtt_3_1_1() {
    mosquitto_no_loop(Version::V4);
}

#[test]
fn a_dead_first_server_fails_over_to_the_second() {
    let mosquitto = Mosquitto::start("bridge-failover", "", &[]);
    let live = mosquitto.address();
    let dead = free_port();
    publish(live, Version::V5, "fo/down/ready", "ready", 1, true);
    let bridge = format!(
        r#"
[[bridges]]
name = "cloud"
servers = ["mqtt://127.0.0.1:{dead}", "mqtt://{live}"]
clientid = "edge-failover"
backoff_max = "500ms"
[[bridges.forwards]]
local_topic = "fo/up/#"
[[bridges.subscriptions]]
remote_topic = "fo/down/#"
"#
    );
    let edge = Broker::start_with_config("bridge-failover", &edge_config("debug", &bridge));
    wait_connected(&edge, "edge-failover");
    let mut down = Sub::start(edge.address(), Version::V5, &["fo/down/#"]);
    down.wait("fo/down/ready", "ready");
    let mut up = Sub::start(live, Version::V5, &["fo/up/#"]);
    publish(edge.address(), Version::V5, "fo/up/x", "up", 1, false);
    assert_eq!(up.wait("fo/up/x", "up"), msg("fo/up/x", 1, false, "up"));
    publish(live, Version::V5, "fo/down/y", "down", 1, false);
    assert_eq!(
        down.wait("fo/down/y", "down"),
        msg("fo/down/y", 1, false, "down")
    );

    let log = edge.log();
    let dead_server = format!("server=mqtt://127.0.0.1:{dead}");
    assert!(
        count_lines(&log, &["connection attempt failed", &dead_server]) >= 1,
        "no failed attempt on the dead server in the log:\n{log}"
    );
    assert_eq!(
        count_lines(
            &log,
            &["bridge connected", &format!("server=mqtt://{live}")]
        ),
        1,
        "the bridge did not connect to the second server once:\n{log}"
    );
    assert_eq!(count_lines(&log, &["bridge connected"]), 1, "{log}");
    edge.stop();
}

/// A bridge table that is fine: the cases below spoil one thing each.
const GOOD_BRIDGE: &str = r#"
[[bridges]]
name = "cloud"
servers = ["mqtt://127.0.0.1:1"]
proto_ver = 5
[[bridges.forwards]]
local_topic = "sensors/#"
"#;

#[test]
fn a_bad_bridge_stops_the_start_naming_the_key() {
    let cases = [
        (
            GOOD_BRIDGE.replace("proto_ver = 5", "proto_ver = 3"),
            "bridges[0].proto_ver: must be 4 (MQTT 3.1.1) or 5, got 3",
        ),
        (
            GOOD_BRIDGE.replace("sensors/#", "sensors/#/more"),
            "bridges[0].forwards[0].local_topic: \"sensors/#/more\" is not a topic filter",
        ),
        (
            format!("{GOOD_BRIDGE}{GOOD_BRIDGE}"),
            "bridges[1].name: \"cloud\" names another bridge too",
        ),
        (
            GOOD_BRIDGE.replace("[\"mqtt://127.0.0.1:1\"]", "[]"),
            "bridges[0].servers: must name at least one server",
        ),
    ];
    for (i, (bridges, expected)) in cases.iter().enumerate() {
        let dir = scratch_dir(&format!("bridge-bad-{i}"));
        let path = dir.join("nanomq.toml");
        fs::write(&path, edge_config("info", bridges)).unwrap();
        let output = run(
            Command::new(env!("CARGO_BIN_EXE_nanomq"))
                .arg("start")
                .arg("--conf")
                .arg(&path)
                .env_remove("RUST_LOG"),
            PATIENCE,
        );
        assert!(
            !output.status.success(),
            "nanomq started with:\n{bridges}\n{}",
            output.stderr
        );
        assert!(
            output.stderr.contains(expected),
            "expected {expected:?} in:\n{}",
            output.stderr
        );
        assert!(
            !output.stderr.contains("listening on"),
            "nothing may listen: {}",
            output.stderr
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

#[cfg(feature = "ws")]
#[test]
fn a_bridge_over_websocket_to_nanomq() {
    let upstream = Broker::start_with_config(
        "bridge-ws-upstream",
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.ws]\nbind = \"127.0.0.1:0\"\n",
    );
    let ws = bridge::listener_address(&upstream, "ws");
    let cloud = upstream.address();
    publish(cloud, Version::V5, "ws/down/ready", "ready", 1, true);
    let bridge = format!(
        r#"
[[bridges]]
name = "cloud"
servers = ["ws://{ws}/mqtt"]
clientid = "edge-ws"
backoff_max = "500ms"
[[bridges.forwards]]
local_topic = "ws/up/#"
qos = 2
[[bridges.subscriptions]]
remote_topic = "ws/down/#"
qos = 2
"#
    );
    let edge = Broker::start_with_config("bridge-ws", &edge_config("info", &bridge));
    wait_connected(&edge, "edge-ws");
    let mut down = Sub::start(edge.address(), Version::V5, &["ws/down/#"]);
    down.wait("ws/down/ready", "ready");
    let mut up = Sub::start(cloud, Version::V5, &["ws/up/#"]);
    for qos in 1..=2 {
        let (topic, payload) = (format!("ws/up/{qos}"), format!("up at {qos}"));
        publish(edge.address(), Version::V5, &topic, &payload, qos, false);
        assert_eq!(up.wait(&topic, &payload), msg(&topic, qos, false, &payload));
        let (topic, payload) = (format!("ws/down/{qos}"), format!("down at {qos}"));
        publish(cloud, Version::V5, &topic, &payload, qos, false);
        assert_eq!(
            down.wait(&topic, &payload),
            msg(&topic, qos, false, &payload)
        );
    }
    let log = edge.log();
    assert_eq!(
        count_lines(
            &log,
            &["bridge connected", &format!("server=ws://{ws}/mqtt")]
        ),
        1,
        "{log}"
    );
    edge.stop();
    upstream.stop();
}
