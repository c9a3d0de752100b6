//! The bridge tests' MQTT clients, on the mqtt-client crate over a tokio runtime of the
//! test's own:
//!
//! - [`publish`]: numbered messages (the number in the payload's first ten bytes), paced to
//!   a rate, pipelined within a window, recording which ones the broker acknowledged
//!   (PUBACK / PUBCOMP); it stops at the first failure (the broker went away, or an MQTT 5
//!   acknowledgement other than Success: "no matching subscribers" means a lost message).
//! - [`Subscriber`]: a persistent session (Clean Start 0) that reconnects with the same
//!   client identifier and session state whenever its connection ends (the broker
//!   restarted), and records every message in arrival order. Its QoS 2 receive state
//!   travels across reconnects, as the protocol requires, so a resent QoS 2 message is not
//!   delivered twice by the client itself.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_client::mqtt_codec::{
    ProtocolVersion, QoS, ReasonCode, SubscribeProperties, Subscription, SubscriptionOptions,
    TopicFilter,
};
use mqtt_client::{Client, ConnectOptions, Connector, Incoming, Message, SessionState, TlsOptions};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How many publications the publisher keeps outstanding.
const WINDOW: usize = 100;

/// How long a client may take to connect or subscribe.
const PATIENCE: Duration = Duration::from_secs(20);

/// The runtime the clients run on (the test's own thread drives the processes).
pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A TCP connector to `address`.
pub(crate) fn connector(address: SocketAddr) -> Connector {
    Connector::from_url(&format!("mqtt://{address}"), &TlsOptions::default()).unwrap()
}

/// Message `n`'s payload: its number in ten digits, then `size - 10` bytes of filler.
pub(crate) fn payload(n: u32, size: usize) -> Bytes {
    let mut text = format!("{n:010}");
    text.extend(std::iter::repeat_n('x', size.saturating_sub(10)));
    Bytes::from(text)
}

/// The number in a payload of [`payload`]'s.
pub(crate) fn number(payload: &[u8]) -> Option<u32> {
    std::str::from_utf8(payload.get(..10)?).ok()?.parse().ok()
}

/// What a publisher should send.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    /// Its client identifier.
    pub(crate) client_id: String,
    /// Its protocol version.
    pub(crate) version: ProtocolVersion,
    /// The numbers to send, in order.
    pub(crate) numbers: std::ops::Range<u32>,
    /// The QoS of each.
    pub(crate) qos: QoS,
    /// Messages per second (the stream's pace, so that it spans what the test does meanwhile).
    pub(crate) rate: u32,
    /// Message `n`'s topic.
    pub(crate) topic: fn(u32) -> String,
    /// Message `n`'s payload size.
    pub(crate) size: fn(u32) -> usize,
    /// At most this many messages sent ahead of what a subscriber has received (its
    /// [`Subscriber::progress`]): a pace that follows the machine, not the clock alone.
    pub(crate) ahead: Option<(Arc<AtomicUsize>, usize)>,
}

/// A publisher at work: what it has sent and what the broker acknowledged so far.
#[derive(Debug)]
pub(crate) struct Publishing {
    /// The numbers acknowledged, in order of acknowledgement.
    acked: Arc<Mutex<Vec<u32>>>,
    /// How many have been handed to the connection.
    sent: Arc<AtomicU32>,
    /// Tells the task to send no more (and wait for what it has sent).
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The task; its output is why it stopped early, if it did.
    task: JoinHandle<Option<String>>,
}

/// What a publisher did.
#[derive(Debug)]
pub(crate) struct Published {
    /// The numbers acknowledged, in order of acknowledgement.
    pub(crate) acked: Vec<u32>,
    /// How many were handed to the connection.
    pub(crate) sent: u32,
    /// Why it stopped before the end, if it did.
    pub(crate) error: Option<String>,
}

impl Publishing {
    /// How many messages the broker has acknowledged so far.
    pub(crate) fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// The numbers acknowledged so far.
    pub(crate) fn acked_numbers(&self) -> Vec<u32> {
        self.acked.lock().unwrap().clone()
    }

