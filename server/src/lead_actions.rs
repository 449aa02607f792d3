//! `trellis.leads@1`: the call host of the lead actions (`update_lead`, `assign_owner`,
//! `notify`, `enroll`, `suppress`) and of `behaviour` checks. Each is served in this
//! process in one transaction; its input is the node's config with its templates rendered
//! and its `lead` evaluated by the executor. A failure is a typed connector error, so the
//! node's retry policy and `error` port apply.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::sea_query::{Expr as SqlExpr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Set, TransactionTrait,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use trellis_model::behaviour::DAY_MS;
use trellis_model::node_types::{
    AssignOwnerConfig, AssignStrategy, CheckBehaviourConfig, EnrollAction, EnrollConfig,
    NotifyConfig, Recipient, SuppressConfig, UpdateLeadConfig,
};
use trellis_runtime::connector::ConnectorError;
use trellis_runtime::{CallRequest, CallResult};

use crate::db::entities::{assignment_turn, flow, lead, notification, run};
use crate::events::Events;
use crate::leads::{Lead, Models, find, find_for_update, history, is_suppressed, rescore};
use crate::runs::{CallHost, CallPlan, CallSite, RunStatus, Runs};

/// The version the lead actions' calls are journaled with.
const LEADS_VERSION: &str = "trellis.leads@1.0.0";

/// "Until lifted", as a suppression's end.
const FOREVER: i64 = i64::MAX;

/// The attribute that holds a lead's tags (a list of strings).
pub const TAGS: &str = "tags";
/// The attribute that holds the lifecycle stage sales set by hand.
pub const LIFECYCLE_STAGE: &str = "lifecycle_stage";

/// The lead-action host.
#[derive(Debug)]
pub struct LeadActions {
    db: DatabaseConnection,
    models: Arc<Models>,
    events: Arc<Events>,
    runs: Arc<Runs>,
}

impl LeadActions {
    pub fn new(
        db: DatabaseConnection,
        models: Arc<Models>,
        events: Arc<Events>,
        runs: Arc<Runs>,
    ) -> Arc<LeadActions> {
        Arc::new(LeadActions {
            db,
            models,
            events,
            runs,
        })
    }
}

#[async_trait::async_trait]
impl CallHost for LeadActions {
    /// Served in this process within the claim. Every action is written so that a repeated
    /// call (after a crash, with the same key) does no harm: sets are sets, notifications
    /// are keyed by the call, an enrolment does not start a second live run.
    async fn plan(&self, _: &str, _: &CallRequest, _: Option<&str>) -> CallPlan {
        CallPlan {
            side_effects: false,
            timeout: None,
            contact: None,
        }
    }

    async fn call(
        &self,
        site: CallSite<'_>,
        request: &CallRequest,
        _pinned: Option<&str>,
    ) -> (CallResult, Option<String>) {
        let workspace = site.workspace;
        let input = &request.input;
        let result = match request.operation.as_str() {
            "update_lead" => match parse(input) {
                Ok(c) => self.update(workspace, c).await,
                Err(e) => Err(e),
            },
            "assign_owner" => match parse(input) {
                Ok(c) => self.assign(site, &request.node, c).await,
                Err(e) => Err(e),
            },
            "notify" => match parse(input) {
                Ok(c) => self.notify(site, &request.idempotency_key, c).await,
                Err(e) => Err(e),
            },
            "enroll" => match parse(input) {
                Ok(c) => self.enroll(site, c).await,
                Err(e) => Err(e),
            },
            "suppress" => match parse(input) {
                Ok(c) => self.suppress(workspace, c).await,
                Err(e) => Err(e),
            },
            "behaviour" => match parse(input) {
                Ok(c) => self.behaviour(workspace, c).await,
                Err(e) => Err(e),
            },
            other => Err(ConnectorError::NotFound {
                message: format!("no lead action {other:?}"),
            }),
        };
        crate::runs::served(result, LEADS_VERSION)
    }
}

fn parse<T: DeserializeOwned>(input: &Value) -> Result<T, ConnectorError> {
    serde_json::from_value(input.clone()).map_err(|e| ConnectorError::InvalidInput {
        message: format!("the node's settings do not read: {e}"),
    })
}

