//! The events table's rows as the intake writes them: each row once, with its lead when
//! that is known, and only when its id is not stored yet.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait,
};
use serde_json::Value;

use super::entities::event;

/// An event as stored.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub id: String,
    pub name: String,
    /// The lead the sender named.
    pub lead: Option<String>,
    /// The lead it is attributed to, when already known.
    pub lead_id: Option<String>,
    pub properties: Value,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

/// Rows (or ids) per statement: 8 parameters a row, well under SQLite's limit.
const CHUNK: usize = 1_000;

/// Which of `ids` are stored in `workspace`.
pub async fn stored<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    ids: &[&str],
) -> Result<HashSet<String>, sea_orm::DbErr> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<String> = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .filter(event::Column::WorkspaceId.eq(workspace))
            .filter(event::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(conn)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Inserts `rows` (each with the lead given beside it, else its own `lead_id`) unless their
/// ids are stored already; gives the ids it inserted.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    rows: &[(&EventRow, Option<&str>)],
    received: DateTime<Utc>,
) -> Result<HashSet<String>, sea_orm::DbErr> {
    let mut inserted = HashSet::new();
    for chunk in rows.chunks(CHUNK) {
        let mut insert =
            event::Entity::insert_many(chunk.iter().map(|(r, lead)| event::ActiveModel {
                workspace_id: Set(workspace.to_owned()),
                id: Set(r.id.clone()),
                name: Set(r.name.clone()),
                lead: Set(r.lead.clone()),
                properties: Set(r.properties.clone()),
                timestamp: Set(r.timestamp),
                received_at: Set(received),
                lead_id: Set(lead.map(str::to_owned).or_else(|| r.lead_id.clone())),
            }))
            .on_conflict(
                OnConflict::columns([event::Column::WorkspaceId, event::Column::Id])
                    .do_nothing()
                    .to_owned(),
            )
            .into_query();
        insert.returning_col(event::Column::Id);
        for row in conn.query_all(&insert).await? {
            inserted.insert(row.try_get::<String>("", "id")?);
        }
    }
    Ok(inserted)
}
