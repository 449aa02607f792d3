//! Runs: creating them, executing them segment by segment, persisting each segment's
//! journal and state in one transaction, claiming due runs, resuming the ones an event
//! wakes, and cancelling them.
//!
//! Durability rule: built-in steps are pure, so the steps of one segment (from a claim to
//! the next park or finish) are committed together with the new state, guarded by the
//! run's `state_rev`. A crash loses only uncommitted work, which is redone from the last
//! committed state; a stale writer (lease lapsed, run cancelled, event delivered
//! meanwhile) fails its guard and writes nothing, so no step is journaled twice.
//!
//! - [`Runs`] (this file): the compiled-flow cache, enqueue, inline runs, resume, cancel.
//! - `claim`: taking due runs, and failing the ones that cannot go on.
//! - `worker`: the worker loop that advances claimed runs and makes their calls through
//!   [`Hosts`].
//! - `segment`: executing a segment and the rows it writes.
//! - `writer`: the group commit of new inline runs.
//! - `host`: the [`CallHost`] trait the connector registry and the reserved hosts implement.

mod claim;
mod host;
mod segment;
mod worker;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr as SqlExpr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::Value;
use tokio::sync::Notify;
use trellis_model::{Expr, FlowDoc};
use trellis_runtime::{CompiledFlow, Executor, Response, RunState};

pub use crate::db::entities::run::RunStatus;
use crate::db::entities::{run, subscription};
use crate::db::run_rows::{self, RawRun};
use crate::limits::LimitsCache;
pub use host::{CallHost, CallPlan, CallSite, Hosts, served};
pub use segment::execute_segment;
pub use worker::Workers;

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

pub fn now_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The runs waiting for some event names, read once for a delivery ([`Runs::waiting`]).
#[derive(Debug, Default)]
pub struct Waiting(HashMap<String, Vec<subscription::Model>>);

/// Why a run could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("flow {flow} has no version {version}")]
    NoVersion { flow: String, version: i32 },
    #[error("the stored flow {flow} version {version} does not compile: {reason}")]
    BadVersion {
        flow: String,
        version: i32,
        reason: String,
    },
    #[error("flow {flow} version {version} has no trigger")]
    NoTrigger { flow: String, version: i32 },
    #[error("the run writer has stopped")]
    WriterStopped,
    #[error("the run could not be committed: {0}")]
    Commit(String),
    #[error("run {id} already {status}")]
    Finished { id: String, status: RunStatus },
    #[error("run {0} does not exist")]
    NotFound(String),
}

impl From<serde_json::Error> for RunError {
    fn from(e: serde_json::Error) -> Self {
        RunError::Commit(format!("encoding the run state: {e}"))
    }
}

/// What a finished segment left behind.
#[derive(Debug)]
pub struct SegmentResult {
    pub status: RunStatus,
    pub response: Option<Response>,
    pub error: Option<String>,
}

/// Why a run was started: for real, or as a test from the studio (kept and shown like any
/// run, but never a flow's "last run").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPurpose {
    Live,
    Test,
}

/// The run store: shared by API handlers, the event intake, the scheduler and the workers.
#[derive(Debug)]
pub struct Runs {
    db: DatabaseConnection,
    /// This process's worker identity (claims carry it).
    owner: String,
    flows: RwLock<HashMap<(String, i32), Arc<CompiledFlow>>>,
    wake: Notify,
    /// New inline runs go to the group-commit writer.
    writer: tokio::sync::mpsc::UnboundedSender<writer::NewRun>,
    limits: Arc<LimitsCache>,
}

impl Runs {
    /// Creates the store and its run writer; call inside a Tokio runtime.
    pub fn new(db: DatabaseConnection, limits: Arc<LimitsCache>) -> Arc<Runs> {
        let (writer, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(writer::run_writer(db.clone(), rx));
        Arc::new(Runs {
            writer,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            flows: RwLock::new(HashMap::new()),
            wake: Notify::new(),
            db,
            limits,
        })
    }

    /// Tells idle workers that runs are due.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// A flow version compiled once and cached (versions never change).
    pub async fn compiled(
        &self,
        flow_id: &str,
        version: i32,
    ) -> Result<Arc<CompiledFlow>, RunError> {
        self.compiled_on(&self.db, flow_id, version).await
    }

    /// [`Runs::compiled`] reading through `conn` (use the open transaction: on SQLite
    /// the pool has one connection, and asking for a second one inside a transaction
    /// would wait forever).
    pub async fn compiled_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        flow_id: &str,
        version: i32,
    ) -> Result<Arc<CompiledFlow>, RunError> {
        let key = (flow_id.to_owned(), version);
        if let Some(f) = self.flows.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(f);
        }
        let row = crate::docs::stored(conn, crate::docs::DocKind::Flow, flow_id, version)
            .await?
            .ok_or_else(|| RunError::NoVersion {
                flow: flow_id.to_owned(),
                version,
            })?;
        let bad = |reason: String| RunError::BadVersion {
            flow: flow_id.to_owned(),
            version,
            reason,
        };
        let doc: FlowDoc = serde_json::from_str(&row.doc).map_err(|e| bad(e.to_string()))?;
        let compiled = CompiledFlow::compile(doc).map_err(|e| bad(e.to_string()))?;
        if let Ok(mut m) = self.flows.write() {
            m.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Inserts a queued run at `flow_id`'s trigger. Call inside the caller's transaction
    /// when the run must appear atomically with something else; wake the workers
    /// ([`Runs::wake`]) once it is committed.
    pub async fn enqueue<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        flow_id: &str,
        version: i32,
        trigger: Value,
    ) -> Result<String, RunError> {
        self.enqueue_as(conn, workspace, flow_id, version, trigger, RunPurpose::Live)
            .await
    }

