//! The in-studio inbox: what `notify` nodes told people, newest first; marking read.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::auth::{Caller, Role};
use crate::db::entities::notification;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Only messages to this person.
    pub recipient: Option<String>,
    /// Only unread messages.
    pub unread: Option<bool>,
    /// At most this many (1–200, default 50).
    pub limit: Option<u64>,
}

fn row(n: notification::Model) -> Value {
    json!({
        "id": n.id, "recipient": n.recipient, "title": n.title, "body": n.body,
        "lead": n.lead_id, "flow": n.flow_id, "run": n.run_id,
        "created_at": n.created_at, "read_at": n.read_at,
    })
}

/// Messages, newest first, with the number unread.
#[utoipa::path(get, path = "/api/v1/inbox", tag = "leads", params(InboxQuery),
    responses((status = 200, description = "`{messages: [{id, recipient, title, body, lead, flow, run, created_at, read_at}], unread}`", body = Object)))]
pub async fn list_inbox(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", e.to_string()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("/limit", "limit is 1–200"));
    }
    let mut find = notification::Entity::find()
        .filter(notification::Column::WorkspaceId.eq(caller.workspace_id.as_str()));
    if let Some(r) = &q.recipient {
        find = find.filter(notification::Column::Recipient.eq(r.as_str()));
    }
    let unread = find
        .clone()
        .filter(notification::Column::ReadAt.is_null())
        .count(&state.db)
        .await?;
    if q.unread == Some(true) {
        find = find.filter(notification::Column::ReadAt.is_null());
    }
    let messages: Vec<Value> = find
        .order_by_desc(notification::Column::CreatedAt)
        .order_by_desc(notification::Column::Id)
        .limit(limit)
        .all(&state.db)
        .await?
        .into_iter()
        .map(row)
        .collect();
    Ok(Json(json!({ "messages": messages, "unread": unread })))
}

/// Marks a message read.
#[utoipa::path(post, path = "/api/v1/inbox/{id}/read", tag = "leads",
    params(("id" = String, Path, description = "The message's id")),
    responses((status = 200, description = "The message", body = Object),
        (status = 404, description = "No such message")))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Operator)?;
    let workspace = caller.workspace_id.as_str();
    notification::Entity::update_many()
        .col_expr(
            notification::Column::ReadAt,
            SqlExpr::value(Some(Utc::now())),
        )
        .filter(notification::Column::WorkspaceId.eq(workspace))
        .filter(notification::Column::Id.eq(id.as_str()))
        .filter(notification::Column::ReadAt.is_null())
        .exec(&state.db)
        .await?;
    let n = notification::Entity::find_by_id((workspace.to_owned(), id.clone()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id:?} does not exist")))?;
    Ok(Json(row(n)))
}
