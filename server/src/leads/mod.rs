//! Leads: identity resolution, incremental scoring inside the event's transaction, merging
//! an anonymous history into a known lead, and rescoring every lead after a model is
//! published.
//!
//! Scoring itself is pure (`trellis_model::scoring`): an event updates the lead's decayed
//! aggregates in O(1) with [`CompiledModel::apply`] and the score is recomputed from them.
//! A full recompute ([`CompiledModel::replay`] over the lead's events) is used only where
//! the aggregates can't be carried over: after a merge, and when a newly published model
//! has a behaviour the lead's state has never tracked.

mod batch;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use sea_orm::sea_query::{Expr as SqlExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize as _;
use serde_json::{Map, Value, json};
use trellis_model::nba::{Facts, Rules};
use trellis_model::scoring::{
    BehaviourState, CompiledModel, EventView, Rating, ScoringModel, Stage, Tier,
};

use crate::db::entities::{
    account, consent_revocation, contact, event, lead, lead_identity, lead_score, scoring_model,
    workspace_doc,
};

pub use batch::{Landed, record_all};

/// A lead with its score (`leads JOIN lead_scores`), as the engine and the API use it.
#[derive(Clone, Debug, PartialEq, sea_orm::FromQueryResult)]
pub struct Lead {
    pub workspace_id: String,
    pub id: String,
    pub account_id: Option<String>,
    pub owner: Option<String>,
    pub attributes: Value,
    /// `trellis_model::scoring::BehaviourState`.
    pub state: Value,
    pub score: f64,
    pub tier: Tier,
    pub stage: Stage,
    pub probability: Option<f64>,
    pub model_version: Option<i32>,
    /// Epoch ms the score was computed for; every score write moves it forward.
    pub scored_at: i64,
    pub last_event_at: Option<i64>,
    pub merged_into: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    /// Epoch ms until which no flow starts for the lead.
    pub suppressed_until: Option<i64>,
}

/// Leads with their scores: add filters and order, then `.into_model::<Lead>()`.
pub fn select_leads() -> sea_orm::Select<lead::Entity> {
    lead::Entity::find()
        .inner_join(lead_score::Entity)
        .columns([
            lead_score::Column::Score,
            lead_score::Column::Tier,
            lead_score::Column::Stage,
            lead_score::Column::Probability,
            lead_score::Column::ModelVersion,
            lead_score::Column::ScoredAt,
        ])
}

/// The event a tier or stage change emits; flows can be triggered by it.
pub const TIER_CHANGED: &str = "lead.tier_changed";

pub use trellis_model::scoring::IDENTITY_KINDS;

/// Why a lead could not be attributed, scored or read.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("scoring model version {0} does not exist")]
    NoModelVersion(i32),
    /// A stored document does not read.
    #[error("the stored {what} does not read: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("encoding a lead's state: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Compiled scoring model versions, by workspace and version number.
#[derive(Debug, Default)]
pub struct Models {
    cache: RwLock<HashMap<(String, i32), Arc<CompiledModel>>>,
}

impl Models {
    /// A saved version, compiled (cached: versions are immutable).
    pub async fn version<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        number: i32,
    ) -> Result<Arc<CompiledModel>, LeadError> {
        let key = (workspace.to_owned(), number);
        if let Some(m) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(m);
        }
        let row = crate::docs::stored(conn, crate::docs::DocKind::ScoringModel, workspace, number)
            .await?
            .ok_or(LeadError::NoModelVersion(number))?;
        let doc: ScoringModel = serde_json::from_str(&row.doc).map_err(|e| LeadError::Corrupt {
            what: "scoring model",
            reason: e.to_string(),
        })?;
        let compiled = Arc::new(CompiledModel::new(doc).map_err(|e| LeadError::Corrupt {
            what: "scoring model",
            reason: format!("{e:?}"),
        })?);
        if let Ok(mut c) = self.cache.write() {
            c.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// The workspace's published version, if any.
    pub async fn published<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
    ) -> Result<Option<(i32, Arc<CompiledModel>)>, LeadError> {
        let Some(number) = scoring_model::Entity::find_by_id(workspace.to_owned())
            .one(conn)
            .await?
            .and_then(|m| m.published_version)
        else {
            return Ok(None);
        };
        Ok(Some((number, self.version(conn, workspace, number).await?)))
    }
}

/// The workspace's scoring-model head: its versions and the progress of its rescore.
pub async fn model_head<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<Option<scoring_model::Model>, sea_orm::DbErr> {
    scoring_model::Entity::find_by_id(workspace.to_owned())
        .one(conn)
        .await
}

/// What attributing an event did to its lead.
#[derive(Debug)]
pub struct Attributed {
    pub lead_id: String,
    /// `lead.tier_changed` properties, when the tier or stage moved.
    pub change: Option<Value>,
    /// Whether other leads were merged into it.
    pub merged: bool,
}

