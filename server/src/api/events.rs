//! `POST /api/v1/events`: an event from outside, through the one event intake
//! ([`crate::events`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::body::{parse_json, read_body, require_json};
use crate::auth::{Caller, Role};
use crate::error::ApiResult;
use crate::events::NewEvent;
use crate::state::AppState;

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
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Operator)?;
    require_json(&headers)?;
    let limits = state.limits.get(&state.db, &caller.workspace_id).await?;
    let body: EventIn = parse_json(&read_body(body, limits.body_bytes).await?)?;
    let event = NewEvent {
        id: body.id,
        name: body.name,
        lead: body.lead,
        properties: body.properties,
        timestamp: body.timestamp,
    };
    let recorded = state.events.record(&caller.workspace_id, event).await?;
    Ok((StatusCode::ACCEPTED, Json(recorded.to_json())))
}

/// The workspace's event catalog: every event name with its count and last arrival, the
/// properties its recent events carry (paths, types, sample values), and the attributes
/// leads carry. The studio's data picker reads it.
#[utoipa::path(get, path = "/api/v1/event-catalog", tag = "events",
    responses((status = 200, description = "`{events: [{name, count, last_at, read, properties: [{path, types, seen, samples}]}], lead_attributes, leads_read}`", body = Object)))]
pub async fn event_catalog(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<crate::event_catalog::EventCatalog>> {
    let catalog = crate::event_catalog::event_catalog(&state.db, &caller.workspace_id).await?;
    Ok(Json(catalog))
}
