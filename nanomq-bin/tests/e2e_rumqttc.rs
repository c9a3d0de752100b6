//! End to end with rumqttc (the Rust client of the rumqtt project), MQTT 3.1.1 (`rumqttc`)
//! and 5.0 (`rumqttc::v5`), against the real `nanomq` binary on an ephemeral loopback port.
//!
//! Covered, for each version: publish/subscribe at QoS 1 and 2 (every message delivered once,
//! in order, at its QoS; every publish acknowledged with PUBACK or PUBCOMP), and a persistent
//! session resumed after messages were queued for it. With MQTT 5 the session comes back
//! with a smaller Receive Maximum and Maximum Packet Size: rumqttc refuses an incoming packet
//! larger than the maximum it announced (the connection fails), so the oversize messages must
//! not be sent to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::Broker;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// Messages per topic in the publish/subscribe tests.
const COUNT: usize = 50;

/// What a client's event loop saw, whatever the protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// SUBACK, with the granted QoS of each filter (128 for a failure).
    SubAck(Vec<u8>),
    /// CONNACK.
    ConnAck { session_present: bool },
    /// An incoming PUBLISH.
    Publish(Msg),
    /// PUBACK for one of our QoS 1 publishes.
    PubAck,
    /// PUBCOMP for one of our QoS 2 publishes.
    PubComp,
    /// The event loop failed: the connection is gone.
    Error(String),
}

/// An incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    topic: String,
    qos: u8,
    dup: bool,
    payload: String,
}

/// The receiving end of a client's event loop task.
struct Events {
    rx: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
    /// Messages seen while waiting for something else.
    publishes: Vec<Msg>,
    pub_acks: usize,
    pub_comps: usize,
}

impl Events {
    fn new(rx: mpsc::UnboundedReceiver<Seen>, task: JoinHandle<()>) -> Self {
        Self {
            rx,
            task,
            publishes: Vec::new(),
            pub_acks: 0,
            pub_comps: 0,
        }
    }

