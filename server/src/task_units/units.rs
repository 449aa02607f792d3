//! A unit's life. Creating one applies its template to the trigger's facts, fills the
//! roles with `trellis_model::task_units::dispatch` over the directory and everyone's open
//! units, and writes the unit, its members, milestones and log with `task_unit.created`
//! in one transaction. Every later action (an update, a link, a milestone done, a member a
//! manager adds over capacity, closing) is one transaction too, logged, and raises
//! `task_unit.closed` when it ends the unit.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::{Expr as SqlExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    Statement, TransactionTrait,
};
use serde::Serialize;
use serde_json::{Value, json};
use trellis_model::task_units::{self, Directory, Facts, Override, Workload};

use super::{LogAction, TaskUnits, UnitError, UnitStatus, event, templates};
use crate::db::entities::{
    account, notification, task_unit, task_unit_log, task_unit_member, task_unit_milestone,
};
use crate::events::NewEvent;

/// How far back working together on an account counts as recent.
const COLLABORATION_WINDOW_MS: i64 = 90 * 86_400_000;

/// What a unit is created from.
#[derive(Clone, Debug, Default)]
pub struct NewUnit {
    pub template: String,
    /// The account, by id or name.
    pub account: Option<String>,
    pub lead: Option<String>,
    /// The trigger event (`{name, properties, …}`), as dispatch rules read it.
    pub event: Value,
    /// 0–5.
    pub severity: u8,
    /// Who is told when a role cannot be filled.
    pub manager: Option<String>,
    pub overrides: Vec<Override>,
    /// The key of the flow call creating it: a repeated call finds this unit.
    pub origin_key: Option<String>,
    pub by: String,
}

/// Something done in an open unit.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A member or manager says where things stand.
    Update {
        text: String,
    },
    /// A link (a document, a drawing, a ticket).
    Link {
        title: String,
        url: String,
    },
    MilestoneDone {
        milestone: String,
    },
    /// A manager puts `member` in `role` whatever their load (logged as an override).
    AddMember {
        member: String,
        role: String,
        reason: String,
    },
    /// Closes the unit before its goal is met.
    Cancel {
        reason: String,
    },
}

/// A unit as lists show it.
#[derive(Clone, Debug, Serialize)]
pub struct UnitSummary {
    pub id: String,
    pub name: String,
    pub template: String,
    pub status: UnitStatus,
    pub priority: i64,
    pub account: Option<String>,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

fn summary(u: &task_unit::Model) -> UnitSummary {
    UnitSummary {
        id: u.id.clone(),
        name: u.name.clone(),
        template: u.template_id.clone(),
        status: UnitStatus::parse(&u.status).unwrap_or(UnitStatus::Open),
        priority: u.priority,
        account: u.account_id.clone(),
        created_at: u.created_at,
        closed_at: u.closed_at,
    }
}

/// The workspace's units (of one status, when given), newest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    status: Option<UnitStatus>,
) -> Result<Vec<UnitSummary>, UnitError> {
    let mut q = task_unit::Entity::find().filter(task_unit::Column::WorkspaceId.eq(workspace));
    if let Some(s) = status {
        q = q.filter(task_unit::Column::Status.eq(s.as_str()));
    }
    Ok(q.order_by_desc(task_unit::Column::CreatedAt)
        .order_by_desc(task_unit::Column::Id)
        .all(conn)
        .await?
        .iter()
        .map(summary)
        .collect())
}

/// A unit about to be staffed: its template applied to the trigger's facts.
struct Prepared {
    new: NewUnit,
    unit_id: String,
    template_id: String,
    version: i32,
    template: trellis_model::task_units::Template,
    account: Value,
    facts: Facts,
    staffing: trellis_model::task_units::Staffing,
}

/// Reads the template (in force now) and applies it to the trigger of `new`.
async fn prepare<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    new: NewUnit,
) -> Result<Prepared, UnitError> {
    let (head, version, template) = templates::get(conn, workspace, &new.template, None).await?;
    apply(conn, workspace, head.id, version, template, new).await
}

