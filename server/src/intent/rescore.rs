//! Rescoring every lead of a workspace after a model is published: a reader task reads and
//! rates pages of leads on the read-only connection while the writer stores the previous
//! page, one guarded `UPDATE` per page, so events racing the rescore keep their scores.
//!
//! Several processes may share one PostgreSQL database: a rescore is done by the process
//! that claims its lease in `scoring_models`, renewed with every page it writes; when the
//! holder stops renewing it, the next process whose watch looks takes the rescore over
//! (it starts over; the writes are idempotent).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};
use trellis_model::scoring::{BehaviourState, CompiledModel, Rating, Stage, Tier};

use super::Intent;
use crate::db::entities::{lead, lead_score, scoring_model};
use crate::db::placeholder;
use crate::events::TierChangeRouting;
use crate::leads::{covers_state, rescore_many, select_leads, tier_change};

/// Leads a rescore reads, rates and writes per page (one transaction each).
const RESCORE_PAGE: u64 = 5_000;

/// How long a rescore's lease lasts: every page written renews it. Pages take well under
/// a second; a holder silent this long has stopped.
const RESCORE_LEASE: Duration = Duration::from_secs(60);

/// How often each process looks for rescores no process holds (a publish whose process
/// stopped, a holder whose lease lapsed).
const RESCORE_WATCH: Duration = Duration::from_secs(15);

fn lease_until(now_ms: i64) -> i64 {
    now_ms + RESCORE_LEASE.as_millis() as i64
}

/// A rescore no process holds at `now_ms`: never claimed, or its lease lapsed.
fn unheld(now_ms: i64) -> Condition {
    Condition::any()
        .add(scoring_model::Column::RescoreOwner.is_null())
        .add(scoring_model::Column::RescoreLeaseUntil.lt(now_ms))
}

/// The score index, which a rescore on SQLite drops while it writes and builds again after.
const SCORE_INDEX: &str = "lead_scores_by_score";

/// Scores per `UPDATE` statement in [`write_ratings`] (6 parameters each). Every statement
/// carries exactly this many rows, a short chunk padded with rows that match no lead, so
/// its text never changes and the connection compiles it once: compiling a statement this
/// size costs about as much as running it, and a different size every page doubled the
/// time a rescore spends writing.
const WRITE_CHUNK: usize = 500;

/// One lead of a rescore as the reader saw it, rated.
struct Rated {
    id: String,
    tier: Tier,
    stage: Stage,
    /// The score's revision when read: the write applies only if it is unchanged.
    seen: i64,
    rating: Rating,
}

/// One page of a rescore: the leads rated as of `at` (epoch ms), and those whose state
/// lacks one of the model's behaviours (their events are replayed by the writer, in its
/// transaction).
struct RatedPage {
    at: i64,
    rated: Vec<Rated>,
    replay: Vec<String>,
}

impl RatedPage {
    fn len(&self) -> usize {
        self.rated.len() + self.replay.len()
    }
}

/// A lead row as a rescore reads it: id, attributes and state (as JSON text), tier, stage
/// and the score's revision.
type RawLead = (String, String, String, Tier, Stage, i64);

/// Reads the page of leads after `after` in id order, with the columns scoring needs.
async fn read_page(
    conn: &sea_orm::DatabaseConnection,
    workspace: &str,
    after: &str,
) -> Result<Vec<RawLead>, sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "SELECT l.id, CAST(l.attributes AS TEXT), CAST(l.state AS TEXT), s.tier, s.stage, \
         s.scored_at FROM leads l JOIN lead_scores s \
         ON s.workspace_id = l.workspace_id AND s.lead_id = l.id \
         WHERE l.workspace_id = {} AND l.merged_into IS NULL AND l.id > {} \
         ORDER BY l.id LIMIT {}",
        p(1),
        p(2),
        p(3)
    );
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [workspace.into(), after.into(), (RESCORE_PAGE as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
                r.try_get_by_index(4)?,
                r.try_get_by_index(5)?,
            ))
        })
        .collect()
}

