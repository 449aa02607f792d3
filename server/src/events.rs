//! The one event intake. Every event — `POST /api/v1/events`, a connector's webhook or
//! poll, the signals an intent node detects — is checked the same way, recorded once by
//! id, attributed to a lead and scored, and routed (starting the flows it triggers and
//! resuming the runs waiting for it), all in one transaction. A tier or stage change it
//! causes is recorded as a `lead.tier_changed` event in the same transaction and routed in
//! turn.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};
use serde_json::{Value, json};
use trellis_model::behaviour::DAY_MS;
use trellis_model::node_types::TriggerKind;

use crate::db::entities::event;
use crate::db::event_rows::{self, EventRow};
use crate::input::{Invalid, check_event, check_timestamp};
use crate::leads::Landed;
use crate::leads::{Models, TIER_CHANGED};
use crate::routes::Routes;
use crate::runs::{RunError, Runs, Waiting};
use crate::url_categories::Categorisers;

/// An event from outside, before it is recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Unique per workspace; a repeated id is accepted and not processed again.
    pub id: String,
    pub name: String,
    /// The lead it is about, when the sender knows it (otherwise its identities say).
    pub lead: Option<String>,
    pub properties: Value,
    /// When it happened (default: when it is recorded).
    pub timestamp: Option<DateTime<Utc>>,
}

impl NewEvent {
    /// A connector's event: the id is prefixed with the connector's name (a missing one is
    /// made up); a payload that is not an object becomes `{"value": payload}`. A payload's
    /// `lead` names the lead; its `timestamp` (RFC 3339) is when the event happened and is
    /// taken out of the properties (one that does not parse stays there, and the event is
    /// dated when it is recorded).
    pub fn from_connector(
        connector: &str,
        event: trellis_runtime::connector::InboundEvent,
    ) -> NewEvent {
        let id = format!(
            "{connector}:{}",
            event.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
        );
        let lead = event.payload["lead"].as_str().map(str::to_owned);
        let mut properties = if event.payload.is_object() {
            event.payload
        } else {
            json!({ "value": event.payload })
        };
        let timestamp = properties["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        if timestamp.is_some()
            && let Some(map) = properties.as_object_mut()
        {
            map.remove("timestamp");
        }
        NewEvent {
            id,
            name: event.name,
            lead,
            properties,
            timestamp,
        }
    }

    /// What every event must satisfy before it is recorded: its id, name and lead id,
    /// properties an object that nests within bounds, a plausible timestamp.
    pub fn check(&self) -> Result<(), Invalid> {
        check_event(&self.id, &self.name, self.lead.as_deref(), &self.properties)?;
        if let Some(t) = self.timestamp {
            check_timestamp(t, "/timestamp")?;
        }
        Ok(())
    }
}

/// Events of one connector delivery recorded per transaction: big enough to share a
/// commit, small enough not to hold SQLite's writer (or PostgreSQL's row locks) long.
const BATCH_CHUNK: usize = 100;

/// What recording an event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// An event with this id was recorded before; nothing was done again.
    Duplicate,
    New {
        /// The lead it was attributed to.
        lead: Option<String>,
        /// The runs it started.
        run_ids: Vec<String>,
        /// How many waiting runs it resumed.
        runs_resumed: u64,
        /// The `lead.tier_changed` properties, when it moved the lead's tier or stage.
        tier_changed: Option<Value>,
    },
}

impl Recorded {
    /// The answer `POST /api/v1/events` gives.
    pub fn to_json(&self) -> Value {
        match self {
            Recorded::Duplicate => {
                json!({ "accepted": true, "duplicate": true, "runs_started": 0, "runs_resumed": 0 })
            }
            Recorded::New {
                lead,
                run_ids,
                runs_resumed,
                tier_changed,
            } => json!({
                "accepted": true, "duplicate": false, "lead": lead,
                "runs_started": run_ids.len(), "run_ids": run_ids, "runs_resumed": runs_resumed,
                "tier_changed": tier_changed,
            }),
        }
    }
}

/// Why an event was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Runs(#[from] RunError),
    #[error("attributing the event to a lead: {0}")]
    Lead(#[from] crate::leads::LeadError),
}

/// One event of a batch that was refused, by its place in the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    pub index: usize,
    pub id: String,
    pub problem: Invalid,
}

