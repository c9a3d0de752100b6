//! What the bridge outage, kill and storm tests share (tests/e2e_bridge_outage.rs,
//! e2e_bridge_kill.rs, e2e_bridge_storm.rs): the configuration of an edge `nanomq` whose
//! bridge forwards `sensors/#` upstream, a real Mosquitto with persistence on that can be
//! stopped gracefully and started again on the same port and store ([`Mosquitto`]), and, in
//! `clients`, MQTT clients built on the mqtt-client crate: a paced, numbered publisher and a
//! subscriber that reconnects to its persistent session and records every arrival; `tally`
//! reads such a record against what was expected.
//!
//! Every process is owned by a guard that ends it on drop, and every wait has a deadline.

#![allow(
    dead_code,
    reason = "each bridge test file uses part of the support module"
)]

pub(crate) mod clients;
pub(crate) mod tally;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mqtt_client::mqtt_codec::{ProtocolVersion, QoS};
use tokio::runtime::Runtime;

use crate::e2e::{require_on_path, scratch_dir};
use clients::{Subscriber, SubscriberOptions};

/// The bridge's client identifier upstream (and so the name in its `$SYS` state topic).
pub(crate) const BRIDGE_CLIENT_ID: &str = "edge-1";

/// How long the bridge may take to report its link up or down.
const LINK_PATIENCE: Duration = Duration::from_secs(20);

/// How long a broker may take to start listening or to exit after SIGTERM.
const PROCESS_PATIENCE: Duration = Duration::from_secs(20);

/// A loopback port nobody listens on now (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A subscriber on the edge broker at `address` to the bridge's retained connection state
/// (`$SYS/broker/connection/<client id>/state`, `1` or `0`).
pub(crate) fn watch_link(rt: &Runtime, address: SocketAddr) -> Subscriber {
    Subscriber::start(
        rt,
        SubscriberOptions {
            address,
            client_id: "link-watcher".to_owned(),
            version: ProtocolVersion::V5,
            filter: link_topic(),
            qos: QoS::AtLeastOnce,
            receive_maximum: None,
        },
    )
}

/// The bridge's connection state topic.
fn link_topic() -> String {
    format!("$SYS/broker/connection/{BRIDGE_CLIENT_ID}/state")
}

/// Waits until the bridge's state, as `watcher` last saw it, is `up`.
pub(crate) fn wait_link(watcher: &Subscriber, up: bool) {
    let topic = link_topic();
    let wanted: &[u8] = if up { b"1" } else { b"0" };
    watcher.wait_until(
        LINK_PATIENCE,
        &format!("the bridge's link {}", if up { "up" } else { "down" }),
        |r| r.last.get(&topic).is_some_and(|p| p.as_ref() == wanted),
    );
}

/// The edge broker's bridge.
#[derive(Debug, Clone)]
pub(crate) struct Edge<'a> {
    /// The upstream server.
    pub(crate) upstream: SocketAddr,
    /// 4 (MQTT 3.1.1) or 5.
    pub(crate) proto_ver: u8,
    /// The forward's QoS.
    pub(crate) qos: u8,
    /// The edge's store, when persistence is on, and its `sync` ("always", "periodic").
    pub(crate) store: Option<(&'a Path, &'a str)>,
    /// The bridge's `max_inflight`: how many local messages it holds unacknowledged
    /// upstream (`None`: the default, 1024).
    pub(crate) max_inflight: Option<u16>,
    /// The bridge's `backoff_max` (`None`: 300 ms).
    pub(crate) backoff_max: Option<&'a str>,
}

impl Edge<'_> {
    /// The edge broker's configuration: a TCP listener on a free loopback port, the bridge
    /// `cloud` forwarding `sensors/#` upstream with a persistent session there.
    pub(crate) fn config(&self) -> String {
        let persistence = self.store.map_or_else(String::new, |(db, sync)| {
            format!(
                "[persistence]\nenabled = true\npath = \"{}\"\nsync = \"{sync}\"\n\n",
                db.display()
            )
        });
        format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n{persistence}\
             [log]\nlevel = \"info\"\nto = \"console\"\n\n\
             [[bridges]]\nname = \"cloud\"\nservers = [\"mqtt://{upstream}\"]\n\
             proto_ver = {proto}\nclientid = \"{BRIDGE_CLIENT_ID}\"\nclean_start = false\n\
             session_expiry = \"1h\"\nkeepalive = \"10s\"\nbackoff_max = \"{backoff}\"\n{window}\n\
             [[bridges.forwards]]\nlocal_topic = \"sensors/#\"\nqos = {qos}\n",
            window = self
                .max_inflight
                .map_or_else(String::new, |n| format!("max_inflight = {n}\n")),
            backoff = self.backoff_max.unwrap_or("300ms"),
            upstream = self.upstream,
            proto = self.proto_ver,
            qos = self.qos,
        )
    }
}

