//! Trigger routes: which published flows a webhook path, an event name or a schedule
//! starts, read from `flow_triggers` (written when a version is published), with a short
//! cache for the hot webhook path.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use trellis_model::node_types::TriggerKind;

use crate::db::entities::{flow, flow_trigger};

/// How long a cached trigger route is trusted. A publish in this process clears the cache
/// at once; one in another process sharing the database is seen within this time.
pub const ROUTE_TTL: Duration = Duration::from_secs(1);

/// How many keys the cache holds at most.
const MAX_CACHED: usize = 10_000;

/// A published flow version a trigger starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub workspace: String,
    pub flow_id: String,
    pub version: i32,
}

/// (workspace, trigger kind, key or any) → when looked up, and the routes.
type RouteCache = HashMap<(String, TriggerKind, Option<String>), (Instant, Vec<Route>)>;

/// The trigger-route cache.
#[derive(Debug)]
pub struct Routes {
    db: DatabaseConnection,
    cache: RwLock<RouteCache>,
    /// Moved by every [`Routes::clear`]: a lookup that read the table before a clear does
    /// not put what it read back into the cache after it.
    generation: AtomicU64,
}

impl Routes {
    pub fn new(db: DatabaseConnection) -> Routes {
        Routes {
            db,
            cache: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// [`triggered`] through the cache.
    pub async fn cached(
        &self,
        workspace: &str,
        kind: TriggerKind,
        key: &str,
    ) -> Result<Vec<Route>, sea_orm::DbErr> {
        self.cached_on(&self.db, workspace, kind, Some(key)).await
    }

    /// [`triggered`] through the cache, read on `conn` when not cached (inside a caller's
    /// transaction: SQLite has one connection). `key` `None` is any key.
    pub async fn cached_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        kind: TriggerKind,
        key: Option<&str>,
    ) -> Result<Vec<Route>, sea_orm::DbErr> {
        let cache_key = (workspace.to_owned(), kind, key.map(str::to_owned));
        if let Some((at, flows)) = self
            .cache
            .read()
            .ok()
            .and_then(|m| m.get(&cache_key).cloned())
            && at.elapsed() < ROUTE_TTL
        {
            return Ok(flows);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let flows = triggered(conn, Some(workspace), kind, key).await?;
        if let Ok(mut m) = self.cache.write()
            && self.generation.load(Ordering::Acquire) == generation
        {
            // Keys come from callers (hook paths, event names): the cache stays bounded.
            if m.len() >= MAX_CACHED {
                m.retain(|_, (at, _)| at.elapsed() < ROUTE_TTL);
                if m.len() >= MAX_CACHED {
                    m.clear();
                }
            }
            m.insert(cache_key, (Instant::now(), flows.clone()));
        }
        Ok(flows)
    }

    /// Forgets cached routes (after a publish, rollback or delete).
    pub fn clear(&self) {
        if let Ok(mut m) = self.cache.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            m.clear();
        }
    }
}

/// Published, not deleted flows whose trigger is `kind`, in `workspace` (any when `None`)
/// with `key` (any when `None`).
pub async fn triggered<C: ConnectionTrait>(
    conn: &C,
    workspace: Option<&str>,
    kind: TriggerKind,
    key: Option<&str>,
) -> Result<Vec<Route>, sea_orm::DbErr> {
    let mut query =
        flow_trigger::Entity::find().filter(flow_trigger::Column::Kind.eq(kind.as_str()));
    if let Some(ws) = workspace {
        query = query.filter(flow_trigger::Column::WorkspaceId.eq(ws));
    }
    if let Some(key) = key {
        query = query.filter(flow_trigger::Column::Key.eq(key));
    }
    let mut out = Vec::new();
    for t in query.all(conn).await? {
        if let Some(f) = flow::Entity::find_by_id(t.flow_id.clone())
            .one(conn)
            .await?
            && f.deleted_at.is_none()
            && let Some(version) = f.published_version
        {
            out.push(Route {
                workspace: f.workspace_id,
                flow_id: f.id,
                version,
            });
        }
    }
    Ok(out)
}
