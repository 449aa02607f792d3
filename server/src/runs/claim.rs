//! Claiming due runs for this process, and failing the runs that cannot go on (stored JSON
//! that does not read, or a run that stopped the process twice at the same step).

use chrono::Utc;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter};
use serde_json::Value;

use super::{LEASE, RunError, RunStatus, Runs, now_ms, segment};
use crate::db::entities::{run, subscription};
use crate::db::run_rows::{self, RawRun};

impl Runs {
    /// Claims up to `limit` due runs for this process. A claim that takes over a lapsed
    /// lease counts an interruption of the run; a run interrupted twice at the same step,
    /// or whose stored JSON does not read, is failed with the reason instead of returned.
    pub async fn claim(&self, limit: u64) -> Result<Vec<run::Model>, RunError> {
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
            match readable(raw) {
                Ok(run) => claimed.push(run),
                Err(bad) => {
                    // Failing it may fail too (the database busy): the claim lapses and the
                    // next one tries again; the rest of the batch goes on.
                    if let Err(e) = fail_unreadable(&self.db, &bad).await {
                        tracing::warn!(run = %bad.id, error = %e, "failing an unreadable run failed");
                    }
                }
            }
        }
        Ok(claimed)
    }
}

/// A claimed row as a run, unless its JSON does not read or it stopped the process
/// twice at the same step.
fn readable(raw: RawRun) -> Result<run::Model, run_rows::Unreadable> {
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
pub(super) async fn fail_unreadable<C: ConnectionTrait>(
    conn: &C,
    bad: &run_rows::Unreadable,
) -> Result<(), sea_orm::DbErr> {
    tracing::error!(run = %bad.id, reason = %bad.reason, "failing a run that cannot go on");
    let now = Utc::now();
    run::Entity::update_many()
        .col_expr(run::Column::Status, SqlExpr::value(RunStatus::Failed))
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
    segment::record_finish(RunStatus::Failed);
    Ok(())
}
