//! `POST /api/v4/reload`: the broker re-reads its configuration file (see `reload`), as
//! SIGHUP does. 200 with the report `{"changed": [...], "needs_restart": [...]}`, or 400
//! naming the key and the problem, with nothing changed.

use axum::extract::State;
use serde_json::json;

use super::ApiState;
use super::reply::{ApiError, ApiResult, ResultCode, ok};

/// `POST /api/v4/reload`.
pub(super) async fn reload(State(state): State<ApiState>) -> ApiResult {
    match crate::reload::trigger(&state.reloader).await {
        Ok(report) => Ok(ok(json!({
            "changed": report.changed,
            "needs_restart": report.needs_restart,
        }))),
        Err(e) => Err(ApiError::bad_request(
            ResultCode::ReqParamError,
            e.to_string(),
        )),
    }
}
