//! A reconnect storm: the bridge's upstream, a second `nanomq` with persistence on, is
//! restarted again and again on the same port and store, each time with other `[mqtt]`
//! limits (`max_inflight`: the Receive Maximum of its CONNACK, 1 to 65,535;
//! `max_packet_size`; `max_topic_alias`), while a publisher streams numbered QoS 1 messages
//! to the edge, every 25th one too large for the small packet limit. A subscriber with a
//! persistent session on the upstream (kept across its restarts by its store; `sync =
//! "periodic"` is enough, a graceful stop makes everything durable first) receives them.
//! Between two restarts everything the edge has acknowledged so far must arrive.
//!
//! Checked, for an MQTT 5 and an MQTT 3.1.1 bridge:
//! - every attempt uses its own CONNACK's limits: the bridge logs each attempt's Receive
//!   Maximum, Maximum Packet Size and Topic Alias Maximum, which must be that restart's; no
//!   attempt ends in a protocol error (the upstream closes a connection that exceeds its
//!   Receive Maximum, packet size or topic aliases), only in the restarts;
//! - nothing is lost: every message the edge acknowledged reaches the subscriber, except a
//!   too-large one the bridge dropped under a small limit, which it logs (with its topic) and
//!   counts instead of sending; no small message is dropped;
//! - the bridge leaves nothing unacknowledged in its local session: restarted on its store
//!   after the storm, the edge sends nothing again before a marker published after the
//!   restart (a completion the bridge lost at a reconnect used to leave its message there,
//!   holding a place in the bridge's local window for good);
//! - the edge's resident memory after the last restarts is that after the first few.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod bridge_support;
mod e2e;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use bridge_support::clients::{Stream, Subscriber, SubscriberOptions, publish, runtime};
use bridge_support::tally::Tally;
use bridge_support::{Edge, free_port, wait_link, watch_link};
use e2e::{Broker, report, scratch_dir};
use mqtt_client::mqtt_codec::{ProtocolVersion, QoS};

/// How many times the upstream starts (the last start stays up for the final delivery).
const STARTS: usize = 50;

/// After how many starts the edge's resident memory is first measured (warmed up).
const WARM: usize = 4;

/// How many starts' measurements of resident memory make one figure (their median).
const RSS_WINDOW: usize = 5;

/// The publisher's pace (messages per second).
const RATE: u32 = 1_000;

/// At most this many messages ahead of the subscriber: on a machine too loaded to forward
/// the publisher's pace, the backlog (and so each drain, and the memory it takes) stays
/// bounded instead of growing from start to start. Well above what one restart holds back
/// at this pace (a few hundred).
const AHEAD: usize = 3_000;

/// How many new messages the subscriber must get during each start: every attempt carries
/// traffic.
const PROGRESS: usize = 60;

/// The upstream's small `max_packet_size`: the small messages (about 90 bytes) fit, the large
/// ones do not.
const SMALL_PACKET: u32 = 256;

/// The large messages' payload size.
const LARGE: usize = 600;

/// The upstream's `max_mqueue_len`: room for everything. With the default of 2048, under
/// load (and a Receive Maximum of 1 to 3 towards the subscriber, which a 3.1.1 bridge does
/// not know of and so does not slow down for) the subscriber's queue filled, and at the
/// upstream's graceful stop the messages parked behind it went by `mqueue_drop` (logged by
/// the upstream: "queue of an offline session full"): the upstream's own policy, not the
/// bridge losing them.
const UPSTREAM_QUEUE: u32 = 1_000_000;

/// The number of the marker published after the edge's restart.
const MARKER: u32 = 4_000_000_000;

/// The bridge's `max_inflight`: local messages it holds unacknowledged upstream. Small, so
/// that a message whose completion the bridge loses at a reconnect (and so never
/// acknowledges locally) soon stalls it: each such message keeps its place in the window.
const LOCAL_WINDOW: u16 = 8;

/// The bridge's longest wait between attempts: short, since the upstream is down only
/// for the moment of its restart (the bridge's default here would be 300 ms).
const BACKOFF_MAX: &str = "50ms";

/// How long one step (a start, a link change, progress) may take.
const STEP: Duration = Duration::from_secs(20);

