//! Runs: start, inspect (with the step journal), list, cancel.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::api::body::parse_json;
use crate::auth::{Caller, Role};
use crate::db::entities::{flow, run, run_step};
use crate::db::run_rows::{self, RawRun};
use crate::error::{ApiError, ApiResult};
use crate::runs::RunStatus;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// `trigger.input` in CEL.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    /// The whole trigger instead of `input`, as the flow's trigger would receive it: for a
    /// webhook `{body, headers, query, path}`, for an event `{event}` (see
    /// `GET /api/v1/flows/{id}/samples` for recent real ones).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub trigger: Option<Value>,
    /// A test run: shown with the flow's runs, never as its last run.
    #[serde(default)]
    pub test: bool,
    /// Version to run; defaults to the published one, else the latest.
    #[serde(default)]
    pub version: Option<i32>,
}

/// Starts a manual run, pinned to a version.
#[utoipa::path(post, path = "/api/v1/flows/{id}/runs", tag = "runs", params(("id" = String, Path)), request_body = StartRun,
    responses((status = 202, description = "`{run_id, version}`", body = Object)))]
pub async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Operator)?;
    let limits = state.limits.get(&state.db, &caller.workspace_id).await?;
    let body = crate::api::body::read_body(body, limits.body_bytes).await?;
    // The body is optional: no body is a run with empty input.
    let body: StartRun = if body.iter().all(u8::is_ascii_whitespace) {
        StartRun::default()
    } else {
        parse_json(&body)?
    };
    let f = flow::Entity::find_by_id(id.clone())
        .filter(flow::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(flow::Column::DeletedAt.is_null())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id:?} does not exist")))?;
    let version = body
        .version
        .or(f.published_version)
        .unwrap_or(f.latest_version);
    if version < 1 || version > f.latest_version {
        return Err(ApiError::invalid(
            "/version",
            format!("flow {id:?} has versions 1 to {}", f.latest_version),
        ));
    }
    let trigger = match body.trigger {
        Some(Value::Object(t)) => {
            if !body.input.is_null() {
                return Err(ApiError::invalid(
                    "/input",
                    "give either `input` or a whole `trigger`, not both",
                ));
            }
            let t = Value::Object(t);
            crate::input::check_json(&t, "/trigger", crate::limits::MAX_INPUT_DEPTH)?;
            t
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "/trigger",
                "a trigger is an object, e.g. {\"body\": {…}} for a webhook or {\"event\": {…}} for an event",
            ));
        }
        None => {
            crate::input::check_json(&body.input, "/input", crate::limits::MAX_INPUT_DEPTH)?;
            json!({ "input": body.input })
        }
    };
    let purpose = if body.test {
        crate::runs::RunPurpose::Test
    } else {
        crate::runs::RunPurpose::Live
    };
    let run_id = state
        .runs
        .enqueue_as(
            &state.db,
            &caller.workspace_id,
            &id,
            version,
            trigger,
            purpose,
        )
        .await?;
    state.runs.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "version": version })),
    ))
}

/// A run as the API shows it. Stored JSON that does not read is shown as `null` with
/// `unreadable` saying why, so one bad row never hides the rest.
fn run_json(r: &RawRun) -> Value {
    let mut unreadable = Vec::new();
    let mut read = |column: &str, text: &str| match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(e) => {
            unreadable.push(format!("{column}: {e}"));
            Value::Null
        }
    };
    let trigger = read("trigger", &r.trigger);
    let state = read("state", &r.state);
    let mut out = json!({
        "id": r.id, "flow_id": r.flow_id, "version": r.version, "status": r.status, "error": r.error, "test": r.test,
        "created_at": r.created_at, "updated_at": r.updated_at, "finished_at": r.finished_at,
        "wake_at": r.wake_at.and_then(chrono::DateTime::from_timestamp_millis),
        "trigger": trigger, "vars": state.get("vars"), "response": state.get("response"),
    });
    if !unreadable.is_empty() {
        out["unreadable"] = json!(unreadable);
    }
    out
}

