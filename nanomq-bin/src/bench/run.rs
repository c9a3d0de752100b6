//! One benchmark run, in phases: connect every client (paced by `--connect-rate`, at most
//! [`HANDSHAKES`] handshakes at a time; subscribers subscribe), start every publisher at the
//! same instant, publish for the duration, drain (wait for the messages still on their way,
//! bounded by `--drain`), stop and collect what each client counted.
//!
//! With `--offline`, subscribers disconnect once subscribed (leaving persistent sessions to
//! the broker) and reconnect to them when publishing ends; draining starts once every one
//! is back.
//!
//! Every wait is bounded, so a run ends even against a broker that stops answering.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::clients::{self, Live, PubOutcome, PubSpec, SubOutcome};
use super::histogram::Histogram;
use super::plan::Plan;
use super::rss;
use crate::client::ClientError;
use crate::client::args::ServerArgs;
use crate::client::conn::{Connection, connect};
use crate::client::transport::Connector;

/// Handshakes (TCP, TLS, CONNECT) in progress at once.
const HANDSHAKES: usize = 128;
/// How long one client may take to connect (and subscribe).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long clients may take to finish after being told to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Draining ends early when nothing has arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// Where a run is, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Clients are connecting.
    Connecting,
    /// Publishing (or holding connections) since this instant.
    Running(Instant),
    /// Waiting for the last messages.
    Draining,
    /// Finished.
    Done,
}

/// How the connections went.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectStats {
    /// Connections attempted.
    pub(crate) requested: u64,
    /// Connections accepted.
    pub(crate) connected: u64,
    /// CONNECT to CONNACK (and SUBACK for subscribers), in nanoseconds.
    pub(crate) latency: Histogram,
    /// From the first attempt to the last CONNACK.
    pub(crate) elapsed: Duration,
    /// Why connections failed: the first few reasons.
    pub(crate) errors: Vec<String>,
}

/// Resident memory of the `--rss-pid` process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RssFigures {
    /// The process.
    pub(crate) pid: u32,
    /// Before the first connection, KiB.
    pub(crate) before_kib: u64,
    /// With every connection up (or at the end of publishing), KiB.
    pub(crate) after_kib: u64,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// The connection phase.
    pub(crate) connect: ConnectStats,
    /// Per publisher, by index.
    pub(crate) publishers: Vec<PubOutcome>,
    /// Per subscriber, by index.
    pub(crate) subscribers: Vec<SubOutcome>,
    /// Idle connections that broke.
    pub(crate) idle_errors: Vec<String>,
    /// When publishing (or holding) started.
    pub(crate) started: Option<Instant>,
    /// When the run stopped.
    pub(crate) stopped: Option<Instant>,
    /// Resident memory of the process named by `--rss-pid`.
    pub(crate) rss: Option<RssFigures>,
}

/// What one client task ends with.
enum Outcome {
    /// A publisher.
    Pub(usize, PubOutcome),
    /// A subscriber.
    Sub(usize, SubOutcome),
    /// An idle connection.
    Idle(Result<(), String>),
    /// A client that never connected.
    Failed,
}

/// What a client reports once connected (or not).
enum Ready {
    /// Connected (and subscribed) after this long.
    Up(Duration),
    /// Could not connect.
    Failed(String),
}

/// The role of a client.
#[derive(Debug, Clone, Copy)]
enum Role {
    Pub(usize),
    Sub(usize),
    Idle(usize),
}