/// Rates a page read by [`read_page`] as of `now_ms` (CPU only: run it off the runtime).
fn rate_page(model: &CompiledModel, rows: Vec<RawLead>, now_ms: i64) -> RatedPage {
    let mut page = RatedPage {
        at: now_ms,
        rated: Vec::with_capacity(rows.len()),
        replay: Vec::new(),
    };
    for (id, attributes, state, tier, stage, seen) in rows {
        let state: BehaviourState = serde_json::from_str(&state).unwrap_or_default();
        if !covers_state(model, &state) {
            page.replay.push(id);
            continue;
        }
        let attributes: Value = serde_json::from_str(&attributes).unwrap_or_else(|_| json!({}));
        let rating = model.rate(&attributes, &state, now_ms);
        page.rated.push(Rated {
            id,
            tier,
            stage,
            seen,
            rating,
        });
    }
    page
}

/// A page being rated on a blocking thread.
type PageRating = tokio::task::JoinHandle<RatedPage>;

/// Reads every lead of `workspace`, page by page, handing each page to a blocking thread to
/// rate and the rating to `pages`, then reads the next page while that one is rated. Runs
/// ahead of the writer (the channel holds two pages); stops when the writer hangs up.
async fn read_rated(
    reader: sea_orm::DatabaseConnection,
    workspace: String,
    model: Arc<CompiledModel>,
    pages: tokio::sync::mpsc::Sender<anyhow::Result<PageRating>>,
) {
    let mut after = String::new();
    loop {
        let rows = match read_page(&reader, &workspace, &after).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = pages.send(Err(e.into())).await;
                return;
            }
        };
        let Some(last) = rows.last() else {
            return;
        };
        after = last.0.clone();
        let model = model.clone();
        let rating = tokio::task::spawn_blocking(move || {
            rate_page(&model, rows, Utc::now().timestamp_millis())
        });
        if pages.send(Ok(rating)).await.is_err() {
            return;
        }
    }
}

/// The `UPDATE` [`write_ratings`] runs per chunk: [`WRITE_CHUNK`] rows of `(id, score, tier,
/// stage, probability, seen)`, then the version, `at` twice and the workspace.
fn update_sql(backend: sea_orm::DatabaseBackend, returning: bool) -> String {
    use std::fmt::Write as _;
    let p = |n| placeholder(backend, n);
    let mut rows = String::with_capacity(WRITE_CHUNK * 32);
    for r in 0..WRITE_CHUNK {
        let n = r * 6;
        if r > 0 {
            rows.push_str(", ");
        }
        let _ = write!(
            rows,
            "({}, {}, {}, {}, {}, {})",
            p(n + 1),
            p(n + 2),
            p(n + 3),
            p(n + 4),
            p(n + 5),
            p(n + 6)
        );
    }
    let n = WRITE_CHUNK * 6;
    format!(
        "WITH v(id, score, tier, stage, probability, seen) AS (VALUES {rows}) \
         UPDATE lead_scores SET score = v.score, tier = v.tier, stage = v.stage, \
         probability = v.probability, model_version = {}, \
         scored_at = CASE WHEN v.seen < {} THEN {} ELSE v.seen + 1 END \
         FROM v WHERE lead_scores.workspace_id = {} AND lead_scores.lead_id = v.id \
         AND lead_scores.scored_at = v.seen{}",
        p(n + 1),
        p(n + 2),
        p(n + 3),
        p(n + 4),
        if returning {
            " RETURNING lead_scores.lead_id"
        } else {
            ""
        }
    )
}

/// Stores ratings made as of `at`, one `UPDATE … FROM (VALUES …)` per [`WRITE_CHUNK`]:
/// only the score columns change, and only where the score's revision is still the one the
/// rescore read (an event that rescored the lead meanwhile wins). A row written gets
/// `scored_at = at`, or the revision read plus one if that is not earlier, so the revision
/// always moves forward. With `returning`, gives the ids written; otherwise how many.
async fn write_ratings<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    version: i32,
    at: i64,
    rated: &[&Rated],
    returning: bool,
) -> Result<(u64, Vec<String>), sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    let sql = update_sql(backend, returning);
    let (mut count, mut ids) = (0, Vec::new());
    for chunk in rated.chunks(WRITE_CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(WRITE_CHUNK * 6 + 4);
        for r in chunk {
            values.extend([
                r.id.as_str().into(),
                r.rating.score.into(),
                r.rating.tier.as_str().into(),
                r.rating.stage.as_str().into(),
                r.rating.probability.into(),
                r.seen.into(),
            ]);
        }
        // Padding: a NULL id equals no lead's.
        for _ in chunk.len()..WRITE_CHUNK {
            values.extend([
                sea_orm::Value::String(None),
                sea_orm::Value::Double(None),
                sea_orm::Value::String(None),
                sea_orm::Value::String(None),
                sea_orm::Value::Double(None),
                sea_orm::Value::BigInt(None),
            ]);
        }
        values.extend([version.into(), at.into(), at.into(), workspace.into()]);
        let statement = sea_orm::Statement::from_sql_and_values(backend, sql.as_str(), values);
        if returning {
            for row in conn.query_all_raw(statement).await? {
                ids.push(row.try_get_by_index::<String>(0)?);
                count += 1;
            }
        } else {
            count += conn.execute_raw(statement).await?.rows_affected();
        }
    }
    Ok((count, ids))
}

