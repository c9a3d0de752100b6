//! The brokers under test, each started fresh for each scenario on an ephemeral loopback
//! port and killed when its [`Running`] guard is dropped (also when the run fails).
//!
//! - nanomq: the release binary with `bind = "127.0.0.1:0"` for each listener (TCP,
//!   WebSocket and, given a certificate, TLS and WebSocket over TLS); their addresses are read
//!   from the `listening on tcp://IP:PORT` (`ws://IP:PORT/mqtt`, `ssl://IP:PORT`,
//!   `wss://IP:PORT/mqtt`) lines it logs.
//! - Mosquitto (Debian's `mosquitto`, when installed): a free port picked by binding
//!   127.0.0.1:0 and closing it, and a configuration equivalent to nanomq's (in-flight window,
//!   queue length, TCP_NODELAY, no persistence).
//! - rumqttd (0.20, installed with `cargo install` when missing): a free port picked the same
//!   way, its MQTT 3.1.1 server alone (every scenario it runs speaks 3.1.1; no console,
//!   Prometheus exporter or metrics timer), with limits as close to nanomq's as its
//!   configuration goes ([`rumqttd_config`] says what has no equivalent).
//!
//! A scenario may ask nanomq for more ([`Tuning`]): longer queues, and the SQLite store
//! (`[persistence]`) with a fresh database file in the broker's directory, whose size
//! [`database_bytes`] gives after the run.
//!
//! All inherit this process's open-files limit, which the harness raises first.
//!
//! Submodules: [`mosquitto`] and [`rumqttd`], the peers' configurations and starts.

mod mosquitto;
mod rumqttd;

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use self::mosquitto::start_mosquitto;
pub(crate) use self::mosquitto::{find_mosquitto, start_mosquitto_on};
use self::rumqttd::start_rumqttd;
pub(crate) use self::rumqttd::{find_rumqttd, version as rumqttd_version};
use super::tls::Certs;

/// How long a broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a broker may take to start listening under an [`Extra::wrapper`] (valgrind
/// translates the whole binary first and runs it some 50 times slower).
const WRAPPED_START_TIMEOUT: Duration = Duration::from_secs(180);

/// The in-flight window and queue length nanomq and Mosquitto get. The window is
/// rumqttd's, a constant of its router (100; nanomq's default is 32), so that all three
/// send as many unacknowledged QoS 1/2 messages to a subscriber.
pub(crate) const MAX_INFLIGHT: u32 = 100;
/// See [`MAX_INFLIGHT`].
pub(crate) const MAX_QUEUED: u32 = 2048;

/// nanomq's `[persistence]` setting in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// No `[persistence]`: sessions in memory only.
    Memory,
    /// `sync = "periodic"`, `flush_interval = "100ms"`.
    Periodic,
    /// `sync = "always"`: a QoS 1/2 PUBLISH is acknowledged once it is on disk.
    Always,
}

impl Store {
    /// Every setting, in memory first (the reference).
    pub(crate) const ALL: [Self; 3] = [Self::Memory, Self::Periodic, Self::Always];

    /// Its name in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Memory => "in-memory",
            Self::Periodic => "periodic",
            Self::Always => "always",
        }
    }

    /// The `[persistence]` table with the database at `path`, keeping at most
    /// `queue_in_memory` of each session's queue in memory if given (empty in memory).
    fn config(self, path: &Path, queue_in_memory: Option<u32>) -> String {
        let sync = match self {
            Self::Memory => return String::new(),
            Self::Periodic => "sync = \"periodic\"\nflush_interval = \"100ms\"\n",
            Self::Always => "sync = \"always\"\n",
        };
        let window = queue_in_memory
            .map(|n| format!("queue_in_memory = {n}\n"))
            .unwrap_or_default();
        format!(
            "[persistence]\nenabled = true\npath = {}\n{sync}{window}\n",
            toml_string(path)
        )
    }
}

