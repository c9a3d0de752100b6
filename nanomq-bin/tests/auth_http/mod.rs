//! The harness of the HTTP callout's end-to-end tests (`e2e_auth_http.rs`): the test's HTTP
//! service (`tests/python/auth_http_server.py`) and what it was asked, the `[auth.http]`
//! tables pointing at it, and the clients (`mosquitto_pub`, whose exit code is the CONNACK's
//! code, and the paho client `tests/python/auth_http_client.py`).

#![allow(dead_code, reason = "each test uses part of the harness")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::{Background, Broker, Output, python, python_script, require_on_path, run};
use crate::pki;

/// How long one client may run.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The password the service knows for `special` (as in auth_http_server.py).
pub(crate) const SPECIAL: &str = "p&w=1+%2F \"q\" \\ é/?#;";

/// A topic with characters that mean something in a query, a form or a path.
pub(crate) const SPECIAL_TOPIC: &str = "t/a b&c=d%2F/é?x;=\"";

/// mosquitto_pub's exit codes: the CONNACK's reason code (5.0) or return code (3.1.1).
pub(crate) const V5_BAD_CREDENTIALS: i32 = 0x86;
pub(crate) const V5_UNAVAILABLE: i32 = 0x88;
pub(crate) const V3_BAD_CREDENTIALS: i32 = 4;
pub(crate) const V3_UNAVAILABLE: i32 = 3;

/// The test's HTTP service, killed when dropped.
pub(crate) struct Service {
    /// Kept for its drop, which kills the process.
    _process: Background,
    /// Where the broker asks.
    pub(crate) port: u16,
    /// Where the test asks for the requests (plain HTTP, also for an https service).
    control: u16,
}

impl Service {
    /// Starts the service; its slow answers wait `slow`.
    pub(crate) fn start(slow: Duration) -> Self {
        Self::spawn(
            Command::new(python())
                .arg(python_script("auth_http_server.py"))
                .args(["--slow", &slow.as_secs_f64().to_string()]),
        )
    }

    /// Starts the service on https with `certificate`.
    pub(crate) fn start_tls(certificate: &pki::Issued) -> Self {
        Self::spawn(
            Command::new(python())
                .arg(python_script("auth_http_server.py"))
                .arg("--tls")
                .args([&certificate.cert, &certificate.key]),
        )
    }

    fn spawn(command: &mut Command) -> Self {
        let mut process = Background::spawn(command);
        let line = process.wait_for_line(|l| l.starts_with("listening "), CLIENT_TIMEOUT);
        let ports: Vec<u16> = line["listening ".len()..]
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        Self {
            _process: process,
            port: ports[0],
            control: ports[1],
        }
    }

    /// The requests the service got so far, in order.
    pub(crate) fn requests(&self) -> Vec<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.control)).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream
            .write_all(b"GET /requests HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        serde_json::from_str::<Vec<Value>>(body).unwrap()
    }

    /// The requests to `path` whose parameter `key` is `value`.
    pub(crate) fn requests_with(&self, path: &str, key: &str, value: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == path && r["params"][key] == value)
            .collect()
    }

    /// Waits until the service got a request to `path` with `key` = `value`; the first.
    pub(crate) fn wait_for_request(&self, path: &str, key: &str, value: &str) -> Value {
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        loop {
            if let Some(request) = self.requests_with(path, key, value).into_iter().next() {
                return request;
            }
            assert!(
                Instant::now() < deadline,
                "the service got no {path} request with {key} = {value}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `[auth.http.authn]` table: `method` with `content_type`, towards `port`.
pub(crate) fn authn(port: u16, method: &str, content_type: Option<&str>) -> String {
    let headers = content_type.map_or_else(String::new, |c| {
        format!("headers = {{ \"content-type\" = \"{c}\" }}\n")
    });
    format!(
        "[auth.http.authn]\nurl = \"http://127.0.0.1:{port}/auth\"\nmethod = \"{method}\"\n\
         {headers}params = {{ username = \"${{username}}\", password = \"${{password}}\", \
         clientid = \"%c\" }}\n"
    )
}

/// The `[auth.http.acl]` table, like [`authn`].
pub(crate) fn acl(port: u16, method: &str, content_type: Option<&str>) -> String {
    let headers = content_type.map_or_else(String::new, |c| {
        format!("headers = {{ \"content-type\" = \"{c}\" }}\n")
    });
    format!(
        "[auth.http.acl]\nurl = \"http://127.0.0.1:{port}/acl\"\nmethod = \"{method}\"\n\
         {headers}params = {{ username = \"%u\", clientid = \"${{clientid}}\", \
         action = \"${{action}}\", access = \"%A\", topic = \"%t\" }}\n"
    )
}

/// A broker whose configuration ends with `auth` (the `[auth.http]` tables).
pub(crate) fn broker(name: &str, auth: &str) -> Broker {
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nto = \"console\"\n\n\
         {auth}"
    );
    Broker::start_with_config(name, &config)
}

/// `mosquitto_pub` publishing one QoS 1 message to `topic` as `user` (user name, password),
/// client id `id`, speaking `version`.
pub(crate) fn mosquitto_pub(
    broker: &Broker,
    version: &str,
    id: &str,
    user: Option<(&str, &str)>,
    topic: &str,
) -> Output {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let mut command = Command::new("mosquitto_pub");
    command.args(["-h", &broker.host(), "-p", &broker.port(), "-V", version]);
    command.args(["-i", id, "-t", topic, "-m", "hello", "-q", "1"]);
    if let Some((username, password)) = user {
        command.args(["-u", username, "-P", password]);
    }
    run(&mut command, CLIENT_TIMEOUT)
}

/// Asserts that mosquitto_pub exited with `code` (0: connected and published).
#[track_caller]
pub(crate) fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: mosquitto_pub exited with {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
}

/// The paho client's command line.
pub(crate) fn paho_command(
    broker: &Broker,
    protocol: &str,
    id: &str,
    user: Option<(&str, &str)>,
    subscribe: &[&str],
    publish: &[&str],
) -> Command {
    let mut command = Command::new(python());
    command
        .arg(python_script("auth_http_client.py"))
        .args([broker.host(), broker.port()])
        .args(["--protocol", protocol, "--client-id", id]);
    if let Some((username, password)) = user {
        command.args(["--username", username, "--password", password]);
    }
    for filter in subscribe {
        command.args(["--subscribe", filter]);
    }
    for topic in publish {
        command.args(["--publish", topic]);
    }
    command
}

/// Runs the paho client to completion and returns its summary.
pub(crate) fn paho(
    broker: &Broker,
    protocol: &str,
    id: &str,
    user: Option<(&str, &str)>,
    subscribe: &[&str],
    publish: &[&str],
) -> Value {
    let output = run(
        &mut paho_command(broker, protocol, id, user, subscribe, publish),
        CLIENT_TIMEOUT,
    );
    summary(&output)
}

pub(crate) fn summary(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "auth_http_client.py failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    let last = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{}", output.stdout))
}

/// A loopback port nothing listens on (bound, then closed).
pub(crate) fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
