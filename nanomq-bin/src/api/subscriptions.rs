//! `/api/v4/subscriptions` (every subscription, or one client's), subscribing and
//! unsubscribing on a client's behalf (`/api/v4/mqtt/subscribe`, `/mqtt/unsubscribe`, EMQX's
//! v4 bodies), and `/api/v4/topic-tree`, the subscriptions as a tree of topic levels.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use broker_core::{AdminError, SubscriptionSummary};
use mqtt_codec::{QoS, SubscriptionOptions, TopicFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::paging::{Page, paged};
use super::reply::{ApiError, ApiResult, ok};

/// The filters of the subscription list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionQuery {
    clientid: Option<String>,
    topic: Option<String>,
    qos: Option<u8>,
    #[serde(rename = "_page")]
    page: Option<usize>,
    #[serde(rename = "_limit")]
    limit: Option<usize>,
}

/// `GET /api/v4/subscriptions`.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<SubscriptionQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let items = state
        .broker
        .subscriptions()
        .iter()
        .filter(|s| {
            query
                .clientid
                .as_deref()
                .is_none_or(|c| s.client_id.as_str() == c)
        })
        .filter(|s| {
            query
                .topic
                .as_deref()
                .is_none_or(|t| s.filter.as_str() == t)
        })
        .filter(|s| query.qos.is_none_or(|q| s.options.qos as u8 == q))
        .map(subscription_json)
        .collect();
    paged(
        items,
        &Page {
            page: query.page,
            limit: query.limit,
        },
    )
}

/// `GET /api/v4/subscriptions/{clientid}`.
pub(super) async fn of_client(
    State(state): State<ApiState>,
    Path(client_id): Path<String>,
) -> ApiResult {
    let detail = state
        .broker
        .client(&client_id)
        .ok_or_else(|| ApiError::not_found(format!("no client \"{client_id}\"")))?;
    Ok(ok(detail
        .subscriptions
        .iter()
        .map(subscription_json)
        .collect()))
}

/// `POST /api/v4/mqtt/subscribe`: `topic` or `topics` (comma separated), `clientid`, `qos`
/// (default 0).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscribeBody {
    topic: Option<String>,
    topics: Option<String>,
    clientid: Option<String>,
    #[serde(default)]
    qos: u8,
}

pub(super) async fn subscribe(
    State(state): State<ApiState>,
    body: Result<Json<SubscribeBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let client_id = body.clientid.ok_or_else(|| ApiError::missing("clientid"))?;
    let qos = QoS::from_u8(body.qos).ok_or_else(|| ApiError::field("qos", "expected 0, 1 or 2"))?;
    let filters = filters(body.topic, body.topics)?;
    let mut results = Vec::new();
    for filter in filters {
        let created = state
            .broker
            .subscribe_for(&client_id, filter.clone(), SubscriptionOptions::new(qos))
            .map_err(|e| admin_error(&client_id, &e))?;
        results.push(json!({"topic": filter.as_str(), "qos": qos as u8, "new": created}));
    }
    Ok(ok(Value::Array(results)))
}

/// `POST /api/v4/mqtt/unsubscribe`: `topic`, `clientid`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeBody {
    topic: Option<String>,
    clientid: Option<String>,
}

pub(super) async fn unsubscribe(
    State(state): State<ApiState>,
    body: Result<Json<UnsubscribeBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let client_id = body.clientid.ok_or_else(|| ApiError::missing("clientid"))?;
    let filter = filters(body.topic, None)?
        .pop()
        .ok_or_else(|| ApiError::missing("topic"))?;
    let existed = state
        .broker
        .unsubscribe_for(&client_id, &filter)
        .map_err(|e| admin_error(&client_id, &e))?;
    Ok(ok(json!({"topic": filter.as_str(), "existed": existed})))
}

/// `GET /api/v4/topic-tree`: the subscriptions as a tree of topic levels, each with the
/// clients subscribed exactly there (`clientid`), its children and their count (`cld_cnt`).
pub(super) async fn topic_tree(State(state): State<ApiState>) -> ApiResult {
    /// One level; children are created after their parent, so a walk from the last node
    /// to the first renders every child before its parent, without recursion (a filter may
    /// have as many levels as the broker's limit allows).
    struct Node {
        name: String,
        clients: Vec<String>,
        children: BTreeMap<String, usize>,
    }
    let mut nodes = vec![Node {
        name: String::new(),
        clients: Vec::new(),
        children: BTreeMap::new(),
    }];
    for sub in state.broker.subscriptions() {
        let mut at = 0;
        for part in sub.filter.as_str().split('/') {
            let next = nodes.len();
            let child = match nodes.get_mut(at) {
                Some(node) => *node.children.entry(part.to_owned()).or_insert(next),
                None => break,
            };
            if child == next {
                nodes.push(Node {
                    name: part.to_owned(),
                    clients: Vec::new(),
                    children: BTreeMap::new(),
                });
            }
            at = child;
        }
        if let Some(node) = nodes.get_mut(at) {
            node.clients.push(sub.client_id.as_str().to_owned());
        }
    }
    let mut rendered: Vec<Option<Value>> = vec![None; nodes.len()];
    for (i, node) in nodes.iter().enumerate().rev() {
        let children: Vec<Value> = node
            .children
            .values()
            .filter_map(|&c| rendered.get_mut(c).and_then(Option::take))
            .collect();
        if let Some(slot) = rendered.get_mut(i) {
            *slot = Some(json!({
                "topic": node.name,
                "clientid": node.clients,
                "cld_cnt": children.len(),
                "children": children,
            }));
        }
    }
    let root = rendered
        .first_mut()
        .and_then(Option::take)
        .unwrap_or(Value::Null);
    Ok(ok(root
        .get("children")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()))))
}

/// The filters of `topic` (one) and `topics` (comma separated).
fn filters(topic: Option<String>, topics: Option<String>) -> Result<Vec<TopicFilter>, ApiError> {
    let (field, texts): (&str, Vec<String>) = match (topic, topics) {
        (Some(t), None) => ("topic", vec![t]),
        (None, Some(ts)) => (
            "topics",
            ts.split(',').map(|t| t.trim().to_owned()).collect(),
        ),
        (Some(_), Some(_)) => {
            return Err(ApiError::field("topics", "give topic or topics, not both"));
        }
        (None, None) => return Err(ApiError::missing("topic")),
    };
    texts
        .iter()
        .map(|t| {
            TopicFilter::new(t.as_str())
                .map_err(|e| ApiError::field(field, format!("\"{t}\": {e}")))
        })
        .collect()
}

/// An admin refusal as the API answers it.
fn admin_error(client_id: &str, error: &AdminError) -> ApiError {
    match error {
        AdminError::NoSuchClient => ApiError::not_found(format!("no client \"{client_id}\"")),
        AdminError::TooManySubscriptions | AdminError::FilterTooLarge => {
            ApiError::field("topic", error)
        }
    }
}

/// A subscription object.
fn subscription_json(sub: &SubscriptionSummary) -> Value {
    json!({
        "clientid": sub.client_id.as_str(),
        "topic": sub.filter.as_str(),
        "qos": sub.options.qos as u8,
        "no_local": sub.options.no_local,
        "retain_as_published": sub.options.retain_as_published,
        "retain_handling": sub.options.retain_handling as u8,
    })
}
