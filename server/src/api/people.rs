//! The people directory task units are staffed from (`/api/v1/people/members`): list
//! (by function), save one, remove one, import a CSV export in one transaction.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sea_orm::TransactionTrait;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::task_units::{Function, Member};
use utoipa::IntoParams;

use super::audit;
use super::documents::refuse_problems;
use crate::api::body::{ApiJson, from_value};
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult};
use crate::people::{self, PeopleError};
use crate::state::AppState;

impl From<PeopleError> for ApiError {
    fn from(e: PeopleError) -> Self {
        match e {
            PeopleError::Db(e) => e.into(),
            PeopleError::Corrupt { .. } => ApiError::internal(e),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this function (`warehouse`, or its Chinese word `仓储`).
    pub function: Option<String>,
}

fn function_named(name: &str) -> ApiResult<Function> {
    Function::parse(name).ok_or_else(|| {
        ApiError::invalid(
            "/function",
            format!(
                "{name:?} is not a function; one of {}",
                Function::ALL.map(Function::as_str).join(", ")
            ),
        )
    })
}

/// The directory's members by user id, with the functions the studio offers.
#[utoipa::path(get, path = "/api/v1/people/members", tag = "task_units", params(ListQuery),
    responses((status = 200, description = "`{members: [{id, name, function, region, skills, permissions, capacity, time_zone, manager, active}], functions: [{function, zh, en}]}`", body = Object)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?function=")))?;
    let function = q.function.as_deref().map(function_named).transpose()?;
    let members = people::list(&state.db, &caller.workspace_id, function).await?;
    let functions: Vec<Value> = Function::ALL
        .iter()
        .map(|f| json!({ "function": f.as_str(), "zh": f.words().0, "en": f.words().1 }))
        .collect();
    Ok(Json(json!({ "members": members, "functions": functions })))
}

/// Saves one member (builders), replacing the member with that user id; every problem is
/// reported with its pointer.
#[utoipa::path(put, path = "/api/v1/people/members/{id}", tag = "task_units",
    params(("id" = String, Path, description = "the member's WeCom user id")), request_body = Object,
    responses((status = 200, description = "`{member}`", body = Object), (status = 422, description = "invalid member, with `problems`")))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    // The address names the member; a body that names another is refused.
    match body.get("id") {
        None => body["id"] = json!(id),
        Some(v) if v.as_str() == Some(id.as_str()) => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "/id",
                format!("the body names another member than the address ({id:?})"),
            ));
        }
    }
    let member: Member = from_value(body)?;
    refuse_problems("the member has", &member.problems())?;
    people::save(
        &state.db,
        &caller.workspace_id,
        std::slice::from_ref(&member),
    )
    .await?;
    audit(&state.db, &caller, "people.save", &member.id, json!({})).await?;
    Ok(Json(json!({ "member": member })))
}

/// Removes a member (builders). Units keep the members they have.
#[utoipa::path(delete, path = "/api/v1/people/members/{id}", tag = "task_units",
    params(("id" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, description = "no such member")))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Builder)?;
    if !people::remove(&state.db, &caller.workspace_id, &id).await? {
        return Err(ApiError::not_found(format!(
            "no member {id:?} in the directory"
        )));
    }
    audit(&state.db, &caller, "people.remove", &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Imports a directory export (`text/csv`, UTF-8; builders): columns `id`, `name`,
/// `function`, `capacity` and optionally `region`, `skills` (`inventory:4; sourcing:3`),
/// `permissions`, `time_zone`, `manager`, `active`. All of it is saved in one transaction,
/// or, when any line has a problem, none of it: every problem is answered with its line
/// and column.
#[utoipa::path(post, path = "/api/v1/people/members/import", tag = "task_units",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "`{saved}`", body = Object),
        (status = 422, description = "`{problems: [{line, column, message}]}`")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::invalid(
            "",
            format!("the file is not UTF-8 text ({e}); save it as CSV UTF-8"),
        )
    })?;
    let members = match people::parse_csv(text) {
        Ok(m) => m,
        Err(problems) => {
            let first = &problems[0];
            return Err(ApiError::invalid(
                "",
                format!(
                    "the file has {} problem(s); first, line {} column {:?}: {}",
                    problems.len(),
                    first.line,
                    first.column,
                    first.message
                ),
            )
            .with_extra(json!({ "problems": problems })));
        }
    };
    let txn = state.db.begin().await?;
    people::save(&txn, &caller.workspace_id, &members).await?;
    audit(
        &txn,
        &caller,
        "people.import",
        "people",
        json!({ "saved": members.len() }),
    )
    .await?;
    txn.commit().await?;
    Ok(Json(json!({ "saved": members.len() })))
}

