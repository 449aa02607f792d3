//! The versioned-document store: every document kind (flows, scoring models, and the
//! documents to come) keeps immutable versions in `doc_versions` and a head (latest and
//! published version) with its kind. Saving names the version it started from and fails
//! when another was saved meanwhile; publishing points the head at a version; rolling back
//! copies an old version into a new one and publishes it. Every change is audited in the
//! same transaction.
//!
//! - this file: the store's operations and types;
//! - `heads`: where each kind keeps its head, and what publishing it also does (a workspace
//!   document, one per workspace such as the contact policy, is published as it is saved);
//! - `flows`: what only flows have (create with a name, list with the last run, archive).

mod flows;
mod heads;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;

use crate::db::entities::doc_version;
pub use crate::db::entities::doc_version::DocKind;
pub use flows::{
    FlowSummary, LastRun, archive_flow, create_flow, find_flow, list_flows, rename_flow,
};

/// One version of a document.
pub type Version = doc_version::Model;

/// A document: its kind and id in a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocRef<'a> {
    pub workspace: &'a str,
    pub kind: DocKind,
    pub id: &'a str,
}

impl<'a> DocRef<'a> {
    pub fn flow(workspace: &'a str, id: &'a str) -> DocRef<'a> {
        DocRef {
            workspace,
            kind: DocKind::Flow,
            id,
        }
    }

    /// The workspace's scoring model (one per workspace, named by it).
    pub fn scoring_model(workspace: &'a str) -> DocRef<'a> {
        DocRef {
            workspace,
            kind: DocKind::ScoringModel,
            id: workspace,
        }
    }

    /// The workspace's document of a kind kept one per workspace (one of
    /// [`DocKind::WORKSPACE`]: the contact policy, URL categories, …), named by it.
    pub fn workspace_doc(workspace: &'a str, kind: DocKind) -> DocRef<'a> {
        DocRef {
            workspace,
            kind,
            id: workspace,
        }
    }

    /// A task-unit template.
    pub fn template(workspace: &'a str, id: &'a str) -> DocRef<'a> {
        DocRef {
            workspace,
            kind: DocKind::TaskUnitTemplate,
            id,
        }
    }

    /// How the audit log names the document.
    fn target(&self) -> &'a str {
        match self.kind {
            DocKind::Flow | DocKind::TaskUnitTemplate => self.id,
            other => other.as_str(),
        }
    }

    /// The prefix of the document's audit actions.
    fn audit_prefix(&self) -> &'static str {
        match self.kind {
            DocKind::ScoringModel => "scoring",
            other => other.as_str(),
        }
    }

    /// The document as errors name it.
    fn describe(&self) -> String {
        match self.kind {
            DocKind::Flow => format!("flow {:?}", self.id),
            DocKind::ScoringModel => "the scoring model".into(),
            DocKind::TaskUnitTemplate => format!("task-unit template {:?}", self.id),
            DocKind::ContactPolicy => "the contact policy".into(),
            DocKind::UrlCategories => "the URL categories".into(),
            DocKind::SignalLexicon => "the signal lexicon".into(),
            DocKind::NbaRules => "the next-best-action rules".into(),
            DocKind::Limits => "the limits".into(),
        }
    }
}

/// Where a document's versions stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub latest: i32,
    pub published: Option<i32>,
}

/// Who changes a document (for the versions' author and the audit log).
#[derive(Clone, Copy, Debug)]
pub struct Author<'a> {
    pub name: &'a str,
}

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Missing(String),
    #[error("{what} has no version {number}")]
    NoVersion { what: String, number: i32 },
    /// Another version was saved after the one the edit started from.
    #[error(
        "version {current} was saved meanwhile; your edit is based on version {base}. Reload or merge, then save with base_version {current}"
    )]
    Stale { current: i32, base: i32 },
    /// The document was saved while a rollback was being made.
    #[error("{0} was saved meanwhile; retry the rollback")]
    Moved(String),
    /// Publishing would clash with another document (a webhook path in use).
    #[error("{0}")]
    Conflict(String),
    /// The version cannot be published as it is (a flow without a single trigger).
    #[error("{0}")]
    Unpublishable(String),
    /// A stored version does not read.
    #[error("the stored {what} version {number} does not read: {reason}")]
    Corrupt {
        what: String,
        number: i32,
        reason: String,
    },
}

