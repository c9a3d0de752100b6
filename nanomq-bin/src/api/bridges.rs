//! `/api/v4/bridges`: each configured bridge with its state and counters, and disabling or
//! enabling one (stopped with its local session and queue kept; enabled again, it drains
//! that queue).

use axum::extract::{Path, State};
use mqtt_codec::ProtocolVersion;
use serde_json::{Value, json};

use super::ApiState;
use super::reply::{ApiError, ApiResult, ResultCode, ok};
use crate::config::BridgeConfig;

/// `GET /api/v4/bridges`.
pub(super) async fn list(State(state): State<ApiState>) -> ApiResult {
    let disabled = state.reloader.lock().await.disabled_bridges();
    let bridges = state
        .bridges()
        .iter()
        .map(|b| bridge_json(&state, b, &disabled))
        .collect();
    Ok(ok(Value::Array(bridges)))
}

/// `POST /api/v4/bridges/{name}/disable`.
pub(super) async fn disable(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    set_enabled(state, name, false).await
}

/// `POST /api/v4/bridges/{name}/enable`.
pub(super) async fn enable(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    set_enabled(state, name, true).await
}

/// Disables or enables the bridge `name`, in a task of its own (a client that hangs up
/// cannot leave it half done).
async fn set_enabled(state: ApiState, name: String, enabled: bool) -> ApiResult {
    if state.bridges().iter().all(|b| b.name != name) {
        return Err(ApiError::not_found(format!("no bridge \"{name}\"")));
    }
    let reloader = std::sync::Arc::clone(&state.reloader);
    let target = name.clone();
    let changed = tokio::spawn(async move {
        reloader
            .lock()
            .await
            .set_bridge_enabled(&target, enabled)
            .await
    })
    .await
    .map_err(|e| ApiError::bad_request(ResultCode::ReqParamError, e.to_string()))?
    .map_err(|e| ApiError::bad_request(ResultCode::ReqParamError, format!("{e:#}")))?;
    Ok(ok(
        json!({"name": name, "enabled": enabled, "changed": changed}),
    ))
}

/// `GET /api/v4/bridges/{name}`.
pub(super) async fn one(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult {
    let disabled = state.reloader.lock().await.disabled_bridges();
    let bridges = state.bridges();
    let bridge = bridges
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no bridge \"{name}\"")))?;
    Ok(ok(bridge_json(&state, bridge, &disabled)))
}

/// A bridge object: its configuration (no password) and counters.
fn bridge_json(state: &ApiState, bridge: &BridgeConfig, disabled: &[String]) -> Value {
    let counters = state
        .broker
        .bridge_counters(&bridge.name)
        .snapshot(&bridge.name);
    json!({
        "name": bridge.name,
        "enabled": !disabled.contains(&bridge.name),
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