/// Records how many leads the rescore to `version` has done and, once it is `finished`,
/// when it finished.
async fn set_rescore_done<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    version: i32,
    done: u64,
    finished: bool,
) -> Result<(), sea_orm::DbErr> {
    let mut update = scoring_model::Entity::update_many().col_expr(
        scoring_model::Column::RescoreDone,
        SqlExpr::value(done as i64),
    );
    if finished {
        update = update.col_expr(
            scoring_model::Column::RescoreFinishedAt,
            SqlExpr::value(Some(Utc::now())),
        );
    }
    update
        .filter(scoring_model::Column::WorkspaceId.eq(workspace))
        .filter(scoring_model::Column::RescoreVersion.eq(version))
        .exec(conn)
        .await?;
    Ok(())
}

/// [`rescore_many`] over `ids`, a page of them per round; gives their tier changes.
async fn rescore_ids<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    ids: &[String],
    version: i32,
    model: &CompiledModel,
    now_ms: i64,
) -> anyhow::Result<Vec<Value>> {
    let mut changes = Vec::new();
    for chunk in ids.chunks(RESCORE_PAGE as usize) {
        let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
        changes.extend(rescore_many(conn, workspace, &ids, version, model, now_ms).await?);
    }
    Ok(changes)
}

/// Aborts a background task when dropped (a rescore that stops early stops its reader).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Intent {
    /// Rescores every lead of `workspace` with model `version`, recording progress in
    /// `scoring_models` and a `lead.tier_changed` event for each lead whose tier or stage
    /// moves. Stops early if another version is published meanwhile (that publish runs its
    /// own rescore). Safe to run again after a crash: it starts over.
    ///
    /// A reader task reads and rates pages of leads on the reader connection while this
    /// task writes the previous ones, one transaction per page. A score an event
    /// rewrote after the reader read it is left alone; leads whose state lacks one of the
    /// model's behaviours are replayed in the writer's transaction; a last sweep rescores
    /// any lead still not on `version` (one an event scored with the previous model while
    /// the publish committed).
    ///
    /// Gives `None`, doing nothing, when another process holds the rescore's lease (or the
    /// rescore is finished or superseded).
    pub async fn rescore_all(&self, workspace: &str, version: i32) -> anyhow::Result<Option<u64>> {
        let Some(routing) = self.claim_rescore(workspace, version).await? else {
            return Ok(None);
        };
        // On SQLite, keeping the score index up to date costs most of a rescore's writes
        // (each update moves an entry to a random place in it); building it once afterwards
        // from the sorted scores costs a fraction. Lists still answer meanwhile, sorting
        // without it. PostgreSQL keeps its index: its writers run side by side.
        let bulk = !crate::db::is_postgres(&self.db);
        if bulk {
            self.db
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {SCORE_INDEX}"))
                .await?;
        }
        let rescored = self.rescore_pages(workspace, version, routing).await;
        if bulk {
            self.ensure_score_index().await?;
        }
        let (done, finished) = rescored?;
        if finished {
            set_rescore_done(&self.db, workspace, version, done, true).await?;
        }
        Ok(Some(done))
    }

    /// Takes the lease of the rescore to `version` if it is the published version, not
    /// finished, and no process holds a live lease on it; gives whether its tier changes
    /// start flows (`None` when not claimed).
    async fn claim_rescore(
        &self,
        workspace: &str,
        version: i32,
    ) -> Result<Option<TierChangeRouting>, sea_orm::DbErr> {
        let now = Utc::now().timestamp_millis();
        let res = scoring_model::Entity::update_many()
            .col_expr(
                scoring_model::Column::RescoreOwner,
                SqlExpr::value(Some(self.owner.clone())),
            )
            .col_expr(
                scoring_model::Column::RescoreLeaseUntil,
                SqlExpr::value(Some(lease_until(now))),
            )
            .filter(scoring_model::Column::WorkspaceId.eq(workspace))
            .filter(scoring_model::Column::PublishedVersion.eq(version))
            .filter(scoring_model::Column::RescoreVersion.eq(version))
            .filter(scoring_model::Column::RescoreFinishedAt.is_null())
            .filter(unheld(now))
            .exec(&self.db)
            .await?;
        if res.rows_affected != 1 {
            return Ok(None);
        }
        let backfill = scoring_model::Entity::find_by_id(workspace.to_owned())
            .one(&self.db)
            .await?
            .is_some_and(|m| m.rescore_backfill);
        Ok(Some(if backfill {
            TierChangeRouting::RecordOnly
        } else {
            TierChangeRouting::StartFlows
        }))
    }

    /// Creates the score index where a rescore dropped it (a no-op when it is there).
    pub async fn ensure_score_index(&self) -> Result<(), sea_orm::DbErr> {
        self.db
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {SCORE_INDEX} ON lead_scores (workspace_id, score)"
            ))
            .await?;
        Ok(())
    }

    /// The pages of [`rescore_all`](Self::rescore_all); gives how many leads it rescored
    /// and whether it finished (rather than giving way to a newer publish).
    async fn rescore_pages(
        &self,
        workspace: &str,
        version: i32,
        routing: TierChangeRouting,
    ) -> anyhow::Result<(u64, bool)> {
        use sea_orm::PaginatorTrait;
        let model = self.models.version(&self.db, workspace, version).await?;
        crate::db::refresh_lead_statistics(&self.db).await?;
        let total = lead::Entity::find()
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::MergedInto.is_null())
            .count(&self.db)
            .await?;
        scoring_model::Entity::update_many()
            .col_expr(
                scoring_model::Column::RescoreTotal,
                SqlExpr::value(total as i64),
            )
            .col_expr(scoring_model::Column::RescoreDone, SqlExpr::value(0i64))
            .filter(scoring_model::Column::WorkspaceId.eq(workspace))
            .exec(&self.db)
            .await?;
        let (tx, mut pages) = tokio::sync::mpsc::channel(2);
        let _reader = AbortOnDrop(tokio::spawn(read_rated(
            self.reader.clone(),
            workspace.to_owned(),
            model.clone(),
            tx,
        )));
        let mut done = 0u64;
        // Where the time goes, for the log line at the end: waiting for the reader (which
        // reads and rates), and writing.
        let (mut wait_time, mut write_time) = (Duration::ZERO, Duration::ZERO);
        while let Some(next) = {
            let t = Instant::now();
            let next = pages.recv().await;
            let next = match next {
                Some(rating) => Some(rating?.await?),
                None => None,
            };
            wait_time += t.elapsed();
            next
        } {
            let t = Instant::now();
            let written = self
                .write_page(workspace, version, &model, next, done, routing)
                .await?;
            write_time += t.elapsed();
            let Some(n) = written else {
                tracing::info!(workspace, version, "rescore superseded or taken over");
                return Ok((done, false));
            };
            done += n;
        }
        let t = Instant::now();
        let Some(swept) = self.sweep(workspace, version, &model, routing).await? else {
            tracing::info!(workspace, version, "rescore superseded or taken over");
            return Ok((done, false));
        };
        write_time += t.elapsed();
        tracing::info!(
            workspace,
            version,
            leads = done,
            swept,
            wait_ms = wait_time.as_millis() as u64,
            write_ms = write_time.as_millis() as u64,
            "rescore finished"
        );
        Ok((done, true))
    }

    /// Writes a rated page in one transaction, with the progress (`done` leads before it);
    /// `None` when this process no longer holds the rescore (see
    /// [`begin_if_held`](Self::begin_if_held)). Gives how many leads the page held.
    async fn write_page(
        &self,
        workspace: &str,
        version: i32,
        model: &CompiledModel,
        page: RatedPage,
        done: u64,
        routing: TierChangeRouting,
    ) -> anyhow::Result<Option<u64>> {
        let Some(txn) = self.begin_if_held(workspace, version).await? else {
            return Ok(None);
        };
        let now_ms = Utc::now().timestamp_millis();
        let (moved, same): (Vec<&Rated>, Vec<&Rated>) = page
            .rated
            .iter()
            .partition(|r| r.tier != r.rating.tier || r.stage != r.rating.stage);
        write_ratings(&txn, workspace, version, page.at, &same, false).await?;
        // Only the leads this write moved get a tier change: an event that rescored one
        // meanwhile recorded its own.
        let (_, won) = write_ratings(&txn, workspace, version, page.at, &moved, true).await?;
        let won: std::collections::HashSet<String> = won.into_iter().collect();
        let mut changes: Vec<Value> = moved
            .into_iter()
            .filter(|r| won.contains(&r.id))
            .filter_map(|r| tier_change(&r.id, r.tier, r.stage, &r.rating, version))
            .collect();
        changes.extend(rescore_ids(&txn, workspace, &page.replay, version, model, now_ms).await?);
        set_rescore_done(&txn, workspace, version, done + page.len() as u64, false).await?;
        self.commit_tier_changes(txn, workspace, version, now_ms, changes, routing)
            .await?;
        Ok(Some(page.len() as u64))
    }

    /// Rescores, one transaction, the leads a rescore left on another model version;
    /// `None` when this process no longer holds the rescore. Gives how many there were.
    async fn sweep(
        &self,
        workspace: &str,
        version: i32,
        model: &CompiledModel,
        routing: TierChangeRouting,
    ) -> anyhow::Result<Option<u64>> {
        let Some(txn) = self.begin_if_held(workspace, version).await? else {
            return Ok(None);
        };
        let stale: Vec<String> = select_leads()
            .select_only()
            .column(lead::Column::Id)
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::MergedInto.is_null())
            .filter(
                Condition::any()
                    .add(lead_score::Column::ModelVersion.is_null())
                    .add(lead_score::Column::ModelVersion.ne(version)),
            )
            .into_tuple()
            .all(&txn)
            .await?;
        let now_ms = Utc::now().timestamp_millis();
        let changes = rescore_ids(&txn, workspace, &stale, version, model, now_ms).await?;
        self.commit_tier_changes(txn, workspace, version, now_ms, changes, routing)
            .await?;
        Ok(Some(stale.len() as u64))
    }

    /// Begins a rescore transaction and renews the lease in it, or gives `None` (and begins
    /// nothing) when `version` is no longer the published one or another process took the
    /// rescore over. On PostgreSQL the renewal locks the row until the transaction ends, so
    /// a takeover waits for it and then sees the renewed lease.
    async fn begin_if_held(
        &self,
        workspace: &str,
        version: i32,
    ) -> Result<Option<sea_orm::DatabaseTransaction>, sea_orm::DbErr> {
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await?;
        let renewed = scoring_model::Entity::update_many()
            .col_expr(
                scoring_model::Column::RescoreLeaseUntil,
                SqlExpr::value(Some(lease_until(Utc::now().timestamp_millis()))),
            )
            .filter(scoring_model::Column::WorkspaceId.eq(workspace))
            .filter(scoring_model::Column::PublishedVersion.eq(version))
            .filter(scoring_model::Column::RescoreVersion.eq(version))
            .filter(scoring_model::Column::RescoreOwner.eq(self.owner.as_str()))
            .exec(&txn)
            .await?;
        if renewed.rows_affected == 1 {
            return Ok(Some(txn));
        }
        txn.rollback().await?;
        Ok(None)
    }

    /// Records a rescore's tier changes in `txn` (starting flows as `routing` says),
    /// commits it, and wakes the workers if the changes started runs.
    async fn commit_tier_changes(
        &self,
        txn: sea_orm::DatabaseTransaction,
        workspace: &str,
        version: i32,
        now_ms: i64,
        changes: Vec<Value>,
        routing: TierChangeRouting,
    ) -> anyhow::Result<()> {
        let mut started = 0;
        for change in changes {
            let id = change["lead"].as_str().unwrap_or_default().to_owned();
            let (runs, _) = self
                .events
                .record_tier_change_as(
                    &txn,
                    workspace,
                    &format!("rescore:{version}:{id}:{now_ms}"),
                    change,
                    routing,
                )
                .await?;
            started += runs.len();
        }
        txn.commit().await?;
        if started > 0 {
            self.runs.wake();
        }
        Ok(())
    }

    /// Starts [`rescore_all`](Self::rescore_all) in the background.
    pub fn spawn_rescore(self: &Arc<Self>, workspace: String, version: i32) {
        let intent = self.clone();
        tokio::spawn(async move {
            if let Err(e) = intent.rescore_all(&workspace, version).await {
                tracing::error!(workspace, version, error = %format!("{e:#}"), "rescore failed");
            }
        });
    }

    /// At start: resumes the rescores left unfinished. On SQLite this is the only process,
    /// so leases a stopped process held are released at once, and a score index an
    /// interrupted rescore dropped is built again.
    pub async fn resume_rescores(self: &Arc<Self>) -> anyhow::Result<()> {
        if !crate::db::is_postgres(&self.db) {
            scoring_model::Entity::update_many()
                .col_expr(
                    scoring_model::Column::RescoreOwner,
                    SqlExpr::value(Option::<String>::None),
                )
                .filter(scoring_model::Column::RescoreFinishedAt.is_null())
                .exec(&self.db)
                .await?;
            self.ensure_score_index().await?;
        }
        self.take_over_rescores().await?;
        Ok(())
    }

    /// Starts every unfinished rescore of a published version that no process holds a
    /// live lease on; gives how many it started (each claims its lease first, so a
    /// rescore another process claims meanwhile is left to it).
    pub async fn take_over_rescores(self: &Arc<Self>) -> Result<usize, sea_orm::DbErr> {
        let now = Utc::now().timestamp_millis();
        let pending = scoring_model::Entity::find()
            .filter(scoring_model::Column::RescoreVersion.is_not_null())
            .filter(scoring_model::Column::RescoreFinishedAt.is_null())
            .filter(unheld(now))
            .all(&self.db)
            .await?;
        let mut started = 0;
        for p in pending {
            if let Some(v) = p
                .rescore_version
                .filter(|v| Some(*v) == p.published_version)
            {
                self.spawn_rescore(p.workspace_id, v);
                started += 1;
            }
        }
        Ok(started)
    }

    /// Looks for rescores no process holds every [`RESCORE_WATCH`] until `shutdown`.
    pub fn spawn_rescore_watch(self: &Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let intent = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESCORE_WATCH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                if let Err(e) = intent.take_over_rescores().await {
                    tracing::warn!(error = %e, "looking for rescores to take over");
                }
            }
        });
    }
}

