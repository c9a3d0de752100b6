//! End to end over WebSocket: the real `nanomq` binary with `[listeners.ws]` (and
//! `[listeners.wss]`) on ephemeral loopback ports, driven by paho-mqtt's websockets transport
//! and by a raw tokio-tungstenite client that controls every frame.
//!
//! Covered: paho over ws:// and wss:// (MQTT 3.1.1 and 5.0) on the default and a configured
//! path; the offline-message scenario with the subscriber leaving over TCP and coming back
//! over WebSocket (1,000 QoS 1 messages, in order, none lost, none twice); packets split
//! across frames and batched in one frame; subprotocol negotiation; a wrong path (404); a text
//! frame (the connection is closed with 1003). MQTT.js in Chromium is in `e2e_browser.rs`.

#![cfg(feature = "ws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;
#[cfg(feature = "tls")]
#[path = "../../transport-tls/tests/support/pki.rs"]
mod pki;
mod transports;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use e2e::Broker;
use futures_util::{SinkExt, StreamExt};
use mqtt_codec::{
    ClientId, Connect, Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS,
    ReasonCode, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
    TopicName,
};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
#[cfg(feature = "tls")]
use transports::Certificates;
use transports::{address, assert_pubsub_worked, config, listener, transports_py};

/// How long the broker may take to answer.
const PATIENCE: Duration = Duration::from_secs(20);

/// A broker with a ws listener (with `ws_extra` lines in its table) and the TCP one.
fn ws_broker(name: &str, ws_extra: &str) -> (Broker, SocketAddr) {
    let broker = Broker::start_with_config(name, &config(&listener("ws", ws_extra), ""));
    let address = address(&broker, "ws");
    (broker, address)
}

#[test]
fn paho_over_websocket() {
    let (broker, ws) = ws_broker("ws-paho", "");
    let port = ws.port().to_string();
    for protocol in ["311", "5"] {
        let summary = transports_py(&[
            "pubsub",
            "127.0.0.1",
            &port,
            "--protocol",
            protocol,
            "--transport",
            "websockets",
        ]);
        assert_pubsub_worked(&summary);
    }
    assert!(
        broker
            .log()
            .contains(&format!("listening on ws://{ws}/mqtt"))
    );
    broker.stop();

    // A configured path.
    let (broker, ws) = ws_broker("ws-paho-path", "path = \"/broker/ws\"");
    assert!(
        broker
            .log()
            .contains(&format!("listening on ws://{ws}/broker/ws"))
    );
    let summary = transports_py(&[
        "pubsub",
        "127.0.0.1",
        &ws.port().to_string(),
        "--protocol",
        "5",
        "--transport",
        "websockets",
        "--ws-path",
        "/broker/ws",
    ]);
    assert_pubsub_worked(&summary);
    broker.stop();
}

#[cfg(feature = "tls")]
#[test]
fn paho_over_secure_websocket() {
    let certificates = Certificates::generate("wss-paho");
    // The TLS settings come from [listeners.ssl].
    let listeners = format!(
        "{}{}",
        listener("ssl", &certificates.tls_keys("")),
        listener("wss", "")
    );
    let broker = Broker::start_with_config("wss-paho", &config(&listeners, ""));
    let wss = address(&broker, "wss");
    assert!(
        broker
            .log()
            .contains(&format!("listening on wss://{wss}/mqtt"))
    );
    for protocol in ["311", "5"] {
        let summary = transports_py(&[
            "pubsub",
            "127.0.0.1",
            &wss.port().to_string(),
            "--protocol",
            protocol,
            "--transport",
            "websockets",
            "--cafile",
            certificates.ca().to_str().unwrap(),
        ]);
        assert_pubsub_worked(&summary);
        assert!(
            summary["tls_version"]
                .as_str()
                .is_some_and(|v| v.starts_with("TLSv1.")),
            "{summary}"
        );
    }
    broker.stop();
}