    /// The next event, within `deadline`; panics naming `what` was awaited otherwise.
    async fn next(&mut self, what: &str, deadline: Instant) -> Seen {
        timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.rx.recv(),
        )
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the event loop ended before {what}"))
    }

    /// Records an event that nobody waited for specifically.
    fn record(&mut self, seen: Seen, what: &str) {
        match seen {
            Seen::Publish(msg) => self.publishes.push(msg),
            Seen::PubAck => self.pub_acks += 1,
            Seen::PubComp => self.pub_comps += 1,
            Seen::Error(e) => panic!("connection failed while waiting for {what}: {e}"),
            Seen::SubAck(_) | Seen::ConnAck { .. } => {}
        }
    }

    /// Waits for the next event that `wanted` picks, recording the others; panics on an
    /// event loop error or after [`WAIT`].
    async fn until<T>(&mut self, what: &str, wanted: impl Fn(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.next(what, deadline).await;
            if let Some(found) = wanted(&seen) {
                return found;
            }
            self.record(seen, what);
        }
    }

    /// Waits until `count` messages were received in all.
    async fn publishes(&mut self, count: usize) -> Vec<Msg> {
        let deadline = Instant::now() + WAIT;
        while self.publishes.len() < count {
            let what = format!("message {} of {count}", self.publishes.len() + 1);
            let seen = self.next(&what, deadline).await;
            self.record(seen, &what);
        }
        self.publishes.clone()
    }

    /// Waits until `q1` PUBACKs and `q2` PUBCOMPs arrived.
    async fn acks(&mut self, q1: usize, q2: usize) {
        let deadline = Instant::now() + WAIT;
        while self.pub_acks < q1 || self.pub_comps < q2 {
            let what = format!(
                "acknowledgements ({}/{q1} PUBACK, {}/{q2} PUBCOMP)",
                self.pub_acks, self.pub_comps
            );
            let seen = self.next(&what, deadline).await;
            self.record(seen, &what);
        }
    }

    /// Waits (a few seconds at most) for the event loop to end after a disconnect: the
    /// DISCONNECT has then been written and the connection closed.
    async fn closed(&mut self) {
        let _ = timeout(Duration::from_secs(5), async {
            while let Some(seen) = self.rx.recv().await {
                if let Seen::Error(_) = seen {
                    return;
                }
            }
        })
        .await;
    }

    /// Collects what else arrives within `quiet` (duplicates, strays).
    async fn settle(&mut self, quiet: Duration) -> Vec<Msg> {
        while let Ok(Some(seen)) = timeout(quiet, self.rx.recv()).await {
            match seen {
                Seen::Publish(msg) => self.publishes.push(msg),
                Seen::Error(e) => panic!("connection failed: {e}"),
                _ => {}
            }
        }
        self.publishes.clone()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The numbered payload of message `n` on `topic`.
fn payload(topic: &str, n: usize) -> String {
    format!("{topic}#{n:04}")
}

/// Asserts that `got` holds, for each `(topic, qos)`, exactly `numbers` in order at that QoS.
fn assert_streams(got: &[Msg], streams: &[(&str, u8, Vec<usize>)], what: &str) {
    let mut by_topic: BTreeMap<&str, Vec<&Msg>> = BTreeMap::new();
    for msg in got {
        by_topic.entry(msg.topic.as_str()).or_default().push(msg);
    }
    for (topic, qos, numbers) in streams {
        let msgs = by_topic.remove(topic).unwrap_or_default();
        let payloads: Vec<&str> = msgs.iter().map(|m| m.payload.as_str()).collect();
        let want: Vec<String> = numbers.iter().map(|&n| payload(topic, n)).collect();
        assert_eq!(payloads, want, "{what}: messages on {topic}");
        for msg in msgs {
            assert_eq!(msg.qos, *qos, "{what}: QoS of {msg:?}");
        }
    }
    assert!(
        by_topic.is_empty(),
        "{what}: unexpected messages {by_topic:?}"
    );
}

mod v4 {
    //! MQTT 3.1.1 with `rumqttc`.

    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};

    use super::*;

    pub(super) fn qos_u8(qos: QoS) -> u8 {
        qos as u8
    }

    /// A client connected to `broker`, its events, and whether a session was resumed.
    pub(super) async fn client(
        broker: &Broker,
        id: &str,
        clean: bool,
    ) -> (AsyncClient, Events, bool) {
        let address = broker.address();
        let mut options = MqttOptions::new(id, address.ip().to_string(), address.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean)
            .set_inflight(20);
        let (client, mut event_loop) = AsyncClient::new(options, 256);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let seen = match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish(Msg {
                        topic: p.topic.clone(),
                        qos: qos_u8(p.qos),
                        dup: p.dup,
                        payload: String::from_utf8_lossy(&p.payload).into_owned(),
                    }),
                    Ok(Event::Incoming(Packet::ConnAck(c))) => Seen::ConnAck {
                        session_present: c.session_present,
                    },
                    Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(
                        s.return_codes
                            .iter()
                            .map(|c| match c {
                                SubscribeReasonCode::Success(q) => qos_u8(*q),
                                SubscribeReasonCode::Failure => 128,
                            })
                            .collect(),
                    ),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(Event::Incoming(Packet::PubComp(_))) => Seen::PubComp,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Seen::Error(e.to_string()));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        let mut events = Events::new(rx, task);
        let session_present = events
            .until("CONNACK", |s| match s {
                Seen::ConnAck { session_present } => Some(*session_present),
                _ => None,
            })
            .await;
        (client, events, session_present)
    }

    pub(super) async fn subscribe(
        client: &AsyncClient,
        events: &mut Events,
        filters: &[(&str, QoS)],
    ) {
        for (filter, qos) in filters {
            client.subscribe(*filter, *qos).await.unwrap();
            let granted = events
                .until("SUBACK", |s| match s {
                    Seen::SubAck(codes) => Some(codes.clone()),
                    _ => None,
                })
                .await;
            assert_eq!(granted, [qos_u8(*qos)], "SUBACK for {filter}");
        }
    }
}

mod v5 {
    //! MQTT 5 with `rumqttc::v5`.

    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    use super::*;

    pub(super) fn qos_u8(qos: QoS) -> u8 {
        qos as u8
    }

    /// Connection settings beyond the defaults.
    #[derive(Debug, Clone, Copy, Default)]
    pub(super) struct Settings {
        pub(super) clean_start: bool,
        pub(super) session_expiry: Option<u32>,
        pub(super) receive_maximum: Option<u16>,
        pub(super) max_packet_size: Option<u32>,
    }

