//! URL categories: the workspace's rules (read, replaced with every problem by pointer)
//! and the pages recently seen with the category each was given.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use trellis_model::url_categories::{KNOWN, UrlCategories};

use super::audit;
use crate::api::body::{ApiJson, from_value};
use crate::api::signals::{read_doc, refuse_problems, save_doc};
use crate::auth::{Caller, Role};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::url_categories::{URL_CATEGORIES_DOC, recent_pages};

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
    responses((status = 200, description = "`{builtin, doc: {rules}, known}`", body = Object)))]
pub async fn get_rules(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let mut out = read_doc(
        &state,
        &caller,
        URL_CATEGORIES_DOC,
        "doc",
        UrlCategories::builtin(),
    )
    .await?;
    out["known"] = known();
    Ok(Json(out))
}

/// Replaces the rules (builders). They apply to events recorded from now on; every
/// problem is reported with its JSON pointer.
#[utoipa::path(put, path = "/api/v1/url-categories", tag = "signals", request_body = Object,
    responses((status = 200, description = "saved", body = Object),
        (status = 422, description = "invalid rules, with `problems`")))]
pub async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(doc): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Builder)?;
    let rules: UrlCategories = from_value(doc.clone())?;
    if let Err(problems) = rules.compile() {
        refuse_problems("the rules have", &problems)?;
    }
    let now = save_doc(&state, &caller, URL_CATEGORIES_DOC, &doc).await?;
    state.events.categories.forget(&caller.workspace_id);
    audit(
        &state.db,
        &caller,
        "url_categories.save",
        URL_CATEGORIES_DOC,
        json!({ "rules": rules.rules.len() }),
    )
    .await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "saved": true, "updated_at": now })),
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
