//! What the bridge end-to-end tests (`e2e_bridge.rs`, `e2e_bridge_tls.rs`) share on top of
//! the harness in `e2e/`: a real Mosquitto on free loopback ports with a configuration the
//! test writes, `mosquitto_sub` / `mosquitto_pub` at the MQTT version under test printing
//! each message's topic, QoS and retain flag, an edge `nanomq` configuration around
//! `[[bridges]]` tables, and a wait on a bridge's `$SYS/broker/connection/<id>/state`.
//!
//! Every wait is on something observable (a SUBACK, a message, a log line) with a deadline;
//! nothing sleeps to let the bridge "settle".

#![allow(dead_code, reason = "each bridge test file uses part of these helpers")]

use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::e2e::{Background, Broker, require_on_path, run, scratch_dir};

/// How long one step (a client's SUBACK, a message crossing a bridge) may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The MQTT version a bridge (and the test's clients) speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (`proto_ver = 4`).
    V4,
    /// MQTT 5 (`proto_ver = 5`).
    V5,
}

impl Version {
    /// The bridge's `proto_ver`.
    pub(crate) fn proto_ver(self) -> u8 {
        match self {
            Self::V4 => 4,
            Self::V5 => 5,
        }
    }

    /// The mosquitto clients' `-V`.
    fn client(self) -> &'static str {
        match self {
            Self::V4 => "mqttv311",
            Self::V5 => "mqttv5",
        }
    }
}

/// A loopback port nobody listens on right now (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `127.0.0.1:port`.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `address` accepts TCP connections; `false` if it does not within
/// [`PATIENCE`].
fn accepting(address: SocketAddr) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(address).is_err() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A real Mosquitto (Debian `mosquitto`), killed when dropped; a failing test prints its log.
pub(crate) struct Mosquitto {
    process: Option<Background>,
    address: SocketAddr,
    /// Where its configuration and pid file are.
    dir: PathBuf,
    /// Whether `dir` is its own, removed when it is dropped (not when the test gave it, to
    /// start it again there).
    owns_dir: bool,
}

impl Mosquitto {
    /// Mosquitto with an anonymous plain listener on a free loopback port (the test's
    /// clients use it) and the configuration lines `extra` (more listeners), waiting until
    /// that port and every one of `extra_ports` accept connections.
    pub(crate) fn start(name: &str, extra: &str, extra_ports: &[u16]) -> Self {
        let mut mosquitto = Self::start_in(&scratch_dir(name), free_port(), extra, extra_ports);
        mosquitto.owns_dir = true;
        mosquitto
    }

    /// As [`Mosquitto::start`], with its files in `dir` and its plain listener on `port`:
    /// to start it again where it was.
    pub(crate) fn start_in(dir: &Path, port: u16, extra: &str, extra_ports: &[u16]) -> Self {
        require_on_path("mosquitto", "mosquitto");
        // Run as root, Mosquitto drops to its own user, which must still write its pid file
        // (and persistence file) here.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.join("mosquitto.conf");
        fs::write(
            &conf,
            format!(
                "per_listener_settings false\nallow_anonymous true\n\
                 pid_file {pid}\nlog_dest stderr\nlog_type error\nlog_type warning\n\
                 log_type notice\nlog_type information\nlistener {port} 127.0.0.1\n{extra}\n",
                pid = dir.join("mosquitto.pid").display()
            ),
        )
        .unwrap();
        let mut process = Background::spawn(Command::new("mosquitto").arg("-c").arg(&conf));
        let address = loopback(port);
        for address in std::iter::once(address).chain(extra_ports.iter().map(|&p| loopback(p))) {
            if !accepting(address) {
                let output = process.kill();
                panic!(
                    "mosquitto did not listen on {address} within {PATIENCE:?}; its log:\n{}",
                    output.stderr
                );
            }
        }
        Self {
            process: Some(process),
            address,
            dir: dir.to_owned(),
            owns_dir: false,
        }
    }