    /// How many messages have been sent so far.
    pub(crate) fn sent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Tells the publisher to send no more than it has; [`Publishing::finish`] then waits
    /// for the acknowledgements of what it sent.
    pub(crate) fn stop_sending(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the publisher to finish (or fail).
    pub(crate) fn finish(self, rt: &Runtime, timeout: Duration) -> Published {
        let error = rt
            .block_on(async { tokio::time::timeout(timeout, self.task).await })
            .unwrap_or_else(|_| panic!("the publisher did not finish within {timeout:?}"))
            .unwrap();
        Published {
            acked: std::mem::take(&mut *self.acked.lock().unwrap()),
            sent: self.sent.load(Ordering::Relaxed),
            error,
        }
    }
}

/// Starts publishing `stream` to `address`; returns once connected.
pub(crate) fn publish(rt: &Runtime, address: SocketAddr, stream: Stream) -> Publishing {
    let options = ConnectOptions::new(stream.client_id.as_str()).version(stream.version);
    let (client, _) = rt
        .block_on(async {
            tokio::time::timeout(PATIENCE, Client::connect(&connector(address), &options)).await
        })
        .expect("the publisher did not connect in time")
        .expect("the publisher could not connect");
    start_publishing(rt, client, stream)
}

/// Starts publishing `stream` to `address` as soon as something there accepts the
/// connection (tried every millisecond), and returns at once: for a broker not started yet.
pub(crate) fn publish_when_up(rt: &Runtime, address: SocketAddr, stream: Stream) -> Publishing {
    let options = ConnectOptions::new(stream.client_id.as_str()).version(stream.version);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (task_acked, task_sent, task_stop) =
        (Arc::clone(&acked), Arc::clone(&sent), Arc::clone(&stop));
    let task = rt.spawn(async move {
        let connector = connector(address);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let client = loop {
            if let Ok((client, _)) = Client::connect(&connector, &options).await {
                break client;
            }
            if tokio::time::Instant::now() >= deadline {
                return Some(format!(
                    "nothing accepted the publisher within {PATIENCE:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        run_publisher(client, stream, task_acked, task_sent, task_stop).await
    });
    Publishing {
        acked,
        sent,
        stop,
        task,
    }
}

/// Runs `stream` on a connected client.
fn start_publishing(rt: &Runtime, client: Client, stream: Stream) -> Publishing {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = rt.spawn(run_publisher(
        client,
        stream,
        Arc::clone(&acked),
        Arc::clone(&sent),
        Arc::clone(&stop),
    ));
    Publishing {
        acked,
        sent,
        stop,
        task,
    }
}

async fn run_publisher(
    client: Client,
    stream: Stream,
    acked: Arc<Mutex<Vec<u32>>>,
    sent: Arc<AtomicU32>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Option<String> {
    let publisher = client.publisher();
    let mut outstanding = JoinSet::new();
    let start = tokio::time::Instant::now();
    let mut error = None;
    let settle = |done: Result<(u32, Result<ReasonCode, _>), _>| match done {
        Ok((n, Ok(ReasonCode::Success))) => {
            acked.lock().unwrap().push(n);
            None
        }
        // An MQTT 5 acknowledgement can say more: "no matching subscribers" (0x10) means
        // the bridge was not subscribed yet, and the message went nowhere.
        Ok((n, Ok(code))) => Some(format!("message {n}: acknowledged with {code:?}")),
        Ok((n, Err(e))) => Some(format!("message {n}: {e}")),
        Err(e) => Some(format!("publication task: {e}")),
    };
    for (i, n) in stream.numbers.clone().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(stream.rate));
        tokio::time::sleep_until(due).await;
        if let Some((progress, ahead)) = &stream.ahead {
            while i > progress.load(Ordering::Relaxed) + ahead && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        while outstanding.len() >= WINDOW {
            if let Some(done) = outstanding.join_next().await
                && let Some(e) = settle(done)
            {
                error.get_or_insert(e);
            }
        }
        if error.is_some() || stop.load(Ordering::Relaxed) {
            break;
        }
        let message =
            Message::new(&(stream.topic)(n), payload(n, (stream.size)(n)), stream.qos).unwrap();
        let published = publisher.publish(message);
        sent.fetch_add(1, Ordering::Relaxed);
        outstanding.spawn(async move { (n, published.await) });
    }
    while let Some(done) = outstanding.join_next().await {
        if let Some(e) = settle(done) {
            error.get_or_insert(e);
        }
    }
    let _ = client.disconnect().await;
    error
}

/// What a subscriber has received.
#[derive(Debug, Default, Clone)]
pub(crate) struct Received {
    /// The numbers of the numbered messages, in arrival order.
    pub(crate) numbers: Vec<u32>,
    /// How each of `numbers` came.
    pub(crate) arrivals: Vec<Arrival>,
    /// The distinct numbers among them.
    pub(crate) unique: HashSet<u32>,
    /// The latest payload on each topic.
    pub(crate) last: HashMap<String, Bytes>,
    /// The topics a live (not retained) message came on.
    live: HashSet<String>,
    /// Connections accepted (the first, then one per reconnect).
    pub(crate) connects: u32,
    /// Why each connection ended.
    pub(crate) endings: Vec<String>,
    /// Reconnects on which the server had no session for us.
    pub(crate) sessions_lost: u32,
}

/// How a numbered message arrived: where to look when one came twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// On which connection of the subscriber's (1: the first).
    pub(crate) connection: u32,
    /// The PUBLISH's DUP flag.
    pub(crate) dup: bool,
    /// Its packet identifier.
    pub(crate) packet_id: u16,
}

impl Received {
    /// Every arrival of the numbers that arrived more than once, in arrival order: the
    /// first `limit` of them.
    pub(crate) fn duplicate_arrivals(&self, limit: usize) -> Vec<(u32, Arrival)> {
        let mut count: HashMap<u32, u32> = HashMap::new();
        for n in &self.numbers {
            *count.entry(*n).or_default() += 1;
        }
        self.numbers
            .iter()
            .zip(&self.arrivals)
            .filter(|(n, _)| count.get(n).is_some_and(|c| *c > 1))
            .map(|(n, a)| (*n, *a))
            .take(limit)
            .collect()
    }
}

/// A subscriber with a persistent session that reconnects; see the module documentation.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// What it has received.
    received: Arc<Mutex<Received>>,
    /// How many distinct numbered messages it has received, for a publisher's pace.
    progress: Arc<AtomicUsize>,
    /// Tells it to stop.
    stop: watch::Sender<bool>,
    /// The task.
    task: Option<JoinHandle<()>>,
}

/// How a subscriber connects.
#[derive(Debug, Clone)]
pub(crate) struct SubscriberOptions {
    /// The server.
    pub(crate) address: SocketAddr,
    /// Its client identifier.
    pub(crate) client_id: String,
    /// Its protocol version.
    pub(crate) version: ProtocolVersion,
    /// The filter.
    pub(crate) filter: String,
    /// The subscription's QoS.
    pub(crate) qos: QoS,
    /// MQTT 5: the Receive Maximum to ask for (`None`: the client's default, 65,535).
    pub(crate) receive_maximum: Option<u16>,
}

impl Subscriber {
    /// Connects and subscribes; returns once the SUBACK has arrived.
    pub(crate) fn start(rt: &Runtime, how: SubscriberOptions) -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let (stop, stopped) = watch::channel(false);
        let (subscribed, on_suback) = oneshot::channel();
        let progress = Arc::new(AtomicUsize::new(0));
        let task = rt.spawn(run_subscriber(
            how.clone(),
            Arc::clone(&received),
            Arc::clone(&progress),
            stopped,
            subscribed,
        ));
        rt.block_on(async { tokio::time::timeout(PATIENCE, on_suback).await })
            .unwrap_or_else(|_| panic!("{} did not subscribe in time", how.client_id))
            .unwrap_or_else(|_| panic!("{} ended before subscribing", how.client_id));
        Self {
            received,
            progress,
            stop,
            task: Some(task),
        }
    }

    /// How many distinct numbered messages it has received, as a counter a publisher can
    /// follow ([`Stream::ahead`]).
    pub(crate) fn progress(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.progress)
    }

    /// What it has received so far.
    pub(crate) fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }

