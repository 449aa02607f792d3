//! One error type for the API, answered as RFC 9457 `application/problem+json`, and how it
//! is built from the typed errors of the modules behind the handlers.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
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

impl From<crate::docs::DocError> for ApiError {
    fn from(e: crate::docs::DocError) -> Self {
        use crate::docs::DocError;
        match e {
            DocError::Db(e) => e.into(),
            DocError::Missing(_) | DocError::NoVersion { .. } => ApiError::not_found(e.to_string()),
            DocError::Stale { current, .. } => ApiError {
                pointer: Some("/base_version".into()),
                ..ApiError::conflict(e.to_string())
            }
            .with_extra(json!({ "current_version": current })),
            DocError::Moved(_) | DocError::Conflict(_) => ApiError::conflict(e.to_string()),
            DocError::Unpublishable(_) => ApiError::invalid("/version", e.to_string()),
            DocError::Corrupt { .. } => ApiError::internal(e),
        }
    }
}

impl From<crate::leads::LeadError> for ApiError {
    fn from(e: crate::leads::LeadError) -> Self {
        match e {
            crate::leads::LeadError::Db(e) => e.into(),
            other => ApiError::internal(other),
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
            IntakeError::Lead(e) => e.into(),
        }
    }
}

impl From<crate::users::AccountError> for ApiError {
    fn from(e: crate::users::AccountError) -> Self {
        use crate::users::AccountError;
        match e {
            AccountError::BadLogin => ApiError::unauthorized(e.to_string()),
            AccountError::Invalid { pointer, detail } => ApiError::invalid(pointer, detail),
            AccountError::BadTicket | AccountError::NoUser(_) => ApiError::not_found(e.to_string()),
            AccountError::Taken(_) | AccountError::LastAdmin | AccountError::OwnAccount => {
                ApiError::conflict(e.to_string())
            }
            AccountError::Db(e) => e.into(),
            AccountError::Hash(_) => ApiError::internal(e),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        // A busy or unreachable database is a temporary condition, not a bug.
        if is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable",
                "the database is busy; retry shortly",
            );
        }
        ApiError::internal(e)
    }
}

/// Whether `e` says the database is busy or out of reach rather than that the statement
/// is wrong: no connection to be had, a lost connection, or SQLite's busy and locked
/// codes (5, 6 and their extended forms).
fn is_unavailable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let runtime = match e {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return matches!(e, DbErr::Conn(_));
    };
    match sqlx.as_ref() {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => matches!(e, DbErr::Conn(_)),
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
