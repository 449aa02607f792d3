//! API tokens (admin only): create (the token is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::audit;
use crate::api::body::ApiJson;
use crate::auth::{Caller, Role, hash_token, new_token};
use crate::db::entities::api_token;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
}

/// Creates a token in the caller's workspace; the answer holds the token, shown only once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, description = "`{id, name, role, token}`", body = Object)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("/name", "name must be 1-100 characters"));
    }
    let token = new_token();
    let id = uuid::Uuid::now_v7().to_string();
    api_token::Entity::insert(api_token::ActiveModel {
        id: Set(id.clone()),
        workspace_id: Set(caller.workspace_id.clone()),
        name: Set(name.to_owned()),
        role: Set(body.role.as_str().to_owned()),
        token_hash: Set(hash_token(&token)),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    })
    .exec_without_returning(&state.db)
    .await?;
    audit(
        &state.db,
        &caller,
        "token.create",
        &id,
        json!({ "name": name, "role": body.role }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "name": name, "role": body.role, "token": token })),
    ))
}

/// Lists tokens (never their values).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, description = "`{tokens: [...]}`", body = Object)))]
pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let tokens = api_token::Entity::find()
        .filter(api_token::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .order_by_asc(api_token::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let list: Vec<Value> = tokens
        .into_iter()
        .map(|t| json!({ "id": t.id, "name": t.name, "role": t.role, "created_at": t.created_at, "revoked_at": t.revoked_at }))
        .collect();
    Ok(Json(json!({ "tokens": list })))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 404, description = "no such token")))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    // The workspace must keep an admin: revoking the last one would lock everyone out. The
    // active admin tokens are locked while counted (PostgreSQL; SQLite has one writer), so
    // two revocations at once cannot both leave the other one last.
    let txn = state.db.begin().await?;
    let mut admins = api_token::Entity::find()
        .filter(api_token::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(api_token::Column::RevokedAt.is_null())
        .filter(api_token::Column::Role.eq(Role::Admin.as_str()));
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        admins = admins.lock_exclusive();
    }
    let admins = admins.all(&txn).await?;
    if admins.len() <= 1 && admins.iter().any(|t| t.id == id) {
        return Err(ApiError::conflict(format!(
            "token {id:?} is the workspace's last admin token; create another admin token before revoking it"
        )));
    }
    let res = api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            SqlExpr::value(Some(Utc::now())),
        )
        .filter(api_token::Column::Id.eq(id.as_str()))
        .filter(api_token::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ApiError::not_found(format!("no active token {id:?}")));
    }
    txn.commit().await?;
    audit(&state.db, &caller, "token.revoke", &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
