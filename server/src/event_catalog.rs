//! The workspace's event catalog, for the studio's data picker: which events arrive (and how
//! many), which properties each carries (paths, JSON types, a few sample values), and which
//! attributes leads carry. Read from the data itself: every event name with its count, the
//! properties of its most recent events, the attributes of the most recently changed leads.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr as SqlExpr, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::Value;

use crate::db::entities::{event, lead};

/// Events of each name whose properties are read.
const EVENTS_PER_NAME: u64 = 200;
/// Leads whose attributes are read.
const LEADS_READ: u64 = 500;
/// Distinct sample values kept per field.
const SAMPLES: usize = 5;
/// How deep nested objects are followed (`a.b.c`).
const MAX_DEPTH: usize = 3;
/// Event names listed (the most frequent).
const MAX_EVENTS: usize = 200;

/// One field: its path under the object it belongs to, the JSON types seen, in how many of
/// the records read it appeared, and a few distinct values.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FieldInfo {
    pub path: String,
    pub types: BTreeSet<&'static str>,
    pub seen: u64,
    pub samples: Vec<Value>,
}

/// One event name.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventInfo {
    pub name: String,
    /// Events of this name in the workspace.
    pub count: i64,
    pub last_at: Option<DateTime<Utc>>,
    /// Of the most recent ones (`read` of them).
    pub read: u64,
    pub properties: Vec<FieldInfo>,
}

/// The catalog.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventCatalog {
    pub events: Vec<EventInfo>,
    /// Lead attributes, of the `leads_read` most recently changed leads.
    pub lead_attributes: Vec<FieldInfo>,
    pub leads_read: u64,
}

/// Gathers fields from JSON objects.
#[derive(Default)]
struct Fields {
    by_path: BTreeMap<String, FieldInfo>,
}

impl Fields {
    fn add(&mut self, value: &Value) {
        let mut seen = BTreeSet::new();
        self.walk(value, String::new(), 0, &mut seen);
    }

    fn walk(&mut self, value: &Value, prefix: String, depth: usize, seen: &mut BTreeSet<String>) {
        let Value::Object(map) = value else {
            return;
        };
        for (key, v) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if let (Value::Object(_), true) = (v, depth + 1 < MAX_DEPTH) {
                self.walk(v, path, depth + 1, seen);
                continue;
            }
            let info = self
                .by_path
                .entry(path.clone())
                .or_insert_with(|| FieldInfo {
                    path: path.clone(),
                    ..FieldInfo::default()
                });
            info.types.insert(type_name(v));
            if seen.insert(path) {
                info.seen += 1;
            }
            let sample = match v {
                Value::String(s) => Some(Value::String(s.chars().take(80).collect())),
                Value::Number(_) | Value::Bool(_) => Some(v.clone()),
                _ => None,
            };
            if let Some(sample) = sample
                && info.samples.len() < SAMPLES
                && !info.samples.contains(&sample)
            {
                info.samples.push(sample);
            }
        }
    }

    fn into_list(self) -> Vec<FieldInfo> {
        let mut list: Vec<FieldInfo> = self.by_path.into_values().collect();
        list.sort_by(|a, b| b.seen.cmp(&a.seen).then_with(|| a.path.cmp(&b.path)));
        list
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The workspace's catalog.
pub async fn event_catalog<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<EventCatalog, sea_orm::DbErr> {
    let mut names: Vec<(String, i64, Option<DateTime<Utc>>)> = event::Entity::find()
        .select_only()
        .column(event::Column::Name)
        .column_as(
            SqlExpr::expr(Func::count(SqlExpr::col(event::Column::Id))),
            "count",
        )
        .column_as(
            SqlExpr::expr(Func::max(SqlExpr::col(event::Column::ReceivedAt))),
            "last_at",
        )
        .filter(event::Column::WorkspaceId.eq(workspace))
        .group_by(event::Column::Name)
        .into_tuple()
        .all(conn)
        .await?;
    // The most frequent first.
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    names.truncate(MAX_EVENTS);
    let mut events = Vec::with_capacity(names.len());
    for (name, count, last_at) in names {
        let recent: Vec<Value> = event::Entity::find()
            .select_only()
            .column(event::Column::Properties)
            .filter(event::Column::WorkspaceId.eq(workspace))
            .filter(event::Column::Name.eq(name.as_str()))
            .order_by_desc(event::Column::ReceivedAt)
            .limit(EVENTS_PER_NAME)
            .into_tuple()
            .all(conn)
            .await?;
        let mut fields = Fields::default();
        for properties in &recent {
            fields.add(properties);
        }
        events.push(EventInfo {
            name,
            count,
            last_at,
            read: recent.len() as u64,
            properties: fields.into_list(),
        });
    }
    let attributes: Vec<Value> = lead::Entity::find()
        .select_only()
        .column(lead::Column::Attributes)
        .filter(lead::Column::WorkspaceId.eq(workspace))
        .filter(lead::Column::MergedInto.is_null())
        .order_by_desc(lead::Column::UpdatedAt)
        .limit(LEADS_READ)
        .into_tuple()
        .all(conn)
        .await?;
    let mut fields = Fields::default();
    for a in &attributes {
        fields.add(a);
    }
    Ok(EventCatalog {
        events,
        lead_attributes: fields.into_list(),
        leads_read: attributes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_paths_with_types_counts_and_a_few_samples() {
        let mut fields = Fields::default();
        for (i, category) in ["pricing", "competitor_comparison", "pricing"]
            .iter()
            .enumerate()
        {
            fields.add(&json!({
                "category": category, "seconds": i * 30,
                "page": {"url": format!("/p/{i}"), "utm": {"source": "wechat", "deep": {"x": 1}}}
            }));
        }
        fields.add(&json!({"seconds": "long"}));
        let list = fields.into_list();
        let by = |p: &str| list.iter().find(|f| f.path == p).expect(p).clone();
        assert_eq!(by("seconds").seen, 4);
        assert_eq!(by("seconds").types, BTreeSet::from(["number", "string"]));
        assert_eq!(
            by("category").samples,
            vec![json!("pricing"), json!("competitor_comparison")]
        );
        assert_eq!(by("page.url").seen, 3);
        // Three levels deep at most: what is deeper is one object-valued field.
        assert_eq!(by("page.utm.deep").types, BTreeSet::from(["object"]));
        assert!(list.iter().all(|f| f.path != "page.utm.deep.x"));
        assert_eq!(list[0].path, "seconds", "most seen first");
    }
}