/// What a scenario asks of nanomq beyond the shared configuration (Mosquitto ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tuning {
    /// Messages a session may queue (`max_mqueue_len`).
    pub(crate) max_queued: u32,
    /// Payload bytes a session may queue (`max_mqueue_bytes`; `None`: nanomq's default).
    pub(crate) max_queued_bytes: Option<u64>,
    /// Where sessions are kept.
    pub(crate) store: Store,
    /// With the store: how many of a session's queued messages stay in memory
    /// (`queue_in_memory`; `None`: all of them, nanomq's default).
    pub(crate) queue_in_memory: Option<u32>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_queued: MAX_QUEUED,
            max_queued_bytes: None,
            store: Store::Memory,
            queue_in_memory: None,
        }
    }
}

/// Configuration a scenario gives both brokers beyond the shared one (the access-control
/// scenarios' `[auth]` and its Mosquitto equivalent): text appended to each one's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extra {
    /// Appended to nanomq's TOML.
    pub(crate) nanomq: String,
    /// Appended to Mosquitto's configuration.
    pub(crate) mosquitto: String,
    /// A program and its arguments the broker runs under (`valgrind --tool=callgrind …`),
    /// or nothing: the broker itself.
    pub(crate) wrapper: Vec<String>,
}

/// How clients reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over TLS.
    Ssl,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl Transport {
    /// Every transport, plain TCP first.
    pub(crate) const ALL: [Self; 4] = [Self::Tcp, Self::Ws, Self::Ssl, Self::Wss];

    /// Its name in tables, and the scheme of nanomq's `listening on` lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Ws => "ws",
            Self::Ssl => "ssl",
            Self::Wss => "wss",
        }
    }

    /// The scheme of `nanomq bench --url`.
    fn client_scheme(self) -> &'static str {
        match self {
            Self::Tcp => "mqtt",
            Self::Ws => "ws",
            Self::Ssl => "mqtts",
            Self::Wss => "wss",
        }
    }

    /// Whether it needs a certificate.
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::Wss)
    }
}

/// A broker kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Our release binary.
    Nanomq(PathBuf),
    /// Mosquitto, at this path.
    Mosquitto(PathBuf),
    /// rumqttd, at this path.
    Rumqttd(PathBuf),
}

impl Kind {
    /// The broker's name in tables.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Nanomq(_) => "nanomq",
            Self::Mosquitto(_) => "mosquitto",
            Self::Rumqttd(_) => "rumqttd",
        }
    }

    /// Starts a fresh instance, with its files in `dir`; nanomq also listens with TLS when
    /// given `certs`, and is configured as `tuning` says.
    pub(crate) fn start(
        &self,
        dir: &Path,
        certs: Option<&Certs>,
        tuning: &Tuning,
    ) -> Result<Running> {
        self.start_with(dir, certs, tuning, &Extra::default())
    }

    /// [`Self::start`], with `extra` appended to the broker's configuration.
    pub(crate) fn start_with(
        &self,
        dir: &Path,
        certs: Option<&Certs>,
        tuning: &Tuning,
        extra: &Extra,
    ) -> Result<Running> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match self {
            Self::Nanomq(binary) => start_nanomq(binary, dir, certs, tuning, extra),
            Self::Mosquitto(binary) => start_mosquitto(binary, dir, extra),
            Self::Rumqttd(binary) => start_rumqttd(binary, dir, tuning, &extra.wrapper),
        }
    }
}

/// A running broker, killed on drop.
#[derive(Debug)]
pub(crate) struct Running {
    /// Which.
    pub(crate) name: &'static str,
    /// The process.
    child: Child,
    /// Where it listens (plain TCP).
    pub(crate) addr: SocketAddr,
    /// Where it listens with the other transports: `IP:PORT[/path]` (nanomq only).
    others: Vec<(Transport, String)>,
    /// The certificate its TLS listeners present.
    cafile: Option<PathBuf>,
    /// The last lines of its standard error, for error messages.
    log: Arc<Mutex<VecDeque<String>>>,
    /// Its SQLite database (nanomq with a store).
    database: Option<PathBuf>,
}

