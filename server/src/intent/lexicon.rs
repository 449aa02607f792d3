//! The signal lexicon of each workspace, compiled into a detector and cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait};
use trellis_model::signals::{Detector, Lexicon};

use crate::db::entities::workspace_doc;

/// Purchase-signal detectors per workspace: the workspace's own lexicon when it has saved
/// one, otherwise the built-in one. Rebuilt when the lexicon's `updated_at` moves.
#[derive(Debug, Default)]
pub struct Detectors {
    cache: RwLock<HashMap<String, (LexiconStamp, Arc<Detector>)>>,
}

/// When the workspace's lexicon was saved (`None`: it uses the built-in one).
type LexiconStamp = Option<chrono::DateTime<Utc>>;

/// `workspace_docs.kind` of a workspace's signal lexicon.
pub const LEXICON_DOC: &str = "signal_lexicon";

impl Detectors {
    pub async fn get<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
    ) -> anyhow::Result<Arc<Detector>> {
        let doc = workspace_doc::Entity::find_by_id((workspace.to_owned(), LEXICON_DOC.to_owned()))
            .one(conn)
            .await?;
        let stamp = doc.as_ref().map(|d| d.updated_at);
        if let Some((s, d)) = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(workspace).cloned())
            && s == stamp
        {
            return Ok(d);
        }
        let detector = Arc::new(match &doc {
            None => Detector::builtin(),
            Some(d) => {
                let lexicon: Lexicon =
                    serde_json::from_str(&d.doc).context("stored signal lexicon")?;
                Detector::new(lexicon).map_err(|e| anyhow::anyhow!("stored lexicon: {e}"))?
            }
        });
        if let Ok(mut c) = self.cache.write() {
            c.insert(workspace.to_owned(), (stamp, detector.clone()));
        }
        Ok(detector)
    }
}
