//! The intent engine's server side: the `trellis.intent@1` call host (the `score`,
//! `detect_signals` and `next_best_action` nodes), the signal-lexicon cache, and the
//! rescore pipeline that runs when a scoring model is published. Scoring one lead inside
//! an event's transaction lives in [`crate::leads`]; events go through
//! [`crate::events::Events`].

mod host;
mod lexicon;
mod rescore;
mod suggestions;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::events::Events;
use crate::leads::Models;
use crate::runs::Runs;
pub use lexicon::Detectors;
pub use suggestions::{Running, SuggestStatus, Suggestions};

/// The intent engine: shared by the API, the workers (as a call host) and the rescores.
#[derive(Debug)]
pub struct Intent {
    db: DatabaseConnection,
    /// For long reads that must not hold up the writer (a rescore reads every lead): on
    /// SQLite read-only connections of their own, on PostgreSQL the same pool.
    reader: DatabaseConnection,
    /// Compiled scoring model versions (shared with the event intake).
    pub models: Arc<Models>,
    /// Purchase-signal detectors per workspace.
    pub detectors: Detectors,
    /// "Suggest weights" in progress, per workspace.
    pub suggestions: Arc<Suggestions>,
    events: Arc<Events>,
    runs: Arc<Runs>,
    /// This process's identity as the holder of a rescore's lease.
    owner: String,
}

impl Intent {
    pub fn new(
        db: DatabaseConnection,
        reader: DatabaseConnection,
        models: Arc<Models>,
        events: Arc<Events>,
        runs: Arc<Runs>,
    ) -> Arc<Intent> {
        Arc::new(Intent {
            db,
            reader,
            models,
            detectors: lexicon::detectors(),
            suggestions: Arc::default(),
            events,
            runs,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        })
    }
}
