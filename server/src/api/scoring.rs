//! The workspace's scoring model: versioned like flows (save with a base version, list,
//! diff, publish, roll back). Publishing rescores every lead in the background; the model
//! resource shows the progress.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_analytics::{Mapping, SuggestOptions, Table, outcome_value};
use trellis_model::backtest::Scored;
use trellis_model::canonical::content_hash;
use trellis_model::scoring::{CompiledModel, ScoringModel, diff};
use utoipa::{IntoParams, ToSchema};

use crate::api::body::{ApiJson, from_value};
use crate::auth::{Caller, Role};
use crate::db::entities::scoring_model;
use crate::docs::{self, DocRef};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Parses and checks a model document; 422 with every problem (JSON pointers under
/// `prefix`) when it is invalid.
pub(crate) fn checked(doc: &Value, prefix: &str) -> ApiResult<ScoringModel> {
    let model: ScoringModel = from_value(doc.clone()).map_err(|mut e| {
        e.pointer = e.pointer.map(|p| format!("{prefix}{p}"));
        e
    })?;
    let problems = model.problems();
    if let Some(first) = problems.first() {
        return Err(ApiError {
            pointer: Some(format!("{prefix}{}", first.pointer)),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid scoring model",
                format!(
                    "the model has {} problem(s); first: {}",
                    problems.len(),
                    first.message
                ),
            )
        }
        .with_extra(json!({ "diagnostics": problems })));
    }
    Ok(model)
}

/// The model's head row (versions and rescore progress).
async fn head<C: ConnectionTrait>(conn: &C, workspace: &str) -> ApiResult<scoring_model::Model> {
    crate::leads::model_head(conn, workspace)
        .await?
        .ok_or_else(|| docs::DocError::missing(DocRef::scoring_model(workspace)).into())
}

fn doc_of(v: &docs::Version) -> ApiResult<Value> {
    serde_json::from_str(&v.doc).map_err(ApiError::internal)
}

fn version_json(v: &docs::Version) -> Value {
    json!({
        "number": v.number, "hash": v.hash, "author": v.author, "message": v.message,
        "created_at": v.created_at,
    })
}

fn head_json(h: &scoring_model::Model) -> Value {
    json!({
        "latest_version": h.latest_version,
        "published_version": h.published_version,
        "rescore": h.rescore_version.map(|v| json!({
            "version": v,
            "done": h.rescore_done,
            "total": h.rescore_total,
            "started_at": h.rescore_started_at,
            "finished_at": h.rescore_finished_at,
        })),
        "updated_at": h.updated_at,
    })
}

/// The model: versions, what is published, rescore progress, and the latest document.
#[utoipa::path(get, path = "/api/v1/scoring/model", tag = "scoring",
    responses((status = 200, description = "`{latest_version, published_version, rescore, doc}`", body = Object), (status = 404, description = "no model yet")))]
pub async fn get_model(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let h = head(&state.db, &caller.workspace_id).await?;
    let r = DocRef::scoring_model(&caller.workspace_id);
    let v = docs::version(&state.db, r, h.latest_version).await?;
    let mut out = head_json(&h);
    out["doc"] = doc_of(&v)?;
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveModel {
    #[schema(value_type = Object)]
    pub doc: Value,
    /// The version the edit started from (0 for the first save); a stale one is a 409.
    pub base_version: i32,
    #[serde(default)]
    pub message: Option<String>,
}

/// Saves a new version of the model (a draft until published).
#[utoipa::path(put, path = "/api/v1/scoring/model", tag = "scoring", request_body = SaveModel,
    responses((status = 200, description = "`{version}`", body = Object), (status = 409, description = "stale base version"), (status = 422, description = "invalid model, with `diagnostics`")))]
pub async fn save_model(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SaveModel>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    checked(&body.doc, "/doc")?;
    let txn = state.db.begin().await?;
    let edit = docs::Edit {
        base: body.base_version,
        body: &body.doc,
        hash: content_hash(&body.doc),
        message: body.message.as_deref().unwrap_or(""),
    };
    let next = docs::save(
        &txn,
        DocRef::scoring_model(&caller.workspace_id),
        edit,
        caller.author(),
    )
    .await?;
    txn.commit().await?;
    Ok(Json(json!({ "version": next })))
}

