//! Node types, the flow schema, the OpenAPI document, health and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use trellis_model::{FlowDoc, builtin_node_types};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;

/// Every node type with its config JSON Schema and output ports.
#[utoipa::path(get, path = "/api/v1/node-types", tag = "meta", responses((status = 200, description = "node types", body = Object)))]
pub async fn node_types(_caller: Caller) -> Json<Value> {
    Json(json!({ "node_types": builtin_node_types() }))
}

/// The JSON Schema of flow documents.
#[utoipa::path(get, path = "/api/v1/schema/flow", tag = "meta", security(()), responses((status = 200, description = "JSON Schema", body = Object)))]
pub async fn flow_schema() -> Json<Value> {
    Json(FlowDoc::json_schema())
}

pub async fn openapi(doc: Arc<utoipa::openapi::OpenApi>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}

pub async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    match state.db.execute_unprepared("SELECT 1").await {
        Ok(_) => Ok(Json(json!({ "status": "ok", "database": "ok" }))),
        Err(e) => Err(crate::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            format!("database: {e}"),
        )),
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
