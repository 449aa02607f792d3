//! One error type for the API, answered as RFC 9457 `application/problem+json`, and the
//! JSON body extractor that reports the offending JSON pointer.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An API error: a status, a title, details and optional extra members.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// JSON pointer into the request body, when the body is at fault.
    pub pointer: Option<String>,
    /// Extra members merged into the problem body (e.g. `diagnostics`).
    pub extra: Option<Box<Value>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            pointer: None,
            extra: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError {
            pointer: Some(pointer.into()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid input", detail)
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn with_extra(mut self, extra: Value) -> Self {
        self.extra = Some(Box::new(extra));
        self
    }
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "the server failed; the error is logged",
        )
    }
}

impl From<crate::input::Invalid> for ApiError {
    fn from(e: crate::input::Invalid) -> Self {
        ApiError::invalid(e.pointer, e.detail)
    }
}

impl From<crate::runs::RunError> for ApiError {
    fn from(e: crate::runs::RunError) -> Self {
        use crate::runs::RunError;
        match e {
            RunError::Db(e) => e.into(),
            RunError::NotFound(_) | RunError::NoVersion { .. } => {
                ApiError::not_found(e.to_string())
            }
            RunError::NoTrigger { .. } => ApiError::invalid("/version", e.to_string()),
            RunError::Finished { status, .. } => {
                ApiError::conflict(e.to_string()).with_extra(json!({ "status": status.as_str() }))
            }
            RunError::WriterStopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable",
                "the server is stopping; retry shortly",
            ),
            RunError::BadVersion { .. } | RunError::Commit(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::events::IntakeError> for ApiError {
    fn from(e: crate::events::IntakeError) -> Self {
        use crate::events::IntakeError;
        match e {
            IntakeError::Invalid(e) => e.into(),
            IntakeError::Db(e) => e.into(),
            IntakeError::Runs(e) => e.into(),
            IntakeError::Lead(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        // A busy or unreachable database is a temporary condition, not a bug.
        let text = e.to_string();
        if text.contains("database is locked")
            || text.contains("pool timed out")
            || text.contains("Connection")
        {
            tracing::warn!(error = %text, "database unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable",
                "the database is busy; retry shortly",
            );
        }
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(p) = self.pointer {
            body["pointer"] = Value::String(p);
        }
        if let Some(Value::Object(extra)) = self.extra.map(|b| *b) {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A JSON body. Syntax errors are 400 with line and column; type errors are 422 with the
/// JSON pointer of the offending value.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        use axum::extract::rejection::BytesRejection;
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(BytesRejection::FailedToBufferBody(e))
                if crate::api::guard::is_too_slow(&e)
                    || e.body_text().contains(crate::api::guard::TOO_SLOW) =>
            {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request timeout",
                    e.body_text(),
                ));
            }
            Err(e) => {
                return Err(ApiError::new(
                    e.status(),
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        "payload too large"
                    } else {
                        "bad request"
                    },
                    format!("could not read the body: {}", e.body_text()),
                ));
            }
        };
        parse_json(&bytes).map(ApiJson)
    }
}

/// 415 unless the request says its body is JSON.
pub fn require_json(headers: &axum::http::HeaderMap) -> ApiResult<()> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            "send the body as JSON with `Content-Type: application/json`",
        ))
    }
}

/// Reads `body` whole, refusing it with 413 once it passes `limit` bytes (before more is
/// buffered) and with 408 when it arrives too slowly.
pub async fn read_body(body: axum::body::Body, limit: u64) -> ApiResult<axum::body::Bytes> {
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
            format!("this workspace takes webhook, event and run bodies of at most {limit} bytes"),
        )),
        Err(e) if crate::api::guard::is_too_slow(e.as_ref()) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request timeout",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the body: {e}"
        ))),
    }
}

/// Parses `bytes` as `T`, with the error statuses of [`ApiJson`]. Bodies nested deeper
/// than [`crate::limits::MAX_INPUT_DEPTH`] or carrying a NUL character are refused with
/// the pointer of the place (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    crate::input::check_json(&value, "", crate::limits::MAX_INPUT_DEPTH)?;
    from_value(value)
}

/// Converts a JSON value to `T`, reporting the pointer of the first mismatch.
pub fn from_value<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = path_to_pointer(e.path());
        ApiError::invalid(
            pointer.clone(),
            format!(
                "{}: {}",
                if pointer.is_empty() { "body" } else { &pointer },
                e.inner()
            ),
        )
    })
}

fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                out.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            }
            Segment::Enum { variant } => out.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    out
}
