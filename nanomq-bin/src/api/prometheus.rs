//! `GET /api/v4/prometheus` (and `/metrics`, where Prometheus looks by default): the
//! broker's counters in the Prometheus text format, rendered by `ops::prometheus` from the
//! same snapshot the rest of the API reads.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::ApiState;
use crate::ops::process::ProcessStats;
use crate::ops::prometheus::{Exposition, render};

/// The exposition's content type (text format 0.0.4).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The scrape.
pub(super) async fn scrape(State(state): State<ApiState>) -> impl IntoResponse {
    let metrics = state.broker.metrics();
    let bridges = state.broker.bridge_metrics();
    let process = ProcessStats::read();
    let text = render(&Exposition {
        metrics: &metrics,
        bridges: &bridges,
        process: process.as_ref(),
        uptime: state.started.elapsed(),
    });
    ([(CONTENT_TYPE, TEXT_FORMAT)], text)
}
