//! Events: an index by name and arrival, for the studio's event catalog (each event name's
//! count and recent properties) and for the recent events a test run samples.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    WorkspaceId,
    Name,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("events_by_name")
                .table(Events::Table)
                .col(Events::WorkspaceId)
                .col(Events::Name)
                .col(Events::ReceivedAt)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("events_by_name")
                .table(Events::Table)
                .to_owned(),
        )
        .await
    }
}