/// Applies `template` to the trigger of `new`: the account read, the unit named, its
/// priority and the roles to fill.
async fn apply<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    template_id: String,
    version: i32,
    template: trellis_model::task_units::Template,
    mut new: NewUnit,
) -> Result<Prepared, UnitError> {
    let account = match &new.account {
        Some(a) if !a.trim().is_empty() => resolve_account(conn, workspace, a).await?,
        _ => Value::Null,
    };
    let facts = Facts {
        event: new.event.clone(),
        account: account.clone(),
        lead: new
            .lead
            .as_ref()
            .map_or(Value::Null, |l| json!({ "id": l })),
        severity: new.severity.min(5),
    };
    let unit_id = uuid::Uuid::now_v7().to_string();
    let overrides = std::mem::take(&mut new.overrides);
    let staffing = template.staff(&unit_id, &facts, new.manager.clone(), overrides);
    Ok(Prepared {
        new,
        unit_id,
        template_id,
        version,
        template,
        account,
        facts,
        staffing,
    })
}

/// One unit's roles filled against the directory and everyone's open units.
async fn dispatch_one<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    demand: &task_units::Demand,
    now: i64,
) -> Result<task_units::Dispatch, UnitError> {
    let directory = Directory::new(crate::people::list(conn, workspace, None).await?);
    let accounts: Vec<&str> = demand.account.iter().map(String::as_str).collect();
    let mut work = workload(conn, workspace, &accounts, now).await?;
    Ok(task_units::dispatch(&directory, &mut work, demand))
}

/// Who a unit from `template` would get now for the trigger of `new`, and why: the same
/// staffing a created unit gets, with nothing written.
pub async fn preview<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    template: trellis_model::task_units::Template,
    new: NewUnit,
    now: i64,
) -> Result<Value, UnitError> {
    let p = apply(conn, workspace, String::new(), 0, template, new).await?;
    let dispatch = dispatch_one(conn, workspace, &p.staffing.demand, now).await?;
    Ok(json!({
        "name": p.staffing.name, "priority": p.staffing.priority, "rules": p.staffing.rules,
        "picks": dispatch.picks, "unfilled": dispatch.unfilled,
        "knowledge": p.staffing.knowledge, "milestones": p.template.schedule(now),
    }))
}

impl TaskUnits {
    /// Creates a unit (see the module's description) and gives it as [`TaskUnits::get`]
    /// does. With an `origin_key` seen before, gives that unit and creates nothing.
    pub async fn create(
        &self,
        workspace: &str,
        new: NewUnit,
        now: i64,
    ) -> Result<Value, UnitError> {
        let txn = self.db.begin().await?;
        staffing_lock(&txn, workspace).await?;
        if let Some(key) = &new.origin_key
            && let Some(u) = task_unit::Entity::find()
                .filter(task_unit::Column::WorkspaceId.eq(workspace))
                .filter(task_unit::Column::OriginKey.eq(key.as_str()))
                .one(&txn)
                .await?
        {
            return view(&txn, workspace, &u.id).await;
        }
        let p = prepare(&txn, workspace, new).await?;
        let dispatch = dispatch_one(&txn, workspace, &p.staffing.demand, now).await?;
        let unit_id = self.write(&txn, workspace, p, dispatch, now).await?;
        let out = view(&txn, workspace, &unit_id).await?;
        txn.commit().await?;
        self.runs.wake();
        Ok(out)
    }

