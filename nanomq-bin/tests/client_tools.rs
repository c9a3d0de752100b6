//! The client tools as a user meets them: `nanomq pub`, `nanomq sub` and `nanomq bench`,
//! run as processes against the real `nanomq` broker (TCP, and TLS and WebSocket when built
//! with those features) and against Mosquitto (Debian's `mosquitto`), each on an ephemeral
//! loopback port.
//!
//! Covered: round trips at every MQTT version and QoS on both brokers; `--json`, user
//! properties, retained messages and `-R`; `-l`, `-f`, `-n` and `--url`; every exit code
//! (refused with the broker's reason, timeout, usage, network); a bench run whose counts are
//! exact (nothing lost, duplicated or out of order at QoS 1 and 2); TLS with `--cafile`,
//! `--insecure` and client certificates; ws:// and wss://.
//!
//! A missing `mosquitto` fails the Mosquitto tests with the command that installs it: they
//! never skip. Every process is killed if its test fails, and every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[cfg(feature = "tls")]
#[path = "../../transport-tls/tests/support/pki.rs"]
mod pki;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one command may run.
const PATIENCE: Duration = Duration::from_secs(30);

/// The exit codes `nanomq pub/sub --help` documents.
const EXIT_NETWORK: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_REFUSED: i32 = 3;
const EXIT_TIMEOUT: i32 = 4;

/// A scratch directory of the test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("client-tools")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary under test.
fn nanomq() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nanomq"));
    command.env_remove("RUST_LOG");
    command
}

/// A child process killed on drop.
struct Process {
    child: Child,
    /// Standard error, as read so far.
    stderr: Arc<Mutex<String>>,
    /// Each line of standard error as it comes.
    lines: Receiver<String>,
    /// Standard output, read to its end by a thread.
    stdout: Option<thread::JoinHandle<String>>,
}

impl Process {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Self {
            child,
            stderr,
            lines,
            stdout: Some(stdout),
        }
    }

    /// Waits for a line of standard error containing `needle`.
    fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no `{needle}` on standard error within {PATIENCE:?}:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Waits for the exit (killing the process after [`PATIENCE`]).
    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "still running after {PATIENCE:?}:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        // The stderr thread ends with the pipe.
        thread::sleep(Duration::from_millis(20));
        let stderr = self.stderr.lock().unwrap().clone();
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a command ended.
#[derive(Debug)]
struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }
}

/// Runs `command` to its end.
fn run(command: Command) -> Finished {
    Process::spawn(command).finish()
}

/// Runs `command` with `input` on standard input.
fn run_with_input(mut command: Command, input: &[u8]) -> Finished {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "still running after {PATIENCE:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    Finished {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A broker under test.
trait Target {
    /// `-h HOST -p PORT` (or a URL) for the client tools.
    fn address(&self) -> SocketAddr;

    /// `nanomq TOOL` towards this broker's TCP listener.
    fn tool(&self, tool: &str) -> Command {
        let address = self.address();
        let mut command = nanomq();
        command
            .arg(tool)
            .args(["-h", &address.ip().to_string()])
            .args(["-p", &address.port().to_string()]);
        command
    }
}

/// The nanomq broker, with its listeners' addresses.
struct Nanomq {
    _process: Process,
    addresses: HashMap<String, SocketAddr>,
}

impl Nanomq {
    /// A broker on `127.0.0.1:0` (TCP) and the `extra` listener tables; waits until every
    /// listener has logged its address.
    fn start(name: &str, extra: &str) -> Self {
        let dir = scratch(name);
        let conf = dir.join("nanomq.toml");
        fs::write(
            &conf,
            format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n{extra}\n[log]\nlevel = \"info\"\n"),
        )
        .unwrap();
        let listeners = 1 + extra.matches("[listeners.").count();
        let mut command = nanomq();
        command.args(["start", "--conf"]).arg(&conf);
        let process = Process::spawn(command);
        let mut addresses = HashMap::new();
        while addresses.len() < listeners {
            let line = process.wait_for_line("listening on ");
            let (_, url) = line.split_once("listening on ").unwrap();
            let (scheme, rest) = url.split_once("://").unwrap();
            let address = rest
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap();
            addresses.insert(scheme.to_owned(), address.parse().unwrap());
        }
        Self {
            _process: process,
            addresses,
        }
    }

    /// The address of the `scheme` listener (`tcp`, `ssl`, `ws`, `wss`).
    fn listener(&self, scheme: &str) -> SocketAddr {
        self.addresses[scheme]
    }
}

