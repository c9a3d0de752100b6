//! The harness the end-to-end tests share: the real `nanomq` binary started on an ephemeral
//! loopback port with a configuration written for the test, and external client programs run
//! with timeouts.
//!
//! - [`Broker`] starts `nanomq start --conf FILE`, waits (at most [`START_TIMEOUT`]) for the
//!   `listening on tcp://IP:PORT` line, keeps draining standard error in a thread so the pipe
//!   never fills, and SIGTERMs (then kills) the process when dropped. A failing test prints
//!   the broker's log.
//! - [`run`] runs a command to completion with a timeout; [`Background`] is a command that
//!   runs while the test does something else (a subscriber waiting for messages), with its
//!   standard output delivered line by line.
//! - [`require_on_path`] and [`python`] find the real clients, and fail (never skip) with the
//!   command that installs them when they are missing.
//!
//! Every process started here is owned by a guard that kills it on drop, and every wait has a
//! deadline: a broken broker or client fails a test, it never hangs it.

// Each test binary includes this module and uses only part of it.
#![allow(
    dead_code,
    reason = "each end-to-end test file uses part of the harness"
)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the broker may take to print its `listening on` line.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the broker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Makes every scratch directory name unique within one test binary.
static SCRATCH_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The workspace root (where `.venv` lives): the parent of this crate's directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// A fresh directory under the system temporary directory, unique to this process and call.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "nanomq-e2e-{name}-{}-{}-{nanos}",
        std::process::id(),
        SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Standard error of a process, collected by a thread that keeps reading it.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<String>>);

impl Collected {
    fn push_line(&self, line: &str) {
        let mut text = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        text.push_str(line);
        text.push('\n');
    }

    fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Reads `pipe` line by line until it closes: every line is appended to `into` and, while
/// someone listens, sent on the returned channel.
fn drain_lines(
    pipe: impl Read + Send + 'static,
    into: Collected,
) -> (Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    into.push_line(line);
                    // Nobody listening any more is fine: the line is in `into`.
                    let _ = tx.send(line.to_owned());
                }
            }
        }
    });
    (rx, handle)
}

/// Sends SIGTERM to `pid` (there is no libc here: `unsafe` is forbidden in this workspace).
fn sigterm(pid: u32) {
    signal(pid, "TERM");
}

