//! Workspace settings: the limits an admin may tune within fixed maxima.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::audit;
use super::signals::save_doc;
use crate::api::body::ApiJson;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LIMITS_DOC, Limits};
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

/// Sets the workspace's limits (admin); a field left out keeps its default. Every value out
/// of range is reported with its pointer.
#[utoipa::path(put, path = "/api/v1/settings/limits", tag = "meta", request_body = Limits,
    responses((status = 200, description = "`{limits}`", body = Object), (status = 422, description = "out of range")))]
pub async fn put_limits(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(limits): ApiJson<Limits>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let problems = limits.problems();
    if let Some((pointer, detail)) = problems.first() {
        let all: Vec<Value> = problems
            .iter()
            .map(|(p, d)| json!({ "pointer": p, "message": d }))
            .collect();
        return Err(ApiError::invalid(pointer.clone(), detail.clone())
            .with_extra(json!({ "problems": all })));
    }
    let doc = serde_json::to_value(limits).map_err(ApiError::internal)?;
    save_doc(&state, &caller, LIMITS_DOC, &doc).await?;
    state.limits.forget(&caller.workspace_id);
    audit(&state.db, &caller, "limits.set", LIMITS_DOC, doc).await?;
    Ok(Json(json!({ "limits": limits })))
}
