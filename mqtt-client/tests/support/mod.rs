//! What the integration tests share: an in-process broker-core `Broker` on a loopback port
//! (transport-tcp on 127.0.0.1:0), connectors, a packet recorder, and small helpers.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{Broker, MqttConfig};
use mqtt_client::mqtt_codec::{
    Packet, ProtocolVersion, Publish, QoS, SubscribeProperties, Subscription, SubscriptionOptions,
    TopicFilter,
};
use mqtt_client::{
    Client, ConnectOptions, Connector, Direction, Endpoint, Incoming, PacketObserver, Scheme,
    TlsOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long one step may take before a test fails (generous: the machine is shared).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A broker on a free loopback port.
pub async fn broker(config: MqttConfig) -> SocketAddr {
    let listener = transport_tcp::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = Broker::new(config);
    tokio::spawn(transport_tcp::serve(
        listener,
        broker,
        std::future::pending::<()>(),
    ));
    addr
}

/// A plain TCP connector to `addr`.
pub fn tcp(addr: SocketAddr) -> Connector {
    Connector::new(
        Endpoint::new(Scheme::Mqtt, &addr.ip().to_string(), Some(addr.port())),
        &TlsOptions::default(),
    )
    .unwrap()
}

/// Options for `version` with client id `id`.
pub fn options(id: &str, version: ProtocolVersion) -> ConnectOptions {
    ConnectOptions::new(id).version(version)
}

/// Connects, panicking on failure.
pub async fn connect(connector: &Connector, options: &ConnectOptions) -> Client {
    let (client, _) = within(Client::connect(connector, options)).await.unwrap();
    client
}

/// Subscribes to one filter, expecting it granted.
pub async fn subscribe(client: &Client, filter: &str, qos: QoS) {
    let codes = within(client.subscribe(
        vec![Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options: SubscriptionOptions::new(qos),
        }],
        SubscribeProperties::default(),
    ))
    .await
    .unwrap();
    assert!(!codes[0].is_error(), "{filter}: {codes:?}");
}

/// The next message.
pub async fn next_message(client: &mut Client) -> Publish {
    loop {
        match within(client.recv()).await.unwrap() {
            Incoming::Message(publish) => return publish,
            Incoming::Completed { .. } => {}
        }
    }
}

/// `future`, or a panic after [`PATIENCE`].
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("no answer in time")
}

/// Records every packet a client sends and receives.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<(Direction, Packet)>>>);

impl Recorder {
    /// The observer to give [`Client::start`].
    pub fn observer(&self) -> PacketObserver {
        let log = Arc::clone(&self.0);
        Arc::new(move |direction, packet: &Packet| {
            log.lock().unwrap().push((direction, packet.clone()));
        })
    }

    /// The packets recorded so far.
    pub fn packets(&self) -> Vec<(Direction, Packet)> {
        self.0.lock().unwrap().clone()
    }

    /// The PUBLISH packets we sent.
    pub fn sent_publishes(&self) -> Vec<Publish> {
        self.packets()
            .into_iter()
            .filter_map(|(d, p)| match (d, p) {
                (Direction::Sent, Packet::Publish(p)) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// The most QoS 1/2 PUBLISH packets we had unacknowledged at once.
    pub fn max_in_flight(&self) -> usize {
        let (mut now, mut max) = (0usize, 0usize);
        for (direction, packet) in self.packets() {
            match (direction, packet) {
                (Direction::Sent, Packet::Publish(p)) if p.qos.packet_id().is_some() => {
                    now += 1;
                    max = max.max(now);
                }
                (Direction::Received, Packet::PubAck(_) | Packet::PubComp(_)) => {
                    now = now.saturating_sub(1);
                }
                (Direction::Received, Packet::PubRec(a)) if a.reason_code.is_error() => {
                    now = now.saturating_sub(1);
                }
                _ => {}
            }
        }
        max
    }
}

/// A TCP relay to `upstream` whose server-to-client direction can be black-holed (the
/// client's bytes still reach the broker, the broker's answers are dropped) and then cut.
pub struct Relay {
    pub addr: SocketAddr,
    pub blackhole: Arc<AtomicBool>,
    pub cut: Arc<Notify>,
}

impl Relay {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let blackhole = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Notify::new());
        let (hole, cut_rx) = (Arc::clone(&blackhole), Arc::clone(&cut));
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let up =
                tokio::spawn(
                    async move { tokio::io::copy(&mut client_read, &mut server_write).await },
                );
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = tokio::select! {
                    read = server_read.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    },
                    () = cut_rx.notified() => break,
                };
                if !hole.load(Ordering::SeqCst) && client_write.write_all(&buf[..n]).await.is_err()
                {
                    break;
                }
            }
            up.abort();
        });
        Self {
            addr,
            blackhole,
            cut,
        }
    }
}
