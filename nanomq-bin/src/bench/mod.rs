//! `nanomq bench`: a load generator in the spirit of emqtt-bench and `nanomq_cli bench`, built
//! on the same client layer as `nanomq pub`/`sub` (and so on mqtt-codec).
//!
//! Every message carries a [`stamp`] (publisher, sequence number, send time), so each one is
//! accounted for at the end: sent, acknowledged, received, lost, duplicated, out of order,
//! and its end-to-end latency.
//!
//! Modules:
//! - [`plan`]: the command line -> a [`plan::Plan`] (topology, topics, timing).
//! - [`run`]: the phases of a run (connect, start, publish, drain, stop).
//! - [`clients`]: publisher, subscriber and idle connections.
//! - [`stamp`], [`tracker`], [`histogram`]: what each message says and how it is counted.
//! - [`progress`]: the live line on standard error; [`report`]: the summary and JSON.
//! - [`rss`]: the broker's resident memory, for `conn`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mqtt_codec::QoS;
use tokio::sync::watch;

use crate::client::args::{ServerArgs, parse_qos};
use crate::client::error::{EXIT_NETWORK, EXIT_OK, EXIT_USAGE};

pub(crate) mod clients;
pub(crate) mod histogram;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod rss;
pub(crate) mod run;
pub(crate) mod stamp;
pub(crate) mod tracker;

/// What `nanomq bench --help` adds after the options.
pub(crate) const AFTER_HELP: &str = "\
SCENARIOS (-c is the number of clients of the varying side):
  pub       -c publishers on -t (default bench/%i)
  sub       -c subscribers on -F or -t (default bench/#), for --duration
  conn      -c connections that connect (at --connect-rate) and stay, for --duration
  fanin     -c publishers -> 1 subscriber
  fanout    1 publisher -> -c subscribers
  pairs     -c publishers, each with its own subscriber
  latency   -c pairs (default 1) at --rate (default 1000 msg/s per publisher)

Topics may contain %i, the client's index. So may -u and -P, where %i is the client's number
among all of the run's clients (subscribers first, then publishers, then idle connections),
so that each client is a different user: -u user-%i -P pw-%i. Payloads start with a 24-byte
stamp (publisher, sequence number, send time), so every message is accounted for: lost,
duplicated, out of order, and its latency. Without --count, publishers publish for --duration (default 10s);
with --count, until that many are sent (at most --duration, default 60s).

OFFLINE PERSISTENT SUBSCRIBERS (--offline, with fanin, fanout or pairs):
  Before publishing, each subscriber connects with Clean Start 0 (MQTT 3.1/3.1.1: clean
  session 0; MQTT 5: with a Session Expiry Interval of --session-expiry seconds, default
  3600), subscribes and disconnects, so the broker queues what is published for it. Once
  publishing ends, each reconnects to its session (Clean Start 0, the same client id) and
  receives the queue, for at most --drain. The throughput to read is then the publishers'
  acknowledged rate (rates.acked_per_s in --json): with QoS 1/2 it shows what storing the
  messages costs the broker. Client ids contain a per-run id, so a run never resumes an
  earlier run's sessions. With MQTT 5, the reconnection asks for no expiry, so the sessions
  end with the run; MQTT 3.1.1 sessions stay until the broker's own expiry. Latencies then
  include the time spent offline. QoS 0 messages are queued only if the broker queues QoS 0
  for offline sessions.

EXAMPLES:
  nanomq bench fanin -c 50 -q 1 -d 10s
  nanomq bench pairs -c 5 --count 200 -q 1 --json
  nanomq bench latency --rate 500 -q 1
  nanomq bench fanin -c 20 -q 1 -d 3s -V 5 --offline --drain 60s --json
  nanomq bench conn -c 10000 --connect-rate 2000 --rss-pid $(pidof nanomq)
  nanomq bench conn -c 1000 -u user-%i -P pw-%i

EXIT CODES:
  0  the run completed (message losses are measurements, reported, not failures)
  1  a client could not connect, or lost its connection
  2  usage error";

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Publishers only.
    Pub,
    /// Subscribers only.
    Sub,
    /// Idle connections.
    Conn,
    /// Many publishers, one subscriber.
    Fanin,
    /// One publisher, many subscribers.
    Fanout,
    /// Publisher/subscriber pairs.
    Pairs,
    /// Pairs at a fixed rate, for latency.
    Latency,
}

impl Scenario {
    /// The scenario's name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Pub => "pub",
            Self::Sub => "sub",
            Self::Conn => "conn",
            Self::Fanin => "fanin",
            Self::Fanout => "fanout",
            Self::Pairs => "pairs",
            Self::Latency => "latency",
        }
    }
}