    /// Writes a staffed unit: the unit, its members, milestones and log, the manager's
    /// inbox for each role left unfilled, and `task_unit.created`; gives its id.
    async fn write<C: ConnectionTrait>(
        &self,
        txn: &C,
        workspace: &str,
        p: Prepared,
        dispatch: task_units::Dispatch,
        now: i64,
    ) -> Result<String, UnitError> {
        let unit_id = p.unit_id.clone();
        let deadlines = p.template.schedule(now);
        task_unit::Entity::insert(task_unit::ActiveModel {
            id: Set(unit_id.clone()),
            workspace_id: Set(workspace.to_owned()),
            template_id: Set(p.template_id.clone()),
            template_version: Set(p.version),
            name: Set(p.staffing.name.clone()),
            status: Set(UnitStatus::Open.as_str().into()),
            priority: Set(p.staffing.priority),
            account_id: Set(p.staffing.demand.account.clone()),
            lead_id: Set(p.new.lead.clone()),
            origin_key: Set(p.new.origin_key.clone()),
            goal: Set(p.template.goal.clone()),
            staffing: Set(json!({
                "picks": dispatch.picks,
                "unfilled": dispatch.unfilled,
                "rules": p.staffing.rules,
                "knowledge": p.staffing.knowledge,
                "manager": p.new.manager,
            })
            .to_string()),
            trigger: Set(serde_json::to_string(&p.facts).unwrap_or_else(|_| "{}".into())),
            wecom_group: Set(p.template.wecom_group),
            created_by: Set(p.new.by.clone()),
            created_at: Set(now),
            closed_at: Set(None),
        })
        .exec_without_returning(txn)
        .await?;
        if !dispatch.picks.is_empty() {
            task_unit_member::Entity::insert_many(dispatch.picks.iter().map(|p| {
                task_unit_member::ActiveModel {
                    unit_id: Set(unit_id.clone()),
                    member_id: Set(p.member.clone()),
                    workspace_id: Set(workspace.to_owned()),
                    role: Set(p.role.clone()),
                    invited_at: Set(now),
                    responded_at: Set(None),
                }
            }))
            .on_conflict(
                OnConflict::columns([
                    task_unit_member::Column::UnitId,
                    task_unit_member::Column::MemberId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        if !deadlines.is_empty() {
            task_unit_milestone::Entity::insert_many(deadlines.iter().enumerate().map(|(i, d)| {
                task_unit_milestone::ActiveModel {
                    unit_id: Set(unit_id.clone()),
                    milestone_id: Set(d.milestone.clone()),
                    workspace_id: Set(workspace.to_owned()),
                    position: Set(i as i32),
                    name: Set(d.name.clone()),
                    owner_role: Set(d.owner_role.clone()),
                    due_at: Set(d.due_at),
                    remind_at: Set(d.remind_at),
                    done_at: Set(None),
                    done_by: Set(None),
                    reminded: Set(false),
                    overdue: Set(false),
                }
            }))
            .exec_without_returning(txn)
            .await?;
        }
        let mut log = vec![(
            LogAction::Created,
            json!({
                "template": p.template_id, "version": p.version, "name": p.staffing.name,
                "priority": p.staffing.priority, "rules": p.staffing.rules,
            }),
        )];
        for p in &dispatch.picks {
            log.push((
                LogAction::Picked,
                serde_json::to_value(p).unwrap_or_default(),
            ));
            if let Some(o) = &p.reasons.overridden {
                log.push((
                    LogAction::Override,
                    serde_json::to_value(o).unwrap_or_default(),
                ));
            }
        }
        for u in &dispatch.unfilled {
            log.push((
                LogAction::Unfilled,
                serde_json::to_value(u).unwrap_or_default(),
            ));
        }
        write_log(txn, workspace, &unit_id, now, &p.new.by, log).await?;
        for u in &dispatch.unfilled {
            if let Some(manager) = &u.notify {
                notification::Entity::insert(notification::ActiveModel {
                    workspace_id: Set(workspace.to_owned()),
                    id: Set(format!("task_unit:{unit_id}:unfilled:{}", u.role)),
                    recipient: Set(manager.clone()),
                    title: Set(format!("作战单元「{}」缺人", p.staffing.name)),
                    body: Set(u.zh.clone()),
                    lead_id: Set(p.new.lead.clone()),
                    flow_id: Set(None),
                    run_id: Set(None),
                    created_at: Set(Utc::now()),
                    read_at: Set(None),
                })
                .exec_without_returning(txn)
                .await?;
            }
        }
        let members: Vec<Value> = dispatch
            .picks
            .iter()
            .map(|p| json!({ "id": p.member, "name": p.name, "role": p.role }))
            .collect();
        let touser = dispatch
            .picks
            .iter()
            .map(|p| p.member.as_str())
            .collect::<Vec<_>>()
            .join("|");
        self.events
            .record_within(
                txn,
                workspace,
                vec![NewEvent {
                    id: format!("task_unit:{unit_id}:created"),
                    name: event::CREATED.into(),
                    lead: p.new.lead.clone(),
                    properties: json!({
                        "unit": unit_id, "name": p.staffing.name, "template": p.template_id,
                        "priority": p.staffing.priority, "account": p.account,
                        "members": members, "touser": touser,
                        "unfilled": dispatch.unfilled.iter().map(|u| &u.role).collect::<Vec<_>>(),
                        "milestones": deadlines.iter().map(|d| json!({
                            "id": d.milestone, "name": d.name, "due_at": d.due_at,
                        })).collect::<Vec<_>>(),
                        "wecom_group": p.template.wecom_group,
                    }),
                    timestamp: None,
                }],
            )
            .await?;
        Ok(unit_id)
    }

    /// Creates several units at once, staffed by priority
    /// (`trellis_model::task_units::allocate`): when they want the same people, the
    /// higher-priority unit gets them first and the others the next best. Both sides'
    /// logs say so: the lower unit's pick names who it did not get and to which unit, and
    /// the higher unit's log names the unit it took them from. Gives the units in the
    /// order asked.
    pub async fn create_many(
        &self,
        workspace: &str,
        news: Vec<NewUnit>,
        now: i64,
    ) -> Result<Vec<Value>, UnitError> {
        let txn = self.db.begin().await?;
        staffing_lock(&txn, workspace).await?;
        let mut prepared = Vec::with_capacity(news.len());
        for new in news {
            prepared.push(prepare(&txn, workspace, new).await?);
        }
        let directory = Directory::new(crate::people::list(&txn, workspace, None).await?);
        let accounts: Vec<&str> = prepared
            .iter()
            .filter_map(|p| p.staffing.demand.account.as_deref())
            .collect();
        let mut work = workload(&txn, workspace, &accounts, now).await?;
        let demands: Vec<task_units::Demand> =
            prepared.iter().map(|p| p.staffing.demand.clone()).collect();
        let dispatches = task_units::allocate(&directory, &mut work, &demands);
        let mut took: HashMap<String, Vec<(LogAction, Value)>> = HashMap::new();
        for d in &dispatches {
            for pick in &d.picks {
                if let Some(x) = &pick.reasons.displaced {
                    took.entry(x.unit.clone()).or_default().push((
                        LogAction::Priority,
                        json!({
                            "member": x.member, "role": pick.role, "over": d.unit,
                            "zh": format!("{} 优先分给本单元；单元 {} 的「{}」改派 {}", x.member, d.unit, pick.role, pick.member),
                            "en": format!("{} went to this unit first; unit {}'s {} got {} instead", x.member, d.unit, pick.role, pick.member),
                        }),
                    ));
                }
            }
        }
        let mut ids = Vec::with_capacity(prepared.len());
        for (p, d) in prepared.into_iter().zip(dispatches) {
            let by = p.new.by.clone();
            let id = self.write(&txn, workspace, p, d, now).await?;
            if let Some(entries) = took.remove(&id) {
                write_log(&txn, workspace, &id, now, &by, entries).await?;
            }
            ids.push(id);
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(view(&txn, workspace, id).await?);
        }
        txn.commit().await?;
        self.runs.wake();
        Ok(out)
    }

    /// Does `action` in unit `id` as `actor` at `now`; gives the unit.
    pub async fn act(
        &self,
        workspace: &str,
        id: &str,
        action: Action,
        actor: &str,
        now: i64,
    ) -> Result<Value, UnitError> {
        let txn = self.db.begin().await?;
        staffing_lock(&txn, workspace).await?;
        let unit = open_unit(&txn, workspace, id).await?;
        let mut closed = None;
        let entry = match action {
            Action::Update { text } => {
                if text.trim().is_empty() {
                    return Err(UnitError::invalid("/text", "say what happened"));
                }
                (LogAction::Update, json!({ "text": text }))
            }
            Action::Link { title, url } => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(UnitError::invalid(
                        "/url",
                        "a link starts with https:// or http://",
                    ));
                }
                (LogAction::Link, json!({ "title": title, "url": url }))
            }
            Action::MilestoneDone { milestone } => {
                let done = task_unit_milestone::Entity::update_many()
                    .col_expr(
                        task_unit_milestone::Column::DoneAt,
                        SqlExpr::value(Some(now)),
                    )
                    .col_expr(
                        task_unit_milestone::Column::DoneBy,
                        SqlExpr::value(Some(actor.to_owned())),
                    )
                    .filter(task_unit_milestone::Column::UnitId.eq(id))
                    .filter(task_unit_milestone::Column::MilestoneId.eq(milestone.as_str()))
                    .filter(task_unit_milestone::Column::DoneAt.is_null())
                    .exec(&txn)
                    .await?
                    .rows_affected;
                let m = task_unit_milestone::Entity::find_by_id((id.to_owned(), milestone.clone()))
                    .one(&txn)
                    .await?
                    .ok_or_else(|| {
                        UnitError::Missing(format!("unit {id:?} has no milestone {milestone:?}"))
                    })?;
                if done == 0 {
                    return Err(UnitError::invalid(
                        "/milestone",
                        format!("milestone {:?} is already done", m.name),
                    ));
                }
                let open = task_unit_milestone::Entity::find()
                    .filter(task_unit_milestone::Column::UnitId.eq(id))
                    .filter(task_unit_milestone::Column::DoneAt.is_null())
                    .one(&txn)
                    .await?;
                if open.is_none() {
                    closed = Some((UnitStatus::Met, "every milestone is done".to_owned()));
                }
                (
                    LogAction::MilestoneDone,
                    json!({ "milestone": milestone, "name": m.name, "on_time": now <= m.due_at }),
                )
            }
            Action::AddMember {
                member,
                role,
                reason,
            } => {
                if reason.trim().is_empty() {
                    return Err(UnitError::invalid(
                        "/reason",
                        "an override says why (it is logged)",
                    ));
                }
                if crate::people::find(&txn, workspace, &member)
                    .await?
                    .is_none()
                {
                    return Err(UnitError::invalid(
                        "/member",
                        format!("{member:?} is not in the people directory"),
                    ));
                }
                let load = workload(&txn, workspace, &[], now).await?;
                task_unit_member::Entity::insert(task_unit_member::ActiveModel {
                    unit_id: Set(id.to_owned()),
                    member_id: Set(member.clone()),
                    workspace_id: Set(workspace.to_owned()),
                    role: Set(role.clone()),
                    invited_at: Set(now),
                    responded_at: Set(None),
                })
                .on_conflict(
                    OnConflict::columns([
                        task_unit_member::Column::UnitId,
                        task_unit_member::Column::MemberId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
                (
                    LogAction::Override,
                    json!({
                        "member": member, "role": role, "by": actor, "reason": reason,
                        "load_before": load.open.get(&member).copied().unwrap_or(0),
                    }),
                )
            }
            Action::Cancel { reason } => {
                if reason.trim().is_empty() {
                    return Err(UnitError::invalid(
                        "/reason",
                        "say why the unit is cancelled",
                    ));
                }
                closed = Some((UnitStatus::Cancelled, reason.clone()));
                (
                    LogAction::Closed,
                    json!({ "outcome": "cancelled", "reason": reason }),
                )
            }
        };
        // A member's first word in the unit is their first response.
        task_unit_member::Entity::update_many()
            .col_expr(
                task_unit_member::Column::RespondedAt,
                SqlExpr::value(Some(now)),
            )
            .filter(task_unit_member::Column::UnitId.eq(id))
            .filter(task_unit_member::Column::MemberId.eq(actor))
            .filter(task_unit_member::Column::RespondedAt.is_null())
            .exec(&txn)
            .await?;
        let mut log = vec![entry];
        if let Some((status, reason)) = &closed {
            task_unit::Entity::update_many()
                .col_expr(task_unit::Column::Status, SqlExpr::value(status.as_str()))
                .col_expr(task_unit::Column::ClosedAt, SqlExpr::value(Some(now)))
                .filter(task_unit::Column::Id.eq(id))
                .exec(&txn)
                .await?;
            if *status == UnitStatus::Met {
                log.push((
                    LogAction::Closed,
                    json!({ "outcome": "met", "reason": reason }),
                ));
            }
            self.events
                .record_within(
                    &txn,
                    workspace,
                    vec![NewEvent {
                        id: format!("task_unit:{id}:closed"),
                        name: event::CLOSED.into(),
                        lead: unit.lead_id.clone(),
                        properties: json!({
                            "unit": id, "name": unit.name, "template": unit.template_id,
                            "outcome": status.as_str(), "reason": reason,
                        }),
                        timestamp: None,
                    }],
                )
                .await?;
        }
        write_log(&txn, workspace, id, now, actor, log).await?;
        let out = view(&txn, workspace, id).await?;
        txn.commit().await?;
        if closed.is_some() {
            self.runs.wake();
        }
        Ok(out)
    }

    /// Unit `id` with its members, milestones and log.
    pub async fn get(&self, workspace: &str, id: &str) -> Result<Value, UnitError> {
        view(&self.db, workspace, id).await
    }
}

/// Staffing reads everyone's load and then adds to it: two units staffed at once in one
/// workspace could each see the same last free place. On PostgreSQL they take turns on a
/// transaction-scoped advisory lock; SQLite has one writer, so they take turns anyway.
async fn staffing_lock<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("trellis.task_units:{workspace}").into()],
        ))
        .await?;
    }
    Ok(())
}