/// Where the leads among `ids` that were merged away live now, by id.
pub async fn moved<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    ids: &[&str],
) -> Result<HashMap<String, String>, sea_orm::DbErr> {
    let mut moved: HashMap<String, String> = HashMap::new();
    let mut asking: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
    // A merge chain is short; eight hops is what `find` follows too.
    for _ in 0..8 {
        if asking.is_empty() {
            break;
        }
        let rows = lead::Entity::find()
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::Id.is_in(asking.iter().map(String::as_str)))
            .filter(lead::Column::MergedInto.is_not_null())
            .all(conn)
            .await?;
        asking = Vec::new();
        for row in rows {
            let Some(next) = row.merged_into else {
                continue;
            };
            for target in moved.values_mut().filter(|t| **t == row.id) {
                *target = next.clone();
            }
            moved.entry(row.id).or_insert_with(|| next.clone());
            asking.push(next);
        }
    }
    Ok(moved)
}

/// The identities in an event's properties, strongest first.
pub fn identities(properties: &Value) -> Vec<(&'static str, String)> {
    IDENTITY_KINDS
        .iter()
        .filter_map(|k| {
            let v = properties.get(*k)?;
            let s = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (!s.is_empty() && s.len() <= 200).then_some((*k, s))
        })
        .collect()
}

fn empty_lead(workspace: &str, id: &str, now_ms: i64) -> Lead {
    let now = Utc::now();
    Lead {
        workspace_id: workspace.to_owned(),
        id: id.to_owned(),
        account_id: None,
        owner: None,
        attributes: json!({}),
        state: json!({}),
        score: 0.0,
        tier: Tier::Cold,
        stage: Stage::Lead,
        probability: None,
        model_version: None,
        scored_at: now_ms,
        last_event_at: None,
        merged_into: None,
        created_at: now,
        updated_at: now,
        suppressed_until: None,
    }
}

fn active(m: &Lead) -> lead::ActiveModel {
    lead::ActiveModel {
        workspace_id: Set(m.workspace_id.clone()),
        id: Set(m.id.clone()),
        account_id: Set(m.account_id.clone()),
        owner: Set(m.owner.clone()),
        attributes: Set(m.attributes.clone()),
        state: Set(m.state.clone()),
        last_event_at: Set(m.last_event_at),
        merged_into: Set(m.merged_into.clone()),
        created_at: Set(m.created_at),
        updated_at: Set(m.updated_at),
        suppressed_until: Set(m.suppressed_until),
    }
}

fn score_active(m: &Lead) -> lead_score::ActiveModel {
    lead_score::ActiveModel {
        workspace_id: Set(m.workspace_id.clone()),
        lead_id: Set(m.id.clone()),
        score: Set(m.score),
        tier: Set(m.tier),
        stage: Set(m.stage),
        probability: Set(m.probability),
        model_version: Set(m.model_version),
        scored_at: Set(m.scored_at),
    }
}

/// Loads a lead, following merges to the lead it now lives in.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
) -> Result<Option<Lead>, sea_orm::DbErr> {
    find_with(conn, workspace, id, false).await
}

/// [`find`] for a transaction that will write the lead: on PostgreSQL the row is locked
/// (`FOR UPDATE`) until the transaction ends, so concurrent events for one lead fold into
/// its aggregates one after the other instead of overwriting each other. (SQLite has a
/// single writer already.)
pub async fn find_for_update<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
) -> Result<Option<Lead>, sea_orm::DbErr> {
    find_with(conn, workspace, id, true).await
}

async fn find_with<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
    lock: bool,
) -> Result<Option<Lead>, sea_orm::DbErr> {
    let mut id = id.to_owned();
    for _ in 0..8 {
        let mut q = select_leads()
            .filter(lead::Column::WorkspaceId.eq(workspace))
            .filter(lead::Column::Id.eq(id.as_str()));
        if lock {
            q = q.lock_exclusive();
        }
        let Some(row) = q.into_model::<Lead>().one(conn).await? else {
            return Ok(None);
        };
        match &row.merged_into {
            Some(next) => id = next.clone(),
            None => return Ok(Some(row)),
        }
    }
    Ok(None)
}

/// Every column an update of a whole lead writes.
const ALL_COLUMNS: [lead::Column; 7] = [
    lead::Column::AccountId,
    lead::Column::Owner,
    lead::Column::Attributes,
    lead::Column::State,
    lead::Column::LastEventAt,
    lead::Column::MergedInto,
    lead::Column::UpdatedAt,
];

/// Every column an update of a score writes.
const SCORE_COLUMNS: [lead_score::Column; 6] = [
    lead_score::Column::Score,
    lead_score::Column::Tier,
    lead_score::Column::Stage,
    lead_score::Column::Probability,
    lead_score::Column::ModelVersion,
    lead_score::Column::ScoredAt,
];

