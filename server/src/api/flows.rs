//! Flows and their immutable versions: create, save (with a base version), list, diff,
//! publish and roll back.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sea_orm::TransactionTrait;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::canonical::content_hash;
use trellis_model::validate::is_valid;
use trellis_model::{Catalog, FlowDoc, diff, validate_value_with};
use utoipa::{IntoParams, ToSchema};

use crate::api::body::ApiJson;
use crate::auth::{Caller, Role};
use crate::docs::{self, DocRef};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Validates a document, answering 422 with every diagnostic when it has errors.
fn checked(doc: &Value, catalog: &Catalog) -> ApiResult<FlowDoc> {
    let (parsed, diagnostics) = validate_value_with(doc, catalog);
    match parsed {
        Some(flow) if is_valid(&diagnostics) => Ok(flow),
        _ => {
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == trellis_model::Severity::Error)
                .count();
            let first = diagnostics
                .first()
                .map(|d| d.pointer.clone())
                .unwrap_or_default();
            Err(ApiError {
                pointer: Some(first),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid flow",
                    format!("the flow has {errors} error(s); see `diagnostics`"),
                )
            }
            .with_extra(json!({ "diagnostics": diagnostics })))
        }
    }
}

/// The hash readers see: over the document as they see it, so it tells nothing of the
/// secrets.
fn hash(doc: &Value) -> String {
    content_hash(&redacted(doc))
}

/// A request's version number that names no version is a problem of its `/version`.
fn at_version(e: docs::DocError) -> ApiError {
    let not_found = matches!(e, docs::DocError::NoVersion { .. });
    let e = ApiError::from(e);
    if not_found {
        ApiError {
            pointer: Some("/version".into()),
            ..e
        }
    } else {
        e
    }
}

/// A flow document as the API shows it: webhook secrets are write-only.
fn redacted(doc: &Value) -> Value {
    let mut doc = doc.clone();
    trellis_model::node_types::redact_secrets(&mut doc);
    doc
}

/// Puts back the secrets a document was saved with as placeholders (see
/// `trellis_model::node_types::SECRET_SET`); `pointer` is where the document sits in the body.
fn restore_secrets(doc: &mut Value, previous: Option<&Value>, pointer: &str) -> ApiResult<()> {
    trellis_model::node_types::restore_secrets(doc, previous)
        .map_err(|(p, message)| ApiError::invalid(format!("{pointer}{p}"), message))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CreateQuery {
    /// The flow this one copies: webhook secrets left as `SECRET_SET` keep its values.
    pub copy_of: Option<String>,
}

/// Creates a flow; the body is the flow document.
#[utoipa::path(post, path = "/api/v1/flows", tag = "flows", params(CreateQuery), request_body = Object,
    responses((status = 201, description = "created: `{id, version}`", body = Object), (status = 422, description = "invalid flow, with `diagnostics`")))]
pub async fn create_flow(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(mut doc): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Builder)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("", e.to_string()))?;
    let source = match &q.copy_of {
        Some(id) => {
            let r = DocRef::flow(&caller.workspace_id, id);
            let h = docs::head(&state.db, r).await?;
            Some(docs::version(&state.db, r, h.latest).await?.doc_value())
        }
        None => None,
    };
    restore_secrets(&mut doc, source.as_ref(), "")?;
    let catalog = state.catalog(&caller.workspace_id).await?;
    let parsed = checked(&doc, &catalog)?;
    let txn = state.db.begin().await?;
    let id = docs::create_flow(
        &txn,
        &caller.workspace_id,
        &parsed.name,
        &doc,
        hash(&doc),
        caller.author(),
    )
    .await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "version": 1 }))))
}

/// Lists the workspace's flows with their latest and published versions and last run.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", responses((status = 200, description = "`{flows: [...]}`", body = Object)))]
pub async fn list_flows(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let out: Vec<Value> = docs::list_flows(&state.db, &caller.workspace_id)
        .await?
        .into_iter()
        .map(|docs::FlowSummary { flow: f, last_run }| {
            json!({
                "id": f.id, "name": f.name, "latest_version": f.latest_version, "published_version": f.published_version,
                "created_at": f.created_at, "updated_at": f.updated_at,
                "last_run": last_run.map(|r| json!({ "id": r.id, "status": r.status, "created_at": r.created_at })),
            })
        })
        .collect();
    Ok(Json(json!({ "flows": out })))
}