impl Running {
    /// The process id (for `--rss-pid`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The `nanomq bench` arguments that reach it over `transport`.
    pub(crate) fn connect_args(&self, transport: Transport) -> Result<Vec<String>> {
        if transport == Transport::Tcp {
            return Ok(vec![
                "-h".to_owned(),
                self.addr.ip().to_string(),
                "-p".to_owned(),
                self.addr.port().to_string(),
            ]);
        }
        let Some((_, addr)) = self.others.iter().find(|(t, _)| *t == transport) else {
            bail!("{} does not listen on {}", self.name, transport.name());
        };
        let mut args = vec![
            "--url".to_owned(),
            format!("{}://{addr}", transport.client_scheme()),
        ];
        if let (true, Some(cafile)) = (transport.is_tls(), &self.cafile) {
            args.push("--cafile".to_owned());
            args.push(cafile.display().to_string());
        }
        Ok(args)
    }

    /// The CPU time (user and system, every thread) it has used so far, in seconds; `None`
    /// where `/proc` cannot tell (not Linux).
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        super::cpu::process_seconds(self.pid())
    }

    /// Its resident memory (`VmRSS` in `/proc/PID/status`, as `nanomq bench --rss-pid`
    /// reads it), KiB; `None` where `/proc` cannot tell.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        super::memory::rss_kib(self.pid())
    }

    /// Its SQLite database file, if it has one.
    pub(crate) fn database(&self) -> Option<&Path> {
        self.database.as_deref()
    }

    /// Stops it with SIGTERM (Mosquitto writes its persistence file on the way out) and
    /// waits for it to exit, at most `timeout`.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed ({status})", self.pid());
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{} did not exit within {timeout:?} of SIGTERM:\n{}",
            self.name,
            self.log_tail()
        )
    }

    /// Its last log lines.
    pub(crate) fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The size of an SQLite database: the file, its write-ahead log and shared memory index.
pub(crate) fn database_bytes(path: &Path) -> Option<u64> {
    let main = fs::metadata(path).ok()?.len();
    let side = ["-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            fs::metadata(PathBuf::from(name)).ok().map(|m| m.len())
        })
        .sum::<u64>();
    Some(main + side)
}

/// Removes an SQLite database and its side files, if any, so that a broker starts on a fresh
/// one.
fn remove_database(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.display())),
        }
    }
    Ok(())
}

/// Keeps the last 50 lines of `stream`, and sends each line to `lines` while it listens.
fn drain_stderr(
    stream: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    lines: mpsc::Sender<String>,
) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut kept) = log.lock() {
                if kept.len() == 50 {
                    kept.pop_front();
                }
                kept.push_back(line.clone());
            }
            // The receiver goes away once the address is known; keep draining anyway, so
            // that the broker never blocks on a full pipe.
            let _ = lines.send(line);
        }
    });
}

/// The address in a `listening on tcp://IP:PORT` log line, ANSI colours or not.
pub(crate) fn listening_addr(line: &str) -> Option<SocketAddr> {
    match listening_on(line)? {
        (Transport::Tcp, addr) => addr.parse().ok(),
        _ => None,
    }
}

/// The transport and `IP:PORT[/path]` of a `listening on SCHEME://…` log line.
pub(crate) fn listening_on(line: &str) -> Option<(Transport, String)> {
    let rest = line.split("listening on ").nth(1)?;
    let (scheme, rest) = rest.split_once("://")?;
    let transport = Transport::ALL.into_iter().find(|t| t.name() == scheme)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '/'))
        .collect();
    (!addr.is_empty()).then_some((transport, addr))
}

