//! The people directory task units are staffed from: one row per member (a WeCom user id),
//! the member as JSON (function, region, skills with levels, permissions, capacity, time
//! zone, manager), with the function beside it for look-ups by role.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum People {
    Table,
    WorkspaceId,
    Id,
    Name,
    Function,
    Doc,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(People::Table)
                .col(string(People::WorkspaceId))
                .col(string(People::Id))
                .col(string(People::Name))
                .col(string(People::Function))
                .col(text(People::Doc))
                .col(timestamp_with_time_zone(People::UpdatedAt))
                .primary_key(Index::create().col(People::WorkspaceId).col(People::Id))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("people_by_function")
                .table(People::Table)
                .col(People::WorkspaceId)
                .col(People::Function)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(People::Table).to_owned())
            .await
    }
}
