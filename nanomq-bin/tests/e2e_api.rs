//! The admin HTTP API from outside, with curl and real MQTT clients: who may use it (Basic,
//! bearer keys, 401 otherwise), the clients and subscriptions it lists while mosquitto_sub
//! clients are connected, kicking one, subscribing one on its behalf, the topic tree, the
//! OpenAPI description, and bad requests (including random bodies) answered with JSON errors
//! while the broker keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Background, Broker, python, require_on_path, run, scratch_dir};
use serde_json::Value;

/// How long one step may take.
const PATIENCE: Duration = Duration::from_secs(20);

const USER: &str = "admin";
const PASSWORD: &str = "correct horse";
const KEY: &str = "k-0123456789abcdef";

/// nanomq with the API on a free loopback port, and that port.
fn start(name: &str) -> (Broker, SocketAddr) {
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[http_server]\nenabled = true\n\
         bind = \"127.0.0.1:0\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\
         api_keys = [\"{KEY}\"]\n\n[log]\nlevel = \"info\"\nto = \"console\"\n"
    );
    let broker = Broker::start_with_config(name, &config);
    let address = broker.logged_address("admin API listening on http://");
    (broker, address)
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// `curl` with `args`, then the URL of `path` on `api`.
fn curl(api: SocketAddr, args: &[&str], path: &str) -> Answer {
    require_on_path("curl", "curl");
    let out = run(
        Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
            .args(args)
            .arg(format!("http://{api}{path}")),
        PATIENCE,
    );
    assert!(out.status.success(), "curl failed: {out:?}");
    let (body, status) = out.stdout.trim_end().rsplit_once('\n').unwrap();
    Answer {
        status: status.trim().parse().unwrap(),
        body: body.to_owned(),
    }
}

/// GET as the admin user.
fn get(api: SocketAddr, path: &str) -> Answer {
    curl(api, &["-u", &format!("{USER}:{PASSWORD}")], path)
}

/// A request with a JSON body, as the admin user.
fn send(api: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    curl(
        api,
        &[
            "-u",
            &format!("{USER}:{PASSWORD}"),
            "-X",
            method,
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ],
        path,
    )
}

/// `mosquitto_sub` connected to `broker` (once its SUBACK is in), with `extra` flags.
fn subscriber(broker: &Broker, id: &str, extra: &[&str]) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut sub = Background::spawn(
        Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port(),
            ])
            .args(["-i", id, "-d", "-v"])
            .args(extra),
    );
    sub.wait_for_line(|l| l.contains("received SUBACK"), PATIENCE);
    sub
}

fn publish(broker: &Broker, topic: &str, message: &str) {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let out = run(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.port(), "-q", "1"])
            .args(["-t", topic, "-m", message]),
        PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn only_the_configured_credentials_open_the_api() {
    let (_broker, api) = start("api_auth");
    let anonymous = curl(api, &[], "/api/v4/brokers");
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["code"], 104);
    let wrong = curl(api, &["-u", "admin:guess"], "/api/v4/brokers");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["code"], 103);
    let bad_key = curl(
        api,
        &["-H", "Authorization: Bearer nope-nope-nope-nope"],
        "/api/v4/brokers",
    );
    assert_eq!(bad_key.status, 401);

    let basic = get(api, "/api/v4/brokers");
    assert_eq!(basic.status, 200, "{}", basic.body);
    let data = &basic.json()["data"][0];
    assert_eq!(data["node_status"], "Running");
    assert_eq!(data["version"], env!("CARGO_PKG_VERSION"));
    let bearer = curl(
        api,
        &["-H", &format!("Authorization: Bearer {KEY}")],
        "/api/v4/nodes",
    );
    assert_eq!(bearer.status, 200);
    assert_eq!(bearer.json()["code"], 0);
    // Even a route that does not exist says nothing to a stranger.
    assert_eq!(curl(api, &[], "/api/v4/nothing").status, 401);
    let missing = get(api, "/api/v4/nothing");
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["message"]
            .as_str()
            .unwrap()
            .contains("/api/v4/nothing")
    );
}