/// Leads saved per statement by [`save_all`]: 16 parameters each, under SQLite's 32,766.
const SAVE_CHUNK: usize = 1_000;

/// Inserts `rows` with their scores, or updates them where they exist: two statements per
/// [`SAVE_CHUNK`] leads.
async fn save_all<C: ConnectionTrait>(conn: &C, rows: &[Lead]) -> Result<(), sea_orm::DbErr> {
    for chunk in rows.chunks(SAVE_CHUNK) {
        lead::Entity::insert_many(chunk.iter().map(active))
            .on_conflict(
                OnConflict::columns([lead::Column::WorkspaceId, lead::Column::Id])
                    .update_columns(ALL_COLUMNS)
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        lead_score::Entity::insert_many(chunk.iter().map(score_active))
            .on_conflict(
                OnConflict::columns([lead_score::Column::WorkspaceId, lead_score::Column::LeadId])
                    .update_columns(SCORE_COLUMNS)
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

async fn save<C: ConnectionTrait>(conn: &C, row: &Lead) -> Result<(), sea_orm::DbErr> {
    save_all(conn, std::slice::from_ref(row)).await
}

/// The lead's events as the scorer sees them, oldest first (`lead.*` events are the
/// engine's own and never scored).
pub async fn events_of<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead_id: &str,
) -> Result<Vec<EventView>, sea_orm::DbErr> {
    Ok(event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace))
        .filter(event::Column::LeadId.eq(lead_id))
        .order_by_asc(event::Column::Timestamp)
        .order_by_asc(event::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(scored_event)
        .collect())
}

/// [`events_of`] for many leads in one query, by lead.
async fn events_of_many<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead_ids: &[&str],
) -> Result<HashMap<String, Vec<EventView>>, sea_orm::DbErr> {
    let mut by_lead: HashMap<String, Vec<EventView>> = HashMap::new();
    let rows = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace))
        .filter(event::Column::LeadId.is_in(lead_ids.iter().copied()))
        .order_by_asc(event::Column::Timestamp)
        .order_by_asc(event::Column::Id)
        .all(conn)
        .await?;
    for e in rows {
        let Some(lead) = e.lead_id.clone() else {
            continue;
        };
        if let Some(view) = scored_event(e) {
            by_lead.entry(lead).or_default().push(view);
        }
    }
    Ok(by_lead)
}

/// How many events named `name` the workspace has (`*`: every event but the engine's own),
/// and the most recent `limit` of them as the scorer sees them.
pub async fn recent_events<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    name: &str,
    limit: u64,
) -> Result<(u64, Vec<EventView>), sea_orm::DbErr> {
    let named = |q: sea_orm::Select<event::Entity>| {
        let q = q.filter(event::Column::WorkspaceId.eq(workspace));
        if name == "*" {
            q.filter(event::Column::Name.not_like("lead.%"))
        } else {
            q.filter(event::Column::Name.eq(name))
        }
    };
    let total = named(event::Entity::find()).count(conn).await?;
    let recent = named(event::Entity::find())
        .order_by_desc(event::Column::Timestamp)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(scored_event)
        .collect();
    Ok((total, recent))
}

/// An event as the scorer sees it; `None` for the engine's own `lead.*` events.
fn scored_event(e: event::Model) -> Option<EventView> {
    (!e.name.starts_with("lead.")).then(|| EventView {
        kind: e.name,
        at: e.timestamp.timestamp_millis(),
        properties: e.properties,
    })
}

/// A stored behaviour state (`leads.state`), read in place; an unreadable one is empty.
pub(crate) fn state_of(state: &Value) -> BehaviourState {
    BehaviourState::deserialize(state).unwrap_or_default()
}

/// The `lead.tier_changed` payload when `rating` moves the lead out of its tier or stage.
pub(crate) fn tier_change(
    id: &str,
    tier: Tier,
    stage: Stage,
    rating: &Rating,
    version: i32,
) -> Option<Value> {
    let (to_tier, to_stage) = (rating.tier, rating.stage);
    (tier != to_tier || stage != to_stage).then(|| {
        json!({
            "lead": id,
            "from_tier": tier, "to_tier": to_tier,
            "from_stage": stage, "to_stage": to_stage,
            "score": rating.score,
            "model_version": version,
        })
    })
}

/// Writes a rating into the row; returns the tier change, if any. (The explanation is
/// not stored: it is recomputed when asked for, always in the published model's words.)
/// `scored_at` always moves forward, even within one millisecond: a rescore that read the
/// lead earlier sees that its reading is stale.
fn set_score(row: &mut Lead, rating: &Rating, version: i32, now_ms: i64) -> Option<Value> {
    let change = tier_change(&row.id, row.tier, row.stage, rating, version);
    row.score = rating.score;
    row.tier = rating.tier;
    row.stage = rating.stage;
    row.probability = rating.probability;
    row.model_version = Some(version);
    row.scored_at = now_ms.max(row.scored_at + 1);
    change
}

