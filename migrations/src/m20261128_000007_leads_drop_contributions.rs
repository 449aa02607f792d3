//! Leads no longer store their score's contributions: the explanation is recomputed from
//! the published model when a lead is read, so a rescore writes only the score columns.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leads {
    Table,
    Contributions,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .drop_column(Leads::Contributions)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)] // as for `up`
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .add_column(json_binary(Leads::Contributions).default("[]"))
                .to_owned(),
        )
        .await
    }
}
