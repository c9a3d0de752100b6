//! A real Mosquitto broker (Debian `mosquitto`) bridged to ours, both directions on one topic,
//! as edge installations run it: Mosquitto's bridge connects with `try_private` (protocol
//! level 0x84, asking for no local and retain as published) and `notifications` (its state on
//! `$SYS/broker/connection/<client id>/state`, retained, and the same topic as its will).
//!
//! Before the bridge bit was understood, the 0x84 CONNECT was refused, the bridge retried
//! without it, and every message it forwarded came back to it: each message arrived twice on
//! the Mosquitto side. Here each message must arrive exactly once on each side.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Background, Broker, require_on_path, run, scratch_dir};

/// How long a client or the bridge may take for one step.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long to keep listening for duplicates once every message has arrived.
const QUIET: Duration = Duration::from_secs(3);

/// The client identifier Mosquitto's bridge uses on our broker.
const BRIDGE_ID: &str = "mosquitto-edge";

/// Mosquitto on a free loopback port, bridged to `nanomq` on `loop/#` both ways at QoS 1.
fn start_bridged_mosquitto(nanomq: &Broker) -> (Background, SocketAddr) {
    require_on_path("mosquitto", "mosquitto");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = scratch_dir("bridge_mosquitto").join("mosquitto.conf");
    fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
             connection nanomq\naddress {nanomq}\nremote_clientid {BRIDGE_ID}\n\
             topic loop/# both 1\nbridge_protocol_version mqttv311\ntry_private true\n\
             notifications true\ncleansession true\nrestart_timeout 1\n",
            nanomq = nanomq.address()
        ),
    )
    .unwrap();
    let mosquitto = Background::spawn(Command::new("mosquitto").arg("-c").arg(&conf));
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (mosquitto, address)
}

/// `mosquitto_sub -v` on `address` for `filter` at QoS 1, once its SUBACK has arrived.
fn subscriber(address: SocketAddr, filter: &str) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut sub = Background::spawn(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
            .arg(address.port().to_string())
            .args(["-V", "mqttv311", "-q", "1", "-v", "-d", "-t", filter]),
    );
    sub.wait_for_line(|line| line.contains("received SUBACK"), PATIENCE);
    sub
}

fn publish(address: SocketAddr, topic: &str, message: &str) {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let output = run(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(address.port().to_string())
            .args(["-V", "mqttv311", "-q", "1", "-t", topic, "-m", message]),
        PATIENCE,
    );
    assert!(output.status.success(), "mosquitto_pub failed: {output:?}");
}

/// The messages `sub` printed (`-v`: "topic payload"), without its debug lines; stops it.
fn messages(mut sub: Background) -> Vec<String> {
    sub.kill()
        .stdout
        .lines()
        .filter(|line| line.starts_with("loop/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_mosquitto_bridge_both_ways_on_one_topic_delivers_each_message_once_on_each_side() {
    let nanomq = Broker::start("bridge_mosquitto", "");
    let (mut mosquitto, mosquitto_address) = start_bridged_mosquitto(&nanomq);

    // The bridge is up once its notification (a $SYS topic only that bridge may publish)
    // reaches our side.
    let state = format!("$SYS/broker/connection/{BRIDGE_ID}/state");
    let mut notified = subscriber(nanomq.address(), &state);
    notified.wait_for_line(|line| line.starts_with(&format!("{state} 1")), PATIENCE);

    let mut on_nanomq = subscriber(nanomq.address(), "loop/#");
    let mut on_mosquitto = subscriber(mosquitto_address, "loop/#");

    // Edge to us: once it is here, the bridge's own subscription (sent before it) is too.
    publish(mosquitto_address, "loop/edge", "from-mosquitto");
    on_nanomq.wait_for_line(|line| line == "loop/edge from-mosquitto", PATIENCE);
    on_mosquitto.wait_for_line(|line| line == "loop/edge from-mosquitto", PATIENCE);
    // Us to the edge.
    publish(nanomq.address(), "loop/cloud", "from-nanomq");
    on_mosquitto.wait_for_line(|line| line == "loop/cloud from-nanomq", PATIENCE);
    on_nanomq.wait_for_line(|line| line == "loop/cloud from-nanomq", PATIENCE);

    std::thread::sleep(QUIET);
    let expected = ["loop/edge from-mosquitto", "loop/cloud from-nanomq"];
    assert_eq!(
        messages(on_mosquitto),
        expected,
        "on the Mosquitto side; mosquitto's log:\n{}",
        mosquitto.kill().stderr
    );
    assert_eq!(messages(on_nanomq), expected, "on our side");
    assert!(
        !nanomq.log().contains("protocol"),
        "our broker logged a protocol problem:\n{}",
        nanomq.log()
    );
}