/// Every version, newest first (without documents).
#[utoipa::path(get, path = "/api/v1/scoring/model/versions", tag = "scoring",
    responses((status = 200, description = "`{versions: [{number, hash, author, message, created_at, published}]}`", body = Object)))]
pub async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let h = head(&state.db, &caller.workspace_id).await?;
    let versions = docs::versions(&state.db, DocRef::scoring_model(&caller.workspace_id)).await?;
    let items: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut item = version_json(v);
            item["published"] = json!(Some(v.number) == h.published_version);
            item
        })
        .collect();
    Ok(Json(json!({ "versions": items })))
}

/// One version's document.
#[utoipa::path(get, path = "/api/v1/scoring/model/versions/{n}", tag = "scoring", params(("n" = i32, Path)),
    responses((status = 200, description = "`{number, doc, …}`", body = Object), (status = 404, description = "no such version")))]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(n): Path<i32>,
) -> ApiResult<Json<Value>> {
    let v = docs::version(&state.db, DocRef::scoring_model(&caller.workspace_id), n).await?;
    let mut out = version_json(&v);
    out["doc"] = doc_of(&v)?;
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffQuery {
    pub from: i32,
    pub to: i32,
}

/// What version `to` changes relative to `from`: features added, removed, reweighted or
/// redefined, and threshold changes.
#[utoipa::path(get, path = "/api/v1/scoring/model/diff", tag = "scoring", params(DiffQuery),
    responses((status = 200, description = "diff", body = Object)))]
pub async fn diff_versions(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?from=N&to=M")))?;
    let (ma, mb): (ScoringModel, ScoringModel) = docs::pair(
        &state.db,
        DocRef::scoring_model(&caller.workspace_id),
        q.from,
        q.to,
    )
    .await?;
    let mut out = serde_json::to_value(diff(&ma, &mb)).map_err(ApiError::internal)?;
    out["from"] = json!(q.from);
    out["to"] = json!(q.to);
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionRef {
    pub version: i32,
    /// A backfill: every lead's score and tier move and the changes go on their timelines,
    /// but no flow starts (see `GET /api/v1/scoring/model/impact` for what a publish would
    /// start).
    #[serde(default)]
    pub backfill: bool,
}

/// Publishes version `number` (or, with `rollback`, a copy of it) in one transaction and
/// starts rescoring every lead with it; gives the model resource and the new version.
async fn set_published(
    state: &AppState,
    caller: &Caller,
    number: i32,
    rollback: bool,
    backfill: bool,
) -> ApiResult<(Value, i32)> {
    let workspace = caller.workspace_id.as_str();
    let r = DocRef::scoring_model(workspace);
    let txn = state.db.begin().await?;
    // Compiles (and caches) the version before anything points at it.
    docs::version(&txn, r, number).await?;
    state
        .intent
        .models
        .version(&txn, workspace, number)
        .await
        .map_err(ApiError::internal)?;
    let published = if rollback {
        docs::rollback(&txn, r, number, caller.author())
            .await?
            .version
    } else {
        docs::publish(&txn, r, number, caller.author()).await?;
        number
    };
    if backfill {
        state.intent.mark_backfill(&txn, workspace).await?;
    }
    txn.commit().await?;
    state.intent.spawn_rescore(workspace.to_owned(), published);
    let h = head(&state.db, workspace).await?;
    Ok((head_json(&h), published))
}

/// Publishes a version: new events score with it, and every lead is rescored in the
/// background (progress under `rescore`).
#[utoipa::path(post, path = "/api/v1/scoring/model/publish", tag = "scoring", request_body = VersionRef,
    responses((status = 202, description = "`{published_version, rescore}`", body = Object), (status = 404, description = "no such version")))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VersionRef>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Builder)?;
    let (out, _) = set_published(&state, &caller, body.version, false, body.backfill).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// Rolls back: the content of `version` becomes a new version, published. History is kept.
