//! Database connection (SQLite by default, PostgreSQL by URL), migrations and first-start
//! bootstrap.

pub mod entities;
pub mod event_rows;
pub mod run_rows;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use trellis_migrations::{Migrator, MigratorTrait};

/// Where the database is.
#[derive(Clone, Debug)]
pub enum DbLocation {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL.
    Url(String),
}

impl DbLocation {
    /// `TRELLIS_DATABASE_URL` when set, else `<data_dir>/trellis.sqlite`.
    pub fn from_env(data_dir: &Path) -> Self {
        match std::env::var("TRELLIS_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => DbLocation::Url(url),
            _ => DbLocation::Sqlite(data_dir.join("trellis.sqlite")),
        }
    }
}

/// Connects and runs pending migrations.
pub async fn connect(location: &DbLocation) -> anyhow::Result<DatabaseConnection> {
    let db = match location {
        DbLocation::Sqlite(path) => {
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let mut opts = ConnectOptions::new(url);
            // One connection: SQLite has one writer anyway, and a single connection can
            // never hit SQLITE_BUSY_SNAPSHOT between a read and a write of one transaction.
            opts.max_connections(1)
                .min_connections(1)
                .sqlx_logging(false)
                .acquire_timeout(Duration::from_secs(10));
            opts.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
            Database::connect(opts)
                .await
                .with_context(|| format!("opening SQLite database {}", path.display()))?
        }
        DbLocation::Url(url) => {
            let mut opts = ConnectOptions::new(url.clone());
            opts.max_connections(16)
                .sqlx_logging(false)
                .acquire_timeout(Duration::from_secs(10));
            Database::connect(opts)
                .await
                .with_context(|| format!("connecting to {}", redact(url)))?
        }
    };
    Migrator::up(&db, None)
        .await
        .context("running migrations")?;
    version_unversioned_docs(&db)
        .await
        .context("keeping workspace documents saved before versions as version 1")?;
    Ok(db)
}

/// Files each workspace document saved before versions were kept (`workspace_docs.version`
/// 0) as its version 1, so its history starts with it and a rollback can return to it.
pub async fn version_unversioned_docs(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use entities::{doc_version, workspace_doc};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
    let rows = workspace_doc::Entity::find()
        .filter(workspace_doc::Column::Version.eq(0))
        .all(db)
        .await?;
    for row in rows {
        let txn = db.begin().await?;
        let moved = workspace_doc::Entity::update_many()
            .col_expr(workspace_doc::Column::Version, Expr::value(1))
            .filter(workspace_doc::Column::WorkspaceId.eq(&row.workspace_id))
            .filter(workspace_doc::Column::Kind.eq(row.kind))
            .filter(workspace_doc::Column::Version.eq(0))
            .exec(&txn)
            .await?
            .rows_affected;
        // Another process starting at the same time filed it.
        if moved == 1 {
            let body: serde_json::Value =
                serde_json::from_str(&row.doc).unwrap_or(serde_json::Value::Null);
            doc_version::Entity::insert(doc_version::ActiveModel::from(doc_version::Model {
                workspace_id: row.workspace_id.clone(),
                kind: row.kind,
                doc_id: row.workspace_id.clone(),
                number: 1,
                hash: trellis_model::canonical::content_hash(&body),
                doc: row.doc.clone(),
                author: row.author.clone(),
                message: "saved before versions were kept".into(),
                created_at: row.updated_at,
            }))
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
    }
    Ok(())
}

/// Connections for long reads beside `db` (already connected and migrated): on SQLite two
/// read-only connections, which WAL lets read while `db`'s one connection writes; on
/// PostgreSQL `db` itself.
pub async fn connect_reader(
    location: &DbLocation,
    db: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    let DbLocation::Sqlite(path) = location else {
        return Ok(db.clone());
    };
    let mut opts = ConnectOptions::new(format!("sqlite://{}?mode=ro", path.display()));
    opts.max_connections(2)
        .min_connections(0)
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10));
    // Rescores read pages of thousands of rows: let the driver's thread run ahead of the
    // reader rather than hand over each row (the default buffer is 50 rows).
    opts.map_sqlx_sqlite_opts(|o| {
        o.read_only(true)
            .busy_timeout(Duration::from_secs(10))
            .row_buffer_size(5_000)
    });
    Database::connect(opts)
        .await
        .with_context(|| format!("opening SQLite database {} to read", path.display()))
}

/// Hides the password of a database URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// PostgreSQL plans queries from table statistics that only `ANALYZE` refreshes (autovacuum
/// runs it in the background, where it is on), and a prepared statement keeps its plan
/// until they change. An import that grows `leads` from nothing to 100,000 rows would leave
/// every lookup by key planned for an empty table, a sequential scan each, and a rescore's
/// keyed updates with it. So after bulk writes the lead tables are analyzed when the
/// planner's row estimate for `leads` is off by more than a tenth. A no-op on SQLite, whose
/// planner assumes an index helps.
pub async fn refresh_lead_statistics(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait as _;
    if !is_postgres(db) {
        return Ok(());
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT (SELECT count(*) FROM leads)::float8, greatest(reltuples, 0)::float8 \
             FROM pg_class WHERE oid = 'leads'::regclass",
        ))
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let (actual, believed): (f64, f64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    if (actual - believed).abs() > believed * 0.1 + 100.0 {
        tracing::debug!(actual, believed, "analyzing the lead tables");
        db.execute_unprepared("ANALYZE leads, lead_scores, lead_identities, accounts")
            .await?;
    }
    Ok(())
}

/// A placeholder for the `n`th (1-based) statement parameter.
pub fn placeholder(backend: sea_orm::DatabaseBackend, n: usize) -> String {
    match backend {
        sea_orm::DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".into(),
    }
}

/// Appends to the audit log of `workspace`.
pub async fn audit<C: sea_orm::ConnectionTrait>(
    conn: &C,
    workspace: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    entities::audit::Entity::insert(entities::audit::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        workspace_id: Set(workspace.to_owned()),
        actor: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        detail: Set(detail),
        at: Set(chrono::Utc::now()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
