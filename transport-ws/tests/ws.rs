//! transport-ws against a raw tokio-tungstenite client over loopback TCP: subprotocols,
//! packets split across messages and batched in one, the wrong path, text messages, pings,
//! both directions of the close handshake, size limits, a silent client, and (feature
//! `tls`) WSS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::Duration;

use broker_core::{Broker, MqttConfig};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use mqtt_codec::{
    ClientId, Connect, Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS,
    ReasonCode, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
    TopicName,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use transport_ws::WsSettings;

/// How long anything may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// A broker served over WebSocket with `settings` on a free loopback port; the listener stops
/// when the returned sender is dropped.
async fn serve(settings: WsSettings, config: MqttConfig) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = transport_ws::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(transport_ws::serve(
        listener,
        settings,
        Broker::new(config),
        async {
            let _ = stopped.await;
        },
    ));
    (address, stop)
}

/// A broker on the default settings.
async fn serve_default() -> (SocketAddr, oneshot::Sender<()>) {
    serve(WsSettings::default(), MqttConfig::default()).await
}

/// A WebSocket client, with the bytes of binary messages gathered and decoded into packets.
struct Client<S> {
    ws: WebSocketStream<S>,
    /// The subprotocol the server answered with.
    subprotocol: Option<String>,
    decoder: Decoder,
    buffer: BytesMut,
    /// How many binary messages have arrived.
    messages: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Upgrades `stream` at `url`, offering `subprotocols`.
    async fn upgrade(stream: S, url: &str, subprotocols: Option<&str>) -> Result<Self, WsError> {
        let mut request = url.into_client_request().unwrap();
        if let Some(offered) = subprotocols {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(offered).unwrap(),
            );
        }
        let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Self {
            ws,
            subprotocol,
            decoder: Decoder::with_version(ProtocolVersion::V5),
            buffer: BytesMut::new(),
            messages: 0,
        })
    }

    /// Sends `bytes` as one binary message.
    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
            .unwrap();
    }

    /// The next WebSocket message, whatever its kind; `None` at the end of the stream.
    async fn next_message(&mut self) -> Option<Result<Message, WsError>> {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("nothing from the server")
    }

    /// The next MQTT packet, gathered from as many binary messages as it takes.
    async fn packet(&mut self) -> Packet {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buffer).unwrap() {
                return packet;
            }
            match self.next_message().await {
                Some(Ok(Message::Binary(payload))) => {
                    self.messages += 1;
                    self.buffer.extend_from_slice(&payload);
                }
                other => panic!("expected a binary message, got {other:?}"),
            }
        }
    }

    /// Sends CONNECT (MQTT 5, `client_id`) and asserts the CONNACK accepts it.
    async fn connect(&mut self, client_id: &str) {
        let connect = Connect::new(ProtocolVersion::V5, ClientId::new(client_id).unwrap());
        self.send_bytes(&encode(&Packet::Connect(Box::new(connect))))
            .await;
        match self.packet().await {
            Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}

/// `packet` encoded as MQTT 5.
fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = Vec::new();
    packet.encode(ProtocolVersion::V5, &mut buf).unwrap();
    buf
}

/// SUBSCRIBE (packet identifier 1) to `filter` at `qos`.
fn subscribe(filter: &str, qos: QoS) -> Subscribe {
    Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        subscriptions: vec![Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options: SubscriptionOptions::new(qos),
        }],
        properties: SubscribeProperties::default(),
    }
}

/// Opens a WebSocket to `path` on `address`.
async fn open(
    address: SocketAddr,
    path: &str,
    subprotocols: Option<&str>,
) -> Result<Client<TcpStream>, WsError> {
    let tcp = TcpStream::connect(address).await.unwrap();
    Client::upgrade(tcp, &format!("ws://{address}{path}"), subprotocols).await
}

#[tokio::test]
async fn mqtt_subprotocols_are_echoed() {
    let (address, _stop) = serve_default().await;
    for (offered, chosen) in [
        (Some("mqtt"), Some("mqtt")),
        (Some("mqttv3.1"), Some("mqttv3.1")),
        (Some("mqttv3.1.1"), Some("mqttv3.1.1")),
        (Some("wamp, mqttv3.1.1, mqtt"), Some("mqttv3.1.1")),
        (None, None),
    ] {
        let mut client = open(address, "/mqtt", offered).await.unwrap();
        assert_eq!(client.subprotocol.as_deref(), chosen, "offered {offered:?}");
        client
            .connect(&format!("proto-{}", offered.unwrap_or("none")))
            .await;
    }
    // A query string does not change the path.
    let mut client = open(address, "/mqtt?token=1", Some("mqtt")).await.unwrap();
    client.connect("with-query").await;
}

