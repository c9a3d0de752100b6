//! End to end with the mosquitto command-line clients (Debian `mosquitto-clients`): the real
//! `nanomq` binary on an ephemeral loopback port, driven by `mosquitto_pub` and
//! `mosquitto_sub` speaking MQTT 3.1, 3.1.1 and 5.0.
//!
//! Covered: publish/subscribe at every QoS (and the downgrade to the subscription's QoS),
//! retained messages (late subscriber, replace, delete, retain flag on live delivery), a
//! persistent session that receives, in order, what was queued while it was offline (and not
//! the QoS 0 messages), the will of a client that dies, and MQTT 5 publish properties passing
//! through.
//!
//! A missing `mosquitto_pub` fails these tests (with the command that installs it): they
//! never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::process::Command;
use std::time::Duration;

use e2e::{Background, Broker, Output, require_on_path, run};

/// How long one mosquitto client may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The output format of `mosquitto_sub`: one line per message, after its debug lines.
const FORMAT: &str = "MSG|%t|%q|%r|%p";

/// `mosquitto_pub` or `mosquitto_sub` towards `broker`, speaking `version` (`mqttv31`,
/// `mqttv311`, `mqttv5`).
fn mosquitto(program: &str, broker: &Broker, version: &str) -> Command {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    require_on_path(program, "mosquitto-clients");
    let mut command = Command::new(program);
    command.args(["-h", &broker.host(), "-p", &broker.port(), "-V", version]);
    command
}

/// `mosquitto_sub` towards `broker` with its standard output line-buffered: into a pipe it
/// is block-buffered, and the test must see "received SUBACK" as soon as it is printed.
/// (`stdbuf` execs the client, so killing it kills the client.)
fn line_buffered_sub(broker: &Broker, version: &str) -> Command {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut command = Command::new("stdbuf");
    command.args(["-oL", "mosquitto_sub"]);
    command.args(["-h", &broker.host(), "-p", &broker.port(), "-V", version]);
    command
}

/// A message as `mosquitto_sub` printed it with [`FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    topic: String,
    qos: u8,
    retain: bool,
    payload: String,
}

impl Received {
    fn new(topic: &str, qos: u8, retain: bool, payload: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            qos,
            retain,
            payload: payload.to_owned(),
        }
    }
}

/// The messages in `mosquitto_sub`'s output.
fn received(stdout: &str) -> Vec<Received> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("MSG|"))
        .map(|line| {
            let fields: Vec<&str> = line.splitn(4, '|').collect();
            assert_eq!(fields.len(), 4, "unexpected output line {line:?}");
            Received {
                topic: fields[0].to_owned(),
                qos: fields[1].parse().unwrap(),
                retain: fields[2] == "1",
                payload: fields[3].to_owned(),
            }
        })
        .collect()
}

/// Starts `mosquitto_sub` with `args` (plus debug output and [`FORMAT`]) and returns once
/// the broker has acknowledged its subscriptions.
fn subscriber(broker: &Broker, version: &str, args: &[&str]) -> Background {
    let mut sub = Background::spawn(
        line_buffered_sub(broker, version)
            .args(["-d", "-F", FORMAT])
            .args(args),
    );
    sub.wait_for_line(|line| line.contains("received SUBACK"), CLIENT_TIMEOUT);
    sub
}

/// Runs `mosquitto_sub` with `args` (plus [`FORMAT`]) to its end.
fn subscribe_until_done(broker: &Broker, version: &str, args: &[&str]) -> Output {
    run(
        mosquitto("mosquitto_sub", broker, version)
            .args(["-F", FORMAT])
            .args(args),
        CLIENT_TIMEOUT,
    )
}

/// Runs `mosquitto_pub` with `args` and asserts it succeeded.
fn publish(broker: &Broker, version: &str, args: &[&str]) {
    let output = run(
        mosquitto("mosquitto_pub", broker, version).args(args),
        CLIENT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?} failed ({}): {}",
        output.status,
        output.stderr
    );
}

