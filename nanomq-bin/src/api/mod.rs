//! The admin HTTP API (`[http_server]`, cargo feature `http-api`): NanoMQ's v4 paths and
//! JSON shapes on axum, beside the MQTT listeners. It reads the broker's own counters and
//! state (broker-core stays free of HTTP) and acts through the broker's admin calls.
//!
//! Modules: `auth` (Basic and bearer keys), `reply` (the `{"code": 0, "data": ...}` envelope
//! and errors with NanoMQ's result codes), `paging`, and one per resource: `broker_info`
//! (brokers, nodes, metrics), `clients`, `subscriptions` (with subscribe/unsubscribe on a
//! client's behalf and the topic tree), `retained`, `publish`, `prometheus` (the scrape),
//! `bridges`, `reload` (re-reading the configuration file), and `dashboard`, the web page at
//! `/dashboard` that shows them. `openapi.json` describes every route; a test keeps it and
//! [`ROUTES`] in line.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use broker_core::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{BridgeConfig, HttpServerConfig};

mod auth;
mod bridges;
mod broker_info;
mod clients;
mod dashboard;
mod paging;
mod prometheus;
mod publish;
mod reload;
mod reply;
mod retained;
mod subscriptions;

use reply::{ApiError, ResultCode};

/// The OpenAPI description of the routes.
const OPENAPI: &str = include_str!("openapi.json");

/// Every route: method and path (axum's `{param}` syntax, as in the OpenAPI file).
#[cfg(test)]
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v4/brokers"),
    ("GET", "/api/v4/nodes"),
    ("GET", "/api/v4/metrics"),
    ("GET", "/api/v4/clients"),
    ("GET", "/api/v4/clients/{clientid}"),
    ("DELETE", "/api/v4/clients/{clientid}"),
    ("GET", "/api/v4/clients/username/{username}"),
    ("GET", "/api/v4/subscriptions"),
    ("GET", "/api/v4/subscriptions/{clientid}"),
    ("POST", "/api/v4/mqtt/subscribe"),
    ("POST", "/api/v4/mqtt/unsubscribe"),
    ("GET", "/api/v4/topic-tree"),
    ("GET", "/api/v4/retained"),
    ("GET", "/api/v4/bridges"),
    ("GET", "/api/v4/bridges/{name}"),
    ("POST", "/api/v4/bridges/{name}/disable"),
    ("POST", "/api/v4/bridges/{name}/enable"),
    ("GET", "/api/v4/openapi.json"),
    ("POST", "/api/v4/mqtt/publish"),
    ("POST", "/api/v4/mqtt/publish_batch"),
    ("GET", "/api/v4/prometheus"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/style.css"),
    ("GET", "/dashboard/app.js"),
    ("POST", "/api/v4/reload"),
];

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// The broker.
    broker: Arc<Broker>,
    /// When the broker started.
    started: Instant,
    /// The bridges as configured (a reload changes them).
    bridges: watch::Receiver<Arc<Vec<BridgeConfig>>>,
    /// Re-reads the configuration file.
    reloader: crate::reload::Shared,
}

impl ApiState {
    /// The state of an API over `broker`.
    pub(crate) fn new(
        broker: Arc<Broker>,
        bridges: watch::Receiver<Arc<Vec<BridgeConfig>>>,
        reloader: crate::reload::Shared,
    ) -> Self {
        Self {
            broker,
            started: Instant::now(),
            bridges,
            reloader,
        }
    }

    /// The bridges as configured now.
    fn bridges(&self) -> Arc<Vec<BridgeConfig>> {
        Arc::clone(&self.bridges.borrow())
    }
}

/// The router, with authentication in front of every route.
fn router(state: ApiState, config: Arc<HttpServerConfig>) -> Router {
    Router::new()
        .route("/api/v4/brokers", get(broker_info::brokers))
        .route("/api/v4/nodes", get(broker_info::nodes))
        .route("/api/v4/metrics", get(broker_info::metrics))
        .route("/api/v4/clients", get(clients::list))
        .route(
            "/api/v4/clients/{clientid}",
            get(clients::one).delete(clients::kick),
        )
        .route(
            "/api/v4/clients/username/{username}",
            get(clients::by_username),
        )
        .route("/api/v4/subscriptions", get(subscriptions::list))
        .route(
            "/api/v4/subscriptions/{clientid}",
            get(subscriptions::of_client),
        )
        .route("/api/v4/mqtt/subscribe", post(subscriptions::subscribe))
        .route("/api/v4/mqtt/unsubscribe", post(subscriptions::unsubscribe))
        .route("/api/v4/topic-tree", get(subscriptions::topic_tree))
        .route("/api/v4/retained", get(retained::list))
        .route("/api/v4/bridges", get(bridges::list))
        .route("/api/v4/bridges/{name}", get(bridges::one))
        .route("/api/v4/bridges/{name}/disable", post(bridges::disable))
        .route("/api/v4/bridges/{name}/enable", post(bridges::enable))
        .route("/api/v4/openapi.json", get(openapi))
        .route("/api/v4/mqtt/publish", post(publish::one))
        .route("/api/v4/mqtt/publish_batch", post(publish::batch))
        .route("/api/v4/prometheus", get(prometheus::scrape))
        .route("/metrics", get(prometheus::scrape))
        .route("/", get(dashboard::root))
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/style.css", get(dashboard::style))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/api/v4/reload", post(reload::reload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(config, auth::require))
}

/// Binds the API's address (before anything is served, so a taken port stops the start).
pub(crate) async fn bind(config: &HttpServerConfig) -> Result<TcpListener> {
    TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("http_server.bind: cannot listen on {}", config.bind))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    config: HttpServerConfig,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if !config.has_credentials() {
        tracing::warn!(bind = %config.bind, "the admin API has no credentials: anyone who can reach this loopback address can use it");
    }
    let app = router(state, Arc::new(config));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the admin API failed")
}

/// The OpenAPI description.
async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// 404 in the API's shape.
async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

/// 405 in the API's shape.
async fn method_not_allowed(method: Method, uri: Uri) -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({
            "code": ResultCode::ReqParamError as u16,
            "message": format!("{method} is not allowed on {}", uri.path()),
        })),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_openapi_description_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut described = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                described.push((method.to_uppercase(), path.clone()));
            }
        }
        described.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        routes.sort();
        assert_eq!(described, routes);
    }
}
