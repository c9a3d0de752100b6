//! The runs of the bridge section: the brokers of each (the upstream Mosquitto, the edge
//! with its bridge), the publishers (`nanomq bench pub`) and the counting subscriber, and the
//! checks that every message arrived.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::subscriber::{self, Counted, StateWatch, Subscriber};
use super::{
    BRIDGE_CLIENT_ID, COUNT_DEADLINE, Edge, FILTER, IDLE, MESSAGES, Measured, PUBLISHERS, QUEUE,
    Run, STATE_TIMEOUT, SUBSCRIBER_ID,
};
use crate::e2e_bench::broker::{self, Extra, Kind, Running, Transport, Tuning};
use crate::e2e_bench::scenario::{ACKED_RATE, Beside, Scenario};

/// What the runs need.
pub(super) struct Env<'a> {
    /// `nanomq` (the load generator, and the nanomq edge).
    pub(super) nanomq: &'a Path,
    /// `mosquitto`.
    pub(super) mosquitto: &'a Path,
    /// Where the brokers' files go.
    pub(super) dir: PathBuf,
}

/// Runs `run` against fresh brokers.
pub(super) fn measure(env: &Env<'_>, run: Run) -> Result<Measured> {
    match run {
        Run::Forward(edge) => forward(env, edge),
        Run::Ingest => ingest(env),
        Run::Drain(edge) => drain(env, edge),
    }
}

/// The `nanomq bench pub` of a run: `publishers` clients sharing [`MESSAGES`] QoS 1 messages
/// of 64 B on `topic`.
fn publish(publishers: u64, topic: &str) -> Scenario {
    let each = (MESSAGES / publishers).to_string();
    let args = [
        "pub",
        "-c",
        &publishers.to_string(),
        "-n",
        &each,
        "-q",
        "1",
        "-s",
        "64",
        "-V",
        "5",
        "-t",
        topic,
    ];
    Scenario {
        name: "bridge publishers".to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        metrics: vec![ACKED_RATE],
        rss: false,
        timeout: Duration::from_secs(120),
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    }
}

/// The upstream's configuration beyond the shared one: room for every message in its
/// subscriber's queue, and, given a directory, persistence there (written when it stops).
fn upstream_config(persistence: Option<&Path>) -> String {
    let mut conf = format!("max_queued_messages {QUEUE}\n");
    if let Some(dir) = persistence {
        conf.push_str(&format!(
            "persistence true\npersistence_location {}/\nautosave_interval 0\n",
            dir.display()
        ));
    }
    conf
}

/// nanomq's bridge to the upstream on `port`.
fn nanomq_bridge(port: u16) -> String {
    format!(
        "\n[[bridges]]\nname = \"cloud\"\nservers = [\"mqtt://127.0.0.1:{port}\"]\n\
         proto_ver = 5\nclientid = \"{BRIDGE_CLIENT_ID}\"\nbackoff_max = \"100ms\"\n\
         max_send_queue_len = {QUEUE}\n\n[[bridges.forwards]]\nlocal_topic = \"{FILTER}\"\n\
         qos = 1\n"
    )
}

/// Mosquitto's bridge to the upstream on `port`, the equivalent of [`nanomq_bridge`]
/// (restart_timeout takes whole seconds: 1 is its shortest).
fn mosquitto_bridge(port: u16) -> String {
    format!(
        "max_queued_messages {QUEUE}\n\nconnection cloud\naddress 127.0.0.1:{port}\n\
         remote_clientid {BRIDGE_CLIENT_ID}\nbridge_protocol_version mqttv50\n\
         cleansession false\nrestart_timeout 1\ntopic {FILTER} out 1\n"
    )
}

/// Starts `edge` bridged to the upstream on `port`.
fn start_edge(env: &Env<'_>, edge: Edge, port: u16) -> Result<Running> {
    let (kind, extra) = match edge {
        Edge::Nanomq => (
            Kind::Nanomq(env.nanomq.to_path_buf()),
            Extra {
                nanomq: nanomq_bridge(port),
                ..Extra::default()
            },
        ),
        Edge::Mosquitto => (
            Kind::Mosquitto(env.mosquitto.to_path_buf()),
            Extra {
                mosquitto: mosquitto_bridge(port),
                ..Extra::default()
            },
        ),
    };
    let dir = env.dir.join(format!("edge-{}", edge.name()));
    kind.start_with(&dir, None, &Tuning::default(), &extra)
}

