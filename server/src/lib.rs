//! Trellis server: the HTTP API, persistence, run workers and bootstrap. The binary
//! `trellis` (see `main.rs`) is a thin CLI over this library.

pub mod api;
pub mod auth;
pub mod cli;
pub mod connectors;
pub mod contacts;
pub mod credentials;
pub mod db;
pub mod docs;
pub mod error;
pub mod event_catalog;
pub mod events;
pub mod files;
pub mod inbound_health;
pub mod input;
pub mod intent;
pub mod lead_actions;
pub mod leads;
pub mod limits;
pub mod offline;
pub mod people;
pub mod retention;
pub mod routes;
pub mod runs;
pub mod scheduler;
pub mod serve;
pub mod state;
pub mod task_units;
pub mod url_categories;
pub mod users;
pub mod workspace_docs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use chrono::Utc;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, PaginatorTrait};

use crate::auth::{Role, hash_token, new_token};
use crate::db::entities::{api_token, workspace};
use crate::events::Events;
use crate::intent::Intent;
use crate::limits::LimitsCache;
use crate::routes::Routes;
use crate::runs::{Hosts, Runs, Workers};
use crate::scheduler::Scheduler;
pub use crate::state::AppState;

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub db: db::DbLocation,
    /// Worker tasks advancing runs concurrently in this process.
    pub workers: usize,
    /// The built studio; `None` serves no UI.
    pub studio_dir: Option<PathBuf>,
    /// Connector components (`*.wasm`) published into the `default` workspace at start.
    pub connectors_dir: Option<PathBuf>,
    /// Header and request time limits, and the connection cap.
    pub http: serve::HttpLimits,
}

/// Publishes every `*.wasm` in `dir` into the `default` workspace (a version already there
/// with the same content is left as it is).
async fn register_connectors(registry: &connectors::Registry, dir: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        match registry.publish("default", "startup", bytes).await {
            Ok(p) => tracing::info!(
                connector = %p.manifest.name,
                version = %p.manifest.version,
                new = p.created,
                "connector registered"
            ),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "connector not registered")
            }
        }
    }
    Ok(())
}

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours just stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Drains the histograms' samples into their summaries every few seconds. Without it they
/// pile up until `/metrics` is next read: a server nobody scrapes grew by every request's
/// timings (megabytes a minute under load).
fn spawn_metrics_upkeep(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let handle = metrics_handle();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => handle.run_upkeep(),
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    });
}