impl DocError {
    /// `doc` does not exist (a deleted flow does not either).
    pub fn missing(doc: DocRef<'_>) -> DocError {
        DocError::Missing(match doc.kind {
            DocKind::Flow => format!("flow {:?} does not exist", doc.id),
            DocKind::TaskUnitTemplate => {
                format!("task-unit template {:?} does not exist", doc.id)
            }
            DocKind::ScoringModel => {
                "this workspace has no scoring model yet; save one first".into()
            }
            _ => format!(
                "this workspace has not saved its own {} yet; it uses the built-in one",
                doc.describe().trim_start_matches("the ")
            ),
        })
    }
}

/// The head of `doc`, or [`DocError::Missing`].
pub async fn head<C: ConnectionTrait>(conn: &C, doc: DocRef<'_>) -> Result<Head, DocError> {
    heads::read(conn, doc)
        .await?
        .ok_or_else(|| DocError::missing(doc))
}

/// The head of `doc`, if it exists (a workspace document the workspace never saved does
/// not).
pub async fn find_head<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
) -> Result<Option<Head>, DocError> {
    Ok(heads::read(conn, doc).await?)
}

/// One version of `doc`, or [`DocError::NoVersion`].
pub async fn version<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    number: i32,
) -> Result<Version, DocError> {
    stored(conn, doc.kind, doc.id, number)
        .await?
        .filter(|v| v.workspace_id == doc.workspace)
        .ok_or_else(|| DocError::NoVersion {
            what: doc.describe(),
            number,
        })
}

/// A version by kind, id and number, whatever the workspace (for readers that already
/// hold a reference checked elsewhere, such as a run's pinned flow version).
pub async fn stored<C: ConnectionTrait>(
    conn: &C,
    kind: DocKind,
    id: &str,
    number: i32,
) -> Result<Option<Version>, sea_orm::DbErr> {
    doc_version::Entity::find_by_id((kind, id.to_owned(), number))
        .one(conn)
        .await
}

/// Every version of `doc`, newest first.
pub async fn versions<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
) -> Result<Vec<Version>, DocError> {
    Ok(doc_version::Entity::find()
        .filter(doc_version::Column::Kind.eq(doc.kind))
        .filter(doc_version::Column::DocId.eq(doc.id))
        .filter(doc_version::Column::WorkspaceId.eq(doc.workspace))
        .order_by_desc(doc_version::Column::Number)
        .all(conn)
        .await?)
}

/// Two versions' documents, parsed as `T` (for a kind's semantic diff).
pub async fn pair<C: ConnectionTrait, T: serde::de::DeserializeOwned>(
    conn: &C,
    doc: DocRef<'_>,
    from: i32,
    to: i32,
) -> Result<(T, T), DocError> {
    let parse = |v: Version| {
        serde_json::from_str::<T>(&v.doc).map_err(|e| DocError::Corrupt {
            what: doc.describe(),
            number: v.number,
            reason: e.to_string(),
        })
    };
    let a = version(conn, doc, from).await?;
    let b = version(conn, doc, to).await?;
    Ok((parse(a)?, parse(b)?))
}

/// Saves `edit` as the version after its base (0 for a document's first version, where the
/// kind allows it: a flow is created with [`create_flow`]) and audits it; gives the new
/// number.
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    edit: Edit<'_>,
    author: Author<'_>,
) -> Result<i32, DocError> {
    save_as(conn, doc, edit, author, "save").await
}

/// [`save`], audited as `<kind>.<action>` (a model a suggestion wrote, for one).
pub async fn save_as<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    edit: Edit<'_>,
    author: Author<'_>,
    action: &str,
) -> Result<i32, DocError> {
    let v = append(
        conn,
        doc,
        edit.base,
        edit.body,
        edit.hash,
        author,
        edit.message,
        // A save names the flow as its document does.
        edit.body.get("name").and_then(Value::as_str),
    )
    .await?;
    // A workspace document or a unit template applies as it is saved.
    if doc.kind.applies_on_save() {
        heads::publish(conn, doc, &v).await?;
    }
    let next = v.number;
    audit(
        conn,
        doc,
        author,
        action,
        serde_json::json!({ "version": next }),
    )
    .await?;
    Ok(next)
}

