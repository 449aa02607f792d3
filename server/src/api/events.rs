//! Events: recorded once by id, then they start event-triggered flows and resume runs
//! waiting for them, all in the transaction that records them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::internal;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::entities::event;
use crate::engine::event_trigger;
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

/// Records an event once (by id) in `workspace`, starts the flows it triggers and resumes
/// the runs waiting for it, in one transaction. Used by `POST /api/v1/events` and by
/// connector webhooks.
pub(crate) async fn record_event(
    state: &AppState,
    workspace: &str,
    id: &str,
    name: &str,
    lead: Option<String>,
    properties: Value,
    timestamp: Option<DateTime<Utc>>,
) -> ApiResult<Value> {
    let now = Utc::now();
    let timestamp = timestamp.unwrap_or(now);
    let properties = if properties.is_null() {
        json!({})
    } else {
        properties.clone()
    };
    let payload = json!({ "id": id, "name": name, "lead": lead, "properties": properties, "timestamp": timestamp });
    let txn = state.db.begin().await?;
    let inserted = event::Entity::insert(event::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        lead: Set(lead.clone()),
        properties: Set(properties),
        timestamp: Set(timestamp),
        received_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([event::Column::WorkspaceId, event::Column::Id])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(
            json!({ "accepted": true, "duplicate": true, "runs_started": 0, "runs_resumed": 0 }),
        );
    }
    let mut started = Vec::new();
    for (flow_id, version) in state
        .engine
        .triggered_flows(&txn, workspace, "event", name)
        .await
        .map_err(internal)?
    {
        let compiled = state
            .engine
            .compiled_on(&txn, &flow_id, version)
            .await
            .map_err(internal)?;
        let Some(trigger) = compiled.trigger_id() else {
            continue;
        };
        let id = state
            .engine
            .enqueue(
                &txn,
                workspace,
                &flow_id,
                version,
                trigger,
                event_trigger(&payload),
            )
            .await
            .map_err(internal)?;
        started.push(id);
    }
    let resumed = state
        .engine
        .deliver_event(&txn, workspace, name, &payload)
        .await
        .map_err(internal)?;
    txn.commit().await?;
    state.engine.wake.notify_waiters();
    metrics::counter!("trellis_events_total").increment(1);
    Ok(
        json!({ "accepted": true, "duplicate": false, "runs_started": started.len(), "run_ids": started, "runs_resumed": resumed }),
    )
}