/// What recording a batch did.
#[derive(Debug, Default)]
pub struct BatchRecorded {
    pub recorded: u64,
    pub refused: Vec<Refused>,
}

/// The event intake.
#[derive(Debug)]
pub struct Events {
    db: DatabaseConnection,
    runs: Arc<Runs>,
    models: Arc<Models>,
    routes: Arc<Routes>,
    /// Each workspace's URL-category rules, applied to events that carry a page.
    pub categories: Categorisers,
}

impl Events {
    pub fn new(
        db: DatabaseConnection,
        runs: Arc<Runs>,
        models: Arc<Models>,
        routes: Arc<Routes>,
    ) -> Events {
        Events {
            db,
            runs,
            models,
            routes,
            categories: crate::url_categories::categorisers(),
        }
    }

    /// Checks and records one event in `workspace` (see the module's description).
    pub async fn record(&self, workspace: &str, event: NewEvent) -> Result<Recorded, IntakeError> {
        event.check()?;
        let txn = self.db.begin().await?;
        let recorded = self.record_in(&txn, workspace, vec![event]).await?;
        txn.commit().await?;
        let recorded = recorded.into_iter().next().unwrap_or(Recorded::Duplicate);
        if matches!(recorded, Recorded::New { .. }) {
            metrics::counter!("trellis_events_total").increment(1);
            self.runs.wake();
        }
        Ok(recorded)
    }