    /// Its plain listener.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops it with SIGTERM (it saves its persistence file, if it has one) and waits for it
    /// to exit.
    pub(crate) fn stop(mut self) {
        let pid = fs::read_to_string(self.dir.join("mosquitto.pid")).unwrap();
        let status = Command::new("kill")
            .args(["-TERM", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        let mut process = self.process.take().unwrap();
        let output = process.finish(PATIENCE);
        assert!(
            output.status.success(),
            "mosquitto exited with {}:\n{}",
            output.status,
            output.stderr
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let output = process.kill();
            if thread::panicking() {
                eprintln!("---- mosquitto log ----\n{}", output.stderr);
            }
        }
        if self.owns_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The broker a bridge connects to.
pub(crate) enum Upstream {
    /// A real Mosquitto.
    Mosquitto(Mosquitto),
    /// Another `nanomq`.
    Nanomq(Broker),
}

impl Upstream {
    /// Where the bridge (and the test's clients) connect.
    pub(crate) fn address(&self) -> SocketAddr {
        match self {
            Self::Mosquitto(m) => m.address(),
            Self::Nanomq(b) => b.address(),
        }
    }
}

/// A message as `mosquitto_sub` received it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Msg {
    /// Its topic.
    pub(crate) topic: String,
    /// The QoS it was delivered at.
    pub(crate) qos: u8,
    /// Its retain flag as delivered.
    pub(crate) retain: bool,
    /// Its payload, as text.
    pub(crate) payload: String,
}

/// Shorthand for an expected [`Msg`].
pub(crate) fn msg(topic: &str, qos: u8, retain: bool, payload: &str) -> Msg {
    Msg {
        topic: topic.to_owned(),
        qos,
        retain,
        payload: payload.to_owned(),
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} q{} r{} {:?}",
            self.topic,
            self.qos,
            u8::from(self.retain),
            self.payload
        )
    }
}

/// The prefix of `mosquitto_sub -F`'s message lines (its `-d` lines go to stdout too).
const MSG: &str = "MSG|";

impl Msg {
    /// A `MSG|topic|qos|retain|payload` line.
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.strip_prefix(MSG)?.splitn(4, '|');
        let topic = fields.next()?.to_owned();
        let qos = fields.next()?.parse().ok()?;
        let retain = fields.next()? == "1";
        let payload = fields.next()?.to_owned();
        Some(Self {
            topic,
            qos,
            retain,
            payload,
        })
    }
}

/// `mosquitto_sub` at QoS 2 on some filters, subscribed (its SUBACK came) when returned.
pub(crate) struct Sub {
    process: Background,
    /// Every message read so far: a wait finds what came before it, in any order.
    seen: RefCell<Vec<Msg>>,
}

impl Sub {
    /// Subscribes to `filters` on `address` with MQTT `version`.
    pub(crate) fn start(address: SocketAddr, version: Version, filters: &[&str]) -> Self {
        Self::start_with(address, version, filters, &[])
    }

    /// A subscriber whose session stays on the broker while it is away (client id
    /// `client_id`, no clean start, a session that never expires with MQTT 5).
    pub(crate) fn persistent(
        address: SocketAddr,
        version: Version,
        client_id: &str,
        filters: &[&str],
    ) -> Self {
        Self::start_with(address, version, filters, &["-c", "-i", client_id])
    }

    fn start_with(
        address: SocketAddr,
        version: Version,
        filters: &[&str],
        options: &[&str],
    ) -> Self {
        require_on_path("mosquitto_sub", "mosquitto-clients");
        require_on_path("stdbuf", "coreutils");
        let mut command = Command::new("stdbuf");
        command
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
            .arg(address.port().to_string())
            .args(["-V", version.client(), "-q", "2", "-d"])
            .args(["-F", "MSG|%t|%q|%r|%p"])
            .args(options);
        for filter in filters {
            command.args(["-t", filter]);
        }
        let mut sub = Self {
            process: Background::spawn(&mut command),
            seen: RefCell::new(Vec::new()),
        };
        // A session that was there already delivers what it holds before the SUBACK.
        let seen = &sub.seen;
        sub.process.wait_for_line(
            |line| {
                if let Some(m) = Msg::parse(line) {
                    seen.borrow_mut().push(m);
                }
                line.contains("received SUBACK")
            },
            PATIENCE,
        );
        sub
    }

    /// Waits for a message with `topic` and `payload` (or finds it among those that came
    /// already, whatever came between) and returns it.
    pub(crate) fn wait(&mut self, topic: &str, payload: &str) -> Msg {
        self.wait_for(|m| m.topic == topic && m.payload == payload)
    }

    /// Waits for a message for which `wanted` is true, as [`Sub::wait`] does.
    pub(crate) fn wait_for(&mut self, wanted: impl Fn(&Msg) -> bool) -> Msg {
        if let Some(found) = self.seen.borrow().iter().find(|m| wanted(m)) {
            return found.clone();
        }
        let seen = &self.seen;
        let line = self.process.wait_for_line(
            |line| {
                Msg::parse(line).is_some_and(|m| {
                    let found = wanted(&m);
                    seen.borrow_mut().push(m);
                    found
                })
            },
            PATIENCE,
        );
        Msg::parse(&line).unwrap()
    }

