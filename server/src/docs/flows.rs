//! What only flows have: a name, creation by a first version, a list with each flow's
//! last run, and archiving.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr as SqlExpr, Func, Query as SqlQuery};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};

use super::{Author, DocError, DocRef, audit, heads, insert_version};
use crate::db::entities::{flow, flow_trigger, run};

/// Creates a flow named `name` whose first version is `body`; gives its id.
pub async fn create_flow<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    name: &str,
    body: &Value,
    hash: String,
    author: Author<'_>,
) -> Result<String, DocError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    flow::Entity::insert(flow::ActiveModel {
        id: Set(id.clone()),
        workspace_id: Set(workspace.to_owned()),
        name: Set(name.to_owned()),
        latest_version: Set(1),
        published_version: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    let doc = DocRef::flow(workspace, &id);
    insert_version(conn, doc, 1, body, hash, author, "created").await?;
    audit(conn, doc, author, "create", json!({ "version": 1 })).await?;
    Ok(id)
}

/// The last run of a flow, as lists show it.
#[derive(Clone, Debug, sea_orm::FromQueryResult)]
pub struct LastRun {
    pub id: String,
    pub flow_id: String,
    /// As stored (a list shows a run whatever its state reads as).
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// A flow as lists show it.
#[derive(Clone, Debug)]
pub struct FlowSummary {
    pub flow: flow::Model,
    pub last_run: Option<LastRun>,
}

/// The workspace's flows (not archived), most recently changed first, each with its last
/// run.
pub async fn list_flows<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<Vec<FlowSummary>, DocError> {
    let flows = flow::Entity::find()
        .filter(flow::Column::WorkspaceId.eq(workspace))
        .filter(flow::Column::DeletedAt.is_null())
        .order_by_desc(flow::Column::UpdatedAt)
        .all(conn)
        .await?;
    // The last run of every flow in one query (run ids are time-ordered UUIDv7s), not one
    // query per flow. Test runs are not a flow's last run.
    let latest_ids = SqlQuery::select()
        .expr(Func::max(SqlExpr::col(run::Column::Id)))
        .from(run::Entity)
        .and_where(run::Column::WorkspaceId.eq(workspace))
        .and_where(run::Column::Test.eq(false))
        .group_by_col(run::Column::FlowId)
        .to_owned();
    // The columns shown only: a run whose stored state does not read is listed all the same.
    let mut last_runs: HashMap<String, LastRun> = run::Entity::find()
        .select_only()
        .columns([
            run::Column::Id,
            run::Column::FlowId,
            run::Column::Status,
            run::Column::CreatedAt,
        ])
        .filter(run::Column::Id.in_subquery(latest_ids))
        .into_model::<LastRun>()
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.flow_id.clone(), r))
        .collect();
    Ok(flows
        .into_iter()
        .map(|f| FlowSummary {
            last_run: last_runs.remove(&f.id),
            flow: f,
        })
        .collect())
}

/// Renames a flow: its name is the head's, so no version is made (and a rollback keeps
/// it). Gives the name it had.
pub async fn rename_flow<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    name: &str,
    author: Author<'_>,
) -> Result<String, DocError> {
    let f = find_flow(conn, doc).await?;
    flow::Entity::update_many()
        .col_expr(flow::Column::Name, SqlExpr::value(name.to_owned()))
        .col_expr(flow::Column::UpdatedAt, SqlExpr::value(Utc::now()))
        .filter(flow::Column::Id.eq(doc.id))
        .filter(flow::Column::WorkspaceId.eq(doc.workspace))
        .exec(conn)
        .await?;
    audit(
        conn,
        doc,
        author,
        "rename",
        json!({ "from": f.name, "to": name }),
    )
    .await?;
    Ok(f.name)
}

/// The flow `doc` names, unless archived.
pub async fn find_flow<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
) -> Result<flow::Model, DocError> {
    heads::live_flow(conn, doc)
        .await?
        .ok_or_else(|| DocError::missing(doc))
}

/// Archives a flow: it leaves lists and stops receiving webhooks, events and schedules;
/// its versions, runs and audit trail are kept.
pub async fn archive_flow<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    author: Author<'_>,
) -> Result<(), DocError> {
    let f = find_flow(conn, doc).await?;
    flow::Entity::update_many()
        .col_expr(flow::Column::DeletedAt, SqlExpr::value(Some(Utc::now())))
        .filter(flow::Column::Id.eq(doc.id))
        .exec(conn)
        .await?;
    flow_trigger::Entity::delete_by_id(doc.id.to_owned())
        .exec(conn)
        .await?;
    audit(conn, doc, author, "delete", json!({ "name": f.name })).await?;
    Ok(())
}