    /// Checks and records events raised by the server itself (a task unit created, a
    /// milestone due) inside the caller's transaction, so the change and its event commit
    /// together; an id recorded before is a duplicate. Wake the workers ([`Runs::wake`])
    /// once the transaction commits.
    pub async fn record_within<C: ConnectionTrait>(
        &self,
        txn: &C,
        workspace: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Recorded>, IntakeError> {
        for e in &events {
            e.check()?;
        }
        let n = events.len() as u64;
        let recorded = self.record_in(txn, workspace, events).await?;
        metrics::counter!("trellis_events_total").increment(n);
        Ok(recorded)
    }

    /// Records checked events in the caller's transaction, in order, and says what each
    /// did (an id seen before, or twice here, is a duplicate and nothing is done for it).
    /// The work is set-based: which ids are stored is read with one statement, the new
    /// events are attributed, scored and inserted (each once, with its lead) together
    /// ([`crate::leads::record_all`]), the waiting runs are read once, and the tier changes
    /// they cause are recorded together. Wake the
    /// workers ([`Runs::wake`]) once the transaction commits.
    async fn record_in<C: ConnectionTrait>(
        &self,
        txn: &C,
        workspace: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Recorded>, IntakeError> {
        crate::leads::lock_events(
            txn,
            workspace,
            events.iter().map(|e| (e.lead.as_deref(), &e.properties)),
        )
        .await?;
        let received = Utc::now();
        let mut rules = None;
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            let mut properties = if event.properties.is_null() {
                json!({})
            } else {
                event.properties
            };
            if ["url", "path"].iter().any(|k| properties.get(*k).is_some()) {
                if rules.is_none() {
                    rules = Some(self.categories.get(txn, workspace).await);
                }
                match &rules {
                    Some(Ok(rules)) => crate::url_categories::categorise(rules, &mut properties),
                    // A stored document that no longer compiles must not stop events.
                    Some(Err(error)) => {
                        tracing::warn!(workspace, %error, "URL categories not applied")
                    }
                    None => {}
                }
            }
            rows.push(EventRow {
                id: event.id,
                name: event.name,
                lead: event.lead,
                lead_id: None,
                properties,
                timestamp: event.timestamp.unwrap_or(received),
            });
        }
        // Each id once: the first of the chunk, unless it is stored.
        let mut seen = HashSet::new();
        let first: Vec<bool> = rows.iter().map(|r| seen.insert(r.id.as_str())).collect();
        let ids: Vec<&str> = seen.into_iter().collect();
        let stored = event_rows::stored(txn, workspace, &ids).await?;
        let fresh: Vec<bool> = rows
            .iter()
            .zip(first)
            .map(|(row, first)| first && !stored.contains(&row.id))
            .collect();
        let new: Vec<&EventRow> = rows
            .iter()
            .zip(&fresh)
            .filter_map(|(row, fresh)| fresh.then_some(row))
            .collect();
        if new.is_empty() {
            return Ok(rows.iter().map(|_| Recorded::Duplicate).collect());
        }
        let landed = crate::leads::record_all(txn, &self.models, workspace, &new, received).await?;
        let waiting = self
            .runs
            .waiting(
                txn,
                workspace,
                new.iter()
                    .map(|row| row.name.as_str())
                    .chain([TIER_CHANGED]),
            )
            .await?;
        let merged = landed
            .iter()
            .any(|l| matches!(l, Landed::New(Some(a)) if a.merged));
        let mut out = Vec::with_capacity(rows.len());
        let mut changes = Vec::new();
        let mut landed = landed.into_iter();
        for (row, fresh) in rows.into_iter().zip(fresh) {
            if !fresh {
                out.push(Recorded::Duplicate);
                continue;
            }
            let attributed = match landed.next() {
                Some(Landed::New(attributed)) => attributed,
                Some(Landed::Duplicate) | None => {
                    out.push(Recorded::Duplicate);
                    continue;
                }
            };
            let lead_id = attributed.as_ref().map(|a| a.lead_id.clone());
            if let Some(lead_id) = &lead_id {
                crate::contacts::revoke_on_event(
                    txn,
                    workspace,
                    lead_id,
                    &row.id,
                    &row.name,
                    &row.properties,
                    row.timestamp.timestamp_millis(),
                )
                .await?;
            }
            let EventRow {
                id,
                name,
                lead,
                properties,
                timestamp,
                ..
            } = row;
            let payload = json!({ "id": id, "name": name, "lead": lead_id.clone().or(lead), "properties": properties, "timestamp": timestamp });
            let (run_ids, runs_resumed) = self
                .route(txn, workspace, &name, &payload, &waiting)
                .await?;
            let tier_changed = attributed.and_then(|a| a.change);
            if let Some(change) = &tier_changed {
                changes.push((out.len(), format!("{id}:tier"), change.clone()));
            }
            out.push(Recorded::New {
                lead: lead_id,
                run_ids,
                runs_resumed,
                tier_changed,
            });
        }
        // The tier changes the events caused, recorded together and routed in order; a
        // change of a lead merged later in the chunk goes with it, as its events did.
        let moved = if merged && !changes.is_empty() {
            let leads: Vec<&str> = changes
                .iter()
                .filter_map(|(_, _, change)| change["lead"].as_str())
                .collect();
            crate::leads::moved(txn, workspace, &leads).await?
        } else {
            HashMap::new()
        };
        let routed = self
            .record_tier_changes(
                txn,
                workspace,
                changes
                    .iter()
                    .map(|(_, id, change)| (id.clone(), change.clone()))
                    .collect(),
                &moved,
                Some(&waiting),
            )
            .await?;
        for ((index, _, _), (started, resumed)) in changes.into_iter().zip(routed) {
            if let Some(Recorded::New {
                run_ids,
                runs_resumed,
                ..
            }) = out.get_mut(index)
            {
                run_ids.extend(started);
                *runs_resumed += resumed;
            }
        }
        Ok(out)
    }

    /// Records a connector's events (from its webhook or a poll) in order. An event that
    /// fails the checks is refused and logged with its place; the rest are recorded.
    pub async fn record_batch(
        &self,
        workspace: &str,
        connector: &str,
        events: Vec<trellis_runtime::connector::InboundEvent>,
    ) -> Result<BatchRecorded, IntakeError> {
        let mut out = BatchRecorded::default();
        let mut checked = Vec::with_capacity(events.len());
        for (index, e) in events.into_iter().enumerate() {
            let event = NewEvent::from_connector(connector, e);
            if let Err(problem) = event.check() {
                tracing::warn!(connector, workspace, index, id = %format!("{:.200}", event.id), problem = %problem, pointer = %problem.pointer, "connector event refused");
                out.refused.push(Refused {
                    index,
                    id: event.id.chars().take(200).collect(),
                    problem,
                });
                continue;
            }
            checked.push(event);
        }
        // One transaction per chunk of a delivery: a batch commits together (a failure
        // records none of its chunk, and the sender's retry is deduplicated by event id).
        let mut checked = checked.into_iter().peekable();
        while checked.peek().is_some() {
            let chunk: Vec<NewEvent> = checked.by_ref().take(BATCH_CHUNK).collect();
            let txn = self.db.begin().await?;
            let recorded = self
                .record_in(&txn, workspace, chunk)
                .await?
                .iter()
                .filter(|r| matches!(r, Recorded::New { .. }))
                .count() as u64;
            txn.commit().await?;
            metrics::counter!("trellis_events_total").increment(recorded);
            out.recorded += recorded;
            if recorded > 0 {
                self.runs.wake();
            }
        }
        Ok(out)
    }

    /// Records a `lead.tier_changed` event (`change` holds its properties, `lead` among
    /// them) inside the caller's transaction and routes it; gives the runs started and the
    /// count resumed. Wake the workers ([`Runs::wake`]) once the transaction commits.
    pub async fn record_tier_change<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        id: &str,
        change: Value,
    ) -> Result<(Vec<String>, u64), IntakeError> {
        self.record_tier_change_as(conn, workspace, id, change, TierChangeRouting::StartFlows)
            .await
    }

