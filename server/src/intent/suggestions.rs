//! The progress of "suggest weights" per workspace, for the scoring page's progress bar.
//! A suggestion is one request that fits for seconds; while it runs, this process keeps
//! how far it is. One runs at a time per workspace: a second click waits for the first
//! rather than fitting twice. (Processes sharing one PostgreSQL database each know their own
//! suggestions only; a page polling another process sees none and shows that it is busy.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use trellis_analytics::Progress;

/// Where a workspace's latest suggestion is.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SuggestStatus {
    pub running: bool,
    /// Leads with an outcome, being fitted.
    pub leads: usize,
    /// Regression fits done of the total, and the step; `None` while leads are read.
    pub progress: Option<Progress>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed, in words.
    pub error: Option<String>,
}

/// Every workspace's latest suggestion in this process.
#[derive(Debug, Default)]
pub struct Suggestions {
    by_workspace: Mutex<HashMap<String, SuggestStatus>>,
}

impl Suggestions {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, SuggestStatus>) -> R) -> R {
        // A panic while holding the lock leaves plain data behind: keep using it.
        let mut map = self
            .by_workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    /// Starts a suggestion in `workspace`, or `None` when one is running there already.
    pub fn start(self: &Arc<Self>, workspace: &str) -> Option<Running> {
        self.with(|map| {
            if map.get(workspace).is_some_and(|s| s.running) {
                return None;
            }
            map.insert(
                workspace.to_owned(),
                SuggestStatus {
                    running: true,
                    leads: 0,
                    progress: None,
                    started_at: Utc::now(),
                    finished_at: None,
                    error: None,
                },
            );
            Some(Running {
                suggestions: Arc::clone(self),
                workspace: workspace.to_owned(),
                finished: false,
            })
        })
    }

    /// Records a running suggestion's progress.
    pub fn report(&self, workspace: &str, p: Progress) {
        self.with(|map| {
            if let Some(s) = map.get_mut(workspace).filter(|s| s.running) {
                s.progress = Some(p);
            }
        });
    }

    /// The workspace's running or latest suggestion.
    pub fn status(&self, workspace: &str) -> Option<SuggestStatus> {
        self.with(|map| map.get(workspace).cloned())
    }
}

/// A running suggestion: reports its progress, and ends as finished, failed, or (dropped
/// unfinished, e.g. by a panic) failed with a reason.
#[derive(Debug)]
pub struct Running {
    suggestions: Arc<Suggestions>,
    workspace: String,
    finished: bool,
}

impl Running {
    fn update(&self, f: impl FnOnce(&mut SuggestStatus)) {
        self.suggestions.with(|map| {
            if let Some(s) = map.get_mut(&self.workspace) {
                f(s);
            }
        });
    }

    pub fn leads(&self, n: usize) {
        self.update(|s| s.leads = n);
    }

    /// Ends it; `error` says why it failed.
    pub fn finish(mut self, error: Option<String>) {
        self.end(error);
    }

    fn end(&mut self, error: Option<String>) {
        self.finished = true;
        self.update(|s| {
            s.running = false;
            s.finished_at = Some(Utc::now());
            s.error = error;
        });
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Some("the suggestion stopped before it finished".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use trellis_analytics::Step;

    use super::*;

    #[test]
    fn one_suggestion_runs_per_workspace_and_its_end_is_kept() {
        let s = Arc::new(Suggestions::default());
        let running = s.start("w1").expect("the first one starts");
        assert!(s.start("w1").is_none(), "a second one waits");
        assert!(s.start("w2").is_some(), "another workspace is free");
        running.leads(120);
        s.report(
            "w1",
            Progress {
                step: Step::Regularisation,
                done: 3,
                total: 26,
            },
        );
        let status = s.status("w1").expect("status");
        assert!(status.running);
        assert_eq!(
            (status.leads, status.progress.map(|p| p.done)),
            (120, Some(3))
        );
        running.finish(None);
        let status = s.status("w1").expect("status");
        assert!(!status.running && status.error.is_none() && status.finished_at.is_some());
        let dropped = s.start("w1").expect("free again");
        drop(dropped);
        assert!(
            s.status("w1").and_then(|s| s.error).is_some(),
            "an unfinished end is a failure"
        );
    }
}
