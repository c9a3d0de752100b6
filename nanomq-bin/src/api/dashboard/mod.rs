//! The dashboard: one small page served by the admin API at `/dashboard` (`/` redirects to
//! it), its HTML, CSS and vanilla JavaScript embedded in the binary. It sits behind the same
//! authentication as the API: the browser's Basic prompt answers the 401's challenge, and the
//! browser sends the same credentials with the page's own requests to the API (same origin,
//! same realm), so the script never holds a password. The page only reads the API and calls
//! it (kick, publish); it builds its DOM from text nodes, never from HTML, because client
//! ids, topics and payloads are whatever the clients sent, and the Content-Security-Policy
//! below lets no inline script or foreign origin run should one slip through.

use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Redirect, Response};

/// The page.
const INDEX_HTML: &str = include_str!("index.html");
/// Its style sheet.
const STYLE_CSS: &str = include_str!("style.css");
/// Its script.
const APP_JS: &str = include_str!("app.js");

/// Scripts, styles and requests from this origin only; no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// `GET /`: to the dashboard.
pub(super) async fn root() -> Redirect {
    Redirect::temporary("/dashboard")
}

/// `GET /dashboard`.
pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/style.css`.
pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /dashboard/app.js`.
pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// An embedded file with its type and the headers that keep it to itself. `no-cache`: the
/// browser revalidates, so a new binary's page is never mixed with an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests;
