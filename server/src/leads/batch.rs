//! Recording and attributing a chunk of new events at once: the identities and leads the
//! chunk names are read in one statement each, the events are folded into their leads in
//! memory, one after the other, exactly as [`attribute`](super::attribute) would, and what
//! changed is written in a handful of statements, each event inserted once with its lead. An
//! event that needs more (it ties two leads together, names a lead that is not stored yet
//! or was merged away, or meets a lead whose state must be replayed under a new model) ends
//! the in-memory run: what came before it is written, it takes the one-by-one path, and the
//! rest of the chunk is read again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use trellis_model::scoring::{BehaviourState, CompiledModel, EventView};

use super::{
    Attributed, Lead, LeadError, Models, attribute, covers, empty_lead, identities, identity_row,
    insert_accounts, insert_identities, save_all, select_leads, set_score, state_of, take_facts,
    tracked,
};
use crate::db::entities::{account, lead, lead_identity};
use crate::db::event_rows::{self, EventRow};

/// What recording one event of the chunk did.
#[derive(Debug)]
pub enum Landed {
    /// Recorded meanwhile by another delivery (it names no lead, so nothing was
    /// attributed): nothing done.
    Duplicate,
    /// Recorded, and attributed when it names a lead or carries an identity.
    New(Option<Attributed>),
}

/// Values per `IN (…)` list: well under SQLite's parameter limit.
const IN_CHUNK: usize = 500;

/// Records `rows` (events whose ids were not stored when the caller looked, each id once)
/// and attributes them in order (see the module's description). The caller holds their
/// identity locks ([`super::lock_events`]). An event that names a lead and is found stored
/// meanwhile is an error: the caller's transaction must not commit.
pub async fn record_all<C: ConnectionTrait>(
    conn: &C,
    models: &Models,
    workspace: &str,
    rows: &[&EventRow],
    received: DateTime<Utc>,
) -> Result<Vec<Landed>, LeadError> {
    let published = models.published(conn, workspace).await?;
    let published = published.as_ref().map(|(v, m)| (*v, m.as_ref()));
    let mut out = Vec::with_capacity(rows.len());
    while out.len() < rows.len() {
        let rest = &rows[out.len()..];
        let now_ms = Utc::now().timestamp_millis();
        let mut batch = Batch::read(conn, workspace, rest).await?;
        let mut done = Vec::new();
        for row in rest {
            match batch.apply(row, published, now_ms) {
                Some(attributed) => done.push(attributed),
                None => break,
            }
        }
        let applied = &rest[..done.len()];
        let lost = batch.write(conn, received).await?;
        out.extend(applied.iter().zip(done).map(|(row, attributed)| {
            if lost.contains(&row.id) {
                Landed::Duplicate
            } else {
                Landed::New(attributed)
            }
        }));
        if let Some(row) = rows.get(out.len()) {
            let inserted = event_rows::insert(conn, workspace, &[(row, None)], received).await?;
            if !inserted.contains(&row.id) {
                return Err(raced(&row.id));
            }
            out.push(Landed::New(
                attribute(
                    conn,
                    models,
                    workspace,
                    &row.id,
                    &row.name,
                    row.lead.as_deref(),
                    &row.properties,
                    row.timestamp.timestamp_millis(),
                )
                .await?,
            ));
        }
    }
    Ok(out)
}

/// An event that was to be attributed was recorded by another transaction meanwhile (on
/// PostgreSQL the identity locks make this one that names no identity the caller took).
fn raced(id: &str) -> LeadError {
    tracing::warn!(event = %format!("{id:.200}"), "an event was recorded twice at once; its delivery is refused");
    LeadError::Db(sea_orm::DbErr::RecordNotInserted)
}

/// The identities and leads a run of events touches, as read and as changed.
struct Batch<'r> {
    workspace: String,
    /// (kind, value) → lead id.
    identities: HashMap<(String, String), String>,
    /// Leads by id: `None` when read and not stored.
    rows: HashMap<String, Option<Lead>>,
    /// Behaviour states decoded (and changed) here, by lead.
    states: HashMap<String, BehaviourState>,
    /// Leads to save, in id order.
    changed: BTreeSet<String>,
    new_identities: Vec<lead_identity::ActiveModel>,
    accounts: BTreeMap<String, account::ActiveModel>,
    /// The events applied here, in order, with the lead each was attributed to.
    events: Vec<(&'r EventRow, Option<String>)>,
}

