//! Churn in memory: thousands of persistent sessions with wills, subscriptions and queued
//! messages come, go (cleanly or abruptly) and expire; afterwards the heap holds what it held
//! before. Live bytes are counted by an instrumented global allocator, so this tells a leak
//! from memory an allocator merely keeps for reuse (which the end-to-end churn test, reading
//! the process's resident size, cannot).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::alloc::System;
use std::time::Duration;

use broker_core::MqttConfig;
use bytes::Bytes;
use mqtt_codec::*;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

async fn cycle(broker: &std::sync::Arc<broker_core::Broker>, n: usize) {
    let version = if n.is_multiple_of(2) {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V3_1_1
    };
    let mut c = connect_packet(version, &format!("churn-{n}"));
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(2);
    }
    c.will = Some(LastWill {
        topic: topic("churn/wills"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: n.is_multiple_of(4).then_some(1),
            ..WillProperties::default()
        },
    });
    let (mut client, _) = Client::connect_with(broker, c).await;
    client
        .subscribe(&format!("churn/{n}"), QoS::AtLeastOnce)
        .await;
    if n > 0 {
        client
            .publish(
                &format!("churn/{}", n - 1),
                b"queued",
                QoS::AtLeastOnce,
                false,
            )
            .await;
    }
    if n.is_multiple_of(3) {
        client.drop_abruptly();
    } else {
        client.disconnect().await;
    }
}

async fn churn(broker: &std::sync::Arc<broker_core::Broker>, range: std::ops::Range<usize>) {
    for n in range {
        cycle(broker, n).await;
    }
    // Every session expires (after 2 s), every will fires.
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn sessions_that_expire_leave_nothing_behind() {
    let config = MqttConfig {
        session_expiry_default: Some(Duration::from_secs(2)),
        ..MqttConfig::default()
    };
    let broker = broker(config);
    // Warm up: the runtime's timer wheel and the maps reach their working size.
    churn(&broker, 0..500).await;
    assert_eq!(broker.metrics().sessions, 0);
    let region = Region::new(GLOBAL);
    let n = 5_000;
    churn(&broker, 500..500 + n).await;
    assert_eq!(broker.metrics().sessions, 0);
    let change = region.change();
    // Reallocations are already counted in both totals.
    let net = change.bytes_allocated as i64 - change.bytes_deallocated as i64;
    let live = change.allocations as i64 - change.deallocations as i64;
    println!(
        "{n} cycles: {} allocations, {} bytes allocated; {net} bytes in {live} allocations still live",
        change.allocations, change.bytes_allocated
    );
    // Anything kept per session is a live allocation per session; the bytes allow for maps
    // that keep some of the capacity they grew to (60 KiB when this was written).
    assert!(
        live <= 16,
        "{live} allocations still live after every session expired"
    );
    assert!(
        net < 256 * 1024,
        "{net} bytes still allocated after every session expired"
    );
}
