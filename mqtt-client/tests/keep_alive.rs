//! The driver's timers in virtual time, against a scripted server on a loopback socket that
//! accepts the connection and then answers nothing: PINGREQ goes out after the keep alive
//! the CONNACK imposed, and the connection is declared dead 1.5 keep alives after the last
//! packet received.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use bytes::BytesMut;
use mqtt_client::mqtt_codec::{
    ConnAck, ConnAckProperties, Decoder, Packet, PacketType, ProtocolVersion, ReasonCode,
};
use mqtt_client::{Client, Error, TimeoutKind};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_silent_server_gets_pings_and_is_declared_dead_after_one_and_a_half_keep_alives() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut decoder = Decoder::with_version(ProtocolVersion::V5);
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        loop {
            while let Some(packet) = decoder.decode(&mut buf).unwrap() {
                if matches!(packet, Packet::Connect(_)) {
                    let connack = Packet::ConnAck(Box::new(ConnAck {
                        session_present: false,
                        reason_code: ReasonCode::Success,
                        properties: ConnAckProperties {
                            server_keep_alive: Some(4),
                            ..ConnAckProperties::default()
                        },
                    }));
                    let mut out = BytesMut::new();
                    connack.encode(ProtocolVersion::V5, &mut out).unwrap();
                    stream.write_all(&out).await.unwrap();
                }
                seen.push((packet.packet_type(), Instant::now()));
            }
            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return seen;
            }
        }
    });
    let start = Instant::now();
    let (mut client, params) = Client::connect(
        &tcp(addr),
        &options("quiet", ProtocolVersion::V5).keep_alive(60),
    )
    .await
    .unwrap();
    assert_eq!(params.keep_alive, 4);
    let ended = client.recv().await;
    assert!(
        matches!(ended, Err(Error::Timeout(TimeoutKind::KeepAlive))),
        "{ended:?}"
    );
    let dead_after = start.elapsed();
    assert!(
        dead_after >= Duration::from_secs(6) && dead_after < Duration::from_secs(7),
        "{dead_after:?}"
    );
    drop(client);
    let seen = server.await.unwrap();
    let pings: Vec<Duration> = seen
        .iter()
        .filter(|(t, _)| *t == PacketType::PingReq)
        .map(|(_, at)| at.duration_since(start))
        .collect();
    assert_eq!(pings.len(), 1, "{seen:?}");
    assert!(
        pings[0] >= Duration::from_secs(4) && pings[0] < Duration::from_secs(5),
        "{pings:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_user_slow_to_take_messages_does_not_make_a_live_server_look_dead() {
    const MESSAGES: usize = 3000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let mut decoder = Decoder::with_version(ProtocolVersion::V5);
        let mut buf = BytesMut::new();
        let (pings_tx, mut pings) = tokio::sync::mpsc::unbounded_channel();
        // Answers PINGREQ while the other half floods the client.
        tokio::spawn(async move {
            loop {
                while let Some(packet) = decoder.decode(&mut buf).unwrap() {
                    if pings_tx.send(packet.packet_type()).is_err() {
                        return;
                    }
                }
                if read.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        assert_eq!(pings.recv().await, Some(PacketType::Connect));
        let mut out = BytesMut::new();
        Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: ConnAckProperties {
                server_keep_alive: Some(2),
                ..ConnAckProperties::default()
            },
        }))
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
        for i in 0..MESSAGES {
            let publish = mqtt_client::mqtt_codec::Publish::new(
                mqtt_client::mqtt_codec::TopicName::new("flood").unwrap(),
                bytes::Bytes::from(i.to_string()),
            );
            Packet::Publish(publish)
                .encode(ProtocolVersion::V5, &mut out)
                .unwrap();
        }
        // About 40 kB: more than the client's channels hold, less than the socket buffers.
        write.write_all(&out).await.unwrap();
        while let Some(packet) = pings.recv().await {
            if packet == PacketType::PingReq {
                let mut pong = BytesMut::new();
                Packet::PingResp
                    .encode(ProtocolVersion::V5, &mut pong)
                    .unwrap();
                write.write_all(&pong).await.unwrap();
            }
        }
    });
    let (mut client, _) = Client::connect(&tcp(addr), &options("slow", ProtocolVersion::V5))
        .await
        .unwrap();
    // The user looks away for ten keep alives while the messages pile up.
    tokio::time::sleep(Duration::from_secs(20)).await;
    for i in 0..MESSAGES {
        match client.recv().await {
            Ok(mqtt_client::Incoming::Message(m)) => {
                assert_eq!(m.payload(), i.to_string().as_bytes())
            }
            other => panic!("message {i}: {other:?}"),
        }
    }
    assert!(client.disconnect().await.error.is_none());
}

#[cfg(feature = "ws")]
#[tokio::test(start_paused = true)]
async fn a_server_that_accepts_but_never_answers_times_the_connection_out() {
    // A WebSocket upgrade nobody answers: the transport's handshake is within the deadline.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(stream);
    });
    let connector = mqtt_client::Connector::from_url(
        &format!("ws://127.0.0.1:{}/mqtt", addr.port()),
        &mqtt_client::TlsOptions::default(),
    )
    .unwrap();
    let mut options = options("mute", ProtocolVersion::V5);
    options.connect_timeout = Duration::from_secs(5);
    let start = Instant::now();
    // Virtual time: a minute costs nothing, and a client without the deadline fails here
    // instead of hanging.
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        Client::connect(&connector, &options),
    )
    .await
    .expect("the connect deadline did not apply to the transport's handshake");
    assert!(
        matches!(result, Err(Error::Timeout(TimeoutKind::Connect))),
        "{result:?}"
    );
    assert!(start.elapsed() >= Duration::from_secs(5));
}
