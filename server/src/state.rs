//! What every handler shares: the database and the modules that do the work.

use std::path::PathBuf;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;

use crate::connectors::Registry;
use crate::error::{ApiError, ApiResult};
use crate::events::Events;
use crate::intent::Intent;
use crate::limits::LimitsCache;
use crate::routes::Routes;
use crate::runs::Runs;

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Creating, cancelling and inspecting runs.
    pub runs: Arc<Runs>,
    /// The one event intake.
    pub events: Arc<Events>,
    /// The contact policy's decisions and records.
    pub contacts: Arc<crate::contacts::Contacts>,
    /// Trigger routes (webhook paths), cached.
    pub routes: Arc<Routes>,
    /// Scoring-model cache, signal lexicons, rescores.
    pub intent: Arc<Intent>,
    /// Connector plugins; `None` runs no connector nodes (they fail with a clear error).
    pub registry: Option<Arc<Registry>>,
    /// Per-workspace limits (body sizes, run size caps, retention).
    pub limits: Arc<LimitsCache>,
    /// What connectors' inbound deliveries came to (their admin page shows it).
    pub inbound: Arc<crate::inbound_health::InboundHealth>,
    /// Task units: creation, actions, milestone deadlines.
    pub units: Arc<crate::task_units::TaskUnits>,
    pub metrics: PrometheusHandle,
    /// The built studio (`cargo xtask studio`), served at `/`.
    pub studio_dir: Option<Arc<PathBuf>>,
}

impl AppState {
    /// The connector operations flows in `workspace` can use.
    pub async fn catalog(&self, workspace: &str) -> ApiResult<trellis_model::Catalog> {
        match &self.registry {
            Some(r) => r.catalog(workspace).await.map_err(ApiError::internal),
            None => Ok(trellis_model::Catalog::default()),
        }
    }

    pub fn registry(&self) -> ApiResult<&Arc<Registry>> {
        self.registry.as_ref().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable",
                "this server runs no connector host",
            )
        })
    }
}