/// The offline scenario: subscribe over TCP, leave, N messages published over TCP, come back
/// over WebSocket and get them all, in order, once.
fn offline_tcp_then_websocket(protocol: &str) {
    const COUNT: u64 = 1000;
    let (broker, ws) = ws_broker(&format!("ws-offline-{protocol}"), "");
    let summary = transports_py(&[
        "offline",
        "127.0.0.1",
        &broker.port(),
        &ws.port().to_string(),
        "--protocol",
        protocol,
        "--count",
        &COUNT.to_string(),
    ]);
    assert_eq!(summary["session_present"], true, "{summary}");
    let numbers: Vec<u64> = summary["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..COUNT).collect();
    if numbers != expected {
        let missing: Vec<u64> = expected
            .iter()
            .copied()
            .filter(|n| !numbers.contains(n))
            .collect();
        panic!(
            "{protocol}: got {} messages, {} missing (first: {:?}), in order: {}",
            numbers.len(),
            missing.len(),
            missing.first(),
            numbers.windows(2).all(|w| w[0] < w[1])
        );
    }
    assert_eq!(summary["dups"], 0, "{protocol}");
    broker.stop();
}

#[test]
fn offline_messages_left_over_tcp_come_back_over_websocket_mqtt_3_1_1() {
    offline_tcp_then_websocket("311");
}

#[test]
fn offline_messages_left_over_tcp_come_back_over_websocket_mqtt_5() {
    offline_tcp_then_websocket("5");
}

/// A raw WebSocket client: every frame is the test's choice.
struct Raw {
    ws: WebSocketStream<TcpStream>,
    subprotocol: Option<String>,
    decoder: Decoder,
    buffer: BytesMut,
}

impl Raw {
    /// Upgrades at `path`, offering `subprotocols`.
    async fn open(
        address: SocketAddr,
        path: &str,
        subprotocols: Option<&str>,
    ) -> Result<Self, WsError> {
        let mut request = format!("ws://{address}{path}")
            .into_client_request()
            .unwrap();
        if let Some(offered) = subprotocols {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(offered).unwrap(),
            );
        }
        let tcp = TcpStream::connect(address).await.unwrap();
        let (ws, response) = tokio_tungstenite::client_async(request, tcp).await?;
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Self {
            ws,
            subprotocol,
            decoder: Decoder::with_version(ProtocolVersion::V5),
            buffer: BytesMut::new(),
        })
    }

    async fn send(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    async fn next(&mut self) -> Option<Result<Message, WsError>> {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("nothing from the broker")
    }

    /// The next MQTT packet, from as many binary frames as it takes.
    async fn packet(&mut self) -> Packet {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buffer).unwrap() {
                return packet;
            }
            match self.next().await {
                Some(Ok(Message::Binary(payload))) => self.buffer.extend_from_slice(&payload),
                other => panic!("expected a binary frame, got {other:?}"),
            }
        }
    }
}

/// `packet` encoded as MQTT 5.
fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = Vec::new();
    packet.encode(ProtocolVersion::V5, &mut buf).unwrap();
    buf
}

/// CONNECT (MQTT 5) for `client_id`.
fn connect(client_id: &str) -> Vec<u8> {
    let connect = Connect::new(ProtocolVersion::V5, ClientId::new(client_id).unwrap());
    encode(&Packet::Connect(Box::new(connect)))
}

#[tokio::test]
async fn raw_frames_against_the_binary() {
    let (broker, ws) = ws_broker("ws-raw", "");

    // Subprotocols: each MQTT name is echoed.
    for offered in ["mqtt", "mqttv3.1", "mqttv3.1.1"] {
        let raw = Raw::open(ws, "/mqtt", Some(offered)).await.unwrap();
        assert_eq!(raw.subprotocol.as_deref(), Some(offered));
    }

    // CONNECT split over frames of one byte; then SUBSCRIBE, a QoS 1 PUBLISH to itself and
    // PINGREQ batched in one frame.
    let mut raw = Raw::open(ws, "/mqtt", Some("mqtt")).await.unwrap();
    for byte in connect("raw-frames") {
        raw.send(Message::Binary(Bytes::copy_from_slice(&[byte])))
            .await;
    }
    match raw.packet().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let subscribe = Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        subscriptions: vec![Subscription {
            filter: TopicFilter::new("raw/t").unwrap(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        }],
        properties: SubscribeProperties::default(),
    };
    let mut publish = Publish::new(
        TopicName::new("raw/t").unwrap(),
        Bytes::from_static(b"batched"),
    );
    publish.qos = PublishQoS::AtLeastOnce(PacketId::new(2).unwrap());
    let mut batch = encode(&Packet::Subscribe(subscribe));
    batch.extend(encode(&Packet::Publish(publish)));
    batch.extend(encode(&Packet::PingReq));
    raw.send(Message::Binary(batch.into())).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(raw.packet().await);
    }
    assert!(matches!(got[0], Packet::SubAck(_)), "{got:?}");
    assert!(
        got.iter().any(|p| matches!(p, Packet::PubAck(_))),
        "{got:?}"
    );
    assert!(got.iter().any(|p| matches!(p, Packet::PingResp)), "{got:?}");
    assert!(
        got.iter()
            .any(|p| matches!(p, Packet::Publish(m) if m.payload() == b"batched")),
        "{got:?}"
    );

    // A text frame: the broker closes with 1003 (unsupported data).
    raw.send(Message::text("MQTT is binary")).await;
    loop {
        match raw.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, CloseCode::Unsupported);
                break;
            }
            Some(Ok(Message::Binary(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    while let Some(message) = raw.next().await {
        assert!(message.is_ok(), "{message:?}");
    }

    // A wrong path: 404, for a browser-style request too.
    for path in ["/", "/mqtt/other", "/MQTT"] {
        match Raw::open(ws, path, Some("mqtt")).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 404, "{path}"),
            Err(e) => panic!("{path}: expected 404, got {e}"),
            Ok(_) => panic!("{path}: upgraded"),
        }
    }
    broker.stop();
}
