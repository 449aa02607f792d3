//! Per-workspace documents kept in `workspace_docs` (the signal lexicon, URL categories,
//! the contact policy; their versions are in the document store, `docs`): each workspace's compiled form, cached. A workspace without its
//! own document gets the built-in one. The stored row's `updated_at` is looked at most
//! once per [`RECHECK`] (a save in this process forgets the entry at once), so a hot path
//! such as the event intake pays no query per call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait};

use crate::db::entities::doc_version::DocKind;
use crate::db::entities::workspace_doc;

/// How long a cached entry is trusted before its stamp is read again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// When the workspace's document was saved (`None`: the built-in one).
type Stamp = Option<chrono::DateTime<Utc>>;

/// Per workspace: when the entry was checked, the stamp it was compiled from, the document.
type Entries<T> = HashMap<String, (Instant, Stamp, Arc<T>)>;

/// A cache of one kind of document, compiled.
pub struct CompiledDocs<T> {
    kind: DocKind,
    builtin: fn() -> anyhow::Result<T>,
    compile: fn(&str) -> anyhow::Result<T>,
    cache: RwLock<Entries<T>>,
}

impl<T> std::fmt::Debug for CompiledDocs<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledDocs")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> CompiledDocs<T> {
    /// Documents of `kind` (one of [`DocKind::WORKSPACE`]), compiled from their stored JSON
    /// text.
    pub fn new(
        kind: DocKind,
        builtin: fn() -> anyhow::Result<T>,
        compile: fn(&str) -> anyhow::Result<T>,
    ) -> Self {
        CompiledDocs {
            kind,
            builtin,
            compile,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The workspace's compiled document.
    pub async fn get<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
    ) -> anyhow::Result<Arc<T>> {
        let cached = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(workspace).cloned());
        if let Some((at, _, doc)) = &cached
            && at.elapsed() < RECHECK
        {
            return Ok(doc.clone());
        }
        let row = workspace_doc::Entity::find_by_id((workspace.to_owned(), self.kind))
            .one(conn)
            .await?;
        let stamp = row.as_ref().map(|d| d.updated_at);
        let doc = match cached {
            Some((_, s, doc)) if s == stamp => doc,
            _ => Arc::new(match &row {
                None => (self.builtin)()?,
                Some(d) => (self.compile)(&d.doc)?,
            }),
        };
        if let Ok(mut c) = self.cache.write() {
            c.insert(workspace.to_owned(), (Instant::now(), stamp, doc.clone()));
        }
        Ok(doc)
    }

    /// Forgets the workspace's entry (after it saved a new document).
    pub fn forget(&self, workspace: &str) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(workspace);
        }
    }
}