/// The latest document of a flow with its latest and published version numbers.
#[utoipa::path(get, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "flow", body = Object), (status = 404, description = "no such flow")))]
pub async fn get_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = DocRef::flow(&caller.workspace_id, &id);
    let f = docs::find_flow(&state.db, r).await?;
    let v = docs::version(&state.db, r, f.latest_version).await?;
    // The name is the flow's own (renames make no version): the document carries it.
    let mut doc = redacted(&v.doc_value());
    doc["name"] = Value::String(f.name.clone());
    Ok(Json(json!({
        "id": f.id, "name": f.name, "latest_version": f.latest_version, "published_version": f.published_version,
        "created_at": f.created_at, "updated_at": f.updated_at, "doc": doc, "hash": v.hash,
    })))
}

/// Recent real triggers of a flow, to test it with: for an event trigger the last events
/// of its name (for a behaviour trigger, of the names it looks at), otherwise the triggers of its last live runs (webhook calls, manual runs),
/// newest first; with the trigger's kind and, for a webhook, its path.
#[utoipa::path(get, path = "/api/v1/flows/{id}/samples", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "`{kind, path?, event?, samples: [{at, trigger}]}`", body = Object), (status = 404, description = "no such flow")))]
pub async fn trigger_samples(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    use trellis_model::node_types::{TriggerConfig, TriggerKind};
    const SAMPLES: u64 = 10;
    let r = DocRef::flow(&caller.workspace_id, &id);
    let f = docs::find_flow(&state.db, r).await?;
    let v = docs::version(&state.db, r, f.latest_version).await?;
    let trigger = serde_json::from_value::<FlowDoc>(v.doc_value())
        .ok()
        .and_then(|d| {
            d.trigger()
                .and_then(|t| serde_json::from_value::<TriggerConfig>(t.config.clone()).ok())
        });
    let Some(trigger) = trigger else {
        return Ok(Json(json!({ "kind": null, "samples": [] })));
    };
    let samples = match (trigger.kind, &trigger.event) {
        (TriggerKind::Event, Some(name)) => {
            crate::events::recent_triggers(&state.db, &caller.workspace_id, name, SAMPLES).await?
        }
        // Events of every name the behaviour looks at, newest first.
        (TriggerKind::Behaviour, _) => {
            let mut all = Vec::new();
            for name in trigger
                .behaviour
                .as_ref()
                .map(|b| b.event_names())
                .unwrap_or_default()
            {
                all.extend(
                    crate::events::recent_triggers(&state.db, &caller.workspace_id, name, SAMPLES)
                        .await?,
                );
            }
            all.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            all.truncate(SAMPLES as usize);
            all
        }
        _ => {
            state
                .runs
                .recent_triggers(&caller.workspace_id, &id, SAMPLES)
                .await?
        }
    };
    let samples: Vec<Value> = samples
        .into_iter()
        .map(|(at, trigger)| json!({ "at": at, "trigger": trigger }))
        .collect();
    Ok(Json(json!({
        "kind": trigger.kind.as_str(),
        "path": trigger.path,
        "event": trigger.event,
        "samples": samples,
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameFlow {
    /// The new name: 1–200 characters.
    pub name: String,
}

/// Renames a flow. The name belongs to the flow, not to a version: no version is made, and
/// a rollback keeps the name.
#[utoipa::path(patch, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path)), request_body = RenameFlow,
    responses((status = 200, description = "`{name, previous}`", body = Object), (status = 404, description = "no such flow"), (status = 422, description = "bad name")))]
pub async fn rename_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameFlow>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("/name", "a flow needs a name"));
    }
    if name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "/name",
            "a flow's name is at most 200 characters",
        ));
    }
    if name.contains('\0') {
        return Err(ApiError::invalid(
            "/name",
            "a name cannot hold a NUL character",
        ));
    }
    let txn = state.db.begin().await?;
    let previous = docs::rename_flow(
        &txn,
        DocRef::flow(&caller.workspace_id, &id),
        name,
        caller.author(),
    )
    .await?;
    txn.commit().await?;
    Ok(Json(json!({ "name": name, "previous": previous })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveFlow {
    /// The version the edit started from; a stale one is a 409.
    pub base_version: i32,
    #[schema(value_type = Object)]
    pub doc: Value,
    #[serde(default)]
    pub message: Option<String>,
}

/// Saves a new version. A `base_version` other than the latest is a 409 that names the
/// current version; nothing is overwritten.
#[utoipa::path(put, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path)), request_body = SaveFlow,
    responses((status = 200, description = "`{version}`", body = Object), (status = 409, description = "stale base version"), (status = 422, description = "invalid flow")))]
