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
use crate::error::{ApiError, ApiResult, parse_json, read_body, require_json};
use crate::input::check_event;

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
    let limits = state
        .engine
        .limits
        .get(&state.db, &caller.workspace_id)
        .await?;
    let body: EventIn = parse_json(&read_body(body, limits.body_bytes).await?)?;
    check_event(&body.id, &body.name, body.lead.as_deref(), &body.properties)?;
    if let Some(t) = body.timestamp {
        check_timestamp(t, "/timestamp")?;
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

/// How far back an event may be dated.
pub const MAX_EVENT_AGE_DAYS: i64 = 3650;
/// How far ahead an event may be dated (clocks disagree a little).
pub const MAX_EVENT_LEAD_HOURS: i64 = 24;

/// Refuses a timestamp outside `[now − 10 years, now + 1 day]`: a date far in the future
/// would outweigh every real event in a lead's decayed score, one long past means nothing.
pub fn check_timestamp(t: DateTime<Utc>, pointer: &str) -> ApiResult<()> {
    let now = Utc::now();
    let earliest = now - chrono::Duration::days(MAX_EVENT_AGE_DAYS);
    let latest = now + chrono::Duration::hours(MAX_EVENT_LEAD_HOURS);
    if t < earliest || t > latest {
        return Err(ApiError::invalid(
            pointer,
            format!(
                "timestamp {} is outside what an event may carry: from 10 years ago to 1 day ahead ({} to {})",
                t.to_rfc3339(),
                earliest.format("%Y-%m-%d"),
                latest.format("%Y-%m-%d")
            ),
        ));
    }
    Ok(())
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
