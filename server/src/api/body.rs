//! Request bodies: reading them within the workspace's size limit and the request time
//! limit, and parsing JSON with the pointer of a bad value.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::guard::{TOO_SLOW, is_too_slow};
use crate::error::{ApiError, ApiResult};

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
                // axum's rejection keeps the cause's text but not always its source
                // chain, so the text is checked too.
                if is_too_slow(&e) || e.body_text().contains(TOO_SLOW) =>
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
        Err(e) if is_too_slow(e.as_ref()) => Err(ApiError::new(
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