/// Whether message `n` is a large one.
fn is_large(n: u32) -> bool {
    n % 25 == 24
}

/// The upstream's limits for start `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    /// `mqtt.max_inflight`: its Receive Maximum.
    max_inflight: u16,
    /// `mqtt.max_packet_size` (`None`: the default).
    max_packet_size: Option<u32>,
    /// `mqtt.max_topic_alias`.
    max_topic_alias: u16,
}

impl Limits {
    fn of(i: usize, small_packets: bool) -> Self {
        const INFLIGHT: [u16; 9] = [1, 2, 65_535, 3, 20, 7, 1_000, 100, 5];
        const ALIASES: [u16; 5] = [0, 1, 2, 10, 65_535];
        Self {
            max_inflight: INFLIGHT[i % INFLIGHT.len()],
            // Never the last start's: it delivers what is left.
            max_packet_size: (small_packets && i % 3 == 1 && i + 1 < STARTS)
                .then_some(SMALL_PACKET),
            max_topic_alias: ALIASES[i % ALIASES.len()],
        }
    }

    /// The upstream's configuration with these limits.
    fn config(&self, port: u16, store: &Path) -> String {
        let packet = self
            .max_packet_size
            .map_or_else(String::new, |size| format!("max_packet_size = {size}\n"));
        format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:{port}\"\n\n\
             [mqtt]\nmax_inflight = {}\nmax_topic_alias = {}\nmax_mqueue_len = {UPSTREAM_QUEUE}\n{packet}\n\
             [persistence]\nenabled = true\npath = \"{}\"\nsync = \"periodic\"\n\n\
             [log]\nlevel = \"info\"\nto = \"console\"\n",
            self.max_inflight,
            self.max_topic_alias,
            store.display()
        )
    }
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split_whitespace().next()
}

/// The numbers of the large messages the edge logged as dropped.
fn dropped(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("not forwarded; dropped"))
        .filter_map(|l| {
            field(l, "topic")?
                .strip_prefix("sensors/big/")?
                .parse()
                .ok()
        })
        .collect()
}

/// Why each attempt ended, as the edge logged it, counted.
fn endings(log: &str) -> BTreeMap<String, usize> {
    let mut endings = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("bridge disconnected")) {
        let error = line.split_once(" error=").map_or("?", |(_, e)| e).trim();
        *endings.entry(error.to_owned()).or_insert(0) += 1;
    }
    endings
}