/// A run with its journal.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "run with `steps`", body = Object), (status = 404, description = "no such run")))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = find_run(&state, &caller, &id).await?;
    // Inputs and outputs as text, decoded one by one: a record that does not read shows
    // `null` and why, and the rest of the journal is still there.
    let steps = run_step::Entity::find()
        .select_only()
        .columns([
            run_step::Column::Seq,
            run_step::Column::NodeId,
            run_step::Column::NodeType,
            run_step::Column::Visit,
            run_step::Column::Attempt,
            run_step::Column::Status,
            run_step::Column::Error,
            run_step::Column::StartedAt,
            run_step::Column::FinishedAt,
            run_step::Column::IdempotencyKey,
        ])
        .column_as(SqlExpr::cust("CAST(input AS TEXT)"), "input")
        .column_as(SqlExpr::cust("CAST(output AS TEXT)"), "output")
        .filter(run_step::Column::RunId.eq(id.as_str()))
        .order_by_asc(run_step::Column::Seq)
        .into_model::<StepText>()
        .all(&state.db)
        .await?;
    let mut out = run_json(&r);
    out["steps"] = steps
        .into_iter()
        .map(|s| {
            let mut unreadable = Vec::new();
            let mut read = |column: &str, text: &str| {
                serde_json::from_str::<Value>(text).unwrap_or_else(|e| {
                    unreadable.push(format!("{column}: {e}"));
                    Value::Null
                })
            };
            let (input, output) = (read("input", &s.input), read("output", &s.output));
            let mut step = json!({ "seq": s.seq, "node": s.node_id, "type": s.node_type, "visit": s.visit, "attempt": s.attempt,
                "status": s.status, "input": input, "output": output, "error": s.error,
                "started_at": s.started_at, "finished_at": s.finished_at,
                "duration_ms": (s.finished_at - s.started_at).num_milliseconds(), "idempotency_key": s.idempotency_key });
            if !unreadable.is_empty() {
                step["unreadable"] = json!(unreadable);
            }
            step
        })
        .collect();
    Ok(Json(out))
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct StepText {
    seq: i64,
    node_id: String,
    node_type: String,
    visit: i32,
    attempt: i32,
    status: String,
    input: String,
    output: String,
    error: Option<String>,
    started_at: chrono::DateTime<Utc>,
    finished_at: chrono::DateTime<Utc>,
    idempotency_key: String,
}

async fn find_run(state: &AppState, caller: &Caller, id: &str) -> ApiResult<RawRun> {
    run_rows::select()
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .into_model::<RawRun>()
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id:?} does not exist")))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RunQuery {
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u64>,
    /// Runs older than this run id (paging).
    pub before: Option<String>,
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct RunSummary {
    id: String,
    flow_id: String,
    version: i32,
    status: String,
    error: Option<String>,
    created_at: chrono::DateTime<Utc>,
    finished_at: Option<chrono::DateTime<Utc>>,
    test: bool,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunQuery), responses((status = 200, description = "`{runs: [...]}`", body = Object)))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", e.to_string()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(
            "/limit",
            "limit must be between 1 and 500",
        ));
    }
    let mut find =
        run::Entity::find().filter(run::Column::WorkspaceId.eq(caller.workspace_id.as_str()));
    if let Some(f) = &q.flow {
        find = find.filter(run::Column::FlowId.eq(f.as_str()));
    }
    if let Some(s) = &q.status {
        find = find.filter(run::Column::Status.eq(s.as_str()));
    }
    if let Some(b) = &q.before {
        find = find.filter(run::Column::Id.lt(b.as_str()));
    }
    // Only the columns listed: a run whose stored state does not read is listed all the same.
    let runs = find
        .select_only()
        .columns([
            run::Column::Id,
            run::Column::FlowId,
            run::Column::Version,
            run::Column::Status,
            run::Column::Error,
            run::Column::CreatedAt,
            run::Column::FinishedAt,
            run::Column::Test,
        ])
        .order_by_desc(run::Column::Id)
        .limit(limit)
        .into_model::<RunSummary>()
        .all(&state.db)
        .await?;
    let next = (runs.len() as u64 == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let list: Vec<Value> = runs
        .iter()
        .map(|r| json!({ "id": r.id, "flow_id": r.flow_id, "version": r.version, "status": r.status, "error": r.error,
                         "created_at": r.created_at, "finished_at": r.finished_at, "test": r.test }))
        .collect();
    Ok(Json(json!({ "runs": list, "next_before": next })))
}

/// Cancels a run that has not finished.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "cancelled run", body = Object), (status = 409, description = "already finished")))]
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Operator)?;
    let r = find_run(&state, &caller, &id).await?;
    if RunStatus::parse(&r.status).is_some_and(RunStatus::is_terminal) {
        return Err(ApiError::conflict(format!("run {id} already {}", r.status))
            .with_extra(json!({ "status": r.status })));
    }
    state
        .runs
        .cancel(
            &caller.workspace_id,
            &id,
            format!("cancelled by {}", caller.name),
        )
        .await?;
    let r = find_run(&state, &caller, &id).await?;
    Ok(Json(run_json(&r)))
}