/// What publishing a model version would do to the workspace's leads, worked out by rating
/// every lead without writing anything.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq)]
pub struct PublishImpact {
    /// Leads rated.
    pub leads: u64,
    /// Leads whose tier or stage would move: each is one `lead.tier_changed` event.
    pub changes: u64,
    /// Of those, by tier: from → to, with how many leads.
    pub moves: Vec<TierMove>,
    /// Leads whose history the new model reads differently (new behaviours): replayed at
    /// publish, not estimated here.
    pub replayed: u64,
}

/// Leads moving from one tier to another.
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct TierMove {
    pub from: Tier,
    pub to: Tier,
    pub leads: u64,
}

impl Intent {
    /// What publishing `version` would do (see [`PublishImpact`]), reading on the reader
    /// connection.
    pub async fn publish_impact(
        &self,
        workspace: &str,
        version: i32,
    ) -> anyhow::Result<PublishImpact> {
        let model = self.models.version(&self.db, workspace, version).await?;
        let (tx, mut pages) = tokio::sync::mpsc::channel(2);
        let _reader = AbortOnDrop(tokio::spawn(read_rated(
            self.reader.clone(),
            workspace.to_owned(),
            model,
            tx,
        )));
        let mut impact = PublishImpact::default();
        let mut moves: std::collections::BTreeMap<(Tier, Tier), u64> = Default::default();
        while let Some(page) = pages.recv().await {
            let page = page?.await?;
            impact.replayed += page.replay.len() as u64;
            for r in &page.rated {
                impact.leads += 1;
                if r.tier != r.rating.tier || r.stage != r.rating.stage {
                    impact.changes += 1;
                }
                if r.tier != r.rating.tier {
                    *moves.entry((r.tier, r.rating.tier)).or_default() += 1;
                }
            }
        }
        impact.leads += impact.replayed;
        impact.moves = moves
            .into_iter()
            .map(|((from, to), leads)| TierMove { from, to, leads })
            .collect();
        Ok(impact)
    }

    /// Makes the rescore the publish in `txn` started a backfill: scores and tiers move,
    /// the changes go on the leads' timelines, and no flow starts.
    pub async fn mark_backfill<C: ConnectionTrait>(
        &self,
        txn: &C,
        workspace: &str,
    ) -> Result<(), sea_orm::DbErr> {
        scoring_model::Entity::update_many()
            .col_expr(scoring_model::Column::RescoreBackfill, SqlExpr::value(true))
            .filter(scoring_model::Column::WorkspaceId.eq(workspace))
            .exec(txn)
            .await?;
        Ok(())
    }
}
