//! What every request passes through: only the HTTP methods the API knows, no NUL
//! character in its address, a deadline for its body to arrive; and every error answer
//! leaves as an RFC 9457 problem body, whatever produced it (an extractor's rejection
//! included).

use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Marks an answer that is the flow's or the connector's own (a `respond` node, a
/// connector webhook's reply): it leaves as it is, error statuses included.
#[derive(Clone, Copy, Debug)]
pub struct Verbatim;

/// The methods any route takes; anything else is answered 405 before routing.
pub fn known_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
    )
}

/// 405 for methods outside the known set; 400 for an address carrying a NUL character
/// (neither database can store one, and no id or path holds one).
pub async fn request_guard(req: Request, next: Next) -> Response {
    if !known_method(req.method()) {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            "use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
        )
        .into_response();
    }
    let uri = req.uri();
    let has_nul = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return ApiError::bad_request(
            "the address contains an encoded NUL character (%00), which no id or path holds",
        )
        .into_response();
    }
    next.run(req).await
}

/// Gives the request's body until `limit` from now to arrive in full: a client that sends
/// it slower is answered 408 (the handler's own work is not limited).
pub async fn body_deadline(limit: Duration, req: Request, next: Next) -> Response {
    use http_body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let req = req.map(|body| {
        axum::body::Body::new(DeadlineBody {
            body,
            deadline,
            timer: None,
            limit,
        })
    });
    next.run(req).await
}

/// A request body that fails once its deadline has passed. The timer is set only when the
/// body is first not ready: one already received in full costs none.
struct DeadlineBody {
    body: axum::body::Body,
    deadline: tokio::time::Instant,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    limit: Duration,
}

/// The error a [`DeadlineBody`] fails with; extractors answer it with 408.
#[derive(Debug, thiserror::Error)]
#[error("{TOO_SLOW} {} s", .0.as_secs())]
pub struct BodyTooSlow(pub Duration);

/// How a [`BodyTooSlow`] reads, to recognise it in a rejection's text.
pub const TOO_SLOW: &str = "the request body did not arrive within";

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future as _;
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if polled.is_ready() {
            return polled;
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            metrics::counter!("trellis_http_slow_bodies_total").increment(1);
            let limit = self.limit;
            return std::task::Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow(limit)))));
        }
        std::task::Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Whether `error` (or what caused it) is a [`BodyTooSlow`].
pub fn is_too_slow(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(error);
    while let Some(err) = e {
        if err.is::<BodyTooSlow>() {
            return true;
        }
        e = err.source();
    }
    false
}

/// The largest error body read back to wrap in a problem.
const MAX_WRAPPED: usize = 16 * 1024;

/// Wraps error answers that are not problem bodies yet (axum's plain-text rejections: a
/// body over the limit, a path parameter that does not parse) into one, keeping the status
/// and the text as `detail`.
pub async fn problem_bodies(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<Verbatim>().is_some()
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_WRAPPED).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_lowercase()
    } else {
        text
    };
    let mut problem = ApiError::new(status, title(status), detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

fn title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed",
        StatusCode::REQUEST_TIMEOUT => "request timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload too large",
        StatusCode::URI_TOO_LONG => "uri too long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid input",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request header fields too large",
        StatusCode::SERVICE_UNAVAILABLE => "service unavailable",
        s if s.is_server_error() => "internal error",
        _ => "request failed",
    }
}