/// Merges `from` (an anonymous lead) into `into`: identities and events move, attributes
/// are combined (`into` wins), and `from` remembers where it went.
async fn merge<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    from: &str,
    into: &mut Lead,
) -> Result<(), sea_orm::DbErr> {
    let Some(mut old) = select_leads()
        .filter(lead::Column::WorkspaceId.eq(workspace))
        .filter(lead::Column::Id.eq(from))
        .lock_exclusive()
        .into_model::<Lead>()
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    // Its identities and events move, and so do its consent and the contacts made with it:
    // a customer who opted out stays opted out, and the caps keep counting.
    let moving = (workspace, from, into.id.as_str());
    use {consent_revocation as cr, contact as ct, event as ev, lead_identity as li};
    repoint::<li::Entity, _>(conn, li::Column::WorkspaceId, li::Column::LeadId, moving).await?;
    repoint::<ev::Entity, _>(conn, ev::Column::WorkspaceId, ev::Column::LeadId, moving).await?;
    repoint::<cr::Entity, _>(conn, cr::Column::WorkspaceId, cr::Column::LeadId, moving).await?;
    repoint::<ct::Entity, _>(conn, ct::Column::WorkspaceId, ct::Column::LeadId, moving).await?;
    if let (Value::Object(theirs), Value::Object(ours)) = (&old.attributes, &mut into.attributes) {
        for (k, v) in theirs {
            ours.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    into.owner = into.owner.take().or(old.owner.take());
    into.account_id = into.account_id.take().or(old.account_id.take());
    into.last_event_at = into.last_event_at.max(old.last_event_at);
    old.merged_into = Some(into.id.clone());
    old.updated_at = Utc::now();
    // A rescore that read `from` before the merge must not write its score now.
    old.scored_at += 1;
    save(conn, &old).await
}

/// Points the rows of table `E` (its `workspace` and `lead` columns) that belong to lead
/// `from` at lead `into`, in `workspace`.
async fn repoint<E: EntityTrait, C: ConnectionTrait>(
    conn: &C,
    workspace_column: E::Column,
    lead_column: E::Column,
    (workspace, from, into): (&str, &str, &str),
) -> Result<(), sea_orm::DbErr> {
    E::update_many()
        .col_expr(lead_column, SqlExpr::value(into.to_owned()))
        .filter(workspace_column.eq(workspace))
        .filter(lead_column.eq(from))
        .exec(conn)
        .await?;
    Ok(())
}

/// Attributes a just-recorded event to a lead (finding, creating or merging leads by its
/// identities), applies it to the lead's aggregates and rescores the lead with the
/// published model. `None` when the event names no lead and carries no identity. The
/// caller holds the event's identity locks ([`lock_events`]).
#[allow(clippy::too_many_arguments)] // the event's fields, as recorded
async fn attribute<C: ConnectionTrait>(
    conn: &C,
    models: &Models,
    workspace: &str,
    event_id: &str,
    name: &str,
    lead: Option<&str>,
    properties: &Value,
    at_ms: i64,
) -> Result<Option<Attributed>, LeadError> {
    let ids = identities(properties);
    let lead = lead.map(str::trim).filter(|l| !l.is_empty());
    if lead.is_none() && ids.is_empty() {
        return Ok(None);
    }
    let now_ms = Utc::now().timestamp_millis();
    let known: Vec<lead_identity::Model> = if ids.is_empty() {
        Vec::new()
    } else {
        let mut any = Condition::any();
        for (k, v) in &ids {
            any = any.add(
                Condition::all()
                    .add(lead_identity::Column::Kind.eq(*k))
                    .add(lead_identity::Column::Value.eq(v.as_str())),
            );
        }
        lead_identity::Entity::find()
            .filter(lead_identity::Column::WorkspaceId.eq(workspace))
            .filter(any)
            .all(conn)
            .await?
    };
    let found = |kind: &str, value: &str| {
        known
            .iter()
            .find(|k| k.kind == kind && k.value == value)
            .map(|k| k.lead_id.clone())
    };
    let target_id = match lead {
        Some(l) => l.to_owned(),
        None => ids
            .iter()
            .find_map(|(k, v)| found(k, v))
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
    };
    let mut row = find_for_update(conn, workspace, &target_id)
        .await?
        .unwrap_or_else(|| empty_lead(workspace, &target_id, now_ms));
    let previous_state = row.state.clone();

    // Anonymous leads this event ties to the target are merged into it; a lead known by
    // its own user id is never taken over.
    let mut merged = false;
    for (k, v) in &ids {
        let Some(other) = found(k, v) else { continue };
        if other == row.id {
            continue;
        }
        let owns_user_id = lead_identity::Entity::find()
            .filter(lead_identity::Column::WorkspaceId.eq(workspace))
            .filter(lead_identity::Column::LeadId.eq(other.as_str()))
            .filter(lead_identity::Column::Kind.eq("user_id"))
            .one(conn)
            .await?
            .is_some();
        if !owns_user_id {
            merge(conn, workspace, &other, &mut row).await?;
            merged = true;
        }
    }
    let unknown = ids
        .iter()
        .filter(|(k, v)| found(k, v).is_none())
        .map(|(k, v)| identity_row(workspace, k, v, &row.id))
        .collect();
    insert_identities(conn, unknown).await?;
    event::Entity::update_many()
        .col_expr(event::Column::LeadId, SqlExpr::value(row.id.clone()))
        .filter(event::Column::WorkspaceId.eq(workspace))
        .filter(event::Column::Id.eq(event_id))
        .exec(conn)
        .await?;

    if let Some(account) = take_facts(workspace, &mut row, name, properties, at_ms) {
        insert_accounts(conn, vec![account]).await?;
    }

    let mut change = None;
    if !name.starts_with("lead.")
        && let Some((version, model)) = models.published(conn, workspace).await?
    {
        let state = if merged || !covers(&model, &row.state) {
            model.replay(&events_of(conn, workspace, &row.id).await?)
        } else {
            let mut state = state_of(&row.state);
            model.apply(
                &mut state,
                &EventView {
                    kind: name.to_owned(),
                    at: at_ms,
                    properties: properties.clone(),
                },
            );
            state
        };
        let state = tracked(&model, state);
        let rating = model.rate(&row.attributes, &state, now_ms);
        row.state = serde_json::to_value(&state)?;
        change = set_score(&mut row, &rating, version, now_ms);
    } else if merged {
        row.state = previous_state;
    }
    save(conn, &row).await?;
    Ok(Some(Attributed {
        lead_id: row.id,
        change,
        merged,
    }))
}

/// The row tying an identity to a lead.
fn identity_row(
    workspace: &str,
    kind: &str,
    value: &str,
    lead: &str,
) -> lead_identity::ActiveModel {
    lead_identity::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        kind: Set(kind.to_owned()),
        value: Set(value.to_owned()),
        lead_id: Set(lead.to_owned()),
    }
}

/// Identity rows per statement: 4 parameters each.
const IDENTITY_CHUNK: usize = 1_000;

/// Inserts identities that are not known yet (a known one keeps its lead).
async fn insert_identities<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<lead_identity::ActiveModel>,
) -> Result<(), sea_orm::DbErr> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        lead_identity::Entity::insert_many(rows.by_ref().take(IDENTITY_CHUNK))
            .on_conflict(
                OnConflict::columns([
                    lead_identity::Column::WorkspaceId,
                    lead_identity::Column::Kind,
                    lead_identity::Column::Value,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// What an event says about its lead besides its behaviour, written into `row`: traits
/// (what a form or a CRM says about the person; they come with identify calls and with any
/// other event, a whitepaper download's form) kept as attributes; the owner (an identify
/// call's `owner` sets it, any other event's gives one to a lead that has none, as a WeCom
/// customer added by a rep); when it last did something. Gives the account to insert when
/// the lead's company may have changed (an identify call, or traits that changed).
fn take_facts(
    workspace: &str,
    row: &mut Lead,
    name: &str,
    properties: &Value,
    at_ms: i64,
) -> Option<account::ActiveModel> {
    let mut traits_changed = false;
    if let (Some(Value::Object(traits)), Value::Object(attrs)) =
        (properties.get("traits"), &mut row.attributes)
    {
        for (k, v) in traits {
            if attrs.get(k) != Some(v) {
                attrs.insert(k.clone(), v.clone());
                traits_changed = true;
            }
        }
    }
    if let Some(owner) = properties
        .get("owner")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|o| !o.is_empty())
        && (name == "identify" || row.owner.as_deref().is_none_or(str::is_empty))
    {
        row.owner = Some(owner.to_owned());
    }
    row.last_event_at = Some(row.last_event_at.map_or(at_ms, |t| t.max(at_ms)));
    row.updated_at = Utc::now();
    if name == "identify" || traits_changed {
        account_of(workspace, row)
    } else {
        None
    }
}

/// On PostgreSQL, serialises the transactions that resolve the same identities (or name the
/// same leads): a transaction-scoped advisory lock per key, all taken at once in sorted
/// order, so that two transactions recording several events each never wait on each other
/// in a circle. The second then sees the leads the first created instead of creating
/// others. SQLite has one writer, so it needs none.
pub async fn lock_events<'a, C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    events: impl Iterator<Item = (Option<&'a str>, &'a Value)>,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let mut keys = Vec::new();
    for (lead, properties) in events {
        keys.extend(
            identities(properties)
                .iter()
                .map(|(k, v)| identity_key(workspace, k, v)),
        );
        if let Some(l) = lead.map(str::trim).filter(|l| !l.is_empty()) {
            keys.push(identity_key(workspace, "lead", l));
        }
    }
    keys.sort();
    keys.dedup();
    // One statement for the lot, taking them in the order given (the order `keys` has).
    for chunk in keys.chunks(1_000) {
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
             FROM (SELECT k FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS t(k, n) \
             ORDER BY n) AS ordered",
            [serde_json::to_string(chunk)
                .map_err(|e| sea_orm::DbErr::Custom(format!("lock keys: {e}")))?
                .into()],
        ))
        .await?;
    }
    Ok(())
}

