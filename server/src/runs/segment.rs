//! One segment of a run: executing it, and the rows it writes (the journal, the guarded
//! state update, the subscription of a run that parks on an event).

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use trellis_runtime::{CompiledFlow, Executor, Next, RunState, StepRecord};

use super::{RunStatus, SEGMENT_STEPS, SEGMENT_TIME, now_ms};
use crate::db::entities::{run, run_step, subscription};

/// Steps `state` until it parks or finishes, or the segment budget runs out.
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
pub(super) fn guarded_update(
    claimed: &run::Model,
    state: &RunState,
    now: DateTime<Utc>,
) -> Result<sea_orm::UpdateMany<run::Entity>, serde_json::Error> {
    Ok(run::Entity::update_many()
        .col_expr(
            run::Column::State,
            SqlExpr::value(serde_json::to_value(state)?),
        )
        .col_expr(run::Column::StateRev, SqlExpr::value(claimed.state_rev + 1))
        .col_expr(run::Column::UpdatedAt, SqlExpr::value(now))
        .filter(run::Column::Id.eq(claimed.id.as_str()))
        .filter(run::Column::StateRev.eq(claimed.state_rev))
        .filter(run::Column::Status.eq(RunStatus::Running)))
}

/// How a segment's end is stored.
pub(super) struct Outcome {
    pub status: RunStatus,
    pub wake_at: Option<i64>,
    pub error: Option<String>,
    pub finished: bool,
    pub subscription: Option<trellis_runtime::Subscription>,
}

pub(super) fn outcome_of(next: &Next, now: DateTime<Utc>) -> Outcome {
    match next {
        // A call is made by a worker: the run is due now.
        Next::Continue | Next::Call(_) => Outcome {
            status: RunStatus::Queued,
            wake_at: Some(now_ms(now)),
            error: None,
            finished: false,
            subscription: None,
        },
        Next::Park {
            until,
            subscription,
        } => Outcome {
            status: RunStatus::Waiting,
            wake_at: Some(now_ms(*until)),
            error: None,
            finished: false,
            subscription: subscription.clone(),
        },
        Next::Succeeded => Outcome {
            status: RunStatus::Succeeded,
            wake_at: None,
            error: None,
            finished: true,
            subscription: None,
        },
        Next::Failed { error } => Outcome {
            status: RunStatus::Failed,
            wake_at: None,
            error: Some(error.clone()),
            finished: true,
            subscription: None,
        },
    }
}

pub(super) fn record_finish(status: RunStatus) {
    if status.is_terminal() {
        metrics::counter!("trellis_runs_finished_total", "status" => status.as_str()).increment(1);
    }
}

pub(super) async fn insert_steps<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    run_id: &str,
    records: &[StepRecord],
) -> Result<(), sea_orm::DbErr> {
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

pub(super) fn step_row(workspace: &str, run_id: &str, r: &StepRecord) -> run_step::ActiveModel {
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

pub(super) async fn insert_subscription<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    run_id: &str,
    sub: &trellis_runtime::Subscription,
) -> Result<(), sea_orm::DbErr> {
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