impl Target for Nanomq {
    fn address(&self) -> SocketAddr {
        self.listener("tcp")
    }
}

/// Mosquitto on a free port with `extra` configuration lines.
struct Mosquitto {
    _process: Process,
    address: SocketAddr,
}

/// Mosquitto's path: Debian installs it in /usr/sbin.
fn mosquitto_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto is not installed: run `cargo xtask test`, or \
                 `apt-get install -y mosquitto`"
            )
        })
}

impl Mosquitto {
    fn start(name: &str, extra: &str) -> Self {
        let binary = mosquitto_binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = scratch(name).join("mosquitto.conf");
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\n\
                 log_type error\n{extra}\n"
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        command.arg("-c").arg(&conf);
        let mut process = Process::spawn(command);
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(address).is_err() {
            assert!(
                process.child.try_wait().unwrap().is_none(),
                "mosquitto exited:\n{}",
                process.stderr.lock().unwrap()
            );
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            thread::sleep(Duration::from_millis(20));
        }
        Self {
            _process: process,
            address,
        }
    }
}

impl Target for Mosquitto {
    fn address(&self) -> SocketAddr {
        self.address
    }
}

/// `nanomq sub` with `args`, once its subscription is acknowledged (it runs with `-d`).
fn subscribed(mut command: Command, args: &[&str]) -> Process {
    command.args(args).arg("-d");
    let process = Process::spawn(command);
    process.wait_for_line("<- SubAck");
    process
}

/// Publishes and receives one message at every version and QoS on `target`.
fn round_trips(target: &impl Target, prefix: &str) {
    for version in ["3.1", "mqttv311", "5"] {
        for qos in ["0", "1", "2"] {
            let topic = format!("{prefix}/{version}/{qos}");
            let sub = subscribed(
                target.tool("sub"),
                &[
                    "-V", version, "-t", &topic, "-q", qos, "-C", "1", "-v", "-W", "20",
                ],
            );
            let message = format!("hello at v{version} q{qos}");
            run({
                let mut pub_ = target.tool("pub");
                pub_.args(["-V", version, "-t", &topic, "-q", qos, "-m", &message]);
                pub_
            })
            .assert_code(0);
            let finished = sub.finish();
            finished.assert_code(0);
            assert_eq!(
                finished.stdout,
                format!("{topic} {message}\n"),
                "{finished:#?}"
            );
        }
    }
}

#[test]
fn pub_and_sub_round_trip_at_every_version_and_qos_on_nanomq() {
    let broker = Nanomq::start("round-trips", "");
    round_trips(&broker, "nanomq");
}

#[test]
fn pub_and_sub_round_trip_at_every_version_and_qos_on_mosquitto() {
    let broker = Mosquitto::start("round-trips-mosquitto", "allow_anonymous true");
    round_trips(&broker, "mosquitto");
}

#[test]
fn json_lines_carry_user_properties_and_the_retain_flag() {
    let broker = Nanomq::start("json", "");
    let mut publish = broker.tool("pub");
    publish.args(["-V", "5", "-t", "r/1", "-q", "1", "-r", "-m", "{\"x\":1}"]);
    publish.args(["-D", "origin=lab", "--user-property", "k=v=w"]);
    run(publish).assert_code(0);

    let mut sub = broker.tool("sub");
    sub.args([
        "-V", "5", "-t", "r/1", "-q", "1", "-C", "1", "-W", "20", "--json",
    ]);
    let finished = run(sub);
    finished.assert_code(0);
    let line: serde_json::Value = serde_json::from_str(finished.stdout.trim()).unwrap();
    assert_eq!(line["topic"], "r/1");
    assert_eq!(line["qos"], 1);
    assert_eq!(line["retain"], true);
    assert_eq!(line["payload"], "{\"x\":1}");
    assert_eq!(
        line["user_properties"],
        serde_json::json!([{"name": "origin", "value": "lab"}, {"name": "k", "value": "v=w"}])
    );

    // -R: the retained message is not printed, so the count is never reached.
    let mut stale = broker.tool("sub");
    stale.args(["-t", "r/1", "-R", "-C", "1", "-W", "1"]);
    let finished = run(stale);
    finished.assert_code(EXIT_TIMEOUT);
    assert_eq!(finished.stdout, "");

    // -n -r deletes it.
    let mut delete = broker.tool("pub");
    delete.args(["-t", "r/1", "-r", "-n"]);
    run(delete).assert_code(0);
    let mut gone = broker.tool("sub");
    gone.args(["-t", "r/1", "-C", "1", "-W", "1"]);
    run(gone).assert_code(EXIT_TIMEOUT);
}

