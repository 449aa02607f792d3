//! Where each document kind keeps its head (latest and published version), and what
//! publishing a version of it also does.

use chrono::Utc;
use sea_orm::sea_query::{Expr as SqlExpr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use trellis_model::FlowDoc;
use trellis_model::node_types::{TriggerConfig, TriggerKind};

use super::{DocError, DocKind, DocRef, Head, Version};
use crate::db::entities::{flow, flow_trigger, scoring_model, task_unit_template, workspace_doc};

/// The head of `doc`, if the document exists (a deleted flow does not).
pub(super) async fn read<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
) -> Result<Option<Head>, sea_orm::DbErr> {
    Ok(match doc.kind {
        DocKind::Flow => live_flow(conn, doc).await?.map(|f| Head {
            latest: f.latest_version,
            published: f.published_version,
        }),
        // A template's latest version is the one in force.
        DocKind::TaskUnitTemplate => live_template(conn, doc).await?.map(|t| Head {
            latest: t.latest_version,
            published: Some(t.latest_version),
        }),
        DocKind::ScoringModel => scoring_model::Entity::find_by_id(doc.workspace.to_owned())
            .one(conn)
            .await?
            .map(|m| Head {
                latest: m.latest_version,
                published: m.published_version,
            }),
        // A workspace document's latest version is the one in force.
        kind @ (DocKind::ContactPolicy
        | DocKind::UrlCategories
        | DocKind::SignalLexicon
        | DocKind::NbaRules
        | DocKind::Limits) => workspace_doc::Entity::find_by_id((doc.workspace.to_owned(), kind))
            .one(conn)
            .await?
            .map(|d| Head {
                latest: d.version,
                published: Some(d.version),
            }),
    })
}

/// The flow `doc` names, unless deleted.
pub(super) async fn live_flow<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
) -> Result<Option<flow::Model>, sea_orm::DbErr> {
    flow::Entity::find_by_id(doc.id.to_owned())
        .filter(flow::Column::WorkspaceId.eq(doc.workspace))
        .filter(flow::Column::DeletedAt.is_null())
        .one(conn)
        .await
}

/// The task-unit template `doc` names, unless deleted.
pub(super) async fn live_template<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
) -> Result<Option<task_unit_template::Model>, sea_orm::DbErr> {
    task_unit_template::Entity::find_by_id((doc.workspace.to_owned(), doc.id.to_owned()))
        .filter(task_unit_template::Column::DeletedAt.is_null())
        .one(conn)
        .await
}

