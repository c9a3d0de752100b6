//! Paging of the API's lists, as EMQX's and NanoMQ's v4 APIs page: `_page` (from 1) and
//! `_limit` (default and most: 10,000), answered with `meta` {page, limit, count, hasnext}.

use serde::Deserialize;
use serde_json::{Value, json};

use super::reply::{ApiError, ApiResult};

/// The most items one page holds.
const MAX_LIMIT: usize = 10_000;

/// `_page` and `_limit` (each list's query has them as fields of its own, so that unknown
/// parameters are refused: serde cannot refuse them across a flattened struct).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Page {
    /// `_page`.
    pub(super) page: Option<usize>,
    /// `_limit`.
    pub(super) limit: Option<usize>,
}

/// `items`' page as `{"code": 0, "data": [...], "meta": {...}}`.
pub(super) fn paged(items: Vec<Value>, page: &Page) -> ApiResult {
    let (number, limit) = window(page)?;
    let count = items.len();
    let start = (number - 1).saturating_mul(limit);
    let data: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let hasnext = start.saturating_add(limit) < count;
    Ok(page_of(data, number, limit, count, hasnext))
}

/// The page number and the limit `page` asks for, checked.
pub(super) fn window(page: &Page) -> Result<(usize, usize), ApiError> {
    let number = page.page.unwrap_or(1);
    let limit = page.limit.unwrap_or(MAX_LIMIT);
    if number == 0 {
        return Err(ApiError::field("_page", "pages count from 1"));
    }
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::field(
            "_limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok((number, limit))
}

/// A page of a list that was not read whole: `data` is page `number`, `count` the list's
/// length.
pub(super) fn page_of(
    data: Vec<Value>,
    number: usize,
    limit: usize,
    count: usize,
    hasnext: bool,
) -> axum::Json<Value> {
    axum::Json(json!({
        "code": 0,
        "data": data,
        "meta": {"page": number, "limit": limit, "count": count, "hasnext": hasnext},
    }))
}