fn start_nanomq(
    binary: &Path,
    dir: &Path,
    certs: Option<&Certs>,
    tuning: &Tuning,
    extra: &Extra,
) -> Result<Running> {
    let conf = dir.join("nanomq.toml");
    let database = (tuning.store != Store::Memory)
        .then(|| dir.join(format!("persistence-{}.db", tuning.store.name())));
    if let Some(database) = &database {
        remove_database(database)?;
    }
    let config = nanomq_config(
        certs.map(|c| (c.cert.as_path(), c.key.as_path())),
        tuning,
        database.as_deref(),
    );
    fs::write(&conf, config + &extra.nanomq)
        .with_context(|| format!("cannot write {}", conf.display()))?;
    let mut child = command(binary, &extra.wrapper)
        .args(["start", "--conf"])
        .arg(&conf)
        // Quiet, but for the line that names the port.
        .env("RUST_LOG", "warn,nanomq=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let start_timeout = start_timeout(&extra.wrapper);
    let log = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        drain_stderr(stderr, Arc::clone(&log), tx);
    }
    let mut running = Running {
        name: "nanomq",
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        others: Vec::new(),
        cafile: certs.map(|c| c.cert.clone()),
        log,
        database,
    };
    let expected = if certs.is_some() { 4 } else { 2 };
    let mut tcp = None;
    let deadline = Instant::now() + start_timeout;
    while tcp.is_none() || running.others.len() + 1 < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            bail!(
                "nanomq did not log its {expected} addresses within {start_timeout:?}:\n{}",
                running.log_tail()
            );
        };
        match listening_on(&line) {
            Some((Transport::Tcp, _)) => tcp = listening_addr(&line),
            Some(other) => running.others.push(other),
            None => {}
        }
    }
    if let Some(addr) = tcp {
        running.addr = addr;
    }
    Ok(running)
}

/// nanomq's configuration for the benchmarks: TCP and WebSocket listeners, TLS ones with
/// `tls` (the certificate and key files), the queue limits of `tuning`, and its store with
/// the database file `database`.
pub(crate) fn nanomq_config(
    tls: Option<(&Path, &Path)>,
    tuning: &Tuning,
    database: Option<&Path>,
) -> String {
    let mut listeners = String::from(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n\
         [listeners.ws]\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\"\n\n",
    );
    if let Some((cert, key)) = tls {
        listeners.push_str(&format!(
            "[listeners.ssl]\nbind = \"127.0.0.1:0\"\ncertfile = {}\nkeyfile = {}\n\n\
             [listeners.wss]\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\"\n\n",
            toml_string(cert),
            toml_string(key)
        ));
    }
    let max_queued = tuning.max_queued;
    let max_bytes = tuning
        .max_queued_bytes
        .map(|bytes| format!("max_mqueue_bytes = {bytes}\n"))
        .unwrap_or_default();
    let persistence = database
        .map(|path| tuning.store.config(path, tuning.queue_in_memory))
        .unwrap_or_default();
    format!(
        "{listeners}[mqtt]\nmax_inflight = {MAX_INFLIGHT}\n\
         max_mqueue_len = {max_queued}\n{max_bytes}\n{persistence}[log]\nlevel = \"warn\"\n"
    )
}

