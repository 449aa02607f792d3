//! The contact policy: the workspace's rules (read, replaced with every problem by
//! pointer), and a lead's consent (revoked or restored by an admin).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{audit, documents};
use crate::api::body::ApiJson;
use crate::auth::{Caller, Role};
use crate::docs::DocKind;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The workspace's contact policy (the built-in one until it saves its own).
#[utoipa::path(get, path = "/api/v1/contact-policy", tag = "leads",
    responses((status = 200, description = "`{builtin, version, doc: {caps, quiet_hours, default_time_zone}}`", body = Object)))]
pub async fn get_policy(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(
        documents::read(&state, &caller, DocKind::ContactPolicy, "doc").await?,
    ))
}

/// Replaces the contact policy with a new version (admins; history, diff and rollback
/// under `/api/v1/documents/contact-policy`). It applies to calls decided from now on;
/// every problem is reported with its JSON pointer.
#[utoipa::path(put, path = "/api/v1/contact-policy", tag = "leads", request_body = Object,
    params(documents::SaveQuery),
    responses((status = 200, description = "`{saved, version, updated_at}`", body = Object),
        (status = 409, description = "stale base version"),
        (status = 422, description = "invalid policy, with `problems`")))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<documents::SaveQuery>, QueryRejection>,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        documents::save(&state, &caller, DocKind::ContactPolicy, doc, query).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeIn {
    /// The channel (`wecom_group_send`), a family of channels (`wecom`), or none: all.
    #[serde(default)]
    pub channel: Option<String>,
    /// Why, in words; shown on the lead card and in the journal of a blocked call.
    pub reason: String,
}

/// Revokes a lead's consent to be contacted (admins): calls to it on that channel are
/// blocked from now on.
#[utoipa::path(post, path = "/api/v1/leads/{id}/consent/revocations", tag = "leads",
    params(("id" = String, Path)), request_body = RevokeIn,
    responses((status = 201, description = "`{id}`", body = Object), (status = 404, description = "no such lead")))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevokeIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "/reason",
            "say why in 1 to 500 characters".to_owned(),
        ));
    }
    let channel = body.channel.map(|c| c.trim().to_owned());
    if channel
        .as_deref()
        .is_some_and(|c| c.is_empty() || c.len() > 64)
    {
        return Err(ApiError::invalid(
            "/channel",
            "a channel name of 1 to 64 characters, or none for every channel".to_owned(),
        ));
    }
    let workspace = caller.workspace_id.as_str();
    let lead = crate::leads::find(&state.db, workspace, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("lead {id:?} does not exist")))?;
    let revocation = crate::contacts::revoke_by_admin(
        &state.db,
        workspace,
        &lead.id,
        channel.clone(),
        reason.to_owned(),
        &caller.name,
    )
    .await?;
    audit(
        &state.db,
        &caller,
        "consent.revoke",
        &lead.id,
        json!({ "channel": channel, "reason": reason, "revocation": revocation }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": revocation }))))
}

/// Lifts a revocation (admins), when the customer agreed to be contacted again.
#[utoipa::path(delete, path = "/api/v1/leads/{id}/consent/revocations/{revocation}", tag = "leads",
    params(("id" = String, Path), ("revocation" = String, Path)),
    responses((status = 204, description = "lifted"), (status = 404, description = "no such revocation")))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, revocation)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let workspace = caller.workspace_id.as_str();
    let lead = crate::leads::find(&state.db, workspace, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("lead {id:?} does not exist")))?;
    if !crate::contacts::restore(&state.db, workspace, &lead.id, &revocation).await? {
        return Err(ApiError::not_found(format!(
            "lead {id:?} has no revocation {revocation:?}"
        )));
    }
    audit(
        &state.db,
        &caller,
        "consent.restore",
        &lead.id,
        json!({ "revocation": revocation }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