#[test]
fn clients_and_subscriptions_are_listed_kicked_and_subscribed_for() {
    let (broker, api) = start("api_clients");
    let mut v5 = subscriber(
        &broker,
        "sensor-5",
        &[
            "-V", "5", "-u", "alice", "-q", "1", "-t", "a/b", "-t", "a/+",
        ],
    );
    let mut v4 = subscriber(
        &broker,
        "sensor-4",
        &["-V", "mqttv311", "-c", "-q", "1", "-t", "c/#"],
    );

    let all = get(api, "/api/v4/clients").json();
    assert_eq!(all["meta"]["count"], 2, "{all}");
    let page = get(api, "/api/v4/clients?_page=2&_limit=1").json();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["client_id"], "sensor-5");
    assert_eq!(page["meta"]["hasnext"], false);
    let alice = get(api, "/api/v4/clients?username=alice").json();
    assert_eq!(alice["data"][0]["client_id"], "sensor-5");
    assert_eq!(alice["data"][0]["proto_ver"], 5);
    assert_eq!(alice["data"][0]["conn_state"], "connected");
    let v311 = get(api, "/api/v4/clients?proto_ver=4").json();
    assert_eq!(v311["data"][0]["client_id"], "sensor-4");
    assert_eq!(v311["data"][0]["clean_start"], false);

    let one = get(api, "/api/v4/clients/sensor-5").json();
    let topics: Vec<&str> = one["data"][0]["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["a/+", "a/b"]);
    assert_eq!(
        get(api, "/api/v4/subscriptions?clientid=sensor-4").json()["data"][0]["topic"],
        "c/#"
    );
    let tree = get(api, "/api/v4/topic-tree").json();
    let a = tree["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["topic"] == "a")
        .unwrap();
    assert_eq!(a["cld_cnt"], 2);

    // On the client's behalf: sensor-4 gets x/1 without having asked for it.
    let added = send(
        api,
        "POST",
        "/api/v4/mqtt/subscribe",
        r#"{"clientid":"sensor-4","topic":"x/#","qos":1}"#,
    );
    assert_eq!(added.status, 200, "{}", added.body);
    publish(&broker, "x/1", "pushed");
    v4.wait_for_line(|l| l == "x/1 pushed", PATIENCE);
    let removed = send(
        api,
        "POST",
        "/api/v4/mqtt/unsubscribe",
        r#"{"clientid":"sensor-4","topic":"x/#"}"#,
    );
    assert_eq!(removed.json()["data"]["existed"], true);

    // Kicked: the MQTT 5 client is told why and goes; the persistent 3.1.1 one, once away,
    // loses its session to a second kick.
    let kicked = send(api, "DELETE", "/api/v4/clients/sensor-5", "");
    assert_eq!(kicked.json()["data"]["kicked"], "disconnected");
    v5.wait_for_line(
        |l| l.contains("DISCONNECT") || l.contains("Administrative"),
        PATIENCE,
    );
    v4.kill();
    let deadline = Instant::now() + PATIENCE;
    while get(api, "/api/v4/clients?conn_state=connected").json()["meta"]["count"] != 0 {
        assert!(Instant::now() < deadline, "clients still connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        get(api, "/api/v4/clients/sensor-4").json()["data"][0]["conn_state"],
        "disconnected"
    );
    assert_eq!(
        send(api, "DELETE", "/api/v4/clients/sensor-4", "").json()["data"]["kicked"],
        "session_removed"
    );
    assert_eq!(get(api, "/api/v4/clients/sensor-4").status, 404);
}

#[test]
fn bad_requests_get_json_errors_that_name_the_field_and_the_broker_keeps_serving() {
    let (mut broker, api) = start("api_bad_requests");
    let cases = [
        ("/api/v4/mqtt/subscribe", "{", 109),
        ("/api/v4/mqtt/subscribe", r#"{"topic":"a"}"#, 107),
        (
            "/api/v4/mqtt/subscribe",
            r#"{"clientid":"c","topic":"a/#/b"}"#,
            108,
        ),
        (
            "/api/v4/mqtt/subscribe",
            r#"{"clientid":"c","topic":"a","qos":7}"#,
            108,
        ),
        (
            "/api/v4/mqtt/subscribe",
            r#"{"clientid":"c","topic":"a","extra":1}"#,
            109,
        ),
        ("/api/v4/mqtt/unsubscribe", r#"{"clientid":5}"#, 109),
    ];
    for (path, body, code) in cases {
        let answer = send(api, "POST", path, body);
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.body);
        assert_eq!(
            answer.json()["code"],
            code,
            "{path} {body}: {}",
            answer.body
        );
    }
    let qos = send(
        api,
        "POST",
        "/api/v4/mqtt/subscribe",
        r#"{"clientid":"c","topic":"a","qos":7}"#,
    );
    assert!(qos.json()["message"].as_str().unwrap().contains("qos"));
    assert_eq!(get(api, "/api/v4/clients?conn_state=maybe").status, 400);
    assert_eq!(get(api, "/api/v4/clients?_limit=0").status, 400);
    assert_eq!(get(api, "/api/v4/clients?unknown=1").status, 400);
    assert_eq!(send(api, "PUT", "/api/v4/brokers", "").status, 405);

    // Random bodies: every answer is a JSON error, never a crash.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..60 {
        let len = 1 + (i * 7) % 90;
        let body: String = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let chars = b"{}[]\":,0123456789abcdeftopiclntqs -\\u\x01";
                chars[(seed % chars.len() as u64) as usize] as char
            })
            .collect();
        let path = if i % 2 == 0 {
            "/api/v4/mqtt/subscribe"
        } else {
            "/api/v4/mqtt/unsubscribe"
        };
        let answer = send(api, "POST", path, &body);
        assert!(
            answer.status == 400 || answer.status == 404,
            "{body:?}: {} {}",
            answer.status,
            answer.body
        );
        assert!(answer.json()["code"].as_u64().unwrap() > 0);
    }
    broker.assert_running();
    assert_eq!(get(api, "/api/v4/brokers").status, 200);
}

