//! Runs: creating them, executing them segment by segment, persisting each segment's
//! journal and state in one transaction, claiming due runs, and delivering events.
//!
//! Durability rule: built-in steps are pure, so the steps of one segment (from a claim to
//! the next park or finish) are committed together with the new state, guarded by the
//! run's `state_rev`. A crash loses only uncommitted work, which is redone from the last
//! committed state; a stale writer (lease lapsed, run cancelled, event delivered
//! meanwhile) fails its guard and writes nothing, so no step is journaled twice.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::sea_query::{Expr as SqlExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, Statement, TransactionTrait,
};
use serde_json::{Value, json};
use tokio::sync::Notify;
use trellis_model::node_types::TriggerConfig;
use trellis_model::schedule::Schedule;
use trellis_model::{Expr, FlowDoc};
use trellis_runtime::connector::ConnectorError;
use trellis_runtime::{CallResult, CompiledFlow, Executor, Next, Response, RunState, StepRecord};

use crate::connectors::Registry;
use crate::db::entities::{
    connector_poll, event, flow, flow_trigger, flow_version, run, run_step, schedule_fire,
    subscription,
};
use crate::db::run_rows::{self, RawRun};

/// How long a claim lasts before another worker may take the run over.
pub const LEASE: Duration = Duration::from_secs(10);
/// Steps one segment may take before it is committed and requeued (loops through
/// zero-length waits cannot starve other runs).
pub const SEGMENT_STEPS: usize = 500;
/// Time one segment may take before it is committed and requeued after its current step:
/// steps run on the async workers, which must not be held for long. (A webhook whose flow
/// takes longer answers 202 and the run goes on in the workers.)
pub const SEGMENT_TIME: Duration = Duration::from_millis(250);
/// Steps one run may take in all.
pub const RUN_STEPS: u64 = 100_000;
/// Connector calls one claim may make before the run is requeued behind others.
pub const CALLS_PER_CLAIM: usize = 50;

pub mod status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const WAITING: &str = "waiting";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";

    pub fn is_terminal(s: &str) -> bool {
        matches!(s, SUCCEEDED | FAILED | CANCELLED)
    }
}

pub fn now_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The executor side of the server: shared by API handlers and workers.
#[derive(Debug)]
pub struct Engine {
    pub db: DatabaseConnection,
    /// For long reads that must not hold up the writer (a rescore reads every lead): on
    /// SQLite read-only connections of their own, on PostgreSQL the same pool.
    pub reader: DatabaseConnection,
    /// This process's worker identity (claims carry it).
    pub owner: String,
    flows: RwLock<HashMap<(String, i32), Arc<CompiledFlow>>>,
    pub wake: Notify,
    /// New inline runs go to the group-commit writer.
    writer: tokio::sync::mpsc::UnboundedSender<NewRun>,
    /// Trigger routes (webhook path → published flow), cached for [`ROUTE_TTL`].
    routes: RwLock<RouteCache>,
    /// Connector plugins; `None` runs no connector nodes (they fail with a clear error).
    pub registry: Option<Arc<Registry>>,
    /// Compiled scoring model versions.
    pub models: crate::leads::Models,
    /// Purchase-signal detectors per workspace.
    pub detectors: crate::leads::Detectors,
    /// Per-workspace limits (body sizes, run size caps, retention).
    pub limits: crate::limits::LimitsCache,
}

/// (workspace, trigger kind, key) → when looked up, and the published (flow, version)s.
type RouteCache = HashMap<(String, String, String), (std::time::Instant, Vec<(String, i32)>)>;

/// How long a cached trigger route is trusted. A publish in this process clears the cache
/// at once; one in another process sharing the database is seen within this time.
pub const ROUTE_TTL: Duration = Duration::from_secs(1);

/// A new run with its first segment, waiting to be committed.
#[derive(Debug)]
struct NewRun {
    workspace: String,
    row: run::ActiveModel,
    records: Vec<StepRecord>,
    subscription: Option<trellis_runtime::Subscription>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Group commit: every run waiting when a transaction starts goes into it, so under load
/// one commit serves many runs and each caller still answers only after its run is
/// durable. A batch that fails is retried run by run, so one bad run fails alone.
async fn run_writer(db: DatabaseConnection, mut rx: tokio::sync::mpsc::UnboundedReceiver<NewRun>) {
    const MAX_BATCH: usize = 256;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        metrics::histogram!("trellis_commit_batch_runs").record(batch.len() as f64);
        let started = std::time::Instant::now();
        let written = write_runs(&db, &batch).await;
        metrics::histogram!("trellis_commit_seconds").record(started.elapsed().as_secs_f64());
        match written {
            Ok(()) => {
                for run in batch {
                    let _ = run.done.send(Ok(()));
                }
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %format!("{e:#}"), runs = batch.len(), "batch commit failed; committing runs one by one");
                for run in batch {
                    let result = write_runs(&db, std::slice::from_ref(&run))
                        .await
                        .map_err(|e| format!("{e:#}"));
                    let _ = run.done.send(result);
                }
            }
            Err(e) => {
                for run in batch {
                    let _ = run.done.send(Err(format!("{e:#}")));
                }
            }
        }
    }
}