/// The unit, if open; otherwise why not.
async fn open_unit<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
) -> Result<task_unit::Model, UnitError> {
    let unit = task_unit::Entity::find_by_id(id.to_owned())
        .filter(task_unit::Column::WorkspaceId.eq(workspace))
        .one(conn)
        .await?
        .ok_or_else(|| UnitError::Missing(format!("there is no task unit {id:?}")))?;
    if unit.status != UnitStatus::Open.as_str() {
        return Err(UnitError::Closed(format!(
            "unit {:?} is closed ({}); nothing more happens in it",
            unit.name, unit.status
        )));
    }
    Ok(unit)
}

/// Appends entries to a unit's log.
pub(super) async fn write_log<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    unit: &str,
    at: i64,
    actor: &str,
    entries: Vec<(LogAction, Value)>,
) -> Result<(), sea_orm::DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    task_unit_log::Entity::insert_many(entries.into_iter().map(|(action, detail)| {
        task_unit_log::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            unit_id: Set(unit.to_owned()),
            workspace_id: Set(workspace.to_owned()),
            at: Set(at),
            actor: Set(actor.to_owned()),
            action: Set(action.as_str().to_owned()),
            detail: Set(detail.to_string()),
        }
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Unit `id` as the API gives it.
async fn view<C: ConnectionTrait>(conn: &C, workspace: &str, id: &str) -> Result<Value, UnitError> {
    let unit = task_unit::Entity::find_by_id(id.to_owned())
        .filter(task_unit::Column::WorkspaceId.eq(workspace))
        .one(conn)
        .await?
        .ok_or_else(|| UnitError::Missing(format!("there is no task unit {id:?}")))?;
    let parse = |text: &str, what: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|e| UnitError::Corrupt(format!("unit {id:?}: its {what} does not read: {e}")))
    };
    let staffing = parse(&unit.staffing, "staffing")?;
    let trigger = parse(&unit.trigger, "trigger")?;
    let members = task_unit_member::Entity::find()
        .filter(task_unit_member::Column::UnitId.eq(id))
        .order_by_asc(task_unit_member::Column::InvitedAt)
        .order_by_asc(task_unit_member::Column::MemberId)
        .all(conn)
        .await?;
    let milestones = task_unit_milestone::Entity::find()
        .filter(task_unit_milestone::Column::UnitId.eq(id))
        .order_by_asc(task_unit_milestone::Column::Position)
        .all(conn)
        .await?;
    let mut log = Vec::new();
    for e in task_unit_log::Entity::find()
        .filter(task_unit_log::Column::UnitId.eq(id))
        .order_by_asc(task_unit_log::Column::At)
        .order_by_asc(task_unit_log::Column::Id)
        .all(conn)
        .await?
    {
        log.push(json!({
            "at": e.at, "actor": e.actor, "action": e.action,
            "detail": parse(&e.detail, "log")?,
        }));
    }
    Ok(json!({
        "unit": summary(&unit),
        "template_version": unit.template_version,
        "goal": unit.goal,
        "lead": unit.lead_id,
        "wecom_group": unit.wecom_group,
        "created_by": unit.created_by,
        "picks": staffing["picks"],
        "unfilled": staffing["unfilled"],
        "rules": staffing["rules"],
        "knowledge": staffing["knowledge"],
        "trigger": trigger,
        "members": members.iter().map(|m| json!({
            "id": m.member_id, "role": m.role, "invited_at": m.invited_at,
            "responded_at": m.responded_at,
        })).collect::<Vec<_>>(),
        "milestones": milestones.iter().map(|m| json!({
            "id": m.milestone_id, "name": m.name, "owner_role": m.owner_role,
            "due_at": m.due_at, "remind_at": m.remind_at, "done_at": m.done_at,
            "done_by": m.done_by, "overdue": m.overdue,
        })).collect::<Vec<_>>(),
        "log": log,
    }))
}