impl<'r> Batch<'r> {
    /// Reads the identities the arrivals carry and the leads they and their named leads
    /// point to (rows locked on PostgreSQL).
    async fn read<C: ConnectionTrait>(
        conn: &C,
        workspace: &str,
        arrivals: &[&EventRow],
    ) -> Result<Batch<'r>, LeadError> {
        // By kind, so that each list is looked up in the (workspace, kind, value) key.
        let mut by_kind: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for a in arrivals {
            for (kind, value) in identities(&a.properties) {
                by_kind.entry(kind).or_default().insert(value);
            }
        }
        let mut known = HashMap::new();
        for (kind, values) in &by_kind {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            for chunk in values.chunks(IN_CHUNK) {
                for row in lead_identity::Entity::find()
                    .filter(lead_identity::Column::WorkspaceId.eq(workspace))
                    .filter(lead_identity::Column::Kind.eq(*kind))
                    .filter(lead_identity::Column::Value.is_in(chunk.iter().copied()))
                    .all(conn)
                    .await?
                {
                    known.insert((row.kind, row.value), row.lead_id);
                }
            }
        }
        let mut ids: Vec<&str> = arrivals
            .iter()
            .filter_map(|a| a.lead.as_deref().map(str::trim).filter(|l| !l.is_empty()))
            .chain(known.values().map(String::as_str))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut rows: HashMap<String, Option<Lead>> =
            ids.iter().map(|id| ((*id).to_owned(), None)).collect();
        for chunk in ids.chunks(IN_CHUNK) {
            for row in select_leads()
                .filter(lead::Column::WorkspaceId.eq(workspace))
                .filter(lead::Column::Id.is_in(chunk.iter().copied()))
                .order_by_asc(lead::Column::Id)
                .lock_exclusive()
                .into_model::<Lead>()
                .all(conn)
                .await?
            {
                rows.insert(row.id.clone(), Some(row));
            }
        }
        Ok(Batch {
            workspace: workspace.to_owned(),
            identities: known,
            rows,
            states: HashMap::new(),
            changed: BTreeSet::new(),
            new_identities: Vec::new(),
            accounts: BTreeMap::new(),
            events: Vec::new(),
        })
    }

    /// Folds one event into its lead; `None` (and nothing changed) when the event needs the
    /// one-by-one path.
    fn apply(
        &mut self,
        a: &'r EventRow,
        published: Option<(i32, &CompiledModel)>,
        now_ms: i64,
    ) -> Option<Option<Attributed>> {
        let ids = identities(&a.properties);
        let named = a.lead.as_deref().map(str::trim).filter(|l| !l.is_empty());
        if named.is_none() && ids.is_empty() {
            self.events.push((a, None));
            return Some(None);
        }
        let found: Vec<Option<&String>> = ids
            .iter()
            .map(|(k, v)| self.identities.get(&((*k).to_owned(), v.clone())))
            .collect();
        let target = match named {
            Some(l) => l.to_owned(),
            None => found
                .iter()
                .flatten()
                .next()
                .map(|l| (*l).clone())
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        };
        // Two leads tied together: a merge.
        if found.iter().flatten().any(|l| **l != target) {
            return None;
        }
        let scored = published.filter(|_| !a.name.starts_with("lead."));
        match self.rows.get(&target) {
            // Merged away, or not stored although named: the one-by-one path follows the
            // merge or replays what the lead already has.
            Some(Some(row)) if row.merged_into.is_some() => return None,
            Some(None) => return None,
            Some(Some(row)) => {
                if let Some((_, model)) = scored
                    && !self.states.contains_key(&target)
                    && !covers(model, &row.state)
                {
                    return None;
                }
            }
            None => {
                let row = empty_lead(&self.workspace, &target, now_ms);
                self.rows.insert(target.clone(), Some(row));
            }
        }
        let Some(Some(row)) = self.rows.get_mut(&target) else {
            return None;
        };
        let unknown: Vec<(String, String)> = ids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|((k, v), _)| ((*k).to_owned(), v.clone()))
            .collect();
        for (k, v) in unknown {
            self.new_identities
                .push(identity_row(&self.workspace, &k, &v, &target));
            self.identities.insert((k, v), target.clone());
        }
        self.events.push((a, Some(target.clone())));
        let at_ms = a.timestamp.timestamp_millis();
        if let Some(account) = take_facts(&self.workspace, row, &a.name, &a.properties, at_ms)
            && let sea_orm::ActiveValue::Set(id) = &account.id
        {
            self.accounts.insert(id.clone(), account);
        }

        let mut change = None;
        if let Some((version, model)) = scored {
            let state = self
                .states
                .entry(target.clone())
                .or_insert_with(|| state_of(&row.state));
            model.apply(
                state,
                &EventView {
                    kind: a.name.clone(),
                    at: at_ms,
                    properties: a.properties.clone(),
                },
            );
            *state = tracked(model, std::mem::take(state));
            let rating = model.rate(&row.attributes, state, now_ms);
            change = set_score(row, &rating, version, now_ms);
        }
        self.changed.insert(target.clone());
        Some(Some(Attributed {
            lead_id: target,
            change,
            merged: false,
        }))
    }

    /// Writes what the run changed: its events (each with its lead), new identities and
    /// accounts, the leads with their scores. Gives the events found stored meanwhile
    /// (only ones that name no lead can be: see [`record_all`]).
    async fn write<C: ConnectionTrait>(
        self,
        conn: &C,
        received: DateTime<Utc>,
    ) -> Result<HashSet<String>, LeadError> {
        let events: Vec<(&EventRow, Option<&str>)> = self
            .events
            .iter()
            .map(|(row, lead)| (*row, lead.as_deref()))
            .collect();
        let inserted = event_rows::insert(conn, &self.workspace, &events, received).await?;
        let mut lost = HashSet::new();
        for (row, lead) in &events {
            if !inserted.contains(&row.id) {
                if lead.is_some() {
                    return Err(raced(&row.id));
                }
                lost.insert(row.id.clone());
            }
        }
        insert_identities(conn, self.new_identities).await?;
        insert_accounts(conn, self.accounts.into_values().collect()).await?;
        let mut rows = Vec::with_capacity(self.changed.len());
        let (mut leads, mut states) = (self.rows, self.states);
        for id in self.changed {
            let Some(Some(mut row)) = leads.remove(&id) else {
                continue;
            };
            if let Some(state) = states.remove(&id) {
                row.state = serde_json::to_value(&state)?;
            }
            rows.push(row);
        }
        save_all(conn, &rows).await?;
        Ok(lost)
    }
}