    /// How many distinct numbered messages it has received.
    pub(crate) fn unique(&self) -> usize {
        self.received.lock().unwrap().unique.len()
    }

    /// The last payload on `topic`, as text.
    pub(crate) fn last(&self, topic: &str) -> Option<String> {
        let received = self.received.lock().unwrap();
        received
            .last
            .get(topic)
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// Waits until `done` holds of what it has received; panics after `timeout`, saying
    /// what it was waiting for and what it had.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Received) -> bool,
    ) {
        if !self.wait_for(timeout, &done) {
            let received = self.received.lock().unwrap();
            panic!(
                "waited {timeout:?} for {what}; received {} messages ({} distinct), \
                 {} connects, {} sessions lost",
                received.numbers.len(),
                received.unique.len(),
                received.connects,
                received.sessions_lost
            );
        }
    }

    /// Waits until `done` holds of what it has received, at most `timeout`; whether it does.
    pub(crate) fn wait_for(&self, timeout: Duration, done: impl Fn(&Received) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.received.lock().unwrap()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Disconnects and returns everything it received.
    pub(crate) fn stop(mut self, rt: &Runtime) -> Received {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = rt.block_on(async { tokio::time::timeout(PATIENCE, task).await });
        }
        self.received()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run_subscriber(
    how: SubscriberOptions,
    received: Arc<Mutex<Received>>,
    progress: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
    subscribed: oneshot::Sender<()>,
) {
    let connector = connector(how.address);
    let mut options = ConnectOptions::new(how.client_id.as_str())
        .version(how.version)
        .clean_start(false)
        .keep_alive(10);
    if how.version.is_v5() {
        options = options.session_expiry(3600);
        options.receive_maximum = how.receive_maximum.and_then(std::num::NonZeroU16::new);
    }
    let subscription = Subscription {
        filter: TopicFilter::new(how.filter.as_str()).unwrap(),
        options: SubscriptionOptions::new(how.qos),
    };
    let mut subscribed = Some(subscribed);
    let mut state = SessionState::new();
    while !*stop.borrow() {
        let connected = tokio::select! {
            connected = Client::resume(&connector, &options, state) => connected,
            _ = stop.changed() => return,
        };
        let mut client = match connected {
            Ok((client, params)) => {
                {
                    let mut r = received.lock().unwrap();
                    r.connects += 1;
                    if r.connects > 1 && !params.session_present {
                        r.sessions_lost += 1;
                    }
                }
                if subscribed.is_some() || !params.session_present {
                    match client
                        .subscribe(vec![subscription.clone()], SubscribeProperties::default())
                        .await
                    {
                        Ok(codes) => assert!(
                            codes.iter().all(|c| !c.is_error()),
                            "{}: SUBACK {codes:?}",
                            how.client_id
                        ),
                        Err(_) => {
                            state = client.disconnect().await.state;
                            continue;
                        }
                    }
                    if let Some(subscribed) = subscribed.take() {
                        let _ = subscribed.send(());
                    }
                }
                client
            }
            Err((_, back)) => {
                // The broker is down (restarting): try again shortly.
                state = back;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                incoming = client.recv() => match incoming {
                    Ok(Incoming::Message(publish)) => {
                        let mut r = received.lock().unwrap();
                        let payload = publish.payload_bytes();
                        if let Some(n) = number(&payload) {
                            r.numbers.push(n);
                            let arrival = Arrival {
                                connection: r.connects,
                                dup: publish.dup,
                                packet_id: publish.qos.packet_id().map_or(0, |id| id.get()),
                            };
                            r.arrivals.push(arrival);
                            if r.unique.insert(n) {
                                progress.store(r.unique.len(), Ordering::Relaxed);
                            }
                        }
                        let topic = publish.topic().to_owned();
                        // A retained message sent at SUBSCRIBE can come after a live one
                        // that was published later (the broker queues it behind what was
                        // routed while it handled the SUBSCRIBE): once a live message is in,
                        // it is the newer.
                        let stale = publish.retain && r.live.contains(&topic);
                        if !publish.retain {
                            r.live.insert(topic.clone());
                        }
                        if !stale {
                            r.last.insert(topic, payload);
                        }
                    }
                    Ok(Incoming::Completed { .. }) => {}
                    Err(e) => {
                        received.lock().unwrap().endings.push(e.to_string());
                        break;
                    }
                },
                _ = stop.changed() => {
                    let _ = client.disconnect().await;
                    return;
                }
            }
        }
        state = client.disconnect().await.state;
    }
}