#[tokio::test]
async fn a_packet_may_span_messages_and_a_message_may_hold_several_packets() {
    let (address, _stop) = serve_default().await;
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();

    // CONNECT, one byte per message.
    let connect = Connect::new(ProtocolVersion::V5, ClientId::new("split").unwrap());
    for byte in encode(&Packet::Connect(Box::new(connect))) {
        client.send_bytes(&[byte]).await;
    }
    assert!(matches!(client.packet().await, Packet::ConnAck(_)));

    // SUBSCRIBE, PUBLISH (to itself, QoS 1) and PINGREQ in one message.
    let subscribe = subscribe("split/t", QoS::AtLeastOnce);
    let mut publish = Publish::new(
        TopicName::new("split/t").unwrap(),
        Bytes::from_static(b"hello"),
    );
    publish.qos = PublishQoS::with_packet_id(QoS::AtLeastOnce, PacketId::new(2).unwrap());
    let mut batch = encode(&Packet::Subscribe(subscribe));
    batch.extend(encode(&Packet::Publish(publish)));
    batch.extend(encode(&Packet::PingReq));
    client.send_bytes(&batch).await;

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(client.packet().await);
    }
    assert!(matches!(got[0], Packet::SubAck(_)), "{got:?}");
    assert!(
        got.iter().any(|p| matches!(p, Packet::PubAck(_))),
        "{got:?}"
    );
    assert!(got.iter().any(|p| matches!(p, Packet::PingResp)), "{got:?}");
    let delivered = got
        .iter()
        .find_map(|p| match p {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no PUBLISH in {got:?}"));
    assert_eq!(delivered.payload(), b"hello");
}

#[tokio::test]
async fn a_large_packet_goes_out_in_several_messages() {
    let (address, _stop) = serve_default().await;
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    client.connect("large").await;
    client
        .send_bytes(&encode(&Packet::Subscribe(subscribe(
            "large",
            QoS::AtMostOnce,
        ))))
        .await;
    assert!(matches!(client.packet().await, Packet::SubAck(_)));

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let publish = Publish::new(
        TopicName::new("large").unwrap(),
        Bytes::from(payload.clone()),
    );
    // Sent in uneven pieces, as a client might.
    let bytes = encode(&Packet::Publish(publish));
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = rest.len().min(70_001);
        client.send_bytes(&rest[..n]).await;
        rest.advance(n);
    }
    let before = client.messages;
    match client.packet().await {
        Packet::Publish(publish) => assert_eq!(publish.payload(), &payload[..]),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    assert!(
        client.messages - before > 1,
        "a 300 KB packet in {} message(s)",
        client.messages - before
    );
}

#[tokio::test]
async fn another_path_gets_404() {
    let (address, _stop) = serve_default().await;
    match open(address, "/", Some("mqtt")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|c| c.subprotocol)),
    }
    match open(address, "/mqtt/x", Some("mqtt")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|c| c.subprotocol)),
    }
    // A configured path is served, and the default is then not.
    let settings = WsSettings {
        path: "/ws/broker".to_owned(),
        ..WsSettings::default()
    };
    let (address, _stop) = serve(settings, MqttConfig::default()).await;
    open(address, "/ws/broker", Some("mqtt"))
        .await
        .unwrap()
        .connect("custom-path")
        .await;
    assert!(matches!(
        open(address, "/mqtt", Some("mqtt")).await,
        Err(WsError::Http(response)) if response.status() == 404
    ));
}

