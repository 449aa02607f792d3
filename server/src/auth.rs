//! Who is calling: a bearer token (machines) or a session cookie (people, see
//! [`crate::users`]), and role checks. API tokens are 32 random bytes shown once; only
//! their SHA-256 is stored ([`crate::credentials`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

pub use crate::credentials::{Role, hash_token, new_token};
use crate::db::entities::api_token;
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub workspace_id: String,
    pub token_id: String,
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The caller as the author of a document version.
    pub fn author(&self) -> crate::docs::Author<'_> {
        crate::docs::Author { name: &self.name }
    }

    /// Fails with 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; token {:?} has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return session_caller(parts, state).await;
        };
        let header = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let row = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(hash_token(token)))
            .one(&state.db)
            .await?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        let role = Role::parse(&row.role).ok_or_else(|| {
            ApiError::internal(format!("token {} has bad role {}", row.id, row.role))
        })?;
        Ok(Caller {
            workspace_id: row.workspace_id,
            token_id: row.id,
            name: row.name,
            role,
        })
    }
}

/// The value of the session cookie a request carries.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == crate::users::SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// A caller signed in with a session cookie. A request that may change something must
/// also carry the session's CSRF value in `X-Trellis-CSRF`.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some(token) = session_cookie(&parts.headers) else {
        return Err(ApiError::unauthorized(
            "sign in, or send `Authorization: Bearer <token>`",
        ));
    };
    let (user, workspace, role) = crate::users::session_of(&state.db, &token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session has ended; sign in again"))?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let sent = parts
            .headers
            .get(crate::users::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let want = crate::users::csrf_of(&token);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            sent.as_bytes(),
            want.as_bytes(),
        )) {
            return Err(ApiError::forbidden(
                "this request needs the session's X-Trellis-CSRF header",
            ));
        }
    }
    Ok(Caller {
        workspace_id: workspace,
        token_id: format!("user:{}", user.id),
        name: user.name,
        role,
    })
}