/// The advisory-lock key of one identity (or `lead` id).
fn identity_key(workspace: &str, kind: &str, value: &str) -> String {
    format!("{workspace}\u{1f}{kind}\u{1f}{value}")
}

async fn advisory_lock<C: ConnectionTrait>(conn: &C, key: String) -> Result<(), sea_orm::DbErr> {
    conn.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [key.into()],
    ))
    .await?;
    Ok(())
}

/// On PostgreSQL, serialises the transactions about one identity (the same lock the
/// event intake takes for it), so two calls to a customer who is not a lead yet decide
/// one after the other.
pub async fn lock_identity<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    kind: &str,
    value: &str,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    advisory_lock(conn, identity_key(workspace, kind, value)).await
}

/// The state with an (empty) aggregate for every behaviour of `model`, so that
/// [`covers`] tells a state built for this model from one that never saw a behaviour.
fn tracked(model: &CompiledModel, mut state: BehaviourState) -> BehaviourState {
    for k in model.behaviour_keys() {
        state.entry(k.to_owned()).or_default();
    }
    state
}

/// Whether the lead's state tracks every behaviour of `model`.
fn covers(model: &CompiledModel, state: &Value) -> bool {
    let Value::Object(state) = state else {
        return false;
    };
    model.behaviour_keys().all(|k| state.contains_key(k))
}

