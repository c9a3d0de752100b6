//! What one topic level of a deep filter costs in the subscription index, counted in live
//! heap bytes by an instrumented global allocator (alone in this binary, so no other test's
//! allocations are counted). The case the issue reported: one SUBSCRIBE of 15 filters of
//! 65,535 levels each.
//!
//! Runs on a thread with a large stack, so that an index that recurses per level still gets
//! measured here (deep_topics.rs is where recursion fails).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::alloc::System;

use broker_core::MqttConfig;
use mqtt_codec::*;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes per topic level after subscribing `filters` in one SUBSCRIBE.
async fn bytes_per_level(filters: Vec<String>) -> f64 {
    let config = MqttConfig {
        max_packet_size: 4 * 1024 * 1024,
        limits: broker_core::Limits {
            max_topic_levels: 65_535,
            max_topic_length: 65_535,
            ..broker_core::Limits::default()
        },
        ..MqttConfig::default()
    };
    let broker = broker(config);
    let mut client = Client::connect(&broker, ProtocolVersion::V5, "deep").await;
    let levels: usize = filters.iter().map(|f| f.split('/').count()).sum();
    let packet_id = client.next_pid();
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id,
        subscriptions: filters
            .iter()
            .map(|f| Subscription {
                filter: filter(f),
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            })
            .collect(),
        properties: SubscribeProperties::default(),
    });
    drop(filters);
    let region = Region::new(GLOBAL);
    client.send(subscribe).await;
    match client.recv().await {
        Some(Packet::SubAck(ack)) => assert_eq!(ack.reason_codes.len(), 15),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    settle().await;
    let change = region.change();
    let live = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    drop(client);
    settle().await;
    live / levels as f64
}

fn run(test: impl FnOnce() -> f64 + Send + 'static) -> f64 {
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_level_of_a_deep_filter_costs_little_memory() {
    let per_level = |make: fn(usize) -> String| {
        run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(bytes_per_level((0..15).map(make).collect()))
        })
    };
    // 15 filters, each a distinct first level then empty levels, 65,535 levels in all.
    let empty = per_level(|i| format!("{i:x}{}", "/".repeat(65_534)));
    // 15 filters of `a` levels (32,768: as deep as 65,535 bytes allow).
    let named = per_level(|i| format!("{i:x}{}", "/a".repeat(32_767)));
    println!("bytes per level: empty levels {empty:.1}, `a` levels {named:.1}");
    // The index used to cost about 700 bytes per level (a map per node, two subscriber
    // lists per node); a lean node, one box per level, is under 64.
    assert!(empty < 64.0, "{empty:.1} bytes per empty level");
    assert!(named < 64.0, "{named:.1} bytes per `a` level");
}
