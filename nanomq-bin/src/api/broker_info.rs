//! `/api/v4/brokers`, `/api/v4/nodes` and `/api/v4/metrics` in NanoMQ's shapes: what this
//! broker is, since when it runs, and its counters (the same ones `$SYS` and Prometheus read).

use axum::extract::State;
use serde_json::{Value, json};

use super::ApiState;
use super::reply::{ApiResult, ok};

/// This build's version.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /api/v4/brokers`.
pub(super) async fn brokers(State(state): State<ApiState>) -> ApiResult {
    Ok(ok(json!([{
        "datetime": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "node_status": "Running",
        "sysdescr": "nanomq-rs",
        "uptime": uptime(&state),
        "version": VERSION,
    }])))
}

/// `GET /api/v4/nodes`.
pub(super) async fn nodes(State(state): State<ApiState>) -> ApiResult {
    let metrics = state.broker.metrics();
    Ok(ok(json!([{
        "connections": metrics.connections,
        "node_status": "Running",
        "uptime": uptime(&state),
        "version": VERSION,
    }])))
}

/// `GET /api/v4/metrics`: every counter, by name.
pub(super) async fn metrics(State(state): State<ApiState>) -> ApiResult {
    let m = state.broker.metrics();
    let object = json!({
        "uptime_seconds": state.started.elapsed().as_secs(),
        "connections": m.connections,
        "connections_total": m.connections_total,
        "takeovers": m.takeovers,
        "sessions": m.sessions,
        "retained_messages": m.retained_messages,
        "subscriptions": m.subscriptions,
        "messages_received": m.messages_received,
        "messages_sent": m.messages_sent,
        "bytes_received": m.bytes_received,
        "bytes_sent": m.bytes_sent,
        "dropped": m.dropped(),
        "dropped_no_subscribers": m.dropped_no_subscribers,
        "dropped_acl": m.dropped_acl,
        "dropped_queue_full": m.dropped_queue_full,
        "backpressure_waits": m.backpressure_waits,
        "backpressure_timeouts": m.backpressure_timeouts,
        "dropped_offline_qos0": m.dropped_offline_qos0,
        "dropped_too_large": m.dropped_too_large,
        "dropped_expired": m.dropped_expired,
        "sessions_expired": m.sessions_expired,
        "protocol_errors": m.protocol_errors,
        "limit_topic_levels": m.limits.topic_levels,
        "limit_topic_length": m.limits.topic_length,
        "limit_filters_per_packet": m.limits.filters_per_packet,
        "limit_subscriptions": m.limits.subscriptions,
        "limit_connections": m.limits.connections,
        "authentication_success": m.access.authentication_success,
        "authentication_failure": m.access.authentication_failure,
        "authorization_allow": m.access.authorization_allow,
        "authorization_deny": m.access.authorization_deny,
        "authorization_nomatch": m.access.authorization_nomatch,
    });
    Ok(ok(json!([object])))
}

/// Uptime as NanoMQ writes it: "N hours, M minutes, S seconds".
fn uptime(state: &ApiState) -> Value {
    let s = state.started.elapsed().as_secs();
    json!(format!(
        "{} hours, {} minutes, {} seconds",
        s / 3600,
        s / 60 % 60,
        s % 60
    ))
}