/// A new version of a document, as an editor saves it.
#[derive(Clone, Debug)]
pub struct Edit<'a> {
    /// The version the edit started from (0 for a document's first).
    pub base: i32,
    pub body: &'a Value,
    /// The content hash readers see.
    pub hash: String,
    pub message: &'a str,
}

/// Points the head of `doc` at version `number` (new runs or scores use it) and audits
/// it; gives the version published before.
pub async fn publish<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    number: i32,
    author: Author<'_>,
) -> Result<Option<i32>, DocError> {
    let h = head(conn, doc).await?;
    let v = version(conn, doc, number).await?;
    heads::publish(conn, doc, &v).await?;
    audit(
        conn,
        doc,
        author,
        "publish",
        serde_json::json!({ "version": number, "previous": h.published }),
    )
    .await?;
    Ok(h.published)
}

/// What a rollback did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolledBack {
    /// The new version, a copy of `restored`, now published.
    pub version: i32,
    pub restored: i32,
    pub previous: Option<i32>,
}

/// Copies version `number` into a new version and publishes it; history is kept.
pub async fn rollback<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    number: i32,
    author: Author<'_>,
) -> Result<RolledBack, DocError> {
    let h = head(conn, doc).await?;
    let old = version(conn, doc, number).await?;
    let message = format!("rollback to version {}", old.number);
    let v = append(
        conn,
        doc,
        h.latest,
        &old.doc_value(),
        old.hash.clone(),
        author,
        &message,
        // A rollback restores the content, not the name the flow had then.
        None,
    )
    .await
    .map_err(|e| match e {
        DocError::Stale { .. } => DocError::Moved(doc.describe()),
        other => other,
    })?;
    let next = v.number;
    heads::publish(conn, doc, &v).await?;
    audit(
        conn,
        doc,
        author,
        "rollback",
        serde_json::json!({ "to": old.number, "version": next, "previous": h.published }),
    )
    .await?;
    Ok(RolledBack {
        version: next,
        restored: old.number,
        previous: h.published,
    })
}

/// Moves the head from `base` to the next version and inserts it (no audit); gives it.
/// A flow's head takes `name` when given.
#[allow(clippy::too_many_arguments)] // reason: each is a distinct fact of the version; a struct would only rename them
async fn append<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    base: i32,
    body: &Value,
    hash: String,
    author: Author<'_>,
    message: &str,
    name: Option<&str>,
) -> Result<Version, DocError> {
    if !heads::advance(conn, doc, base, name).await? {
        return Err(match heads::read(conn, doc).await? {
            Some(h) => DocError::Stale {
                current: h.latest,
                base,
            },
            // A flow or a template is created first; a scoring model starts with its first
            // save.
            None if matches!(doc.kind, DocKind::Flow | DocKind::TaskUnitTemplate) => {
                DocError::missing(doc)
            }
            None => DocError::Stale { current: 0, base },
        });
    }
    Ok(insert_version(conn, doc, base + 1, body, hash, author, message).await?)
}

/// Inserts version `number` of `doc` (moving the head is the caller's); gives it.
async fn insert_version<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    number: i32,
    body: &Value,
    hash: String,
    author: Author<'_>,
    message: &str,
) -> Result<Version, sea_orm::DbErr> {
    let v = Version {
        workspace_id: doc.workspace.to_owned(),
        kind: doc.kind,
        doc_id: doc.id.to_owned(),
        number,
        hash,
        doc: body.to_string(),
        author: author.name.to_owned(),
        message: message.to_owned(),
        created_at: Utc::now(),
    };
    doc_version::Entity::insert(doc_version::ActiveModel::from(v.clone()))
        .exec_without_returning(conn)
        .await?;
    Ok(v)
}

/// Appends `<kind>.<action>` on `doc` to the audit log.
async fn audit<C: ConnectionTrait>(
    conn: &C,
    doc: DocRef<'_>,
    author: Author<'_>,
    action: &str,
    detail: Value,
) -> Result<(), sea_orm::DbErr> {
    crate::db::audit(
        conn,
        doc.workspace,
        author.name,
        &format!("{}.{action}", doc.audit_prefix()),
        doc.target(),
        detail,
    )
    .await
}
