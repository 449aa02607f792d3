//! The scheduler: once a second it starts the runs of published flows whose schedule
//! trigger fired since the last tick, and runs the connector polls that are due.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DbBackend, EntityTrait, Statement, TransactionTrait,
};
use serde_json::json;
use trellis_model::node_types::{TriggerConfig, TriggerKind};
use trellis_model::schedule::Schedule;

use crate::connectors::Registry;
use crate::db::entities::{connector_poll, schedule_fire};
use crate::events::{Events, IntakeError};
use crate::routes;
use crate::runs::{RunError, Runs, now_ms};

/// Why a scheduler tick failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Runs(#[from] RunError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

/// Schedules and connector polls.
#[derive(Clone, Debug)]
pub struct Scheduler {
    db: DatabaseConnection,
    runs: Arc<Runs>,
    events: Arc<Events>,
    /// `None`: this process runs no connectors, so no polls.
    registry: Option<Arc<Registry>>,
}

impl Scheduler {
    pub fn new(
        db: DatabaseConnection,
        runs: Arc<Runs>,
        events: Arc<Events>,
        registry: Option<Arc<Registry>>,
    ) -> Scheduler {
        Scheduler {
            db,
            runs,
            events,
            registry,
        }
    }

    /// Ticks once a second until `shutdown` fires. Fires while no server ran are not
    /// replayed.
    pub fn spawn(self, shutdown: tokio::sync::watch::Receiver<bool>) {
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
                match self.fire_schedules(last, now).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(runs = n, "scheduled runs started");
                        self.runs.wake();
                    }
                    Err(e) => tracing::warn!(error = %e, "firing schedules failed"),
                }
                last = now;
                match self.fire_polls(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(polls = n, "connector polls done"),
                    Err(e) => tracing::warn!(error = %e, "connector polls failed"),
                }
            }
        });
    }

    /// Starts one run per schedule fire in `(after, until]`. A fire is recorded in
    /// `schedule_fires` in the run's transaction, so it starts exactly one run even when
    /// several processes tick at once. Returns how many runs this call started.
    pub async fn fire_schedules(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<usize, ScheduleError> {
        let mut started = 0;
        for route in routes::triggered(&self.db, None, TriggerKind::Schedule, None).await? {
            let compiled = self.runs.compiled(&route.flow_id, route.version).await?;
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
                    tracing::warn!(flow = %route.flow_id, error = %e, "published schedule does not parse");
                    continue;
                }
            };
            for fire in schedule.fires_between(after, until, 10) {
                let txn = self.db.begin().await?;
                let run_id = self
                    .runs
                    .enqueue(
                        &txn,
                        &route.workspace,
                        &route.flow_id,
                        route.version,
                        json!({ "scheduled_at": fire, "cron": cron }),
                    )
                    .await?;
                let inserted = schedule_fire::Entity::insert(schedule_fire::ActiveModel {
                    workspace_id: Set(route.workspace.clone()),
                    flow_id: Set(route.flow_id.clone()),
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

    /// Runs the connector polls that are due: each is claimed by moving its `next_at` on
    /// in one statement, so one process polls it however many share the database. Events
    /// go through the event intake (deduplicated by id) before the cursor advances, so a
    /// crash between the two repeats a poll, never loses an event; events the intake
    /// refuses are named in the poll's `last_error`.
    pub async fn fire_polls(&self, now: DateTime<Utc>) -> Result<usize, ScheduleError> {
        let Some(registry) = &self.registry else {
            return Ok(0);
        };
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
                [now_ms(now).into()],
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
                    let batch = self
                        .events
                        .record_batch(&poll.workspace_id, &poll.name, polled.events)
                        .await?;
                    metrics::counter!("trellis_connector_poll_events_total", "connector" => poll.name.clone())
                        .increment(batch.recorded);
                    if let Some(cursor) = polled.cursor {
                        row.cursor = Set(Some(cursor));
                    }
                    let refused: Vec<String> = batch
                        .refused
                        .iter()
                        .map(|r| {
                            format!(
                                "event {}: {} at {}",
                                r.id, r.problem.detail, r.problem.pointer
                            )
                        })
                        .collect();
                    row.last_error = Set((!refused.is_empty())
                        .then(|| json!({ "refused_events": refused }).to_string()));
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
            self.runs.wake();
        }
        Ok(count)
    }
}