/// Publishes each of `payloads` as one message with `mosquitto_pub -l` (one connection).
fn publish_lines(broker: &Broker, version: &str, args: &[&str], payloads: &[String]) {
    let mut publisher = Background::spawn_with_stdin(
        mosquitto("mosquitto_pub", broker, version)
            .arg("-l")
            .args(args),
    );
    let mut text = payloads.join("\n");
    text.push('\n');
    publisher.write_stdin(&text);
    publisher.close_stdin();
    let output = publisher.finish(CLIENT_TIMEOUT);
    assert!(
        output.status.success(),
        "mosquitto_pub -l {args:?} failed ({}): {}",
        output.status,
        output.stderr
    );
}

/// Asserts that `output` is a successful `mosquitto_sub` run and returns its messages.
fn messages_of(output: &Output) -> Vec<Received> {
    assert!(
        output.status.success(),
        "mosquitto_sub failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    received(&output.stdout)
}

fn pubsub_at_every_qos(version: &str) {
    let broker = Broker::start(&format!("mosquitto-qos-{version}"), "");
    // (publish QoS, subscription QoS): delivered at the lower of the two.
    for (pub_qos, sub_qos) in [(0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)] {
        let topic = format!("mosq/{version}/qos/p{pub_qos}s{sub_qos}");
        let mut sub = subscriber(
            &broker,
            version,
            &[
                "-t",
                &topic,
                "-q",
                &sub_qos.to_string(),
                "-C",
                "3",
                "-W",
                "20",
            ],
        );
        for n in 0..3 {
            publish(
                &broker,
                version,
                &[
                    "-t",
                    &topic,
                    "-q",
                    &pub_qos.to_string(),
                    "-m",
                    &format!("m{n}"),
                ],
            );
        }
        let got = messages_of(&sub.finish(CLIENT_TIMEOUT));
        let qos = u8::min(pub_qos, sub_qos);
        let want: Vec<Received> = (0..3)
            .map(|n| Received::new(&topic, qos, false, &format!("m{n}")))
            .collect();
        assert_eq!(
            got, want,
            "{version}: published at QoS {pub_qos}, subscribed at {sub_qos}"
        );
    }
    broker.stop();
}

#[test]
fn publish_and_subscribe_at_every_qos_over_mqtt_3_1() {
    pubsub_at_every_qos("mqttv31");
}

#[test]
fn publish_and_subscribe_at_every_qos_over_mqtt_3_1_1() {
    pubsub_at_every_qos("mqttv311");
}

#[test]
fn publish_and_subscribe_at_every_qos_over_mqtt_5() {
    pubsub_at_every_qos("mqttv5");
}

fn retained_messages(version: &str) {
    let broker = Broker::start(&format!("mosquitto-retain-{version}"), "");
    let topic = format!("mosq/{version}/retained/state");
    let filter = format!("mosq/{version}/retained/+");
    let late = |want: &str| {
        let got = messages_of(&subscribe_until_done(
            &broker,
            version,
            &["-t", &filter, "-q", "1", "-C", "1", "-W", "20"],
        ));
        assert_eq!(got, [Received::new(&topic, 1, true, want)], "{version}");
    };

    publish(
        &broker,
        version,
        &["-t", &topic, "-q", "1", "-r", "-m", "first"],
    );
    late("first");

    // A live subscriber gets a retained publish with the retain flag clear (MQTT 3.3.1.3;
    // MQTT 5 without Retain As Published).
    let mut live = subscriber(
        &broker,
        version,
        &["-t", &filter, "-q", "1", "-C", "2", "-W", "20"],
    );
    publish(
        &broker,
        version,
        &["-t", &topic, "-q", "1", "-r", "-m", "second"],
    );
    assert_eq!(
        messages_of(&live.finish(CLIENT_TIMEOUT)),
        [
            Received::new(&topic, 1, true, "first"),
            Received::new(&topic, 1, false, "second"),
        ],
        "{version}: the retained message on subscribing, then the live one"
    );
    late("second");

    // An empty retained message deletes it: a late subscriber gets nothing (and times out).
    publish(&broker, version, &["-t", &topic, "-q", "1", "-r", "-n"]);
    let output = subscribe_until_done(&broker, version, &["-t", &filter, "-C", "1", "-W", "2"]);
    assert_eq!(
        received(&output.stdout),
        [],
        "{version}: a deleted retained message was delivered"
    );
    assert_eq!(
        output.status.code(),
        Some(27),
        "{version}: mosquitto_sub should have timed out: {}",
        output.stderr
    );
    broker.stop();
}

#[test]
fn a_retained_message_reaches_late_subscribers_over_mqtt_3_1_1() {
    retained_messages("mqttv311");
}

#[test]
fn a_retained_message_reaches_late_subscribers_over_mqtt_5() {
    retained_messages("mqttv5");
}

fn offline_queue(version: &str) {
    let broker = Broker::start(
        &format!("mosquitto-offline-{version}"),
        "max_mqueue_len = 2000",
    );
    let id = format!("mosq-offline-{version}");
    let filter = format!("mosq/{version}/offline/#");
    let session = ["-c", "-i", &id, "-x", "3600", "-q", "2", "-t", &filter];
    // `-x` (session expiry) is MQTT 5 only; 3.1.1 sessions are kept by the broker's default.
    let session: Vec<&str> = if version == "mqttv5" {
        session.to_vec()
    } else {
        session
            .iter()
            .copied()
            .filter(|a| !["-x", "3600"].contains(a))
            .collect()
    };

    // Create the session (subscribe, then exit at once).
    let output = run(
        mosquitto("mosquitto_sub", &broker, version)
            .args(&session)
            .arg("-E"),
        CLIENT_TIMEOUT,
    );
    assert!(output.status.success(), "{version}: {}", output.stderr);

    // While it is away: QoS 1 and QoS 2 messages (queued), QoS 0 ones (not queued, the
    // broker's default), then an end marker.
    let q1 = format!("mosq/{version}/offline/q1");
    let q2 = format!("mosq/{version}/offline/q2");
    let q0 = format!("mosq/{version}/offline/q0");
    let payloads =
        |prefix: &str| -> Vec<String> { (0..25).map(|n| format!("{prefix}-{n:02}")).collect() };
    publish_lines(&broker, version, &["-t", &q1, "-q", "1"], &payloads("one"));
    publish_lines(&broker, version, &["-t", &q2, "-q", "2"], &payloads("two"));
    publish_lines(&broker, version, &["-t", &q0, "-q", "0"], &payloads("zero"));
    publish(&broker, version, &["-t", &q1, "-q", "1", "-m", "end"]);

    // Back: everything queued, nothing twice, no QoS 0, each topic in order (MQTT orders
    // messages per topic: libmosquitto hands a QoS 2 message over only at PUBREL, so a QoS 1
    // message sent after it may be printed before it).
    let got = messages_of(&subscribe_until_done(
        &broker,
        version,
        &[&session[..], &["-C", "51", "-W", "20"]].concat(),
    ));
    let on = |topic: &str| -> Vec<Received> {
        got.iter().filter(|m| m.topic == topic).cloned().collect()
    };
    let mut want_q1: Vec<Received> = payloads("one")
        .iter()
        .map(|p| Received::new(&q1, 1, false, p))
        .collect();
    want_q1.push(Received::new(&q1, 1, false, "end"));
    let want_q2: Vec<Received> = payloads("two")
        .iter()
        .map(|p| Received::new(&q2, 2, false, p))
        .collect();
    assert_eq!(
        on(&q1),
        want_q1,
        "{version}: the QoS 1 messages queued while offline"
    );
    assert_eq!(
        on(&q2),
        want_q2,
        "{version}: the QoS 2 messages queued while offline"
    );
    assert_eq!(
        on(&q0),
        [],
        "{version}: QoS 0 messages were queued for an offline client"
    );
    assert_eq!(got.len(), 51, "{version}: {got:?}");
    broker.stop();
}

#[test]
fn a_persistent_session_gets_what_was_queued_while_offline_over_mqtt_3_1_1() {
    offline_queue("mqttv311");
}

#[test]
fn a_persistent_session_gets_what_was_queued_while_offline_over_mqtt_5() {
    offline_queue("mqttv5");
}

fn will_of_a_killed_client(version: &str) {
    let broker = Broker::start(&format!("mosquitto-will-{version}"), "");
    let will_topic = format!("mosq/{version}/will/gone");
    let mut watcher = subscriber(
        &broker,
        version,
        &["-t", &will_topic, "-q", "1", "-C", "1", "-W", "20"],
    );

    // A client with a will, killed (SIGKILL): the socket closes with no DISCONNECT.
    let mut doomed = subscriber(
        &broker,
        version,
        &[
            "-t",
            "mosq/nothing",
            "--will-topic",
            &will_topic,
            "--will-payload",
            "it died",
            "--will-qos",
            "1",
        ],
    );
    doomed.kill();
    assert_eq!(
        messages_of(&watcher.finish(CLIENT_TIMEOUT)),
        [Received::new(&will_topic, 1, false, "it died")],
        "{version}: the will of a client that died"
    );

    // A client that disconnects normally leaves no will.
    let mut watcher = subscriber(&broker, version, &["-t", &will_topic, "-C", "1", "-W", "2"]);
    let output = subscribe_until_done(
        &broker,
        version,
        &[
            "-t",
            "mosq/nothing",
            "-E",
            "--will-topic",
            &will_topic,
            "--will-payload",
            "should not be sent",
        ],
    );
    assert!(output.status.success(), "{}", output.stderr);
    let output = watcher.finish(CLIENT_TIMEOUT);
    assert_eq!(
        received(&output.stdout),
        [],
        "{version}: will sent after a normal DISCONNECT"
    );
    broker.stop();
}

#[test]
fn a_killed_client_leaves_its_will_over_mqtt_3_1_1() {
    will_of_a_killed_client("mqttv311");
}

#[test]
fn a_killed_client_leaves_its_will_over_mqtt_5() {
    will_of_a_killed_client("mqttv5");
}

#[test]
fn mqtt_5_publish_properties_pass_through() {
    let broker = Broker::start("mosquitto-properties", "");
    let topic = "mosq/v5/properties";
    let mut sub = Background::spawn(line_buffered_sub(&broker, "mqttv5").args([
        "-d",
        "-t",
        topic,
        "-q",
        "1",
        "-C",
        "1",
        "-W",
        "20",
        "-F",
        "PROPS|%C|%R|%D|%F|%E|%P|%p",
    ]));
    sub.wait_for_line(|line| line.contains("received SUBACK"), CLIENT_TIMEOUT);
    publish(
        &broker,
        "mqttv5",
        &[
            "-t",
            topic,
            "-q",
            "1",
            "-m",
            "{\"on\":true}",
            "-D",
            "PUBLISH",
            "content-type",
            "application/json",
            "-D",
            "PUBLISH",
            "response-topic",
            "mosq/v5/reply",
            "-D",
            "PUBLISH",
            "correlation-data",
            "req-42",
            "-D",
            "PUBLISH",
            "payload-format-indicator",
            "1",
            "-D",
            "PUBLISH",
            "message-expiry-interval",
            "3600",
            "-D",
            "PUBLISH",
            "user-property",
            "colour",
            "blue",
            "-D",
            "PUBLISH",
            "user-property",
            "size",
            "9",
        ],
    );
    let output = sub.finish(CLIENT_TIMEOUT);
    assert!(output.status.success(), "{}", output.stderr);
    let line = output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("PROPS|"))
        .unwrap_or_else(|| panic!("no message received:\n{}", output.stdout));
    let fields: Vec<&str> = line.splitn(7, '|').collect();
    assert_eq!(fields.len(), 7, "{line:?}");
    assert_eq!(fields[0], "application/json", "content type");
    assert_eq!(fields[1], "mosq/v5/reply", "response topic");
    assert_eq!(fields[2], "req-42", "correlation data");
    assert_eq!(fields[3], "1", "payload format indicator");
    // The remaining lifetime: at most what was sent, and not much less.
    let expiry: u32 = fields[4]
        .parse()
        .unwrap_or_else(|_| panic!("message expiry {:?}", fields[4]));
    assert!(
        (3590..=3600).contains(&expiry),
        "message expiry interval {expiry}"
    );
    assert!(
        fields[5].contains("colour:blue") && fields[5].contains("size:9"),
        "user properties: {:?}",
        fields[5]
    );
    assert!(
        fields[5].find("colour:blue") < fields[5].find("size:9"),
        "user properties out of order: {:?}",
        fields[5]
    );
    assert_eq!(fields[6], "{\"on\":true}", "payload");
    broker.stop();
}
