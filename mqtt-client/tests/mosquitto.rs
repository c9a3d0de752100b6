//! The client against a real Mosquitto (the Debian package), started by the test on a free
//! loopback port: QoS 0/1/2 both ways in 3.1.1 and 5, the limits Mosquitto's CONNACK
//! announces (Maximum Packet Size, Topic Alias Maximum) kept, and a persistent session
//! resumed with the messages in flight resent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_client::mqtt_codec::{ProtocolVersion, QoS, ReasonCode};
use mqtt_client::{Client, Incoming, Message, PublishError, SessionState};
use support::*;

/// A Mosquitto process, killed when dropped.
struct Mosquitto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mosquitto on a free loopback port with `extra` listener options.
fn mosquitto(name: &str, extra: &str) -> Mosquitto {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("mosquitto").is_file())
    }) || std::path::Path::new("/usr/sbin/mosquitto").is_file();
    assert!(
        found,
        "mosquitto is not installed: apt-get install mosquitto"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("mqtt-client-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("persistence false\nlog_dest stderr\nlog_type error\nlistener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n"),
    )
    .unwrap();
    let program = if std::path::Path::new("/usr/sbin/mosquitto").is_file() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    };
    let child = Command::new(program)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + PATIENCE;
    // Serving, not only listening: a CONNECT answered with CONNACK (a run of the whole suite
    // once saw a client reset right after the port first accepted).
    while !answers_connect(addr) {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not answer a CONNECT on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Mosquitto { child, addr }
}

/// Whether an MQTT 3.1.1 CONNECT to `addr` gets a successful CONNACK.
fn answers_connect(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    // Clean session, keep alive 60, client id "ready".
    let connect = [
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 5, b'r', b'e', b'a', b'd', b'y',
    ];
    let mut connack = [0u8; 4];
    stream.write_all(&connect).is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack == [0x20, 2, 0, 0]
}

#[tokio::test]
async fn qos_0_1_2_both_ways_in_3_1_1_and_5_against_mosquitto() {
    let broker = mosquitto("qos", "");
    let connector = tcp(broker.addr);
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut a = connect(
            &connector,
            &options(&format!("a-{}", version.level()), version),
        )
        .await;
        let mut b = connect(
            &connector,
            &options(&format!("b-{}", version.level()), version),
        )
        .await;
        subscribe(&a, "to-a/#", QoS::ExactlyOnce).await;
        subscribe(&b, "to-b/#", QoS::ExactlyOnce).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let body = format!("{version}-{}", qos.as_u8());
            within(a.publish(Message::new("to-b/x", Bytes::from(body.clone()), qos).unwrap()))
                .await
                .unwrap();
            let got = next_message(&mut b).await;
            assert_eq!((got.payload(), got.qos.qos()), (body.as_bytes(), qos));
            within(b.publish(Message::new("to-a/y", Bytes::from(body.clone()), qos).unwrap()))
                .await
                .unwrap();
            let got = next_message(&mut a).await;
            assert_eq!((got.payload(), got.qos.qos()), (body.as_bytes(), qos));
        }
        for client in [a, b] {
            assert!(client.disconnect().await.error.is_none());
        }
    }
}

#[tokio::test]
async fn mosquittos_limits_are_kept() {
    let broker = mosquitto(
        "limits",
        "max_packet_size 400\nmax_topic_alias 2\nmax_inflight_messages 1",
    );
    let connector = tcp(broker.addr);
    let mut sub = connect(&connector, &options("lim-sub", ProtocolVersion::V5)).await;
    subscribe(&sub, "lim/#", QoS::AtLeastOnce).await;
    let recorder = Recorder::default();
    let (publisher, params) = within(Client::start(
        &connector,
        &options("lim-pub", ProtocolVersion::V5),
        SessionState::new(),
        Some(recorder.observer()),
    ))
    .await
    .unwrap();
    eprintln!("{params:?}");
    assert_eq!(
        (params.maximum_packet_size, params.topic_alias_maximum),
        (400, 2)
    );
    for i in 0..12 {
        let m = Message::new(
            &format!("lim/{}", i % 4),
            Bytes::from(i.to_string()),
            QoS::AtLeastOnce,
        )
        .unwrap();
        within(publisher.publish(m)).await.unwrap();
    }
    for i in 0..12 {
        let got = next_message(&mut sub).await;
        assert_eq!(
            (got.topic(), got.payload()),
            (format!("lim/{}", i % 4).as_str(), i.to_string().as_bytes())
        );
    }
    let sent = recorder.sent_publishes();
    assert!(
        sent.iter()
            .filter_map(|p| p.properties().topic_alias)
            .all(|a| a.get() <= 2)
    );
    assert!(
        sent.iter().any(|p| p.topic().is_empty()),
        "aliases were used"
    );
    let big = Message::new("lim/big", vec![0u8; 500], QoS::AtLeastOnce).unwrap();
    assert!(matches!(
        publisher.publish(big).await,
        Err(PublishError::TooLarge { max: 400, .. })
    ));
    assert_eq!(recorder.sent_publishes().len(), 12);
}

#[tokio::test]
async fn a_persistent_session_on_mosquitto_gets_the_resend() {
    let broker = mosquitto("resend", "");
    let connector = tcp(broker.addr);
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let level = version.level();
        let mut watcher = connect(&connector, &options(&format!("w-{level}"), version)).await;
        subscribe(&watcher, &format!("re{level}/#"), QoS::ExactlyOnce).await;
        let relay = Relay::start(broker.addr).await;
        let mut persistent = options(&format!("p-{level}"), version).clean_start(false);
        if version.is_v5() {
            persistent.session_expiry = Some(300);
        }
        let client = connect(&tcp(relay.addr), &persistent).await;
        relay.blackhole.store(true, Ordering::SeqCst);
        let one =
            client.publish(Message::new(&format!("re{level}/1"), "one", QoS::AtLeastOnce).unwrap());
        let two =
            client.publish(Message::new(&format!("re{level}/2"), "two", QoS::ExactlyOnce).unwrap());
        // Mosquitto delivers a QoS 2 message at PUBREL, which never comes: cut once the
        // QoS 1 message is through.
        let copies = async {
            let copy = next_message(&mut watcher).await;
            relay.cut.notify_one();
            copy
        };
        let (one, two, copy) = within(async { tokio::join!(one, two, copies) }).await;
        assert_eq!(copy.payload(), b"one");
        assert_eq!(
            (one, two),
            (
                Err(PublishError::ConnectionLost),
                Err(PublishError::ConnectionLost)
            )
        );
        let state = client.disconnect().await.state;
        assert_eq!(state.in_flight(), 2);

        let (mut client, params) = within(Client::resume(&connector, &persistent, state))
            .await
            .unwrap();
        assert!(params.session_present, "{version}");
        let mut done = Vec::new();
        while done.len() < 2 {
            if let Incoming::Completed { result, .. } = within(client.recv()).await.unwrap() {
                done.push(result);
            }
        }
        assert_eq!(done, [Ok(ReasonCode::Success), Ok(ReasonCode::Success)]);
        within(
            client
                .publish(Message::new(&format!("re{level}/end"), "end", QoS::AtLeastOnce).unwrap()),
        )
        .await
        .unwrap();
        // The QoS 1 message again, the QoS 2 one once (at the resumed PUBREL), then the end.
        assert_eq!(next_message(&mut watcher).await.payload(), b"one");
        assert_eq!(next_message(&mut watcher).await.payload(), b"two");
        assert_eq!(next_message(&mut watcher).await.payload(), b"end");
        assert_eq!(client.disconnect().await.state.in_flight(), 0);
    }
}