/// First start: the `default` workspace and an admin token, printed once and written to
/// `<data_dir>/admin-token` (mode 0600). Returns the token when one was created.
pub async fn bootstrap(db: &DatabaseConnection, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if workspace::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let now = Utc::now();
    workspace::Entity::insert(workspace::ActiveModel {
        id: Set("default".into()),
        name: Set("Default".into()),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    let token = new_token();
    api_token::Entity::insert(api_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        workspace_id: Set("default".into()),
        name: Set("admin".into()),
        role: Set(Role::Admin.as_str().into()),
        token_hash: Set(hash_token(&token)),
        created_at: Set(now),
        revoked_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    files::write_secret_file(&data_dir.join("admin-token"), &token)?;
    Ok(Some(token))
}

/// A started server: its address and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    workers: tokio::task::JoinHandle<()>,
}

/// How long a stop waits for the runs under way to finish their segments (a call to a
/// customer completes and is recorded, rather than being left for a restart to treat as
/// interrupted).
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

impl Running {
    /// Stops accepting requests and claiming runs, waits for the server task, then for the
    /// runs under way (at most [`STOP_GRACE`]).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let served = self.task.await.context("server task")?;
        if tokio::time::timeout(STOP_GRACE, self.workers)
            .await
            .is_err()
        {
            tracing::warn!(
                "runs were still under way after {}s; their claims will lapse and they resume at the next start",
                STOP_GRACE.as_secs()
            );
        }
        served
    }
}

/// Connects, migrates, bootstraps, starts workers and serves until stopped.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // A directory this server creates is its own (0700); one that was there (`--data-dir .`)
    // keeps its mode, and the files in it are made private one by one.
    if !config.data_dir.exists() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        files::private(&config.data_dir, 0o700)?;
    }
    let db = db::connect(&config.db).await?;
    if let db::DbLocation::Sqlite(path) = &config.db {
        // The database holds webhook secrets and encrypted connector secrets.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let file = PathBuf::from(file);
            if file.exists() {
                files::private(&file, 0o600)?;
            }
        }
    }
    if let Some(token) = bootstrap(&db, &config.data_dir).await? {
        println!("Created workspace `default` and an admin token (shown once):\n\n  {token}\n");
        println!(
            "It is also in {} (mode 0600).",
            config.data_dir.join("admin-token").display()
        );
    }
    if let Some(password) = users::ensure_first_admin(&db, &config.data_dir, "default").await? {
        println!(
            "Sign in to the studio as {} with the password {password} (also in {}, mode 0600).",
            users::FIRST_ADMIN_LOGIN,
            config.data_dir.join("admin-password").display()
        );
    }
    let registry = connectors::Registry::new(db.clone(), &config.data_dir)?;
    let reader = db::connect_reader(&config.db, &db).await?;
    let limits = Arc::new(LimitsCache::default());
    let runs = Runs::new(db.clone(), limits.clone());
    let models = Arc::new(leads::Models::default());
    let routes = Arc::new(Routes::new(db.clone()));
    let events = Arc::new(Events::new(
        db.clone(),
        runs.clone(),
        models.clone(),
        routes.clone(),
    ));
    let lead_actions =
        lead_actions::LeadActions::new(db.clone(), models.clone(), events.clone(), runs.clone());
    let intent = Intent::new(db.clone(), reader, models, events.clone(), runs.clone());
    let units = task_units::TaskUnits::new(db.clone(), events.clone(), runs.clone());
    let hosts = Hosts::new(Some(registry.clone() as Arc<dyn runs::CallHost>))
        .reserve(
            trellis_model::node_types::INTENT_HOST,
            intent.clone() as Arc<dyn runs::CallHost>,
        )
        .reserve(
            trellis_model::node_types::LEADS_HOST,
            lead_actions as Arc<dyn runs::CallHost>,
        )
        .reserve(
            trellis_model::node_types::TASK_UNITS_HOST,
            units.clone() as Arc<dyn runs::CallHost>,
        );
    if let Some(dir) = &config.connectors_dir {
        register_connectors(&registry, dir).await?;
    }
    if !db::is_postgres(&db) {
        let released = runs.release_all_claims().await?;
        if released > 0 {
            tracing::info!(released, "resuming runs interrupted by the last shutdown");
        }
    }
    let studio_dir = config.studio_dir.clone().map(Arc::new);
    match &studio_dir {
        Some(dir) if dir.join("index.html").exists() => {
            tracing::info!(dir = %dir.display(), "serving the studio")
        }
        Some(dir) => {
            tracing::warn!(dir = %dir.display(), "the studio is not built there; run `cargo xtask studio`")
        }
        None => {}
    }
    let contacts = Arc::new(crate::contacts::Contacts::default());
    let inbound = Arc::new(inbound_health::InboundHealth::default());
    let state = AppState {
        contacts: contacts.clone(),
        routes,
        db: db.clone(),
        runs: runs.clone(),
        events: events.clone(),
        intent: intent.clone(),
        registry: Some(registry.clone()),
        limits: limits.clone(),
        inbound: inbound.clone(),
        units: units.clone(),
        metrics: metrics_handle(),
        studio_dir,
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let workers = Workers::new(runs.clone(), hosts, contacts.clone())
        .spawn(config.workers.max(1), rx.clone());
    Scheduler::new(db.clone(), runs, events, Some(registry)).spawn(rx.clone());
    inbound_health::spawn(db.clone(), inbound, rx.clone());
    task_units::spawn_deadlines(units, rx.clone());
    retention::spawn(db, limits, rx.clone());
    spawn_metrics_upkeep(rx.clone());
    intent.resume_rescores().await?;
    intent.spawn_rescore_watch(rx.clone());
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr()?;
    let app = api::router(state.clone(), config.http);
    let http = config.http;
    let task = tokio::spawn(async move {
        serve::serve(listener, app, http, rx)
            .await
            .context("serving HTTP")
    });
    Ok(Running {
        addr,
        state,
        shutdown: tx,
        task,
        workers,
    })
}