pub async fn save_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut body): ApiJson<SaveFlow>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let r = DocRef::flow(&caller.workspace_id, &id);
    // Secrets left as placeholders keep the base version's values.
    let base = docs::version(&state.db, r, body.base_version)
        .await
        .ok()
        .map(|v| v.doc_value());
    restore_secrets(&mut body.doc, base.as_ref(), "/doc")?;
    let catalog = state.catalog(&caller.workspace_id).await?;
    checked(&body.doc, &catalog).map_err(|mut e| {
        e.pointer = e.pointer.map(|p| format!("/doc{p}"));
        e
    })?;
    let txn = state.db.begin().await?;
    let edit = docs::Edit {
        base: body.base_version,
        body: &body.doc,
        hash: hash(&body.doc),
        message: body.message.as_deref().unwrap_or_default(),
    };
    let next = docs::save(&txn, r, edit, caller.author()).await?;
    txn.commit().await?;
    Ok(Json(json!({ "version": next })))
}

/// Validates a document without saving it.
#[utoipa::path(post, path = "/api/v1/flows/validate", tag = "flows", request_body = Object,
    responses((status = 200, description = "`{valid, diagnostics}`", body = Object)))]
pub async fn validate_flow(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let catalog = state.catalog(&caller.workspace_id).await?;
    let (_, diagnostics) = validate_value_with(&doc, &catalog);
    Ok(Json(
        json!({ "valid": is_valid(&diagnostics), "diagnostics": diagnostics }),
    ))
}

/// Every version, newest first.
#[utoipa::path(get, path = "/api/v1/flows/{id}/versions", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "`{versions: [...]}`", body = Object)))]
pub async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = DocRef::flow(&caller.workspace_id, &id);
    let h = docs::head(&state.db, r).await?;
    let list: Vec<Value> = docs::versions(&state.db, r)
        .await?
        .into_iter()
        .map(|v| {
            json!({ "number": v.number, "hash": v.hash, "author": v.author, "message": v.message,
                    "created_at": v.created_at, "published": Some(v.number) == h.published })
        })
        .collect();
    Ok(Json(
        json!({ "versions": list, "latest_version": h.latest, "published_version": h.published }),
    ))
}

/// One version with its document.
#[utoipa::path(get, path = "/api/v1/flows/{id}/versions/{n}", tag = "flows", params(("id" = String, Path), ("n" = i32, Path)),
    responses((status = 200, description = "version", body = Object), (status = 404, description = "no such version")))]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, i32)>,
) -> ApiResult<Json<Value>> {
    let r = DocRef::flow(&caller.workspace_id, &id);
    let h = docs::head(&state.db, r).await?;
    let v = docs::version(&state.db, r, n).await?;
    Ok(Json(
        json!({ "number": v.number, "hash": v.hash, "author": v.author, "message": v.message,
        "created_at": v.created_at, "published": Some(v.number) == h.published, "doc": redacted(&v.doc_value()) }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffQuery {
    pub from: i32,
    pub to: i32,
}

/// Semantic diff between two versions, and how many unfinished runs are pinned to `from`.
#[utoipa::path(get, path = "/api/v1/flows/{id}/diff", tag = "flows", params(("id" = String, Path), DiffQuery),
    responses((status = 200, description = "diff", body = Object)))]
pub async fn diff_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?from=N&to=M")))?;
    let r = DocRef::flow(&caller.workspace_id, &id);
    docs::head(&state.db, r).await?;
    let (da, db): (FlowDoc, FlowDoc) = docs::pair(&state.db, r, q.from, q.to).await?;
    let d = diff(&da, &db);
    let waiting = state.runs.unfinished_on(&id, q.from).await?;
    let mut out = serde_json::to_value(&d).map_err(ApiError::internal)?;
    out["from"] = json!(q.from);
    out["to"] = json!(q.to);
    out["unfinished_runs_on_from"] = json!(waiting);
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionRef {
    pub version: i32,
}

/// Publishes a version: new runs start on it; running ones stay on theirs.
#[utoipa::path(post, path = "/api/v1/flows/{id}/publish", tag = "flows", params(("id" = String, Path)), request_body = VersionRef,
    responses((status = 200, description = "`{published_version}`", body = Object), (status = 409, description = "webhook path taken")))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<VersionRef>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let r = DocRef::flow(&caller.workspace_id, &id);
    let txn = state.db.begin().await?;
    docs::publish(&txn, r, body.version, caller.author())
        .await
        .map_err(at_version)?;
    txn.commit().await?;
    state.routes.clear();
    Ok(Json(json!({ "published_version": body.version })))
}

