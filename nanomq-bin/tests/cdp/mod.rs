//! Headless Chromium driven over the DevTools protocol, for tests that read a page's DOM,
//! click in it and take screenshots (tests/e2e_browser.rs only loads a page that reports
//! over MQTT; this is for pages the test must look into).
//!
//! Chromium runs with the flags of e2e_browser.rs (fresh profile, no sandbox, no GPU, no
//! background networking) plus `--remote-debugging-port=0`: it picks a free loopback port and
//! writes it into the profile's `DevToolsActivePort`, where [`Chromium::start`] reads it. One
//! blocking WebSocket (tungstenite) carries every command; pages are attached in flat mode,
//! so each page is a session id on that one socket. Events are handled while a command's
//! answer is awaited: with [`Chromium::answer_basic_auth`] a page's 401 challenges are
//! answered as a user answers the browser's Basic prompt, and console messages and uncaught
//! exceptions are kept for failure messages.
//!
//! Every wait has a deadline, and the process is killed when the guard is dropped.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

use crate::e2e::{Background, require_on_path, scratch_dir};

/// How long Chromium may take to start and open its DevTools port.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Headless Chromium with a DevTools connection.
pub(crate) struct Chromium {
    process: Background,
    profile: PathBuf,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    /// Credentials to answer Basic challenges with, by session.
    basic: HashMap<String, (String, String)>,
    /// How many challenges were answered, by session.
    pub(crate) challenges: HashMap<String, usize>,
    /// Console messages and exceptions, for failure messages.
    log: Vec<String>,
}

