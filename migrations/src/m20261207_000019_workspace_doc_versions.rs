//! Per-workspace documents (contact policy, URL categories, signal lexicon, next-best-action
//! rules, limits) become versioned documents of the one store: `workspace_docs` is their
//! head, and `version` the number of the version it holds (0: saved before versions were
//! kept; the server files such a row as version 1 when it starts).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WorkspaceDocs {
    Table,
    Version,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WorkspaceDocs::Table)
                .add_column(integer(WorkspaceDocs::Version).default(0))
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WorkspaceDocs::Table)
                .drop_column(WorkspaceDocs::Version)
                .to_owned(),
        )
        .await
    }
}
