//! The workspace documents (contact policy, URL categories, signal lexicon,
//! next-best-action rules, limits): one each per workspace, the built-in one until the
//! workspace saves its own, versioned in the document store. Each kind's page reads and
//! saves it at its own address (`GET|PUT /api/v1/contact-policy`, …, through [`read`] and
//! [`save`]); their history is served here for every kind alike: versions, one version,
//! the changes between two, and rollback.

use axum::Json;
use axum::extract::{Path, Query, State};
use sea_orm::TransactionTrait;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::canonical::content_hash;
use trellis_model::contact_policy::ContactPolicy;
use trellis_model::diff::json_changes;
use trellis_model::nba::Rules;
use trellis_model::signals::{Detector, Lexicon};
use trellis_model::url_categories::UrlCategories;
use utoipa::{IntoParams, ToSchema};

use crate::api::body::{ApiJson, from_value};
use crate::auth::{Caller, Role};
use crate::docs::{self, DocKind, DocRef};
use crate::error::{ApiError, ApiResult};
use crate::limits::Limits;
use crate::state::AppState;

/// The name of a workspace document kind in addresses (`contact-policy`), and back.
const PATHS: [(DocKind, &str); 5] = [
    (DocKind::ContactPolicy, "contact-policy"),
    (DocKind::UrlCategories, "url-categories"),
    (DocKind::SignalLexicon, "signal-lexicon"),
    (DocKind::NbaRules, "nba-rules"),
    (DocKind::Limits, "limits"),
];

fn kind_named(name: &str) -> ApiResult<DocKind> {
    PATHS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(k, _)| *k)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no workspace document {name:?}; there are {}",
                PATHS.map(|(_, n)| n).join(", ")
            ))
        })
}

/// Who may change a kind: admins the contact policy and the limits, builders the rest.
fn editor(kind: DocKind) -> Role {
    match kind {
        DocKind::ContactPolicy | DocKind::Limits => Role::Admin,
        _ => Role::Builder,
    }
}

/// The document a workspace has until it saves its own.
fn builtin(kind: DocKind) -> ApiResult<Value> {
    match kind {
        DocKind::ContactPolicy => serde_json::to_value(ContactPolicy::builtin()),
        DocKind::UrlCategories => serde_json::to_value(UrlCategories::builtin()),
        DocKind::SignalLexicon => serde_json::to_value(Lexicon::builtin()),
        DocKind::NbaRules => serde_json::to_value(Rules::builtin()),
        DocKind::Limits => serde_json::to_value(Limits::DEFAULT),
        DocKind::Flow | DocKind::ScoringModel | DocKind::TaskUnitTemplate => {
            return Err(not_workspace(kind));
        }
    }
    .map_err(ApiError::internal)
}

fn not_workspace(kind: DocKind) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "{} is not a workspace document",
        kind.as_str()
    ))
}

/// `doc` checked as a document of `kind`: every problem with its JSON pointer (422), or
/// the text to store (the policy and limits in their canonical form, the others as
/// written).
fn checked(kind: DocKind, doc: Value) -> ApiResult<Value> {
    match kind {
        DocKind::ContactPolicy => {
            let policy: ContactPolicy = from_value(doc)?;
            refuse_problems("the policy has", &policy.problems())?;
            serde_json::to_value(&policy).map_err(ApiError::internal)
        }
        DocKind::UrlCategories => {
            let rules: UrlCategories = from_value(doc.clone())?;
            if let Err(problems) = rules.compile() {
                refuse_problems("the rules have", &problems)?;
            }
            Ok(doc)
        }
        DocKind::SignalLexicon => {
            let lexicon: Lexicon = from_value(doc.clone())?;
            if let Err(e) = Detector::new(lexicon) {
                refuse_problems("the lexicon has", &e.0)?;
            }
            Ok(doc)
        }
        DocKind::NbaRules => {
            let rules: Rules = from_value(doc.clone())?;
            refuse_problems("the rules have", &rules.problems())?;
            Ok(doc)
        }
        DocKind::Limits => {
            let limits: Limits = from_value(doc)?;
            refuse_problems("the limits have", &limits.problems())?;
            serde_json::to_value(limits).map_err(ApiError::internal)
        }
        DocKind::Flow | DocKind::ScoringModel | DocKind::TaskUnitTemplate => {
            Err(not_workspace(kind))
        }
    }
}

