//! A burst through a bridge: 5,000 QoS 1 messages published at once to an edge nanomq whose
//! `[[bridges]]` forward takes them to an upstream nanomq with a small Receive Maximum (8).
//! The bridge takes what is waiting in batches (upstream acknowledgements, local messages)
//! before each write; every message must still arrive upstream exactly once and in the
//! order it was published, and the edge must end with nothing left to forward.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Background, Broker, require_on_path};

/// Messages of the burst.
const MESSAGES: usize = 5_000;

/// How long the bridge may take to connect, and the burst to arrive.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long to keep listening for duplicates once the last message has arrived.
const QUIET: Duration = Duration::from_secs(2);

/// `mosquitto_sub -v` on `broker` for `filter` at QoS 1, once its SUBACK has arrived.
fn subscriber(broker: &Broker, filter: &str) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut sub = Background::spawn(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
            .arg(broker.port())
            .args(["-V", "mqttv5", "-q", "1", "-v", "-d", "-t", filter]),
    );
    sub.wait_for_line(|line| line.contains("received SUBACK"), PATIENCE);
    sub
}

/// Waits until `broker`'s log says `text`.
fn wait_for_log(broker: &Broker, text: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !broker.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no `{text}` in the log within {PATIENCE:?}:\n{}",
            broker.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_burst_through_the_bridge_arrives_once_each_and_in_order() {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let mut upstream = Broker::start("bridge_burst_upstream", "max_inflight = 8");
    let mut on_upstream = subscriber(&upstream, "burst/#");
    let mut edge = Broker::start_with_config(
        "bridge_burst_edge",
        &format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nto = \"console\"\n\n\
             [[bridges]]\nname = \"cloud\"\nservers = [\"mqtt://{}\"]\nproto_ver = 5\n\
             clientid = \"burst-edge\"\nbackoff_max = \"100ms\"\n\n\
             [[bridges.forwards]]\nlocal_topic = \"burst/#\"\nqos = 1\n",
            upstream.address()
        ),
    );
    wait_for_log(&edge, "receive_maximum=8");

    // One publisher, as fast as it goes: the bridge's local session fills up at once.
    let mut publisher = Background::spawn_with_stdin(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(edge.port())
            .args(["-V", "mqttv5", "-q", "1", "-t", "burst/x", "-l"]),
    );
    let lines: String = (0..MESSAGES).map(|i| format!("m{i}\n")).collect();
    publisher.write_stdin(&lines);
    publisher.close_stdin();
    let published = publisher.finish(PATIENCE);
    assert!(published.status.success(), "mosquitto_pub: {published:?}");

    let last = format!("burst/x m{}", MESSAGES - 1);
    on_upstream.wait_for_line(|line| line == last, PATIENCE);
    thread::sleep(QUIET);
    let received: Vec<String> = on_upstream
        .kill()
        .stdout
        .lines()
        .filter(|line| line.starts_with("burst/"))
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("burst/x m{i}")).collect();
    assert_eq!(received.len(), MESSAGES, "duplicates or losses upstream");
    assert!(received == expected, "out of order upstream");
    upstream.assert_running();
    edge.assert_running();
    assert!(
        !edge.log().contains("not forwarded") && !edge.log().contains("dropped"),
        "the edge dropped messages:\n{}",
        edge.log()
    );
}
