//! Bearer-token authentication and role checks.
//!
//! Tokens are 32 random bytes shown once; only their SHA-256 is stored (a token is
//! high-entropy, so a slow password hash would add latency without adding safety).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::entities::api_token;
use crate::error::ApiError;
use crate::state::AppState;

/// What a token may do; each role includes the ones below it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read flows, versions and runs.
    Viewer,
    /// Also start and cancel runs, send events.
    Operator,
    /// Also create, save, publish and roll back flows.
    Builder,
    /// Also manage tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Builder => "builder",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "builder" => Some(Role::Builder),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

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

/// A new random token, `trl_` + 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("trl_{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
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