/// A document refused for its problems (each with its JSON pointer): 422 at the first,
/// all of them in `problems`. `subject` says whose (`the lexicon has`).
pub(crate) fn refuse_problems(subject: &str, problems: &[(String, String)]) -> ApiResult<()> {
    let Some((pointer, message)) = problems.first() else {
        return Ok(());
    };
    Err(ApiError::invalid(
        pointer.clone(),
        format!("{subject} {} problem(s); first: {message}", problems.len()),
    )
    .with_extra(json!({
        "problems": problems.iter().map(|(p, m)| json!({ "pointer": p, "message": m })).collect::<Vec<_>>()
    })))
}

/// Forgets what this process compiled from the workspace's document of `kind`.
fn forget(state: &AppState, kind: DocKind, workspace: &str) {
    match kind {
        DocKind::ContactPolicy => state.contacts.policies.forget(workspace),
        DocKind::UrlCategories => state.events.categories.forget(workspace),
        DocKind::SignalLexicon => state.intent.detectors.forget(workspace),
        DocKind::Limits => state.limits.forget(workspace),
        // Read when a lead's actions are worked out, not cached.
        DocKind::NbaRules | DocKind::Flow | DocKind::ScoringModel | DocKind::TaskUnitTemplate => {}
    }
}

/// The workspace's document as its page reads it: `{builtin, version, updated_at, author,
/// <field>: doc}`; `builtin: true` and version 0 until the workspace saves its own.
pub(crate) async fn read(
    state: &AppState,
    caller: &Caller,
    kind: DocKind,
    field: &str,
) -> ApiResult<Value> {
    let r = DocRef::workspace_doc(&caller.workspace_id, kind);
    let Some(head) = docs::find_head(&state.db, r).await? else {
        return Ok(json!({ "builtin": true, "version": 0, field: builtin(kind)? }));
    };
    let v = docs::version(&state.db, r, head.latest).await?;
    Ok(json!({
        "builtin": false, "version": v.number, "updated_at": v.created_at, "author": v.author,
        field: serde_json::from_str::<Value>(&v.doc).map_err(ApiError::internal)?,
    }))
}

/// How a save names its base version and says what it changes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SaveQuery {
    /// The version the edit started from (0 while the workspace has the built-in one); a
    /// stale one is a 409. Left out, the save goes on top of whatever is latest.
    pub base_version: Option<i32>,
    /// What the change is for, kept with the version.
    pub message: Option<String>,
}

/// Checks `doc` as the workspace's document of `kind` and saves it as the next version,
/// in force at once: `{saved, version, updated_at}`.
pub(crate) async fn save(
    state: &AppState,
    caller: &Caller,
    kind: DocKind,
    doc: Value,
    query: Result<Query<SaveQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Value> {
    caller.require(editor(kind))?;
    let Query(q) =
        query.map_err(|e| ApiError::invalid("", format!("{e}; use ?base_version=N&message=…")))?;
    let message = q.message.unwrap_or_default();
    if message.chars().count() > 500 {
        return Err(ApiError::invalid(
            "",
            "a message of at most 500 characters".to_owned(),
        ));
    }
    let body = checked(kind, doc)?;
    let workspace = caller.workspace_id.as_str();
    let r = DocRef::workspace_doc(workspace, kind);
    let txn = state.db.begin().await?;
    let base = match q.base_version {
        Some(b) => b,
        None => docs::find_head(&txn, r).await?.map_or(0, |h| h.latest),
    };
    let version = docs::save(
        &txn,
        r,
        docs::Edit {
            base,
            hash: content_hash(&body),
            body: &body,
            message: &message,
        },
        caller.author(),
    )
    .await?;
    txn.commit().await?;
    forget(state, kind, workspace);
    Ok(json!({ "saved": true, "version": version, "updated_at": chrono::Utc::now() }))
}

fn version_json(v: &docs::Version, latest: i32) -> Value {
    json!({
        "number": v.number, "hash": v.hash, "author": v.author, "message": v.message,
        "created_at": v.created_at, "current": v.number == latest,
    })
}

/// The versions of the workspace's document, newest first; the one in force is `current`.
#[utoipa::path(get, path = "/api/v1/documents/{kind}/versions", tag = "meta",
    params(("kind" = String, Path, description = "contact-policy, url-categories, signal-lexicon, nba-rules or limits")),
    responses((status = 200, description = "`{builtin, versions: [{number, hash, author, message, created_at, current}]}`", body = Object),
        (status = 404, description = "no such document kind")))]
