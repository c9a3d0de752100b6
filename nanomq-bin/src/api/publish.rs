//! `POST /api/v4/mqtt/publish` and `/mqtt/publish_batch` (EMQX's and NanoMQ's v4 bodies):
//! a message published by the operator, to one topic or several (`topics`, comma
//! separated), with a plain or base64 payload and MQTT 5 properties.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use base64::Engine;
use broker_core::Message;
use bytes::Bytes;
use mqtt_codec::{PayloadFormat, PublishProperties, QoS, TopicName, UserProperty};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::reply::{ApiError, ApiResult, ok};

/// The most messages one batch may carry.
const MAX_BATCH: usize = 1000;

/// One publication.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishBody {
    topic: Option<String>,
    topics: Option<String>,
    /// Who publishes, for the log (EMQX asks for it; no session is needed).
    clientid: Option<String>,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
    #[serde(default)]
    properties: Properties,
}

/// How `payload` is written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Plain,
    Base64,
}

/// MQTT 5 properties of the message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Properties {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    response_topic: Option<String>,
    correlation_data: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    user_properties: BTreeMap<String, String>,
}

/// `POST /api/v4/mqtt/publish`.
pub(super) async fn one(
    State(state): State<ApiState>,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let queued = publish(&state, body, "")?;
    Ok(ok(json!({"queued": queued})))
}

/// `POST /api/v4/mqtt/publish_batch`: all are checked before any is published.
pub(super) async fn batch(
    State(state): State<ApiState>,
    body: Result<Json<Vec<PublishBody>>, JsonRejection>,
) -> ApiResult {
    let Json(bodies) = body?;
    if bodies.len() > MAX_BATCH {
        return Err(ApiError::field(
            "",
            format!("at most {MAX_BATCH} messages per batch"),
        ));
    }
    let messages = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| messages(body, &format!("[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let results: Vec<Value> = messages
        .into_iter()
        .map(|m| json!({"queued": m.into_iter().map(|m| state.broker.publish_admin(m)).sum::<usize>()}))
        .collect();
    Ok(ok(Value::Array(results)))
}

/// Checks and publishes one body; how many sessions its messages were queued for.
fn publish(state: &ApiState, body: PublishBody, at: &str) -> Result<usize, ApiError> {
    let publisher = body.clientid.clone();
    let messages = messages(body, at)?;
    let topics: Vec<String> = messages.iter().map(|m| m.topic.to_string()).collect();
    let queued = messages
        .into_iter()
        .map(|m| state.broker.publish_admin(m))
        .sum();
    tracing::debug!(
        ?publisher,
        ?topics,
        queued,
        "published through the admin API"
    );
    Ok(queued)
}

/// The messages a body describes (one per topic), each field checked.
fn messages(body: PublishBody, at: &str) -> Result<Vec<Message>, ApiError> {
    let field = |name: &str| format!("{at}{name}");
    let topics: Vec<String> = match (body.topic, body.topics) {
        (Some(t), None) => vec![t],
        (None, Some(ts)) => ts.split(',').map(|t| t.trim().to_owned()).collect(),
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                &field("topics"),
                "give topic or topics, not both",
            ));
        }
        (None, None) => return Err(ApiError::missing(&field("topic"))),
    };
    let qos = QoS::from_u8(body.qos)
        .ok_or_else(|| ApiError::field(&field("qos"), "expected 0, 1 or 2"))?;
    let payload = match body.encoding {
        Encoding::Plain => Bytes::from(body.payload),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(body.payload.as_bytes())
            .map(Bytes::from)
            .map_err(|e| ApiError::field(&field("payload"), format!("not base64: {e}")))?,
    };
    let p = body.properties;
    let payload_format_indicator = match p.payload_format_indicator {
        None => None,
        Some(0) => Some(PayloadFormat::Unspecified),
        Some(1) => Some(PayloadFormat::Utf8),
        Some(_) => {
            return Err(ApiError::field(
                &field("properties.payload_format_indicator"),
                "expected 0 or 1",
            ));
        }
    };
    if payload_format_indicator == Some(PayloadFormat::Utf8)
        && std::str::from_utf8(&payload).is_err()
    {
        return Err(ApiError::field(
            &field("payload"),
            "not UTF-8, but the format says it is",
        ));
    }
    let response_topic = p
        .response_topic
        .map(|t| {
            TopicName::new(t.as_str()).map_err(|e| {
                ApiError::field(&field("properties.response_topic"), format!("\"{t}\": {e}"))
            })
        })
        .transpose()?;
    // The expiry is the message's (`expires_at`), not a property passed along as written:
    // each delivery carries the time left.
    let properties = PublishProperties {
        payload_format_indicator,
        response_topic,
        correlation_data: p.correlation_data.map(Bytes::from),
        content_type: p.content_type.map(Into::into),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| UserProperty::new(k.as_str(), v.as_str()))
            .collect(),
        ..PublishProperties::default()
    };
    let properties = (!properties.is_empty()).then(|| Box::new(properties));
    topics
        .iter()
        .map(|topic| {
            let name = TopicName::new(topic.as_str())
                .map_err(|e| ApiError::field(&field("topic"), format!("\"{topic}\": {e}")))?;
            if name.as_str().contains(['+', '#']) {
                return Err(ApiError::field(
                    &field("topic"),
                    format!("\"{topic}\": wildcards are for filters"),
                ));
            }
            let mut message =
                Message::new(name, payload.clone(), qos, body.retain, properties.clone());
            message.expires_at = p
                .message_expiry_interval
                .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
            Ok(message)
        })
        .collect()
}
