//! Unit templates (`/api/v1/task-unit-templates`: create or clone, read, save on a base
//! version, versions, diff, lineage, remove, and a dispatch preview) and task units
//! (`/api/v1/task-units`: create by hand, list, read with members, milestones and log, and
//! the actions done in them).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sea_orm::TransactionTrait;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::diff::json_changes;
use trellis_model::task_units::{Override, Template};
use utoipa::IntoParams;

use super::audit;
use super::documents::refuse_problems;
use crate::api::body::{ApiJson, from_value};
use crate::auth::{Caller, Role};
use crate::docs::{self, DocRef};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::task_units::templates::{self, Lineage};
use crate::task_units::{Action, NewUnit, UnitError, UnitStatus};

impl From<UnitError> for ApiError {
    fn from(e: UnitError) -> Self {
        match e {
            UnitError::Db(e) => e.into(),
            UnitError::Doc(e) => e.into(),
            UnitError::People(e) => e.into(),
            UnitError::Intake(e) => ApiError::internal(e),
            UnitError::Missing(m) => ApiError::not_found(m),
            UnitError::Invalid { pointer, detail } => ApiError::invalid(pointer, detail),
            UnitError::Closed(m) => ApiError::conflict(m),
            UnitError::Corrupt(_) => ApiError::internal(e),
        }
    }
}

/// A template from a request body, with every problem by pointer under `at`.
fn checked_template(value: Value, at: &str) -> ApiResult<Template> {
    let t: Template = from_value(value).map_err(|mut e| {
        e.pointer = e.pointer.map(|p| format!("{at}{p}"));
        e
    })?;
    let problems: Vec<(String, String)> = t
        .problems()
        .into_iter()
        .map(|(p, m)| (format!("{at}{p}"), m))
        .collect();
    refuse_problems("the template has", &problems)?;
    Ok(t)
}

fn now() -> i64 {
    crate::runs::now_ms(chrono::Utc::now())
}

/// The workspace's unit templates.
#[utoipa::path(get, path = "/api/v1/task-unit-templates", tag = "task_units",
    responses((status = 200, description = "`{templates: [{id, name, version, cloned_from: {template, version}?, updated_at}]}`", body = Object)))]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let list = templates::list(&state.db, &caller.workspace_id).await?;
    Ok(Json(json!({ "templates": list })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    /// The new template's id (a-z, 0-9, - and _).
    id: String,
    /// The template; or, with `clone_from`, nothing (the source's version is copied) or
    /// the clone's changed copy.
    #[serde(default)]
    template: Option<Value>,
    /// The template to clone, keeping its lineage.
    #[serde(default)]
    clone_from: Option<String>,
    /// Which version of it (default: its latest).
    #[serde(default)]
    clone_version: Option<i32>,
    /// The clone's name (default: the source's with "（副本）").
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Creates a template, or clones one (builders). A clone records the template and version
/// it came from; `GET …/{id}/lineage` shows what changed since.
#[utoipa::path(post, path = "/api/v1/task-unit-templates", tag = "task_units", request_body = Object,
    responses((status = 201, description = "`{id, version, cloned_from}`", body = Object),
        (status = 404, description = "no template to clone"), (status = 422, description = "invalid template, with `problems`")))]
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Builder)?;
    let body: CreateIn = from_value(body)?;
    let workspace = caller.workspace_id.as_str();
    let txn = state.db.begin().await?;
    let (template, lineage) = match &body.clone_from {
        Some(source) => {
            let (_, version, from) =
                templates::get(&txn, workspace, source, body.clone_version).await?;
            let name = body
                .name
                .clone()
                .unwrap_or_else(|| format!("{}（副本）", from.name));
            let t = match body.template {
                Some(v) => checked_template(v, "/template")?,
                None => from.cloned_as(&name),
            };
            (
                t,
                Some(Lineage {
                    template: source.clone(),
                    version,
                }),
            )
        }
        None => {
            let Some(v) = body.template else {
                return Err(ApiError::invalid(
                    "/template",
                    "give the template, or `clone_from` to copy one",
                ));
            };
            (checked_template(v, "/template")?, None)
        }
    };
    let message = body.message.clone().unwrap_or_else(|| match &lineage {
        Some(l) => format!("cloned from {} v{}", l.template, l.version),
        None => "created".into(),
    });
    let version = templates::create(
        &txn,
        workspace,
        &body.id,
        &template,
        lineage.as_ref(),
        caller.author(),
        &message,
    )
    .await?;
    txn.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": body.id, "version": version, "cloned_from": lineage })),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VersionQuery {
    /// Which version (default: the latest, the one in force).
    pub version: Option<i32>,
}

