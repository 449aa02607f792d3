//! Scoring models: which process holds the running rescore, and until when.
//!
//! Several processes share one PostgreSQL database and each resumes unfinished rescores;
//! `rescore_owner` and `rescore_lease_until` (epoch ms) let exactly one of them do a
//! rescore, and another take it over when the holder stops renewing the lease.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScoringModels {
    Table,
    RescoreOwner,
    RescoreLeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(ScoringModels::Table)
                .add_column(string_null(ScoringModels::RescoreOwner))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(ScoringModels::Table)
                .add_column(big_integer_null(ScoringModels::RescoreLeaseUntil))
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            ScoringModels::RescoreOwner,
            ScoringModels::RescoreLeaseUntil,
        ] {
            m.alter_table(
                Table::alter()
                    .table(ScoringModels::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