#[test]
fn the_openapi_description_is_served() {
    let (_broker, api) = start("api_openapi");
    let doc = get(api, "/api/v4/openapi.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/v4/clients/{clientid}"]["delete"].is_object());
}

#[test]
fn an_api_beyond_loopback_without_credentials_does_not_start() {
    let dir = scratch_dir("api_open");
    let conf = dir.join("nanomq.toml");
    std::fs::write(
        &conf,
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[http_server]\nenabled = true\nbind = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("start")
            .arg("--conf")
            .arg(&conf),
        PATIENCE,
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("http_server") && out.stderr.contains("credentials"),
        "{}",
        out.stderr
    );
}

#[test]
fn messages_published_through_the_api_reach_mqtt_subscribers() {
    let (broker, api) = start("api_publish");
    let mut sub = subscriber(
        &broker,
        "reader",
        &["-V", "5", "-q", "1", "-t", "api/#", "-F", "%t %p %r"],
    );
    let one = send(
        api,
        "POST",
        "/api/v4/mqtt/publish",
        r#"{"topic":"api/plain","clientid":"ops","payload":"hello","qos":1,"properties":{"content_type":"text/plain","user_properties":{"k":"v"}}}"#,
    );
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["data"]["queued"], 1);
    sub.wait_for_line(|l| l == "api/plain hello 0", PATIENCE);
    // base64, retained, two topics at once.
    let two = send(
        api,
        "POST",
        "/api/v4/mqtt/publish",
        r#"{"topics":"api/a,api/b","payload":"aGk=","encoding":"base64","retain":true}"#,
    );
    assert_eq!(two.json()["data"]["queued"], 2, "{}", two.body);
    sub.wait_for_line(|l| l == "api/a hi 0", PATIENCE);
    sub.wait_for_line(|l| l == "api/b hi 0", PATIENCE);
    // Retained: a late subscriber gets it with the retain flag.
    let late = run(
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port(),
            "-t",
            "api/a",
            "-C",
            "1",
            "-W",
            "10",
            "-F",
            "%t %p %r",
        ]),
        PATIENCE,
    );
    assert_eq!(late.stdout.trim(), "api/a hi 1");
    // A batch is checked whole: one bad message publishes none.
    let bad = send(
        api,
        "POST",
        "/api/v4/mqtt/publish_batch",
        r#"[{"topic":"api/x","payload":"1"},{"topic":"api/+","payload":"2"}]"#,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("[1].topic"),
        "{}",
        bad.body
    );
    let good = send(
        api,
        "POST",
        "/api/v4/mqtt/publish_batch",
        r#"[{"topic":"api/x","payload":"1"},{"topic":"api/y","payload":"2"}]"#,
    );
    assert_eq!(good.status, 200);
    sub.wait_for_line(|l| l == "api/x 1 0", PATIENCE);
    sub.wait_for_line(|l| l == "api/y 2 0", PATIENCE);
    let lines = sub.kill().stdout;
    assert!(!lines.contains("api/+"), "{lines}");
    assert_eq!(
        send(
            api,
            "POST",
            "/api/v4/mqtt/publish",
            r#"{"topic":"a","encoding":"base64","payload":"%%"}"#
        )
        .status,
        400
    );
}

#[test]
fn the_prometheus_scrape_parses_with_prometheus_own_parser() {
    let (broker, api) = start("api_prometheus");
    let _sub = subscriber(&broker, "watcher", &["-q", "1", "-t", "p/#"]);
    publish(&broker, "p/1", "x");
    let scrape = get(api, "/api/v4/prometheus");
    assert_eq!(scrape.status, 200);
    let same_place = get(api, "/metrics");
    assert_eq!(same_place.status, 200);
    let file = scratch_dir("api_prometheus_scrape").join("scrape.txt");
    std::fs::write(&file, &scrape.body).unwrap();
    let parsed = run(
        Command::new(python())
            .arg(e2e::python_script("parse_prometheus.py"))
            .arg(&file),
        PATIENCE,
    );
    assert!(
        parsed.status.success(),
        "{}\n{}",
        parsed.stderr,
        scrape.body
    );
    let families: Value = serde_json::from_str(&parsed.stdout).unwrap();
    let value = |family: &str| families[family]["samples"][0][2].as_f64().unwrap();
    assert_eq!(value("nanomq_connections_count"), 1.0);
    assert!(value("nanomq_messages_received") >= 1.0);
    assert_eq!(families["nanomq_bytes_received"]["type"], "counter");
    // Without credentials: nothing.
    assert_eq!(curl(api, &[], "/metrics").status, 401);
}

