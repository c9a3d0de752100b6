//! The dashboard's files as the API serves them: each with its content type and the headers
//! that keep it to itself, behind the API's authentication, `/` redirecting to the page; and
//! the files themselves keeping the rules the Content-Security-Policy and the escaping need.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use broker_core::{Broker, MqttConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{APP_JS, INDEX_HTML, STYLE_CSS};
use crate::api::{ApiState, bind, serve};
use crate::config::{HttpServerConfig, Secret};

/// An HTTP answer: status, headers (names lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on `address`, with `Authorization: authorization` if given (HTTP/1.1, one
/// request per connection).
async fn get(address: SocketAddr, path: &str, authorization: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let auth = authorization.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn the_embedded_files_are_served_with_their_types_behind_the_api_authentication() {
    let broker: Arc<Broker> = Broker::builder(MqttConfig::default()).build().unwrap();
    let config = HttpServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        basic: Some(("admin".to_owned(), Secret::Plain("pw".to_owned()))),
        api_keys: vec!["dashboard-test-key-0123".to_owned()],
    };
    let listener = bind(&config).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        config,
        ApiState::new(broker, Vec::new()),
        async move {
            let _ = stopped.await;
        },
    ));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:pw")
    );

    for (path, content_type, body) in [
        ("/dashboard", "text/html; charset=utf-8", INDEX_HTML),
        ("/dashboard/style.css", "text/css; charset=utf-8", STYLE_CSS),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            APP_JS,
        ),
    ] {
        let answer = get(address, path, Some(&basic)).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        let csp = answer.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(answer.body, body, "{path}");

        // The same authentication as the API: none is 401 with the Basic challenge that
        // makes a browser ask; a bearer key opens it too.
        let anonymous = get(address, path, None).await;
        assert_eq!(anonymous.status, 401, "{path}");
        assert_eq!(
            anonymous.header("www-authenticate"),
            Some("Basic realm=\"nanomq\"")
        );
        assert!(!anonymous.body.contains("<html"), "{path}");
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:guess")
        );
        assert_eq!(get(address, path, Some(&wrong)).await.status, 401);
        let keyed = get(address, path, Some("Bearer dashboard-test-key-0123")).await;
        assert_eq!(keyed.status, 200, "{path}");
    }

    let root = get(address, "/", Some(&basic)).await;
    assert_eq!(root.status, 307);
    assert_eq!(root.header("location"), Some("/dashboard"));
    assert_eq!(get(address, "/", None).await.status, 401);
    assert_eq!(
        get(address, "/dashboard/nothing.js", Some(&basic))
            .await
            .status,
        404
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn the_page_loads_only_its_own_files_and_the_script_never_writes_markup() {
    // The Content-Security-Policy allows no inline script or style: the page must not have
    // any, or the browser would ignore it.
    for tag in INDEX_HTML
        .match_indices("<script")
        .map(|(i, _)| &INDEX_HTML[i..])
    {
        let end = tag.find('>').unwrap();
        assert!(
            tag[..end].contains("src=\"/dashboard/app.js\""),
            "{}",
            &tag[..end]
        );
        assert!(tag[end..].starts_with("></script>"), "an inline script");
    }
    assert!(!INDEX_HTML.contains("<style"), "an inline style sheet");
    assert!(!INDEX_HTML.contains(" style="), "an inline style");
    assert!(
        !INDEX_HTML
            .split_whitespace()
            .any(|word| word.starts_with("on") && word.contains('=')),
        "an inline event handler"
    );
    assert!(INDEX_HTML.contains("href=\"/dashboard/style.css\""));
    // Client ids and payloads are attacker-controlled: the script builds text nodes only.
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!APP_JS.contains(sink), "app.js uses {sink}");
    }
    for origin in ["http://", "https://", "//cdn"] {
        assert!(!INDEX_HTML.contains(origin), "the page loads {origin}");
    }
}
