//! Events: recorded once by id, then they start event-triggered flows and resume runs
//! waiting for them, all in the transaction that records them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Unique per workspace; a repeated id is accepted and not processed again.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub lead: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Value,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Records an event; starts flows triggered by it and resumes runs waiting for it.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventIn,
    responses((status = 202, description = "`{accepted, duplicate, runs_started, runs_resumed}`", body = Object)))]
pub async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EventIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Operator)?;
    if body.id.trim().is_empty() || body.id.len() > 200 {
        return Err(ApiError::invalid("/id", "id must be 1-200 characters"));
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("/name", "name must not be empty"));
    }
    if !(body.properties.is_object() || body.properties.is_null()) {
        return Err(ApiError::invalid(
            "/properties",
            "properties must be an object",
        ));
    }
    let result = record_event(
        &state,
        &caller.workspace_id,
        &body.id,
        &body.name,
        body.lead.clone(),
        body.properties.clone(),
        body.timestamp,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(result)))
}

/// Records an event once (by id); see [`crate::engine::Engine::record_event`].
pub(crate) async fn record_event(
    state: &AppState,
    workspace: &str,
    id: &str,
    name: &str,
    lead: Option<String>,
    properties: Value,
    timestamp: Option<DateTime<Utc>>,
) -> ApiResult<Value> {
    Ok(state
        .engine
        .record_event(workspace, id, name, lead, properties, timestamp)
        .await?)
}