#[utoipa::path(post, path = "/api/v1/scoring/model/rollback", tag = "scoring", request_body = VersionRef,
    responses((status = 202, description = "`{version, published_version, rescore}`", body = Object)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VersionRef>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Builder)?;
    let (mut out, next) = set_published(&state, &caller, body.version, true, body.backfill).await?;
    out["version"] = json!(next);
    Ok((StatusCode::ACCEPTED, Json(out)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImpactQuery {
    /// The version whose publish is weighed.
    pub version: i32,
}

/// What publishing a version would do, before it is done: how many leads would change tier
/// or stage (from → to), and which published flows react to `lead.tier_changed` (each would
/// start about one run per change, fewer where its conditions filter). Nothing is written.
#[utoipa::path(get, path = "/api/v1/scoring/model/impact", tag = "scoring", params(ImpactQuery),
    responses((status = 200, description = "`{version, leads, changes, moves: [{from, to, leads}], replayed, flows: [{id, name, runs}]}`", body = Object), (status = 404, description = "no such version")))]
pub async fn impact(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ImpactQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("/version", e.to_string()))?;
    let workspace = caller.workspace_id.as_str();
    docs::version(&state.db, DocRef::scoring_model(workspace), q.version).await?;
    let impact = state
        .intent
        .publish_impact(workspace, q.version)
        .await
        .map_err(ApiError::internal)?;
    let routes = crate::routes::triggered(
        &state.db,
        Some(workspace),
        trellis_model::node_types::TriggerKind::Event,
        Some(crate::leads::TIER_CHANGED),
    )
    .await?;
    let mut flows = Vec::new();
    for route in routes {
        let f = docs::find_flow(&state.db, DocRef::flow(workspace, &route.flow_id)).await?;
        flows.push(json!({ "id": f.id, "name": f.name, "runs": impact.changes }));
    }
    Ok(Json(json!({
        "version": q.version,
        "leads": impact.leads,
        "changes": impact.changes,
        "moves": impact.moves,
        "replayed": impact.replayed,
        "flows": flows,
    })))
}

/// The scoring model document's JSON Schema.
#[utoipa::path(get, path = "/api/v1/scoring/schema", tag = "scoring",
    responses((status = 200, description = "JSON Schema", body = Object)))]
pub async fn schema() -> Json<Value> {
    Json(ScoringModel::json_schema())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestIn {
    /// The lead attribute holding the outcome (1/0, true/false, yes/no, converted/lost).
    pub outcome: String,
    /// The version to test (default: the latest).
    #[serde(default)]
    pub version: Option<i32>,
    /// A model document to test instead of a saved version: the studio's unsaved draft.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub doc: Option<Value>,
}

/// Backtests a model version against the workspace's leads that have an outcome: AUC, lift
/// at the top 10%, ROC and lift curves, calibration by decile.
#[utoipa::path(post, path = "/api/v1/scoring/backtest", tag = "scoring", request_body = BacktestIn,
    responses((status = 200, description = "`{version, leads_without_outcome, backtest}`", body = Object), (status = 422, description = "nothing to measure")))]