fn storm(name: &str, proto_ver: u8) {
    let started = Instant::now();
    let v5 = proto_ver == 5;
    let rt = runtime();
    let port = free_port();
    let store_dir = scratch_dir(&format!("{name}_store"));
    let store = store_dir.join("upstream.db");
    let upstream_address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut upstream = Some(Broker::start_with_config(
        &format!("{name}_up"),
        &Limits::of(0, v5).config(port, &store),
    ));
    let cloud = Subscriber::start(
        &rt,
        SubscriberOptions {
            address: upstream_address,
            client_id: "cloud-subscriber".to_owned(),
            version: ProtocolVersion::V5,
            filter: "sensors/#".to_owned(),
            qos: QoS::AtLeastOnce,
            receive_maximum: None,
        },
    );
    let edge_store = store_dir.join("edge.db");
    let edge_config = Edge {
        upstream: upstream_address,
        proto_ver,
        qos: 1,
        store: Some((&edge_store, "periodic")),
        max_inflight: Some(LOCAL_WINDOW),
        backoff_max: Some(BACKOFF_MAX),
    }
    .config();
    let edge = Broker::start_with_config(name, &edge_config);
    let link = watch_link(&rt, edge.address());
    let publishing = publish(
        &rt,
        edge.address(),
        Stream {
            client_id: "edge-publisher".to_owned(),
            version: ProtocolVersion::V5,
            numbers: 0..u32::MAX,
            qos: QoS::AtLeastOnce,
            rate: RATE,
            topic: |n| {
                if is_large(n) {
                    format!("sensors/big/{n}")
                } else {
                    format!("sensors/{}", n % 8)
                }
            },
            size: |n| if is_large(n) { LARGE } else { 64 },
            ahead: Some((cloud.progress(), AHEAD)),
        },
    );

    let mut rss = Vec::new();
    let mut connects_seen = 0;
    for i in 0..STARTS {
        let limits = Limits::of(i, v5);
        if upstream.is_none() {
            upstream = Some(Broker::start_with_config(
                &format!("{name}_up"),
                &limits.config(port, &store),
            ));
        }
        wait_link(&link, true);
        // The attempt's limits, as the bridge took them from this start's CONNACK (the log
        // line comes through a pipe, maybe after the state message).
        let deadline = Instant::now() + STEP;
        let connects = loop {
            let log = edge.log();
            let connects: Vec<String> = log
                .lines()
                .filter(|l| l.contains("bridge connected"))
                .map(str::to_owned)
                .collect();
            if connects.len() > connects_seen {
                break connects;
            }
            assert!(Instant::now() < deadline, "start {i}: no connection logged");
            std::thread::sleep(Duration::from_millis(5));
        };
        connects_seen = connects.len();
        let last = &connects[connects.len() - 1];
        let expected = if v5 {
            (
                limits.max_inflight.to_string(),
                limits.max_packet_size.unwrap_or(1024 * 1024).to_string(),
                limits.max_topic_alias.to_string(),
            )
        } else {
            // MQTT 3.1.1 CONNACKs say nothing: no limit known, no aliases.
            ("65535".to_owned(), u32::MAX.to_string(), "0".to_owned())
        };
        let seen = (
            field(last, "receive_maximum").unwrap_or("?").to_owned(),
            field(last, "maximum_packet_size").unwrap_or("?").to_owned(),
            field(last, "topic_alias_maximum").unwrap_or("?").to_owned(),
        );
        assert_eq!(seen, expected, "start {i} with {limits:?}: {last}");
        let before = cloud.unique();
        cloud.wait_until(STEP, &format!("progress during start {i}"), |r| {
            r.unique.len() >= before + PROGRESS
        });
        // Then everything the edge acknowledged so far arrives (or was dropped as too
        // large) before the next restart: nothing is lost at any restart, and the memory
        // measured here is with no backlog (the publisher goes on meanwhile).
        let acked: HashSet<u32> = publishing.acked_numbers().into_iter().collect();
        let deadline = Instant::now() + STEP;
        loop {
            let gone: HashSet<u32> = dropped(&edge.log()).into_iter().collect();
            let missing: Vec<u32> = {
                let r = cloud.received();
                let mut missing: Vec<u32> = acked
                    .iter()
                    .copied()
                    .filter(|n| !r.unique.contains(n) && !gone.contains(n))
                    .collect();
                missing.sort_unstable();
                missing
            };
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "start {i} with {limits:?}: {} acknowledged messages did not arrive: {:?}",
                missing.len(),
                missing.iter().take(20).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        rss.push(edge.rss_kib());
        if i + 1 < STARTS {
            upstream.take().unwrap().stop();
            wait_link(&link, false);
        }
    }
    // The edge's resident memory: the median of a few starts once warm, and of the last few.
    let median = |window: &[u64]| {
        let mut window = window.to_vec();
        window.sort_unstable();
        window[window.len() / 2]
    };
    let rss_warm = median(&rss[WARM..WARM + RSS_WINDOW]);
    let rss_last = median(&rss[STARTS - RSS_WINDOW..]);
    let storm_time = started.elapsed();

    publishing.stop_sending();
    let published = publishing.finish(&rt, STEP);
    assert_eq!(published.error, None, "the publisher failed");
    let log = edge.log();
    let dropped: HashSet<u32> = dropped(&log).into_iter().collect();
    let wanted: HashSet<u32> = published
        .acked
        .iter()
        .copied()
        .filter(|n| !dropped.contains(n))
        .collect();
    let complete = cloud.wait_for(STEP, |r| wanted.is_subset(&r.unique));
    // Nothing may be left unacknowledged in the bridge's local session once everything has
    // arrived: restarted, the edge would send it again. A marker published after the
    // restart comes after any such message (the session resends first), so whatever
    // arrives before it was held back.
    let arrived = cloud.received().numbers.len();
    drop(link);
    edge.stop();
    let edge = Broker::start_with_config(name, &edge_config);
    let marker = publish(
        &rt,
        edge.address(),
        Stream {
            client_id: "edge-marker".to_owned(),
            version: ProtocolVersion::V5,
            numbers: MARKER..MARKER + 1,
            qos: QoS::AtLeastOnce,
            rate: RATE,
            topic: |_| "sensors/marker".to_owned(),
            size: |_| 64,
            ahead: None,
        },
    )
    .finish(&rt, STEP);
    assert_eq!(marker.error, None, "the marker's publisher failed");
    cloud.wait_until(STEP, "the marker after the edge's restart", |r| {
        r.unique.contains(&MARKER)
    });
    let received = cloud.stop(&rt);
    let held: Vec<u32> = received.numbers[arrived..]
        .iter()
        .copied()
        .filter(|n| *n != MARKER)
        .collect();
    let numbers: Vec<u32> = received.numbers[..arrived].to_vec();
    let tally = Tally::of(&numbers, wanted.iter().copied());
    let large_acked = published.acked.iter().filter(|n| is_large(**n)).count();
    let endings = endings(&log);
    report(&format!(
        "{name}: {STARTS} starts of the upstream in {storm_time:.2?} ({:.0?} each); {} \
         messages acknowledged by the edge ({large_acked} large), {} received, {} \
         duplicates, {} missing; {} large ones dropped by the bridge under the {SMALL_PACKET}-byte \
         limit; attempts ended by {endings:?}; {} sent again after the edge's restart; edge RSS (median of {RSS_WINDOW} starts) \
         {rss_warm} KiB after {WARM} starts, {rss_last} KiB at the end (all: {rss:?}); total \
         {:.2?}",
        storm_time / STARTS as u32,
        published.acked.len(),
        tally.received,
        tally.duplicates,
        tally.missing.len(),
        dropped.len(),
        held.len(),
        started.elapsed()
    ));
    assert!(
        complete && tally.missing.is_empty(),
        "{} acknowledged messages never arrived: {:?}",
        tally.missing.len(),
        tally.missing_sample()
    );
    assert!(
        held.is_empty(),
        "the bridge never acknowledged {} messages locally that had reached the upstream \
         (sent again after the edge's restart): {:?}",
        held.len(),
        held.iter().take(40).collect::<Vec<_>>()
    );
    assert!(
        dropped.iter().all(|n| is_large(*n)),
        "small messages were dropped: {:?}",
        dropped
            .iter()
            .filter(|n| !is_large(**n))
            .collect::<Vec<_>>()
    );
    if v5 {
        assert!(
            !dropped.is_empty(),
            "no large message met a small limit: the storm did not test it"
        );
    } else {
        assert!(dropped.is_empty(), "a 3.1.1 bridge has no limit to drop by");
    }
    assert_eq!(
        received.sessions_lost, 0,
        "the upstream lost the subscriber's session"
    );
    for error in endings.keys() {
        let lower = error.to_lowercase();
        assert!(
            ["too large", "receive maximum", "alias", "protocol"]
                .iter()
                .all(|bad| !lower.contains(bad)),
            "an attempt broke its limits: {error}"
        );
    }
    // Measured: the MQTT 3.1.1 bridge stays within 0.5%; the MQTT 5 one, whose attempts get
    // Receive Maximums down to 1, within about 5% over 50 starts, memory that also comes back
    // down (with a Receive Maximum of 1 at every start it rose by 1.4 MB and fell back to
    // where it began). A leak of 50 KiB per reconnect would be 10% here.
    assert!(
        rss_last <= rss_warm + rss_warm / 10,
        "the edge's RSS grew from {rss_warm} KiB to {rss_last} KiB over the storm: {rss:?}"
    );
    edge.stop();
    if let Some(upstream) = upstream {
        upstream.stop();
    }
    let _ = std::fs::remove_dir_all(store_dir);
}

#[test]
fn an_mqtt5_bridge_through_a_reconnect_storm_respects_each_connack_and_loses_nothing() {
    storm("bridge_storm_v5", 5);
}

#[test]
fn an_mqtt311_bridge_through_a_reconnect_storm_loses_nothing() {
    storm("bridge_storm_v311", 4);
}
