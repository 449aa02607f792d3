//! Unit templates in the one document store: created with their head row, saved on a base
//! version (a save is in force at once), cloned with their lineage (the template and
//! version a clone started from, so its changes since can be shown), removed softly (units
//! made from a template keep the version they were made from).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr as SqlExpr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use trellis_model::task_units::Template;

use super::UnitError;
use crate::db::entities::task_unit_template;
use crate::docs::{self, Author, DocRef, Edit};

/// A template as the list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TemplateSummary {
    pub id: String,
    pub name: String,
    pub version: i32,
    /// The template and version it was cloned from.
    pub cloned_from: Option<Lineage>,
    pub updated_at: DateTime<Utc>,
}

/// Where a cloned template came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lineage {
    pub template: String,
    pub version: i32,
}

/// A template's id: lowercase letters, digits, `-` and `_`, 1–64 characters.
pub fn check_id(id: &str) -> Result<(), UnitError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(UnitError::invalid(
            "/id",
            format!("{id:?} is not a template id: use a-z, 0-9, - and _, at most 64"),
        ))
    }
}

/// Creates template `id` with `template` (checked by the caller) as its version 1.
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
    template: &Template,
    lineage: Option<&Lineage>,
    author: Author<'_>,
    message: &str,
) -> Result<i32, UnitError> {
    check_id(id)?;
    let taken = task_unit_template::Entity::find_by_id((workspace.to_owned(), id.to_owned()))
        .one(conn)
        .await?;
    if taken.is_some() {
        return Err(UnitError::invalid(
            "/id",
            format!("a template {id:?} exists (or existed); choose another id"),
        ));
    }
    let now = Utc::now();
    task_unit_template::Entity::insert(task_unit_template::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        id: Set(id.to_owned()),
        name: Set(template.name.clone()),
        latest_version: Set(0),
        cloned_from: Set(lineage.map(|l| l.template.clone())),
        cloned_version: Set(lineage.map(|l| l.version)),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    save(conn, workspace, id, 0, template, author, message).await
}

/// Saves `template` (checked by the caller) on `base`; gives the new version.
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
    base: i32,
    template: &Template,
    author: Author<'_>,
    message: &str,
) -> Result<i32, UnitError> {
    let body = serde_json::to_value(template).map_err(|e| UnitError::Corrupt(e.to_string()))?;
    let hash = trellis_model::canonical::content_hash(&body);
    Ok(docs::save(
        conn,
        DocRef::template(workspace, id),
        Edit {
            base,
            body: &body,
            hash,
            message,
        },
        author,
    )
    .await?)
}

/// The workspace's templates, by name.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<Vec<TemplateSummary>, UnitError> {
    Ok(task_unit_template::Entity::find()
        .filter(task_unit_template::Column::WorkspaceId.eq(workspace))
        .filter(task_unit_template::Column::DeletedAt.is_null())
        .order_by_asc(task_unit_template::Column::Name)
        .order_by_asc(task_unit_template::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(summary)
        .collect())
}

fn summary(t: task_unit_template::Model) -> TemplateSummary {
    TemplateSummary {
        cloned_from: t
            .cloned_from
            .zip(t.cloned_version)
            .map(|(template, version)| Lineage { template, version }),
        id: t.id,
        name: t.name,
        version: t.latest_version,
        updated_at: t.updated_at,
    }
}

/// A template: its head and the version asked for (the latest when `None`), parsed.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
    version: Option<i32>,
) -> Result<(TemplateSummary, i32, Template), UnitError> {
    let doc = DocRef::template(workspace, id);
    let head = task_unit_template::Entity::find_by_id((workspace.to_owned(), id.to_owned()))
        .filter(task_unit_template::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or_else(|| UnitError::Missing(format!("there is no template {id:?}")))?;
    let number = version.unwrap_or(head.latest_version);
    let v = docs::version(conn, doc, number).await?;
    let template = serde_json::from_str(&v.doc).map_err(|e| {
        UnitError::Corrupt(format!(
            "template {id:?} version {number} does not read: {e}"
        ))
    })?;
    Ok((summary(head), number, template))
}

/// Removes template `id` from the list (its versions stay: units name them).
pub async fn remove<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
) -> Result<bool, UnitError> {
    Ok(task_unit_template::Entity::update_many()
        .col_expr(
            task_unit_template::Column::DeletedAt,
            SqlExpr::value(Some(Utc::now())),
        )
        .filter(task_unit_template::Column::WorkspaceId.eq(workspace))
        .filter(task_unit_template::Column::Id.eq(id))
        .filter(task_unit_template::Column::DeletedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}
