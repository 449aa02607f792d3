//! Webhooks: `POST /hooks/{path}` (workspace `default`) and `/hooks/{workspace}/{path}`
//! run the published flow whose webhook trigger has that path. A run that reaches
//! `respond` answers the request synchronously; otherwise the answer is 202 `{run_id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use trellis_model::node_types::{TriggerConfig, TriggerKind};

use crate::api::body::read_body;
use crate::error::{ApiError, ApiResult};
use crate::inbound_health::Delivery;
use crate::runs::RunStatus;
use crate::state::AppState;

/// Headers never copied into `trigger.headers` (they carry credentials): these, and any
/// whose name contains one of [`CREDENTIAL_WORDS`].
const HIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];
const CREDENTIAL_WORDS: &[&str] = &[
    "secret",
    "token",
    "key",
    "auth",
    "password",
    "signature",
    "session",
];

/// Whether a header is kept out of runs (and so out of what any reader of a run sees).
fn is_credential(name: &str) -> bool {
    HIDDEN_HEADERS.contains(&name) || CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
}

pub async fn hook(
    State(state): State<AppState>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let (workspace, flow_id, version) = route(&state, &path).await?;
    let limits = state.limits.get(&state.db, &workspace).await?;
    let body = read_body(body, limits.body_bytes).await?;
    let compiled = state.runs.compiled(&flow_id, version).await?;
    if let Some(secret) = compiled
        .doc()
        .trigger()
        .and_then(|t| serde_json::from_value::<TriggerConfig>(t.config.clone()).ok())
        .and_then(|c| c.secret)
    {
        let given = headers
            .get("x-trellis-secret")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        // An empty secret (saved before they were refused) opens nothing.
        if secret.is_empty() || !bool::from(given.ct_eq(secret.as_bytes())) {
            return Err(ApiError::unauthorized(
                "this hook needs its secret in the `X-Trellis-Secret` header",
            ));
        }
    }
    let body = parse_body(&headers, &body)?;
    crate::input::check_json(&body, "/body", crate::limits::MAX_INPUT_DEPTH)?;
    let trigger = json!({
        "body": body,
        "headers": header_map(&headers),
        "query": query_map(query.as_deref()),
        "path": path,
    });
    let (run_id, result) = state
        .runs
        .run_inline(&workspace, &flow_id, version, trigger)
        .await?;
    metrics::counter!("trellis_hooks_total").increment(1);
    if let Some(response) = result.response {
        let code = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
        let mut r = (code, Json(response.body)).into_response();
        if let Ok(v) = run_id.parse() {
            r.headers_mut().insert("x-trellis-run", v);
        }
        r.extensions_mut().insert(super::guard::Verbatim);
        return Ok(r);
    }
    if result.status == RunStatus::Failed {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "flow failed",
            result.error.unwrap_or_default(),
        )
        .with_extra(json!({ "run_id": run_id })));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "status": result.status })),
    )
        .into_response())
}

/// Finds the published flow for a hook path: `default` workspace first, then
/// `<workspace>/<path>`.
async fn route(state: &AppState, path: &str) -> ApiResult<(String, String, i32)> {
    let mut candidates = vec![("default".to_owned(), path.to_owned())];
    if let Some((ws, rest)) = path.split_once('/') {
        candidates.push((ws.to_owned(), rest.to_owned()));
    }
    for (workspace, key) in candidates {
        let routes = state
            .routes
            .cached(&workspace, TriggerKind::Webhook, &key)
            .await?;
        if let Some(r) = routes.into_iter().next() {
            return Ok((r.workspace, r.flow_id, r.version));
        }
    }
    Err(ApiError::not_found(format!(
        "no published flow has a webhook trigger with path {path:?}"
    )))
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.contains("json"));
    if is_json {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    } else {
        Ok(Value::String(String::from_utf8_lossy(body).into_owned()))
    }
}

fn header_map(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if is_credential(name) {
            continue;
        }
        out.insert(
            name.to_owned(),
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    Value::Object(out)
}

fn query_map(query: Option<&str>) -> Value {
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    Value::Object(
        pairs
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    )
}

/// `ANY /hooks/connectors/{name}/{*path}` (workspace `default`): the request goes to the
/// connector's `handle-inbound`; the events it returns go through the event intake
/// (checked, deduplicated by id; they start or resume flows); the caller gets the
/// connector's answer.
pub async fn connector_hook(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path(params): Path<std::collections::HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    use trellis_runtime::connector::{ConnectorError, InboundRequest};
    let name = params.get("name").cloned().unwrap_or_default();
    let path = format!("/{}", params.get("path").map(String::as_str).unwrap_or(""));
    let workspace = "default";
    let limits = state.limits.get(&state.db, workspace).await?;
    let body = read_body(body, limits.body_bytes).await?;
    let registry = state.registry()?;
    let request = InboundRequest {
        method: method.to_string(),
        path,
        query: query.unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        workspace: workspace.to_owned(),
    };
    let inbound = match registry.inbound(workspace, &name, request).await {
        Ok(i) => i,
        Err(ConnectorError::NotFound { message }) => return Err(ApiError::not_found(message)),
        Err(e) => {
            tracing::warn!(connector = %name, error = %e, "connector webhook failed");
            state.inbound.record(
                workspace,
                &name,
                Delivery::Failed {
                    status: StatusCode::BAD_GATEWAY.as_u16(),
                    reason: e.to_string(),
                },
            );
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "connector failed",
                format!("{name}: {e}"),
            )
            .with_extra(json!({ "error": e })));
        }
    };
    // Each event goes through the event intake: one it refuses is logged with its place
    // in the delivery, and the rest are recorded.
    let batch = match state
        .events
        .record_batch(workspace, &name, inbound.events)
        .await
    {
        Ok(b) => b,
        Err(e) => {
            let e = ApiError::from(e);
            state.inbound.record(
                workspace,
                &name,
                Delivery::Failed {
                    status: e.status.as_u16(),
                    reason: e.detail.clone(),
                },
            );
            return Err(e);
        }
    };
    // What the sender was told: the connector's refusal (a bad signature, a wrong write
    // key) or the events the intake refused count as a failure, with the reason.
    let status = inbound.response.status;
    let delivery = if status >= 400 {
        // A problem body's `detail`, else the body as text.
        let body = &inbound.response.body;
        let reason = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        Delivery::Failed { status, reason }
    } else if let Some(first) = batch.refused.first() {
        Delivery::Failed {
            status,
            reason: format!(
                "{} event(s) refused; the first, #{} ({:.100}): {}",
                batch.refused.len(),
                first.index,
                first.id,
                first.problem
            ),
        }
    } else {
        Delivery::Answered
    };
    state.inbound.record(workspace, &name, delivery);
    metrics::counter!("trellis_connector_inbound_events_total", "connector" => name.clone())
        .increment(batch.recorded);
    if !batch.refused.is_empty() {
        metrics::counter!("trellis_connector_inbound_refused_total", "connector" => name.clone())
            .increment(batch.refused.len() as u64);
    }
    let mut response = Response::builder()
        .status(StatusCode::from_u16(inbound.response.status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (k, v) in &inbound.response.headers {
        let hop = matches!(
            k.to_ascii_lowercase().as_str(),
            "connection" | "transfer-encoding" | "content-length" | "keep-alive" | "upgrade"
        );
        if !hop {
            response = response.header(k.as_str(), v.as_str());
        }
    }
    response = response.extension(super::guard::Verbatim);
    response
        .body(axum::body::Body::from(inbound.response.body))
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "connector failed", e.to_string()))
}
