//! Run retention: finished runs older than their workspace's `run_retention_days` are
//! deleted with their journal, in the background, in bounded transactions (at most
//! [`STEPS_PER_TXN`] journal rows, then at most [`BATCH`] runs) with a pause between them,
//! so writers are never held up for long. Expired sessions and tickets go at the same time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};

use crate::db::entities::{run, run_step, schedule_fire, subscription, workspace};
use crate::limits::LimitsCache;
use crate::runs::RunStatus;

/// How often retention looks for runs past their time.
pub const INTERVAL: Duration = Duration::from_secs(600);
/// Runs deleted per transaction.
pub const BATCH: u64 = 200;
/// Journal rows deleted per transaction (a run may have up to 100,000).
pub const STEPS_PER_TXN: u64 = 5_000;
/// Pause between two batches, leaving the database to other writers.
pub const PAUSE: Duration = Duration::from_millis(20);

/// Deletes expired runs once soon after start, then every [`INTERVAL`], until `shutdown`.
pub fn spawn(
    db: DatabaseConnection,
    limits: Arc<LimitsCache>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        let mut wait = Duration::from_secs(30);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            wait = INTERVAL;
            match sweep(&db, &limits, &shutdown).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "expired runs deleted"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "run retention failed"),
            }
            if let Err(e) = crate::users::forget_expired(&db).await {
                tracing::warn!(error = %e, "removing expired sessions failed");
            }
        }
    });
}

/// Deletes every run (and its journal) that finished before its workspace's retention
/// period; returns how many.
pub async fn sweep(
    db: &DatabaseConnection,
    limits: &LimitsCache,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let workspaces: Vec<String> = workspace::Entity::find()
        .select_only()
        .column(workspace::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut deleted = 0;
    for ws in workspaces {
        // One workspace's trouble does not stop the others'.
        let days = match limits.get(db, &ws).await {
            Ok(l) => l.run_retention_days,
            Err(e) => {
                tracing::warn!(workspace = %ws, error = %e, "run retention skipped a workspace");
                continue;
            }
        };
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
        loop {
            if *shutdown.borrow() {
                return Ok(deleted);
            }
            let n = delete_batch(db, &ws, cutoff).await?;
            deleted += n;
            if n < BATCH {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        schedule_fire::Entity::delete_many()
            .filter(schedule_fire::Column::WorkspaceId.eq(ws.as_str()))
            .filter(schedule_fire::Column::FireAt.lt(cutoff.timestamp_millis()))
            .exec(db)
            .await?;
    }
    metrics::counter!("trellis_runs_expired_total").increment(deleted);
    Ok(deleted)
}

/// One transaction: up to [`BATCH`] finished runs of `ws` older than `cutoff`.
async fn delete_batch(
    db: &DatabaseConnection,
    ws: &str,
    cutoff: chrono::DateTime<Utc>,
) -> anyhow::Result<u64> {
    let ids: Vec<String> = run::Entity::find()
        .select_only()
        .column(run::Column::Id)
        .filter(run::Column::WorkspaceId.eq(ws))
        .filter(run::Column::FinishedAt.lt(cutoff))
        .filter(run::Column::Status.is_in(RunStatus::TERMINAL))
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    // The journal first, in bounded pieces, then the runs in one transaction (a stop in
    // between leaves expired runs with part of their journal, finished next time).
    loop {
        let page = run_step::Entity::find()
            .select_only()
            .column(run_step::Column::RunId)
            .column(run_step::Column::Seq)
            .filter(run_step::Column::RunId.is_in(ids.iter().map(String::as_str)))
            .limit(STEPS_PER_TXN)
            .into_tuple::<(String, i64)>()
            .all(db)
            .await?;
        if page.is_empty() {
            break;
        }
        let mut by_run: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
        for (run, seq) in &page {
            by_run.entry(run.as_str()).or_default().push(*seq);
        }
        let txn = db.begin().await?;
        for (run, seqs) in by_run {
            run_step::Entity::delete_many()
                .filter(run_step::Column::RunId.eq(run))
                .filter(run_step::Column::Seq.is_in(seqs))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        tokio::time::sleep(PAUSE).await;
    }
    let txn = db.begin().await?;
    subscription::Entity::delete_many()
        .filter(subscription::Column::RunId.is_in(ids.iter().map(String::as_str)))
        .exec(&txn)
        .await?;
    let res = run::Entity::delete_many()
        .filter(run::Column::Id.is_in(ids.iter().map(String::as_str)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(res.rows_affected)
}