    /// [`record_tier_change`](Self::record_tier_change); with
    /// [`TierChangeRouting::RecordOnly`] the change goes on the lead's timeline and starts
    /// and resumes nothing (a backfill).
    pub async fn record_tier_change_as<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        id: &str,
        change: Value,
        routing: TierChangeRouting,
    ) -> Result<(Vec<String>, u64), IntakeError> {
        let waiting = match routing {
            TierChangeRouting::StartFlows => {
                Some(self.runs.waiting(conn, workspace, [TIER_CHANGED]).await?)
            }
            TierChangeRouting::RecordOnly => None,
        };
        Ok(self
            .record_tier_changes(
                conn,
                workspace,
                vec![(id.to_owned(), change)],
                &HashMap::new(),
                waiting.as_ref(),
            )
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// Records `lead.tier_changed` events, (id, properties with `lead` among them), with one
    /// statement, each attributed to its lead or where `moved` says that lead lives now, and
    /// routes each new one in order (with `waiting`; without, they start and resume
    /// nothing). Gives the runs each started and the count it resumed.
    async fn record_tier_changes<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        changes: Vec<(String, Value)>,
        moved: &HashMap<String, String>,
        waiting: Option<&Waiting>,
    ) -> Result<Vec<(Vec<String>, u64)>, IntakeError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let rows: Vec<EventRow> = changes
            .into_iter()
            .map(|(id, change)| {
                let lead = change["lead"].as_str().map(str::to_owned);
                let lead_id = lead.as_ref().map(|l| moved.get(l).unwrap_or(l).clone());
                EventRow {
                    id,
                    name: TIER_CHANGED.to_owned(),
                    lead: lead.clone(),
                    lead_id,
                    properties: change,
                    timestamp: now,
                }
            })
            .collect();
        let inserted = event_rows::insert(
            conn,
            workspace,
            &rows.iter().map(|row| (row, None)).collect::<Vec<_>>(),
            now,
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(waiting) = waiting.filter(|_| inserted.contains(&row.id)) else {
                out.push((Vec::new(), 0));
                continue;
            };
            let payload = json!({ "id": row.id, "name": TIER_CHANGED, "lead": row.lead, "properties": row.properties, "timestamp": now });
            out.push(
                self.route(conn, workspace, TIER_CHANGED, &payload, waiting)
                    .await?,
            );
        }
        Ok(out)
    }

    /// Starts the flows `name` triggers and resumes the runs waiting for it.
    async fn route<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        name: &str,
        payload: &Value,
        waiting: &Waiting,
    ) -> Result<(Vec<String>, u64), IntakeError> {
        let mut started = Vec::new();
        // Which flows an event may start is read through the route cache: a publish in this
        // process is seen at once, one in another process within `routes::ROUTE_TTL`.
        let mut candidates = self
            .routes
            .cached_on(conn, workspace, TriggerKind::Event, Some(name))
            .await?;
        let behaviours = self
            .routes
            .cached_on(conn, workspace, TriggerKind::Behaviour, None)
            .await?;
        // The lead is read only when some flow may start for it.
        let lead = match payload.get("lead").and_then(Value::as_str) {
            Some(id) if !candidates.is_empty() || !behaviours.is_empty() => {
                crate::leads::find(conn, workspace, id).await?
            }
            _ => None,
        };
        let now_ms = Utc::now().timestamp_millis();
        // A suppressed lead starts no flow (its waiting runs still hear the event).
        let suppressed = lead
            .as_ref()
            .is_some_and(|l| crate::leads::is_suppressed(l, now_ms));
        let trigger = event_trigger(payload);
        if let Some(lead) = lead.as_ref().filter(|_| !suppressed) {
            for route in behaviours {
                let flow = self
                    .runs
                    .compiled_on(conn, &route.flow_id, route.version)
                    .await?;
                let Some(behaviour) = flow.trigger_behaviour() else {
                    continue;
                };
                let names = behaviour.behaviour.event_names();
                if !names.contains(&name) {
                    continue;
                }
                let since = now_ms - i64::from(behaviour.behaviour.days()) * DAY_MS;
                let history =
                    crate::leads::history(conn, workspace, &lead.id, &names, since).await?;
                let id = payload
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if behaviour.became_true(&history, now_ms, id) {
                    candidates.push(route);
                }
            }
        }
        for route in candidates {
            if suppressed {
                break;
            }
            let flow = self
                .runs
                .compiled_on(conn, &route.flow_id, route.version)
                .await?;
            match flow.admits(&trigger) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(workspace, flow = %route.flow_id, %error, "a trigger's condition failed on an event; the flow was not started");
                    continue;
                }
            }
            let id = self
                .runs
                .enqueue(
                    conn,
                    workspace,
                    &route.flow_id,
                    route.version,
                    trigger.clone(),
                )
                .await?;
            started.push(id);
        }
        let resumed = self.runs.resume(conn, waiting, name, payload).await?;
        Ok((started, resumed))
    }
}