/// Moves the head from `base` to `base + 1` if it is still at `base`; false otherwise.
/// A scoring model's head is created by its first save (`base` 0). A flow's head takes
/// `name` when given: a save names the flow as its document does, a rollback keeps the
/// name the flow has (names are the flow's, see [`super::flows::rename_flow`]).
pub(super) async fn advance<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    base: i32,
    name: Option<&str>,
) -> Result<bool, sea_orm::DbErr> {
    let next = base + 1;
    let now = Utc::now();
    let moved = match doc.kind {
        // The head row comes with the first version; its document is written when the
        // version is published, in the same transaction.
        kind @ (DocKind::ContactPolicy
        | DocKind::UrlCategories
        | DocKind::SignalLexicon
        | DocKind::NbaRules
        | DocKind::Limits)
            if base == 0 =>
        {
            workspace_doc::Entity::insert(workspace_doc::ActiveModel {
                workspace_id: Set(doc.workspace.to_owned()),
                kind: Set(kind),
                doc: Set("null".into()),
                author: Set(String::new()),
                updated_at: Set(now),
                version: Set(next),
            })
            .on_conflict(
                OnConflict::columns([
                    workspace_doc::Column::WorkspaceId,
                    workspace_doc::Column::Kind,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?
        }
        kind @ (DocKind::ContactPolicy
        | DocKind::UrlCategories
        | DocKind::SignalLexicon
        | DocKind::NbaRules
        | DocKind::Limits) => {
            workspace_doc::Entity::update_many()
                .col_expr(workspace_doc::Column::Version, SqlExpr::value(next))
                .filter(workspace_doc::Column::WorkspaceId.eq(doc.workspace))
                .filter(workspace_doc::Column::Kind.eq(kind))
                .filter(workspace_doc::Column::Version.eq(base))
                .exec(conn)
                .await?
                .rows_affected
        }
        DocKind::Flow => {
            let mut update = flow::Entity::update_many()
                .col_expr(flow::Column::LatestVersion, SqlExpr::value(next))
                .col_expr(flow::Column::UpdatedAt, SqlExpr::value(now));
            if let Some(name) = name {
                update = update.col_expr(flow::Column::Name, SqlExpr::value(name.to_owned()));
            }
            update
                .filter(flow::Column::Id.eq(doc.id))
                .filter(flow::Column::WorkspaceId.eq(doc.workspace))
                .filter(flow::Column::DeletedAt.is_null())
                .filter(flow::Column::LatestVersion.eq(base))
                .exec(conn)
                .await?
                .rows_affected
        }
        // A template is created with its head (`crate::task_units::templates`); a save
        // names it as its document does.
        DocKind::TaskUnitTemplate => {
            let mut update = task_unit_template::Entity::update_many()
                .col_expr(
                    task_unit_template::Column::LatestVersion,
                    SqlExpr::value(next),
                )
                .col_expr(task_unit_template::Column::UpdatedAt, SqlExpr::value(now));
            if let Some(name) = name {
                update = update.col_expr(
                    task_unit_template::Column::Name,
                    SqlExpr::value(name.to_owned()),
                );
            }
            update
                .filter(task_unit_template::Column::WorkspaceId.eq(doc.workspace))
                .filter(task_unit_template::Column::Id.eq(doc.id))
                .filter(task_unit_template::Column::DeletedAt.is_null())
                .filter(task_unit_template::Column::LatestVersion.eq(base))
                .exec(conn)
                .await?
                .rows_affected
        }
        DocKind::ScoringModel if base == 0 => {
            scoring_model::Entity::insert(scoring_model::ActiveModel {
                workspace_id: Set(doc.workspace.to_owned()),
                latest_version: Set(next),
                published_version: Set(None),
                rescore_version: Set(None),
                rescore_done: Set(0),
                rescore_total: Set(0),
                rescore_started_at: Set(None),
                rescore_finished_at: Set(None),
                rescore_owner: Set(None),
                rescore_lease_until: Set(None),
                rescore_backfill: Set(false),
                updated_at: Set(now),
            })
            .on_conflict(
                OnConflict::column(scoring_model::Column::WorkspaceId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?
        }
        DocKind::ScoringModel => {
            scoring_model::Entity::update_many()
                .col_expr(scoring_model::Column::LatestVersion, SqlExpr::value(next))
                .col_expr(scoring_model::Column::UpdatedAt, SqlExpr::value(now))
                .filter(scoring_model::Column::WorkspaceId.eq(doc.workspace))
                .filter(scoring_model::Column::LatestVersion.eq(base))
                .exec(conn)
                .await?
                .rows_affected
        }
    };
    Ok(moved == 1)
}

/// Points the head at `v`. A flow's trigger is routed to it (a webhook path is unique per
/// workspace); a scoring model's rescore to it is recorded as started (the caller runs it
/// once the transaction commits); a workspace document's text becomes `v`'s (callers
/// publish only its latest version: saves and rollbacks).
pub(super) async fn publish<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    v: &Version,
) -> Result<(), DocError> {
    let now = Utc::now();
    match doc.kind {
        kind @ (DocKind::ContactPolicy
        | DocKind::UrlCategories
        | DocKind::SignalLexicon
        | DocKind::NbaRules
        | DocKind::Limits) => {
            workspace_doc::Entity::update_many()
                .col_expr(workspace_doc::Column::Doc, SqlExpr::value(v.doc.clone()))
                .col_expr(
                    workspace_doc::Column::Author,
                    SqlExpr::value(v.author.clone()),
                )
                .col_expr(workspace_doc::Column::UpdatedAt, SqlExpr::value(now))
                .filter(workspace_doc::Column::WorkspaceId.eq(doc.workspace))
                .filter(workspace_doc::Column::Kind.eq(kind))
                .exec(conn)
                .await?;
        }
        // Its head is its latest version, moved by the save.
        DocKind::TaskUnitTemplate => {}
        DocKind::Flow => {
            route_trigger(conn, doc, v).await?;
            flow::Entity::update_many()
                .col_expr(
                    flow::Column::PublishedVersion,
                    SqlExpr::value(Some(v.number)),
                )
                .col_expr(flow::Column::UpdatedAt, SqlExpr::value(now))
                .filter(flow::Column::Id.eq(doc.id))
                .filter(flow::Column::WorkspaceId.eq(doc.workspace))
                .exec(conn)
                .await?;
        }
        DocKind::ScoringModel => {
            scoring_model::Entity::update_many()
                .col_expr(
                    scoring_model::Column::PublishedVersion,
                    SqlExpr::value(Some(v.number)),
                )
                .col_expr(
                    scoring_model::Column::RescoreVersion,
                    SqlExpr::value(Some(v.number)),
                )
                .col_expr(scoring_model::Column::RescoreDone, SqlExpr::value(0i64))
                .col_expr(scoring_model::Column::RescoreTotal, SqlExpr::value(0i64))
                .col_expr(
                    scoring_model::Column::RescoreStartedAt,
                    SqlExpr::value(Some(now)),
                )
                .col_expr(
                    scoring_model::Column::RescoreFinishedAt,
                    SqlExpr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                // The new rescore is free for the first process to claim.
                .col_expr(
                    scoring_model::Column::RescoreOwner,
                    SqlExpr::value(Option::<String>::None),
                )
                .col_expr(
                    scoring_model::Column::RescoreLeaseUntil,
                    SqlExpr::value(Option::<i64>::None),
                )
                // A publish starts flows unless it asks to be a backfill (set after this,
                // in the same transaction).
                .col_expr(
                    scoring_model::Column::RescoreBackfill,
                    SqlExpr::value(false),
                )
                .col_expr(scoring_model::Column::UpdatedAt, SqlExpr::value(now))
                .filter(scoring_model::Column::WorkspaceId.eq(doc.workspace))
                .exec(conn)
                .await?;
        }
    }
    Ok(())
}

/// Records which published flow the trigger of `v` routes to.
async fn route_trigger<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    v: &Version,
) -> Result<(), DocError> {
    let parsed: FlowDoc = serde_json::from_str(&v.doc).map_err(|e| DocError::Corrupt {
        what: doc.describe(),
        number: v.number,
        reason: e.to_string(),
    })?;
    let trigger = parsed
        .trigger()
        .ok_or_else(|| DocError::Unpublishable("that version has no single trigger".into()))?;
    let config: TriggerConfig = serde_json::from_value(trigger.config.clone())
        .map_err(|e| DocError::Unpublishable(e.to_string()))?;
    let (kind, key) = (config.kind, config.route_key().map(str::to_owned));
    if kind == TriggerKind::Webhook {
        let clash = flow_trigger::Entity::find()
            .filter(flow_trigger::Column::WorkspaceId.eq(doc.workspace))
            .filter(flow_trigger::Column::Kind.eq(kind.as_str()))
            .filter(flow_trigger::Column::Key.eq(key.clone()))
            .filter(flow_trigger::Column::FlowId.ne(doc.id))
            .one(conn)
            .await?;
        if let Some(other) = clash {
            return Err(DocError::Conflict(format!(
                "webhook path {:?} is already used by published flow {}",
                key.unwrap_or_default(),
                other.flow_id
            )));
        }
    }
    flow_trigger::Entity::insert(flow_trigger::ActiveModel {
        flow_id: Set(doc.id.to_owned()),
        workspace_id: Set(doc.workspace.to_owned()),
        kind: Set(kind.as_str().into()),
        key: Set(key),
    })
    .on_conflict(
        OnConflict::column(flow_trigger::Column::FlowId)
            .update_columns([flow_trigger::Column::Kind, flow_trigger::Column::Key])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
