//! The HTTP API under `/api/v1`, webhooks under `/hooks`, health and metrics. Every
//! error answers as `application/problem+json`.

pub mod body;
mod connectors;
mod contacts;
mod documents;
mod events;
mod flows;
pub mod guard;
mod hooks;

mod inbox;
mod leads;
mod meta;
mod people;
mod runs;
mod scoring;
mod settings;
mod signals;
mod task_units;
mod tokens;
mod url_categories;
mod users;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::db::entities::audit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Trellis API", description = "Flows, versions, runs and events. Every error is an RFC 9457 problem body."),
    modifiers(&BearerAuth),
    // Routed by hand (its body limit is larger than the API's), documented here.
    paths(connectors::publish),
    security(("bearer" = [])),
    tags(
        (name = "flows", description = "Flow documents, versions, diff, publish and rollback"),
        (name = "runs", description = "Runs and their step journal"),
        (name = "events", description = "Events that start and resume runs"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "leads", description = "Leads, their scores with explanations, and timelines"),
        (name = "scoring", description = "The scoring model: versions, diff, publish (rescoring every lead) and rollback"),
        (name = "signals", description = "Purchase signals in text, and the workspace's lexicon"),
        (name = "connectors", description = "Connector plugins: publish, versions, grants, secrets, limits"),
        (name = "task_units", description = "Task units (作战单元): the people directory they are staffed from"),
        (name = "meta", description = "Node types, schemas, health")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document and the router it describes.
pub fn openapi_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(flows::create_flow, flows::list_flows))
        .routes(routes!(
            flows::get_flow,
            flows::save_flow,
            flows::rename_flow,
            flows::delete_flow
        ))
        .routes(routes!(flows::validate_flow))
        .routes(routes!(flows::list_versions))
        .routes(routes!(flows::trigger_samples))
        .routes(routes!(flows::enroll_leads))
        .routes(routes!(flows::get_version))
        .routes(routes!(flows::diff_versions))
        .routes(routes!(flows::publish))
        .routes(routes!(flows::rollback))
        .routes(routes!(runs::start_run))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(events::post_event))
        .routes(routes!(events::event_catalog))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(users::sign_in, users::current, users::sign_out))
        .routes(routes!(users::list_users))
        .routes(routes!(users::list_people))
        .routes(routes!(users::invite))
        .routes(routes!(users::reset))
        .routes(routes!(users::change_user))
        .routes(routes!(users::get_ticket, users::redeem))
        .routes(routes!(connectors::list))
        .routes(routes!(connectors::get))
        .routes(routes!(connectors::patch_version))
        .routes(routes!(connectors::get_grants, connectors::put_grants))
        .routes(routes!(connectors::put_secret, connectors::delete_secret))
        .routes(routes!(connectors::put_limits))
        .routes(routes!(connectors::put_poll))
        .routes(routes!(leads::list_leads))
        .routes(routes!(leads::export_leads))
        .routes(routes!(leads::import_leads))
        .routes(routes!(leads::get_lead))
        .routes(routes!(contacts::revoke))
        .routes(routes!(contacts::restore))
        .routes(routes!(contacts::get_policy, contacts::put_policy))
        .routes(routes!(leads::list_accounts))
        .routes(routes!(leads::get_account))
        .routes(routes!(inbox::list_inbox))
        .routes(routes!(inbox::mark_read))
        .routes(routes!(scoring::get_model, scoring::save_model))
        .routes(routes!(scoring::list_versions))
        .routes(routes!(scoring::get_version))
        .routes(routes!(scoring::diff_versions))
        .routes(routes!(scoring::publish))
        .routes(routes!(scoring::impact))
        .routes(routes!(scoring::rollback))
        .routes(routes!(scoring::schema))
        .routes(routes!(scoring::backtest))
        .routes(routes!(scoring::suggest))
        .routes(routes!(scoring::suggest_progress))
        .routes(routes!(scoring::coverage))
        .routes(routes!(signals::detect))
        // The model is 2.5 MB of JSON; compressed for the browser as it asks.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(signals::model))
                .layer(tower_http::compression::CompressionLayer::new()),
        )
        .routes(routes!(signals::builtin_lexicon))
        .routes(routes!(signals::label, signals::labels))
        .routes(routes!(signals::get_lexicon, signals::put_lexicon))
        .routes(routes!(
            url_categories::get_rules,
            url_categories::put_rules
        ))
        .routes(routes!(url_categories::recent))
        .routes(routes!(signals::get_rules, signals::put_rules))
        .routes(routes!(meta::node_types))
        .routes(routes!(meta::flow_schema))
        .routes(routes!(meta::audit_log))
        .routes(routes!(settings::get_limits, settings::put_limits))
        .routes(routes!(people::list))
        .routes(routes!(people::import))
        .routes(routes!(people::import_wecom))
        .routes(routes!(people::get, people::put, people::remove))
        .routes(routes!(
            task_units::list_templates,
            task_units::create_template
        ))
        .routes(routes!(
            task_units::get_template,
            task_units::save_template,
            task_units::remove_template
        ))
        .routes(routes!(task_units::template_versions))
        .routes(routes!(task_units::template_diff))
        .routes(routes!(task_units::template_lineage))
        .routes(routes!(task_units::preview))
        .routes(routes!(task_units::list_units, task_units::create_unit))
        .routes(routes!(task_units::health))
        .routes(routes!(task_units::create_units))
        .routes(routes!(task_units::get_unit))
        .routes(routes!(task_units::act))
        .routes(routes!(documents::list_versions))
        .routes(routes!(documents::get_version))
        .routes(routes!(documents::diff))
        .routes(routes!(documents::rollback))
        .split_for_parts()
}

