//! URL categories: the workspace's rules (read, replaced with every problem by pointer)
//! and the pages recently seen with the category each was given.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use trellis_model::url_categories::KNOWN;

use super::documents;
use crate::api::body::ApiJson;
use crate::auth::Caller;
use crate::docs::DocKind;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::url_categories::recent_pages;

fn known() -> Value {
    json!(
        KNOWN
            .iter()
            .map(|(c, zh, en)| json!({ "category": c, "zh": zh, "en": en }))
            .collect::<Vec<_>>()
    )
}

/// The workspace's rules (the built-in ones until it saves its own), and the categories
/// the studio offers with their words.
#[utoipa::path(get, path = "/api/v1/url-categories", tag = "signals",
    responses((status = 200, description = "`{builtin, version, doc: {rules}, known}`", body = Object)))]
pub async fn get_rules(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let mut out = documents::read(&state, &caller, DocKind::UrlCategories, "doc").await?;
    out["known"] = known();
    Ok(Json(out))
}

/// Replaces the rules with a new version (builders; history under
/// `/api/v1/documents/url-categories`). They apply to events recorded from now on; every
/// problem is reported with its JSON pointer.
#[utoipa::path(put, path = "/api/v1/url-categories", tag = "signals", request_body = Object,
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
        documents::save(&state, &caller, DocKind::UrlCategories, doc, query).await?,
    ))
}

/// The latest 100 pages events carried, newest first, with the category each was given
/// and the rule that gave it.
#[utoipa::path(get, path = "/api/v1/url-categories/recent", tag = "signals",
    responses((status = 200, description = "`{pages: [{event, name, at, url, path, title, category, rule}]}`", body = Object)))]
pub async fn recent(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let pages = recent_pages(&state.db, &caller.workspace_id).await?;
    Ok(Json(json!({ "pages": pages })))
}