/// A fresh directory for an upstream's persistence file, writable by anyone: Mosquitto
/// started as root runs as the `mosquitto` user.
fn fresh_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
        .with_context(|| format!("cannot open {} to all", dir.display()))
}

/// Every message published was acknowledged, and arrived.
fn check(report: &Value, counted: &Counted) -> Result<()> {
    let get = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (sent, acked) = (get("/messages/sent"), get("/messages/acked"));
    if sent != MESSAGES || acked != MESSAGES {
        bail!(
            "the publishers sent {sent} and had {acked} acknowledged of {MESSAGES} (errors: {})",
            report.pointer("/errors").unwrap_or(&Value::Null)
        );
    }
    if counted.unique != MESSAGES {
        bail!(
            "lost {} of {MESSAGES}: the upstream's subscriber received {} distinct ({} \
             duplicates, {} foreign){}",
            MESSAGES.saturating_sub(counted.unique),
            counted.unique,
            counted.duplicates,
            counted.foreign,
            if counted.timed_out {
                format!(", then nothing for {IDLE:?}")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Fails if `broker` died during the run.
fn alive(broker: &mut Running, role: &str) -> Result<()> {
    if !broker.is_alive() {
        bail!(
            "the {role} ({}) died during the run:\n{}",
            broker.name,
            broker.log_tail()
        );
    }
    Ok(())
}

/// Messages through a connected bridge.
fn forward(env: &Env<'_>, edge: Edge) -> Result<Measured> {
    let mut upstream = Kind::Mosquitto(env.mosquitto.to_path_buf()).start_with(
        &env.dir.join("upstream"),
        None,
        &Tuning::default(),
        &Extra {
            mosquitto: upstream_config(None),
            ..Extra::default()
        },
    )?;
    let subscriber = Subscriber::start(
        upstream.addr,
        SUBSCRIBER_ID,
        Some(FILTER),
        MESSAGES,
        IDLE,
        Instant::now() + COUNT_DEADLINE,
    )?;
    let mut edge_broker = start_edge(env, edge, upstream.addr.port())?;
    StateWatch::connect(edge_broker.addr, BRIDGE_CLIENT_ID)?.wait_for("1", STATE_TIMEOUT)?;
    let report = crate::e2e_bench::bench_on(
        env.nanomq,
        &mut edge_broker,
        &publish(PUBLISHERS, "bench/%i"),
    )?;
    let counted = subscriber.finish()?;
    alive(&mut upstream, "upstream")?;
    alive(&mut edge_broker, "edge")?;
    check(&report, &counted)?;
    Ok(Measured {
        rate: counted
            .rate(None)
            .context("no time between the first and the last message")?,
        counted,
        publisher: report,
        drain: None,
    })
}

/// Messages published to the upstream directly, with the drain's persistent subscriber.
fn ingest(env: &Env<'_>) -> Result<Measured> {
    let dir = env.dir.join("upstream-ingest");
    fresh_dir(&dir)?;
    let mut upstream = broker::start_mosquitto_on(
        env.mosquitto,
        &dir,
        broker::free_port()?,
        &upstream_config(Some(&dir)),
    )?;
    subscriber::create_session(upstream.addr, SUBSCRIBER_ID, FILTER)?;
    let subscriber = Subscriber::start(
        upstream.addr,
        SUBSCRIBER_ID,
        None,
        MESSAGES,
        IDLE,
        Instant::now() + COUNT_DEADLINE,
    )?;
    let report =
        crate::e2e_bench::bench_on(env.nanomq, &mut upstream, &publish(1, "bench/direct"))?;
    let counted = subscriber.finish()?;
    alive(&mut upstream, "upstream")?;
    check(&report, &counted)?;
    Ok(Measured {
        rate: counted
            .rate(None)
            .context("no time between the first and the last message")?,
        counted,
        publisher: report,
        drain: None,
    })
}

/// A backlog queued on `edge` while the upstream was down, once the upstream is back.
fn drain(env: &Env<'_>, edge: Edge) -> Result<Measured> {
    let dir = env.dir.join("upstream-drain");
    fresh_dir(&dir)?;
    let port = broker::free_port()?;
    let config = upstream_config(Some(&dir));
    let mut first = broker::start_mosquitto_on(env.mosquitto, &dir, port, &config)?;
    subscriber::create_session(first.addr, SUBSCRIBER_ID, FILTER)?;
    let mut edge_broker = start_edge(env, edge, port)?;
    let mut state = StateWatch::connect(edge_broker.addr, BRIDGE_CLIENT_ID)?;
    state.wait_for("1", STATE_TIMEOUT)?;
    // Down: its sessions (the subscriber's, the bridge's) go to its persistence file.
    first.terminate(STATE_TIMEOUT)?;
    drop(first);
    state.wait_for("0", STATE_TIMEOUT)?;
    let report = crate::e2e_bench::bench_on(
        env.nanomq,
        &mut edge_broker,
        &publish(PUBLISHERS, "bench/%i"),
    )?;
    let acked = report
        .pointer("/messages/acked")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if acked != MESSAGES {
        bail!(
            "the edge acknowledged {acked} of {MESSAGES} while the upstream was down (errors: {})",
            report.pointer("/errors").unwrap_or(&Value::Null)
        );
    }
    let started = Instant::now();
    let mut upstream = broker::start_mosquitto_on(env.mosquitto, &dir, port, &config)?;
    let subscriber = Subscriber::start(
        upstream.addr,
        SUBSCRIBER_ID,
        None,
        MESSAGES,
        IDLE,
        started + COUNT_DEADLINE,
    )?;
    let counted = subscriber.finish()?;
    alive(&mut upstream, "upstream")?;
    alive(&mut edge_broker, "edge")?;
    check(&report, &counted)?;
    let since_start = counted
        .first
        .map(|t| t.saturating_duration_since(started).as_secs_f64());
    Ok(Measured {
        rate: counted
            .rate(Some(started))
            .context("no message after the upstream started")?,
        drain: since_start.zip(counted.rate(None)),
        counted,
        publisher: report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_edges_get_the_same_bridge() {
        let ours = nanomq_bridge(40_000);
        for wanted in [
            "servers = [\"mqtt://127.0.0.1:40000\"]",
            "clientid = \"edge-1\"",
            "proto_ver = 5",
            "max_send_queue_len = 200000",
            "local_topic = \"bench/#\"\nqos = 1",
        ] {
            assert!(ours.contains(wanted), "{wanted}: {ours}");
        }
        let theirs = mosquitto_bridge(40_000);
        for wanted in [
            "address 127.0.0.1:40000",
            "remote_clientid edge-1",
            "bridge_protocol_version mqttv50",
            "cleansession false",
            "topic bench/# out 1",
            "max_queued_messages 200000",
        ] {
            assert!(theirs.contains(wanted), "{wanted}: {theirs}");
        }
        assert!(upstream_config(None).contains("max_queued_messages 200000"));
        assert!(!upstream_config(None).contains("persistence"));
        let persistent = upstream_config(Some(Path::new("/b/up")));
        assert!(persistent.contains("persistence true\npersistence_location /b/up/\n"));
    }

    #[test]
    fn the_publishers_share_the_messages() {
        let edge = publish(PUBLISHERS, "bench/%i");
        let n = |s: &Scenario, flag: &str| {
            s.args
                .windows(2)
                .find(|w| w[0] == flag)
                .and_then(|w| w[1].parse::<u64>().ok())
                .unwrap_or_default()
        };
        assert_eq!(n(&edge, "-c") * n(&edge, "-n"), MESSAGES);
        assert_eq!(n(&edge, "-q"), 1);
        let direct = publish(1, "bench/direct");
        assert_eq!(n(&direct, "-n"), MESSAGES);
    }

    #[test]
    fn a_run_with_a_loss_is_an_error() {
        let report: Value = serde_json::from_str(&format!(
            r#"{{"messages":{{"sent":{MESSAGES},"acked":{MESSAGES}}}}}"#
        ))
        .unwrap_or_default();
        let counted = Counted {
            unique: MESSAGES,
            duplicates: 3,
            foreign: 0,
            first: None,
            last: None,
            timed_out: false,
        };
        assert!(check(&report, &counted).is_ok());
        let short = Counted {
            unique: MESSAGES - 1,
            timed_out: true,
            ..counted
        };
        let error = check(&report, &short).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.starts_with("lost 1 of")),
            "{error:?}"
        );
        assert!(check(&Value::Null, &counted).is_err());
    }
}