pub async fn backtest(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BacktestIn>,
) -> ApiResult<Json<Value>> {
    let workspace = caller.workspace_id.as_str();
    let (number, model) = match (&body.doc, body.version) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "/doc",
                "give either a version or a doc to test, not both",
            ));
        }
        (Some(doc), None) => {
            let model = CompiledModel::new(checked(doc, "/doc")?).map_err(ApiError::internal)?;
            (None, Arc::new(model))
        }
        (None, n) => {
            let number = match n {
                Some(n) => n,
                None => {
                    docs::head(&state.db, DocRef::scoring_model(workspace))
                        .await?
                        .latest
                }
            };
            docs::version(&state.db, DocRef::scoring_model(workspace), number).await?;
            let model = state
                .intent
                .models
                .version(&state.db, workspace, number)
                .await
                .map_err(ApiError::internal)?;
            (Some(number), model)
        }
    };
    let leads = crate::leads::all(&state.db, workspace).await?;
    let now = Utc::now().timestamp_millis();
    let mut without = 0usize;
    let mut scored = Vec::with_capacity(leads.len());
    for l in &leads {
        let Some(converted) = l.attributes.get(&body.outcome).and_then(outcome_value) else {
            without += 1;
            continue;
        };
        let s = model.rate(&l.attributes, &crate::leads::state_of(&l.state), now);
        scored.push(Scored {
            score: s.score,
            probability: s.probability,
            converted,
        });
    }
    let result = trellis_model::backtest::backtest(&scored).map_err(|e| {
        ApiError::invalid(
            "/outcome",
            format!(
                "{e} ({} leads have an outcome in {:?}, {without} do not)",
                scored.len(),
                body.outcome
            ),
        )
    })?;
    Ok(Json(json!({
        "version": number,
        "leads_without_outcome": without,
        "backtest": result,
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestIn {
    /// The lead attribute holding the outcome.
    pub outcome: String,
    /// Attributes not to use (`Prefix*` for a family); leave out what leaks the outcome.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Share of leads held out for the reported backtest (default 20).
    #[serde(default)]
    pub holdout_percent: Option<u32>,
    /// Pairs of attributes to choose by cross-validation (default 3).
    #[serde(default)]
    pub auto_crosses: Option<usize>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Fits suggested weights to the workspace's leads with outcomes and saves the result as a
/// new draft version: answers with its number, the model, its diff against the published
/// version, and its backtests (training and held-out leads). One suggestion runs at a time
/// per workspace (409 while one does); `GET /api/v1/scoring/suggest/progress` shows how far
/// it is. It finishes and is saved even if the caller stops waiting.
#[utoipa::path(post, path = "/api/v1/scoring/suggest", tag = "scoring", request_body = SuggestIn,
    responses((status = 200, description = "`{version, doc, diff, train, holdout, used, skipped}`", body = Object), (status = 409, description = "a suggestion is running"), (status = 422, description = "nothing to fit")))]
pub async fn suggest(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SuggestIn>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let running = state
        .intent
        .suggestions
        .start(&caller.workspace_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "a suggestion is running",
                "weights are being suggested for this workspace already; wait for that one",
            )
        })?;
    // Its own task: a caller that stops waiting does not stop it half way.
    let task = tokio::spawn(async move {
        let result = fit_and_save(&state, &caller, body, &running).await;
        running.finish(result.as_ref().err().map(|e| e.detail.clone()));
        result
    });
    task.await.map_err(ApiError::internal)?.map(Json)
}

async fn fit_and_save(
    state: &AppState,
    caller: &Caller,
    body: SuggestIn,
    running: &crate::intent::Running,
) -> ApiResult<Value> {
    let workspace = caller.workspace_id.clone();
    let leads = crate::leads::all(&state.db, &workspace).await?;
    const ID: &str = "__lead_id";
    let records: Vec<Value> = leads
        .into_iter()
        .filter(|l| {
            l.attributes
                .get(&body.outcome)
                .and_then(outcome_value)
                .is_some()
        })
        .map(|l| {
            let mut a = l.attributes;
            a[ID] = json!(l.id);
            a
        })
        .collect();
    if records.is_empty() {
        return Err(ApiError::invalid(
            "/outcome",
            format!(
                "no lead has an outcome in {:?}; import history first",
                body.outcome
            ),
        ));
    }
    running.leads(records.len());
    let mut options = SuggestOptions::new(body.outcome.clone());
    options.exclude = body.exclude.clone();
    options.id_column = Some(ID.into());
    if let Some(h) = body.holdout_percent {
        options.holdout_percent = h;
    }
    if let Some(n) = body.auto_crosses {
        options.auto_crosses = n.min(5);
    }
    if let Some(n) = &body.name {
        options.name = n.clone();
    }
    let progress = state.intent.suggestions.clone();
    let ws = workspace.clone();
    let suggestion = tokio::task::spawn_blocking(move || {
        let table = Table::from_records(&records, &Mapping::default())?;
        trellis_analytics::suggest_with_progress(&table, &options, &mut |p| {
            progress.report(&ws, p);
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        let pointer = match &e {
            trellis_analytics::SuggestError::UnknownExclude(_) => "/exclude",
            trellis_analytics::SuggestError::BadHoldout(_) => "/holdout_percent",
            _ => "/outcome",
        };
        ApiError::invalid(pointer, e.to_string())
    })?;
    let doc = serde_json::to_value(&suggestion.model).map_err(ApiError::internal)?;
    let txn = state.db.begin().await?;
    let r = DocRef::scoring_model(&workspace);
    let current = crate::leads::model_head(&txn, &workspace).await?;
    let base = current.as_ref().map_or(0, |h| h.latest_version);
    let against = match current.as_ref().and_then(|h| h.published_version) {
        Some(p) => Some(docs::version(&txn, r, p).await?),
        None => None,
    };
    let message = format!(
        "suggested from {} leads (held-out AUC {})",
        suggestion.train_rows + suggestion.holdout_rows,
        suggestion
            .holdout
            .as_ref()
            .map_or("—".to_string(), |h| format!("{:.4}", h.auc))
    );
    let edit = docs::Edit {
        base,
        body: &doc,
        hash: content_hash(&doc),
        message: &message,
    };
    let next = docs::save_as(&txn, r, edit, caller.author(), "suggest").await?;
    txn.commit().await?;
    let diff = match against {
        Some(v) => {
            let old: ScoringModel = serde_json::from_str(&v.doc).map_err(ApiError::internal)?;
            json!({ "from": v.number, "changes": diff(&old, &suggestion.model) })
        }
        None => Value::Null,
    };
    Ok(json!({
        "version": next,
        "doc": doc,
        "diff": diff,
        "alpha": suggestion.alpha,
        "train_leads": suggestion.train_rows,
        "holdout_leads": suggestion.holdout_rows,
        "train": suggestion.train,
        "holdout": suggestion.holdout,
        "used": suggestion.used,
        "skipped": suggestion.skipped.iter().map(|(c, why)| json!({ "attribute": c, "reason": why })).collect::<Vec<_>>(),
    }))
}

/// How far the workspace's running (or latest) suggestion is in this process: `{running,
/// leads, progress: {step, done, total}, started_at, finished_at, error}`; 404 when none
/// ran here.
#[utoipa::path(get, path = "/api/v1/scoring/suggest/progress", tag = "scoring",
    responses((status = 200, description = "the suggestion's progress", body = Object), (status = 404, description = "no suggestion ran in this process")))]
pub async fn suggest_progress(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<crate::intent::SuggestStatus>> {
    state
        .intent
        .suggestions
        .status(&caller.workspace_id)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not found",
                "no suggestion ran for this workspace in this process",
            )
        })
}

