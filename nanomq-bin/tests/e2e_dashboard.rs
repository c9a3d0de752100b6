//! The dashboard (`/dashboard` of the admin API) in headless Chromium, against the real
//! `nanomq` binary with real clients: mosquitto_sub clients (one whose client id is HTML that
//! would run script if the page parsed it), a retained message, a bridge to a second nanomq
//! (connected, forwarding) and one to a closed port (disconnected). The test loads the page
//! through `/`, checks what it shows against what it knows, searches the clients, clicks a
//! Kick button (the MQTT 5 client gets its DISCONNECT), submits the publish form (a
//! subscriber receives the message, the retained list shows it), and saves a screenshot of
//! the whole page to `target/dashboard.png`.
//!
//! Authentication, both ways a browser carries it: the main page answers the API's Basic
//! challenge through the DevTools Fetch domain, as a user answers the browser's prompt, and
//! the test checks the page's own requests reuse those credentials (one challenge for the
//! whole page); a second page, in a context of its own, opens
//! `http://user:password@host/dashboard`; a third, with no credentials, gets no dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod cdp;
mod e2e;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cdp::Chromium;
use e2e::{Background, Broker, report, require_on_path, run};
use serde_json::{Value, json};

/// How long one step may take.
const PATIENCE: Duration = Duration::from_secs(20);

const USER: &str = "admin";
const PASSWORD: &str = "dash-pw-42";

/// A client id that is markup: an image whose error handler and a script that would set
/// `window.pwned` if the page ever parsed it as HTML, and an entity that would be decoded.
const EVIL: &str = "<img src=x onerror=\"window.pwned=1\">&amp;<script>window.pwned=2</script>";

/// The retained message's payload: markup too.
const RETAINED: &str = "21.5 °C <b>hot</b>";

/// nanomq with the API and two bridges: `cloud` to `upstream`, `offline` to a closed port.
fn start(upstream: &Broker) -> (Broker, SocketAddr) {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[http_server]\nenabled = true\n\
         bind = \"127.0.0.1:0\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
         [[bridges]]\nname = \"cloud\"\nservers = [\"mqtt://{upstream}\"]\nclientid = \"edge-1\"\n\
         backoff_max = \"1s\"\n\n[[bridges.forwards]]\nlocal_topic = \"fwd/#\"\nqos = 1\n\n\
         [[bridges]]\nname = \"offline\"\nservers = [\"mqtt://{closed}\"]\nbackoff_max = \"1s\"\n\n\
         [[bridges.forwards]]\nlocal_topic = \"never/#\"\n\n\
         [log]\nlevel = \"info\"\nto = \"console\"\n",
        upstream = upstream.address(),
    );
    let broker = Broker::start_with_config("dashboard", &config);
    let address = broker.logged_address("admin API listening on http://");
    (broker, address)
}

/// `mosquitto_sub` with client id `id` and `extra` flags, once its SUBACK is in.
fn subscriber(broker: &Broker, id: &str, extra: &[&str]) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut sub = Background::spawn(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
            .arg(broker.port())
            .args(["-i", id, "-d", "-v"])
            .args(extra),
    );
    sub.wait_for_line(|l| l.contains("received SUBACK"), PATIENCE);
    sub
}

