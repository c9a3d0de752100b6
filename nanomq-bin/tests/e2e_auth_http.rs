//! End to end for the HTTP authentication callout (`[auth.http]`): the real `nanomq` binary
//! on an ephemeral loopback port, an HTTP service started by the test
//! (`tests/python/auth_http_server.py`, Python's `http.server`, which records every request
//! it gets), and real clients: `mosquitto_pub` (whose exit code is the CONNACK's reason or
//! return code) and paho-mqtt (`tests/python/auth_http_client.py`, for SUBACK and PUBACK
//! reason codes).
//!
//! Covered: a live service (204 and 4xx, EMQX's JSON allow/deny/ignore, a superuser that
//! skips ACL, ACL denials as SUBACK 0x87 / 0x80 and PUBACK 0x87, the CONNACK codes of 3.1.1
//! and 5.0), a password and a topic full of characters to encode sent as JSON, as a form and
//! in a query, a service slower than the timeout (`on_error` deny and ignore), a slow ACL
//! answer that holds one client while another is served, a dead service (nothing listening:
//! closed by default, passed on with `on_error = "ignore"`), the cache (a second connect
//! is not a second request; with `cache_ttl = "0s"` it is), and https (a service whose
//! certificate `cacertfile` trusts, and one it does not).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod auth_http;
mod e2e;
#[path = "../../transport-tls/tests/support/pki.rs"]
mod pki;

use std::time::Duration;

use auth_http::{
    CLIENT_TIMEOUT, SPECIAL, SPECIAL_TOPIC, Service, V3_BAD_CREDENTIALS, V3_UNAVAILABLE,
    V5_BAD_CREDENTIALS, V5_UNAVAILABLE, acl, assert_exit, authn, broker, dead_port, mosquitto_pub,
    paho, paho_command, summary,
};
use e2e::Background;
use serde_json::Value;

