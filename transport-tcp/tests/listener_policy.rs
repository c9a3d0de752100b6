//! Per-listener policy over real sockets: each connection is told the listener it came in on
//! (`TransportInfo::listener`), so `allow_anonymous` can differ between two listeners of one
//! broker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{AccessControl, Broker, MqttConfig};
use bytes::BytesMut;
use mqtt_codec::{ClientId, Connect, Decoder, Packet, ProtocolVersion, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An anonymous MQTT 5 CONNECT to `addr`; the CONNACK's reason code.
async fn anonymous_connack(addr: SocketAddr) -> ReasonCode {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let connect = Connect::new(ProtocolVersion::V5, ClientId::new("anon").unwrap());
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(connect))
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    stream.write_all(&out).await.unwrap();
    let mut decoder = Decoder::with_version(ProtocolVersion::V5);
    let mut buf = BytesMut::new();
    loop {
        if let Some(packet) = decoder.decode(&mut buf).unwrap() {
            match packet {
                Packet::ConnAck(ack) => return ack.reason_code,
                other => panic!("expected CONNACK, got {other:?}"),
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf))
            .await
            .expect("no CONNACK within 10 s")
            .unwrap();
        assert!(read > 0, "closed before CONNACK");
    }
}

#[tokio::test]
async fn anonymous_access_follows_the_listener_a_client_came_in_on() {
    let open = transport_tcp::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let closed = transport_tcp::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (open_addr, closed_addr) = (open.local_addr().unwrap(), closed.local_addr().unwrap());
    let broker = Broker::builder(MqttConfig::default())
        .access(
            AccessControl::default()
                .allow_anonymous(false)
                .listener_allow_anonymous(open_addr, true),
        )
        .build()
        .unwrap();
    for listener in [open, closed] {
        tokio::spawn(transport_tcp::serve(
            listener,
            Arc::clone(&broker),
            std::future::pending::<()>(),
        ));
    }
    assert_eq!(anonymous_connack(open_addr).await, ReasonCode::Success);
    assert_eq!(
        anonymous_connack(closed_addr).await,
        ReasonCode::NotAuthorized
    );
}
