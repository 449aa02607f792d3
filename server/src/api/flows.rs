//! Flows and their immutable versions: create, save (with a base version), list, diff,
//! publish and roll back.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use std::collections::HashMap;

use sea_orm::sea_query::{Expr as SqlExpr, Func, OnConflict, Query as SqlQuery};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::canonical::content_hash;
use trellis_model::node_types::{TriggerConfig, TriggerKind};
use trellis_model::validate::is_valid;
use trellis_model::{Catalog, FlowDoc, diff, validate_value_with};
use utoipa::{IntoParams, ToSchema};

use super::audit;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::db::entities::{flow, flow_trigger, flow_version, run};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::runs::RunStatus;

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

async fn find_flow<C: ConnectionTrait>(
    conn: &C,
    caller: &Caller,
    id: &str,
) -> ApiResult<flow::Model> {
    flow::Entity::find_by_id(id.to_owned())
        .filter(flow::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(flow::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id:?} does not exist")))
}

async fn find_version<C: ConnectionTrait>(
    conn: &C,
    flow_id: &str,
    number: i32,
) -> ApiResult<flow_version::Model> {
    flow_version::Entity::find_by_id((flow_id.to_owned(), number))
        .one(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {flow_id:?} has no version {number}")))
}

async fn insert_version<C: ConnectionTrait>(
    conn: &C,
    caller: &Caller,
    flow_id: &str,
    number: i32,
    doc: &Value,
    message: &str,
) -> ApiResult<()> {
    flow_version::Entity::insert(flow_version::ActiveModel {
        workspace_id: Set(caller.workspace_id.clone()),
        flow_id: Set(flow_id.to_owned()),
        number: Set(number),
        // Over the document as readers see it, so the hash tells nothing of the secrets.
        hash: Set(content_hash(&redacted(doc))),
        doc: Set(doc.to_string()),
        author: Set(caller.name.clone()),
        message: Set(message.to_owned()),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
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
            let f = find_flow(&state.db, &caller, id).await?;
            Some(
                find_version(&state.db, id, f.latest_version)
                    .await?
                    .doc_value(),
            )
        }
        None => None,
    };
    restore_secrets(&mut doc, source.as_ref(), "")?;
    let catalog = state.catalog(&caller.workspace_id).await?;
    let parsed = checked(&doc, &catalog)?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let txn = state.db.begin().await?;
    flow::Entity::insert(flow::ActiveModel {
        id: Set(id.clone()),
        workspace_id: Set(caller.workspace_id.clone()),
        name: Set(parsed.name.clone()),
        latest_version: Set(1),
        published_version: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    insert_version(&txn, &caller, &id, 1, &doc, "created").await?;
    audit(&txn, &caller, "flow.create", &id, json!({ "version": 1 })).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "version": 1 }))))
}

