//! Node types, the flow schema, the OpenAPI document, health and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use trellis_model::{FlowDoc, builtin_node_types};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

/// Every node type with its config JSON Schema and output ports.
#[utoipa::path(get, path = "/api/v1/node-types", tag = "meta", responses((status = 200, description = "node types", body = Object)))]
pub async fn node_types(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    caller: Caller,
) -> crate::error::ApiResult<Json<Value>> {
    let catalog = state.catalog(&caller.workspace_id).await?;
    let connectors: Vec<&trellis_model::ConnectorEntry> = catalog.entries().collect();
    Ok(Json(json!({
        "node_types": builtin_node_types(),
        "connectors": connectors,
    })))
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

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only entries about this target (a flow id, a token id).
    pub target: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u64>,
}

/// Who created, saved, published, rolled back what, and token changes; newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "meta", params(AuditQuery),
    responses((status = 200, description = "`{entries: [...]}`", body = Object)))]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

    use crate::db::entities::audit;
    let axum::extract::Query(q) =
        query.map_err(|e| crate::error::ApiError::invalid("", e.to_string()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(crate::error::ApiError::invalid(
            "/limit",
            "limit must be between 1 and 500",
        ));
    }
    let mut find =
        audit::Entity::find().filter(audit::Column::WorkspaceId.eq(caller.workspace_id.as_str()));
    if let Some(t) = &q.target {
        find = find.filter(audit::Column::Target.eq(t.as_str()));
    }
    let rows = find
        .order_by_desc(audit::Column::Id)
        .limit(limit)
        .all(&state.db)
        .await?;
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|a| json!({ "id": a.id, "actor": a.actor, "action": a.action, "target": a.target, "detail": a.detail, "at": a.at }))
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

/// Unmatched routes: API and hook paths answer a 404 problem; anything else is the
/// studio (its files, or `index.html` for its client-side routes).
pub async fn fallback(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use tower::ServiceExt as _;
    let path = req.uri().path();
    let api = path.starts_with("/api/")
        || path.starts_with("/hooks/")
        || path == "/api"
        || path == "/hooks";
    let Some(dir) = state.studio_dir.as_ref().filter(|_| !api) else {
        return crate::error::ApiError::not_found(format!("no route {path}")).into_response();
    };
    if !dir.join("index.html").exists() {
        return crate::error::ApiError::not_found(format!(
            "the studio is not built in {}; run `cargo xtask run` (or `cargo xtask studio`)",
            dir.display()
        ))
        .into_response();
    }
    // Assets named by their content hash never change: browsers keep them for a year. The
    // page that names them is revalidated every time (Last-Modified), so a new build is
    // picked up at once. Each asset has Brotli and gzip copies beside it (`cargo xtask
    // studio` writes them); the browser gets the one it accepts.
    let immutable = is_hashed_asset(path);
    let service = tower_http::services::ServeDir::new(dir.as_ref())
        .precompressed_br()
        .precompressed_gzip()
        .fallback(tower_http::services::ServeFile::new(dir.join("index.html")));
    match service.oneshot(req).await {
        Ok(mut response) => {
            let cache = if immutable && response.status().is_success() {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static(cache),
            );
            response.map(axum::body::Body::new)
        }
        Err(e) => crate::error::ApiError::internal(e).into_response(),
    }
}

/// Whether `path` names a studio asset by content hash: `/<stem>-<16 hex digits>.<ext>`.
fn is_hashed_asset(path: &str) -> bool {
    let Some(name) = path.strip_prefix('/').filter(|n| !n.contains('/')) else {
        return false;
    };
    let Some((stem, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    stem.rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashed_assets_are_recognised() {
        use super::is_hashed_asset;
        assert!(is_hashed_asset("/trellis_studio_bg-0123456789abcdef.wasm"));
        assert!(is_hashed_asset("/studio-0123456789abcdef.css"));
        assert!(!is_hashed_asset("/index.html"));
        assert!(!is_hashed_asset("/studio.css"));
        assert!(!is_hashed_asset("/leads"));
        assert!(!is_hashed_asset("/a/b-0123456789abcdef.js"));
        assert!(!is_hashed_asset("/x-0123456789abcdeg.js"));
    }
}