pub async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
) -> ApiResult<Json<Value>> {
    let kind = kind_named(&kind)?;
    let r = DocRef::workspace_doc(&caller.workspace_id, kind);
    let Some(head) = docs::find_head(&state.db, r).await? else {
        return Ok(Json(json!({ "builtin": true, "versions": [] })));
    };
    let versions = docs::versions(&state.db, r).await?;
    Ok(Json(json!({
        "builtin": false,
        "versions": versions.iter().map(|v| version_json(v, head.latest)).collect::<Vec<_>>(),
    })))
}

/// One version of the workspace's document (0: the built-in one).
#[utoipa::path(get, path = "/api/v1/documents/{kind}/versions/{number}", tag = "meta",
    params(("kind" = String, Path), ("number" = i32, Path)),
    responses((status = 200, description = "`{number, …, doc}`", body = Object), (status = 404, description = "no such version")))]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, number)): Path<(String, i32)>,
) -> ApiResult<Json<Value>> {
    let kind = kind_named(&kind)?;
    Ok(Json(version_doc(&state, &caller, kind, number).await?))
}

/// Version `number`'s facts and document (0: the built-in document).
async fn version_doc(
    state: &AppState,
    caller: &Caller,
    kind: DocKind,
    number: i32,
) -> ApiResult<Value> {
    if number == 0 {
        return Ok(json!({ "number": 0, "builtin": true, "doc": builtin(kind)? }));
    }
    let r = DocRef::workspace_doc(&caller.workspace_id, kind);
    let head = docs::head(&state.db, r).await?;
    let v = docs::version(&state.db, r, number).await?;
    let mut out = version_json(&v, head.latest);
    out["doc"] = serde_json::from_str(&v.doc).map_err(ApiError::internal)?;
    Ok(out)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffQuery {
    /// 0 is the built-in document.
    pub from: i32,
    pub to: i32,
}

/// What version `to` changes relative to `from` (0: the built-in document): each value
/// that differs, by JSON pointer, with what it was and became.
#[utoipa::path(get, path = "/api/v1/documents/{kind}/diff", tag = "meta",
    params(("kind" = String, Path), DiffQuery),
    responses((status = 200, description = "`{from, to, changes: [{path, before, after}]}`", body = Object),
        (status = 404, description = "no such version")))]
pub async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let kind = kind_named(&kind)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("", format!("{e}; use ?from=N&to=M")))?;
    let a = version_doc(&state, &caller, kind, q.from).await?;
    let b = version_doc(&state, &caller, kind, q.to).await?;
    Ok(Json(json!({
        "from": q.from, "to": q.to, "changes": json_changes(&a["doc"], &b["doc"]),
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackIn {
    /// The version to restore (0: the built-in document).
    pub version: i32,
}

/// Restores an earlier version (or the built-in document) as a new version, in force at
/// once; history is kept. A version that no longer passes today's checks is refused with
/// its problems.
#[utoipa::path(post, path = "/api/v1/documents/{kind}/rollback", tag = "meta",
    params(("kind" = String, Path)), request_body = RollbackIn,
    responses((status = 200, description = "`{version, restored}`", body = Object),
        (status = 404, description = "no such version"), (status = 422, description = "that version no longer passes the checks")))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiJson(body): ApiJson<RollbackIn>,
) -> ApiResult<Json<Value>> {
    let kind = kind_named(&kind)?;
    caller.require(editor(kind))?;
    let workspace = caller.workspace_id.as_str();
    let r = DocRef::workspace_doc(workspace, kind);
    let txn = state.db.begin().await?;
    let head = docs::head(&txn, r).await?;
    let version = if body.version == 0 {
        // The built-in document, saved as the next version.
        let doc = builtin(kind)?;
        docs::save_as(
            &txn,
            r,
            docs::Edit {
                base: head.latest,
                hash: content_hash(&doc),
                body: &doc,
                message: "rollback to the built-in document",
            },
            caller.author(),
            "rollback",
        )
        .await?
    } else {
        let old = docs::version(&txn, r, body.version).await?;
        // The problems keep their pointers into the document; the request's fault is `/version`.
        checked(kind, old.doc_value()).map_err(|mut e| {
            e.detail = format!(
                "version {} no longer passes the checks: {}",
                old.number, e.detail
            );
            e.pointer = Some("/version".into());
            e
        })?;
        docs::rollback(&txn, r, body.version, caller.author())
            .await?
            .version
    };
    txn.commit().await?;
    forget(&state, kind, workspace);
    Ok(Json(
        json!({ "version": version, "restored": body.version }),
    ))
}
