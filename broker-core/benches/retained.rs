//! Finding the retained messages a filter matches, over 10,000 retained messages: the
//! linear scan the broker used to do (every message tested against the filter) against
//! `RetainedIndex`, in the same run so the ratio is measured. Filters: one that matches
//! nothing (the common case of a large SUBSCRIBE), one exact topic, one `+` level, and a
//! `#` over a tenth of the messages. Run with `cargo bench -p broker-core --bench retained`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use broker_core::{Message, RetainedIndex};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mqtt_codec::{QoS, TopicFilter, TopicName};

const RETAINED: usize = 10_000;

/// 10,000 topics `site/{0..10}/device/{0..1000}/state`.
fn messages() -> Vec<Arc<Message>> {
    (0..RETAINED)
        .map(|i| {
            let topic = format!("site/{}/device/{}/state", i % 10, i / 10);
            Arc::new(Message::new(
                TopicName::new(topic).unwrap(),
                Bytes::from_static(b"retained"),
                QoS::AtLeastOnce,
                true,
                None,
            ))
        })
        .collect()
}

/// The broker's former lookup: a map by topic, scanned in full for each filter.
fn scan(
    map: &HashMap<TopicName, Arc<Message>>,
    filter: &TopicFilter,
    now: Instant,
) -> Vec<Arc<Message>> {
    map.values()
        .filter(|m| filter.matches(&m.topic) && !m.is_expired(now))
        .cloned()
        .collect()
}

fn lookups(c: &mut Criterion) {
    let messages = messages();
    let map: HashMap<TopicName, Arc<Message>> = messages
        .iter()
        .map(|m| (m.topic.clone(), Arc::clone(m)))
        .collect();
    let mut index = RetainedIndex::new();
    for m in &messages {
        index.insert(Arc::clone(m));
    }
    let now = Instant::now();
    for (name, filter, expected) in [
        ("no_match", "other/3/device/+/state", 0),
        ("exact", "site/3/device/42/state", 1),
        ("plus", "site/3/device/+/state", 1000),
        ("hash", "site/7/#", 1000),
    ] {
        let filter = TopicFilter::new(filter).unwrap();
        assert_eq!(scan(&map, &filter, now).len(), expected);
        assert_eq!(
            index.matching(&filter, now, usize::MAX).live.len(),
            expected
        );
        let mut group = c.benchmark_group(format!("retained_{name}"));
        group.bench_function(BenchmarkId::from_parameter("linear_scan"), |b| {
            b.iter(|| scan(&map, black_box(&filter), now))
        });
        group.bench_function(BenchmarkId::from_parameter("index"), |b| {
            b.iter(|| index.matching(black_box(&filter), now, usize::MAX))
        });
        group.finish();
    }
}

criterion_group!(benches, lookups);
criterion_main!(benches);
