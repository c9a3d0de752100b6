//! Dormant connections end to end: the real `nanomq` binary, Python paho-mqtt clients (MQTT
//! 3.1.1 and 5) that go quiet until the broker counts them dormant
//! (`nanomq_connections_dormant` in its Prometheus scrape), then wake them every way one can
//! wake (tests/python/dormant.py): a delivery, a burst of 200 (in order, none lost), a
//! PINGREQ, the keep-alive deadline, the socket closing (the will published), a takeover.
//! And a broker stopped with dormant connections tells each (MQTT 5: Server shutting down)
//! and exits within its grace period.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use e2e::{Broker, python, python_script, require_on_path, run};
use mqtt_codec::{ClientId, Connect, Decoder, Packet, ProtocolVersion, ReasonCode};
use serde_json::Value;

const USER: &str = "admin";
const PASSWORD: &str = "dormant-secret";

/// nanomq with the admin API (for the scrape), and the API's address.
fn start(name: &str) -> (Broker, SocketAddr) {
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[http_server]\nenabled = true\n\
         bind = \"127.0.0.1:0\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
         [log]\nlevel = \"info\"\nto = \"console\"\n"
    );
    let broker = Broker::start_with_config(name, &config);
    let api = broker.logged_address("admin API listening on http://");
    (broker, api)
}

fn run_script(broker: &Broker, api: SocketAddr, protocol: &str) -> Value {
    let output = run(
        Command::new(python())
            .arg(python_script("dormant.py"))
            .args([broker.host(), broker.port()])
            .args(["--protocol", protocol])
            .args(["--api", &format!("http://{api}")])
            .args(["--user", USER, "--password", PASSWORD]),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "dormant.py --protocol {protocol} failed ({}):\nstdout:\n{}\nstderr:\n{}\nbroker log:\n{}",
        output.status,
        output.stdout,
        output.stderr,
        broker.log()
    );
    let last = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{}", output.stdout))
}

fn number(summary: &Value, key: &str) -> f64 {
    summary[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {summary}"))
}

fn payloads(summary: &Value, key: &str) -> Vec<String> {
    summary[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list in {summary}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn dormant_clients_wake_every_way(protocol: &str) {
    let (broker, api) = start(&format!("dormant_wake_{protocol}"));
    let summary = run_script(&broker, api, protocol);
    println!("{summary}");
    for key in ["dormant_at_start", "dormant_after_first", "dormant_at_end"] {
        assert!(number(&summary, key) >= 2.0, "{key}: {summary}");
    }
    assert!(number(&summary, "dormant_before_ping") >= 3.0, "{summary}");
    assert!(
        number(&summary, "dormant_before_keepalive") >= 3.0,
        "{summary}"
    );
    assert_eq!(payloads(&summary, "first"), ["wake-1"]);
    // A woken connection takes a spawn and a registration more than an awake one: far
    // under a second, even on a loaded machine.
    assert!(number(&summary, "first_delivery_s") < 5.0, "{summary}");
    let burst: Vec<String> = (0..200).map(|i| format!("burst-{i}")).collect();
    assert_eq!(payloads(&summary, "burst"), burst);
    // PINGRESP.
    assert_eq!(summary["ping"], serde_json::json!([0xd0]), "{summary}");
    // Keep alive 1 s: closed after 1.5 s of silence (its deadline), not before, not much later.
    let closed = number(&summary, "keepalive_closed_s");
    assert!(
        (1.4..5.0).contains(&closed),
        "closed after {closed} s: {summary}"
    );
    if protocol == "5" {
        // DISCONNECT with Keep Alive timeout, then the end of the stream.
        assert_eq!(
            summary["keepalive_disconnect"],
            serde_json::json!([0xe0, "8d"]),
            "{summary}"
        );
        assert_eq!(summary["keepalive_eof"], true, "{summary}");
        assert_eq!(
            summary["takeover_disconnect"],
            serde_json::json!([0xe0, "8e"]),
            "{summary}"
        );
    } else {
        assert_eq!(summary["keepalive_disconnect"], Value::Null, "{summary}");
        assert_eq!(summary["takeover_disconnect"], Value::Null, "{summary}");
    }
    assert_eq!(summary["takeover_eof"], true, "{summary}");
    assert_eq!(payloads(&summary, "will"), ["gone"]);
    broker.stop();
}

#[test]
fn dormant_mqtt5_clients_wake_every_way() {
    dormant_clients_wake_every_way("5");
}

#[test]
fn dormant_mqtt311_clients_wake_every_way() {
    dormant_clients_wake_every_way("311");
}

/// The broker's count of dormant connections, scraped with curl.
fn dormant_now(api: SocketAddr) -> u64 {
    require_on_path("curl", "curl");
    let out = run(
        Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "10",
                "-u",
                &format!("{USER}:{PASSWORD}"),
            ])
            .arg(format!("http://{api}/api/v4/prometheus")),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "curl failed: {out:?}");
    out.stdout
        .lines()
        .find_map(|line| line.strip_prefix("nanomq_connections_dormant "))
        .unwrap_or_else(|| panic!("no nanomq_connections_dormant in:\n{}", out.stdout))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_broker_stopping_tells_its_dormant_clients() {
    let (broker, api) = start("dormant_shutdown");
    let mut clients: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut stream = TcpStream::connect(broker.address()).unwrap();
            let mut connect = Connect::new(
                ProtocolVersion::V5,
                ClientId::new(format!("dormant-{i}")).unwrap(),
            );
            connect.keep_alive = 600;
            let mut out = BytesMut::new();
            Packet::Connect(Box::new(connect))
                .encode(ProtocolVersion::V5, &mut out)
                .unwrap();
            stream.write_all(&out).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            assert!(matches!(read_packet(&mut stream), Some(Packet::ConnAck(_))));
            stream
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dormant_now(api) < 20 {
        assert!(Instant::now() < deadline, "not all 20 went dormant");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopping = Instant::now();
    broker.stop();
    let took = stopping.elapsed();
    for stream in &mut clients {
        match read_packet(stream) {
            Some(Packet::Disconnect(disconnect)) => {
                assert_eq!(disconnect.reason_code, ReasonCode::ServerShuttingDown);
            }
            other => panic!("expected DISCONNECT, got {other:?}"),
        }
    }
    // Told at once, not after the five-second grace period the broker gives stragglers.
    assert!(took < Duration::from_secs(4), "stopping took {took:?}");
}

/// The next packet on `stream` (MQTT 5), or `None` at its end.
fn read_packet(stream: &mut TcpStream) -> Option<Packet> {
    let mut decoder = Decoder::with_version(ProtocolVersion::V5);
    let mut buf = BytesMut::new();
    loop {
        if let Some(packet) = decoder.decode(&mut buf).unwrap() {
            return Some(packet);
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
