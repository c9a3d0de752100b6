//! The `nanomq` binary as a user meets it: its help, its refusal of bad configuration files
//! (naming the key), and a start on an ephemeral loopback port that serves MQTT and stops
//! gracefully on SIGTERM or SIGINT.
//!
//! Every child process is owned by a guard that kills it if the test fails, and every wait
//! has a generous timeout: a broken binary fails these tests, it never hangs them.

// A test that cannot set itself up should panic, loudly; helpers outside `#[test]` functions
// are not covered by clippy.toml's allowances.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// Built without the `tcp` feature, only the tests that need no listener run.
#![cfg_attr(not(feature = "tcp"), allow(dead_code, unused_imports))]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long the broker may take to start, and to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// The binary under test, with a clean logging environment.
fn nanomq() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nanomq"));
    command.env_remove("RUST_LOG");
    command
}

/// A scratch directory of its own for the test called `name`.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("nanomq-cli")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to a configuration file for the test called `name`.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = scratch_dir(name).join("nanomq.toml");
    fs::write(&path, text).unwrap();
    path
}

/// A running child process, killed when dropped if it is still running.
struct Running {
    child: Child,
}

impl Running {
    /// Waits for the process to exit, killing it and panicking after `timeout`.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "nanomq did not exit within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`TERM`, `INT`) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a pipe to its end on a thread of its own, one line at a time.
fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `nanomq` with `args` to completion (at most [`PATIENCE`]): its status and stderr.
fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let child = nanomq()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running { child };
    let stdout = lines_of(running.child.stdout.take().unwrap());
    let stderr = lines_of(running.child.stderr.take().unwrap());
    let status = running.wait(PATIENCE);
    let collect = |rx: Receiver<String>| rx.iter().collect::<Vec<_>>().join("\n");
    (status, collect(stdout), collect(stderr))
}

/// A broker started on a configuration file, with its stderr read line by line.
struct Broker {
    process: Running,
    stderr: Receiver<String>,
    /// Every stderr line read so far, for failure messages.
    seen: Vec<String>,
}

impl Broker {
    /// Starts `nanomq start --conf <file holding config>`.
    fn start(name: &str, config: &str) -> Self {
        let path = config_file(name, config);
        let child = nanomq()
            .arg("start")
            .arg("--conf")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut process = Running { child };
        let stderr = lines_of(process.child.stderr.take().unwrap());
        Self {
            process,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle` and returns it.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {needle:?} in {PATIENCE:?}; stderr:\n{}",
                        self.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.process.wait(PATIENCE);
                    panic!(
                        "nanomq exited ({status}) before printing {needle:?}; stderr:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// Waits for the `listening on tcp://IP:PORT` line and returns the address in it.
    fn tcp_address(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening on tcp://");
        let (_, address) = line.split_once("listening on tcp://").unwrap();
        let address = address.split_whitespace().next().unwrap();
        address
            .parse()
            .unwrap_or_else(|e| panic!("bad address {address:?} in {line:?}: {e}"))
    }

    /// Sends `signal` and waits for the process to exit; the rest of stderr is kept.
    fn stop(&mut self, signal: &str) -> ExitStatus {
        self.process.signal(signal);
        let status = self.process.wait(PATIENCE);
        self.seen.extend(self.stderr.iter());
        status
    }

    /// Everything read from stderr so far.
    fn log(&self) -> String {
        self.seen.join("\n")
    }
}

/// A configuration with one TCP listener on a free loopback port, and `extra`.
fn loopback_config(extra: &str) -> String {
    format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n{extra}")
}

/// Connects to `address` as an MQTT client of `version` (4: 3.1.1, 5: 5.0) and checks the
/// CONNACK accepts the connection.
fn mqtt_connect(address: SocketAddr, version: u8, client_id: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let id = client_id.as_bytes();
    let id_len = u16::try_from(id.len()).unwrap().to_be_bytes();
    // Protocol name, level, flags (clean start), keep alive 60 s.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', version, 0x02, 0, 60];
    if version == 5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(&id_len);
    body.extend_from_slice(id);
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend_from_slice(&body);
    (&stream).write_all(&packet).unwrap();

    let (kind, body) = read_packet(&stream).expect("the broker closed instead of CONNACK");
    assert_eq!(
        kind >> 4,
        2,
        "expected CONNACK, got packet type {kind:#04x}"
    );
    assert_eq!(
        body.get(1),
        Some(&0),
        "CONNACK refused the connection: {body:?}"
    );
    stream
}

/// Reads one MQTT packet: its first byte and its body; `None` at the end of the stream.
fn read_packet(mut stream: &TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8];
    match stream.read(&mut first) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("reading from the broker: {e}"),
    }
    let mut length = 0usize;
    for shift in [0, 7, 14, 21] {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).unwrap();
        length |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    Some((first[0], body))
}