/// One member.
#[utoipa::path(get, path = "/api/v1/people/members/{id}", tag = "task_units",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{member}`", body = Object), (status = 404, description = "no such member")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let member = people::find(&state.db, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no member {id:?} in the directory")))?;
    Ok(Json(json!({ "member": member })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeComImportIn {
    /// The department to read, with those under it (default 1: the whole company).
    #[serde(default)]
    department_id: Option<u64>,
    /// A function (code or Chinese word) by department id; a department without one takes
    /// its parent's.
    functions: std::collections::BTreeMap<String, String>,
    /// New members' capacity (default 5), region and manager.
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    manager: Option<String>,
    /// WeCom's API address, for a private deployment.
    #[serde(default)]
    api_base: Option<String>,
}

/// Imports the directory from WeCom's department list (builders), through the `wecom`
/// connector (`list_department_members`): each employee of the department and those under
/// it, with the function their department maps to. People already in the directory keep
/// their skills, permissions and capacity and take WeCom's name and the function; new ones
/// start with the import's capacity, region and manager. Employees whose department maps to
/// no function are listed as skipped.
#[utoipa::path(post, path = "/api/v1/people/members/import-wecom", tag = "task_units", request_body = Object,
    responses((status = 200, description = "`{saved, created, updated, skipped: [{userid, name, department, reason}]}`", body = Object),
        (status = 422, description = "a bad mapping, or WeCom is not connected"), (status = 502, description = "WeCom refused")))]
pub async fn import_wecom(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let body: WeComImportIn = from_value(body)?;
    let mut functions = std::collections::HashMap::new();
    for (department, function) in &body.functions {
        let pointer = format!("/functions/{department}");
        let id: u64 = department.parse().map_err(|_| {
            ApiError::invalid(
                &pointer,
                format!("{department:?} is not a department id (a number)"),
            )
        })?;
        let f = Function::parse(function).ok_or_else(|| {
            ApiError::invalid(
                &pointer,
                format!(
                    "{function:?} is not a function; one of {}",
                    Function::ALL.map(Function::as_str).join(", ")
                ),
            )
        })?;
        functions.insert(id, f);
    }
    if functions.is_empty() {
        return Err(ApiError::invalid(
            "/functions",
            "map at least one department to a function",
        ));
    }
    let capacity = body.capacity.unwrap_or(5);
    let registry = state.registry()?;
    let mut config = json!({});
    if let Some(base) = &body.api_base {
        config["api_base"] = json!(base);
    }
    let request = trellis_runtime::CallRequest {
        node: "people-import".into(),
        connector: "wecom@0".into(),
        operation: "list_department_members".into(),
        config,
        input: json!({ "department_id": body.department_id.unwrap_or(1), "with_names": true }),
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        timeout_ms: Some(120_000),
    };
    let listed = match registry
        .call(&caller.workspace_id, "people-import", &request, None)
        .await
        .0
    {
        trellis_runtime::CallResult::Ok { output, .. } => output,
        trellis_runtime::CallResult::Err { error, .. } => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "WeCom refused",
                format!(
                    "reading WeCom's departments failed: {error} (connect WeCom first: the wecom connector with its secrets corp_id and secret)"
                ),
            ));
        }
        other => return Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    };
    let import = people::WeComImport {
        functions,
        capacity,
        region: body.region.filter(|r| !r.trim().is_empty()),
        manager: body.manager.filter(|m| !m.trim().is_empty()),
    };
    let txn = state.db.begin().await?;
    let existing = people::list(&txn, &caller.workspace_id, None).await?;
    let (members, skipped) = people::from_wecom(&listed, &import, &existing);
    let known: std::collections::HashSet<&str> = existing.iter().map(|m| m.id.as_str()).collect();
    let updated = members
        .iter()
        .filter(|m| known.contains(m.id.as_str()))
        .count();
    people::save(&txn, &caller.workspace_id, &members).await?;
    audit(
        &txn,
        &caller,
        "people.import_wecom",
        "people",
        json!({ "saved": members.len(), "skipped": skipped.len() }),
    )
    .await?;
    txn.commit().await?;
    Ok(Json(json!({
        "saved": members.len(), "created": members.len() - updated, "updated": updated,
        "skipped": skipped,
    })))
}