#[test]
fn messages_from_stdin_lines_a_file_and_a_url() {
    let broker = Nanomq::start("sources", "");
    let sub = subscribed(
        broker.tool("sub"),
        &["-t", "src/#", "-C", "5", "-v", "-q", "1"],
    );

    let mut lines = broker.tool("pub");
    lines.args(["-t", "src/lines", "-l", "-q", "1"]);
    run_with_input(lines, b"one\ntwo\nthree\n").assert_code(0);

    let file = scratch("sources-file").join("payload.bin");
    fs::write(&file, "from a file").unwrap();
    let mut from_file = broker.tool("pub");
    from_file.args(["-t", "src/file", "-f"]).arg(&file);
    run(from_file).assert_code(0);

    let mut by_url = nanomq();
    by_url.args([
        "pub",
        "--url",
        &format!("mqtt://{}/src/url", broker.address()),
        "-m",
        "by url",
    ]);
    run(by_url).assert_code(0);

    let finished = sub.finish();
    finished.assert_code(0);
    assert_eq!(
        finished.stdout,
        "src/lines one\nsrc/lines two\nsrc/lines three\nsrc/file from a file\nsrc/url by url\n"
    );
}

#[test]
fn exit_codes_tell_refused_timeout_usage_and_network_errors() {
    let broker = Nanomq::start("exit-codes", "");

    // Refused: our broker has no extended authentication, so it refuses the method (0x8C).
    let mut refused = broker.tool("sub");
    refused.args(["-V", "5", "-t", "x", "--auth-method", "SCRAM-SHA-1"]);
    let finished = run(refused);
    finished.assert_code(EXIT_REFUSED);
    assert!(
        finished.stderr.contains("Bad authentication method (0x8C)"),
        "{finished:#?}"
    );

    // Timeout: nothing arrives within -W.
    let started = Instant::now();
    let mut quiet = broker.tool("sub");
    quiet.args(["-t", "nothing/here", "-W", "1"]);
    let finished = run(quiet);
    finished.assert_code(EXIT_TIMEOUT);
    assert!(
        finished.stderr.contains("timed out after 1s"),
        "{finished:#?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    // Usage: a bad value, a missing topic, -c without a client id, v5 flags on v3.1.1.
    for args in [
        &["sub", "-t", "x", "-q", "3"][..],
        &["pub", "-m", "no topic"],
        &["sub", "-t", "x", "-c"],
        &["pub", "-t", "x", "-m", "y", "-D", "a=b"],
        &["pub", "-t", "x", "-m", "y", "--url", "http://host"],
    ] {
        let mut usage = nanomq();
        usage.args(args);
        let finished = run(usage);
        finished.assert_code(EXIT_USAGE);
        assert!(finished.stderr.contains("error"), "{args:?}: {finished:#?}");
    }

    // Network: nothing listens on the port any more.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut unreachable = nanomq();
    unreachable.args(["pub", "-h", "127.0.0.1", "-p", &closed.port().to_string()]);
    unreachable.args(["-t", "x", "-m", "y"]);
    let finished = run(unreachable);
    finished.assert_code(EXIT_NETWORK);
    assert!(finished.stderr.contains("cannot connect"), "{finished:#?}");

    // --help documents the codes; -h is the host.
    let mut help = nanomq();
    help.args(["sub", "--help"]);
    let finished = run(help);
    finished.assert_code(0);
    assert!(finished.stdout.contains("EXIT CODES"), "{finished:#?}");
    assert!(finished.stdout.contains("-h, --host"), "{finished:#?}");
}

#[test]
fn a_refusal_by_mosquitto_is_reported_with_its_reason() {
    let broker = Mosquitto::start("refused-mosquitto", "allow_anonymous false");
    for (version, reason) in [("3.1.1", "(0x87)"), ("5", "(0x87)")] {
        let mut sub = broker.tool("sub");
        sub.args(["-V", version, "-t", "x"]);
        let finished = run(sub);
        finished.assert_code(EXIT_REFUSED);
        assert!(finished.stderr.contains(reason), "{version}: {finished:#?}");
    }
}

/// Runs `nanomq bench pairs` against `target` and checks that every message was delivered
/// exactly once, in order.
fn exact_bench(target: &impl Target, qos: &str, count: u64) {
    let mut bench = target.tool("bench");
    bench.args(["pairs", "-c", "5", "--count", &count.to_string(), "-q", qos]);
    bench.args(["--json", "--quiet"]);
    let finished = run(bench);
    finished.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(finished.stdout.trim()).unwrap();
    let m = &report["messages"];
    let total = 5 * count;
    for field in ["sent", "acked", "expected", "received", "unique"] {
        assert_eq!(m[field], total, "{field}: {report:#}");
    }
    for field in [
        "lost",
        "duplicated",
        "out_of_order",
        "unexpected",
        "ack_errors",
    ] {
        assert_eq!(m[field], 0, "{field}: {report:#}");
    }
    assert_eq!(report["connections"]["connected"], 10, "{report:#}");
    assert_eq!(report["connections"]["failed"], 0, "{report:#}");
    assert_eq!(report["latency_us"]["samples"], total, "{report:#}");
}

#[test]
fn bench_accounts_for_every_message_on_nanomq() {
    let broker = Nanomq::start("bench", "");
    exact_bench(&broker, "1", 200);
    exact_bench(&broker, "2", 100);
}

#[test]
fn bench_accounts_for_every_message_on_mosquitto() {
    // Our publishers keep 32 messages in flight; an MQTT 3.1.1 client cannot learn the
    // broker's limit, and Mosquitto silently drops QoS 2 messages beyond its own (20 by
    // default) while completing their handshake.
    let broker = Mosquitto::start(
        "bench-mosquitto",
        "allow_anonymous true\nmax_inflight_messages 32",
    );
    exact_bench(&broker, "1", 200);
    exact_bench(&broker, "2", 100);
}

#[test]
fn bench_conn_reports_the_broker_memory() {
    let broker = Nanomq::start("bench-conn", "");
    let pid = broker._process.child.id().to_string();
    let mut bench = broker.tool("bench");
    bench.args([
        "conn",
        "-c",
        "50",
        "-d",
        "1s",
        "--rss-pid",
        &pid,
        "--json",
        "--quiet",
    ]);
    let finished = run(bench);
    finished.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(finished.stdout.trim()).unwrap();
    assert_eq!(report["connections"]["connected"], 50, "{report:#}");
    assert!(
        report["rss"]["after_kib"].as_u64().unwrap() > 0,
        "{report:#}"
    );
}

/// Certificates for the TLS tests: a CA, a server certificate, a client certificate.
#[cfg(feature = "tls")]
struct Certificates {
    ca: PathBuf,
    server: pki::Issued,
    client: pki::Issued,
}

#[cfg(feature = "tls")]
impl Certificates {
    fn generate(dir: &std::path::Path) -> Self {
        let ca = pki::Pki::new(dir, "client-tools");
        Self {
            server: ca.server("server", pki::Alg::EcdsaP256),
            client: ca.client("client", "tester"),
            ca: ca.ca.clone(),
        }
    }

    /// The TLS keys of a listener table.
    fn keys(&self, extra: &str) -> String {
        format!(
            "certfile = \"{}\"\nkeyfile = \"{}\"\ncacertfile = \"{}\"\n{extra}\n",
            self.server.cert.display(),
            self.server.key.display(),
            self.ca.display()
        )
    }
}

#[cfg(any(feature = "tls", feature = "ws"))]
/// Publishes one message with `pub_args` and receives it with `sub_args` (both get the
/// broker address and TLS flags from the caller).
fn round_trip_with(sub_args: &[String], pub_args: &[String], topic: &str) {
    let mut sub = nanomq();
    sub.arg("sub").args(sub_args);
    let sub = subscribed(sub, &["-t", topic, "-C", "1", "-q", "1", "-W", "20"]);
    let mut publish = nanomq();
    publish
        .arg("pub")
        .args(pub_args)
        .args(["-t", topic, "-m", "secret", "-q", "1"]);
    run(publish).assert_code(0);
    let finished = sub.finish();
    finished.assert_code(0);
    assert_eq!(finished.stdout, "secret\n");
}

#[cfg(any(feature = "tls", feature = "ws"))]
fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(feature = "tls")]
#[test]
fn pub_and_sub_over_tls_with_a_ca_file_insecure_and_a_client_certificate() {
    let dir = scratch("tls");
    let certs = Certificates::generate(&dir);
    let ssl = format!(
        "[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{}",
        certs.keys("")
    );
    let broker = Nanomq::start("tls-broker", &ssl);
    let address = broker.listener("ssl");
    let ca = certs.ca.display().to_string();
    let url = format!("mqtts://localhost:{}", address.port());
    let by_ip = ["-h", "127.0.0.1", "-p", &address.port().to_string()].map(str::to_owned);

    // A URL naming the host of the certificate, with the CA; then by IP address with --cafile
    // (which turns TLS on), and --insecure.
    let with_ca = strings(&["--url", &url, "--cafile", &ca]);
    round_trip_with(&with_ca, &with_ca, "tls/url");
    let mut by_ip_ca = by_ip.to_vec();
    by_ip_ca.extend(strings(&["--cafile", &ca, "-V", "5"]));
    let mut insecure = by_ip.to_vec();
    insecure.push("--insecure".to_owned());
    round_trip_with(&by_ip_ca, &insecure, "tls/ip");

    // Without the CA, the broker's certificate is not trusted: a network error.
    let mut untrusted = nanomq();
    untrusted.args(["pub", "--url", &url, "-t", "x", "-m", "y"]);
    let finished = run(untrusted);
    finished.assert_code(EXIT_NETWORK);
    assert!(finished.stderr.contains("TLS error"), "{finished:#?}");

    // A broker that requires client certificates takes ours.
    let mutual = format!(
        "[listeners.ssl]\nbind = \"127.0.0.1:0\"\n{}",
        certs.keys("verify_peer = true\nfail_if_no_peer_cert = true")
    );
    let broker = Nanomq::start("tls-mutual", &mutual);
    let url = format!("mqtts://localhost:{}", broker.listener("ssl").port());
    let cert = certs.client.cert.display().to_string();
    let key = certs.client.key.display().to_string();
    let with_cert = strings(&[
        "--url", &url, "--cafile", &ca, "--cert", &cert, "--key", &key,
    ]);
    round_trip_with(&with_cert, &with_cert, "tls/mutual");
    let mut without = nanomq();
    without.args(["pub", "--url", &url, "--cafile", &ca, "-t", "x", "-m", "y"]);
    run(without).assert_code(EXIT_NETWORK);
}