pub fn router(state: AppState, http: crate::serve::HttpLimits) -> Router {
    let (api, openapi) = openapi_router();
    let openapi = std::sync::Arc::new(openapi);
    api.route(
        "/api/v1/openapi.json",
        get(move || meta::openapi(openapi.clone())),
    )
    .route(
        "/api/v1/connectors",
        post(connectors::publish).layer(axum::extract::DefaultBodyLimit::max(
            connectors::MAX_COMPONENT_BYTES,
        )),
    )
    .route(
        "/hooks/connectors/{name}",
        axum::routing::any(hooks::connector_hook),
    )
    .route(
        "/hooks/connectors/{name}/{*path}",
        axum::routing::any(hooks::connector_hook),
    )
    .route("/hooks/{*path}", post(hooks::hook))
    .route("/healthz", get(meta::healthz))
    .route("/metrics", get(meta::metrics))
    .fallback(meta::fallback)
    .method_not_allowed_fallback(|| async {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            "this route does not take that method",
        )
    })
    .layer(axum::extract::DefaultBodyLimit::max(
        crate::limits::MAX_REQUEST_BYTES,
    ))
    .layer(axum::middleware::from_fn(move |req, next| {
        guard::body_deadline(http.body_timeout, req, next)
    }))
    .layer(axum::middleware::from_fn(guard::problem_bodies))
    .layer(axum::middleware::from_fn(guard::request_guard))
    .layer(axum::middleware::from_fn(track_metrics))
    .layer(TraceLayer::new_for_http())
    .with_state(state)
}

async fn track_metrics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let start = std::time::Instant::now();
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // Labels come from fixed sets only: an invented method is counted as `other`.
    let method = if guard::known_method(req.method()) {
        req.method().as_str().to_owned()
    } else {
        "other".to_owned()
    };
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("trellis_http_requests_total", "method" => method.clone(), "path" => path.clone(), "status" => status).increment(1);
    metrics::histogram!("trellis_http_request_seconds", "method" => method, "path" => path)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Appends to the audit log, as the caller.
pub(crate) async fn audit<C: ConnectionTrait>(
    conn: &C,
    caller: &Caller,
    action: &str,
    target: &str,
    detail: Value,
) -> ApiResult<()> {
    Ok(crate::db::audit(
        conn,
        &caller.workspace_id,
        &caller.name,
        action,
        target,
        detail,
    )
    .await?)
}
