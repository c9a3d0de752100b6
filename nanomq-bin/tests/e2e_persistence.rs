//! Durable sessions against the real `nanomq` binary with `[persistence] enabled = true`:
//!
//! - a graceful restart (SIGTERM, start again on the same database) keeps persistent
//!   sessions, their subscriptions, queued messages (mosquitto_sub / mosquitto_pub, MQTT 5
//!   and 3.1.1), in-flight messages with their packet identifiers, and retained messages;
//! - SIGKILL at five random points while a publisher streams QoS 1 messages to an offline
//!   persistent subscriber (`sync = "always"`): after the restart the subscriber gets every
//!   message whose PUBACK the publisher had received, in order, none twice;
//! - churn: sessions that expire leave the database, and its size stops growing.
//!
//! Sessions keep only [`QUEUE_IN_MEMORY`] queued messages in memory, so the queues above
//! drain mostly from the database.
//!
//! The publisher, the in-flight check and the churn use a small client built on mqtt-codec
//! (they need exact control of acknowledgements); the queued-message checks use mosquitto.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use e2e::{Broker, require_on_path, run, scratch_dir};
use mqtt_codec::{
    Ack, ClientId, Connect, Decoder, Disconnect, Packet, PacketId, ProtocolVersion, Publish,
    PublishQoS, QoS, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
    TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// How many of a session's queued messages the broker keeps in memory in these tests: far
/// fewer than they queue, so that most are read back from the database as queues drain,
/// after a restart as after a kill.
const QUEUE_IN_MEMORY: usize = 64;

/// A broker configuration with persistence on, on `db`.
fn config(db: &Path, sync: &str, mqtt: &str) -> String {
    format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[mqtt]\n{mqtt}\n\n\
         [persistence]\nenabled = true\npath = \"{}\"\nsync = \"{sync}\"\n\
         queue_in_memory = {QUEUE_IN_MEMORY}\n\n\
         [log]\nlevel = \"info\"\nto = \"console\"\n",
        db.display()
    )
}

/// A minimal MQTT client over TCP, for exact control of acknowledgements.
struct Raw {
    stream: TcpStream,
    version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

impl Raw {
    /// Connects with `id`; Clean Start 0 and the given session expiry when `expiry` is set.
    /// Returns the client and Session Present.
    async fn connect(address: SocketAddr, id: &str, expiry: Option<u32>) -> (Self, bool) {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut raw = Self {
            stream,
            version: V5,
            decoder: Decoder::with_version(V5),
            buf: BytesMut::new(),
        };
        let mut connect = Connect::new(V5, ClientId::new(id).unwrap());
        connect.keep_alive = 0;
        if let Some(expiry) = expiry {
            connect.clean_start = false;
            connect.properties.session_expiry_interval = Some(expiry);
        }
        raw.send(Packet::Connect(Box::new(connect))).await;
        match raw.recv(Duration::from_secs(10)).await {
            Some(Packet::ConnAck(ack)) => {
                assert!(!ack.reason_code.is_error(), "{ack:?}");
                (raw, ack.session_present)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.encode(self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet within `wait`; `None` on timeout or when the connection closes.
    async fn recv(&mut self, wait: Duration) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(packet);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                options: SubscriptionOptions::new(qos),
            }],
            properties: SubscribeProperties::default(),
        }))
        .await;
        match self.recv(Duration::from_secs(10)).await {
            Some(Packet::SubAck(ack)) => assert!(!ack.reason_codes[0].is_error()),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], qos: PublishQoS) {
        let mut p = Publish::new(
            TopicName::new(topic).unwrap(),
            Bytes::copy_from_slice(payload),
        );
        p.qos = qos;
        self.send(Packet::Publish(p)).await;
    }

    async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::default())).await;
        while self.recv(Duration::from_secs(5)).await.is_some() {}
    }
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// Runs mosquitto_pub with `lines` on standard input, one message per line (`-l`).
fn mosquitto_pub_lines(broker: &Broker, args: &[&str], lines: &[String]) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", &broker.host(), "-p", &broker.port()])
        .args(args)
        .arg("-l")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "mosquitto_pub failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs mosquitto_sub with `args` against `broker`; its standard output, line by line.