#[test]
fn help_documents_the_commands_and_the_configuration() {
    let (status, stdout, _) = run(&["--help"]);
    assert!(status.success());
    assert!(stdout.contains("start"), "{stdout}");
    assert!(stdout.contains("nanomq start --help"), "{stdout}");
    assert!(stdout.contains("--conf"), "{stdout}");

    let (status, stdout, _) = run(&["start", "--help"]);
    assert!(status.success());
    for words in [
        "--conf <FILE>",
        "embedded default",
        "0.0.0.0:1883",
        "[listeners.tcp]",
        "max_inflight",
        "keepalive_multiplier",
        "[log]",
        "etc/nanomq.toml",
        "RUST_LOG",
        "SIGTERM",
    ] {
        assert!(
            stdout.contains(words),
            "`start --help` lacks {words:?}:\n{stdout}"
        );
    }

    let (status, stdout, _) = run(&["--version"]);
    assert!(status.success());
    assert!(stdout.starts_with("nanomq "), "{stdout}");
}

#[test]
fn a_missing_subcommand_or_unknown_flag_is_an_error() {
    let (status, _, stderr) = run(&[]);
    assert!(!status.success());
    assert!(stderr.contains("Usage"), "{stderr}");
    let (status, _, stderr) = run(&["start", "--config", "x.toml"]);
    assert!(!status.success());
    assert!(stderr.contains("--config"), "{stderr}");
}