/// The options of `nanomq bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,

    /// Where to connect.
    #[command(flatten)]
    pub(crate) server: ServerArgs,

    /// Number of clients (see SCENARIOS).
    #[arg(short = 'c', long, value_name = "N")]
    pub(crate) clients: Option<usize>,

    /// Publishers' topic; %i is the publisher's index.
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub(crate) topic: Option<String>,

    /// Subscribers' topic filter; %i is the subscriber's index.
    #[arg(short = 'F', long, value_name = "FILTER")]
    pub(crate) filter: Option<String>,

    /// Payload size in bytes (at least 24, the stamp).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64)]
    pub(crate) size: usize,

    /// QoS of publications and subscriptions.
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,

    /// Messages per publisher.
    #[arg(short = 'n', long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// How long to publish (or, for sub and conn, to stay connected): 10s, 1m, 500ms.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// Messages per second, per publisher (default: as fast as possible).
    #[arg(
        short = 'r',
        long,
        value_name = "PER_SECOND",
        conflicts_with = "interval"
    )]
    pub(crate) rate: Option<f64>,

    /// Time between two messages of a publisher: 1ms, 100us.
    #[arg(short = 'I', long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) interval: Option<Duration>,

    /// New connections per second (default: as fast as 128 handshakes at a time allow).
    #[arg(long, value_name = "PER_SECOND")]
    pub(crate) connect_rate: Option<f64>,

    /// QoS 1/2 messages in flight per publisher (also capped by an MQTT 5 broker's Receive
    /// Maximum; an MQTT 3.1.1 broker cannot say its limit, so keep this within it: Mosquitto
    /// drops QoS 2 messages beyond its max_inflight_messages, 20 by default).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub(crate) inflight: u16,

    /// After publishing, how long to wait for the messages still on their way.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) drain: Duration,

    /// Subscribers are offline persistent sessions while publishers publish (fanin, fanout,
    /// pairs): each connects with Clean Start 0, subscribes and disconnects; after publishing
    /// it reconnects to its session and receives what was queued (see OFFLINE PERSISTENT
    /// SUBSCRIBERS).
    #[arg(long)]
    pub(crate) offline: bool,

    /// With --offline and MQTT 5: the Session Expiry Interval the subscribers ask for
    /// [default: 3600].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) session_expiry: Option<u32>,

    /// Report the resident memory of this process (the broker's) before and after
    /// connecting.
    #[arg(long, value_name = "PID")]
    pub(crate) rss_pid: Option<u32>,

    /// Print the report as one JSON object on standard output.
    #[arg(long)]
    pub(crate) json: bool,

    /// No live progress on standard error.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// Runs `nanomq bench`.
pub(crate) fn main(args: BenchArgs) -> ExitCode {
    let plan = match plan::Plan::new(&args) {
        Ok(plan) => Arc::new(plan),
        Err(e) => {
            eprintln!("nanomq bench: error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let clients = plan.publishers.len() + plan.subscribers.len() + plan.idle;
    raise_open_files_limit(clients);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nanomq-bench")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("nanomq bench: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_NETWORK);
        }
    };
    let live = Arc::new(clients::Live::default());
    let (phase_tx, phase_rx) = watch::channel(run::Phase::Connecting);
    let mode = progress::Mode::detect(args.quiet);
    let outcome = runtime.block_on(async {
        let progress = tokio::spawn(progress::show(
            mode,
            Arc::clone(&live),
            phase_rx,
            clients as u64,
            plan.duration,
        ));
        let outcome = run::run(Arc::clone(&plan), Arc::clone(&live), phase_tx).await;
        let _ = progress.await;
        outcome
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let results = match outcome {
        Ok(results) => results,
        Err(e) => {
            eprintln!("nanomq bench: error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let report = report::Report::new(&plan, &results);
    if args.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("nanomq bench: error: cannot write the report: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    } else {
        print!("{}", report.summary());
    }
    ExitCode::from(if report.failed() {
        EXIT_NETWORK
    } else {
        EXIT_OK
    })
}

/// Raises the soft limit on open files to the hard limit: ten thousand connections need ten
/// thousand descriptors. Warns when even that is too few.
fn raise_open_files_limit(connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < connections as u64 + 64 => eprintln!(
            "nanomq bench: warning: {connections} connections, but only {limit} open files \
             allowed (ulimit -n)"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("nanomq bench: warning: cannot raise the open files limit: {e}"),
    }
}
