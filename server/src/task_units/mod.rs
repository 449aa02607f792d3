//! Task units (作战单元) at work: the people a trigger needs, assembled from a template.
//!
//! - `templates`: unit templates, versioned documents in the one store (kind
//!   `task_unit_template`, head in `task_unit_templates`), created, cloned with their
//!   lineage, listed and removed;
//! - `units`: a unit's life: created from a template and the trigger's facts (staffed by
//!   `trellis_model::task_units::dispatch` over the directory and everyone's open units),
//!   then updates, links, milestones done, members added by a manager's override, closed
//!   or cancelled — every action in its log, every change of state an event through the
//!   intake in the same transaction;
//! - `deadlines`: once a second, milestones whose reminder or deadline passed raise
//!   `task_unit.milestone_due` / `task_unit.milestone_overdue`, each once;
//! - `health`: the collaboration health dashboard (response times, punctuality, load,
//!   knowledge used, recurring member combinations);
//! - `host`: `trellis.units@1`, the reserved call host serving the `create_task_unit`
//!   node.

mod deadlines;
pub mod health;
mod host;
pub mod templates;
mod units;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use deadlines::spawn as spawn_deadlines;
pub use units::{Action, NewUnit, UnitSummary, list as list_units, preview};

use crate::docs::DocError;
use crate::events::{Events, IntakeError};
use crate::people::PeopleError;
use crate::runs::Runs;

/// The events task units raise (a contract: flows trigger on these names).
pub mod event {
    pub const CREATED: &str = "task_unit.created";
    pub const MILESTONE_DUE: &str = "task_unit.milestone_due";
    pub const MILESTONE_OVERDUE: &str = "task_unit.milestone_overdue";
    pub const CLOSED: &str = "task_unit.closed";
}

/// Where a unit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Open,
    /// Every milestone done: the goal is met.
    Met,
    /// Closed by hand before its goal was met.
    Cancelled,
}

impl UnitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Open => "open",
            UnitStatus::Met => "met",
            UnitStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<UnitStatus> {
        [UnitStatus::Open, UnitStatus::Met, UnitStatus::Cancelled]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What a log entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogAction {
    Created,
    /// A member picked for a role, with the reasons.
    Picked,
    /// A role nobody with room could fill; the substitute and who was told.
    Unfilled,
    /// A manager put a member in over capacity.
    Override,
    /// This unit's priority took a member another unit created with it wanted.
    Priority,
    Update,
    Link,
    MilestoneDone,
    MilestoneDue,
    MilestoneOverdue,
    Closed,
}

impl LogAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LogAction::Created => "created",
            LogAction::Picked => "picked",
            LogAction::Unfilled => "unfilled",
            LogAction::Override => "override",
            LogAction::Priority => "priority",
            LogAction::Update => "update",
            LogAction::Link => "link",
            LogAction::MilestoneDone => "milestone_done",
            LogAction::MilestoneDue => "milestone_due",
            LogAction::MilestoneOverdue => "milestone_overdue",
            LogAction::Closed => "closed",
        }
    }
}

/// Why a task-unit operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    People(#[from] PeopleError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// No such unit, template, milestone or member.
    #[error("{0}")]
    Missing(String),
    /// The request does not fit: the pointer names the offending value.
    #[error("{detail}")]
    Invalid { pointer: String, detail: String },
    /// The unit is closed; nothing more happens in it.
    #[error("{0}")]
    Closed(String),
    /// A stored row does not read.
    #[error("{0}")]
    Corrupt(String),
}

impl UnitError {
    fn invalid(pointer: &str, detail: impl Into<String>) -> UnitError {
        UnitError::Invalid {
            pointer: pointer.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The task units of this process: creation, actions, deadlines and the call host.
#[derive(Debug)]
pub struct TaskUnits {
    db: DatabaseConnection,
    events: Arc<Events>,
    runs: Arc<Runs>,
}

impl TaskUnits {
    pub fn new(db: DatabaseConnection, events: Arc<Events>, runs: Arc<Runs>) -> Arc<TaskUnits> {
        Arc::new(TaskUnits { db, events, runs })
    }
}
