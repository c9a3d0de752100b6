//! `/api/v4/bridges`: each configured bridge with its state and counters.

use axum::extract::{Path, State};
use mqtt_codec::ProtocolVersion;
use serde_json::{Value, json};

use super::ApiState;
use super::reply::{ApiError, ApiResult, ok};
use crate::config::BridgeConfig;

/// `GET /api/v4/bridges`.
pub(super) async fn list(State(state): State<ApiState>) -> ApiResult {
    let bridges = state
        .bridges()
        .iter()
        .map(|b| bridge_json(&state, b))
        .collect();
    Ok(ok(Value::Array(bridges)))
}

/// `GET /api/v4/bridges/{name}`.
pub(super) async fn one(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let bridges = state.bridges();
    let bridge = bridges
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no bridge \"{name}\"")))?;
    Ok(ok(bridge_json(&state, bridge)))
}

/// A bridge object: its configuration (no password) and counters.
fn bridge_json(state: &ApiState, bridge: &BridgeConfig) -> Value {
    let counters = state
        .broker
        .bridge_counters(&bridge.name)
        .snapshot(&bridge.name);
    json!({
        "name": bridge.name,
        "servers": bridge.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "proto_ver": if bridge.version == ProtocolVersion::V5 { 5 } else { 4 },
        "clientid": bridge.client_id,
        "connected": counters.connected,
        "forwarded": counters.forwarded,
        "received": counters.received,
        "queued": counters.queued,
        "dropped": counters.dropped,
        "reconnects": counters.reconnects,
        "forwards": bridge.forwards.iter().map(|f| json!({
            "local_topic": f.filter.as_str(),
            "remote_topic": f.remote.topic,
            "prefix": f.remote.prefix,
            "suffix": f.remote.suffix,
            "qos": f.qos as u8,
        })).collect::<Vec<_>>(),
        "subscriptions": bridge.subscriptions.iter().map(|s| json!({
            "remote_topic": s.filter.as_str(),
            "local_topic": s.local.topic,
            "prefix": s.local.prefix,
            "suffix": s.local.suffix,
            "qos": s.qos as u8,
        })).collect::<Vec<_>>(),
    })
}
