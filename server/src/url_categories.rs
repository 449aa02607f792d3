//! URL categories: each workspace's rules (`workspace_docs`, kind `url_categories`; the
//! built-in ones until it saves its own), compiled and cached for the event intake, which
//! gives a category to every event that carries a page (`url` or `path`) and none of its
//! own; and the pages recently seen, for the studio's rules page.

use anyhow::Context as _;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};
use trellis_model::url_categories::{Categoriser, UrlCategories};

use crate::db::entities::doc_version::DocKind;
use crate::db::entities::event;
use crate::workspace_docs::CompiledDocs;

/// How many recent pages the rules page shows.
pub const RECENT_PAGES: usize = 100;
/// How many recent events are looked through for them.
const RECENT_SCAN: u64 = 2_000;

pub type Categorisers = CompiledDocs<Categoriser>;

/// The compiled rules' cache.
pub fn categorisers() -> Categorisers {
    CompiledDocs::new(
        DocKind::UrlCategories,
        || Ok(Categoriser::builtin()),
        |text| {
            let doc: UrlCategories = serde_json::from_str(text).context("stored URL categories")?;
            doc.compile().map_err(|problems| {
                anyhow::anyhow!("stored URL categories: {} problem(s)", problems.len())
            })
        },
    )
}

/// Gives `properties` (an event's) the category of its page, with the rule that said so
/// (`category_rule`), when it carries a page and no category of its own.
pub fn categorise(rules: &Categoriser, properties: &mut Value) {
    if properties.get("category").is_some_and(|c| !c.is_null()) {
        return;
    }
    if let Some(found) = rules.of_properties(properties)
        && let Some(map) = properties.as_object_mut()
    {
        map.insert("category".into(), json!(found.category));
        map.insert("category_rule".into(), json!(found.rule));
    }
}

/// The latest pages events carried (newest first, at most [`RECENT_PAGES`]): the event,
/// its page and the category it was given, with the rule.
pub async fn recent_pages<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<Vec<Value>, sea_orm::DbErr> {
    let rows = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace))
        .order_by_desc(event::Column::Timestamp)
        .limit(RECENT_SCAN)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|e| {
            let p = &e.properties;
            let has_page = ["url", "path"]
                .iter()
                .any(|k| p.get(*k).is_some_and(Value::is_string));
            has_page.then(|| {
                json!({
                    "event": e.id, "name": e.name, "at": e.timestamp,
                    "url": p.get("url"), "path": p.get("path"), "title": p.get("title"),
                    "category": p.get("category"), "rule": p.get("category_rule"),
                })
            })
        })
        .take(RECENT_PAGES)
        .collect())
}