/// Asserts the server sends a close frame with `code` and then ends the connection.
async fn assert_closed_with<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    code: CloseCode,
) {
    loop {
        match client.next_message().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, code);
                break;
            }
            // An MQTT 5 DISCONNECT may come first.
            Some(Ok(Message::Binary(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    // tungstenite answers the close frame; then the server ends the connection.
    while let Some(message) = client.next_message().await {
        assert!(
            matches!(message, Err(WsError::ConnectionClosed) | Ok(_)),
            "{message:?}"
        );
    }
}

#[tokio::test]
async fn a_text_message_closes_the_connection() {
    let (address, _stop) = serve_default().await;
    // After CONNECT.
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    client.connect("text").await;
    client
        .ws
        .send(Message::text("{\"not\": \"mqtt\"}"))
        .await
        .unwrap();
    assert_closed_with(&mut client, CloseCode::Unsupported).await;

    // Before CONNECT.
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    client.ws.send(Message::text("hello")).await.unwrap();
    assert_closed_with(&mut client, CloseCode::Unsupported).await;
}

#[tokio::test]
async fn pings_are_answered() {
    let (address, _stop) = serve_default().await;
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    client.connect("ping").await;
    client
        .ws
        .send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    match client.next_message().await {
        Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // And MQTT still works.
    client.send_bytes(&encode(&Packet::PingReq)).await;
    assert!(matches!(client.packet().await, Packet::PingResp));
}

#[tokio::test]
async fn a_close_from_the_client_is_answered() {
    let (address, _stop) = serve_default().await;
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    client.connect("client-closes").await;
    client
        .ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    match client.next_message().await {
        Some(Ok(Message::Close(_))) => {}
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    assert!(client.next_message().await.is_none());
}

#[tokio::test]
async fn the_server_closes_with_a_close_frame() {
    let (address, _stop) = serve_default().await;
    let mut first = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    first.connect("taken-over").await;
    // The same client id again: the broker closes the first connection (takeover).
    let mut second = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    second.connect("taken-over").await;
    match first.packet().await {
        Packet::Disconnect(disconnect) => {
            assert_eq!(disconnect.reason_code, ReasonCode::SessionTakenOver);
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_closed_with(&mut first, CloseCode::Normal).await;
    // The new connection is unaffected.
    second.send_bytes(&encode(&Packet::PingReq)).await;
    assert!(matches!(second.packet().await, Packet::PingResp));
}

#[tokio::test]
async fn a_message_larger_than_the_limit_closes_the_connection() {
    let settings = WsSettings {
        max_message_size: 1024,
        ..WsSettings::default()
    };
    let (address, _stop) = serve(settings, MqttConfig::default()).await;
    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    client.connect("too-big").await;
    // tungstenite refuses the frame; the connection ends without a PINGRESP.
    client.send_bytes(&vec![0u8; 4096]).await;
    loop {
        match client.next_message().await {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("expected the connection to end, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_client_delays_no_other_upgrade_and_is_dropped_after_the_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(4);
    let config = MqttConfig {
        connect_timeout: TIMEOUT,
        ..MqttConfig::default()
    };
    let (address, _stop) = serve(WsSettings::default(), config).await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(address).await.unwrap());
    }
    let started = tokio::time::Instant::now();
    for i in 0..4 {
        let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
        client.connect(&format!("busy-{i}")).await;
    }
    assert!(
        started.elapsed() < TIMEOUT,
        "upgrades waited for the silent clients: {:?}",
        started.elapsed()
    );
    for mut stream in silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read(&mut stream, &mut byte),
        )
        .await
        .expect("a silent client was never closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

#[tokio::test]
async fn written_bytes_reach_the_client_without_a_flush() {
    // broker-core writes a batch and then only waits for input, never calling `flush`: what
    // the socket could not take at once must still go out as the client makes room.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (written_tx, written_rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = transport_ws::accept(tcp, &WsSettings::default())
            .await
            .unwrap();
        let chunk = vec![7u8; 16 * 1024];
        let mut written = 0;
        while let Ok(n) = tokio::time::timeout(Duration::from_millis(200), ws.write(&chunk)).await {
            written += n.unwrap();
        }
        written_tx.send(written).unwrap();
        // No flush: wait for the client to say it has everything.
        let mut done = [0u8; 1];
        ws.read_exact(&mut done).await.unwrap();
        done[0]
    });

    let mut client = open(address, "/mqtt", Some("mqtt")).await.unwrap();
    let written = written_rx.await.unwrap();
    let mut received = 0;
    while received < written {
        match client.next_message().await {
            Some(Ok(Message::Binary(payload))) => received += payload.len(),
            other => panic!("after {received} of {written} bytes: {other:?}"),
        }
    }
    client.send_bytes(b"!").await;
    assert_eq!(server.await.unwrap(), b'!');
}

#[cfg(feature = "tls")]
#[path = "../../transport-tls/tests/support/pki.rs"]
mod pki;

#[cfg(feature = "tls")]
mod wss {
    //! WebSocket over TLS.

    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject;
    use rustls::{ClientConfig, RootCertStore};
    use transport_tls::{TlsAcceptor, TlsSettings};

    use super::*;
    use crate::pki;

    #[tokio::test]
    async fn mqtt_over_wss() {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("transport-ws-wss");
        let _ = std::fs::remove_dir_all(&dir);
        let pki = pki::Pki::new(&dir, "ca");
        let server = pki.server("server", pki::Alg::EcdsaP256);
        let acceptor = TlsAcceptor::new(&TlsSettings::new(&server.cert, &server.key)).unwrap();
        let listener = transport_ws::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let (_stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(transport_ws::serve_tls(
            listener,
            WsSettings::default(),
            acceptor,
            Broker::new(MqttConfig::default()),
            async {
                let _ = stopped.await;
            },
        ));

        let mut roots = RootCertStore::empty();
        for certificate in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(certificate.unwrap()).unwrap();
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let tcp = TcpStream::connect(address).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let mut client = Client::upgrade(
            tls,
            &format!("wss://localhost:{}/mqtt", address.port()),
            Some("mqtt"),
        )
        .await
        .unwrap();
        assert_eq!(client.subprotocol.as_deref(), Some("mqtt"));
        client.connect("over-wss").await;
        client.send_bytes(&encode(&Packet::PingReq)).await;
        assert!(matches!(client.packet().await, Packet::PingResp));
    }
}