/// Rolls back: the content of `version` becomes a new version, published. History is kept.
#[utoipa::path(post, path = "/api/v1/flows/{id}/rollback", tag = "flows", params(("id" = String, Path)), request_body = VersionRef,
    responses((status = 200, description = "`{version, published_version}`", body = Object)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<VersionRef>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let r = DocRef::flow(&caller.workspace_id, &id);
    let txn = state.db.begin().await?;
    let done = docs::rollback(&txn, r, body.version, caller.author())
        .await
        .map_err(at_version)?;
    txn.commit().await?;
    state.routes.clear();
    Ok(Json(
        json!({ "version": done.version, "published_version": done.version, "restored": done.restored }),
    ))
}

/// Deletes (archives) a flow: it leaves lists and stops receiving webhooks, events and
/// schedules; its versions, runs and audit trail are kept.
#[utoipa::path(delete, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such flow")))]
pub async fn delete_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Builder)?;
    let txn = state.db.begin().await?;
    docs::archive_flow(
        &txn,
        DocRef::flow(&caller.workspace_id, &id),
        caller.author(),
    )
    .await?;
    txn.commit().await?;
    state.routes.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enroll {
    /// Lead ids: 1–1,000.
    pub leads: Vec<String>,
}

/// Enrolls leads in the flow (its published version): each gets a run whose trigger is a
/// `lead.enrolled` event, unless it is suppressed or already has a live run of the flow.
#[utoipa::path(post, path = "/api/v1/flows/{id}/enroll", tag = "flows", params(("id" = String, Path)),
    request_body = Enroll,
    responses((status = 200, description = "`{started, skipped: [{lead, reason}]}`", body = Object)))]
pub async fn enroll_leads(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Enroll>,
) -> ApiResult<Json<Value>> {
    use crate::lead_actions::{enroll_one, live_runs};
    caller.require(Role::Operator)?;
    if body.leads.is_empty() || body.leads.len() > 1000 {
        return Err(ApiError::invalid(
            "/leads",
            "enroll 1 to 1,000 leads at a time",
        ));
    }
    let f = docs::find_flow(&state.db, DocRef::flow(&caller.workspace_id, &id)).await?;
    if f.published_version.is_none() {
        return Err(ApiError::conflict(format!(
            "flow {:?} is not published: publish it before enrolling leads",
            f.name
        )));
    }
    let mut started = Vec::new();
    let mut skipped = Vec::new();
    let batch = uuid::Uuid::now_v7().to_string();
    for (i, lead_id) in body.leads.iter().enumerate() {
        let Some(lead) = crate::leads::find(&state.db, &caller.workspace_id, lead_id).await? else {
            skipped.push(json!({ "lead": lead_id, "reason": "the lead does not exist" }));
            continue;
        };
        let live = live_runs(&state.db, &caller.workspace_id, &f.id, &lead.id).await?;
        let out = enroll_one(
            &state.db,
            &state.runs,
            &caller.workspace_id,
            &f,
            &lead,
            &live,
            json!({ "by": caller.name }),
            &format!("enroll:{batch}:{i}"),
        )
        .await
        .map_err(ApiError::internal)?;
        if out["started"] == json!(true) {
            started.push(out["run"].clone());
        } else {
            skipped.push(json!({ "lead": lead.id, "reason": out["reason"] }));
        }
    }
    crate::api::audit(
        &state.db,
        &caller,
        "flow.enroll",
        &f.id,
        json!({ "started": started.len(), "skipped": skipped.len() }),
    )
    .await?;
    Ok(Json(json!({ "started": started, "skipped": skipped })))
}
