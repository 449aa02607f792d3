//! The workers: claim due runs and advance each by a segment, making its calls through the
//! [`Hosts`] and committing the segment.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use trellis_model::contact_policy::ContactDecl;
use trellis_runtime::{CallRequest, CallResult, Next, RunState, StepRecord};

use super::segment::{execute_segment, guarded_update, insert_steps, insert_subscription};
use super::{
    CALLS_PER_CLAIM, CallSite, Hosts, LEASE, RUN_STEPS, RunError, RunStatus, Runs, now_ms,
};
use crate::contacts::{Contacts, Gate};
use crate::db::entities::contact::ContactState;
use crate::db::entities::{run, subscription};
use crate::db::run_rows;

/// How long an idle worker waits before looking for due runs again (doubling up to
/// [`IDLE_MAX`] while there are none); a wake ends the wait at once.
const IDLE_MIN: Duration = Duration::from_millis(20);
const IDLE_MAX: Duration = Duration::from_millis(200);

/// Advances claimed runs, serving their calls through `hosts`; calls that reach customers
/// pass `contacts` (the contact policy) first.
#[derive(Clone, Debug)]
pub struct Workers {
    runs: Arc<Runs>,
    hosts: Hosts,
    contacts: Arc<Contacts>,
}

/// What the checkpoint around a call does besides saving the run.
enum Around<'a> {
    /// Nothing more.
    Plain,
    /// Before a call that reaches a customer: the contact policy decides, and an allowed
    /// contact is written with the checkpoint.
    Gate(&'a ContactDecl, &'a CallRequest),
    /// After it: the contact is settled as the result says.
    Settle(&'a CallRequest, ContactState),
}

/// How a checkpoint ended.
enum Saved {
    /// The new `state_rev`.
    At(i64),
    /// The run moved on meanwhile (cancelled, or taken over): nothing was written.
    Moved,
    /// The contact policy did not let the call happen: its result instead.
    Instead(CallResult),
}

impl Workers {
    pub fn new(runs: Arc<Runs>, hosts: Hosts, contacts: Arc<Contacts>) -> Workers {
        Workers {
            runs,
            hosts,
            contacts,
        }
    }

