//! The signal lexicon of each workspace, compiled into a detector and cached.

use anyhow::Context as _;
use trellis_model::signals::{Detector, Lexicon, Model};

use crate::db::entities::doc_version::DocKind;
use crate::workspace_docs::CompiledDocs;

/// Purchase-signal detectors per workspace: the workspace's own lexicon when it has saved
/// one, otherwise the built-in one, deciding with the shipped model.
pub type Detectors = CompiledDocs<Detector>;

/// The detectors' cache.
pub fn detectors() -> Detectors {
    CompiledDocs::new(
        DocKind::SignalLexicon,
        || Ok(Detector::builtin()),
        |text| {
            let lexicon: Lexicon = serde_json::from_str(text).context("stored signal lexicon")?;
            Detector::new(lexicon)
                .map(|d| d.with_model(Model::builtin()))
                .map_err(|e| anyhow::anyhow!("stored lexicon: {e}"))
        },
    )
}
