//! `GET /api/v4/retained`: the retained messages, a page at a time, in topic order: each
//! one's topic, QoS, payload size and the start of its payload (NanoMQ has no such route;
//! the fields are ours). Only the page asked for is read from the broker's retained index,
//! never the whole index.

use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use broker_core::Message;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::paging::{Page, page_of, window};
use super::reply::ApiResult;

/// How much of a payload the list shows.
const PREVIEW_BYTES: usize = 64;

/// The list's query: paging only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetainedQuery {
    #[serde(rename = "_page")]
    page: Option<usize>,
    #[serde(rename = "_limit")]
    limit: Option<usize>,
}

/// `GET /api/v4/retained`.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<RetainedQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let (number, limit) = window(&Page {
        page: query.page,
        limit: query.limit,
    })?;
    let skip = (number - 1).saturating_mul(limit);
    // One more than the page holds says whether another page follows.
    let mut messages = state
        .broker
        .retained_messages(skip, limit.saturating_add(1));
    let hasnext = messages.len() > limit;
    messages.truncate(limit);
    let now = Instant::now();
    let data = messages.iter().map(|m| retained_json(m, now)).collect();
    Ok(page_of(
        data,
        number,
        limit,
        state.broker.retained_count(),
        hasnext,
    ))
}

/// A retained message as the list shows it.
fn retained_json(message: &Message, now: Instant) -> Value {
    let (preview, encoding) = preview(&message.payload);
    json!({
        "topic": message.topic.as_str(),
        "qos": message.qos as u8,
        "payload_size": message.payload.len(),
        "preview": preview,
        "preview_encoding": encoding,
        "truncated": message.payload.len() > PREVIEW_BYTES,
        "expires_in": message.expires_at.map(|at| at.saturating_duration_since(now).as_secs()),
    })
}

/// The first [`PREVIEW_BYTES`] of `payload`: as text (`"utf8"`) when they are UTF-8 (a
/// character cut at the end dropped), in hexadecimal (`"hex"`) otherwise.
fn preview(payload: &[u8]) -> (String, &'static str) {
    let head = payload.get(..PREVIEW_BYTES).unwrap_or(payload);
    match std::str::from_utf8(head) {
        Ok(text) => (text.to_owned(), "utf8"),
        // The only fault is a character the cut split: keep the text before it.
        Err(e) if e.error_len().is_none() && head.len() < payload.len() => (
            String::from_utf8_lossy(head.get(..e.valid_up_to()).unwrap_or_default()).into_owned(),
            "utf8",
        ),
        Err(_) => (head.iter().map(|b| format!("{b:02x}")).collect(), "hex"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_text_when_they_can_be_and_hex_otherwise() {
        assert_eq!(preview(b"21.5"), ("21.5".to_owned(), "utf8"));
        assert_eq!(preview(b""), (String::new(), "utf8"));
        assert_eq!(preview(&[0xff, 0x00, 0x10]), ("ff0010".to_owned(), "hex"));
        let long = "x".repeat(PREVIEW_BYTES + 10);
        assert_eq!(preview(long.as_bytes()).0.len(), PREVIEW_BYTES);
        // "é" is two bytes; one of them would end the preview.
        let cut = format!("{}é", "x".repeat(PREVIEW_BYTES - 1));
        assert_eq!(
            preview(cut.as_bytes()),
            ("x".repeat(PREVIEW_BYTES - 1), "utf8")
        );
        // A broken character before the cut is not a cut one.
        let mut broken = vec![b'x'; PREVIEW_BYTES + 4];
        if let Some(b) = broken.get_mut(3) {
            *b = 0xc3;
        }
        assert_eq!(preview(&broken).1, "hex");
    }
}
