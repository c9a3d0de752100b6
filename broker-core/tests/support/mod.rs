//! A minimal MQTT client over an in-memory pipe (`tokio::io::duplex`), built on mqtt-codec,
//! for driving the broker without sockets. Tests run with paused tokio time: waiting is free
//! and timers (keep alive, will delay, expiry) fire in virtual time.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker, MqttConfig, TransportInfo, TransportKind};
use bytes::{Bytes, BytesMut};
use mqtt_codec::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

pub fn broker(config: MqttConfig) -> Arc<Broker> {
    Broker::new(config)
}

pub fn topic(s: &str) -> TopicName {
    TopicName::new(s).unwrap()
}

pub fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).unwrap()
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub struct Client {
    pub version: ProtocolVersion,
    stream: DuplexStream,
    buf: BytesMut,
    decoder: Decoder,
    next_id: u16,
}

/// A CONNECT for `id` with clean start and keep alive 0 (no keep alive).
pub fn connect_packet(version: ProtocolVersion, id: &str) -> Connect {
    let mut c = Connect::new(version, ClientId::new(id).unwrap());
    c.keep_alive = 0;
    c
}

impl Client {
    /// Opens a connection to `broker` without sending anything.
    pub fn open(broker: &Arc<Broker>, version: ProtocolVersion) -> Self {
        Self::open_on(
            broker,
            version,
            TransportInfo::new(TransportKind::Memory, None),
        )
    }

    /// Opens a connection that the transport describes as `transport`.
    pub fn open_on(
        broker: &Arc<Broker>,
        version: ProtocolVersion,
        transport: TransportInfo,
    ) -> Self {
        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(Arc::clone(broker).serve_connection(server, transport));
        Self {
            version,
            stream: client,
            buf: BytesMut::new(),
            decoder: Decoder::with_version(version),
            next_id: 1,
        }
    }

    /// Connects with `connect` and returns the client and the CONNACK.
    pub async fn connect_with(broker: &Arc<Broker>, connect: Connect) -> (Self, ConnAck) {
        let mut client = Self::open(broker, connect.version);
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => (client, *ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects as `id` (clean start, no keep alive) and expects success.
    pub async fn connect(broker: &Arc<Broker>, version: ProtocolVersion, id: &str) -> Self {
        let (client, ack) = Self::connect_with(broker, connect_packet(version, id)).await;
        assert_eq!(ack.reason_code, ReasonCode::Success);
        client
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.encode(self.version, &mut out).unwrap();
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // A broken pipe here means the broker closed: the next `recv` reports it.
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet, or `None` if the broker closed the connection. Panics if nothing
    /// arrives within 60 s of (virtual) time.
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(Duration::from_secs(60), self.recv_inner())
            .await
            .expect("no packet from the broker within 60 s")
    }

    /// The next packet if one arrives within `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Packet> {
        tokio::time::timeout(wait, self.recv_inner())
            .await
            .ok()
            .flatten()
    }

    async fn recv_inner(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(packet);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub fn next_pid(&mut self) -> PacketId {
        let id = pid(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    pub async fn subscribe(&mut self, filter_str: &str, qos: QoS) {
        self.subscribe_with(filter_str, SubscriptionOptions::new(qos), None)
            .await;
    }

    pub async fn subscribe_with(
        &mut self,
        filter_str: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let packet_id = self.next_pid();
        let properties = SubscribeProperties {
            subscription_identifier: id.and_then(SubscriptionId::new),
            ..SubscribeProperties::default()
        };
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            subscriptions: vec![Subscription {
                filter: filter(filter_str),
                options,
            }],
            properties,
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.packet_id, packet_id);
                ack
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Subscribes to every filter in one SUBSCRIBE at `qos`; the SUBACK's reason codes.
    pub async fn subscribe_all(
        &mut self,
        filters: &[impl AsRef<str>],
        qos: QoS,
    ) -> Vec<ReasonCode> {
        let packet_id = self.next_pid();
        let subscriptions = filters
            .iter()
            .map(|f| Subscription {
                filter: filter(f.as_ref()),
                options: SubscriptionOptions::new(qos),
            })
            .collect();
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            subscriptions,
            properties: SubscribeProperties::default(),
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.packet_id, packet_id);
                ack.reason_codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS exchange.
    pub async fn publish(&mut self, topic_str: &str, payload: &[u8], qos: QoS, retain: bool) {
        let mut p = Publish::new(topic(topic_str), Bytes::copy_from_slice(payload));
        p.retain = retain;
        let id = self.next_pid();
        p.qos = PublishQoS::with_packet_id(qos, id);
        self.publish_packet(p).await;
    }

    pub async fn publish_packet(&mut self, p: Publish) {
        let qos = p.qos;
        self.send(Packet::Publish(p)).await;
        match qos {
            PublishQoS::AtMostOnce => {}
            PublishQoS::AtLeastOnce(id) => match self.recv().await {
                Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, id),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            PublishQoS::ExactlyOnce(id) => {
                match self.recv().await {
                    Some(Packet::PubRec(ack)) => assert_eq!(ack.packet_id, id),
                    other => panic!("expected PUBREC, got {other:?}"),
                }
                self.send(Packet::PubRel(Ack::new(id))).await;
                match self.recv().await {
                    Some(Packet::PubComp(ack)) => assert_eq!(ack.packet_id, id),
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
    }

    /// Receives a PUBLISH (panics on anything else).
    pub async fn expect_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Acknowledges a received PUBLISH as its QoS requires (QoS 2: PUBREC, PUBREL, PUBCOMP).
    pub async fn ack(&mut self, p: &Publish) {
        match p.qos {
            PublishQoS::AtMostOnce => {}
            PublishQoS::AtLeastOnce(id) => self.send(Packet::PubAck(Ack::new(id))).await,
            PublishQoS::ExactlyOnce(id) => {
                self.send(Packet::PubRec(Ack::new(id))).await;
                match self.recv().await {
                    Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, id),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(Ack::new(id))).await;
            }
        }
    }

    /// Sends DISCONNECT (normal) and waits for the broker to close.
    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::default())).await;
        while self.recv().await.is_some() {}
    }

    /// Drops the connection without DISCONNECT.
    pub fn drop_abruptly(self) {}

    /// Waits for the broker to close, returning the DISCONNECT it sent, if any.
    pub async fn expect_close(&mut self) -> Option<Disconnect> {
        let mut disconnect = None;
        while let Some(packet) = self.recv().await {
            match packet {
                Packet::Disconnect(d) => disconnect = Some(d),
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
        disconnect
    }
}

/// Lets spawned tasks run until nothing is left to do right now.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("broker-core-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