/// [`covers`] for a state already read.
pub(crate) fn covers_state(model: &CompiledModel, state: &BehaviourState) -> bool {
    model.behaviour_keys().all(|k| state.contains_key(k))
}

/// Rescores the (unmerged) leads among `ids` inside the caller's transaction, rows locked,
/// replaying the events of those whose state lacks one of the model's behaviours: a
/// handful of statements for the lot. Gives their tier changes.
pub(crate) async fn rescore_many<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    ids: &[&str],
    version: i32,
    model: &CompiledModel,
    now_ms: i64,
) -> Result<Vec<Value>, LeadError> {
    let mut rows: Vec<Lead> = select_leads()
        .filter(lead::Column::WorkspaceId.eq(workspace))
        .filter(lead::Column::Id.is_in(ids.iter().copied()))
        .filter(lead::Column::MergedInto.is_null())
        .lock_exclusive()
        .into_model::<Lead>()
        .all(conn)
        .await?;
    let replay: Vec<&str> = rows
        .iter()
        .filter(|r| !covers(model, &r.state))
        .map(|r| r.id.as_str())
        .collect();
    let mut events = if replay.is_empty() {
        HashMap::new()
    } else {
        events_of_many(conn, workspace, &replay).await?
    };
    let mut changes = Vec::new();
    for row in &mut rows {
        let state = if covers(model, &row.state) {
            state_of(&row.state)
        } else {
            let state = tracked(
                model,
                model.replay(&events.remove(&row.id).unwrap_or_default()),
            );
            row.state = serde_json::to_value(&state)?;
            state
        };
        let rating = model.rate(&row.attributes, &state, now_ms);
        changes.extend(set_score(row, &rating, version, now_ms));
        row.updated_at = Utc::now();
    }
    save_all(conn, &rows).await?;
    Ok(changes)
}

/// Rescores one lead with `model` (replaying its events when its state lacks one of the
/// model's behaviours) and saves it; returns the tier change, if any.
pub async fn rescore<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    mut row: Lead,
    version: i32,
    model: &CompiledModel,
    now_ms: i64,
) -> Result<Option<Value>, LeadError> {
    let state = current_state(conn, workspace, &row.id, &row.state, model).await?;
    let rating = model.rate(&row.attributes, &state, now_ms);
    row.state = serde_json::to_value(&state)?;
    let change = set_score(&mut row, &rating, version, now_ms);
    row.updated_at = Utc::now();
    save(conn, &row).await?;
    Ok(change)
}