/// Runs `plan`; `phase` tells the progress line where the run is.
pub(crate) async fn run(
    plan: Arc<Plan>,
    live: Arc<Live>,
    phase: watch::Sender<Phase>,
) -> Result<Results, ClientError> {
    let connector = Arc::new(Connector::new(
        plan.server.endpoint.clone(),
        &plan.server.tls,
    )?);
    let mut results = Results::default();
    let rss_before = plan
        .rss_pid
        .and_then(|pid| rss::read_kib(pid).map(|kib| (pid, kib)));

    let roles: Vec<Role> = (0..plan.subscribers.len())
        .map(Role::Sub)
        .chain((0..plan.publishers.len()).map(Role::Pub))
        .chain((0..plan.idle).map(Role::Idle))
        .collect();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(None::<Instant>);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (resume_tx, resume_rx) = watch::channel(false);
    let (resumed_tx, mut resumed_rx) = mpsc::unbounded_channel();
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
    let first_attempt = Instant::now();
    let mut publishers = JoinSet::new();
    let mut others = JoinSet::new();
    for (k, role) in roles.iter().enumerate() {
        let slot = plan
            .connect_interval
            .map(|interval| first_attempt + interval.mul_f64(k as f64));
        let task = client_task(ClientContext {
            plan: Arc::clone(&plan),
            live: Arc::clone(&live),
            connector: Arc::clone(&connector),
            handshakes: Arc::clone(&handshakes),
            ready: ready_tx.clone(),
            start: start_rx.clone(),
            stop: stop_rx.clone(),
            resume: resume_rx.clone(),
            resumed: match role {
                Role::Sub(_) if plan.offline.is_some() => Some(resumed_tx.clone()),
                _ => None,
            },
            role: *role,
            slot,
        });
        match role {
            Role::Pub(_) => publishers.spawn(task),
            Role::Sub(_) | Role::Idle(_) => others.spawn(task),
        };
    }
    drop(ready_tx);
    drop(resumed_tx);

    // Each report comes within its pacing slot plus the connect timeout.
    results.connect.requested = roles.len() as u64;
    // Every client reports exactly once (the senders live on in the client tasks, so the
    // channel does not close).
    for _ in 0..roles.len() {
        let Some(ready) = ready_rx.recv().await else {
            break;
        };
        match ready {
            Ready::Up(took) => {
                results.connect.connected += 1;
                results
                    .connect
                    .latency
                    .record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
            Ready::Failed(why) => {
                if results.connect.errors.len() < 5 {
                    results.connect.errors.push(why);
                }
            }
        }
    }
    results.connect.elapsed = first_attempt.elapsed();

    let start = Instant::now();
    results.started = Some(start);
    start_tx.send_replace(Some(start));
    phase.send_replace(Phase::Running(start));

    if plan.idle > 0 && rss_before.is_some() {
        // Let the broker settle before reading its memory (and only then: a `conn` run
        // that holds its connections for less than this, as a connect storm's batches do,
        // is not held longer).
        tokio::time::sleep(Duration::from_secs(1)).await;
        results.rss = rss_after(rss_before);
    }

    if publishers.is_empty() {
        tokio::time::sleep_until(start + plan.duration).await;
    } else {
        let mut outcomes = Vec::new();
        while let Some(done) = publishers.join_next().await {
            if let Ok(Outcome::Pub(i, outcome)) = done {
                outcomes.push((i, outcome));
            }
        }
        outcomes.sort_by_key(|(i, _)| *i);
        results.publishers = outcomes.into_iter().map(|(_, o)| o).collect();
        phase.send_replace(Phase::Draining);
        if plan.offline.is_some() {
            // Each offline subscriber reports once, back or not, and drops its sender; those
            // that never connected dropped theirs already.
            resume_tx.send_replace(true);
            let deadline = Instant::now() + results.connect.elapsed + CONNECT_TIMEOUT;
            while let Ok(Some(())) = tokio::time::timeout_at(deadline, resumed_rx.recv()).await {}
        }
        drain(&plan, &live, &results.publishers).await;
    }
    if results.rss.is_none() {
        results.rss = rss_after(rss_before);
    }
    results.stopped = Some(Instant::now());
    stop_tx.send_replace(true);

    let mut subscribers = Vec::new();
    let collect = async {
        while let Some(done) = others.join_next().await {
            match done {
                Ok(Outcome::Sub(i, outcome)) => subscribers.push((i, outcome)),
                Ok(Outcome::Idle(Err(e))) if results.idle_errors.len() < 5 => {
                    results.idle_errors.push(e);
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(STOP_TIMEOUT, collect).await.is_err() {
        others.abort_all();
    }
    subscribers.sort_by_key(|(i, _)| *i);
    results.subscribers = subscribers.into_iter().map(|(_, o)| o).collect();
    phase.send_replace(Phase::Done);
    Ok(results)
}

/// The RSS now, with the figure from before.
fn rss_after(before: Option<(u32, u64)>) -> Option<RssFigures> {
    let (pid, before_kib) = before?;
    Some(RssFigures {
        pid,
        before_kib,
        after_kib: rss::read_kib(pid)?,
    })
}

/// Waits until every expected message arrived, nothing arrived for [`DRAIN_IDLE`], or
/// `--drain` passed.
async fn drain(plan: &Plan, live: &Live, publishers: &[PubOutcome]) {
    let expected: u64 = plan
        .routes
        .iter()
        .flatten()
        .filter_map(|&p| publishers.get(p as usize))
        .map(|p| p.sent)
        .sum();
    let deadline = Instant::now() + plan.drain;
    let mut last = Live::get(&live.received);
    let mut last_change = Instant::now();
    while Live::get(&live.unique) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Live::get(&live.received);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= DRAIN_IDLE {
            break;
        }
    }
}

/// What a client task needs.
struct ClientContext {
    plan: Arc<Plan>,
    live: Arc<Live>,
    connector: Arc<Connector>,
    handshakes: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Ready>,
    start: watch::Receiver<Option<Instant>>,
    stop: watch::Receiver<bool>,
    /// Turns true when offline subscribers should reconnect.
    resume: watch::Receiver<bool>,
    /// Where an offline subscriber reports that it is back (or could not be).
    resumed: Option<mpsc::UnboundedSender<()>>,
    role: Role,
    /// When to connect (`None`: now).
    slot: Option<Instant>,
}

/// One client, from connecting to its outcome.
async fn client_task(mut cx: ClientContext) -> Outcome {
    if let Some(slot) = cx.slot {
        tokio::time::sleep_until(slot).await;
    }
    let plan = Arc::clone(&cx.plan);
    let (role_char, index) = match cx.role {
        Role::Pub(i) => ('p', i),
        Role::Sub(i) => ('s', i),
        Role::Idle(i) => ('c', i),
    };
    let session = match cx.role {
        Role::Sub(_) => plan.offline.map(Session::Offline),
        Role::Pub(_) | Role::Idle(_) => None,
    };
    let packet = connect_packet(
        &plan.server_args,
        plan.credentials(role_char, index),
        plan.client_id(role_char, index),
        session,
    );
    let (connected, took) = {
        let _permit = cx.handshakes.acquire().await;
        // The handshake's own time, not the wait for a turn.
        let began = Instant::now();
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut conn = connect(&cx.connector, &packet?).await?;
            if let Role::Sub(i) = cx.role {
                if let Some(filter) = plan.subscribers.get(i) {
                    clients::subscribe(&mut conn, filter, plan.qos).await?;
                }
                if session.is_some() {
                    clients::disconnect(conn).await?;
                    return Ok(None);
                }
            }
            Ok::<_, ClientError>(Some(conn))
        })
        .await
        .unwrap_or(Err(ClientError::Timeout(CONNECT_TIMEOUT)));
        (connected, began.elapsed())
    };
    let conn = match connected {
        Ok(conn) => conn,
        Err(e) => {
            Live::add(&cx.live.connect_failed, 1);
            let _ = cx.ready.send(Ready::Failed(e.to_string()));
            return Outcome::Failed;
        }
    };
    Live::add(&cx.live.connected, 1);
    let _ = cx.ready.send(Ready::Up(took));
    let keepalive = plan.server_args.keepalive;
    let conn = match conn {
        Some(conn) => conn,
        // An offline subscriber: back to its session once publishing ends.
        None => {
            let resumed = resume(&mut cx, index).await;
            if let Some(tx) = cx.resumed.take() {
                let _ = tx.send(());
            }
            match resumed {
                Ok(conn) => conn,
                Err(e) => {
                    Live::add(&cx.live.lost_connections, 1);
                    let outcome = clients::SubOutcome {
                        error: Some(e.to_string()),
                        ..Default::default()
                    };
                    return Outcome::Sub(index, outcome);
                }
            }
        }
    };
    match cx.role {
        Role::Pub(i) => {
            let Ok(start) = cx.start.wait_for(Option::is_some).await.map(|s| *s) else {
                return Outcome::Failed;
            };
            let start = start.unwrap_or_else(Instant::now);
            let stop = start + plan.duration;
            let Some(topic) = plan.publishers.get(i) else {
                return Outcome::Failed;
            };
            let spec = PubSpec {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                topic: topic.clone(),
                qos: plan.qos,
                size: plan.size,
                count: plan.count,
                interval: plan.interval,
                inflight: plan.inflight,
                keepalive,
            };
            let outcome =
                clients::publish(conn, spec, &cx.live, start, stop, stop + plan.drain).await;
            Outcome::Pub(i, outcome)
        }
        Role::Sub(i) => Outcome::Sub(
            i,
            clients::receive(conn, &cx.live, cx.stop, keepalive).await,
        ),
        Role::Idle(_) => Outcome::Idle(
            clients::idle(conn, &cx.live, cx.stop, keepalive)
                .await
                .map_err(|e| e.to_string()),
        ),
    }
}

/// Waits for the signal to resume, then reconnects offline subscriber `index` to its session.
async fn resume(cx: &mut ClientContext, index: usize) -> Result<Connection, ClientError> {
    if cx.resume.wait_for(|resume| *resume).await.is_err() {
        return Err(ClientError::Closed);
    }
    let plan = &cx.plan;
    let packet = connect_packet(
        &plan.server_args,
        plan.credentials('s', index),
        plan.client_id('s', index),
        Some(Session::Resume),
    )?;
    let _permit = cx.handshakes.acquire().await;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect(&cx.connector, &packet))
        .await
        .unwrap_or(Err(ClientError::Timeout(CONNECT_TIMEOUT)))?;
    if !conn.connack.session_present {
        return Err(ClientError::Protocol(
            "the broker did not resume the offline subscriber's session".to_owned(),
        ));
    }
    Ok(conn)
}

/// A subscriber's persistent session (`--offline`).
#[derive(Debug, Clone, Copy)]
enum Session {
    /// Connecting to subscribe and go offline: Clean Start 0, and (MQTT 5) this Session
    /// Expiry Interval.
    Offline(u32),
    /// Back to the session: Clean Start 0, and (MQTT 5) no expiry, so that the session ends
    /// with the run.
    Resume,
}

/// The CONNECT of a benchmark client: clean start (or a persistent `session`), its
/// `credentials` (user name, password) and the flags' keep alive.
fn connect_packet(
    args: &ServerArgs,
    (username, password): (Option<String>, Option<String>),
    client_id: String,
    session: Option<Session>,
) -> Result<mqtt_codec::Connect, ClientError> {
    let id = mqtt_codec::ClientId::new(client_id)
        .map_err(|e| ClientError::Usage(format!("invalid client id: {e}")))?;
    let mut connect = mqtt_codec::Connect::new(args.version, id);
    connect.keep_alive = args.keepalive;
    connect.username = username.map(Into::into);
    connect.password = password.map(bytes::Bytes::from);
    if let Some(session) = session {
        connect.clean_start = false;
        if let (Session::Offline(expiry), true) = (session, args.version.is_v5()) {
            connect.properties.session_expiry_interval = Some(expiry);
        }
    }
    Ok(connect)
}