/// `mosquitto_pub` with `args`.
fn publish(broker: &Broker, args: &[&str]) {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let out = run(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(broker.port())
            .args(args),
        PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
}

/// `GET path` of the API with curl, as the admin.
fn api_get(api: SocketAddr, path: &str) -> Value {
    require_on_path("curl", "curl");
    let out = run(
        Command::new("curl")
            .args(["-s", "--fail", "--max-time", "10", "-u"])
            .arg(format!("{USER}:{PASSWORD}"))
            .arg(format!("http://{api}{path}")),
        PATIENCE,
    );
    assert!(out.status.success(), "curl {path}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

/// What the page shows: each table's cells, the counters, and whether anything from the
/// data became an element or ran.
const SNAPSHOT: &str = r"(() => {
  const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr:not(.empty)`)]
    .map((r) => [...r.cells].map((c) => c.textContent));
  const text = (id) => document.getElementById(id).textContent;
  return {
    clients: rows('clients'),
    subscriptions: rows('subscriptions'),
    retained: rows('retained'),
    bridges: rows('bridges'),
    connections: text('stat-connections'),
    subscriptionCount: text('stat-subscriptions'),
    retainedCount: text('stat-retained'),
    clientsCount: text('clients-count'),
    injected: document.querySelectorAll('main img, main script, main b, main i').length,
    pwned: typeof window.pwned,
  };
})()";

/// The strings of column `i` of `rows`.
fn column(rows: &Value, i: usize) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[i].as_str().unwrap().to_owned())
        .collect()
}

/// Clicks the button in the client table's row of `id`; returns the button's text after.
fn click_kick(chromium: &mut Chromium, page: &str, id: &str) -> Value {
    let expression = format!(
        "(() => {{
          const row = [...document.querySelectorAll('#clients tbody tr')]
            .find((r) => r.cells[0].textContent === {id});
          row.querySelector('button').click();
          const again = [...document.querySelectorAll('#clients tbody tr')]
            .find((r) => r.cells[0].textContent === {id});
          return again ? again.querySelector('button').textContent : 'gone';
        }})()",
        id = json!(id)
    );
    chromium.evaluate(page, &expression)
}

#[test]
fn the_dashboard_shows_the_broker_and_acts_on_it_in_chromium() {
    let started = Instant::now();
    let upstream = Broker::start("dashboard-upstream", "");
    let (broker, api) = start(&upstream);
    let mut on_upstream = subscriber(&upstream, "cloud-watch", &["-t", "fwd/#"]);
    let _alice = subscriber(
        &broker,
        "sensor-1",
        &["-u", "alice", "-q", "1", "-t", "sensors/#"],
    );
    let _evil = subscriber(&broker, EVIL, &["-t", "evil/#"]);
    let mut victim = subscriber(&broker, "to-kick", &["-V", "5", "-t", "kick/me"]);
    let mut form_watch = subscriber(&broker, "form-watch", &["-t", "dash/form"]);
    publish(
        &broker,
        &["-r", "-q", "1", "-t", "dash/retained/temp", "-m", RETAINED],
    );
    // Through the bridge once it is up (queued in its session until then).
    publish(&broker, &["-q", "1", "-t", "fwd/x", "-m", "up"]);
    on_upstream.wait_for_line(|l| l == "fwd/x up", PATIENCE);

    let mut chromium = Chromium::start("dashboard");
    let page = chromium.new_page(None, 1280, 900);
    chromium.answer_basic_auth(&page, USER, PASSWORD);
    chromium.navigate(&page, &format!("http://{api}/"));
    assert_eq!(
        chromium.evaluate(&page, "location.pathname"),
        "/dashboard",
        "/ redirects"
    );
    let loaded = "document.body.dataset.refreshes >= 1 \
                  && document.getElementById('status').classList.contains('ok')";
    chromium.wait_until(&page, loaded, PATIENCE);
    // One challenge for the whole page: the browser sent the answered credentials with the
    // page's files and the script's first fetches. From here on the browser is on its own:
    // every later fetch must find the credentials it keeps, or the page shows an error.
    assert_eq!(
        chromium.challenges.get(&page),
        Some(&1),
        "{:?}",
        chromium.challenges
    );
    chromium.stop_intercepting(&page);

    // The clients, subscriptions, retained message and bridges, as text.
    let wanted_bridges = "(() => { const b = [...document.querySelectorAll('#bridges tbody tr')]
        .map((r) => r.cells[0].textContent + ' ' + r.cells[2].textContent + ' ' + r.cells[3].textContent);
      return b.includes('cloud connected 1') && b.includes('offline disconnected 0'); })()";
    chromium.wait_until(&page, wanted_bridges, PATIENCE);
    let shown = chromium.evaluate(&page, SNAPSHOT);
    let ids = column(&shown["clients"], 0);
    for id in ["sensor-1", EVIL, "to-kick", "form-watch"] {
        assert!(ids.contains(&id.to_owned()), "{id} in {shown}");
    }
    assert!(
        column(&shown["clients"], 1).contains(&"alice".to_owned()),
        "{shown}"
    );
    let bridge_row = &shown["clients"].as_array().unwrap()[0];
    assert_eq!(bridge_row[0], "$bridge/cloud", "{shown}");
    assert_eq!(bridge_row[9], "bridge", "{shown}");
    let subscriptions: Vec<(String, String)> = column(&shown["subscriptions"], 0)
        .into_iter()
        .zip(column(&shown["subscriptions"], 1))
        .collect();
    assert!(
        subscriptions.contains(&("sensor-1".into(), "sensors/#".into())),
        "{shown}"
    );
    assert!(
        subscriptions.contains(&(EVIL.into(), "evil/#".into())),
        "{shown}"
    );
    let retained: Vec<(String, String)> = column(&shown["retained"], 0)
        .into_iter()
        .zip(column(&shown["retained"], 3))
        .collect();
    assert!(
        retained.contains(&("dash/retained/temp".into(), RETAINED.into())),
        "{shown}"
    );
    assert!(
        retained.iter().all(|(topic, _)| !topic.starts_with('$')),
        "$SYS hidden at first: {shown}"
    );
    let with_sys = chromium.evaluate(
        &page,
        "(() => { const box = document.getElementById('retained-sys');
           box.click();
           const topics = [...document.querySelectorAll('#retained tbody tr')]
             .map((r) => r.cells[0].textContent);
           box.click();
           return topics; })()",
    );
    assert!(
        with_sys
            .as_array()
            .unwrap()
            .contains(&json!("$SYS/broker/version")),
        "{with_sys}"
    );
    assert_eq!(
        shown["injected"], 0,
        "markup from the data became elements: {shown}"
    );
    assert_eq!(
        shown["pwned"], "undefined",
        "script from the data ran: {shown}"
    );

    // The counters are the API's (the page's last refresh and this read see the same
    // clients: nothing connects or subscribes meanwhile): four clients and each bridge's
    // session in the broker, which is internal and has no Kick button.
    let metrics = api_get(api, "/api/v4/metrics")["data"][0].clone();
    assert_eq!(
        shown["connections"],
        metrics["connections"].to_string(),
        "{shown}"
    );
    assert_eq!(shown["connections"], "6", "{shown}");
    assert_eq!(
        shown["subscriptionCount"],
        metrics["subscriptions"].to_string(),
        "{shown}"
    );
    assert_eq!(shown["clientsCount"], "6", "{shown}");

    // Search by user name, then by a piece of the markup id.
    let search = |chromium: &mut Chromium, query: &str| -> Vec<String> {
        let expression = format!(
            "(() => {{ const box = document.getElementById('client-search');
               box.value = {query}; box.dispatchEvent(new Event('input'));
               return [...document.querySelectorAll('#clients tbody tr:not(.empty)')]
                 .map((r) => r.cells[0].textContent); }})()",
            query = json!(query)
        );
        let found = chromium.evaluate(&page, &expression);
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(search(&mut chromium, "ALIC"), ["sensor-1"]);
    assert_eq!(search(&mut chromium, "<script>"), [EVIL]);
    assert!(search(&mut chromium, "nobody-has-this").is_empty());
    assert_eq!(search(&mut chromium, "").len(), 6);

    // Traffic shows on the chart: a steady 20 messages a second after a quiet sample is a
    // rate above zero, drawn as a line that is not flat.
    let refreshes = chromium.evaluate(&page, "Number(document.body.dataset.refreshes)");
    chromium.wait_until(
        &page,
        &format!("Number(document.body.dataset.refreshes) >= {refreshes} + 2"),
        PATIENCE,
    );
    let mut stream = Background::spawn(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(broker.port())
            .args(["-q", "1", "-t", "sensors/load", "-m", "x"])
            .args(["--repeat", "300", "--repeat-delay", "0.05"]),
    );
    let rising = "(() => {
        const line = document.querySelector('#chart polyline.received');
        const ys = (line.getAttribute('points') || '').split(' ').filter(Boolean)
          .map((p) => Number(p.split(',')[1]));
        return parseFloat(document.getElementById('stat-in-rate').textContent) > 0
          && ys.length >= 2 && Math.min(...ys) < Math.max(...ys);
      })()";
    chromium.wait_until(&page, rising, PATIENCE);
    stream.kill();

    // Kick: the first click asks, the second kicks; the MQTT 5 client is told.
    assert_eq!(click_kick(&mut chromium, &page, "to-kick"), "Confirm");
    click_kick(&mut chromium, &page, "to-kick");
    victim.wait_for_line(|l| l.contains("DISCONNECT"), PATIENCE);
    chromium.wait_until(
        &page,
        "document.getElementById('notice').textContent === 'to-kick: disconnected'",
        PATIENCE,
    );

    // The publish form: retained, so the retained list shows it after.
    let form = "(() => { const f = document.getElementById('publish');
        f.elements.topic.value = 'dash/form';
        f.elements.payload.value = 'from the form <i>x</i>';
        f.elements.qos.value = '1';
        f.elements.retain.checked = true;
        f.requestSubmit();
        return true; })()";
    chromium.evaluate(&page, form);
    form_watch.wait_for_line(|l| l == "dash/form from the form <i>x</i>", PATIENCE);
    chromium.wait_until(
        &page,
        "document.getElementById('publish-result').textContent
           === 'Published to dash/form: queued for 1 session(s).'",
        PATIENCE,
    );
    chromium.wait_until(
        &page,
        "[...document.querySelectorAll('#retained tbody tr')]
           .some((r) => r.cells[0].textContent === 'dash/form'
                     && r.cells[3].textContent === 'from the form <i>x</i>')",
        PATIENCE,
    );
    let after = chromium.evaluate(&page, SNAPSHOT);
    assert_eq!(after["injected"], 0, "{after}");

    assert_eq!(
        chromium.evaluate(&page, "document.getElementById('status').className"),
        "status ok",
        "the page's later fetches kept the credentials"
    );

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let screenshot = target.join("dashboard.png");
    chromium.screenshot(&page, &screenshot);
    report(&format!("dashboard screenshot: {}", screenshot.display()));

    // Credentials in the URL, in a context of its own (no answered challenge to reuse).
    let context = chromium.new_context();
    let second = chromium.new_page(Some(&context), 1024, 768);
    chromium.navigate(
        &second,
        &format!("http://{USER}:{PASSWORD}@{api}/dashboard"),
    );
    chromium.wait_until(&second, loaded, PATIENCE);
    let seen = chromium.evaluate(&second, SNAPSHOT);
    assert!(
        column(&seen["clients"], 0).contains(&"sensor-1".to_owned()),
        "{seen}"
    );
    assert_eq!(chromium.challenges.get(&second), None);

    // No credentials and nobody to answer the challenge: no dashboard.
    let context = chromium.new_context();
    let third = chromium.new_page(Some(&context), 800, 600);
    let refused = chromium.try_navigate(&third, &format!("http://{api}/dashboard"));
    assert_eq!(refused, Err("net::ERR_INVALID_AUTH_CREDENTIALS".to_owned()));
    assert_eq!(
        chromium.evaluate(&third, "document.getElementById('clients') === null"),
        true
    );

    let page_log = chromium.log().join("\n");
    chromium.close();
    assert!(!page_log.contains("exception"), "{page_log}");
    report(&format!("e2e_dashboard: {:.1?}", started.elapsed()));
    broker.stop();
}