    /// A client connected to `broker`, its events, and whether a session was resumed.
    pub(super) async fn client(
        broker: &Broker,
        id: &str,
        settings: Settings,
    ) -> (AsyncClient, Events, bool) {
        let address = broker.address();
        let mut options = MqttOptions::new(id, address.ip().to_string(), address.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(settings.clean_start)
            .set_session_expiry_interval(settings.session_expiry)
            .set_receive_maximum(settings.receive_maximum)
            .set_max_packet_size(settings.max_packet_size)
            .set_outgoing_inflight_upper_limit(20);
        let (client, mut event_loop) = AsyncClient::new(options, 256);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let seen = match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish(Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        qos: qos_u8(p.qos),
                        dup: p.dup,
                        payload: String::from_utf8_lossy(&p.payload).into_owned(),
                    }),
                    Ok(Event::Incoming(Packet::ConnAck(c))) => Seen::ConnAck {
                        session_present: c.session_present,
                    },
                    Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(
                        s.return_codes
                            .iter()
                            .map(|c| match c {
                                SubscribeReasonCode::Success(q) => qos_u8(*q),
                                _ => 128,
                            })
                            .collect(),
                    ),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(Event::Incoming(Packet::PubComp(_))) => Seen::PubComp,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Seen::Error(e.to_string()));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        let mut events = Events::new(rx, task);
        let session_present = events
            .until("CONNACK", |s| match s {
                Seen::ConnAck { session_present } => Some(*session_present),
                _ => None,
            })
            .await;
        (client, events, session_present)
    }

    pub(super) async fn subscribe(
        client: &AsyncClient,
        events: &mut Events,
        filters: &[(&str, QoS)],
    ) {
        for (filter, qos) in filters {
            client.subscribe(*filter, *qos).await.unwrap();
            let granted = events
                .until("SUBACK", |s| match s {
                    Seen::SubAck(codes) => Some(codes.clone()),
                    _ => None,
                })
                .await;
            assert_eq!(granted, [qos_u8(*qos)], "SUBACK for {filter}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v4_publish_and_subscribe_at_qos_1_and_2() {
    use rumqttc::QoS;
    let broker = Broker::start("rumqttc-v4-pubsub", "");
    let (sub, mut sub_events, _) = v4::client(&broker, "rumqttc-v4-sub", true).await;
    v4::subscribe(
        &sub,
        &mut sub_events,
        &[
            ("rumqttc/v4/q1", QoS::AtLeastOnce),
            ("rumqttc/v4/q2", QoS::ExactlyOnce),
        ],
    )
    .await;
    let (publisher, mut pub_events, _) = v4::client(&broker, "rumqttc-v4-pub", true).await;
    for n in 0..COUNT {
        for (topic, qos) in [
            ("rumqttc/v4/q1", QoS::AtLeastOnce),
            ("rumqttc/v4/q2", QoS::ExactlyOnce),
        ] {
            publisher
                .publish(topic, qos, false, payload(topic, n))
                .await
                .unwrap();
        }
    }
    pub_events.acks(COUNT, COUNT).await;
    sub_events.publishes(2 * COUNT).await;
    let got = sub_events.settle(Duration::from_millis(300)).await;
    let all: Vec<usize> = (0..COUNT).collect();
    assert_streams(
        &got,
        &[("rumqttc/v4/q1", 1, all.clone()), ("rumqttc/v4/q2", 2, all)],
        "rumqttc v4",
    );
    assert!(got.iter().all(|m| !m.dup), "{got:?}");
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_publish_and_subscribe_at_qos_1_and_2() {
    use rumqttc::v5::mqttbytes::QoS;
    let broker = Broker::start("rumqttc-v5-pubsub", "");
    let clean = v5::Settings {
        clean_start: true,
        ..v5::Settings::default()
    };
    let (sub, mut sub_events, _) = v5::client(&broker, "rumqttc-v5-sub", clean).await;
    v5::subscribe(
        &sub,
        &mut sub_events,
        &[
            ("rumqttc/v5/q1", QoS::AtLeastOnce),
            ("rumqttc/v5/q2", QoS::ExactlyOnce),
        ],
    )
    .await;
    let (publisher, mut pub_events, _) = v5::client(&broker, "rumqttc-v5-pub", clean).await;
    for n in 0..COUNT {
        for (topic, qos) in [
            ("rumqttc/v5/q1", QoS::AtLeastOnce),
            ("rumqttc/v5/q2", QoS::ExactlyOnce),
        ] {
            publisher
                .publish(topic, qos, false, payload(topic, n))
                .await
                .unwrap();
        }
    }
    pub_events.acks(COUNT, COUNT).await;
    sub_events.publishes(2 * COUNT).await;
    let got = sub_events.settle(Duration::from_millis(300)).await;
    let all: Vec<usize> = (0..COUNT).collect();
    assert_streams(
        &got,
        &[("rumqttc/v5/q1", 1, all.clone()), ("rumqttc/v5/q2", 2, all)],
        "rumqttc v5",
    );
    assert!(got.iter().all(|m| !m.dup), "{got:?}");
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
    broker.stop();
}

/// Messages queued for an offline session in the resume tests.
const QUEUED: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v4_persistent_session_gets_its_offline_queue() {
    use rumqttc::QoS;
    let broker = Broker::start("rumqttc-v4-resume", "max_mqueue_len = 2000");
    let filters = [
        ("rumqttc/v4/away/q1", QoS::AtLeastOnce),
        ("rumqttc/v4/away/q2", QoS::ExactlyOnce),
    ];
    let (sub, mut events, _) = v4::client(&broker, "rumqttc-v4-away", true).await;
    sub.disconnect().await.unwrap();
    events.closed().await;
    // Now the persistent session.
    let (sub, mut events, _) = v4::client(&broker, "rumqttc-v4-away", false).await;
    v4::subscribe(&sub, &mut events, &filters).await;
    sub.disconnect().await.unwrap();
    events.closed().await;

    let (publisher, mut pub_events, _) = v4::client(&broker, "rumqttc-v4-away-pub", true).await;
    for n in 0..QUEUED {
        let (topic, qos) = filters[n % 2];
        publisher
            .publish(topic, qos, false, payload(topic, n))
            .await
            .unwrap();
    }
    pub_events.acks(QUEUED / 2, QUEUED / 2).await;

    let (back, mut back_events, session_present) =
        v4::client(&broker, "rumqttc-v4-away", false).await;
    assert!(session_present, "the session was not resumed");
    back_events.publishes(QUEUED).await;
    let got = back_events.settle(Duration::from_millis(500)).await;
    let evens: Vec<usize> = (0..QUEUED).step_by(2).collect();
    let odds: Vec<usize> = (1..QUEUED).step_by(2).collect();
    assert_streams(
        &got,
        &[(filters[0].0, 1, evens), (filters[1].0, 2, odds)],
        "rumqttc v4 offline queue",
    );
    back.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_session_resumed_with_smaller_limits() {
    use rumqttc::v5::mqttbytes::QoS;
    let broker = Broker::start("rumqttc-v5-resume", "max_mqueue_len = 2000");
    let filters = [
        ("rumqttc/v5/away/q1", QoS::AtLeastOnce),
        ("rumqttc/v5/away/q2", QoS::ExactlyOnce),
    ];
    let first = v5::Settings {
        clean_start: true,
        session_expiry: Some(3600),
        receive_maximum: Some(100),
        max_packet_size: Some(64 * 1024),
    };
    let (sub, mut events, _) = v5::client(&broker, "rumqttc-v5-away", first).await;
    v5::subscribe(&sub, &mut events, &filters).await;
    sub.disconnect().await.unwrap();
    events.closed().await;

    let clean = v5::Settings {
        clean_start: true,
        ..v5::Settings::default()
    };
    let (publisher, mut pub_events, _) = v5::client(&broker, "rumqttc-v5-away-pub", clean).await;
    // Every tenth message of each stream is 400 bytes: larger than the 256 the client comes
    // back with.
    let oversize = |n: usize| (n / 2) % 10 == 9;
    for n in 0..QUEUED {
        let (topic, qos) = filters[n % 2];
        let mut body = payload(topic, n);
        if oversize(n) {
            body = format!("{body:x<400}");
        }
        publisher.publish(topic, qos, false, body).await.unwrap();
    }
    pub_events.acks(QUEUED / 2, QUEUED / 2).await;

    let back = v5::Settings {
        clean_start: false,
        session_expiry: Some(3600),
        receive_maximum: Some(5),
        max_packet_size: Some(256),
    };
    let (client, mut back_events, session_present) =
        v5::client(&broker, "rumqttc-v5-away", back).await;
    assert!(session_present, "the session was not resumed");
    let fits: Vec<usize> = (0..QUEUED).filter(|&n| !oversize(n)).collect();
    back_events.publishes(fits.len()).await;
    let got = back_events.settle(Duration::from_millis(500)).await;
    let evens: Vec<usize> = fits.iter().copied().filter(|n| n % 2 == 0).collect();
    let odds: Vec<usize> = fits.iter().copied().filter(|n| n % 2 == 1).collect();
    assert_streams(
        &got,
        &[(filters[0].0, 1, evens), (filters[1].0, 2, odds)],
        "rumqttc v5 offline queue under Receive Maximum 5 and Maximum Packet Size 256",
    );
    client.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
    broker.stop();
}