async fn write_runs(db: &DatabaseConnection, runs: &[NewRun]) -> anyhow::Result<()> {
    let txn = db.begin().await?;
    for chunk in runs.chunks(64) {
        run::Entity::insert_many(chunk.iter().map(|r| r.row.clone()))
            .exec_without_returning(&txn)
            .await?;
    }
    let steps: Vec<run_step::ActiveModel> = runs
        .iter()
        .flat_map(|r| {
            let id = match &r.row.id {
                sea_orm::ActiveValue::Set(id) | sea_orm::ActiveValue::Unchanged(id) => id.clone(),
                sea_orm::ActiveValue::NotSet => String::new(),
            };
            r.records
                .iter()
                .map(move |rec| step_row(&r.workspace, &id, rec))
        })
        .collect();
    for chunk in steps.chunks(500) {
        run_step::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    metrics::counter!("trellis_steps_total").increment(steps.len() as u64);
    for r in runs {
        if let (Some(sub), sea_orm::ActiveValue::Set(id)) = (&r.subscription, &r.row.id) {
            insert_subscription(&txn, &r.workspace, id, sub).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// What a finished segment left behind.
#[derive(Debug)]
pub struct SegmentResult {
    pub status: &'static str,
    pub response: Option<Response>,
    pub error: Option<String>,
}

impl Engine {
    /// Creates the engine and its run writer; call inside a Tokio runtime.
    pub fn new(
        db: DatabaseConnection,
        reader: DatabaseConnection,
        registry: Option<Arc<Registry>>,
    ) -> Arc<Engine> {
        let (writer, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_writer(db.clone(), rx));
        Arc::new(Engine {
            writer,
            routes: RwLock::new(HashMap::new()),
            db,
            reader,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            flows: RwLock::new(HashMap::new()),
            wake: Notify::new(),
            registry,
            models: crate::leads::Models::default(),
            detectors: crate::leads::Detectors::default(),
            limits: crate::limits::LimitsCache::default(),
        })
    }

    /// A flow version compiled once and cached (versions never change).
    pub async fn compiled(&self, flow_id: &str, version: i32) -> anyhow::Result<Arc<CompiledFlow>> {
        self.compiled_on(&self.db, flow_id, version).await
    }

    /// [`Engine::compiled`] reading through `conn` (use the open transaction: on SQLite
    /// the pool has one connection, and asking for a second one inside a transaction
    /// would wait forever).
    pub async fn compiled_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        flow_id: &str,
        version: i32,
    ) -> anyhow::Result<Arc<CompiledFlow>> {
        let key = (flow_id.to_owned(), version);
        if let Some(f) = self.flows.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(f);
        }
        let row = flow_version::Entity::find_by_id((flow_id.to_owned(), version))
            .one(conn)
            .await?
            .with_context(|| format!("flow {flow_id} has no version {version}"))?;
        let doc: FlowDoc = serde_json::from_str(&row.doc).context("stored flow document")?;
        let compiled = CompiledFlow::compile(doc).map_err(anyhow::Error::msg)?;
        if let Ok(mut m) = self.flows.write() {
            m.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Inserts a queued run and wakes the workers. Call inside the caller's transaction
    /// when the run must appear atomically with something else.
    pub async fn enqueue<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        flow_id: &str,
        version: i32,
        trigger_node: &str,
        trigger: Value,
    ) -> anyhow::Result<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = Utc::now();
        let state = RunState::start(trigger_node);
        run::Entity::insert(run::ActiveModel {
            id: Set(id.clone()),
            workspace_id: Set(workspace.to_owned()),
            flow_id: Set(flow_id.to_owned()),
            version: Set(version),
            status: Set(status::QUEUED.into()),
            trigger: Set(trigger),
            state: Set(serde_json::to_value(&state)?),
            state_rev: Set(0),
            error: Set(None),
            wake_at: Set(Some(now_ms(now))),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(None),
            interruptions: Set(0),
            interrupted_rev: Set(None),
        })
        .exec_without_returning(conn)
        .await?;
        metrics::counter!("trellis_runs_started_total").increment(1);
        Ok(id)
    }

    /// Runs a new run right here until it parks or finishes, then records the run and its
    /// journal in one transaction (the webhook fast path).
    pub async fn run_inline(
        &self,
        workspace: &str,
        flow_id: &str,
        version: i32,
        trigger: Value,
    ) -> anyhow::Result<(String, SegmentResult)> {
        let compiled = self.compiled(flow_id, version).await?;
        let trigger_node = compiled
            .trigger_id()
            .context("flow has no trigger")?
            .to_owned();
        let id = uuid::Uuid::now_v7().to_string();
        let mut state = RunState::start(&trigger_node);
        let limits = self.limits.get(&self.db, workspace).await?.run();
        let now = Utc::now();
        let (records, next) = execute_segment(&compiled, &id, &trigger, &mut state, now, limits);
        let outcome = outcome_of(&next, now);
        let row = run::ActiveModel {
            id: Set(id.clone()),
            workspace_id: Set(workspace.to_owned()),
            flow_id: Set(flow_id.to_owned()),
            version: Set(version),
            status: Set(outcome.status.into()),
            trigger: Set(trigger),
            state: Set(serde_json::to_value(&state)?),
            state_rev: Set(1),
            error: Set(outcome.error.clone()),
            wake_at: Set(outcome.wake_at),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(outcome.finished.then_some(now)),
            interruptions: Set(0),
            interrupted_rev: Set(None),
        };
        let (done, committed) = tokio::sync::oneshot::channel();
        let pending = NewRun {
            workspace: workspace.to_owned(),
            row,
            records,
            subscription: outcome.subscription.clone(),
            done,
        };
        self.writer
            .send(pending)
            .map_err(|_| anyhow::anyhow!("the run writer has stopped"))?;
        committed
            .await
            .map_err(|_| anyhow::anyhow!("the run writer has stopped"))?
            .map_err(anyhow::Error::msg)?;
        metrics::counter!("trellis_runs_started_total").increment(1);
        record_finish(outcome.status);
        if outcome.status == status::QUEUED {
            self.wake.notify_waiters();
        }
        Ok((
            id,
            SegmentResult {
                status: outcome.status,
                response: state.response,
                error: outcome.error,
            },
        ))
    }

    /// Claims up to `limit` due runs for this process. A claim that takes over a lapsed
    /// lease counts an interruption of the run; a run interrupted twice at the same step,
    /// or whose stored JSON does not read, is failed with the reason instead of returned.
    pub async fn claim(&self, limit: u64) -> anyhow::Result<Vec<run::Model>> {
        let now = now_ms(Utc::now());
        let lease = now + LEASE.as_millis() as i64;
        let backend = self.db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => concat!(
                "UPDATE runs SET status = 'running', lease_owner = $1, lease_until = $2, ",
                "interruptions = CASE WHEN status = 'running' THEN ",
                "CASE WHEN interrupted_rev = state_rev THEN interruptions + 1 ELSE 1 END ",
                "ELSE interruptions END, ",
                "interrupted_rev = CASE WHEN status = 'running' THEN state_rev ELSE interrupted_rev END ",
                "WHERE id IN (SELECT id FROM runs ",
                "WHERE (status IN ('queued', 'waiting') AND wake_at <= $3) OR (status = 'running' AND lease_until < $3) ",
                "ORDER BY wake_at LIMIT $4 FOR UPDATE SKIP LOCKED) ",
                "RETURNING ",
                run_rows::run_columns!()
            ),
            _ => concat!(
                "UPDATE runs SET status = 'running', lease_owner = ?1, lease_until = ?2, ",
                "interruptions = CASE WHEN status = 'running' THEN ",
                "CASE WHEN interrupted_rev = state_rev THEN interruptions + 1 ELSE 1 END ",
                "ELSE interruptions END, ",
                "interrupted_rev = CASE WHEN status = 'running' THEN state_rev ELSE interrupted_rev END ",
                "WHERE id IN (SELECT id FROM runs ",
                "WHERE (status IN ('queued', 'waiting') AND wake_at <= ?3) OR (status = 'running' AND lease_until < ?3) ",
                "ORDER BY wake_at LIMIT ?4) ",
                "RETURNING ",
                run_rows::run_columns!()
            ),
        };
        let rows = run_rows::query(
            &self.db,
            backend,
            sql,
            [
                self.owner.clone().into(),
                lease.into(),
                now.into(),
                (limit as i64).into(),
            ],
        )
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for raw in rows {
            match self.readable(raw) {
                Ok(run) => claimed.push(run),
                Err(bad) => {
                    // Failing it may fail too (the database busy): the claim lapses and the
                    // next one tries again; the rest of the batch goes on.
                    if let Err(e) = self.fail_unreadable(&self.db, &bad).await {
                        tracing::warn!(run = %bad.id, error = %format!("{e:#}"), "failing an unreadable run failed");
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// A claimed row as a run, unless its JSON does not read or it stopped the process
    /// twice at the same step.
    fn readable(&self, raw: RawRun) -> Result<run::Model, run_rows::Unreadable> {
        let run = raw.decode()?;
        if run.interruptions >= 2 && run.interrupted_rev == Some(run.state_rev) {
            let node = run
                .state
                .pointer("/queue/0/node")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            return Err(run_rows::Unreadable {
                id: run.id,
                state_rev: run.state_rev,
                reason: format!(
                    "the server stopped {} times while running this run at node {node}; it is not started again",
                    run.interruptions
                ),
            });
        }
        Ok(run)
    }

    /// Fails a run that cannot go on, with the reason; it no longer blocks anything.
    async fn fail_unreadable<C: ConnectionTrait>(
        &self,
        conn: &C,
        bad: &run_rows::Unreadable,
    ) -> anyhow::Result<()> {
        tracing::error!(run = %bad.id, reason = %bad.reason, "failing a run that cannot go on");
        let now = Utc::now();
        run::Entity::update_many()
            .col_expr(run::Column::Status, SqlExpr::value(status::FAILED))
            .col_expr(run::Column::Error, SqlExpr::value(Some(bad.reason.clone())))
            .col_expr(run::Column::StateRev, SqlExpr::value(bad.state_rev + 1))
            .col_expr(run::Column::WakeAt, SqlExpr::value(Option::<i64>::None))
            .col_expr(
                run::Column::LeaseOwner,
                SqlExpr::value(Option::<String>::None),
            )
            .col_expr(run::Column::LeaseUntil, SqlExpr::value(Option::<i64>::None))
            .col_expr(run::Column::UpdatedAt, SqlExpr::value(now))
            .col_expr(run::Column::FinishedAt, SqlExpr::value(Some(now)))
            .filter(run::Column::Id.eq(bad.id.as_str()))
            .filter(run::Column::StateRev.eq(bad.state_rev))
            .exec(conn)
            .await?;
        subscription::Entity::delete_many()
            .filter(subscription::Column::RunId.eq(bad.id.as_str()))
            .exec(conn)
            .await?;
        record_finish(status::FAILED);
        Ok(())
    }

    /// Executes one claimed run's next segment and commits it. Returns false when the run
    /// moved on meanwhile (cancelled, or taken over) and nothing was written.
    pub async fn advance(&self, claimed: run::Model) -> anyhow::Result<bool> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("run", run = %claimed.id, flow = %claimed.flow_id, version = claimed.version);
        self.advance_inner(claimed).instrument(span).await
    }

    async fn advance_inner(&self, claimed: run::Model) -> anyhow::Result<bool> {
        let compiled = match self.compiled(&claimed.flow_id, claimed.version).await {
            Ok(c) => c,
            Err(e) => {
                let next = Next::Failed {
                    error: format!("cannot load flow version: {e:#}"),
                };
                let state: RunState =
                    serde_json::from_value(claimed.state.clone()).unwrap_or_default();
                return self.commit(&claimed, &state, &[], &next).await;
            }
        };
        let mut state = match run_rows::state_of(&claimed) {
            Ok(s) => s,
            Err(bad) => {
                self.fail_unreadable(&self.db, &bad).await?;
                return Ok(false);
            }
        };
        let limits = self
            .limits
            .get(&self.db, &claimed.workspace_id)
            .await?
            .run();
        let mut claimed = claimed;
        let mut records = Vec::new();
        let mut calls = 0;
        let next = loop {
            if state.seq >= RUN_STEPS {
                break Next::Failed {
                    error: format!("the run exceeded {RUN_STEPS} steps"),
                };
            }
            let (segment, next) = execute_segment(
                &compiled,
                &claimed.id,
                &claimed.trigger,
                &mut state,
                Utc::now(),
                limits,
            );
            records.extend(segment);
            let Next::Call(request) = next else {
                break next;
            };
            if calls == CALLS_PER_CLAIM {
                // Let other runs have the worker; the pending call is issued next claim.
                break Next::Continue;
            }
            calls += 1;
            if request.connector == trellis_model::node_types::INTENT_HOST {
                let result = self.intent_call(&claimed.workspace_id, &request).await;
                state.complete_call(result);
                continue;
            }
            let Some(registry) = &self.registry else {
                state.complete_call(CallResult::Err {
                    error: ConnectorError::NotFound {
                        message: "this server runs no connectors".into(),
                    },
                    version: None,
                });
                continue;
            };
            let workspace = claimed.workspace_id.clone();
            let pinned = state.connectors.get(&request.connector).cloned();
            let side_effects = registry
                .side_effects(&workspace, &request, pinned.as_deref())
                .await;
            let hold = self.call_lease(registry, &workspace, &request).await;
            if side_effects {
                // Durable before the call: after a crash the call is issued again with the
                // same idempotency key, never forgotten.
                match self.checkpoint(&claimed, &state, &records, hold).await? {
                    Some(rev) => {
                        claimed.state_rev = rev;
                        records.clear();
                    }
                    None => return Ok(false),
                }
            } else if !self.extend_lease(&claimed, hold).await? {
                // The claim is held for the call's length, so a slow call is not taken for
                // a stopped process (and counted as an interruption).
                return Ok(false);
            }
            let (result, version) = registry
                .call(&workspace, &claimed.id, &request, pinned.as_deref())
                .await;
            if let Some(v) = version {
                state
                    .connectors
                    .entry(request.connector.clone())
                    .or_insert(v);
            }
            state.complete_call(result);
            if side_effects {
                // Durable after the call: a completed call is not made again.
                match self.checkpoint(&claimed, &state, &records, LEASE).await? {
                    Some(rev) => {
                        claimed.state_rev = rev;
                        records.clear();
                    }
                    None => return Ok(false),
                }
            }
        };
        self.commit(&claimed, &state, &records, &next).await
    }

    /// How long to hold a claim across a call: its deadline plus the usual lease.
    async fn call_lease(
        &self,
        registry: &Registry,
        workspace: &str,
        request: &trellis_runtime::CallRequest,
    ) -> Duration {
        let name = request
            .connector
            .rsplit_once('@')
            .map_or(request.connector.as_str(), |(n, _)| n);
        let limit = registry
            .limits(workspace, name)
            .await
            .map(|l| l.timeout_ms)
            .unwrap_or(10_000);
        let timeout = request.timeout_ms.map_or(limit, |t| t.min(limit));
        LEASE + Duration::from_millis(timeout)
    }

    /// Keeps the claim for `hold` more; false when the run moved on meanwhile.
    async fn extend_lease(&self, claimed: &run::Model, hold: Duration) -> anyhow::Result<bool> {
        let until = now_ms(Utc::now()) + hold.as_millis() as i64;
        let updated = run::Entity::update_many()
            .col_expr(run::Column::LeaseUntil, SqlExpr::value(until))
            .filter(run::Column::Id.eq(claimed.id.as_str()))
            .filter(run::Column::StateRev.eq(claimed.state_rev))
            .filter(run::Column::Status.eq(status::RUNNING))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Commits the state and journal so far while keeping the claim (for `hold` more).
    /// Returns the new `state_rev`, or `None` when the run moved on meanwhile.
    async fn checkpoint(
        &self,
        claimed: &run::Model,
        state: &RunState,
        records: &[StepRecord],
        hold: Duration,
    ) -> anyhow::Result<Option<i64>> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let updated = guarded_update(claimed, state, now)?
            .col_expr(
                run::Column::LeaseUntil,
                SqlExpr::value(now_ms(now) + hold.as_millis() as i64),
            )
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            txn.rollback().await?;
            tracing::info!(run = %claimed.id, "run moved on while executing; checkpoint discarded");
            return Ok(None);
        }
        insert_steps(&txn, &claimed.workspace_id, &claimed.id, records).await?;
        txn.commit().await?;
        Ok(Some(claimed.state_rev + 1))
    }

    async fn commit(
        &self,
        claimed: &run::Model,
        state: &RunState,
        records: &[StepRecord],
        next: &Next,
    ) -> anyhow::Result<bool> {
        let now = Utc::now();
        let outcome = outcome_of(next, now);
        let txn = self.db.begin().await?;
        let updated = guarded_update(claimed, state, now)?
            .col_expr(run::Column::Status, SqlExpr::value(outcome.status))
            .col_expr(run::Column::Error, SqlExpr::value(outcome.error.clone()))
            .col_expr(run::Column::WakeAt, SqlExpr::value(outcome.wake_at))
            .col_expr(
                run::Column::LeaseOwner,
                SqlExpr::value(Option::<String>::None),
            )
            .col_expr(run::Column::LeaseUntil, SqlExpr::value(Option::<i64>::None))
            .col_expr(
                run::Column::FinishedAt,
                SqlExpr::value(outcome.finished.then_some(now)),
            )
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            txn.rollback().await?;
            tracing::info!(run = %claimed.id, "run moved on while executing; segment discarded");
            return Ok(false);
        }
        insert_steps(&txn, &claimed.workspace_id, &claimed.id, records).await?;
        metrics::counter!("trellis_segments_total").increment(1);
        subscription::Entity::delete_many()
            .filter(subscription::Column::RunId.eq(claimed.id.as_str()))
            .exec(&txn)
            .await?;
        if let Some(sub) = &outcome.subscription {
            insert_subscription(&txn, &claimed.workspace_id, &claimed.id, sub).await?;
        }
        txn.commit().await?;
        record_finish(outcome.status);
        Ok(true)
    }

    /// Records an event once (by id) in `workspace`, attributes it to a lead and rescores
    /// the lead, starts the flows it triggers and resumes the runs waiting for it, all in one
    /// transaction. A tier or stage change records a `lead.tier_changed` event in the same
    /// transaction, which starts and resumes flows in turn. Used by `POST /api/v1/events`,
    /// connector webhooks and connector polls.
    pub async fn record_event(
        &self,
        workspace: &str,
        id: &str,
        name: &str,
        lead: Option<String>,
        properties: Value,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<Value, sea_orm::DbErr> {
        let custom = |e: anyhow::Error| sea_orm::DbErr::Custom(format!("{e:#}"));
        let timestamp = timestamp.unwrap_or_else(Utc::now);
        let properties = if properties.is_null() {
            json!({})
        } else {
            properties
        };
        let txn = self.db.begin().await?;
        if !insert_event(
            &txn,
            workspace,
            id,
            name,
            lead.as_deref(),
            None,
            &properties,
            timestamp,
        )
        .await?
        {
            txn.rollback().await?;
            return Ok(
                json!({ "accepted": true, "duplicate": true, "runs_started": 0, "runs_resumed": 0 }),
            );
        }
        let attributed = crate::leads::attribute(
            &txn,
            &self.models,
            workspace,
            id,
            name,
            lead.as_deref(),
            &properties,
            timestamp.timestamp_millis(),
        )
        .await
        .map_err(custom)?;
        let lead_id = attributed.as_ref().map(|a| a.lead_id.clone());
        let payload = json!({ "id": id, "name": name, "lead": lead_id.clone().or(lead), "properties": properties, "timestamp": timestamp });
        let (mut started, mut resumed) = self
            .route_event(&txn, workspace, name, &payload)
            .await
            .map_err(custom)?;
        let mut tier = Value::Null;
        if let Some(change) = attributed.and_then(|a| a.change) {
            let (s, r) = self
                .record_tier_change(&txn, workspace, &format!("{id}:tier"), change.clone())
                .await
                .map_err(custom)?;
            started.extend(s);
            resumed += r;
            tier = change;
        }
        txn.commit().await?;
        self.wake.notify_waiters();
        metrics::counter!("trellis_events_total").increment(1);
        Ok(json!({
            "accepted": true, "duplicate": false, "lead": lead_id,
            "runs_started": started.len(), "run_ids": started, "runs_resumed": resumed,
            "tier_changed": tier,
        }))
    }

    /// Records a `lead.tier_changed` event (`change` holds its properties, `lead` among
    /// them) and routes it; returns the runs started and the count resumed.
    pub async fn record_tier_change<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        id: &str,
        change: Value,
    ) -> anyhow::Result<(Vec<String>, u64)> {
        let now = Utc::now();
        let lead = change["lead"].as_str().map(str::to_owned);
        if !insert_event(
            conn,
            workspace,
            id,
            crate::leads::TIER_CHANGED,
            lead.as_deref(),
            lead.as_deref(),
            &change,
            now,
        )
        .await?
        {
            return Ok((Vec::new(), 0));
        }
        let payload = json!({ "id": id, "name": crate::leads::TIER_CHANGED, "lead": lead, "properties": change, "timestamp": now });
        self.route_event(conn, workspace, crate::leads::TIER_CHANGED, &payload)
            .await
    }

    /// Starts the flows `name` triggers and resumes the runs waiting for it.
    async fn route_event<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        name: &str,
        payload: &Value,
    ) -> anyhow::Result<(Vec<String>, u64)> {
        let mut started = Vec::new();
        for (flow_id, version) in self.triggered_flows(conn, workspace, "event", name).await? {
            let compiled = self.compiled_on(conn, &flow_id, version).await?;
            let Some(trigger) = compiled.trigger_id() else {
                continue;
            };
            let id = self
                .enqueue(
                    conn,
                    workspace,
                    &flow_id,
                    version,
                    trigger,
                    event_trigger(payload),
                )
                .await?;
            started.push(id);
        }
        let resumed = self.deliver_event(conn, workspace, name, payload).await?;
        Ok((started, resumed))
    }

    /// Single-node (SQLite) start: no other process can hold a claim, so every run left
    /// `running` by a crash is made due again at once, counting the interruption (see
    /// [`Engine::claim`]).
    pub async fn release_all_claims(&self) -> anyhow::Result<u64> {
        let res = run::Entity::update_many()
            .col_expr(run::Column::Status, SqlExpr::value(status::QUEUED))
            .col_expr(
                run::Column::Interruptions,
                SqlExpr::cust(
                    "CASE WHEN interrupted_rev = state_rev THEN interruptions + 1 ELSE 1 END",
                ),
            )
            .col_expr(
                run::Column::InterruptedRev,
                SqlExpr::col(run::Column::StateRev),
            )
            .col_expr(
                run::Column::LeaseOwner,
                SqlExpr::value(Option::<String>::None),
            )
            .col_expr(run::Column::LeaseUntil, SqlExpr::value(Option::<i64>::None))
            .filter(run::Column::Status.eq(status::RUNNING))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected)
    }

    /// Workers: claim due runs and advance them, until `shutdown` fires.
    pub fn spawn_workers(
        self: &Arc<Self>,
        concurrency: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            let mut idle = Duration::from_millis(20);
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let claimed = match engine.claim(concurrency as u64 * 4).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "claiming runs failed");
                        Vec::new()
                    }
                };
                if claimed.is_empty() {
                    tokio::select! {
                        _ = engine.wake.notified() => {}
                        _ = tokio::time::sleep(idle) => {}
                        _ = shutdown.changed() => {}
                    }
                    idle = (idle * 2).min(Duration::from_millis(200));
                    continue;
                }
                idle = Duration::from_millis(20);
                let mut set = tokio::task::JoinSet::new();
                let mut pending = claimed.into_iter();
                loop {
                    while set.len() < concurrency {
                        let Some(r) = pending.next() else { break };
                        let e = engine.clone();
                        set.spawn(async move {
                            let id = r.id.clone();
                            if let Err(err) = e.advance(r).await {
                                tracing::warn!(run = %id, error = %format!("{err:#}"), "advancing run failed; it will be retried when its claim lapses");
                            }
                        });
                    }
                    if set.join_next().await.is_none() {
                        break;
                    }
                }
            }
        });
    }

    /// The scheduler: once a second, starts runs of published flows whose schedule
    /// trigger fired since the last tick. Fires while no server ran are not replayed.
    pub fn spawn_scheduler(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            let mut last = Utc::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    break;
                }
                let now = Utc::now();
                match engine.fire_schedules(last, now).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(runs = n, "scheduled runs started");
                        engine.wake.notify_waiters();
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "firing schedules failed"),
                }
                last = now;
                match engine.fire_polls(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(polls = n, "connector polls done"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "connector polls failed"),
                }
            }
        });
    }

    /// Runs the connector polls that are due: each is claimed by moving its `next_at` on
    /// in one statement, so one process polls it however many share the database. Events
    /// are recorded (deduplicated by id) before the cursor advances, so a crash between
    /// the two repeats a poll, never loses an event.
    pub async fn fire_polls(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let Some(registry) = &self.registry else {
            return Ok(0);
        };
        let now_ms = now_ms(now);
        let backend = self.db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "UPDATE connector_polls SET next_at = $1 + interval_seconds * 1000 \
                 WHERE enabled AND next_at <= $1 RETURNING *"
            }
            _ => {
                "UPDATE connector_polls SET next_at = ?1 + interval_seconds * 1000 \
                 WHERE enabled AND next_at <= ?1 RETURNING *"
            }
        };
        let due = connector_poll::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                sql,
                [now_ms.into()],
            ))
            .all(&self.db)
            .await?;
        let count = due.len();
        for poll in due {
            let result = registry
                .poll(
                    &poll.workspace_id,
                    &poll.name,
                    poll.config.clone(),
                    poll.cursor.clone(),
                )
                .await;
            let mut row: connector_poll::ActiveModel = poll.clone().into();
            row.last_polled_at = Set(Some(Utc::now()));
            row.updated_at = Set(Utc::now());
            match result {
                Ok(polled) => {
                    let mut recorded = 0;
                    let mut refused = Vec::new();
                    for e in polled.events {
                        if e.name.trim().is_empty() {
                            continue;
                        }
                        let (id, name, lead, properties) =
                            crate::api::connector_event(&poll.name, e);
                        // A bad event is skipped and named in `last_error`: it must not
                        // hold up the ones after it, nor the cursor.
                        if let Err(problem) =
                            crate::input::check_event(&id, &name, lead.as_deref(), &properties)
                        {
                            refused.push(format!(
                                "event {id:.200}: {}{}",
                                problem.detail,
                                problem
                                    .pointer
                                    .map(|p| format!(" at {p}"))
                                    .unwrap_or_default()
                            ));
                            continue;
                        }
                        self.record_event(&poll.workspace_id, &id, &name, lead, properties, None)
                            .await?;
                        recorded += 1;
                    }
                    metrics::counter!("trellis_connector_poll_events_total", "connector" => poll.name.clone())
                        .increment(recorded);
                    if let Some(cursor) = polled.cursor {
                        row.cursor = Set(Some(cursor));
                    }
                    if !refused.is_empty() {
                        tracing::warn!(connector = %poll.name, workspace = %poll.workspace_id, refused = refused.len(), "connector poll events refused");
                    }
                    row.last_error = Set((!refused.is_empty())
                        .then(|| serde_json::json!({ "refused_events": refused }).to_string()));
                }
                Err(e) => {
                    tracing::warn!(connector = %poll.name, workspace = %poll.workspace_id, error = %e, "connector poll failed");
                    row.last_error = Set(Some(
                        serde_json::to_string(&e).unwrap_or_else(|_| e.to_string()),
                    ));
                }
            }
            connector_poll::Entity::update(row).exec(&self.db).await?;
        }
        if count > 0 {
            self.wake.notify_waiters();
        }
        Ok(count)
    }

    /// Starts one run per schedule fire in `(after, until]`. A fire is recorded in
    /// `schedule_fires` in the run's transaction, so it starts exactly one run even when
    /// several processes tick at once. Returns how many runs this call started.
    pub async fn fire_schedules(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let triggers = flow_trigger::Entity::find()
            .filter(flow_trigger::Column::Kind.eq("schedule"))
            .all(&self.db)
            .await?;
        let mut started = 0;
        for t in triggers {
            let Some(f) = flow::Entity::find_by_id(t.flow_id.clone())
                .one(&self.db)
                .await?
            else {
                continue;
            };
            let Some(version) = f.published_version else {
                continue;
            };
            let compiled = self.compiled(&f.id, version).await?;
            let Some(trigger) = compiled.doc().trigger() else {
                continue;
            };
            let Ok(config) = serde_json::from_value::<TriggerConfig>(trigger.config.clone()) else {
                continue;
            };
            let Some(cron) = config.cron.as_deref() else {
                continue;
            };
            let schedule = match Schedule::parse(cron, config.timezone.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(flow = %f.id, error = %e, "published schedule does not parse");
                    continue;
                }
            };
            for fire in schedule.fires_between(after, until, 10) {
                let txn = self.db.begin().await?;
                let trigger_json = json!({ "scheduled_at": fire, "cron": cron });
                let run_id = self
                    .enqueue(
                        &txn,
                        &f.workspace_id,
                        &f.id,
                        version,
                        trigger.id.as_str(),
                        trigger_json,
                    )
                    .await?;
                let inserted = schedule_fire::Entity::insert(schedule_fire::ActiveModel {
                    workspace_id: Set(f.workspace_id.clone()),
                    flow_id: Set(f.id.clone()),
                    fire_at: Set(now_ms(fire)),
                    run_id: Set(run_id),
                })
                .on_conflict(
                    sea_orm::sea_query::OnConflict::columns([
                        schedule_fire::Column::FlowId,
                        schedule_fire::Column::FireAt,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
                if inserted == 1 {
                    txn.commit().await?;
                    started += 1;
                } else {
                    // Another process fired it first.
                    txn.rollback().await?;
                }
            }
        }
        Ok(started)
    }

    /// Delivers an event to the runs waiting for it (inside the caller's transaction).
    /// Returns how many runs resumed.
    pub async fn deliver_event<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        name: &str,
        event: &Value,
    ) -> anyhow::Result<u64> {
        let subs = subscription::Entity::find()
            .filter(subscription::Column::WorkspaceId.eq(workspace))
            .filter(subscription::Column::Event.eq(name))
            .all(conn)
            .await?;
        let mut resumed = 0;
        for sub in subs {
            let Some(raw) = run_rows::select()
                .filter(run::Column::Id.eq(sub.run_id.as_str()))
                .into_model::<RawRun>()
                .one(conn)
                .await?
            else {
                continue;
            };
            if raw.status != status::WAITING {
                continue;
            }
            let decoded = raw
                .decode()
                .and_then(|r| run_rows::state_of(&r).map(|s| (r, s)));
            let (r, mut state) = match decoded {
                Ok(d) => d,
                Err(bad) => {
                    self.fail_unreadable(conn, &bad).await?;
                    continue;
                }
            };
            if let Some(matcher) = &sub.matcher {
                let compiled = self.compiled_on(conn, &r.flow_id, r.version).await?;
                let ex = Executor::new(&compiled, &r.id, &r.trigger);
                let scope = ex.scope(&state).with("event", event.clone());
                let matched = Expr::compile(matcher)
                    .ok()
                    .and_then(|e| e.eval_bool(&scope).ok())
                    .unwrap_or(false);
                if !matched {
                    continue;
                }
            }
            if !state.deliver(&sub.node_id, event.clone()) {
                continue;
            }
            let now = Utc::now();
            let res = run::Entity::update_many()
                .col_expr(
                    run::Column::State,
                    SqlExpr::value(serde_json::to_value(&state)?),
                )
                .col_expr(run::Column::StateRev, SqlExpr::value(r.state_rev + 1))
                .col_expr(run::Column::Status, SqlExpr::value(status::QUEUED))
                .col_expr(run::Column::WakeAt, SqlExpr::value(Some(now_ms(now))))
                .col_expr(run::Column::UpdatedAt, SqlExpr::value(now))
                .filter(run::Column::Id.eq(r.id.as_str()))
                .filter(run::Column::StateRev.eq(r.state_rev))
                .exec(conn)
                .await?;
            if res.rows_affected == 1 {
                subscription::Entity::delete_by_id(r.id.clone())
                    .exec(conn)
                    .await?;
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// [`Engine::triggered_flows`] through the route cache (for the hot webhook path).
    pub async fn routed_flows(
        &self,
        workspace: &str,
        kind: &str,
        key: &str,
    ) -> anyhow::Result<Vec<(String, i32)>> {
        let cache_key = (workspace.to_owned(), kind.to_owned(), key.to_owned());
        if let Some((at, flows)) = self
            .routes
            .read()
            .ok()
            .and_then(|m| m.get(&cache_key).cloned())
            && at.elapsed() < ROUTE_TTL
        {
            return Ok(flows);
        }
        let flows = self.triggered_flows(&self.db, workspace, kind, key).await?;
        if let Ok(mut m) = self.routes.write() {
            m.insert(cache_key, (std::time::Instant::now(), flows.clone()));
        }
        Ok(flows)
    }

    /// Forgets cached routes (after a publish or rollback).
    pub fn clear_routes(&self) {
        if let Ok(mut m) = self.routes.write() {
            m.clear();
        }
    }

    /// Published flows in `workspace` whose trigger is `kind` with `key`.
    pub async fn triggered_flows<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        kind: &str,
        key: &str,
    ) -> anyhow::Result<Vec<(String, i32)>> {
        let triggers = flow_trigger::Entity::find()
            .filter(flow_trigger::Column::WorkspaceId.eq(workspace))
            .filter(flow_trigger::Column::Kind.eq(kind))
            .filter(flow_trigger::Column::Key.eq(key))
            .all(conn)
            .await?;
        let mut out = Vec::new();
        for t in triggers {
            if let Some(f) = flow::Entity::find_by_id(t.flow_id.clone())
                .one(conn)
                .await?
                && f.deleted_at.is_none()
                && let Some(v) = f.published_version
            {
                out.push((f.id, v));
            }
        }
        Ok(out)
    }
}

/// Steps `state` until it parks or finishes, or the segment budget runs out.
/// Inserts an event unless its id was seen before; returns whether it was new. `lead_id` is
/// the lead it is attributed to, when already known.
#[allow(clippy::too_many_arguments)] // the event's columns
async fn insert_event<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
    name: &str,
    lead: Option<&str>,
    lead_id: Option<&str>,
    properties: &Value,
    timestamp: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let inserted = event::Entity::insert(event::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        lead: Set(lead.map(str::to_owned)),
        properties: Set(properties.clone()),
        timestamp: Set(timestamp),
        received_at: Set(Utc::now()),
        lead_id: Set(lead_id.map(str::to_owned)),
    })
    .on_conflict(
        OnConflict::columns([event::Column::WorkspaceId, event::Column::Id])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(inserted > 0)
}

pub fn execute_segment(
    compiled: &CompiledFlow,
    run_id: &str,
    trigger: &Value,
    state: &mut RunState,
    now: DateTime<Utc>,
    limits: trellis_runtime::RunLimits,
) -> (Vec<StepRecord>, Next) {
    let mut ex = Executor::new(compiled, run_id, trigger);
    ex.limits = limits;
    let mut records = Vec::new();
    let mut rng = rand::rng();
    let started = std::time::Instant::now();
    for _ in 0..SEGMENT_STEPS {
        if started.elapsed() > SEGMENT_TIME {
            break;
        }
        let node = state
            .queue
            .front()
            .map(|a| a.node.clone())
            .unwrap_or_default();
        let span = tracing::debug_span!("step", run = run_id, node = %node);
        let (record, next) = span.in_scope(|| ex.step(state, now, rng.random::<f64>()));
        if let Some(r) = &record {
            tracing::debug!(parent: &span, status = r.status.as_str(), attempt = r.attempt, error = r.error.as_deref(), "step done");
        }
        records.extend(record);
        if next != Next::Continue {
            return (records, next);
        }
    }
    (records, Next::Continue)
}

/// The new state of a claimed run, written only if the run is still at the revision and
/// status this worker claimed it at (the durability guard).
fn guarded_update(
    claimed: &run::Model,
    state: &RunState,
    now: DateTime<Utc>,
) -> anyhow::Result<sea_orm::UpdateMany<run::Entity>> {
    Ok(run::Entity::update_many()
        .col_expr(
            run::Column::State,
            SqlExpr::value(serde_json::to_value(state)?),
        )
        .col_expr(run::Column::StateRev, SqlExpr::value(claimed.state_rev + 1))
        .col_expr(run::Column::UpdatedAt, SqlExpr::value(now))
        .filter(run::Column::Id.eq(claimed.id.as_str()))
        .filter(run::Column::StateRev.eq(claimed.state_rev))
        .filter(run::Column::Status.eq(status::RUNNING)))
}

struct Outcome {
    status: &'static str,
    wake_at: Option<i64>,
    error: Option<String>,
    finished: bool,
    subscription: Option<trellis_runtime::Subscription>,
}

fn outcome_of(next: &Next, now: DateTime<Utc>) -> Outcome {
    match next {
        // A call is made by a worker: the run is due now.
        Next::Continue | Next::Call(_) => Outcome {
            status: status::QUEUED,
            wake_at: Some(now_ms(now)),
            error: None,
            finished: false,
            subscription: None,
        },
        Next::Park {
            until,
            subscription,
        } => Outcome {
            status: status::WAITING,
            wake_at: Some(now_ms(*until)),
            error: None,
            finished: false,
            subscription: subscription.clone(),
        },
        Next::Succeeded => Outcome {
            status: status::SUCCEEDED,
            wake_at: None,
            error: None,
            finished: true,
            subscription: None,
        },
        Next::Failed { error } => Outcome {
            status: status::FAILED,
            wake_at: None,
            error: Some(error.clone()),
            finished: true,
            subscription: None,
        },
    }
}

fn record_finish(status: &str) {
    if status::is_terminal(status) {
        metrics::counter!("trellis_runs_finished_total", "status" => status.to_owned())
            .increment(1);
    }
}

async fn insert_steps<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    run_id: &str,
    records: &[StepRecord],
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let rows = records.iter().map(|r| step_row(workspace, run_id, r));
    run_step::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    metrics::counter!("trellis_steps_total").increment(records.len() as u64);
    Ok(())
}

fn step_row(workspace: &str, run_id: &str, r: &StepRecord) -> run_step::ActiveModel {
    run_step::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        run_id: Set(run_id.to_owned()),
        seq: Set(r.seq as i64),
        node_id: Set(r.node.clone()),
        node_type: Set(r.node_type.clone()),
        visit: Set(r.visit as i32),
        attempt: Set(r.attempt as i32),
        status: Set(r.status.as_str().to_owned()),
        input: Set(r.input.clone()),
        output: Set(r.output.clone()),
        error: Set(r.error.clone()),
        started_at: Set(r.started_at),
        finished_at: Set(r.finished_at),
        idempotency_key: Set(r.idempotency_key.clone()),
    }
}

async fn insert_subscription<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    run_id: &str,
    sub: &trellis_runtime::Subscription,
) -> anyhow::Result<()> {
    subscription::Entity::insert(subscription::ActiveModel {
        run_id: Set(run_id.to_owned()),
        workspace_id: Set(workspace.to_owned()),
        node_id: Set(sub.node.clone()),
        event: Set(sub.event.clone()),
        matcher: Set(sub.matcher.clone()),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// The JSON a trigger node sees for an event.
pub fn event_trigger(event: &Value) -> Value {
    json!({ "event": event })
}