/// A template: its head, the version asked for and its problems under today's checks.
#[utoipa::path(get, path = "/api/v1/task-unit-templates/{id}", tag = "task_units",
    params(("id" = String, Path), VersionQuery),
    responses((status = 200, description = "`{id, name, version, latest, cloned_from, template}`", body = Object), (status = 404, description = "no such template or version")))]
pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<VersionQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?version=N")))?;
    let (head, version, t) =
        templates::get(&state.db, &caller.workspace_id, &id, q.version).await?;
    Ok(Json(json!({
        "id": head.id, "name": head.name, "version": version, "latest": head.version,
        "cloned_from": head.cloned_from, "template": t,
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SaveQuery {
    /// The version the edit started from; a newer one answers 409.
    pub base_version: i32,
    pub message: Option<String>,
}

/// Saves a template on its base version (builders); in force for units created from now.
#[utoipa::path(put, path = "/api/v1/task-unit-templates/{id}", tag = "task_units",
    params(("id" = String, Path), SaveQuery), request_body = Object,
    responses((status = 200, description = "`{version}`", body = Object), (status = 409, description = "saved meanwhile"),
        (status = 422, description = "invalid template, with `problems`")))]
pub async fn save_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<SaveQuery>, QueryRejection>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let Query(q) = query
        .map_err(|e| ApiError::invalid("", format!("{e}; use ?base_version=N[&message=…]")))?;
    let t = checked_template(body, "")?;
    let message = q.message.unwrap_or_default();
    if message.chars().count() > 500 {
        return Err(ApiError::invalid(
            "/message",
            "a message of at most 500 characters",
        ));
    }
    let txn = state.db.begin().await?;
    let version = templates::save(
        &txn,
        &caller.workspace_id,
        &id,
        q.base_version,
        &t,
        caller.author(),
        &message,
    )
    .await?;
    txn.commit().await?;
    Ok(Json(json!({ "version": version })))
}

/// Removes a template from the list (builders); units made from it keep their version.
#[utoipa::path(delete, path = "/api/v1/task-unit-templates/{id}", tag = "task_units",
    params(("id" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, description = "no such template")))]
pub async fn remove_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Builder)?;
    let txn = state.db.begin().await?;
    if !templates::remove(&txn, &caller.workspace_id, &id).await? {
        return Err(ApiError::not_found(format!("there is no template {id:?}")));
    }
    audit(&txn, &caller, "task_unit_template.remove", &id, json!({})).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A template's versions, newest first.
#[utoipa::path(get, path = "/api/v1/task-unit-templates/{id}/versions", tag = "task_units",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{versions: [{number, author, message, created_at}]}`", body = Object)))]
pub async fn template_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = DocRef::template(&caller.workspace_id, &id);
    docs::head(&state.db, r).await?;
    let versions: Vec<Value> = docs::versions(&state.db, r)
        .await?
        .iter()
        .map(|v| json!({ "number": v.number, "author": v.author, "message": v.message, "created_at": v.created_at }))
        .collect();
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffQuery {
    pub from: i32,
    pub to: i32,
}

/// What version `to` changes relative to `from`: each value by JSON pointer.
#[utoipa::path(get, path = "/api/v1/task-unit-templates/{id}/diff", tag = "task_units",
    params(("id" = String, Path), DiffQuery),
    responses((status = 200, description = "`{from, to, changes: [{path, before, after}]}`", body = Object)))]
pub async fn template_diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?from=N&to=M")))?;
    let ws = caller.workspace_id.as_str();
    let (_, _, a) = templates::get(&state.db, ws, &id, Some(q.from)).await?;
    let (_, _, b) = templates::get(&state.db, ws, &id, Some(q.to)).await?;
    let (a, b) = (
        serde_json::to_value(a).map_err(ApiError::internal)?,
        serde_json::to_value(b).map_err(ApiError::internal)?,
    );
    Ok(Json(
        json!({ "from": q.from, "to": q.to, "changes": json_changes(&a, &b) }),
    ))
}

