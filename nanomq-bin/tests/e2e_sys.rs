//! End to end: the `$SYS` topics as `mosquitto_sub` sees them. The real `nanomq` binary with
//! `[sys] interval = "1s"` publishes Mosquitto's `$SYS/broker/...` statistics (retained,
//! with values that follow what clients do), a subscriber that comes late gets them at once,
//! `interval = "0s"` publishes none, and NanoMQ's client events announce each connection and
//! disconnection on `$SYS/brokers/connected` and `$SYS/brokers/disconnected`.
//!
//! A missing `mosquitto_sub` fails these tests (with the command that installs it): they
//! never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{Background, Broker, require_on_path, run};
use serde_json::Value;

/// How long one mosquitto client may run, or a line may take to come.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// `mosquitto_sub`'s output format: one line per message (after its debug lines).
const FORMAT: &str = "MSG|%r|%t|%p";

/// The topics Mosquitto publishes that nanomq publishes too, with a check of each value.
const STATISTICS: &[&str] = &[
    "$SYS/broker/version",
    "$SYS/broker/uptime",
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/total",
    "$SYS/broker/clients/disconnected",
    "$SYS/broker/clients/maximum",
    "$SYS/broker/clients/expired",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/publish/messages/received",
    "$SYS/broker/publish/messages/sent",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/shared_subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/load/messages/received/1min",
    "$SYS/broker/load/messages/received/5min",
    "$SYS/broker/load/messages/received/15min",
    "$SYS/broker/load/messages/sent/1min",
    "$SYS/broker/load/messages/sent/5min",
    "$SYS/broker/load/messages/sent/15min",
    "$SYS/broker/load/publish/received/1min",
    "$SYS/broker/load/publish/sent/1min",
    "$SYS/broker/load/publish/dropped/1min",
    "$SYS/broker/load/bytes/received/1min",
    "$SYS/broker/load/bytes/received/15min",
    "$SYS/broker/load/bytes/sent/5min",
    "$SYS/broker/load/connections/1min",
    "$SYS/broker/load/sockets/1min",
];

/// A broker with a TCP listener on a free loopback port and `sys` as its `[sys]` table.
fn broker(name: &str, sys: &str) -> Broker {
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[sys]\n{sys}\n\n\
         [log]\nlevel = \"info\"\nto = \"console\"\n"
    );
    Broker::start_with_config(name, &config)
}

/// `mosquitto_pub` or `mosquitto_sub` towards `broker`.
fn mosquitto(program: &str, broker: &Broker) -> Command {
    require_on_path(program, "mosquitto-clients");
    let mut command = Command::new(program);
    command.args(["-h", &broker.host(), "-p", &broker.port()]);
    command
}

/// `mosquitto_sub -d -F FORMAT` on `filter` with `args`, line-buffered (into a pipe it is
/// block-buffered), returned once the broker acknowledged the subscription.
fn subscriber(broker: &Broker, filter: &str, args: &[&str]) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut sub = Background::spawn(
        Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                &broker.host(),
                "-p",
                &broker.port(),
            ])
            .args(["-d", "-F", FORMAT, "-t", filter])
            .args(args),
    );
    sub.wait_for_line(|line| line.contains("received SUBACK"), CLIENT_TIMEOUT);
    sub
}

/// A message as `mosquitto_sub` printed it.
#[derive(Debug, Clone)]
struct Received {
    retained: bool,
    topic: String,
    payload: String,
}

fn parse(line: &str) -> Option<Received> {
    let rest = line.strip_prefix("MSG|")?;
    let mut fields = rest.splitn(3, '|');
    Some(Received {
        retained: fields.next()? == "1",
        topic: fields.next()?.to_owned(),
        payload: fields.next()?.to_owned(),
    })
}

/// Reads messages from `sub` into `values` (the latest by topic) until `done` says they
/// are enough.
fn read_until(
    sub: &mut Background,
    values: &mut BTreeMap<String, Received>,
    done: impl Fn(&BTreeMap<String, Received>) -> bool,
) {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while !done(values) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "gave up waiting; got {values:#?}");
        let line = sub.wait_for_line(|line| line.starts_with("MSG|"), left);
        let message = parse(&line).unwrap();
        values.insert(message.topic.clone(), message);
    }
}

