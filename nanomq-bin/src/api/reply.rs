//! The API's answers in NanoMQ's v4 shape: `{"code": 0, "data": ...}` on success, and on
//! failure an HTTP status with `{"code": <NanoMQ's result code>, "message": "..."}` that says
//! what was wrong (a bad body names the field).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// NanoMQ's result codes (nanomq `rest_api.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultCode {
    /// 103: wrong credentials.
    WrongUsernameOrPassword = 103,
    /// 104: no credentials.
    EmptyUsernameOrPassword = 104,
    /// 107: a required field is missing.
    MissingKeyRequestParams = 107,
    /// 108: a field or parameter has a bad value.
    ReqParamError = 108,
    /// 109: the body is not the JSON asked for.
    ReqParamsJsonFormatIllegal = 109,
}

/// A failed request.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ResultCode,
    message: String,
}

impl ApiError {
    /// 400 with `code`.
    pub(crate) fn bad_request(code: ResultCode, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// 400: `field` has a bad value.
    pub(crate) fn field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::bad_request(ResultCode::ReqParamError, format!("{field}: {problem}"))
    }

    /// 400: `field` is missing.
    pub(crate) fn missing(field: &str) -> Self {
        Self::bad_request(
            ResultCode::MissingKeyRequestParams,
            format!("{field}: missing"),
        )
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: ResultCode::ReqParamError,
            message: message.into(),
        }
    }

    /// 401, and nothing else.
    pub(crate) fn unauthorized(code: ResultCode) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code,
            message: "unauthorized".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"code": self.code as u16, "message": self.message}));
        if self.status == StatusCode::UNAUTHORIZED {
            return (
                self.status,
                [(WWW_AUTHENTICATE, "Basic realm=\"nanomq\"")],
                body,
            )
                .into_response();
        }
        (self.status, body).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // serde's message names the field and the line: "missing field `topic` at line 1".
        Self::bad_request(
            ResultCode::ReqParamsJsonFormatIllegal,
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(ResultCode::ReqParamError, rejection.body_text())
    }
}

/// `{"code": 0, "data": data}`.
pub(crate) fn ok(data: Value) -> Json<Value> {
    Json(json!({"code": 0, "data": data}))
}

/// What a handler returns.
pub(crate) type ApiResult = Result<Json<Value>, ApiError>;