/// A process's standard error, collected by a thread that keeps reading it.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<String>>);

impl Log {
    fn drain(&self, pipe: impl std::io::Read + Send + 'static) {
        let log = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = log.0.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Mosquitto's `max_inflight_messages`: its window towards MQTT 3.1.1 clients, the Receive
/// Maximum of its CONNACKs, and how many of a persisted session's messages it restores as
/// in flight after a restart.
///
/// Mosquitto 2.0 restores a persisted session's messages into its in-flight list only up to
/// `max_inflight_messages`, the rest into its queue (`persist__client_msg_restore`), while
/// the live session used the client's own Receive Maximum as its window. A QoS 2 message
/// that was in flight beyond that count, already PUBREC'd and PUBREL'd (its packet
/// identifier released by the subscriber), comes back from the queue after the restart as a
/// new PUBLISH: the subscriber gets it twice, and rightly so by the protocol. With the
/// default of 20 this showed as runs of 9 to 738 duplicates under load, whenever the
/// subscriber lagged by more than 20; with 65,535 every run had some, down to single ones
/// (as if nothing were restored in flight: 65,535 seems to be taken as "no limit", whose
/// quota is 0). Hence a large finite window here and [`SUBSCRIBER_RECEIVE_MAXIMUM`] below
/// it: with them, no duplicate in any run.
pub(crate) const MOSQUITTO_INFLIGHT: u16 = 1_000;

/// The Receive Maximum of the MQTT 5 subscribers on Mosquitto: well within
/// [`MOSQUITTO_INFLIGHT`], so that all that is in flight to them at a restart is restored in
/// flight. Not equal to it: Mosquitto 2.0.11 sends one PUBLISH beyond a client's Receive
/// Maximum (seen with 20: a 21st while 20 awaited PUBREL), which the client rightly refuses
/// with a DISCONNECT (Receive Maximum exceeded).
pub(crate) const SUBSCRIBER_RECEIVE_MAXIMUM: u16 = 500;

/// A real Mosquitto on a loopback port of its own, with persistence on in a scratch
/// directory, that can be stopped (SIGTERM: it saves its store on the way out) and started
/// again on the same port and store. Unlimited queues (`max_queued_messages 0`): its
/// default of 1000 would drop what a subscriber has not taken yet, which is not what these
/// tests look at.
#[derive(Debug)]
pub(crate) struct Mosquitto {
    /// Where it listens.
    address: SocketAddr,
    /// The scratch directory: configuration and store.
    dir: PathBuf,
    /// The running process, if any.
    child: Option<Child>,
    /// Its log, across starts.
    log: Log,
}

impl Mosquitto {
    /// Starts Mosquitto for the test called `name`; returns once it listens.
    pub(crate) fn start(name: &str) -> Self {
        require_on_path("mosquitto", "mosquitto");
        let dir = scratch_dir(name);
        let store = dir.join("store");
        fs::create_dir_all(&store).unwrap();
        // Started as root, Mosquitto drops to its own user, which must write the store.
        let _ = Command::new("chmod").arg("777").arg(&store).status();
        let port = free_port();
        fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n\
                 persistence true\npersistence_location {store}/\nautosave_interval 0\n\
                 max_queued_messages 0\nmax_inflight_messages {MOSQUITTO_INFLIGHT}\n\
                 log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
                 log_type information\nlog_timestamp_format %T\n",
                store = store.display()
            ),
        )
        .unwrap();
        let mut mosquitto = Self {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child: None,
            log: Log::default(),
        };
        mosquitto.start_again();
        mosquitto
    }

    /// Where it listens.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts the process (again) on the same port and store; returns once it listens.
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "mosquitto is already running");
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run mosquitto");
        self.log.drain(child.stderr.take().unwrap());
        self.child = Some(child);
        let deadline = Instant::now() + PROCESS_PATIENCE;
        while TcpStream::connect(self.address).is_err() {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen within {PROCESS_PATIENCE:?}; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and waits for the process to exit (successfully: it has saved its store).
    pub(crate) fn stop(&mut self) {
        let mut child = self.child.take().expect("mosquitto is not running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PROCESS_PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "mosquitto exited with {status} after SIGTERM; its log:\n{}",
                    self.log()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mosquitto did not exit within {PROCESS_PATIENCE:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Panics, with the log, if the process has exited.
    fn assert_running(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("mosquitto exited ({status}); its log:\n{}", self.log());
        }
    }

    /// Everything it has logged, across starts.
    pub(crate) fn log(&self) -> String {
        self.log.text()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(100).collect();
            eprintln!(
                "---- mosquitto log (last {} lines) ----\n{}",
                tail.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