    /// Stops the subscriber and returns every message it received, in order.
    pub(crate) fn stop(mut self) -> Vec<Msg> {
        self.process
            .kill()
            .stdout
            .lines()
            .filter_map(Msg::parse)
            .collect()
    }

    /// Stops the subscriber and returns every message it received, sorted (for comparing
    /// what arrived with what was sent, whatever the interleaving of topics).
    pub(crate) fn stop_sorted(self) -> Vec<Msg> {
        let mut messages = self.stop();
        messages.sort();
        messages
    }
}

/// Publishes one message with `mosquitto_pub` and waits for it to finish (at QoS 1 and 2,
/// the broker has the message then).
pub(crate) fn publish(
    address: SocketAddr,
    version: Version,
    topic: &str,
    payload: &str,
    qos: u8,
    retain: bool,
) {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let mut command = Command::new("mosquitto_pub");
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(address.port().to_string())
        .args(["-V", version.client(), "-q", &qos.to_string()])
        .args(["-t", topic, "-m", payload]);
    if retain {
        command.arg("-r");
    }
    let output = run(&mut command, PATIENCE);
    assert!(
        output.status.success(),
        "mosquitto_pub {topic} to {address} failed: {output:?}"
    );
}

/// An edge broker's configuration: a TCP listener on a free loopback port, logging at
/// `level` to the console, and the `[[bridges]]` tables `bridges`.
pub(crate) fn edge_config(level: &str, bridges: &str) -> String {
    format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[log]\nlevel = \"{level}\"\nto = \"console\"\n\n\
         {bridges}\n"
    )
}

/// The topic a bridge with client id `client_id` publishes its state on, locally.
pub(crate) fn state_topic(client_id: &str) -> String {
    format!("$SYS/broker/connection/{client_id}/state")
}

/// Waits until the bridge with client id `client_id` on `edge` says it is connected.
pub(crate) fn wait_connected(edge: &Broker, client_id: &str) {
    let topic = state_topic(client_id);
    let mut state = Sub::start(edge.address(), Version::V5, &[&topic]);
    state.wait(&topic, "1");
}

/// The bridge's state as a new subscriber gets it (the retained message): "0" or "1".
pub(crate) fn current_state(edge: &Broker, client_id: &str) -> String {
    let topic = state_topic(client_id);
    let mut state = Sub::start(edge.address(), Version::V5, &[&topic]);
    let message = state.wait_for(|m| m.topic == topic);
    assert!(message.retain, "the state is not retained: {message}");
    message.payload
}

/// How many lines of `log` contain every one of `words`.
pub(crate) fn count_lines(log: &str, words: &[&str]) -> usize {
    log.lines()
        .filter(|line| words.iter().all(|w| line.contains(w)))
        .count()
}

/// Waits until `broker`'s log has at least `at_least` lines containing every one of `words`.
pub(crate) fn wait_log_lines(broker: &Broker, words: &[&str], at_least: usize) {
    let deadline = Instant::now() + PATIENCE;
    while count_lines(&broker.log(), words) < at_least {
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} log lines with {words:?} within {PATIENCE:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that `got` (sorted) is exactly `expected` (in any order): each message once.
#[track_caller]
pub(crate) fn assert_exactly(got: &[Msg], mut expected: Vec<Msg>, what: &str) {
    expected.sort();
    let show = |list: &[Msg]| {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    assert!(
        got == expected.as_slice(),
        "{what}: expected\n  {}\ngot\n  {}",
        show(&expected),
        show(got)
    );
}

/// The address of `broker`'s `scheme` listener (`ws`, `wss`, `ssl`), from its
/// `listening on SCHEME://IP:PORT` log line (printed after the TCP one the harness waits for).
pub(crate) fn listener_address(broker: &Broker, scheme: &str) -> SocketAddr {
    broker.logged_address(&format!("listening on {scheme}://"))
}

/// Publishes `payloads` on `topic` at `qos` from one `mosquitto_pub -l` connection (one
/// message per line, as fast as the broker takes them), and waits for it to finish.
pub(crate) fn publish_lines(
    address: SocketAddr,
    version: Version,
    topic: &str,
    qos: u8,
    payloads: &[String],
) {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let mut publisher = Background::spawn_with_stdin(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(address.port().to_string())
            .args(["-V", version.client(), "-q", &qos.to_string()])
            .args(["-t", topic, "-l"]),
    );
    let mut text = payloads.join("\n");
    text.push('\n');
    publisher.write_stdin(&text);
    publisher.close_stdin();
    let output = publisher.finish(PATIENCE);
    assert!(
        output.status.success(),
        "mosquitto_pub -l {topic} to {address} failed: {output:?}"
    );
}
