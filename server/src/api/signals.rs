//! Purchase signals in text and the workspace's lexicon, and its next-best-action rules
//! (both data, editable here).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::documents;
use crate::api::body::ApiJson;
use crate::auth::Caller;
use crate::docs::DocKind;
use crate::error::{ApiError, ApiResult};
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
    responses((status = 200, description = "`{builtin, version, lexicon}`", body = Object)))]
pub async fn get_lexicon(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(
        documents::read(&state, &caller, DocKind::SignalLexicon, "lexicon").await?,
    ))
}

/// Replaces the workspace's lexicon with a new version (history under
/// `/api/v1/documents/signal-lexicon`); every problem is reported with its JSON pointer.
#[utoipa::path(put, path = "/api/v1/signals/lexicon", tag = "signals", request_body = Object,
    params(documents::SaveQuery),
    responses((status = 200, description = "`{saved, version, updated_at}`", body = Object),
        (status = 409, description = "stale base version"),
        (status = 422, description = "invalid lexicon, with `problems`")))]
pub async fn put_lexicon(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<documents::SaveQuery>, QueryRejection>,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        documents::save(&state, &caller, DocKind::SignalLexicon, doc, query).await?,
    ))
}

/// The workspace's next-best-action rules (the built-in ones until it saves its own).
#[utoipa::path(get, path = "/api/v1/nba/rules", tag = "signals",
    responses((status = 200, description = "`{builtin, version, rules}`", body = Object)))]
pub async fn get_rules(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let mut out = documents::read(&state, &caller, DocKind::NbaRules, "doc").await?;
    out["rules"] = out["doc"]["rules"].take();
    if let Some(o) = out.as_object_mut() {
        o.remove("doc");
    }
    Ok(Json(out))
}

/// Replaces the workspace's next-best-action rules with a new version (history under
/// `/api/v1/documents/nba-rules`); every problem has its JSON pointer.
#[utoipa::path(put, path = "/api/v1/nba/rules", tag = "signals", request_body = Object,
    params(documents::SaveQuery),
    responses((status = 200, description = "`{saved, version, updated_at}`", body = Object),
        (status = 409, description = "stale base version"),
        (status = 422, description = "invalid rules, with `problems`")))]
pub async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<documents::SaveQuery>, QueryRejection>,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        documents::save(&state, &caller, DocKind::NbaRules, doc, query).await?,
    ))
}