fn number(values: &BTreeMap<String, Received>, topic: &str) -> f64 {
    let payload = &values[topic].payload;
    payload
        .parse()
        .unwrap_or_else(|e| panic!("{topic}: {payload:?} is not a number: {e}"))
}

#[test]
fn the_sys_statistics_are_published_with_values_that_follow_the_clients() {
    let broker = broker("sys-statistics", "interval = \"1s\"");
    let mut sub = subscriber(&broker, "$SYS/#", &["-V", "mqttv311"]);
    let mut values = BTreeMap::new();
    // Every topic, and (from the first update after it connected) the subscriber itself
    // among the clients and its subscription among the subscriptions.
    read_until(&mut sub, &mut values, |v| {
        STATISTICS.iter().all(|t| v.contains_key(*t))
            && number(v, "$SYS/broker/clients/connected") >= 1.0
            && number(v, "$SYS/broker/subscriptions/count") >= 1.0
    });
    let version = &values["$SYS/broker/version"].payload;
    assert_eq!(
        version,
        concat!("nanomq version ", env!("CARGO_PKG_VERSION"))
    );
    let uptime = &values["$SYS/broker/uptime"].payload;
    let seconds: u64 = uptime.strip_suffix(" seconds").unwrap().parse().unwrap();
    assert!(seconds < 60, "{uptime}");
    assert_eq!(number(&values, "$SYS/broker/clients/connected"), 1.0);
    assert_eq!(number(&values, "$SYS/broker/subscriptions/count"), 1.0);
    assert!(number(&values, "$SYS/broker/clients/maximum") >= 1.0);
    assert_eq!(
        number(&values, "$SYS/broker/clients/total"),
        number(&values, "$SYS/broker/clients/connected")
            + number(&values, "$SYS/broker/clients/disconnected")
    );
    assert!(
        number(&values, "$SYS/broker/messages/received") >= 2.0,
        "CONNECT and SUBSCRIBE"
    );
    assert!(number(&values, "$SYS/broker/bytes/received") > 0.0);
    for topic in STATISTICS.iter().filter(|t| t.contains("/load/")) {
        let payload = &values[*topic].payload;
        let (_, decimals) = payload
            .split_once('.')
            .unwrap_or_else(|| panic!("{topic}: {payload}"));
        assert_eq!(decimals.len(), 2, "{topic}: {payload} is not %.2f");
    }
    let received_before = number(&values, "$SYS/broker/messages/received");

    // A publisher: its CONNECT, PUBLISH and DISCONNECT are counted, and its message.
    let output = run(
        mosquitto("mosquitto_pub", &broker).args(["-t", "sensors/1", "-m", "21.5", "-r"]),
        CLIENT_TIMEOUT,
    );
    assert!(output.status.success(), "{}", output.stderr);
    // The $SYS topics are retained messages too (as Mosquitto's count them): one more.
    let retained = |v: &BTreeMap<String, Received>| {
        let statistics = v.keys().filter(|t| t.starts_with("$SYS/broker/")).count();
        number(v, "$SYS/broker/retained messages/count") == statistics as f64 + 1.0
    };
    read_until(&mut sub, &mut values, |v| {
        number(v, "$SYS/broker/publish/messages/received") >= 1.0
            && number(v, "$SYS/broker/messages/received") >= received_before + 3.0
            && retained(v)
    });
    // The broker's own messages are not counted as received: the publisher's alone.
    assert_eq!(
        number(&values, "$SYS/broker/publish/messages/received"),
        1.0
    );
    // The retained message had no subscriber: not a drop (it is kept).
    assert_eq!(number(&values, "$SYS/broker/publish/messages/dropped"), 0.0);
    // The load moves with the packets: received at a rate above 0 per minute.
    read_until(&mut sub, &mut values, |v| {
        number(v, "$SYS/broker/load/messages/received/1min") > 0.0
    });
    broker.stop();
}