/// The account a unit is for, by id or else by name: `{id, name, value}` with its best
/// lead's score as the value. A name no account has stands alone (`id` null).
async fn resolve_account<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    key: &str,
) -> Result<Value, UnitError> {
    let found = match account::Entity::find_by_id((workspace.to_owned(), key.to_owned()))
        .one(conn)
        .await?
    {
        Some(a) => Some(a),
        None => {
            account::Entity::find()
                .filter(account::Column::WorkspaceId.eq(workspace))
                .filter(account::Column::Name.eq(key))
                .one(conn)
                .await?
        }
    };
    let Some(a) = found else {
        return Ok(json!({ "id": null, "name": key, "value": 0 }));
    };
    let backend = conn.get_database_backend();
    let p = |n: usize| crate::db::placeholder(backend, n);
    let best = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT MAX(s.score) AS best FROM leads l JOIN lead_scores s \
                 ON s.workspace_id = l.workspace_id AND s.lead_id = l.id \
                 WHERE l.workspace_id = {} AND l.account_id = {} AND l.merged_into IS NULL",
                p(1),
                p(2)
            ),
            [workspace.into(), a.id.clone().into()],
        ))
        .await?
        .and_then(|r| r.try_get::<Option<f64>>("", "best").ok().flatten())
        .unwrap_or(0.0);
    Ok(json!({ "id": a.id, "name": a.name, "value": best, "attributes": a.attributes }))
}

