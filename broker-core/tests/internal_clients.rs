//! Clients of the broker's own (a bridge's local session, `TransportInfo::internal`): let in
//! without the authenticators, allowed to publish their state under `$SYS`, owners of the
//! `$bridge/` client identifiers (a device cannot take a bridge's session and its queue), and
//! with a session queue of their own size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use broker_core::{AccessControl, MqttConfig, TransportInfo};
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

/// A persistent-session CONNECT for `id`.
fn persistent(version: ProtocolVersion, id: &str) -> Connect {
    let mut connect = connect_packet(version, id);
    connect.clean_start = false;
    if version.is_v5() {
        connect.properties.session_expiry_interval = Some(u32::MAX);
    }
    connect
}

async fn connack_on(
    broker: &std::sync::Arc<broker_core::Broker>,
    transport: TransportInfo,
    connect: Connect,
) -> (Client, ConnAck) {
    let mut client = Client::open_on(broker, connect.version, transport);
    client.send(Packet::Connect(Box::new(connect))).await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => (client, *ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn only_internal_clients_take_bridge_client_ids_and_they_skip_authentication() {
    let broker = broker(MqttConfig::default());
    broker.set_access(AccessControl::default().allow_anonymous(false));
    for version in [V5, V3_1_1] {
        let (_, ack) =
            Client::connect_with(&broker, connect_packet(version, "$bridge/cloud")).await;
        assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    }
    // Anonymous clients from outside are refused; the broker's own client is not.
    let (_, ack) = Client::connect_with(&broker, connect_packet(V5, "device")).await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    let (_, ack) = connack_on(
        &broker,
        TransportInfo::internal(10),
        persistent(V5, "$bridge/cloud"),
    )
    .await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[tokio::test(start_paused = true)]
async fn an_internal_client_may_publish_under_sys_and_others_may_not() {
    let broker = broker(MqttConfig::default());
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher
        .subscribe("$SYS/broker/connection/#", QoS::AtLeastOnce)
        .await;

    let mut device = Client::connect(&broker, V5, "device").await;
    device
        .publish(
            "$SYS/broker/connection/edge/state",
            b"1",
            QoS::AtMostOnce,
            false,
        )
        .await;
    assert_eq!(watcher.try_recv(Duration::from_millis(200)).await, None);

    let (mut bridge, ack) = connack_on(
        &broker,
        TransportInfo::internal(10),
        persistent(V5, "$bridge/b"),
    )
    .await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    bridge
        .publish(
            "$SYS/broker/connection/edge/state",
            b"1",
            QoS::AtLeastOnce,
            true,
        )
        .await;
    let p = watcher.expect_publish().await;
    assert_eq!(p.topic(), "$SYS/broker/connection/edge/state");
    assert_eq!(p.payload(), b"1");
}

#[tokio::test(start_paused = true)]
async fn an_internal_session_queues_up_to_its_own_limit_not_the_brokers() {
    let config = MqttConfig {
        max_mqueue_len: 10,
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let (mut bridge, _) = connack_on(
        &broker,
        TransportInfo::internal(500),
        persistent(V5, "$bridge/q"),
    )
    .await;
    bridge.subscribe("up/#", QoS::AtLeastOnce).await;
    bridge.disconnect().await;
    let (mut device, _) = Client::connect_with(&broker, persistent(V5, "device")).await;
    device.subscribe("up/#", QoS::AtLeastOnce).await;
    device.disconnect().await;

    let mut publisher = Client::connect(&broker, V5, "publisher").await;
    for i in 0..100_u32 {
        publisher
            .publish("up/n", i.to_string().as_bytes(), QoS::AtLeastOnce, false)
            .await;
    }
    // Back online: the bridge gets all 100, the device the broker's 10.
    let count = |mut client: Client| async move {
        let mut n = 0;
        while let Some(packet) = client.try_recv(Duration::from_millis(500)).await {
            if let Packet::Publish(p) = packet {
                client.ack(&p).await;
                n += 1;
            }
        }
        n
    };
    let (bridge, _) = connack_on(
        &broker,
        TransportInfo::internal(500),
        persistent(V5, "$bridge/q"),
    )
    .await;
    assert_eq!(count(bridge).await, 100);
    let (device, _) = Client::connect_with(&broker, persistent(V5, "device")).await;
    assert_eq!(count(device).await, 10);
}