fn internal(e: &dyn std::fmt::Display) -> ConnectorError {
    ConnectorError::Internal {
        message: e.to_string(),
    }
}

fn no_lead(id: &str) -> ConnectorError {
    ConnectorError::NotFound {
        message: format!("lead {id:?} does not exist"),
    }
}

/// The tags a lead's attributes hold.
pub fn tags_of(attributes: &Value) -> Vec<String> {
    attributes
        .get(TAGS)
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl LeadActions {
    /// Sets attributes, tags and the lifecycle stage; rescored with the published model in
    /// the same transaction (attributes are what fit features read).
    async fn update(&self, workspace: &str, c: UpdateLeadConfig) -> Result<Value, ConnectorError> {
        let txn = self.db.begin().await.map_err(|e| internal(&e))?;
        let mut row = find_for_update(&txn, workspace, &c.lead)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| no_lead(&c.lead))?;
        let mut attributes = match row.attributes.take() {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        for (name, value) in &c.attributes {
            if name == TAGS {
                return Err(ConnectorError::InvalidInput {
                    message: "tags are set with add_tags and remove_tags".into(),
                });
            }
            attributes.insert(name.clone(), Value::String(value.clone()));
        }
        let mut tags = tags_of(&Value::Object(attributes.clone()));
        for t in &c.add_tags {
            let t = t.trim();
            if !t.is_empty() && !tags.iter().any(|x| x == t) {
                tags.push(t.to_owned());
            }
        }
        tags.retain(|t| !c.remove_tags.iter().any(|r| r.trim() == t));
        if !tags.is_empty() || attributes.contains_key(TAGS) {
            attributes.insert(TAGS.to_owned(), json!(tags));
        }
        if let Some(stage) = c.lifecycle_stage {
            attributes.insert(LIFECYCLE_STAGE.to_owned(), json!(stage));
        }
        let attributes = Value::Object(attributes);
        let now = Utc::now();
        lead::Entity::update_many()
            .col_expr(lead::Column::Attributes, SqlExpr::value(attributes.clone()))
            .col_expr(lead::Column::UpdatedAt, SqlExpr::value(now))
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::Id.eq(row.id.as_str()))
            .exec(&txn)
            .await
            .map_err(|e| internal(&e))?;
        row.attributes = attributes.clone();
        let lead_id = row.id.clone();
        let tier_changed = self
            .rescore(&txn, workspace, row, now.timestamp_millis())
            .await?;
        txn.commit().await.map_err(|e| internal(&e))?;
        self.runs.wake();
        Ok(json!({
            "lead": lead_id,
            "tags": tags,
            "attributes": attributes,
            "tier_changed": tier_changed,
        }))
    }

    /// Rescores `row` with the published model, recording a tier change; whether it
    /// changed.
    async fn rescore<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        row: Lead,
        now_ms: i64,
    ) -> Result<bool, ConnectorError> {
        let Some((version, model)) = self
            .models
            .published(conn, workspace)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Ok(false);
        };
        let lead_id = row.id.clone();
        let change = rescore(conn, workspace, row, version, &model, now_ms)
            .await
            .map_err(|e| internal(&e))?;
        let Some(change) = change else {
            return Ok(false);
        };
        self.events
            .record_tier_change(
                conn,
                workspace,
                &format!("update:{lead_id}:{now_ms}"),
                change,
            )
            .await
            .map_err(|e| internal(&e))?;
        Ok(true)
    }

    /// Picks and records the lead's owner.
    async fn assign(
        &self,
        site: CallSite<'_>,
        node: &str,
        c: AssignOwnerConfig,
    ) -> Result<Value, ConnectorError> {
        let workspace = site.workspace;
        let txn = self.db.begin().await.map_err(|e| internal(&e))?;
        let row = find_for_update(&txn, workspace, &c.lead)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| no_lead(&c.lead))?;
        let previous = row.owner.clone().filter(|o| !o.is_empty());
        if let Some(owner) = &previous
            && !c.reassign
        {
            return Ok(json!({
                "lead": row.id, "owner": owner, "previous": owner, "assigned": false,
                "reason": "the lead already has an owner",
            }));
        }
        let people = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        };
        let (owner, reason) = match c.strategy {
            AssignStrategy::Fixed => {
                let owner = c.owner.clone().unwrap_or_default().trim().to_owned();
                if owner.is_empty() {
                    return Err(ConnectorError::InvalidInput {
                        message: "a fixed assignment needs an owner".into(),
                    });
                }
                (owner, "fixed".to_owned())
            }
            AssignStrategy::RoundRobin => {
                let owners = people(&c.owners);
                if owners.is_empty() {
                    return Err(ConnectorError::InvalidInput {
                        message: "round robin needs at least one person in owners".into(),
                    });
                }
                let turn = next_turn(&txn, workspace, &format!("{}/{node}", site.flow_id))
                    .await
                    .map_err(|e| internal(&e))?;
                let i = usize::try_from(turn).unwrap_or(0) % owners.len();
                (owners[i].clone(), format!("turn {}", turn + 1))
            }
            AssignStrategy::Territory => {
                let attribute = c.territory_attribute.clone().unwrap_or_default();
                let value = row
                    .attributes
                    .get(&attribute)
                    .map(|v| match v {
                        Value::String(s) => s.trim().to_owned(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                let found = c
                    .territories
                    .iter()
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(&value))
                    .map(|(k, owner)| (owner.trim().to_owned(), format!("{attribute} = {k}")));
                match (found, c.fallback.as_deref().map(str::trim)) {
                    (Some(found), _) => found,
                    (None, Some(fallback)) if !fallback.is_empty() => (
                        fallback.to_owned(),
                        format!("{attribute} = {value:?}: no territory, so the fallback"),
                    ),
                    _ => {
                        return Err(ConnectorError::NotFound {
                            message: format!(
                                "no territory for {attribute} = {value:?} and no fallback owner"
                            ),
                        });
                    }
                }
            }
            AssignStrategy::Load => {
                let owners = people(&c.owners);
                if owners.is_empty() {
                    return Err(ConnectorError::InvalidInput {
                        message: "assigning by load needs at least one person in owners".into(),
                    });
                }
                let mut best: Option<(u64, String)> = None;
                for o in owners {
                    let n = lead::Entity::find()
                        .filter(lead::Column::WorkspaceId.eq(workspace))
                        .filter(lead::Column::Owner.eq(o.as_str()))
                        .filter(lead::Column::MergedInto.is_null())
                        .count(&txn)
                        .await
                        .map_err(|e| internal(&e))?;
                    if best.as_ref().is_none_or(|(m, _)| n < *m) {
                        best = Some((n, o));
                    }
                }
                let (n, owner) = best.unwrap_or_default();
                (owner, format!("owns {n} leads, the fewest"))
            }
        };
        lead::Entity::update_many()
            .col_expr(lead::Column::Owner, SqlExpr::value(Some(owner.clone())))
            .col_expr(lead::Column::UpdatedAt, SqlExpr::value(Utc::now()))
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::Id.eq(row.id.as_str()))
            .exec(&txn)
            .await
            .map_err(|e| internal(&e))?;
        txn.commit().await.map_err(|e| internal(&e))?;
        Ok(json!({
            "lead": row.id, "owner": owner, "previous": previous, "assigned": true,
            "strategy": c.strategy, "reason": reason,
        }))
    }

    /// Puts the message in each recipient's inbox, once per call.
    async fn notify(
        &self,
        site: CallSite<'_>,
        key: &str,
        c: NotifyConfig,
    ) -> Result<Value, ConnectorError> {
        let workspace = site.workspace;
        let lead = match &c.lead {
            Some(id) if !id.is_empty() => Some(
                find(&self.db, workspace, id)
                    .await
                    .map_err(|e| internal(&e))?
                    .ok_or_else(|| no_lead(id))?,
            ),
            _ => None,
        };
        let recipients: Vec<String> = match c.to {
            Recipient::LeadOwner => {
                let owner = lead
                    .as_ref()
                    .and_then(|l| l.owner.clone())
                    .filter(|o| !o.is_empty());
                match owner {
                    Some(o) => vec![o],
                    None => {
                        return Err(ConnectorError::NotFound {
                            message: "the lead has no owner to notify yet; assign one first".into(),
                        });
                    }
                }
            }
            Recipient::People => c
                .people
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        };
        if recipients.is_empty() {
            return Err(ConnectorError::InvalidInput {
                message: "nobody to notify: name people".into(),
            });
        }
        let now = Utc::now();
        let rows: Vec<notification::ActiveModel> = recipients
            .iter()
            .enumerate()
            .map(|(i, r)| notification::ActiveModel {
                workspace_id: Set(workspace.to_owned()),
                // Keyed by the call, so a repeated call adds nothing; no `/`, so the id
                // fits in a path.
                id: Set(format!("{}:{i}", key.replace('/', ":"))),
                recipient: Set(r.clone()),
                title: Set(c.title.chars().take(200).collect()),
                body: Set(c.message.chars().take(4000).collect()),
                lead_id: Set(lead.as_ref().map(|l| l.id.clone())),
                flow_id: Set(Some(site.flow_id.to_owned())),
                run_id: Set(Some(site.run_id.to_owned())),
                created_at: Set(now),
                read_at: Set(None),
            })
            .collect();
        notification::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([notification::Column::WorkspaceId, notification::Column::Id])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(|e| internal(&e))?;
        Ok(json!({ "notified": recipients, "lead": lead.map(|l| l.id) }))
    }

    /// Starts `flow` for the lead (unless it has a live run of it or is suppressed), or
    /// cancels its live runs of it.
    async fn enroll(&self, site: CallSite<'_>, c: EnrollConfig) -> Result<Value, ConnectorError> {
        let (workspace, run_id) = (site.workspace, site.run_id);
        let lead = find(&self.db, workspace, &c.lead)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| no_lead(&c.lead))?;
        let target = flow::Entity::find_by_id(c.flow.clone())
            .filter(flow::Column::WorkspaceId.eq(workspace))
            .one(&self.db)
            .await
            .map_err(|e| internal(&e))?
            .filter(|f| f.deleted_at.is_none())
            .ok_or_else(|| ConnectorError::NotFound {
                message: format!("flow {:?} does not exist", c.flow),
            })?;
        let mut live = live_runs(&self.db, workspace, &target.id, &lead.id)
            .await
            .map_err(|e| internal(&e))?;
        live.retain(|r| r.id != run_id);
        match c.action {
            EnrollAction::Remove => {
                let mut cancelled = Vec::new();
                for r in live {
                    self.runs
                        .cancel(
                            workspace,
                            &r.id,
                            format!("removed from the flow by run {run_id}"),
                        )
                        .await
                        .map_err(|e| internal(&e))?;
                    cancelled.push(r.id);
                }
                Ok(json!({ "lead": lead.id, "flow": target.id, "cancelled": cancelled }))
            }
            EnrollAction::Enroll => {
                if site.flow_id == target.id {
                    return Err(ConnectorError::InvalidInput {
                        message: "a flow cannot enroll a lead in itself".into(),
                    });
                }
                enroll_one(
                    &self.db,
                    &self.runs,
                    workspace,
                    &target,
                    &lead,
                    &live,
                    json!({ "from_flow": site.flow_id, "from_run": run_id }),
                    &format!("enroll:{run_id}"),
                )
                .await
            }
        }
    }

    /// Suppresses the lead for `days` (or until lifted), or lifts it.
    async fn suppress(&self, workspace: &str, c: SuppressConfig) -> Result<Value, ConnectorError> {
        let lead = find(&self.db, workspace, &c.lead)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| no_lead(&c.lead))?;
        let until = if c.lift {
            None
        } else {
            Some(match c.days {
                Some(days) => Utc::now().timestamp_millis() + i64::from(days) * DAY_MS,
                None => FOREVER,
            })
        };
        lead::Entity::update_many()
            .col_expr(lead::Column::SuppressedUntil, SqlExpr::value(until))
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::Id.eq(lead.id.as_str()))
            .exec(&self.db)
            .await
            .map_err(|e| internal(&e))?;
        let until_text = until
            .filter(|u| *u != FOREVER)
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(json!({
            "lead": lead.id, "suppressed": until.is_some(),
            "until": until_text, "until_lifted": until == Some(FOREVER),
        }))
    }

    /// Whether the behaviour condition holds for the lead now.
    async fn behaviour(
        &self,
        workspace: &str,
        c: CheckBehaviourConfig,
    ) -> Result<Value, ConnectorError> {
        let compiled =
            c.condition
                .compile()
                .map_err(|(pointer, e)| ConnectorError::InvalidInput {
                    message: format!("condition{pointer}: {}", e.message),
                })?;
        let lead = find(&self.db, workspace, &c.lead)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| no_lead(&c.lead))?;
        let now = Utc::now().timestamp_millis();
        let since = now - i64::from(c.condition.days()) * DAY_MS;
        let events = history(
            &self.db,
            workspace,
            &lead.id,
            &c.condition.event_names(),
            since,
        )
        .await
        .map_err(|e| internal(&e))?;
        let verdict = compiled.check(&events, now, None);
        Ok(json!({
            "lead": lead.id, "holds": verdict.holds, "counts": verdict.counts,
            "matched": verdict.matched,
        }))
    }
}