#[test]
fn a_late_subscriber_gets_the_retained_statistics_at_once() {
    // Published once at start, then not for a minute: what a late subscriber gets is the
    // retained copy.
    let broker = broker("sys-retained", "interval = \"60s\"");
    let started = Instant::now();
    // Wait for the first publication: a first subscriber sees the uptime.
    let mut first = subscriber(&broker, "$SYS/broker/uptime", &[]);
    let uptime = first.wait_for_line(|line| line.starts_with("MSG|"), CLIENT_TIMEOUT);
    let uptime = parse(&uptime).unwrap().payload;
    drop(first);
    let mut late = subscriber(&broker, "$SYS/broker/#", &[]);
    let mut values = BTreeMap::new();
    read_until(&mut late, &mut values, |v| {
        STATISTICS.iter().all(|t| v.contains_key(*t))
    });
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "they came with the subscription, not a minute later"
    );
    for (topic, message) in &values {
        assert!(message.retained, "{topic} was not retained");
    }
    // The copy of the first update: no other has been published since.
    assert_eq!(values["$SYS/broker/uptime"].payload, uptime);
    broker.stop();
}

#[test]
fn interval_0s_publishes_no_statistics_and_client_events_false_no_events() {
    let broker = broker("sys-off", "interval = \"0s\"\nclient_events = false");
    let mut sub = subscriber(&broker, "$SYS/#", &["-W", "3"]);
    let output = run(
        mosquitto("mosquitto_pub", &broker).args(["-t", "t", "-m", "x", "-q", "1"]),
        CLIENT_TIMEOUT,
    );
    assert!(output.status.success(), "{}", output.stderr);
    // -W 3: the subscriber gives up after three seconds without a message.
    let output = sub.finish(CLIENT_TIMEOUT);
    assert!(
        !output.stdout.lines().any(|line| line.starts_with("MSG|")),
        "something was published under $SYS:\n{}",
        output.stdout
    );
    broker.stop();
}

fn now_millis() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// Waits for the next event on `topic` about `client_id`; its JSON payload.
fn event(sub: &mut Background, topic: &str, client_id: &str) -> Value {
    loop {
        let line = sub.wait_for_line(|line| line.starts_with("MSG|"), CLIENT_TIMEOUT);
        let message = parse(&line).unwrap();
        assert!(!message.retained, "events are not retained: {line}");
        let payload: Value = serde_json::from_str(&message.payload)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if message.topic == topic && payload["client_id"] == client_id {
            return payload;
        }
    }
}

#[test]
fn client_events_announce_each_connection_and_disconnection() {
    // Events are on by default; the statistics are off here, to see events alone.
    let broker = broker("sys-events", "interval = \"0s\"");
    let mut sub = subscriber(&broker, "$SYS/brokers/+", &[]);

    let before = now_millis();
    let output = run(
        mosquitto("mosquitto_pub", &broker).args([
            "-V", "mqttv311", "-i", "probe", "-u", "alice", "-k", "30", "-t", "t", "-m", "x",
        ]),
        CLIENT_TIMEOUT,
    );
    assert!(output.status.success(), "{}", output.stderr);
    let connected = event(&mut sub, "$SYS/brokers/connected", "probe");
    assert_eq!(connected["username"], "alice");
    assert_eq!(connected["proto_name"], "MQTT");
    assert_eq!(connected["proto_ver"], 4);
    assert_eq!(connected["keepalive"], 30);
    assert_eq!(connected["return_code"], "0");
    assert_eq!(connected["clean_start"], 1);
    assert_eq!(connected["IPv4"], "127.0.0.1");
    let ts = connected["ts"].as_f64().unwrap();
    assert!(
        ts >= before - 1000.0 && ts <= now_millis() + 1000.0,
        "ts {ts}"
    );
    let disconnected = event(&mut sub, "$SYS/brokers/disconnected", "probe");
    assert_eq!(disconnected["reason_code"], "0", "a DISCONNECT: normal");
    assert_eq!(disconnected["username"], "alice");

    // A client that dies without DISCONNECT (MQTT 5, no user name).
    let mut doomed = Background::spawn(
        mosquitto("mosquitto_sub", &broker)
            .args(["-V", "mqttv5", "-i", "doomed", "-t", "x", "-c", "-x", "60"]),
    );
    let connected = event(&mut sub, "$SYS/brokers/connected", "doomed");
    assert_eq!(connected["proto_ver"], 5);
    assert_eq!(connected["clean_start"], 0);
    assert_eq!(connected["username"], Value::Null);
    doomed.kill();
    let disconnected = event(&mut sub, "$SYS/brokers/disconnected", "doomed");
    assert_eq!(disconnected["reason_code"], "80", "lost without DISCONNECT");
    broker.stop();
}