/// Lists the workspace's flows with their latest and published versions and last run.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", responses((status = 200, description = "`{flows: [...]}`", body = Object)))]
pub async fn list_flows(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let flows = flow::Entity::find()
        .filter(flow::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(flow::Column::DeletedAt.is_null())
        .order_by_desc(flow::Column::UpdatedAt)
        .all(&state.db)
        .await?;
    // The last run of every flow in one query (run ids are time-ordered UUIDv7s), not one
    // query per flow.
    let latest_ids = SqlQuery::select()
        .expr(Func::max(SqlExpr::col(run::Column::Id)))
        .from(run::Entity)
        .and_where(run::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .group_by_col(run::Column::FlowId)
        .to_owned();
    // The columns shown only: a run whose stored state does not read is listed all the same.
    let last_runs: HashMap<String, LastRun> = run::Entity::find()
        .select_only()
        .columns([
            run::Column::Id,
            run::Column::FlowId,
            run::Column::Status,
            run::Column::CreatedAt,
        ])
        .filter(run::Column::Id.in_subquery(latest_ids))
        .into_model::<LastRun>()
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| (r.flow_id.clone(), r))
        .collect();
    let out: Vec<Value> = flows
        .into_iter()
        .map(|f| {
            let last = last_runs.get(&f.id);
            json!({
                "id": f.id, "name": f.name, "latest_version": f.latest_version, "published_version": f.published_version,
                "created_at": f.created_at, "updated_at": f.updated_at,
                "last_run": last.map(|r| json!({ "id": r.id, "status": r.status, "created_at": r.created_at })),
            })
        })
        .collect();
    Ok(Json(json!({ "flows": out })))
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct LastRun {
    id: String,
    flow_id: String,
    status: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// The latest document of a flow with its latest and published version numbers.
#[utoipa::path(get, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "flow", body = Object), (status = 404, description = "no such flow")))]
pub async fn get_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = find_flow(&state.db, &caller, &id).await?;
    let v = find_version(&state.db, &id, f.latest_version).await?;
    Ok(Json(json!({
        "id": f.id, "name": f.name, "latest_version": f.latest_version, "published_version": f.published_version,
        "created_at": f.created_at, "updated_at": f.updated_at, "doc": redacted(&v.doc_value()), "hash": v.hash,
    })))
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
    // Secrets left as placeholders keep the base version's values.
    let base = flow_version::Entity::find_by_id((id.clone(), body.base_version))
        .filter(flow_version::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .one(&state.db)
        .await?
        .map(|v| v.doc_value());
    restore_secrets(&mut body.doc, base.as_ref(), "/doc")?;
    let catalog = state.catalog(&caller.workspace_id).await?;
    let parsed = checked(&body.doc, &catalog).map_err(|mut e| {
        e.pointer = e.pointer.map(|p| format!("/doc{p}"));
        e
    })?;
    let txn = state.db.begin().await?;
    let f = find_flow(&txn, &caller, &id).await?;
    let next = body.base_version + 1;
    let updated = flow::Entity::update_many()
        .col_expr(flow::Column::LatestVersion, SqlExpr::value(next))
        .col_expr(flow::Column::Name, SqlExpr::value(parsed.name.clone()))
        .col_expr(flow::Column::UpdatedAt, SqlExpr::value(Utc::now()))
        .filter(flow::Column::Id.eq(id.as_str()))
        .filter(flow::Column::LatestVersion.eq(body.base_version))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        txn.rollback().await?;
        return Err(stale(&f, body.base_version));
    }
    let message = body.message.unwrap_or_default();
    insert_version(&txn, &caller, &id, next, &body.doc, &message).await?;
    audit(&txn, &caller, "flow.save", &id, json!({ "version": next })).await?;
    txn.commit().await?;
    Ok(Json(json!({ "version": next })))
}

fn stale(f: &flow::Model, base: i32) -> ApiError {
    ApiError {
        pointer: Some("/base_version".into()),
        ..ApiError::conflict(format!(
            "version {} was saved meanwhile; your edit is based on version {base}. Reload or merge, then save with base_version {}",
            f.latest_version, f.latest_version
        ))
    }
    .with_extra(json!({ "current_version": f.latest_version }))
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
    let f = find_flow(&state.db, &caller, &id).await?;
    let versions = flow_version::Entity::find()
        .filter(flow_version::Column::FlowId.eq(id.as_str()))
        .order_by_desc(flow_version::Column::Number)
        .all(&state.db)
        .await?;
    let list: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            json!({ "number": v.number, "hash": v.hash, "author": v.author, "message": v.message,
                    "created_at": v.created_at, "published": Some(v.number) == f.published_version })
        })
        .collect();
    Ok(Json(
        json!({ "versions": list, "latest_version": f.latest_version, "published_version": f.published_version }),
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
    let f = find_flow(&state.db, &caller, &id).await?;
    let v = find_version(&state.db, &id, n).await?;
    Ok(Json(
        json!({ "number": v.number, "hash": v.hash, "author": v.author, "message": v.message,
        "created_at": v.created_at, "published": Some(v.number) == f.published_version, "doc": redacted(&v.doc_value()) }),
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
    find_flow(&state.db, &caller, &id).await?;
    let a = find_version(&state.db, &id, q.from).await?;
    let b = find_version(&state.db, &id, q.to).await?;
    let da: FlowDoc = serde_json::from_str(&a.doc).map_err(ApiError::internal)?;
    let db: FlowDoc = serde_json::from_str(&b.doc).map_err(ApiError::internal)?;
    let d = diff(&da, &db);
    let waiting = run::Entity::find()
        .filter(run::Column::FlowId.eq(id.as_str()))
        .filter(run::Column::Version.eq(q.from))
        .filter(run::Column::Status.is_in(RunStatus::LIVE))
        .count(&state.db)
        .await?;
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

/// Records which published flow a trigger routes to; webhook paths are unique per workspace.
async fn set_published<C: ConnectionTrait>(
    conn: &C,
    caller: &Caller,
    f: &flow::Model,
    version: i32,
    doc: &Value,
) -> ApiResult<()> {
    let parsed: FlowDoc = serde_json::from_value(doc.clone()).map_err(ApiError::internal)?;
    let trigger = parsed
        .trigger()
        .ok_or_else(|| ApiError::invalid("/version", "that version has no single trigger"))?;
    let config: TriggerConfig = serde_json::from_value(trigger.config.clone())
        .map_err(|e| ApiError::invalid("/version", e.to_string()))?;
    let (kind, key) = (config.kind, config.route_key().map(str::to_owned));
    if kind == TriggerKind::Webhook {
        let clash = flow_trigger::Entity::find()
            .filter(flow_trigger::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
            .filter(flow_trigger::Column::Kind.eq(kind.as_str()))
            .filter(flow_trigger::Column::Key.eq(key.clone()))
            .filter(flow_trigger::Column::FlowId.ne(f.id.as_str()))
            .one(conn)
            .await?;
        if let Some(other) = clash {
            return Err(ApiError::conflict(format!(
                "webhook path {:?} is already used by published flow {}",
                key.unwrap_or_default(),
                other.flow_id
            )));
        }
    }
    flow_trigger::Entity::insert(flow_trigger::ActiveModel {
        flow_id: Set(f.id.clone()),
        workspace_id: Set(caller.workspace_id.clone()),
        kind: Set(kind.as_str().into()),
        key: Set(key),
    })
    .on_conflict(
        OnConflict::column(flow_trigger::Column::FlowId)
            .update_columns([flow_trigger::Column::Kind, flow_trigger::Column::Key])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    flow::Entity::update_many()
        .col_expr(
            flow::Column::PublishedVersion,
            SqlExpr::value(Some(version)),
        )
        .col_expr(flow::Column::UpdatedAt, SqlExpr::value(Utc::now()))
        .filter(flow::Column::Id.eq(f.id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// The flow and one of its versions, named by a request's `/version`.
async fn flow_and_version<C: ConnectionTrait>(
    conn: &C,
    caller: &Caller,
    id: &str,
    version: i32,
) -> ApiResult<(flow::Model, flow_version::Model)> {
    let f = find_flow(conn, caller, id).await?;
    let v = find_version(conn, id, version)
        .await
        .map_err(|e| ApiError {
            pointer: Some("/version".into()),
            ..e
        })?;
    Ok((f, v))
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
    let txn = state.db.begin().await?;
    let (f, v) = flow_and_version(&txn, &caller, &id, body.version).await?;
    set_published(&txn, &caller, &f, v.number, &v.doc_value()).await?;
    audit(
        &txn,
        &caller,
        "flow.publish",
        &id,
        json!({ "version": v.number, "previous": f.published_version }),
    )
    .await?;
    txn.commit().await?;
    state.routes.clear();
    Ok(Json(json!({ "published_version": v.number })))
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
    let txn = state.db.begin().await?;
    let (f, old) = flow_and_version(&txn, &caller, &id, body.version).await?;
    let next = f.latest_version + 1;
    let updated = flow::Entity::update_many()
        .col_expr(flow::Column::LatestVersion, SqlExpr::value(next))
        .col_expr(
            flow::Column::Name,
            SqlExpr::value(
                old.doc_value()
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(&f.name)
                    .to_owned(),
            ),
        )
        .filter(flow::Column::Id.eq(id.as_str()))
        .filter(flow::Column::LatestVersion.eq(f.latest_version))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        txn.rollback().await?;
        return Err(ApiError::conflict(
            "the flow was saved meanwhile; retry the rollback",
        ));
    }
    insert_version(
        &txn,
        &caller,
        &id,
        next,
        &old.doc_value(),
        &format!("rollback to version {}", old.number),
    )
    .await?;
    set_published(&txn, &caller, &f, next, &old.doc_value()).await?;
    audit(
        &txn,
        &caller,
        "flow.rollback",
        &id,
        json!({ "to": old.number, "version": next, "previous": f.published_version }),
    )
    .await?;
    txn.commit().await?;
    state.routes.clear();
    Ok(Json(
        json!({ "version": next, "published_version": next, "restored": old.number }),
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
    let f = find_flow(&txn, &caller, &id).await?;
    flow::Entity::update_many()
        .col_expr(flow::Column::DeletedAt, SqlExpr::value(Some(Utc::now())))
        .filter(flow::Column::Id.eq(id.as_str()))
        .exec(&txn)
        .await?;
    flow_trigger::Entity::delete_by_id(id.clone())
        .exec(&txn)
        .await?;
    audit(&txn, &caller, "flow.delete", &id, json!({ "name": f.name })).await?;
    txn.commit().await?;
    state.routes.clear();
    Ok(StatusCode::NO_CONTENT)
}