/// Where a cloned template came from and what it changed since (its latest version
/// against the version it was cloned from).
#[utoipa::path(get, path = "/api/v1/task-unit-templates/{id}/lineage", tag = "task_units",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{cloned_from: {template, version}?, changes: [{path, before, after}]}`", body = Object)))]
pub async fn template_lineage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let ws = caller.workspace_id.as_str();
    let (head, _, latest) = templates::get(&state.db, ws, &id, None).await?;
    let Some(from) = head.cloned_from else {
        return Ok(Json(json!({ "cloned_from": null, "changes": [] })));
    };
    // The source may since have been removed: its versions stay in the store.
    let source = docs::version(
        &state.db,
        DocRef::template(ws, &from.template),
        from.version,
    )
    .await?;
    let source: Value = serde_json::from_str(&source.doc).map_err(ApiError::internal)?;
    let latest = serde_json::to_value(latest).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "cloned_from": from, "changes": json_changes(&source, &latest),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerIn {
    /// The account, by id or name.
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    lead: Option<String>,
    /// The trigger event the dispatch rules read (`{name, properties}`).
    #[serde(default)]
    event: Value,
    #[serde(default)]
    severity: u8,
    #[serde(default)]
    manager: Option<String>,
    #[serde(default)]
    overrides: Vec<Override>,
}

impl TriggerIn {
    /// A unit from `template` for this trigger, asked for by `by`.
    fn into_new(self, template: String, by: &str) -> NewUnit {
        NewUnit {
            template,
            account: self.account,
            lead: self.lead,
            event: self.event,
            severity: self.severity,
            manager: self.manager,
            overrides: self.overrides,
            origin_key: None,
            by: by.to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewIn {
    /// A draft to preview instead of the saved template (the studio's unsaved edit).
    #[serde(default)]
    template: Option<Value>,
    #[serde(flatten)]
    trigger: TriggerIn,
}

/// Who a unit from this template would get now, and why: the same dispatch a created unit
/// gets (the directory, everyone's open units, the account's recent collaborators), with
/// nothing written. A `template` in the body previews that draft instead.
#[utoipa::path(post, path = "/api/v1/task-unit-templates/{id}/preview", tag = "task_units",
    params(("id" = String, Path)), request_body = Object,
    responses((status = 200, description = "`{name, priority, rules, picks: [{role, member, name, score, reasons, zh, en}], unfilled, knowledge, milestones}`", body = Object),
        (status = 422, description = "invalid draft, with `problems`")))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let body: PreviewIn = from_value(body)?;
    let ws = caller.workspace_id.as_str();
    let template = match body.template {
        Some(draft) => checked_template(draft, "/template")?,
        None => templates::get(&state.db, ws, &id, None).await?.2,
    };
    let new = body.trigger.into_new(id, &caller.name);
    Ok(Json(
        crate::task_units::preview(&state.db, ws, template, new, now()).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UnitsQuery {
    /// `open`, `met` or `cancelled`.
    pub status: Option<String>,
}

/// The workspace's task units, newest first.
#[utoipa::path(get, path = "/api/v1/task-units", tag = "task_units", params(UnitsQuery),
    responses((status = 200, description = "`{units: [{id, name, template, status, priority, account, created_at, closed_at}]}`", body = Object)))]
pub async fn list_units(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<UnitsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?status=open")))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(UnitStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "/status",
                format!("{s:?} is not a status; open, met or cancelled"),
            )
        })?),
    };
    let units = crate::task_units::list_units(&state.db, &caller.workspace_id, status).await?;
    Ok(Json(json!({ "units": units })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUnitIn {
    template: String,
    #[serde(flatten)]
    trigger: TriggerIn,
}

/// Creates a unit by hand (operators): staffed now, its members and milestones set,
/// `task_unit.created` raised.
#[utoipa::path(post, path = "/api/v1/task-units", tag = "task_units", request_body = Object,
    responses((status = 201, description = "the unit, as `GET /api/v1/task-units/{id}` gives it", body = Object),
        (status = 404, description = "no such template")))]
