//! Group commit of new inline runs: every run waiting when a transaction starts goes into
//! it, so under load one commit serves many runs and each caller still answers only after
//! its run is durable. A batch that fails is retried run by run, so one bad run fails alone.

use sea_orm::{DatabaseConnection, EntityTrait, TransactionTrait};
use trellis_runtime::StepRecord;

use super::segment::{insert_subscription, step_row};
use crate::db::entities::{run, run_step};

/// A new run with its first segment, waiting to be committed.
#[derive(Debug)]
pub(super) struct NewRun {
    pub workspace: String,
    pub row: run::ActiveModel,
    pub records: Vec<StepRecord>,
    pub subscription: Option<trellis_runtime::Subscription>,
    pub done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The writer task: commits what [`super::Runs::run_inline`] sends it, until every sender
/// is gone.
pub(super) async fn run_writer(
    db: DatabaseConnection,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<NewRun>,
) {
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
                tracing::warn!(error = %e, runs = batch.len(), "batch commit failed; committing runs one by one");
                for run in batch {
                    let result = write_runs(&db, std::slice::from_ref(&run))
                        .await
                        .map_err(|e| e.to_string());
                    let _ = run.done.send(result);
                }
            }
            Err(e) => {
                for run in batch {
                    let _ = run.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

async fn write_runs(db: &DatabaseConnection, runs: &[NewRun]) -> Result<(), sea_orm::DbErr> {
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
