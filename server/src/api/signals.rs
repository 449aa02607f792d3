//! Purchase signals in text and the workspace's lexicon, and its next-best-action rules
//! (both data, editable here).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::signals::{
    Category, LabelledText, Lexicon, Model, Polarity, polarity_by_category,
};
use utoipa::ToSchema;

use super::documents;
use crate::api::body::ApiJson;
use crate::auth::Caller;
use crate::credentials::Role;
use crate::db::entities::event;
use crate::docs::DocKind;
use crate::error::{ApiError, ApiResult};
use crate::events::{IntakeError, NewEvent};
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
    let detector = detector(&state, &caller).await?;
    Ok(Json(json!({ "signals": detector.detect(&body.text) })))
}

/// The caller's workspace's detector.
async fn detector(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<std::sync::Arc<trellis_model::signals::Detector>> {
    state
        .intent
        .detectors
        .get(&state.db, &caller.workspace_id)
        .await
        .map_err(ApiError::internal)
}

/// The signal model the detector decides with (trained by `trellis signals train`), for
/// the studio to run in the browser.
#[utoipa::path(get, path = "/api/v1/signals/model", tag = "signals",
    responses((status = 200, description = "the model's stored form", body = Object)))]
pub async fn model(_caller: Caller) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        Model::builtin_json(),
    )
}

/// A correction of what the detector read in a text: the categories it speaks about and
/// the polarity of budget and timeline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelIn {
    pub text: String,
    #[schema(value_type = Vec<String>)]
    pub categories: Vec<Category>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub polarity: BTreeMap<Category, Polarity>,
    /// The lead the text came from, whose timeline shows the correction.
    #[serde(default)]
    pub lead: Option<String>,
}

/// Labels a text the detector misread (`signal.labelled`, through the event intake); the
/// labels feed the next training run (`GET /api/v1/signals/labels?format=jsonl`).
#[utoipa::path(post, path = "/api/v1/signals/labels", tag = "signals", request_body = LabelIn,
    responses((status = 200, description = "`{labelled, event, found}`", body = Object),
        (status = 422, description = "invalid label, with the offending path")))]
pub async fn label(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<LabelIn>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Operator)?;
    if body.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            "/text",
            format!("text is at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    let mut categories = body.categories;
    categories.sort();
    categories.dedup();
    let labelled = LabelledText {
        text: body.text.trim().to_owned(),
        categories,
        polarity: body.polarity,
    };
    if let Some((pointer, message)) = labelled.problems().into_iter().next() {
        return Err(ApiError::invalid(pointer, message));
    }
    let detector = detector(&state, &caller).await?;
    let found = polarity_by_category(&detector.detect(&labelled.text));
    let id = format!("label:{}", uuid::Uuid::now_v7());
    let event = NewEvent {
        id: id.clone(),
        name: LABEL_EVENT.into(),
        lead: body.lead.clone(),
        properties: json!({
            "text": labelled.text,
            "categories": labelled.categories,
            "polarity": labelled.polarity,
            "found": found,
            "by": caller.name,
        }),
        timestamp: None,
    };
    state
        .events
        .record(&caller.workspace_id, event)
        .await
        .map_err(|e| match e {
            IntakeError::Invalid(problem) => ApiError::invalid(problem.pointer, problem.detail),
            other => ApiError::internal(other),
        })?;
    Ok(Json(
        json!({ "labelled": labelled, "event": id, "found": found }),
    ))
}

/// The event a label is recorded as.
pub const LABEL_EVENT: &str = "signal.labelled";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LabelsQuery {
    /// `jsonl` for the training command's `--labels` file; JSON otherwise.
    #[serde(default)]
    pub format: Option<String>,
}

/// The workspace's labels, the latest per text, oldest first: JSON, or with
/// `format=jsonl` one labelled text per line for `trellis signals train --labels`.
#[utoipa::path(get, path = "/api/v1/signals/labels", tag = "signals", params(LabelsQuery),
    responses((status = 200, description = "`{labels: [{text, categories, polarity, lead, by, at}]}` or JSON lines", body = Object)))]
pub async fn labels(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<LabelsQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::invalid("/format", e.body_text()))?;
    let rows = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(&caller.workspace_id))
        .filter(event::Column::Name.eq(LABEL_EVENT))
        .order_by_asc(event::Column::Timestamp)
        .order_by_asc(event::Column::Id)
        .all(&state.db)
        .await?;
    // The latest label of each text wins; order is that of each text's first label.
    let mut order: Vec<String> = Vec::new();
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for row in rows {
        let Some(text) = row.properties["text"].as_str().map(str::to_owned) else {
            continue;
        };
        let label = json!({
            "text": text,
            "categories": row.properties["categories"],
            "polarity": row.properties["polarity"],
            "lead": row.lead_id,
            "by": row.properties["by"],
            "at": row.timestamp,
        });
        if latest.insert(text.clone(), label).is_none() {
            order.push(text);
        }
    }
    let labels: Vec<Value> = order.iter().filter_map(|t| latest.remove(t)).collect();
    match query.format.as_deref() {
        Some("jsonl") => {
            let mut body = String::new();
            for l in &labels {
                let line = json!({ "text": l["text"], "categories": l["categories"], "polarity": l["polarity"] });
                body.push_str(&line.to_string());
                body.push('\n');
            }
            Ok((
                [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
                body,
            )
                .into_response())
        }
        None | Some("json") => Ok(Json(json!({ "labels": labels })).into_response()),
        Some(other) => Err(ApiError::invalid(
            "/format",
            format!("format is json or jsonl, not {other:?}"),
        )),
    }
}

/// The lexicon Trellis ships with, whatever the workspace saved (for "back to the
/// built-in lexicon").
#[utoipa::path(get, path = "/api/v1/signals/lexicon/builtin", tag = "signals",
    responses((status = 200, description = "`{lexicon}`", body = Object)))]
pub async fn builtin_lexicon(_caller: Caller) -> Json<Value> {
    Json(json!({ "lexicon": Lexicon::builtin() }))
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