/// The lead's behaviour state for `model`: the stored one when it tracks every behaviour
/// of the model, else a replay of the lead's events.
async fn current_state<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
    stored: &Value,
    model: &CompiledModel,
) -> Result<BehaviourState, sea_orm::DbErr> {
    Ok(if covers(model, stored) {
        state_of(stored)
    } else {
        tracked(model, model.replay(&events_of(conn, workspace, id).await?))
    })
}

/// The attribute naming a lead's company; leads with the same one share an account.
pub const COMPANY_ATTRIBUTE: &str = "company";

/// Links the lead to the account of its `company` attribute, creating the account (its id
/// derived from the workspace and the name, so concurrent writers agree).
async fn link_account<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    row: &mut Lead,
) -> Result<(), sea_orm::DbErr> {
    let Some(account) = account_of(workspace, row) else {
        return Ok(());
    };
    insert_accounts(conn, vec![account]).await
}

/// Points the lead at the account of its `company` attribute and gives that account's row
/// (to insert unless it exists); `None` when the lead names no company.
fn account_of(workspace: &str, row: &mut Lead) -> Option<account::ActiveModel> {
    use sha2::Digest as _;
    let name = row
        .attributes
        .get(COMPANY_ATTRIBUTE)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 200)?;
    let digest = sha2::Sha256::digest(format!("{workspace}\n{}", name.to_lowercase()).as_bytes());
    let id = format!("acct-{}", hex::encode(&digest[..10]));
    let account = account::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        id: Set(id.clone()),
        name: Set(name.to_owned()),
        attributes: Set(json!({})),
        created_at: Set(Utc::now()),
    };
    row.account_id = Some(id);
    Some(account)
}