#[cfg(feature = "ws")]
#[test]
fn pub_and_sub_over_websocket() {
    let broker = Nanomq::start(
        "ws",
        "[listeners.ws]\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\"\n",
    );
    let url = format!("ws://{}/mqtt", broker.listener("ws"));
    let args = strings(&["--url", &url, "-V", "5"]);
    round_trip_with(&args, &args, "ws/one");
    // Mixed: published over TCP, received over WebSocket.
    let tcp = broker.address();
    let over_tcp = strings(&["-h", "127.0.0.1", "-p", &tcp.port().to_string()]);
    round_trip_with(&args, &over_tcp, "ws/two");
    // A bench over WebSocket counts every message too.
    let mut bench = nanomq();
    bench.args([
        "bench", "pairs", "--url", &url, "-c", "2", "--count", "100", "-q", "1",
    ]);
    bench.args(["--json", "--quiet"]);
    let finished = run(bench);
    finished.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(finished.stdout.trim()).unwrap();
    assert_eq!(report["messages"]["unique"], 200, "{report:#}");
    assert_eq!(report["messages"]["lost"], 0, "{report:#}");
}

#[cfg(all(feature = "ws", feature = "tls"))]
#[test]
fn pub_and_sub_over_secure_websocket() {
    let dir = scratch("wss");
    let certs = Certificates::generate(&dir);
    let wss = format!(
        "[listeners.wss]\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\"\n{}",
        certs.keys("")
    );
    let broker = Nanomq::start("wss-broker", &wss);
    let url = format!("wss://localhost:{}/mqtt", broker.listener("wss").port());
    let args = strings(&["--url", &url, "--cafile", &certs.ca.display().to_string()]);
    round_trip_with(&args, &args, "wss/one");
}
