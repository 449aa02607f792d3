//! Per-workspace limits an admin may set within fixed maxima: the largest webhook and
//! event body, the size caps of a run (`trellis_runtime::RunLimits`), and how long
//! finished runs are kept. Stored as the workspace document `limits`; read through a
//! cache that trusts an entry for [`TTL`], so a change made through another process is
//! seen within a second.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use trellis_runtime::RunLimits;
use utoipa::ToSchema;

use crate::db::entities::doc_version::DocKind;
use crate::db::entities::workspace_doc;

/// How long a cached entry is trusted.
pub const TTL: Duration = Duration::from_secs(1);

/// The largest request body any endpoint reads (flow documents, imports); webhook and event
/// bodies are held to the workspace's [`Limits::body_bytes`] besides.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// The deepest JSON a webhook, event or manual run may bring in. Runs wrap what they are
/// given in a few levels and may build on it, and every stored value stays within
/// `trellis_runtime::limits::MAX_VALUE_DEPTH`.
pub const MAX_INPUT_DEPTH: usize = 32;

/// A workspace's limits (the document an admin edits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest webhook or event body, in bytes (default 1 MiB, at most 16 MiB).
    pub body_bytes: u64,
    /// Largest variable, step output or connector call input, in bytes of JSON (default
    /// 1 MiB, at most 16 MiB).
    pub value_bytes: u64,
    /// Largest run state (variables and step outputs together), in bytes of JSON (default
    /// 4 MiB, at most 64 MiB).
    pub state_bytes: u64,
    /// Days a finished run and its journal are kept (default 30, 1 to 3650).
    pub run_retention_days: u32,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        body_bytes: 1 << 20,
        value_bytes: RunLimits::DEFAULT.value_bytes,
        state_bytes: RunLimits::DEFAULT.state_bytes,
        run_retention_days: 30,
    };
    pub const MAX: Limits = Limits {
        body_bytes: MAX_REQUEST_BYTES as u64,
        value_bytes: RunLimits::MAX.value_bytes,
        state_bytes: RunLimits::MAX.state_bytes,
        run_retention_days: 3650,
    };

    /// Every value out of range, with its JSON pointer and what is allowed.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut range = |name: &str, value: u64, min: u64, max: u64| {
            if !(min..=max).contains(&value) {
                out.push((
                    format!("/{name}"),
                    format!("{name} must be between {min} and {max}"),
                ));
            }
        };
        range("body_bytes", self.body_bytes, 1024, Self::MAX.body_bytes);
        range("value_bytes", self.value_bytes, 1024, Self::MAX.value_bytes);
        range("state_bytes", self.state_bytes, 1024, Self::MAX.state_bytes);
        range(
            "run_retention_days",
            u64::from(self.run_retention_days),
            1,
            u64::from(Self::MAX.run_retention_days),
        );
        out
    }

    /// The caps a run of this workspace is held to.
    pub fn run(&self) -> RunLimits {
        RunLimits {
            value_bytes: self.value_bytes,
            state_bytes: self.state_bytes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Workspace limits, cached.
#[derive(Debug, Default)]
pub struct LimitsCache {
    cache: RwLock<HashMap<String, (Instant, Limits)>>,
}

impl LimitsCache {
    /// The workspace's limits (the defaults until an admin saves others).
    pub async fn get<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
    ) -> Result<Limits, sea_orm::DbErr> {
        if let Some((at, limits)) = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(workspace).copied())
            && at.elapsed() < TTL
        {
            return Ok(limits);
        }
        let doc = workspace_doc::Entity::find_by_id((workspace.to_owned(), DocKind::Limits))
            .one(conn)
            .await?;
        let limits = match doc {
            // A document that no longer reads (an older shape) falls back to the defaults,
            // clamped; the admin page shows what is in force.
            Some(d) => serde_json::from_str::<Limits>(&d.doc).unwrap_or_else(|e| {
                tracing::warn!(workspace, error = %e, "stored limits do not read; using the defaults");
                Limits::DEFAULT
            }),
            None => Limits::DEFAULT,
        };
        if let Ok(mut c) = self.cache.write() {
            c.insert(workspace.to_owned(), (Instant::now(), limits));
        }
        Ok(limits)
    }

    /// Forgets a workspace's entry (after this process saved new limits).
    pub fn forget(&self, workspace: &str) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(workspace);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_out_of_range_are_named_by_pointer() {
        assert!(Limits::DEFAULT.problems().is_empty());
        assert!(Limits::MAX.problems().is_empty());
        let bad = Limits {
            body_bytes: 0,
            value_bytes: 64 << 20,
            state_bytes: 1 << 40,
            run_retention_days: 0,
        };
        let pointers: Vec<String> = bad.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            pointers,
            [
                "/body_bytes",
                "/value_bytes",
                "/state_bytes",
                "/run_retention_days"
            ]
        );
    }
}
