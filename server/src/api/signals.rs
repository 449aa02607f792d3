//! Purchase signals in text and the workspace's lexicon, and its next-best-action rules
//! (both data, editable here).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::nba::Rules;
use trellis_model::signals::{Detector, Lexicon};
use utoipa::ToSchema;

use super::audit;
use crate::api::body::{ApiJson, from_value};
use crate::auth::{Caller, Role};
use crate::db::entities::workspace_doc;
use crate::error::{ApiError, ApiResult};
use crate::intent::LEXICON_DOC;
use crate::state::AppState;

/// Longest text `detect` accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectIn {
    pub text: String,
}

/// Finds purchase signals (budget, timeline, technical, competitor, risk, commercial) with
/// their polarity; `start`/`end` are character offsets into `text`.
#[utoipa::path(post, path = "/api/v1/signals/detect", tag = "signals", request_body = DetectIn,
    responses((status = 200, description = "`{signals: [{category, polarity, phrase, start, end, strength}]}`", body = Object)))]
pub async fn detect(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DetectIn>,
) -> ApiResult<Json<Value>> {
    if body.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            "/text",
            format!("text is at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    let detector = state
        .intent
        .detectors
        .get(&state.db, &caller.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "signals": detector.detect(&body.text) })))
}

/// The workspace's lexicon (the built-in one until a workspace saves its own).
#[utoipa::path(get, path = "/api/v1/signals/lexicon", tag = "signals",
    responses((status = 200, description = "`{builtin, lexicon}`", body = Object)))]
pub async fn get_lexicon(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(
        read_doc(&state, &caller, LEXICON_DOC, "lexicon", Lexicon::builtin()).await?,
    ))
}

/// Replaces the workspace's lexicon; every problem is reported with its JSON pointer.
#[utoipa::path(put, path = "/api/v1/signals/lexicon", tag = "signals", request_body = Object,
    responses((status = 200, description = "saved", body = Object), (status = 422, description = "invalid lexicon, with `problems`")))]
pub async fn put_lexicon(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Builder)?;
    let lexicon: Lexicon = from_value(doc.clone())?;
    if let Err(e) = Detector::new(lexicon) {
        refuse_problems("the lexicon has", &e.0)?;
    }
    let now = save_doc(&state, &caller, LEXICON_DOC, &doc).await?;
    state.intent.detectors.forget(&caller.workspace_id);
    audit(
        &state.db,
        &caller,
        "signals.lexicon",
        LEXICON_DOC,
        json!({}),
    )
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "saved": true, "updated_at": now })),
    ))
}

/// A per-workspace document as its page reads it: `{builtin: false, updated_at, author,
/// <field>: doc}`, or `{builtin: true, <field>: builtin}` until the workspace saves its own.
pub(crate) async fn read_doc(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    field: &str,
    builtin: impl serde::Serialize,
) -> ApiResult<Value> {
    let row = workspace_doc::Entity::find_by_id((caller.workspace_id.clone(), kind.to_owned()))
        .one(&state.db)
        .await?;
    Ok(match row {
        Some(d) => json!({
            "builtin": false, "updated_at": d.updated_at, "author": d.author,
            field: serde_json::from_str::<Value>(&d.doc).map_err(ApiError::internal)?,
        }),
        None => json!({ "builtin": true, field: builtin }),
    })
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

/// Saves a per-workspace document (`workspace_docs`), returning when.
pub(crate) async fn save_doc(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    doc: &Value,
) -> ApiResult<chrono::DateTime<Utc>> {
    let now = Utc::now();
    workspace_doc::Entity::insert(workspace_doc::ActiveModel {
        workspace_id: Set(caller.workspace_id.clone()),
        kind: Set(kind.to_owned()),
        doc: Set(doc.to_string()),
        author: Set(caller.name.clone()),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            workspace_doc::Column::WorkspaceId,
            workspace_doc::Column::Kind,
        ])
        .update_columns([
            workspace_doc::Column::Doc,
            workspace_doc::Column::Author,
            workspace_doc::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    Ok(now)
}

/// The workspace's next-best-action rules (the built-in ones until it saves its own).
#[utoipa::path(get, path = "/api/v1/nba/rules", tag = "signals",
    responses((status = 200, description = "`{builtin, rules}`", body = Object)))]
pub async fn get_rules(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let saved = workspace_doc::Entity::find_by_id((
        caller.workspace_id.clone(),
        crate::leads::NBA_DOC.to_owned(),
    ))
    .one(&state.db)
    .await?;
    let rules = crate::leads::nba_rules(&state.db, &caller.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "builtin": saved.is_none(), "rules": rules.rules }),
    ))
}

/// Replaces the workspace's next-best-action rules; every problem has its JSON pointer.
#[utoipa::path(put, path = "/api/v1/nba/rules", tag = "signals", request_body = Object,
    responses((status = 200, description = "saved", body = Object), (status = 422, description = "invalid rules, with `problems`")))]
pub async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let rules: Rules = from_value(doc.clone())?;
    refuse_problems("the rules have", &rules.problems())?;
    let now = save_doc(&state, &caller, crate::leads::NBA_DOC, &doc).await?;
    audit(
        &state.db,
        &caller,
        "nba.rules",
        crate::leads::NBA_DOC,
        json!({}),
    )
    .await?;
    Ok(Json(json!({ "saved": true, "updated_at": now })))
}
