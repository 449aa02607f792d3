//! Schedule fires: one row per (flow, fire time), so a scheduled run starts exactly once
//! however many `trellis` processes share the database.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScheduleFires {
    Table,
    WorkspaceId,
    FlowId,
    /// Epoch milliseconds of the fire time.
    FireAt,
    RunId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScheduleFires::Table)
                .col(string(ScheduleFires::WorkspaceId))
                .col(string(ScheduleFires::FlowId))
                .col(big_integer(ScheduleFires::FireAt))
                .col(string(ScheduleFires::RunId))
                .primary_key(
                    Index::create()
                        .col(ScheduleFires::FlowId)
                        .col(ScheduleFires::FireAt),
                )
                .to_owned(),
        )
        .await
    }
}