/// Recent events of each behaviour feature's type that coverage checks against its filter.
const COVERAGE_EVENTS: u64 = 1_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoverageIn {
    /// The model document (the studio's draft).
    #[schema(value_type = Object)]
    pub doc: Value,
}

/// Which of the workspace's data each feature of a model matches: per feature, leads with
/// a value and leads it gives points to, the most frequent values (fit features), listed
/// values no lead has, and for behaviour features the events of their type and how many of
/// the most recent 1,000 pass the filter. The scoring page warns about a feature that
/// matches nothing.
#[utoipa::path(post, path = "/api/v1/scoring/coverage", tag = "scoring", request_body = CoverageIn,
    responses((status = 200, description = "`{leads, features: [{feature, with_value, scoring, values, unseen_values, events, matches_nothing}]}`", body = Object), (status = 422, description = "invalid model")))]
pub async fn coverage(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CoverageIn>,
) -> ApiResult<Json<Value>> {
    let workspace = caller.workspace_id.as_str();
    let model = CompiledModel::new(checked(&body.doc, "/doc")?).map_err(ApiError::internal)?;
    let leads = crate::leads::all(&state.db, workspace).await?;
    let states: Vec<_> = leads
        .iter()
        .map(|l| crate::leads::state_of(&l.state))
        .collect();
    let now = Utc::now().timestamp_millis();
    let mut coverage = trellis_model::coverage::Coverage::of_leads(
        &model,
        leads.iter().zip(&states).map(|(l, s)| (&l.attributes, s)),
        now,
    );
    let behaviours: Vec<(usize, String)> = model
        .behaviours()
        .map(|(i, b)| (i, b.event.clone()))
        .collect();
    for (i, event) in behaviours {
        let (total, recent) =
            crate::leads::recent_events(&state.db, workspace, &event, COVERAGE_EVENTS).await?;
        coverage.add_events(&model, i, total, &recent);
    }
    let features: Vec<Value> = coverage
        .features
        .iter()
        .map(|f| {
            let mut v = json!(f);
            v["matches_nothing"] = json!(f.matches_nothing());
            v
        })
        .collect();
    Ok(Json(
        json!({ "leads": coverage.leads, "features": features }),
    ))
}