    /// [`enqueue`](Self::enqueue), for a live run or a test.
    pub async fn enqueue_as<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        flow_id: &str,
        version: i32,
        trigger: Value,
        purpose: RunPurpose,
    ) -> Result<String, RunError> {
        let compiled = self.compiled_on(conn, flow_id, version).await?;
        let trigger_node = compiled.trigger_id().ok_or_else(|| RunError::NoTrigger {
            flow: flow_id.to_owned(),
            version,
        })?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = Utc::now();
        let state = RunState::start(trigger_node);
        let lead = lead_of(&trigger);
        run::Entity::insert(run::ActiveModel {
            id: Set(id.clone()),
            workspace_id: Set(workspace.to_owned()),
            flow_id: Set(flow_id.to_owned()),
            version: Set(version),
            status: Set(RunStatus::Queued),
            trigger: Set(trigger),
            state: Set(serde_json::to_value(&state)?),
            state_rev: Set(0),
            error: Set(None),
            test: Set(purpose == RunPurpose::Test),
            lead_id: Set(lead),
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
    ) -> Result<(String, SegmentResult), RunError> {
        let compiled = self.compiled(flow_id, version).await?;
        let trigger_node = compiled.trigger_id().ok_or_else(|| RunError::NoTrigger {
            flow: flow_id.to_owned(),
            version,
        })?;
        let id = uuid::Uuid::now_v7().to_string();
        let mut state = RunState::start(trigger_node);
        let limits = self.limits.get(&self.db, workspace).await?.run();
        let now = Utc::now();
        let (records, next) = execute_segment(&compiled, &id, &trigger, &mut state, now, limits);
        let outcome = segment::outcome_of(&next, now);
        let row = run::ActiveModel {
            id: Set(id.clone()),
            workspace_id: Set(workspace.to_owned()),
            flow_id: Set(flow_id.to_owned()),
            version: Set(version),
            status: Set(outcome.status),
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
            // Webhook runs are live; the column's default says so without a parameter.
            test: sea_orm::ActiveValue::NotSet,
            // A webhook's body names no lead the server knows.
            lead_id: sea_orm::ActiveValue::NotSet,
        };
        let (done, committed) = tokio::sync::oneshot::channel();
        let pending = writer::NewRun {
            workspace: workspace.to_owned(),
            row,
            records,
            subscription: outcome.subscription.clone(),
            done,
        };
        self.writer
            .send(pending)
            .map_err(|_| RunError::WriterStopped)?;
        committed
            .await
            .map_err(|_| RunError::WriterStopped)?
            .map_err(RunError::Commit)?;
        metrics::counter!("trellis_runs_started_total").increment(1);
        segment::record_finish(outcome.status);
        if outcome.status == RunStatus::Queued {
            self.wake();
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

    /// What the runs in `workspace` wait for among the event `names`: one query for a
    /// whole delivery (inside the caller's transaction, so a run resumed by one event is
    /// seen as resumed by the next).
    pub async fn waiting<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        names: impl IntoIterator<Item = &str>,
    ) -> Result<Waiting, RunError> {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        let mut by_event: HashMap<String, Vec<subscription::Model>> = HashMap::new();
        for chunk in names.chunks(500) {
            for sub in subscription::Entity::find()
                .filter(subscription::Column::WorkspaceId.eq(workspace))
                .filter(subscription::Column::Event.is_in(chunk.iter().copied()))
                .all(conn)
                .await?
            {
                by_event.entry(sub.event.clone()).or_default().push(sub);
            }
        }
        Ok(Waiting(by_event))
    }

    /// Delivers an event named `name` to the runs in `workspace` that [`waiting`] found
    /// waiting for it (inside the same transaction). Returns how many runs resumed.
    ///
    /// [`waiting`]: Self::waiting
    pub async fn resume<C: ConnectionTrait>(
        &self,
        conn: &C,
        waiting: &Waiting,
        name: &str,
        event: &Value,
    ) -> Result<u64, RunError> {
        let Some(subs) = waiting.0.get(name) else {
            return Ok(0);
        };
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
            if raw.status != RunStatus::Waiting.as_str() {
                continue;
            }
            let decoded = raw
                .decode()
                .and_then(|r| run_rows::state_of(&r).map(|s| (r, s)));
            let (r, mut state) = match decoded {
                Ok(d) => d,
                Err(bad) => {
                    claim::fail_unreadable(conn, &bad).await?;
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
                .col_expr(run::Column::Status, SqlExpr::value(RunStatus::Queued))
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

    /// Cancels a run of `workspace` that has not finished, with `reason` as its error. The
    /// run and what it waits for go together: a subscription left behind would be read
    /// again by every matching event.
    pub async fn cancel(&self, workspace: &str, id: &str, reason: String) -> Result<(), RunError> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let res = run::Entity::update_many()
            .col_expr(run::Column::Status, SqlExpr::value(RunStatus::Cancelled))
            .col_expr(
                run::Column::StateRev,
                SqlExpr::col(run::Column::StateRev).add(1),
            )
            .col_expr(run::Column::WakeAt, SqlExpr::value(Option::<i64>::None))
            .col_expr(run::Column::UpdatedAt, SqlExpr::value(now))
            .col_expr(run::Column::FinishedAt, SqlExpr::value(Some(now)))
            .col_expr(run::Column::Error, SqlExpr::value(Some(reason)))
            .filter(run::Column::Id.eq(id))
            .filter(run::Column::WorkspaceId.eq(workspace))
            .filter(run::Column::Status.is_in(RunStatus::LIVE))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            txn.rollback().await?;
            let status = run::Entity::find_by_id(id.to_owned())
                .filter(run::Column::WorkspaceId.eq(workspace))
                .one(&self.db)
                .await?
                .map(|r| r.status);
            return Err(match status {
                Some(status) => RunError::Finished {
                    id: id.to_owned(),
                    status,
                },
                None => RunError::NotFound(id.to_owned()),
            });
        }
        subscription::Entity::delete_many()
            .filter(subscription::Column::RunId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        segment::record_finish(RunStatus::Cancelled);
        Ok(())
    }

    /// How many runs of `flow_id` pinned to `version` have not finished.
    pub async fn unfinished_on(&self, flow_id: &str, version: i32) -> Result<u64, RunError> {
        use sea_orm::PaginatorTrait;
        Ok(run::Entity::find()
            .filter(run::Column::FlowId.eq(flow_id))
            .filter(run::Column::Version.eq(version))
            .filter(run::Column::Status.is_in(RunStatus::LIVE))
            .count(&self.db)
            .await?)
    }

    /// The triggers of the flow's last `limit` live runs (webhook calls, events, manual
    /// starts), newest first, with when each started: samples for a test run. A trigger
    /// that does not read is left out.
    pub async fn recent_triggers(
        &self,
        workspace: &str,
        flow_id: &str,
        limit: u64,
    ) -> Result<Vec<(DateTime<Utc>, Value)>, RunError> {
        use sea_orm::{QueryOrder, QuerySelect};
        let rows: Vec<(DateTime<Utc>, String)> = run::Entity::find()
            .select_only()
            .column(run::Column::CreatedAt)
            .column_as(SqlExpr::cust("CAST(trigger AS TEXT)"), "trigger")
            .filter(run::Column::WorkspaceId.eq(workspace))
            .filter(run::Column::FlowId.eq(flow_id))
            .filter(run::Column::Test.eq(false))
            .order_by_desc(run::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(at, text)| Some((at, serde_json::from_str(&text).ok()?)))
            .collect())
    }

    /// Single-node (SQLite) start: no other process can hold a claim, so every run left
    /// `running` by a crash is made due again at once, counting the interruption (see
    /// [`Runs::claim`]).
    pub async fn release_all_claims(&self) -> Result<u64, RunError> {
        let res = run::Entity::update_many()
            .col_expr(run::Column::Status, SqlExpr::value(RunStatus::Queued))
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
            .filter(run::Column::Status.eq(RunStatus::Running))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected)
    }
}

/// The lead a run is about, from its trigger: the event's lead, or the lead enrolled.
pub fn lead_of(trigger: &Value) -> Option<String> {
    trigger
        .pointer("/event/lead")
        .or_else(|| trigger.get("lead"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
