//! Scoring models: whether the running rescore is a backfill, which moves leads' scores and
//! tiers without starting the flows that react to tier changes. Kept with the rescore, so a
//! rescore resumed after a restart (or taken over by another process) stays one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScoringModels {
    Table,
    RescoreBackfill,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ScoringModels::Table)
                .add_column(boolean(ScoringModels::RescoreBackfill).default(false))
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ScoringModels::Table)
                .drop_column(ScoringModels::RescoreBackfill)
                .to_owned(),
        )
        .await
    }
}