/// `curl -i` (headers and body) with `args` on `path`: status, lower-case header lines, body.
fn curl_with_headers(api: SocketAddr, args: &[&str], path: &str) -> (u16, String, String) {
    let out = run(
        Command::new("curl")
            .args(["-s", "-i", "--max-time", "10"])
            .args(args)
            .arg(format!("http://{api}{path}")),
        PATIENCE,
    );
    assert!(out.status.success(), "curl failed: {out:?}");
    let (head, body) = out
        .stdout
        .split_once("\r\n\r\n")
        .or_else(|| out.stdout.split_once("\n\n"))
        .unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_dashboard_files_are_served_with_their_types_behind_the_api_authentication() {
    let (_broker, api) = start("api_dashboard_files");
    let basic = ["-u", "admin:correct horse"];
    for (path, content_type) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
    ] {
        let (status, head, body) = curl_with_headers(api, &basic, path);
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains(&format!("content-type: {content_type}")),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(
            head.contains("content-security-policy:") && head.contains("script-src 'self'"),
            "{head}"
        );
        assert!(!head.contains("unsafe-inline"), "{head}");
        assert!(!body.is_empty());
        let (status, head, body) = curl_with_headers(api, &[], path);
        assert_eq!(status, 401, "{path}");
        assert!(
            head.contains("www-authenticate: basic realm=\"nanomq\""),
            "{head}"
        );
        assert!(!body.contains("<html"));
        let (status, _, _) =
            curl_with_headers(api, &["-H", &format!("Authorization: Bearer {KEY}")], path);
        assert_eq!(status, 200, "{path}");
    }
    let (status, head, _) = curl_with_headers(api, &basic, "/");
    assert_eq!(status, 307);
    assert!(head.contains("location: /dashboard"), "{head}");
    assert_eq!(curl_with_headers(api, &[], "/").0, 401);
    assert_eq!(
        curl_with_headers(api, &basic, "/dashboard/nothing.js").0,
        404
    );
}

#[test]
fn a_disabled_bridge_queues_and_drains_once_enabled() {
    let upstream = Broker::start("api_bridge_upstream", "");
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[http_server]\nenabled = true\n\
         bind = \"127.0.0.1:0\"\napi_keys = [\"{KEY}\"]\n\n[[bridges]]\nname = \"cloud\"\n\
         servers = [\"mqtt://{up}\"]\nclientid = \"edge-api\"\nbackoff_max = \"500ms\"\n\
         [[bridges.forwards]]\nlocal_topic = \"up/#\"\nqos = 1\n\n[log]\nlevel = \"info\"\nto = \"console\"\n",
        up = upstream.address()
    );
    let edge = Broker::start_with_config("api_bridge_edge", &config);
    let api = edge.logged_address("admin API listening on http://");
    let bearer = format!("Authorization: Bearer {KEY}");
    let call = |method: &str, path: &str| curl(api, &["-H", &bearer, "-X", method], path);
    let bridge = || call("GET", "/api/v4/bridges/cloud").json()["data"].clone();
    let deadline = Instant::now() + PATIENCE;
    while bridge()["connected"] != true {
        assert!(Instant::now() < deadline, "the bridge never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut far = subscriber(&upstream, "far", &["-q", "1", "-t", "up/#"]);

    let disabled = call("POST", "/api/v4/bridges/cloud/disable");
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(disabled.json()["data"]["changed"], true);
    assert_eq!(bridge()["enabled"], false);
    assert_eq!(bridge()["connected"], false);
    publish(&edge, "up/while-disabled", "kept");
    std::thread::sleep(Duration::from_millis(500));
    // Nothing went up while disabled: it waits in the bridge's local session.
    assert_eq!(bridge()["forwarded"], 0);

    let enabled = call("POST", "/api/v4/bridges/cloud/enable");
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    assert_eq!(bridge()["enabled"], true);
    far.wait_for_line(|l| l == "up/while-disabled kept", PATIENCE);
    assert_eq!(call("POST", "/api/v4/bridges/nowhere/disable").status, 404);
}