    /// Claims due runs and advances them, `concurrency` at a time, until `shutdown` fires;
    /// the task ends once the runs under way have finished their segments. A worker that
    /// finishes claims the next due run at once (no run waits for a whole batch), and a run
    /// made due while a claim is being read is not missed ([`Runs::wake`]).
    pub fn spawn(
        self,
        concurrency: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let workers = Arc::new(self);
        let concurrency = concurrency.max(1);
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            let mut idle = IDLE_MIN;
            let mut set = tokio::task::JoinSet::new();
            while !*shutdown.borrow() {
                // Listening before the claim reads, so a wake during it is kept.
                let woken = workers.runs.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let room = concurrency - set.len();
                let claimed = if room == 0 {
                    Vec::new()
                } else {
                    match workers.runs.claim(room as u64).await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming runs failed");
                            Vec::new()
                        }
                    }
                };
                if !claimed.is_empty() {
                    idle = IDLE_MIN;
                }
                for r in claimed {
                    let w = workers.clone();
                    set.spawn(async move {
                        let id = r.id.clone();
                        if let Err(err) = w.advance(r).await {
                            tracing::warn!(run = %id, error = %err, "advancing run failed; it will be retried when its claim lapses");
                        }
                    });
                }
                if set.is_empty() {
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(idle) => idle = (idle * 2).min(IDLE_MAX),
                        _ = shutdown.changed() => {}
                    }
                } else if set.len() == concurrency {
                    tokio::select! {
                        _ = set.join_next() => {}
                        _ = shutdown.changed() => {}
                    }
                } else {
                    tokio::select! {
                        _ = set.join_next() => {}
                        _ = woken => {}
                        _ = tokio::time::sleep(idle) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            while set.join_next().await.is_some() {}
        })
    }

    /// Executes one claimed run's next segment and commits it. Returns false when the run
    /// moved on meanwhile (cancelled, or taken over) and nothing was written.
    pub async fn advance(&self, claimed: run::Model) -> Result<bool, RunError> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("run", run = %claimed.id, flow = %claimed.flow_id, version = claimed.version);
        self.advance_inner(claimed).instrument(span).await
    }

    async fn advance_inner(&self, claimed: run::Model) -> Result<bool, RunError> {
        let runs = &self.runs;
        let compiled = match runs.compiled(&claimed.flow_id, claimed.version).await {
            Ok(c) => c,
            Err(e) => {
                let next = Next::Failed {
                    error: format!("cannot load flow version: {e}"),
                };
                let state: RunState =
                    serde_json::from_value(claimed.state.clone()).unwrap_or_default();
                return self.commit(&claimed, &state, &[], &next).await;
            }
        };
        let mut state = match run_rows::state_of(&claimed) {
            Ok(s) => s,
            Err(bad) => {
                super::claim::fail_unreadable(&runs.db, &bad).await?;
                return Ok(false);
            }
        };
        let limits = runs
            .limits
            .get(&runs.db, &claimed.workspace_id)
            .await?
            .run();
        let mut claimed = claimed;
        let mut records = Vec::new();
        let mut calls = 0;
        // A call with side effects has completed and is not saved yet: it is saved with the
        // segment that follows (before the next call, or in the commit), which does no I/O,
        // so a crash loses no more than it would right after the call.
        let mut owed = false;
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
            let Some(host) = self.hosts.serving(&request.connector) else {
                state.complete_call(Hosts::unserved(&request));
                continue;
            };
            let workspace = claimed.workspace_id.clone();
            let pinned = state.connectors.get(&request.connector).cloned();
            let plan = host.plan(&workspace, &request, pinned.as_deref()).await;
            let hold = LEASE + plan.timeout.unwrap_or_default();
            if plan.side_effects || owed {
                // Durable before the call: after a crash the call is issued again with the
                // same idempotency key, never forgotten (a call that reaches a customer is
                // not: see `contacts`); and a completed call owed a save gets it.
                let around = match &plan.contact {
                    Some(decl) => Around::Gate(decl, &request),
                    None => Around::Plain,
                };
                match self
                    .checkpoint(&claimed, &state, &records, hold, around)
                    .await?
                {
                    Saved::At(rev) => {
                        claimed.state_rev = rev;
                        records.clear();
                        owed = false;
                    }
                    Saved::Moved => return Ok(false),
                    Saved::Instead(result) => {
                        state.complete_call(result);
                        continue;
                    }
                }
            } else if plan.timeout.is_some() && !self.extend_lease(&claimed, hold).await? {
                // The claim is held for the call's length, so a slow call is not taken for
                // a stopped process (and counted as an interruption).
                return Ok(false);
            }
            let site = CallSite {
                workspace: &workspace,
                run_id: &claimed.id,
                flow_id: &claimed.flow_id,
            };
            let (result, version) = host.call(site, &request, pinned.as_deref()).await;
            if let Some(v) = version {
                state
                    .connectors
                    .entry(request.connector.clone())
                    .or_insert(v);
            }
            let (result, settled) = match &plan.contact {
                Some(decl) => {
                    let recipient = decl.recipient_in(&request.input).ok();
                    let (result, state) = crate::contacts::outcome(result, recipient.as_deref());
                    (result, Some(state))
                }
                None => (result, None),
            };
            state.complete_call(result);
            match settled {
                // Durable after the call, with the contact settled: a completed call is not
                // made again, and the count is right.
                Some(contact) => match self
                    .checkpoint(
                        &claimed,
                        &state,
                        &records,
                        LEASE,
                        Around::Settle(&request, contact),
                    )
                    .await?
                {
                    Saved::At(rev) => {
                        claimed.state_rev = rev;
                        records.clear();
                    }
                    Saved::Moved | Saved::Instead(_) => return Ok(false),
                },
                None => owed |= plan.side_effects,
            }
        };
        self.commit(&claimed, &state, &records, &next).await
    }

    /// Keeps the claim for `hold` more; false when the run moved on meanwhile.
    async fn extend_lease(&self, claimed: &run::Model, hold: Duration) -> Result<bool, RunError> {
        let until = now_ms(Utc::now()) + hold.as_millis() as i64;
        let updated = run::Entity::update_many()
            .col_expr(run::Column::LeaseUntil, SqlExpr::value(until))
            .filter(run::Column::Id.eq(claimed.id.as_str()))
            .filter(run::Column::StateRev.eq(claimed.state_rev))
            .filter(run::Column::Status.eq(RunStatus::Running))
            .exec(&self.runs.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Commits the state and journal so far while keeping the claim (for `hold` more),
    /// with what `around` adds in the same transaction.
    async fn checkpoint(
        &self,
        claimed: &run::Model,
        state: &RunState,
        records: &[StepRecord],
        hold: Duration,
        around: Around<'_>,
    ) -> Result<Saved, RunError> {
        let now = Utc::now();
        let txn = self.runs.db.begin().await?;
        let workspace = claimed.workspace_id.as_str();
        match around {
            Around::Plain => {}
            Around::Gate(decl, request) => {
                let gate = self
                    .contacts
                    .gate(&txn, workspace, &claimed.id, decl, request, now)
                    .await?;
                if let Gate::Instead(result) = gate {
                    txn.rollback().await?;
                    return Ok(Saved::Instead(result));
                }
            }
            Around::Settle(request, contact) => {
                self.contacts
                    .settle(&txn, workspace, &request.idempotency_key, contact)
                    .await?;
            }
        }
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
            return Ok(Saved::Moved);
        }
        insert_steps(&txn, &claimed.workspace_id, &claimed.id, records).await?;
        txn.commit().await?;
        Ok(Saved::At(claimed.state_rev + 1))
    }

    /// Commits a segment's end: the state, the journal, the status and what it waits for.
    async fn commit(
        &self,
        claimed: &run::Model,
        state: &RunState,
        records: &[StepRecord],
        next: &Next,
    ) -> Result<bool, RunError> {
        let now = Utc::now();
        let outcome = super::segment::outcome_of(next, now);
        let txn = self.runs.db.begin().await?;
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
        super::segment::record_finish(outcome.status);
        Ok(true)
    }
}