#[test]
fn a_live_service_decides_with_its_status_and_emqx_json() {
    let service = Service::start(Duration::from_secs(3));
    let port = service.port;
    let broker = broker(
        "auth-http-live",
        &format!("{}{}", authn(port, "post", None), acl(port, "get", None)),
    );

    for (version, bad, unavailable) in [
        ("mqttv5", V5_BAD_CREDENTIALS, V5_UNAVAILABLE),
        ("mqttv311", V3_BAD_CREDENTIALS, V3_UNAVAILABLE),
    ] {
        let id = format!("live-{version}");
        let pubs = |user| mosquitto_pub(&broker, version, &id, Some(user), "t/ok");
        assert_exit(&pubs(("alice", "secret")), 0, "alice (204)");
        assert_exit(&pubs(("alice", "wrong")), bad, "a wrong password (401)");
        assert_exit(&pubs(("nobody", "x")), bad, "an unknown user (401)");
        assert_exit(&pubs(("jsondeny", "x")), bad, "{\"result\": \"deny\"}");
        // No other source knows a user the service ignores.
        assert_exit(&pubs(("ignored", "x")), bad, "{\"result\": \"ignore\"}");
        assert_exit(
            &pubs(("broken", "x")),
            unavailable,
            "a 500 (on_error = deny)",
        );
    }
    // The default request: a JSON body with the client's values.
    let request = service.wait_for_request("/auth", "username", "alice");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["content_type"], "application/json");
    assert_eq!(request["params"]["password"], "secret");
    assert_eq!(request["params"]["clientid"], "live-mqttv5");

    // ACL: 204 allows, 403 and {"result": "deny"} deny, per filter and per PUBLISH.
    let v5 = paho(
        &broker,
        "5",
        "acl-v5",
        Some(("alice", "secret")),
        &["t/ok", "denied/x", "jsondeny/x"],
        &["t/ok", "denied/x"],
    );
    assert_eq!(v5["connack"], 0, "{v5}");
    assert_eq!(v5["subacks"]["t/ok"], serde_json::json!([1]), "{v5}");
    assert_eq!(v5["subacks"]["denied/x"], serde_json::json!([0x87]), "{v5}");
    assert_eq!(
        v5["subacks"]["jsondeny/x"],
        serde_json::json!([0x87]),
        "{v5}"
    );
    assert_eq!(v5["pubacks"]["t/ok"], 0, "{v5}");
    assert_eq!(v5["pubacks"]["denied/x"], 0x87, "{v5}");
    let sub = service.wait_for_request("/acl", "topic", "denied/x");
    assert_eq!(sub["method"], "GET");
    assert_eq!(sub["params"]["clientid"], "acl-v5");
    let actions: Vec<(String, String)> = service
        .requests_with("/acl", "clientid", "acl-v5")
        .iter()
        .map(|r| {
            (
                r["params"]["action"].as_str().unwrap().to_owned(),
                r["params"]["access"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("subscribe".into(), "1".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("publish".into(), "2".into())),
        "{actions:?}"
    );

    let v3 = paho(
        &broker,
        "311",
        "acl-v3",
        Some(("alice", "secret")),
        &["t/ok", "denied/x"],
        &[],
    );
    assert_eq!(v3["subacks"]["t/ok"], serde_json::json!([1]), "{v3}");
    assert_eq!(v3["subacks"]["denied/x"], serde_json::json!([0x80]), "{v3}");

    // EMQX's is_superuser: every check passes without asking the ACL service.
    let admin = paho(
        &broker,
        "5",
        "acl-admin",
        Some(("admin", "root")),
        &["denied/x"],
        &["denied/x"],
    );
    assert_eq!(admin["connack"], 0, "{admin}");
    assert_eq!(
        admin["subacks"]["denied/x"],
        serde_json::json!([1]),
        "{admin}"
    );
    assert_eq!(admin["pubacks"]["denied/x"], 0, "{admin}");
    assert!(
        service
            .requests_with("/acl", "clientid", "acl-admin")
            .is_empty()
    );
    assert!(
        !service
            .requests_with("/auth", "username", "admin")
            .is_empty()
    );
    broker.stop();
}

#[test]
fn special_characters_get_through_json_forms_and_queries() {
    let service = Service::start(Duration::from_secs(3));
    let port = service.port;
    for (name, method, content_type) in [
        ("json", "post", Some("application/json")),
        ("form", "post", Some("application/x-www-form-urlencoded")),
        ("query", "get", None),
    ] {
        let broker = broker(
            &format!("auth-http-special-{name}"),
            &format!(
                "{}{}",
                authn(port, method, content_type),
                acl(port, method, content_type)
            ),
        );
        let id = format!("special-{name}");
        let output = mosquitto_pub(
            &broker,
            "mqttv5",
            &id,
            Some(("special", SPECIAL)),
            SPECIAL_TOPIC,
        );
        assert_exit(&output, 0, &format!("the special password as {name}"));
        let auth = service.requests_with("/auth", "clientid", &id);
        assert_eq!(auth.len(), 1, "{auth:?}");
        assert_eq!(auth[0]["params"]["password"], SPECIAL, "{name}: {auth:?}");
        assert_eq!(auth[0]["params"]["username"], "special");
        let acl = service.requests_with("/acl", "clientid", &id);
        assert_eq!(acl.len(), 1, "{acl:?}");
        assert_eq!(acl[0]["params"]["topic"], SPECIAL_TOPIC, "{name}: {acl:?}");
        // Almost the password is no password.
        let almost = &SPECIAL[..SPECIAL.len() - 1];
        let output = mosquitto_pub(&broker, "mqttv5", &id, Some(("special", almost)), "t/ok");
        assert_exit(
            &output,
            V5_BAD_CREDENTIALS,
            &format!("a wrong password as {name}"),
        );
        broker.stop();
    }
}

#[test]
fn a_service_slower_than_the_timeout_is_an_error() {
    let service = Service::start(Duration::from_secs(3));
    let port = service.port;
    let tables = format!("{}{}", authn(port, "post", None), acl(port, "post", None));

    let closed = broker(
        "auth-http-slow-deny",
        &format!("[auth.http]\ntimeout = \"1s\"\n{tables}"),
    );
    let output = mosquitto_pub(
        &closed,
        "mqttv5",
        "slow-1",
        Some(("slow", "secret")),
        "t/ok",
    );
    assert_exit(
        &output,
        V5_UNAVAILABLE,
        "a slow authentication, on_error = deny",
    );
    let output = mosquitto_pub(
        &closed,
        "mqttv311",
        "slow-2",
        Some(("slow", "secret")),
        "t/ok",
    );
    assert_exit(
        &output,
        V3_UNAVAILABLE,
        "a slow authentication, on_error = deny",
    );
    let v5 = paho(
        &closed,
        "5",
        "slow-acl",
        Some(("alice", "secret")),
        &["slow/x", "t/ok"],
        &[],
    );
    assert_eq!(v5["subacks"]["slow/x"], serde_json::json!([0x87]), "{v5}");
    assert_eq!(v5["subacks"]["t/ok"], serde_json::json!([1]), "{v5}");
    assert!(
        closed
            .log()
            .contains("HTTP authentication service failed: no answer within 1s"),
        "the failure is logged"
    );
    assert!(!closed.log().contains("secret"), "a password in the log");
    closed.stop();

    let open = broker(
        "auth-http-slow-ignore",
        &format!("[auth.http]\ntimeout = \"1s\"\non_error = \"ignore\"\n{tables}"),
    );
    // Ignored, the service leaves the decision to the next source: none knows the user.
    let output = mosquitto_pub(&open, "mqttv5", "slow-3", Some(("slow", "secret")), "t/ok");
    assert_exit(
        &output,
        V5_BAD_CREDENTIALS,
        "a slow authentication, on_error = ignore",
    );
    // No ACL rule is about it: no_match (allow) decides.
    let v5 = paho(
        &open,
        "5",
        "slow-acl-2",
        Some(("alice", "secret")),
        &["slow/x"],
        &[],
    );
    assert_eq!(v5["subacks"]["slow/x"], serde_json::json!([1]), "{v5}");
    open.stop();
}

#[test]
fn a_client_waiting_for_a_slow_acl_answer_holds_no_one_else() {
    let service = Service::start(Duration::from_secs(6));
    let port = service.port;
    let broker = broker(
        "auth-http-slow-acl",
        &format!(
            "[auth.http]\ntimeout = \"20s\"\n{}{}",
            authn(port, "post", None),
            acl(port, "post", None)
        ),
    );
    let mut waiting = Background::spawn(&mut paho_command(
        &broker,
        "5",
        "waiting",
        Some(("alice", "secret")),
        &["slow/x"],
        &[],
    ));
    let slow = service.wait_for_request("/acl", "clientid", "waiting");
    assert_eq!(slow["params"]["topic"], "slow/x");
    // While its answer is on its way, another client connects, subscribes and publishes.
    let other = paho(
        &broker,
        "5",
        "other",
        Some(("alice", "secret")),
        &["t/ok"],
        &["t/ok"],
    );
    assert_eq!(other["subacks"]["t/ok"], serde_json::json!([1]), "{other}");
    assert_eq!(other["pubacks"]["t/ok"], 0, "{other}");
    let waited = summary(&waiting.finish(CLIENT_TIMEOUT));
    assert_eq!(
        waited["subacks"]["slow/x"],
        serde_json::json!([1]),
        "{waited}"
    );
    let at = |summary: &Value, kind: &str| {
        summary["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["at"].as_f64().unwrap())
            .fold(f64::NAN, f64::max)
    };
    let other_done = at(&other, "puback");
    let waited_suback = at(&waited, "suback");
    assert!(
        other_done < waited_suback,
        "the other client was served ({other_done}) after the slow answer ({waited_suback})"
    );
    broker.stop();
}

#[test]
fn a_dead_service_fails_closed_unless_ignored() {
    let port = dead_port();
    let tables = format!("{}{}", authn(port, "post", None), acl(port, "post", None));

    let closed = broker("auth-http-dead-deny", &tables);
    let output = mosquitto_pub(
        &closed,
        "mqttv5",
        "dead-1",
        Some(("alice", "secret")),
        "t/ok",
    );
    assert_exit(
        &output,
        V5_UNAVAILABLE,
        "a dead service, on_error = deny (default)",
    );
    let output = mosquitto_pub(
        &closed,
        "mqttv311",
        "dead-2",
        Some(("alice", "secret")),
        "t/ok",
    );
    assert_exit(
        &output,
        V3_UNAVAILABLE,
        "a dead service, on_error = deny (default)",
    );
    let output = mosquitto_pub(&closed, "mqttv5", "dead-3", None, "t/ok");
    assert_exit(&output, V5_UNAVAILABLE, "an anonymous client, dead service");
    assert!(
        closed
            .log()
            .contains("HTTP authentication service failed: cannot connect"),
        "the failure is logged"
    );
    closed.stop();

    let open = broker(
        "auth-http-dead-ignore",
        &format!("[auth.http]\non_error = \"ignore\"\n{tables}"),
    );
    // Passed on: an anonymous client is let in by allow_anonymous (true by default), and no
    // ACL rule is about its topics (no_match = allow).
    let output = mosquitto_pub(&open, "mqttv5", "dead-4", None, "t/ok");
    assert_exit(
        &output,
        0,
        "an anonymous client, dead service, on_error = ignore",
    );
    let anonymous = paho(&open, "5", "dead-5", None, &["t/ok"], &["t/ok"]);
    assert_eq!(
        anonymous["subacks"]["t/ok"],
        serde_json::json!([1]),
        "{anonymous}"
    );
    assert_eq!(anonymous["pubacks"]["t/ok"], 0, "{anonymous}");
    // A user name no source could check is refused.
    let output = mosquitto_pub(&open, "mqttv5", "dead-6", Some(("alice", "secret")), "t/ok");
    assert_exit(
        &output,
        V5_BAD_CREDENTIALS,
        "a user, dead service, on_error = ignore",
    );
    open.stop();

    // An ACL service alone, dead: every PUBLISH and SUBSCRIBE is refused.
    let acl_only = broker("auth-http-dead-acl", &acl(port, "post", None));
    let anonymous = paho(&acl_only, "5", "dead-7", None, &["t/ok"], &["t/ok"]);
    assert_eq!(anonymous["connack"], 0, "{anonymous}");
    assert_eq!(
        anonymous["subacks"]["t/ok"],
        serde_json::json!([0x87]),
        "{anonymous}"
    );
    assert_eq!(anonymous["pubacks"]["t/ok"], 0x87, "{anonymous}");
    acl_only.stop();
}

#[test]
fn answers_are_cached_for_their_ttl() {
    let service = Service::start(Duration::from_secs(3));
    let port = service.port;
    let tables = format!("{}{}", authn(port, "post", None), acl(port, "post", None));
    let count = |path: &str, id: &str| service.requests_with(path, "clientid", id).len();

    let cached = broker("auth-http-cache", &tables);
    for _ in 0..3 {
        let output = mosquitto_pub(
            &cached,
            "mqttv5",
            "cached",
            Some(("alice", "secret")),
            "t/ok",
        );
        assert_exit(&output, 0, "alice, cached");
    }
    assert_eq!(count("/auth", "cached"), 1, "three connects, one request");
    assert_eq!(
        count("/acl", "cached"),
        1,
        "three publishes to t/ok, one request"
    );
    // Another password is another question, and a refusal is cached too.
    for _ in 0..2 {
        let output = mosquitto_pub(
            &cached,
            "mqttv5",
            "cached",
            Some(("alice", "wrong")),
            "t/ok",
        );
        assert_exit(
            &output,
            V5_BAD_CREDENTIALS,
            "a wrong password after a right one",
        );
    }
    assert_eq!(count("/auth", "cached"), 2);
    // Another topic is another ACL question.
    let output = mosquitto_pub(
        &cached,
        "mqttv5",
        "cached",
        Some(("alice", "secret")),
        "t/other",
    );
    assert_exit(&output, 0, "alice, another topic");
    assert_eq!((count("/auth", "cached"), count("/acl", "cached")), (2, 2));
    cached.stop();

    let uncached = broker(
        "auth-http-no-cache",
        &format!("[auth.http]\ncache_ttl = \"0s\"\n{tables}"),
    );
    for _ in 0..2 {
        let output = mosquitto_pub(
            &uncached,
            "mqttv5",
            "uncached",
            Some(("alice", "secret")),
            "t/ok",
        );
        assert_exit(&output, 0, "alice, uncached");
    }
    assert_eq!(
        count("/auth", "uncached"),
        2,
        "no cache: every connect asks"
    );
    assert_eq!(count("/acl", "uncached"), 2, "no cache: every publish asks");
    uncached.stop();
}

#[test]
fn https_with_the_service_s_ca() {
    let dir = e2e::scratch_dir("auth-http-pki");
    let pki = pki::Pki::new(&dir, "auth-http");
    let certificate = pki.server("service", pki::Alg::EcdsaP256);
    let service = Service::start_tls(&certificate);
    let url = format!("https://localhost:{}/auth", service.port);
    let table = |cacertfile: &str| {
        format!(
            "[auth.http]\n{cacertfile}[auth.http.authn]\nurl = \"{url}\"\n\
             params = {{ username = \"%u\", password = \"%P\", clientid = \"%c\" }}\n"
        )
    };
    let trusted = broker(
        "auth-http-https",
        &table(&format!("cacertfile = \"{}\"\n", pki.ca.display())),
    );
    let output = mosquitto_pub(
        &trusted,
        "mqttv5",
        "https-1",
        Some(("alice", "secret")),
        "t/ok",
    );
    assert_exit(&output, 0, "alice over https");
    let output = mosquitto_pub(
        &trusted,
        "mqttv5",
        "https-2",
        Some(("alice", "wrong")),
        "t/ok",
    );
    assert_exit(&output, V5_BAD_CREDENTIALS, "a wrong password over https");
    assert_eq!(service.requests_with("/auth", "username", "alice").len(), 2);
    trusted.stop();

    // The system's bundle does not know the test's CA: no connection, fail closed.
    let untrusted = broker("auth-http-https-untrusted", &table(""));
    let output = mosquitto_pub(
        &untrusted,
        "mqttv5",
        "https-3",
        Some(("alice", "secret")),
        "t/ok",
    );
    assert_exit(&output, V5_UNAVAILABLE, "an untrusted service certificate");
    assert!(
        untrusted.log().contains("cannot connect"),
        "the TLS failure is logged"
    );
    assert_eq!(
        service.requests_with("/auth", "clientid", "https-3").len(),
        0
    );
    untrusted.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