/// Takes the next turn of a round robin (0 first), atomically.
async fn next_turn<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    key: &str,
) -> Result<i64, sea_orm::DbErr> {
    assignment_turn::Entity::insert(assignment_turn::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        key: Set(key.to_owned()),
        turn: Set(0),
    })
    .on_conflict(
        OnConflict::columns([
            assignment_turn::Column::WorkspaceId,
            assignment_turn::Column::Key,
        ])
        .value(
            assignment_turn::Column::Turn,
            SqlExpr::col((assignment_turn::Entity, assignment_turn::Column::Turn)).add(1),
        )
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    let row = assignment_turn::Entity::find_by_id((workspace.to_owned(), key.to_owned()))
        .one(conn)
        .await?;
    Ok(row.map_or(0, |r| r.turn))
}

/// Starts `target` (its published version) for `lead`, unless the lead is suppressed or
/// already has a live run of it (`live`); `origin` says where the enrolment came from (the
/// trigger event's properties), `event_id` names it. Gives `{lead, flow, started, run |
/// reason}`.
#[allow(clippy::too_many_arguments)] // what an enrolment is made of
pub async fn enroll_one(
    db: &DatabaseConnection,
    runs: &Runs,
    workspace: &str,
    target: &flow::Model,
    lead: &Lead,
    live: &[run::Model],
    origin: Value,
    event_id: &str,
) -> Result<Value, ConnectorError> {
    let Some(version) = target.published_version else {
        return Err(ConnectorError::NotFound {
            message: format!("flow {:?} is not published", target.name),
        });
    };
    let skipped = if is_suppressed(lead, Utc::now().timestamp_millis()) {
        Some("the lead is suppressed")
    } else if !live.is_empty() {
        Some("the lead is already in this flow")
    } else {
        None
    };
    if let Some(reason) = skipped {
        return Ok(json!({
            "lead": lead.id, "flow": target.id, "started": false, "reason": reason,
        }));
    }
    let trigger = json!({ "event": {
        "id": event_id,
        "name": "lead.enrolled",
        "lead": lead.id,
        "properties": origin,
        "timestamp": Utc::now(),
    }});
    let started = runs
        .enqueue(db, workspace, &target.id, version, trigger)
        .await
        .map_err(|e| internal(&e))?;
    runs.wake();
    Ok(json!({ "lead": lead.id, "flow": target.id, "started": true, "run": started }))
}

/// The live runs of `flow` for `lead`.
pub async fn live_runs(
    db: &DatabaseConnection,
    workspace: &str,
    flow: &str,
    lead: &str,
) -> Result<Vec<run::Model>, sea_orm::DbErr> {
    run::Entity::find()
        .filter(run::Column::WorkspaceId.eq(workspace))
        .filter(run::Column::LeadId.eq(lead))
        .filter(run::Column::FlowId.eq(flow))
        .filter(run::Column::Status.is_in(RunStatus::LIVE))
        .all(db)
        .await
}
