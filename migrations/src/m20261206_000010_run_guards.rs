//! Runs: a crash-loop guard and an index for retention.
//!
//! `interruptions` counts how many times in a row the run was found interrupted (its
//! process stopped while it was `running`) at the same `state_rev`, recorded in
//! `interrupted_rev`: a run that stopped its process twice at the same step is failed
//! rather than started a third time. `runs_by_finished` lets retention find finished runs
//! of a workspace by age without scanning the table.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    WorkspaceId,
    FinishedAt,
    Interruptions,
    InterruptedRev,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(integer(Runs::Interruptions).default(0))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(big_integer_null(Runs::InterruptedRev))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("runs_by_finished")
                .table(Runs::Table)
                .col(Runs::WorkspaceId)
                .col(Runs::FinishedAt)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("runs_by_finished")
                .table(Runs::Table)
                .to_owned(),
        )
        .await?;
        for column in [Runs::InterruptedRev, Runs::Interruptions] {
            m.alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