/// Inserts accounts that do not exist yet.
async fn insert_accounts<C: ConnectionTrait>(
    conn: &C,
    accounts: Vec<account::ActiveModel>,
) -> Result<(), sea_orm::DbErr> {
    if accounts.is_empty() {
        return Ok(());
    }
    account::Entity::insert_many(accounts)
        .on_conflict(
            OnConflict::columns([account::Column::WorkspaceId, account::Column::Id])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A lead's attributes merged with `patch` (an object; `null` values remove keys).
pub fn patch_attributes(attributes: &mut Value, patch: &Map<String, Value>) {
    if !attributes.is_object() {
        *attributes = json!({});
    }
    if let Value::Object(a) = attributes {
        for (k, v) in patch {
            if v.is_null() {
                a.remove(k);
            } else {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Leads an import has changed but not yet saved, by id: [`upsert`] fills it,
/// [`save_imported`] writes it in a few statements.
pub type Pending = HashMap<String, Lead>;

/// Creates or updates a lead from an import: attributes are patched (`null` removes a key),
/// identities attached, and the lead rescored with the published model. The lead goes into
/// `pending` (where a later row of the same import finds it) until [`save_imported`]. An
/// import is a backfill, so it records no `lead.tier_changed` events. Returns whether it
/// was created.
#[allow(clippy::too_many_arguments)] // the import row's fields, and where it goes
pub async fn upsert<C: ConnectionTrait>(
    conn: &C,
    published: Option<&(i32, Arc<CompiledModel>)>,
    workspace: &str,
    id: &str,
    attributes: &Map<String, Value>,
    owner: Option<&str>,
    identities: &[(String, String)],
    pending: &mut Pending,
) -> Result<bool, LeadError> {
    let now_ms = Utc::now().timestamp_millis();
    let existing = match pending.remove(id) {
        Some(row) => Some(row),
        None => find_for_update(conn, workspace, id)
            .await?
            .map(|row| pending.remove(&row.id).unwrap_or(row)),
    };
    let created = existing.is_none();
    let mut row = existing.unwrap_or_else(|| empty_lead(workspace, id, now_ms));
    patch_attributes(&mut row.attributes, attributes);
    link_account(conn, workspace, &mut row).await?;
    if let Some(o) = owner {
        row.owner = Some(o.to_owned());
    }
    row.updated_at = Utc::now();
    for (kind, value) in identities {
        lead_identity::Entity::insert(lead_identity::ActiveModel {
            workspace_id: Set(workspace.to_owned()),
            kind: Set(kind.clone()),
            value: Set(value.clone()),
            lead_id: Set(row.id.clone()),
        })
        .on_conflict(
            OnConflict::columns([
                lead_identity::Column::WorkspaceId,
                lead_identity::Column::Kind,
                lead_identity::Column::Value,
            ])
            .update_column(lead_identity::Column::LeadId)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    if let Some((version, model)) = published {
        let state = current_state(conn, workspace, &row.id, &row.state, model).await?;
        let rating = model.rate(&row.attributes, &state, now_ms);
        row.state = serde_json::to_value(&state)?;
        set_score(&mut row, &rating, *version, now_ms);
    }
    pending.insert(row.id.clone(), row);
    Ok(created)
}

/// Saves the leads an import changed (see [`upsert`]).
pub async fn save_imported<C: ConnectionTrait>(
    conn: &C,
    pending: Pending,
) -> Result<(), sea_orm::DbErr> {
    let mut rows: Vec<Lead> = pending.into_values().collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    save_all(conn, &rows).await
}

/// Every (unmerged) lead of a workspace, in id order.
pub async fn all<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<Vec<Lead>, sea_orm::DbErr> {
    select_leads()
        .filter(lead::Column::WorkspaceId.eq(workspace))
        .filter(lead::Column::MergedInto.is_null())
        .order_by_asc(lead::Column::Id)
        .into_model::<Lead>()
        .all(conn)
        .await
}

/// How far back the signals and events next-best-action rules see go.
const NBA_DAYS: i64 = 30;

/// The workspace's next-best-action rules (the built-in ones until it saves its own).
pub async fn nba_rules<C: ConnectionTrait>(conn: &C, workspace: &str) -> Result<Rules, LeadError> {
    match workspace_doc::Entity::find_by_id((workspace.to_owned(), crate::docs::DocKind::NbaRules))
        .one(conn)
        .await?
    {
        Some(d) => serde_json::from_str(&d.doc).map_err(|e| LeadError::Corrupt {
            what: "next-best-action rules",
            reason: e.to_string(),
        }),
        None => Ok(Rules::builtin()),
    }
}

/// What next-best-action rules see about a lead: its attributes (with `id`, `owner`), its
/// score, and its signals and events (from [`events_of`]) of the last 30 days.
pub fn facts(row: &Lead, events: &[EventView], score: Value, now_ms: i64) -> Facts {
    let since = now_ms - NBA_DAYS * 86_400_000;
    let mut signals = Vec::new();
    let mut recent = Vec::new();
    for e in events.iter().filter(|e| e.at >= since) {
        if e.kind == "signal.detected"
            && let Some(list) = e.properties.get("signals").and_then(Value::as_array)
        {
            signals.extend(list.iter().cloned());
        }
        recent.push(json!({ "name": e.kind, "properties": e.properties, "at": e.at }));
    }
    let mut lead = row.attributes.clone();
    if let Value::Object(map) = &mut lead {
        map.insert("id".into(), json!(row.id));
        map.insert("owner".into(), json!(row.owner));
    }
    Facts {
        lead,
        score,
        signals,
        events: recent,
    }
}

/// What the lead said that the detector read (`signal.detected` of the last 30 days, the
/// newest first, at most `limit`), each with its signals and the latest correction of its
/// text (`signal.labelled`), for the lead card.
pub fn utterances(events: &[EventView], now_ms: i64, limit: usize) -> Vec<Value> {
    let since = now_ms - NBA_DAYS * 86_400_000;
    let mut labels: HashMap<&str, &Value> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == "signal.labelled") {
        if let Some(text) = e.properties["text"].as_str() {
            labels.insert(text, &e.properties);
        }
    }
    events
        .iter()
        .rev()
        .filter(|e| e.at >= since && e.kind == "signal.detected")
        .filter_map(|e| {
            let text = e.properties["text"].as_str()?;
            Some(json!({
                "text": text,
                "at": e.at,
                "signals": e.properties["signals"],
                "label": labels.get(text.trim()).copied(),
            }))
        })
        .take(limit)
        .collect()
}

/// The score fields rules see, from a lead's stored score.
pub fn score_facts(row: &Lead) -> Value {
    json!({ "score": row.score, "tier": row.tier, "stage": row.stage, "probability": row.probability })
}

/// A lead's events named in `names` after `since_ms`, as behaviour conditions read them.
pub async fn history<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead_id: &str,
    names: &[&str],
    since_ms: i64,
) -> Result<Vec<trellis_model::behaviour::Happened>, sea_orm::DbErr> {
    let since = chrono::DateTime::from_timestamp_millis(since_ms).unwrap_or_default();
    Ok(event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace))
        .filter(event::Column::LeadId.eq(lead_id))
        .filter(event::Column::Name.is_in(names.iter().copied()))
        .filter(event::Column::Timestamp.gt(since))
        .order_by_asc(event::Column::Timestamp)
        .all(conn)
        .await?
        .into_iter()
        .map(|e| trellis_model::behaviour::Happened {
            at_ms: e.timestamp.timestamp_millis(),
            id: e.id,
            name: e.name,
            properties: e.properties,
        })
        .collect())
}

/// Whether no flow may start for the lead at `now_ms`.
pub fn is_suppressed(lead: &Lead, now_ms: i64) -> bool {
    lead.suppressed_until.is_some_and(|until| until > now_ms)
}