/// Sends the signal `name` (`TERM`, `HUP`) to `pid` with `kill`.
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` to exit, up to `timeout`; `None` if it is still running.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A running `nanomq` on a loopback port of its own. Dropping it stops the process (SIGTERM,
/// then SIGKILL) and removes its scratch directory.
#[derive(Debug)]
pub(crate) struct Broker {
    child: Child,
    address: SocketAddr,
    log: Collected,
    dir: PathBuf,
    stopped: bool,
}

impl Broker {
    /// Starts the broker for the test called `name`, listening on `127.0.0.1:0`, with `mqtt`
    /// as the body of the configuration's `[mqtt]` table (`key = value` lines).
    pub(crate) fn start(name: &str, mqtt: &str) -> Self {
        let config = format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[mqtt]\n{mqtt}\n\n\
             [log]\nlevel = \"info\"\nto = \"console\"\n"
        );
        Self::start_with_config(name, &config)
    }

    /// Starts the broker on a complete configuration file `config`, which must have a
    /// `[listeners.tcp]` on a loopback address.
    pub(crate) fn start_with_config(name: &str, config: &str) -> Self {
        let dir = scratch_dir(name);
        let conf = dir.join("nanomq.toml");
        fs::write(&conf, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("start")
            .arg("--conf")
            .arg(&conf)
            .env_remove("RUST_LOG")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run the nanomq binary");
        let log = Collected::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, _drainer) = drain_lines(stderr, log.clone());
        let mut broker = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            dir,
            stopped: false,
        };
        broker.address = broker.wait_listening(&lines);
        broker
    }

    /// Reads log lines until `listening on tcp://IP:PORT` and returns that address.
    fn wait_listening(&mut self, lines: &Receiver<String>) -> SocketAddr {
        const NEEDLE: &str = "listening on tcp://";
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, rest)) = line.split_once(NEEDLE) {
                        let address = rest.split_whitespace().next().unwrap_or_default();
                        return address.parse().unwrap_or_else(|e| {
                            panic!("unparsable address {address:?} in {line:?}: {e}")
                        });
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "nanomq printed no `{NEEDLE}` line within {START_TIMEOUT:?}; its log:\n{}",
                    self.log()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_timeout(&mut self.child, Duration::from_secs(5));
                    panic!(
                        "nanomq exited ({status:?}) before listening; its log:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// The address the broker listens on.
    /// The address its log gives after `prefix` (`listening on ws://`, `admin API listening
    /// on http://`), waiting up to [`START_TIMEOUT`] for the line.
    pub(crate) fn logged_address(&self, prefix: &str) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some((_, rest)) = log.split_once(prefix) {
                let address = rest
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or_default();
                return address
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address {address:?} after {prefix:?}: {e}"));
            }
            assert!(
                Instant::now() < deadline,
                "no `{prefix}` line in the log:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The listening port, as text (for command lines).
    pub(crate) fn port(&self) -> String {
        self.address.port().to_string()
    }

    /// The listening IP, as text (for command lines).
    pub(crate) fn host(&self) -> String {
        self.address.ip().to_string()
    }

    /// The broker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The configuration file the broker was started on (a test rewrites it to reload).
    pub(crate) fn conf_path(&self) -> PathBuf {
        self.dir.join("nanomq.toml")
    }

    /// The broker's scratch directory (also its working directory), removed on drop.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends SIGHUP: the broker re-reads its configuration file.
    pub(crate) fn sighup(&self) {
        signal(self.pid(), "HUP");
    }

    /// Waits until the log holds `needle` at least `count` times, and returns the log;
    /// panics with the log if it does not within `timeout`.
    pub(crate) fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log did not hold {needle:?} {count} times within {timeout:?}:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the broker has logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.text()
    }

    /// The broker's resident memory in KiB (`VmRSS` in `/proc/PID/status`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("cannot read the broker's /proc status (is it still running?)");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status:\n{status}", self.pid()))
    }

    /// Panics, with the log, if the broker process has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "nanomq exited unexpectedly ({status}); its log:\n{}",
                self.log()
            );
        }
    }

    /// Kills the broker with SIGKILL (no shutdown of any kind) and waits for it to be gone.
    pub(crate) fn kill(mut self) {
        self.assert_running();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
    }

    /// Stops the broker with SIGTERM and asserts that it exits successfully, in time.
    pub(crate) fn stop(mut self) {
        self.assert_running();
        sigterm(self.pid());
        let status = wait_timeout(&mut self.child, STOP_TIMEOUT);
        self.stopped = true;
        match status {
            Some(status) => assert!(
                status.success(),
                "nanomq exited with {status} after SIGTERM; its log:\n{}",
                self.log()
            ),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "nanomq did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if !self.stopped {
            sigterm(self.pid());
            if wait_timeout(&mut self.child, STOP_TIMEOUT).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "---- nanomq log (last {} lines) ----\n{}",
                tail.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Prints `line` on standard error even while the test harness captures output (it captures
/// only `print!` and `eprint!`): measured figures belong in every test log, not only in a
/// failing test's.
pub(crate) fn report(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Panics unless `program` is on `PATH`, saying how to install it: the tests never skip a
/// client because it is missing.
pub(crate) fn require_on_path(program: &str, apt_package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "`{program}` is not on PATH. The end-to-end tests need it: run `cargo xtask test` \
         (which installs it), or `apt-get install {apt_package}`"
    );
}

/// The project's Python (`WORKSPACE/.venv/bin/python`), checked to have paho-mqtt; panics
/// with the install command otherwise.
pub(crate) fn python() -> PathBuf {
    let root = workspace_root();
    let python = root.join(".venv").join("bin").join("python");
    let hint = format!(
        "run `cargo xtask test` (which installs it), or `python3 -m venv {venv} && \
         {venv}/bin/pip install paho-mqtt==2.1.0`",
        venv = root.join(".venv").display()
    );
    assert!(
        python.is_file(),
        "the project's Python venv is missing ({}): {hint}",
        python.display()
    );
    let output = run(
        Command::new(&python).args(["-c", "import paho.mqtt.client"]),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "paho-mqtt is not installed in {}: {hint}\n{}",
        python.display(),
        output.stderr
    );
    python
}

/// A Python script of this crate's `tests/python` directory.
pub(crate) fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(name)
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Output {
    /// How it exited.
    pub(crate) status: ExitStatus,
    /// Its standard output.
    pub(crate) stdout: String,
    /// Its standard error.
    pub(crate) stderr: String,
}

/// Runs `command` to completion, its standard input closed; panics (after killing it) if it
/// takes longer than `timeout`.
pub(crate) fn run(command: &mut Command, timeout: Duration) -> Output {
    let mut background = Background::spawn(command);
    background.finish(timeout)
}

/// A command running in the background, its standard output delivered line by line, killed
/// when dropped.
#[derive(Debug)]
pub(crate) struct Background {
    description: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout: Collected,
    stderr: Collected,
    readers: Vec<JoinHandle<()>>,
    finished: bool,
}

impl Background {
    /// Starts `command` with its standard output and error captured and its standard input
    /// closed.
    pub(crate) fn spawn(command: &mut Command) -> Self {
        Self::spawn_inner(command, false)
    }

    /// Starts `command` with its standard input a pipe (see [`Background::write_stdin`]).
    pub(crate) fn spawn_with_stdin(command: &mut Command) -> Self {
        Self::spawn_inner(command, true)
    }

    fn spawn_inner(command: &mut Command, with_stdin: bool) -> Self {
        let description = format!("{command:?}");
        let mut child = command
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {description}: {e}"));
        let stdin = child.stdin.take();
        let stdout = Collected::default();
        let stderr = Collected::default();
        let (lines, out_reader) = drain_lines(child.stdout.take().unwrap(), stdout.clone());
        let (_, err_reader) = drain_lines(child.stderr.take().unwrap(), stderr.clone());
        Self {
            description,
            child,
            stdin,
            lines,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            finished: false,
        }
    }

    /// Writes `text` to the command's standard input.
    pub(crate) fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("started without a stdin pipe");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the command's standard input (end of file).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line of standard output for which `wanted` is true and returns it; panics
    /// with everything printed so far if none comes within `timeout`.
    pub(crate) fn wait_for_line(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: the awaited line did not come within {timeout:?}\n\
                     stdout:\n{}\nstderr:\n{}",
                    self.description,
                    self.stdout.text(),
                    self.stderr.text()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_timeout(&mut self.child, Duration::from_secs(5));
                    panic!(
                        "{}: exited ({status:?}) before the awaited line\n\
                         stdout:\n{}\nstderr:\n{}",
                        self.description,
                        self.stdout.text(),
                        self.stderr.text()
                    )
                }
            }
        }
    }

    /// Waits for the command to exit and returns what it printed; kills it and panics if it
    /// takes longer than `timeout`.
    pub(crate) fn finish(&mut self, timeout: Duration) -> Output {
        self.stdin = None;
        let status = wait_timeout(&mut self.child, timeout);
        self.finished = true;
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.join_readers();
            panic!(
                "{} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.description,
                self.stdout.text(),
                self.stderr.text()
            );
        };
        self.join_readers();
        Output {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    /// Kills the command (SIGKILL: it gets no chance to say goodbye to the broker) and
    /// returns what it printed.
    pub(crate) fn kill(&mut self) -> Output {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.finished = true;
        self.join_readers();
        Output {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    fn join_readers(&mut self) {
        // The pipes close when the process (and any child that inherited them) exits.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