/// `path` as a TOML basic string.
pub(crate) fn toml_string(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The command that runs `binary`, under `wrapper` (a program and its arguments) if any.
pub(super) fn command(binary: &Path, wrapper: &[String]) -> Command {
    match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// How long a broker may take to start listening, under `wrapper` or not.
pub(super) fn start_timeout(wrapper: &[String]) -> Duration {
    if wrapper.is_empty() {
        START_TIMEOUT
    } else {
        WRAPPED_START_TIMEOUT
    }
}

/// A peer broker started as `child` on `port` of 127.0.0.1, once it accepts TCP
/// connections there: its standard output (if piped) and error kept as its log; an error
/// if it exits first or does not listen within `timeout`.
fn serving(name: &'static str, mut child: Child, port: u16, timeout: Duration) -> Result<Running> {
    let log = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, _rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        drain_stderr(stdout, Arc::clone(&log), tx.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        drain_stderr(stderr, Arc::clone(&log), tx);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut running = Running {
        name,
        child,
        addr,
        others: Vec::new(),
        cafile: None,
        log,
        database: None,
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !running.is_alive() {
            bail!("{} exited at start:\n{}", running.name, running.log_tail());
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(running);
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{} did not listen on {addr} within {timeout:?}:\n{}",
        running.name,
        running.log_tail()
    )
}

/// An executable file called `name` in a directory of `PATH`, or else in one of `more`.
fn find_program(name: &str, more: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(more)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let line = "2026-01-01T00:00:00Z  INFO nanomq: listening on tcp://127.0.0.1:40123";
        assert_eq!(listening_addr(line), "127.0.0.1:40123".parse().ok());
        let coloured = "\u{1b}[32m INFO\u{1b}[0m nanomq: listening on tcp://127.0.0.1:5\u{1b}[0m";
        assert_eq!(listening_addr(coloured), "127.0.0.1:5".parse().ok());
        assert_eq!(listening_addr("listening on ws://127.0.0.1:5"), None);
    }

    #[test]
    fn every_transport_s_listening_line_is_read() {
        let read = |line: &str| listening_on(line).map(|(t, a)| (t.name(), a));
        let ws = "INFO nanomq: listening on ws://127.0.0.1:40124/mqtt\u{1b}[0m";
        assert_eq!(read(ws), Some(("ws", "127.0.0.1:40124/mqtt".to_owned())));
        let ssl = "INFO nanomq: listening on ssl://127.0.0.1:40125";
        assert_eq!(read(ssl), Some(("ssl", "127.0.0.1:40125".to_owned())));
        let wss = "listening on wss://127.0.0.1:40126/mqtt";
        assert_eq!(read(wss), Some(("wss", "127.0.0.1:40126/mqtt".to_owned())));
        assert_eq!(read("listening on quic://127.0.0.1:1"), None);
        assert_eq!(read("started"), None);
    }

    #[test]
    fn tls_listeners_come_with_a_certificate() {
        let plain = nanomq_config(None, &Tuning::default(), None);
        assert!(plain.contains("[listeners.ws]") && !plain.contains("[listeners.ssl]"));
        let tls = nanomq_config(
            Some((Path::new("/t/c\"1.pem"), Path::new("/t/k.pem"))),
            &Tuning::default(),
            None,
        );
        assert!(
            tls.contains("certfile = \"/t/c\\\"1.pem\"\nkeyfile = \"/t/k.pem\""),
            "{tls}"
        );
        assert!(tls.contains("[listeners.wss]\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\""));
    }

    #[test]
    fn both_brokers_get_the_same_limits_on_loopback() {
        let nanomq = nanomq_config(None, &Tuning::default(), None);
        assert!(nanomq.contains("bind = \"127.0.0.1:0\""));
        assert!(nanomq.contains("max_inflight = 100") && nanomq.contains("max_mqueue_len = 2048"));
        let mosquitto = mosquitto::mosquitto_config(40000);
        assert!(mosquitto.starts_with("listener 40000 127.0.0.1\n"));
        assert!(mosquitto.contains("max_inflight_messages 100"));
        assert!(mosquitto.contains("max_queued_messages 2048"));
    }

    #[test]
    fn a_scenario_may_ask_for_long_queues_and_the_store() {
        assert!(!nanomq_config(None, &Tuning::default(), None).contains("[persistence]"));
        let tuning = Tuning {
            max_queued: 10_000_000,
            max_queued_bytes: Some(1 << 32),
            store: Store::Periodic,
            queue_in_memory: None,
        };
        let conf = nanomq_config(None, &tuning, Some(Path::new("/b/p.db")));
        assert!(conf.contains("max_mqueue_len = 10000000\nmax_mqueue_bytes = 4294967296\n"));
        assert!(conf.contains(
            "[persistence]\nenabled = true\npath = \"/b/p.db\"\nsync = \"periodic\"\n\
             flush_interval = \"100ms\"\n\n[log]"
        ));
        assert!(!conf.contains("queue_in_memory"));
        // A bounded window goes into [persistence], and nowhere without the store.
        let window = Tuning {
            queue_in_memory: Some(100),
            ..tuning
        };
        let conf = nanomq_config(None, &window, Some(Path::new("/b/w.db")));
        assert!(
            conf.contains("flush_interval = \"100ms\"\nqueue_in_memory = 100\n\n[log]"),
            "{conf}"
        );
        let memory = Tuning {
            store: Store::Memory,
            ..window
        };
        assert!(!nanomq_config(None, &memory, None).contains("queue_in_memory"));
        let always = Tuning {
            store: Store::Always,
            ..tuning
        };
        let conf = nanomq_config(None, &always, Some(Path::new("/b/a.db")));
        assert!(conf.contains("sync = \"always\"\n") && !conf.contains("flush_interval"));
        let memory = Tuning {
            store: Store::Memory,
            ..tuning
        };
        assert!(!nanomq_config(None, &memory, None).contains("[persistence]"));
    }
}