pub async fn create_unit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Operator)?;
    let body: NewUnitIn = from_value(body)?;
    let new = body.trigger.into_new(body.template, &caller.name);
    let unit = state.units.create(&caller.workspace_id, new, now()).await?;
    Ok((StatusCode::CREATED, Json(unit)))
}

/// A unit with its picks and their reasons, members, milestones and log.
#[utoipa::path(get, path = "/api/v1/task-units/{id}", tag = "task_units", params(("id" = String, Path)),
    responses((status = 200, description = "`{unit, goal, picks, unfilled, rules, knowledge, members, milestones, log}`", body = Object),
        (status = 404, description = "no such unit")))]
pub async fn get_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.units.get(&caller.workspace_id, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ActionIn {
    Update {
        text: String,
    },
    Link {
        title: String,
        url: String,
    },
    MilestoneDone {
        milestone: String,
    },
    AddMember {
        member: String,
        role: String,
        reason: String,
    },
    Cancel {
        reason: String,
    },
}

/// Something done in an open unit (operators), logged as the caller: `update {text}`,
/// `link {title, url}`, `milestone_done {milestone}` (the last one meets the goal and
/// closes the unit), `add_member {member, role, reason}` (a manager's override, over
/// capacity if need be; builders), `cancel {reason}`.
#[utoipa::path(post, path = "/api/v1/task-units/{id}/actions", tag = "task_units", params(("id" = String, Path)),
    request_body = Object,
    responses((status = 200, description = "the unit after the action", body = Object),
        (status = 404, description = "no such unit or milestone"), (status = 409, description = "the unit is closed")))]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Operator)?;
    let action = match from_value::<ActionIn>(body)? {
        ActionIn::Update { text } => Action::Update { text },
        ActionIn::Link { title, url } => Action::Link { title, url },
        ActionIn::MilestoneDone { milestone } => Action::MilestoneDone { milestone },
        ActionIn::AddMember {
            member,
            role,
            reason,
        } => {
            caller.require(Role::Builder)?;
            Action::AddMember {
                member,
                role,
                reason,
            }
        }
        ActionIn::Cancel { reason } => Action::Cancel { reason },
    };
    let unit = state
        .units
        .act(&caller.workspace_id, &id, action, &caller.name, now())
        .await?;
    Ok(Json(unit))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HealthQuery {
    /// Units created in the last this many days (default 90, at most 366).
    pub days: Option<i64>,
}

/// Collaboration health over recent units: per function and per template, the median and
/// p90 minutes from invitation to a member's first response and the share of milestones
/// done on time; open units per person against capacity; the most used knowledge links;
/// the member combinations that recur most.
#[utoipa::path(get, path = "/api/v1/task-units/health", tag = "task_units", params(HealthQuery),
    responses((status = 200, description = "`{days, units, by_function: [{key, units, response_p50_minutes, response_p90_minutes, responded, invited, on_time, judged, on_time_rate}], by_template, load: [{member, open, capacity}], knowledge: [{key, count}], combinations}`", body = Object)))]
pub async fn health(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<HealthQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?days=N")))?;
    let days = q.days.unwrap_or(90);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid("/days", "days is 1 to 366"));
    }
    let h = crate::task_units::health::read(&state.db, &caller.workspace_id, now(), days).await?;
    Ok(Json(serde_json::to_value(h).map_err(ApiError::internal)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    units: Vec<NewUnitIn>,
}

/// Creates several units at once (operators), staffed by priority: when they want the
/// same people, the higher-priority unit (urgency, then severity, then the account's
/// value) gets them, the others the next best, and both units' logs say why.
#[utoipa::path(post, path = "/api/v1/task-units/batch", tag = "task_units", request_body = Object,
    responses((status = 201, description = "`{units: [...]}`, each as `GET /api/v1/task-units/{id}` gives it, in the order asked", body = Object),
        (status = 404, description = "no such template")))]
pub async fn create_units(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Operator)?;
    let body: BatchIn = from_value(body)?;
    if body.units.is_empty() || body.units.len() > 100 {
        return Err(ApiError::invalid("/units", "give 1 to 100 units"));
    }
    let news = body
        .units
        .into_iter()
        .map(|u| u.trigger.into_new(u.template, &caller.name))
        .collect();
    let units = state
        .units
        .create_many(&caller.workspace_id, news, now())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "units": units }))))
}
