//! Workspace settings: the limits an admin may tune within fixed maxima.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::documents;
use crate::api::body::ApiJson;
use crate::auth::Caller;
use crate::docs::DocKind;
use crate::error::{ApiError, ApiResult};
use crate::limits::Limits;
use crate::state::AppState;

/// The workspace's limits in force, with the defaults and the maxima.
#[utoipa::path(get, path = "/api/v1/settings/limits", tag = "meta",
    responses((status = 200, description = "`{limits, defaults, maxima}`", body = Object)))]
pub async fn get_limits(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let limits = state.limits.get(&state.db, &caller.workspace_id).await?;
    Ok(Json(json!({
        "limits": limits,
        "defaults": Limits::DEFAULT,
        "maxima": Limits::MAX,
    })))
}

/// Sets the workspace's limits (admin) as a new version (history under
/// `/api/v1/documents/limits`); a field left out keeps its default. Every value out of
/// range is reported with its pointer.
#[utoipa::path(put, path = "/api/v1/settings/limits", tag = "meta", request_body = Limits,
    params(documents::SaveQuery),
    responses((status = 200, description = "`{limits, version}`", body = Object),
        (status = 409, description = "stale base version"),
        (status = 422, description = "out of range")))]
pub async fn put_limits(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<documents::SaveQuery>, QueryRejection>,
    ApiJson(limits): ApiJson<Limits>,
) -> ApiResult<Json<Value>> {
    let doc = serde_json::to_value(limits).map_err(ApiError::internal)?;
    let saved = documents::save(&state, &caller, DocKind::Limits, doc, query).await?;
    Ok(Json(
        json!({ "limits": limits, "version": saved["version"] }),
    ))
}