/// Asserts that `nanomq start` refuses `config`, naming `key` and saying `words`.
#[track_caller]
fn assert_refused(name: &str, config: &str, key: &str, words: &str) {
    let path = config_file(name, config);
    let (status, _, stderr) = run(&["start", "--conf", path.to_str().unwrap()]);
    assert!(
        !status.success(),
        "nanomq accepted:\n{config}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(key) && stderr.contains(words),
        "expected stderr naming {key:?} and saying {words:?} for\n{config}\ngot:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn an_unknown_key_is_refused() {
    assert_refused(
        "unknown_key",
        &loopback_config("[mqtt]\nmax_inflite = 10\n"),
        "mqtt.max_inflite",
        "unknown field",
    );
}

#[test]
fn a_wrong_type_is_refused() {
    assert_refused(
        "wrong_type",
        &loopback_config("[mqtt]\nmax_inflight = \"many\"\n"),
        "mqtt.max_inflight",
        "invalid type",
    );
}

#[test]
fn a_bad_address_is_refused() {
    assert_refused(
        "bad_address",
        "[listeners.tcp]\nbind = \"127.0.0.1:not-a-port\"\n",
        "listeners.tcp.bind",
        "expected IP:PORT",
    );
}

#[test]
fn an_out_of_range_value_is_refused() {
    assert_refused(
        "out_of_range",
        &loopback_config("[mqtt]\nmax_inflight = 0\n"),
        "mqtt.max_inflight",
        "must be between 1 and 65535",
    );
}

#[test]
fn a_configuration_without_listeners_is_refused() {
    assert_refused("no_listener", "[mqtt]\n", "listeners", "no listener");
}

#[test]
fn a_missing_file_is_refused() {
    let path = scratch_dir("missing_file").join("absent.toml");
    let (status, _, stderr) = run(&["start", "--conf", path.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("cannot read the configuration file"),
        "{stderr}"
    );
}

#[cfg(feature = "tcp")]
#[test]
fn a_port_in_use_stops_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let path = config_file(
        "port_in_use",
        &format!("[listeners.tcp]\nbind = \"{address}\"\n"),
    );
    let (status, _, stderr) = run(&["start", "--conf", path.to_str().unwrap()]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind the tcp listener to {address}")),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[cfg(feature = "tcp")]
#[test]
fn an_unreadable_session_store_stops_the_start_and_is_left_alone() {
    let dir = scratch_dir("corrupt_store");
    let db = dir.join("nanomq.db");
    // Not a database: the broker must refuse it, not start empty over it.
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&db, &garbage).unwrap();
    let config = loopback_config(&format!(
        "[persistence]\nenabled = true\npath = \"{}\"\n",
        db.display()
    ));
    let path = config_file("corrupt_store_config", &config);
    let (status, _, stderr) = run(&["start", "--conf", path.to_str().unwrap()]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("persistence.path") && stderr.contains(&db.display().to_string()),
        "the error names the setting and the file: {stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the file is untouched"
    );

    // A directory where the file should be.
    let config = loopback_config(&format!(
        "[persistence]\nenabled = true\npath = \"{}\"\n",
        dir.display()
    ));
    let path = config_file("store_is_a_directory", &config);
    let (status, _, stderr) = run(&["start", "--conf", path.to_str().unwrap()]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("persistence.path") && stderr.contains(&dir.display().to_string()),
        "{stderr}"
    );
}

#[cfg(feature = "tcp")]
#[test]
fn starts_serves_and_stops_on_sigterm() {
    let mut broker = Broker::start("sigterm", &loopback_config(""));
    let address = broker.tcp_address();
    assert!(address.ip().is_loopback(), "{address}");
    assert_ne!(address.port(), 0, "the log must give the bound port");

    // A plain TCP connection is accepted...
    let plain = TcpStream::connect(address).unwrap();
    // ... and MQTT clients are served.
    let v5 = mqtt_connect(address, 5, "cli-test-v5");
    let v311 = mqtt_connect(address, 4, "cli-test-v311");

    let status = broker.stop("TERM");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        broker.log()
    );
    let log = broker.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    // The MQTT 5 client was told why: DISCONNECT, reason 0x8B (server shutting down).
    let (kind, body) = read_packet(&v5).expect("no DISCONNECT for the MQTT 5 client");
    assert_eq!(kind, 0xE0, "expected DISCONNECT, got {kind:#04x} {body:?}");
    assert_eq!(body.first(), Some(&0x8B), "{body:?}");
    assert!(read_packet(&v5).is_none(), "the connection must then close");
    // MQTT 3.1.1 has no server DISCONNECT: the connection just closes.
    assert!(read_packet(&v311).is_none());
    drop(plain);
    // Nothing listens any more.
    assert!(TcpStream::connect(address).is_err());
}

#[cfg(feature = "tcp")]
#[test]
fn stops_on_sigint() {
    let mut broker = Broker::start("sigint", &loopback_config("[log]\nlevel = \"debug\"\n"));
    let address = broker.tcp_address();
    let _client = mqtt_connect(address, 5, "cli-test-sigint");
    let status = broker.stop("INT");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        broker.log()
    );
    assert!(broker.log().contains("SIGINT"), "{}", broker.log());
}

#[cfg(feature = "tcp")]
#[test]
fn logs_to_a_file() {
    let dir = scratch_dir("log_file").join("logs");
    let config = loopback_config(&format!(
        "[log]\nto = \"file\"\ndir = \"{}\"\nfile = \"broker.log\"\n",
        dir.display()
    ));
    let mut broker = Broker::start("log_file_broker", &config);
    let file = dir.join("broker.log");
    let deadline = Instant::now() + PATIENCE;
    let address = loop {
        let log = fs::read_to_string(&file).unwrap_or_default();
        if let Some((_, rest)) = log.split_once("listening on tcp://") {
            let address: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
            break address;
        }
        assert!(
            Instant::now() < deadline,
            "no listening line in {}:\n{log}",
            file.display()
        );
        thread::sleep(Duration::from_millis(50));
    };
    let _client = mqtt_connect(address, 4, "cli-test-file");
    let status = broker.stop("TERM");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        broker.log()
    );
    let log = fs::read_to_string(&file).unwrap();
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a log file:\n{log}"
    );
    assert!(
        !broker.log().contains("listening on"),
        "the console stays quiet"
    );
}

#[cfg(not(feature = "tcp"))]
#[test]
fn a_compiled_out_listener_is_refused() {
    assert_refused(
        "compiled_out",
        &loopback_config(""),
        "listeners.tcp",
        "built without tcp listeners",
    );
}