/// Everyone's open units, and (for each of `accounts`) who worked on it recently.
pub(super) async fn workload<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    accounts: &[&str],
    now: i64,
) -> Result<Workload, sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    let counts = |sql: String, values: Vec<sea_orm::Value>| {
        let stmt = Statement::from_sql_and_values(backend, sql, values);
        async move {
            let mut out = HashMap::new();
            for r in conn.query_all_raw(stmt).await? {
                let member: String = r.try_get("", "member")?;
                let n: i64 = r.try_get("", "n")?;
                out.insert(member, u32::try_from(n).unwrap_or(u32::MAX));
            }
            Ok::<_, sea_orm::DbErr>(out)
        }
    };
    let p = |n: usize| crate::db::placeholder(backend, n);
    let open = counts(
        format!(
            "SELECT m.member_id AS member, COUNT(*) AS n FROM task_unit_members m \
             JOIN task_units u ON u.id = m.unit_id \
             WHERE m.workspace_id = {} AND u.status = {} GROUP BY m.member_id",
            p(1),
            p(2)
        ),
        vec![workspace.into(), UnitStatus::Open.as_str().into()],
    )
    .await?;
    let mut collaborations: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for &account in accounts {
        let with = counts(
            format!(
                "SELECT m.member_id AS member, COUNT(*) AS n FROM task_unit_members m \
                 JOIN task_units u ON u.id = m.unit_id \
                 WHERE m.workspace_id = {} AND u.account_id = {} AND u.created_at >= {} \
                 GROUP BY m.member_id",
                p(1),
                p(2),
                p(3)
            ),
            vec![
                workspace.into(),
                account.into(),
                (now - COLLABORATION_WINDOW_MS).into(),
            ],
        )
        .await?;
        for (member, n) in with {
            collaborations
                .entry(member)
                .or_default()
                .insert(account.to_owned(), n);
        }
    }
    Ok(Workload {
        open,
        collaborations,
    })
}
