//! `/api/v4/clients`: sessions with their connections (list with paging and filters, one
//! client, by user name) and kicking a client.

use axum::extract::{Path, Query, State};
use broker_core::{ClientSummary, Kick, SessionExpiry, TransportKind};
use mqtt_codec::ProtocolVersion;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::paging::{Page, paged};
use super::reply::{ApiError, ApiResult, ok};

/// The filters of the client list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientQuery {
    clientid: Option<String>,
    username: Option<String>,
    conn_state: Option<String>,
    proto_ver: Option<u8>,
    #[serde(rename = "_page")]
    page: Option<usize>,
    #[serde(rename = "_limit")]
    limit: Option<usize>,
}

/// `GET /api/v4/clients`.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ClientQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let connected = match query.conn_state.as_deref() {
        None => None,
        Some("connected") => Some(true),
        Some("disconnected") => Some(false),
        Some(other) => {
            return Err(ApiError::field(
                "conn_state",
                format!("\"{other}\": expected connected or disconnected"),
            ));
        }
    };
    if let Some(v) = query.proto_ver
        && !matches!(v, 3..=5)
    {
        return Err(ApiError::field("proto_ver", "expected 3, 4 or 5"));
    }
    let clients: Vec<Value> = state
        .broker
        .clients()
        .iter()
        .filter(|c| {
            query
                .clientid
                .as_deref()
                .is_none_or(|id| c.client_id.as_str() == id)
        })
        .filter(|c| {
            query
                .username
                .as_deref()
                .is_none_or(|u| username(c) == Some(u))
        })
        .filter(|c| connected.is_none_or(|want| c.connected == want))
        .filter(|c| query.proto_ver.is_none_or(|v| proto_ver(c) == Some(v)))
        .map(client_json)
        .collect();
    paged(
        clients,
        &Page {
            page: query.page,
            limit: query.limit,
        },
    )
}

/// `GET /api/v4/clients/{clientid}`: the client with its session.
pub(super) async fn one(State(state): State<ApiState>, Path(client_id): Path<String>) -> ApiResult {
    let detail = state
        .broker
        .client(&client_id)
        .ok_or_else(|| ApiError::not_found(format!("no client \"{client_id}\"")))?;
    let mut object = client_json(&detail.summary);
    if let Some(fields) = object.as_object_mut() {
        let subscriptions = detail
            .subscriptions
            .iter()
            .map(|s| json!({"topic": s.filter.as_str(), "qos": s.options.qos as u8}))
            .collect();
        fields.insert("subscriptions".to_owned(), subscriptions);
    }
    Ok(ok(json!([object])))
}

/// `GET /api/v4/clients/username/{username}`.
pub(super) async fn by_username(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    let clients: Vec<Value> = state
        .broker
        .clients()
        .iter()
        .filter(|c| username(c) == Some(name.as_str()))
        .map(client_json)
        .collect();
    Ok(ok(Value::Array(clients)))
}

/// `DELETE /api/v4/clients/{clientid}`: a connected client is disconnected (MQTT 5:
/// DISCONNECT 0x98), an absent one's session removed.
pub(super) async fn kick(
    State(state): State<ApiState>,
    Path(client_id): Path<String>,
) -> ApiResult {
    match state.broker.kick(&client_id) {
        Kick::Disconnected => {
            tracing::info!(client = %client_id, "kicked through the admin API");
            Ok(ok(
                json!({"client_id": client_id, "kicked": "disconnected"}),
            ))
        }
        Kick::SessionRemoved => {
            tracing::info!(client = %client_id, "session removed through the admin API");
            Ok(ok(
                json!({"client_id": client_id, "kicked": "session_removed"}),
            ))
        }
        Kick::NotFound => Err(ApiError::not_found(format!("no client \"{client_id}\""))),
    }
}

/// The client's user name.
fn username(client: &ClientSummary) -> Option<&str> {
    client.connection.as_ref()?.username.as_deref()
}

/// The protocol level of the client's connection (3, 4 or 5).
fn proto_ver(client: &ClientSummary) -> Option<u8> {
    Some(match client.connection.as_ref()?.version {
        ProtocolVersion::V3_1 => 3,
        ProtocolVersion::V3_1_1 => 4,
        ProtocolVersion::V5 => 5,
    })
}

/// A client object: NanoMQ's fields (`client_id`, `username`, `keepalive`, `conn_state`,
/// `clean_start`, `proto_name`, `proto_ver`), then the session's.
pub(super) fn client_json(client: &ClientSummary) -> Value {
    let connection = client.connection.as_ref();
    let time = |t: Option<std::time::SystemTime>| {
        t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
    };
    json!({
        "client_id": client.client_id.as_str(),
        "username": username(client),
        "keepalive": connection.map(|c| c.keep_alive),
        "conn_state": if client.connected { "connected" } else { "disconnected" },
        "clean_start": connection.map(|c| c.clean_start),
        "proto_name": connection.map(|c| if c.version == ProtocolVersion::V3_1 { "MQIsdp" } else { "MQTT" }),
        "proto_ver": proto_ver(client),
        "peerhost": connection.and_then(|c| c.peer).map(|p| p.ip().to_string()),
        "peerport": connection.and_then(|c| c.peer).map(|p| p.port()),
        "transport": connection.map(|c| transport(c.transport)),
        "connected_at": time(connection.map(|c| c.connected_at)),
        "disconnected_at": time(connection.and_then(|c| c.disconnected_at)),
        "session_expiry": match client.session_expiry {
            SessionExpiry::Immediately => json!(0),
            SessionExpiry::After(d) => json!(d.as_secs()),
            SessionExpiry::Never => json!("never"),
        },
        "queued": client.queued,
        "in_flight": client.in_flight,
        "subscriptions_count": client.subscriptions,
    })
}

/// The transport's name.
fn transport(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Tcp => "tcp",
        TransportKind::Tls => "tls",
        TransportKind::Ws => "ws",
        TransportKind::Wss => "wss",
        _ => "internal",
    }
}
