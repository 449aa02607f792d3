//! Milestone deadlines: once a second, each open milestone of an open unit whose reminder
//! time passed raises `task_unit.milestone_due`, and one whose deadline passed raises
//! `task_unit.milestone_overdue` (flows escalate on it). Each is raised once: the flag that
//! says it was raised is set by a guarded update in the event's transaction (and the event
//! id is the milestone's, so the intake would refuse a second one anyway).

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement, TransactionTrait,
};
use serde_json::{Value, json};

use super::{LogAction, TaskUnits, UnitError, UnitStatus, event, units::write_log};
use crate::db::entities::{task_unit, task_unit_member, task_unit_milestone};
use crate::events::NewEvent;

/// The most milestones one tick looks at (the rest wait for the next).
const BATCH: i64 = 200;

/// Raises the deadlines' events once a second until `shutdown` fires.
pub fn spawn(units: Arc<TaskUnits>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            let now = crate::runs::now_ms(chrono::Utc::now());
            match units.raise_deadlines(now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "milestone deadlines raised"),
                Err(e) => tracing::warn!(error = %e, "raising milestone deadlines failed"),
            }
        }
    });
}

/// Which of a milestone's events is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Raise {
    Due,
    Overdue,
}

impl TaskUnits {
    /// Raises every milestone event due at `now` (epoch ms; tests pass a time ahead of the
    /// clock); gives how many were raised.
    pub async fn raise_deadlines(&self, now: i64) -> Result<u64, UnitError> {
        let backend = self.db.get_database_backend();
        let p = |n: usize| crate::db::placeholder(backend, n);
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT m.unit_id AS unit_id, m.milestone_id AS milestone_id, \
                     m.due_at <= {} AS late FROM task_unit_milestones m \
                     JOIN task_units u ON u.id = m.unit_id \
                     WHERE m.done_at IS NULL AND u.status = {} \
                     AND ((m.reminded = {} AND m.remind_at <= {}) OR (m.overdue = {} AND m.due_at <= {})) \
                     ORDER BY m.due_at LIMIT {}",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7)
                ),
                [
                    now.into(),
                    UnitStatus::Open.as_str().into(),
                    false.into(),
                    now.into(),
                    false.into(),
                    now.into(),
                    BATCH.into(),
                ],
            ))
            .await?;
        let mut raised = 0;
        for r in rows {
            let unit: String = r.try_get("", "unit_id")?;
            let milestone: String = r.try_get("", "milestone_id")?;
            let late: bool = r.try_get("", "late")?;
            let what = if late { Raise::Overdue } else { Raise::Due };
            if self.raise(&unit, &milestone, what, now).await? {
                raised += 1;
            }
        }
        if raised > 0 {
            self.runs.wake();
        }
        Ok(raised)
    }

    /// Raises one milestone's event, unless another process did; true when this one did.
    async fn raise(
        &self,
        unit_id: &str,
        milestone_id: &str,
        what: Raise,
        now: i64,
    ) -> Result<bool, UnitError> {
        let txn = self.db.begin().await?;
        let flag = match what {
            Raise::Due => task_unit_milestone::Column::Reminded,
            Raise::Overdue => task_unit_milestone::Column::Overdue,
        };
        let mut update = task_unit_milestone::Entity::update_many()
            .col_expr(flag, SqlExpr::value(true))
            .filter(task_unit_milestone::Column::UnitId.eq(unit_id))
            .filter(task_unit_milestone::Column::MilestoneId.eq(milestone_id))
            .filter(task_unit_milestone::Column::DoneAt.is_null())
            .filter(flag.eq(false));
        if what == Raise::Overdue {
            // A deadline passed: its reminder is moot.
            update = update.col_expr(task_unit_milestone::Column::Reminded, SqlExpr::value(true));
        }
        if update.exec(&txn).await?.rows_affected != 1 {
            return Ok(false);
        }
        let (Some(unit), Some(m)) = (
            task_unit::Entity::find_by_id(unit_id.to_owned())
                .one(&txn)
                .await?,
            task_unit_milestone::Entity::find_by_id((unit_id.to_owned(), milestone_id.to_owned()))
                .one(&txn)
                .await?,
        ) else {
            return Ok(false);
        };
        let members = task_unit_member::Entity::find()
            .filter(task_unit_member::Column::UnitId.eq(unit_id))
            .all(&txn)
            .await?;
        let owners: Vec<&str> = members
            .iter()
            .filter(|x| m.owner_role.as_deref() == Some(x.role.as_str()))
            .map(|x| x.member_id.as_str())
            .collect();
        let manager = self.manager(&txn, &unit, &owners).await?;
        let (name, action, suffix) = match what {
            Raise::Due => (event::MILESTONE_DUE, LogAction::MilestoneDue, "due"),
            Raise::Overdue => (
                event::MILESTONE_OVERDUE,
                LogAction::MilestoneOverdue,
                "overdue",
            ),
        };
        let due = chrono::DateTime::from_timestamp_millis(m.due_at).map(|t| t.to_rfc3339());
        let properties = json!({
            "unit": unit.id, "name": unit.name, "template": unit.template_id,
            "milestone": m.milestone_id, "milestone_name": m.name,
            "due_at": m.due_at, "due": due, "owner_role": m.owner_role,
            "owners": owners, "owner_touser": owners.join("|"),
            "members": members.iter().map(|x| x.member_id.as_str()).collect::<Vec<_>>(),
            "manager": manager, "account": unit.account_id,
        });
        self.events
            .record_within(
                &txn,
                &unit.workspace_id,
                vec![NewEvent {
                    id: format!("task_unit:{unit_id}:{milestone_id}:{suffix}"),
                    name: name.into(),
                    lead: unit.lead_id.clone(),
                    properties: properties.clone(),
                    timestamp: None,
                }],
            )
            .await?;
        write_log(
            &txn,
            &unit.workspace_id,
            unit_id,
            now,
            "trellis",
            vec![(action, properties)],
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Who answers for a unit's missed milestone: the manager named when it was created,
    /// else the first owner's manager in the directory.
    async fn manager<C: ConnectionTrait>(
        &self,
        conn: &C,
        unit: &task_unit::Model,
        owners: &[&str],
    ) -> Result<Value, UnitError> {
        let named = serde_json::from_str::<Value>(&unit.staffing)
            .ok()
            .and_then(|s| s.get("manager").and_then(Value::as_str).map(str::to_owned));
        if let Some(m) = named {
            return Ok(Value::from(m));
        }
        for owner in owners {
            if let Some(member) = crate::people::find(conn, &unit.workspace_id, owner).await?
                && let Some(m) = member.manager
            {
                return Ok(Value::from(m));
            }
        }
        Ok(Value::Null)
    }
}