fn mosquitto_sub(broker: &Broker, args: &[&str]) -> Vec<String> {
    let output = run(
        Command::new("mosquitto_sub")
            .args(["-h", &broker.host(), "-p", &broker.port()])
            .args(args),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "mosquitto_sub {args:?} failed ({}): {}\nbroker log:\n{}",
        output.status,
        output.stderr,
        broker.log()
    );
    output.stdout.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_sessions_queued_and_in_flight_messages_and_retained_ones() {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let dir = scratch_dir("persistence-restart");
    let db = dir.join("store").join("nanomq.db");
    let conf = config(&db, "always", "");
    let broker = Broker::start_with_config("persistence-restart", &conf);

    // Offline persistent subscribers, MQTT 5 and 3.1.1 (clean session 0).
    mosquitto_sub(
        &broker,
        &[
            "-V", "5", "-c", "-i", "sub-v5", "-x", "3600", "-q", "1", "-t", "q/#", "-E",
        ],
    );
    mosquitto_sub(
        &broker,
        &[
            "-V", "311", "-c", "-i", "sub-v311", "-q", "2", "-t", "q/#", "-E",
        ],
    );
    let messages: Vec<String> = (0..200).map(|i| format!("m-{i:04}")).collect();
    mosquitto_pub_lines(&broker, &["-V", "5", "-q", "1", "-t", "q/a"], &messages);
    mosquitto_pub_lines(
        &broker,
        &["-V", "5", "-q", "1", "-r", "-t", "r/1"],
        &["kept".to_owned()],
    );

    // In flight: a QoS 1 message not acknowledged, a QoS 2 message PUBREC'd (the broker
    // awaits PUBCOMP), a QoS 2 message not acknowledged.
    let (mut inflight, _) = Raw::connect(broker.address(), "inflight", Some(3600)).await;
    inflight.subscribe("i/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) = Raw::connect(broker.address(), "pub", None).await;
    publisher
        .publish("i/1", b"one", PublishQoS::AtLeastOnce(pid(1)))
        .await;
    publisher
        .publish("i/2", b"two", PublishQoS::ExactlyOnce(pid(2)))
        .await;
    publisher
        .publish("i/3", b"three", PublishQoS::ExactlyOnce(pid(3)))
        .await;
    let mut sent = Vec::new();
    while sent.len() < 3 {
        match inflight.recv(Duration::from_secs(10)).await {
            Some(Packet::Publish(p)) => sent.push(p),
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    let PublishQoS::ExactlyOnce(two) = sent[1].qos else {
        panic!("{:?}", sent[1])
    };
    inflight.send(Packet::PubRec(Ack::new(two))).await;
    match inflight.recv(Duration::from_secs(10)).await {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, two),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    drop(inflight);
    publisher.disconnect().await;

    broker.stop();
    let broker = Broker::start_with_config("persistence-restart-2", &conf);

    for (version, id) in [("5", "sub-v5"), ("311", "sub-v311")] {
        let mut args = vec!["-V", version, "-c", "-i", id, "-q", "1", "-t", "q/#"];
        if version == "5" {
            args.extend(["-x", "3600"]);
        }
        args.extend(["-C", "200", "-W", "20"]);
        let received = mosquitto_sub(&broker, &args);
        assert_eq!(
            received, messages,
            "MQTT {version}: every queued message, in order"
        );
    }
    assert_eq!(
        mosquitto_sub(&broker, &["-V", "5", "-t", "r/#", "-C", "1", "-W", "10"]),
        ["kept"]
    );

    let (mut inflight, present) = Raw::connect(broker.address(), "inflight", Some(3600)).await;
    assert!(present, "the session was restored");
    let mut resent = Vec::new();
    while resent.len() < 3 {
        match inflight.recv(Duration::from_secs(10)).await {
            Some(packet) => resent.push(packet),
            None => panic!("only {resent:?} after the restart"),
        }
    }
    match &resent[..] {
        [Packet::Publish(a), Packet::PubRel(rel), Packet::Publish(c)] => {
            assert!(a.dup && c.dup, "resent with DUP");
            assert_eq!((a.qos, a.payload()), (sent[0].qos, sent[0].payload()));
            assert_eq!(rel.packet_id, two);
            assert_eq!((c.qos, c.payload()), (sent[2].qos, sent[2].payload()));
        }
        other => panic!("expected PUBLISH, PUBREL, PUBLISH; got {other:?}"),
    }
    inflight.disconnect().await;
    broker.stop();
}

/// A small deterministic generator for the kill points (the seed is printed).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Messages each round publishes (at most: the broker dies somewhere in the middle).
const KILL_ROUND_MESSAGES: u32 = 3_000;
/// QoS 1 PUBLISHes the publisher keeps unacknowledged.
const WINDOW: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_every_acknowledged_message_is_delivered_in_order() {
    let dir = scratch_dir("persistence-kill");
    let db = dir.join("nanomq.db");
    let conf = config(&db, "always", "max_mqueue_len = 100000");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = XorShift(seed);
    let mut broker = Some(Broker::start_with_config("persistence-kill", &conf));
    for round in 0..5u32 {
        let address = broker.as_ref().unwrap().address();
        let topic = format!("k/{round}");
        let sub_id = format!("ksub-{round}");
        let (mut sub, _) = Raw::connect(address, &sub_id, Some(3600)).await;
        sub.subscribe(&topic, QoS::AtLeastOnce).await;
        sub.disconnect().await;

        // Kill after this many PUBACKs: early, middle and late in the stream.
        let kill_after = 20 + rng.next() % u64::from(KILL_ROUND_MESSAGES - 200);
        let (mut publisher, _) = Raw::connect(address, &format!("kpub-{round}"), None).await;
        let mut acked: Vec<u32> = Vec::new();
        let mut next = 0u32;
        let mut killed = false;
        loop {
            while !killed && next < KILL_ROUND_MESSAGES && next - acked.len() as u32 <= WINDOW {
                let id = pid((next % 60_000 + 1) as u16);
                publisher
                    .publish(
                        &topic,
                        next.to_string().as_bytes(),
                        PublishQoS::AtLeastOnce(id),
                    )
                    .await;
                next += 1;
            }
            match publisher.recv(Duration::from_secs(10)).await {
                Some(Packet::PubAck(ack)) => {
                    // Acknowledgements come in publish order.
                    let seq = acked.len() as u32;
                    assert_eq!(ack.packet_id, pid((seq % 60_000 + 1) as u16));
                    acked.push(seq);
                    if !killed && acked.len() as u64 >= kill_after {
                        // Acknowledgements already on their way still count: the loop keeps
                        // reading until the connection is gone.
                        broker.take().unwrap().kill();
                        killed = true;
                    }
                }
                Some(other) => panic!("expected PUBACK, got {other:?}"),
                None => break,
            }
        }
        assert!(killed, "round {round}: the broker was never killed");
        eprintln!(
            "round {round} (seed {seed}): killed after {kill_after} PUBACKs; {} received, {next} sent",
            acked.len()
        );
        let restarted = Broker::start_with_config(&format!("persistence-kill-{round}"), &conf);
        let (mut sub, present) = Raw::connect(restarted.address(), &sub_id, Some(3600)).await;
        broker = Some(restarted);
        assert!(present, "round {round}: the subscriber's session survived");
        let mut received: Vec<u32> = Vec::new();
        while let Some(packet) = sub.recv(Duration::from_secs(2)).await {
            let Packet::Publish(p) = packet else {
                panic!("expected PUBLISH, got {packet:?}");
            };
            let seq: u32 = std::str::from_utf8(p.payload()).unwrap().parse().unwrap();
            if let PublishQoS::AtLeastOnce(id) = p.qos {
                sub.send(Packet::PubAck(Ack::new(id))).await;
            }
            if let Some(&last) = received.last() {
                assert!(
                    seq > last,
                    "round {round} (seed {seed}): {seq} after {last}: out of order or twice"
                );
            }
            received.push(seq);
        }
        let missing: Vec<u32> = acked
            .iter()
            .copied()
            .filter(|seq| received.binary_search(seq).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "round {round} (seed {seed}, killed after {kill_after}): {} acknowledged messages \
             lost, first {:?}; received {} of {} acknowledged",
            missing.len(),
            &missing[..missing.len().min(10)],
            received.len(),
            acked.len()
        );
        sub.disconnect().await;
    }
    broker.unwrap().stop();
}

/// The size of the database with its write-ahead log.
fn store_size(db: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    [db.to_path_buf(), wal]
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_leave_the_database_and_it_stops_growing() {
    let dir = scratch_dir("persistence-churn");
    let db = dir.join("nanomq.db");
    let broker = Broker::start_with_config("persistence-churn", &config(&db, "always", ""));
    let (mut publisher, _) = Raw::connect(broker.address(), "churn-pub", None).await;
    let mut sizes = Vec::new();
    let started = Instant::now();
    for round in 0..8u32 {
        for i in 0..150u32 {
            let id = format!("churn-{round}-{i}");
            let (mut sub, _) = Raw::connect(broker.address(), &id, Some(1)).await;
            sub.subscribe(&format!("c/{id}"), QoS::AtLeastOnce).await;
            sub.disconnect().await;
            publisher
                .publish(
                    &format!("c/{id}"),
                    &[7; 512],
                    PublishQoS::AtLeastOnce(pid(1)),
                )
                .await;
            match publisher.recv(Duration::from_secs(10)).await {
                Some(Packet::PubAck(_)) => {}
                other => panic!("expected PUBACK, got {other:?}"),
            }
        }
        // Every session of the round (and its queued message) expires.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sizes.push(store_size(&db));
    }
    eprintln!(
        "database + WAL after each round of 150 expired sessions ({:.1?}): {sizes:?}",
        started.elapsed()
    );
    // Sessions that come back find nothing: their sessions are gone.
    let (_, present) = Raw::connect(broker.address(), "churn-0-0", Some(1)).await;
    assert!(!present);
    let (first, last) = (sizes[2], sizes[7]);
    assert!(
        last <= first + first / 10 + 64 * 1024,
        "the database grows with churn: {sizes:?}"
    );
    publisher.disconnect().await;
    broker.stop();
}
