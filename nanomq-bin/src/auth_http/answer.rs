//! What the service's answer means. The status decides, as in NanoMQ: 2xx allows (204, or a
//! body), 4xx denies; EMQX's JSON body `{"result": "allow" | "deny" | "ignore",
//! "is_superuser": bool}` decides when a 2xx answer carries one. Anything else (5xx, a
//! redirect, a `result` no one knows) is an error, and `on_error` applies.

use hyper::StatusCode;

/// What the service decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Allowed; a superuser skips every authorization check.
    Allow {
        /// EMQX's `is_superuser`.
        superuser: bool,
    },
    /// Refused.
    Deny,
    /// The service has no opinion: the next source decides.
    Ignore,
}

/// An answer that decides nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnswerError {
    /// A status that is neither 2xx nor 4xx.
    Status(StatusCode),
    /// A body said to be JSON that is not.
    Json(String),
    /// A `result` that is not `allow`, `deny` or `ignore`.
    Result(String),
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status) => write!(f, "the service answered {status}"),
            Self::Json(e) => write!(f, "the service's JSON answer does not parse: {e}"),
            Self::Result(result) => write!(
                f,
                "the service's answer has \"result\": {result} (expected \"allow\", \"deny\" \
                 or \"ignore\")"
            ),
        }
    }
}

/// The verdict in an answer with `status`, `content_type` and `body`.
pub(crate) fn interpret(
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Verdict, AnswerError> {
    if status.is_client_error() {
        return Ok(Verdict::Deny);
    }
    if !status.is_success() {
        return Err(AnswerError::Status(status));
    }
    let body = body.trim_ascii();
    let says_json = content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    });
    // A body that is not JSON (NanoMQ's services answer "ok") leaves the status to decide;
    // one that looks like a JSON object is read even without the content type.
    if body.is_empty() || (!says_json && body.first() != Some(&b'{')) {
        return Ok(Verdict::Allow { superuser: false });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| AnswerError::Json(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return Ok(Verdict::Allow { superuser: false });
    };
    let superuser = match object.get("is_superuser") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    match object.get("result") {
        None => Ok(Verdict::Allow { superuser }),
        Some(serde_json::Value::String(result)) => match result.as_str() {
            "allow" => Ok(Verdict::Allow { superuser }),
            "deny" => Ok(Verdict::Deny),
            "ignore" => Ok(Verdict::Ignore),
            _ => Err(AnswerError::Result(format!("\"{result}\""))),
        },
        Some(other) => Err(AnswerError::Result(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    #[test]
    fn the_status_decides_without_a_json_body() {
        let allow = Ok(Verdict::Allow { superuser: false });
        assert_eq!(interpret(StatusCode::NO_CONTENT, None, b""), allow);
        assert_eq!(interpret(StatusCode::OK, Some("text/plain"), b"ok"), allow);
        assert_eq!(interpret(StatusCode::OK, JSON, b"  "), allow);
        assert_eq!(
            interpret(StatusCode::UNAUTHORIZED, None, b""),
            Ok(Verdict::Deny)
        );
        assert_eq!(
            interpret(StatusCode::FORBIDDEN, JSON, br#"{"result":"allow"}"#),
            Ok(Verdict::Deny)
        );
        assert_eq!(
            interpret(StatusCode::INTERNAL_SERVER_ERROR, None, b""),
            Err(AnswerError::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(
            interpret(StatusCode::FOUND, None, b""),
            Err(AnswerError::Status(StatusCode::FOUND))
        );
    }

    #[test]
    fn emqx_json_decides() {
        let ok = |body: &[u8]| interpret(StatusCode::OK, JSON, body);
        assert_eq!(
            ok(br#"{"result": "allow", "is_superuser": true}"#),
            Ok(Verdict::Allow { superuser: true })
        );
        assert_eq!(
            ok(br#"{"result": "allow", "is_superuser": "false"}"#),
            Ok(Verdict::Allow { superuser: false })
        );
        assert_eq!(ok(br#"{"result": "deny"}"#), Ok(Verdict::Deny));
        assert_eq!(ok(br#"{"result": "ignore"}"#), Ok(Verdict::Ignore));
        assert_eq!(
            interpret(StatusCode::OK, None, br#"{"result":"deny"}"#),
            Ok(Verdict::Deny)
        );
        assert!(matches!(
            ok(br#"{"result": "maybe"}"#),
            Err(AnswerError::Result(_))
        ));
        assert!(matches!(
            ok(br#"{"result": 1}"#),
            Err(AnswerError::Result(_))
        ));
        assert!(matches!(ok(b"{not json"), Err(AnswerError::Json(_))));
        assert_eq!(
            ok(br#"{"is_superuser": true}"#),
            Ok(Verdict::Allow { superuser: true })
        );
    }
}