/// Whether a recorded tier change starts the flows that react to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierChangeRouting {
    StartFlows,
    /// On the lead's timeline only: a backfill.
    RecordOnly,
}

/// The JSON a trigger node sees for an event.
pub fn event_trigger(event: &Value) -> Value {
    json!({ "event": event })
}

/// The triggers the last `limit` events named `name` gave flows (as they would give one
/// now), newest first, with when each arrived: samples for a test run.
pub async fn recent_triggers<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    name: &str,
    limit: u64,
) -> Result<Vec<(DateTime<Utc>, Value)>, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let events = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace))
        .filter(event::Column::Name.eq(name))
        .order_by_desc(event::Column::ReceivedAt)
        .limit(limit)
        .all(conn)
        .await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let payload = json!({
                "id": e.id, "name": e.name, "lead": e.lead_id.or(e.lead),
                "properties": e.properties, "timestamp": e.timestamp,
            });
            (e.received_at, event_trigger(&payload))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_events_are_named_by_their_connector_and_checked_like_any_other() {
        let e = NewEvent::from_connector(
            "crm",
            trellis_runtime::connector::InboundEvent {
                id: Some("42".into()),
                name: "deal.won".into(),
                payload: json!(7),
            },
        );
        assert_eq!(e.id, "crm:42");
        assert_eq!(e.properties, json!({ "value": 7 }));
        assert!(e.check().is_ok());
        let long = NewEvent {
            id: "x".repeat(300),
            ..e.clone()
        };
        assert_eq!(long.check().unwrap_err().pointer, "/id");
        let nul = NewEvent {
            properties: json!({ "a": "b\u{0}" }),
            ..e
        };
        assert_eq!(nul.check().unwrap_err().pointer, "/properties/a");
    }

    #[test]
    fn a_connector_event_dates_itself_with_its_timestamp() {
        let event = |payload: Value| {
            NewEvent::from_connector(
                "site-tracking",
                trellis_runtime::connector::InboundEvent {
                    id: Some("m1".into()),
                    name: "page_view".into(),
                    payload,
                },
            )
        };
        let e = event(json!({"path": "/pricing", "timestamp": "2026-12-01T08:00:00.250+08:00"}));
        assert_eq!(
            e.timestamp.map(|t| t.to_rfc3339()),
            Some("2026-12-01T00:00:00.250+00:00".to_owned())
        );
        assert_eq!(e.properties, json!({"path": "/pricing"}));
        let e = event(json!({"path": "/pricing", "timestamp": "yesterday"}));
        assert_eq!(e.timestamp, None);
        assert_eq!(e.properties["timestamp"], "yesterday");
    }
}