impl Chromium {
    /// Starts Chromium on a fresh profile (`name` names its directory).
    pub(crate) fn start(name: &str) -> Self {
        require_on_path("chromium", "chromium");
        let profile = scratch_dir(&format!("{name}-chromium-profile"));
        let process = Background::spawn(
            Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--remote-debugging-address=127.0.0.1",
                    "--remote-debugging-port=0",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("about:blank"),
        );
        let endpoint = devtools_endpoint(&profile);
        let stream = TcpStream::connect(&endpoint.0).unwrap();
        stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
        let (socket, _) = tungstenite::client::client(endpoint.1.as_str(), stream)
            .unwrap_or_else(|e| panic!("DevTools handshake with {}: {e}", endpoint.1));
        // Short reads from here on: a wait loops over them until its own deadline.
        socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            process,
            profile,
            socket,
            next_id: 1,
            basic: HashMap::new(),
            challenges: HashMap::new(),
            log: Vec::new(),
        }
    }

    /// A new isolated browser context (its own cookies and HTTP authentication cache).
    pub(crate) fn new_context(&mut self) -> String {
        let answer = self.call(None, "Target.createBrowserContext", json!({}));
        answer["browserContextId"].as_str().unwrap().to_owned()
    }

    /// A new blank page `width` × `height` CSS pixels, in `context` or the default one;
    /// returns its session id.
    pub(crate) fn new_page(&mut self, context: Option<&str>, width: u32, height: u32) -> String {
        let mut params = json!({"url": "about:blank"});
        if let Some(context) = context {
            params["browserContextId"] = json!(context);
        }
        let target = self.call(None, "Target.createTarget", params)["targetId"]
            .as_str()
            .unwrap()
            .to_owned();
        let session = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let s = Some(session.as_str());
        self.call(s, "Page.enable", json!({}));
        self.call(s, "Runtime.enable", json!({}));
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        session
    }

    /// Answers the page's HTTP authentication challenges with `user` and `password`, as a
    /// user answers the browser's prompt (every request of the page passes through the
    /// DevTools Fetch domain from now on, and is let through unchanged, but only while the test
    /// reads the DevTools connection: call [`Chromium::stop_intercepting`] before the test
    /// waits on anything else).
    pub(crate) fn answer_basic_auth(&mut self, session: &str, user: &str, password: &str) {
        self.basic
            .insert(session.to_owned(), (user.to_owned(), password.to_owned()));
        self.call(
            Some(session),
            "Fetch.enable",
            json!({"handleAuthRequests": true, "patterns": [{"urlPattern": "*"}]}),
        );
    }

    /// Lets the page's requests go without passing through the test (challenges are no
    /// longer answered: the browser answers them with what it keeps, or fails them).
    pub(crate) fn stop_intercepting(&mut self, session: &str) {
        self.call(Some(session), "Fetch.disable", json!({}));
        self.basic.remove(session);
    }

    /// Opens `url` in the page and waits for its load event.
    pub(crate) fn navigate(&mut self, session: &str, url: &str) {
        if let Err(e) = self.try_navigate(session, url) {
            panic!("navigating to {url}: {e}");
        }
    }

    /// Opens `url` in the page and waits for its load event, or returns the browser's
    /// reason for not loading it (`net::ERR_...`).
    pub(crate) fn try_navigate(&mut self, session: &str, url: &str) -> Result<(), String> {
        let answer = self.call(Some(session), "Page.navigate", json!({"url": url}));
        if let Some(error) = answer.get("errorText") {
            return Err(error.as_str().unwrap_or_default().to_owned());
        }
        self.wait_until(session, "document.readyState === 'complete'", CALL_TIMEOUT);
        Ok(())
    }

    /// The value of the JavaScript expression `expression` in the page (promises awaited).
    pub(crate) fn evaluate(&mut self, session: &str, expression: &str) -> Value {
        let answer = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!(
                "{expression}\nthrew {exception}\npage log:\n{}",
                self.log.join("\n")
            );
        }
        answer["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is truthy and returns that value; panics with the
    /// page's log if it is not within `timeout`.
    pub(crate) fn wait_until(
        &mut self,
        session: &str,
        expression: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.evaluate(session, expression);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "`{expression}` was still {value} after {timeout:?}\npage log:\n{}",
                self.log.join("\n")
            );
            self.pump(Duration::from_millis(100));
        }
    }

    /// A PNG of the whole page (not only the viewport) written to `path`.
    pub(crate) fn screenshot(&mut self, session: &str, path: &Path) {
        let s = Some(session);
        let metrics = self.call(s, "Page.getLayoutMetrics", json!({}));
        let width = metrics["cssContentSize"]["width"].as_f64().unwrap().ceil();
        let height = metrics["cssContentSize"]["height"].as_f64().unwrap().ceil();
        self.call(
            s,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        let shot = self.call(s, "Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// The page's console messages and exceptions so far.
    pub(crate) fn log(&self) -> &[String] {
        &self.log
    }

    /// Closes the browser and waits for it to exit.
    pub(crate) fn close(mut self) {
        self.send(None, "Browser.close", &json!({}));
        self.process.finish(START_TIMEOUT);
        let _ = std::fs::remove_dir_all(&self.profile);
    }

    /// Sends a command; returns its id.
    fn send(&mut self, session: Option<&str>, method: &str, params: &Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        id
    }

    /// Sends a command and returns its result, handling the events that come meanwhile.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, &params);
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "{method}: no answer within {CALL_TIMEOUT:?}\npage log:\n{}",
                self.log.join("\n")
            );
            let Some(message) = self.receive() else {
                continue;
            };
            if message["id"].as_u64() == Some(id) {
                if let Some(error) = message.get("error") {
                    panic!("{method} {params}: {error}");
                }
                return message["result"].clone();
            }
            self.handle(&message);
        }
    }

    /// Handles the events that arrive within `time`.
    fn pump(&mut self, time: Duration) {
        let until = Instant::now() + time;
        while Instant::now() < until {
            if let Some(message) = self.receive() {
                self.handle(&message);
            }
        }
    }

    /// One message, or `None` after a short read timeout.
    fn receive(&mut self) -> Option<Value> {
        match self.socket.read() {
            Ok(Message::Text(text)) => Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!(
                "DevTools connection: {e}\npage log:\n{}",
                self.log.join("\n")
            ),
        }
    }

    /// Acts on an event: paused requests go on, challenges are answered, logs are kept.
    fn handle(&mut self, event: &Value) {
        let session = event["sessionId"].as_str().map(str::to_owned);
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Fetch.requestPaused" => {
                let request = json!({"requestId": params["requestId"]});
                self.send(session.as_deref(), "Fetch.continueRequest", &request);
            }
            "Fetch.authRequired" => {
                let key = session.clone().unwrap_or_default();
                let answer = match self.basic.get(&key) {
                    Some((user, password)) => json!({
                        "response": "ProvideCredentials", "username": user, "password": password,
                    }),
                    None => json!({"response": "CancelAuth"}),
                };
                *self.challenges.entry(key).or_default() += 1;
                let reply =
                    json!({"requestId": params["requestId"], "authChallengeResponse": answer});
                self.send(session.as_deref(), "Fetch.continueWithAuth", &reply);
            }
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["value"].to_string())
                    .collect();
                self.log
                    .push(format!("console.{}: {}", params["type"], args.join(" ")));
            }
            "Runtime.exceptionThrown" => {
                self.log
                    .push(format!("exception: {}", params["exceptionDetails"]));
            }
            _ => {}
        }
    }
}

/// The browser's DevTools address and WebSocket URL, from the profile's `DevToolsActivePort`
/// (the port on its first line, the browser target's path on the second).
fn devtools_endpoint(profile: &Path) -> (String, String) {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                let address = format!("127.0.0.1:{}", port.trim());
                let url = format!("ws://{address}{}", path.trim());
                return (address, url);
            }
        }
        assert!(
            Instant::now() < deadline,
            "Chromium wrote no {} within {START_TIMEOUT:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
