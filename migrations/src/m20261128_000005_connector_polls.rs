//! Poll schedules: per workspace and connector, how often to call its `poll` export, with
//! what config, and the cursor it returned last.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectorPolls {
    Table,
    WorkspaceId,
    Name,
    Config,
    IntervalSeconds,
    Enabled,
    Cursor,
    /// Epoch milliseconds of the next poll; claiming a poll moves it on atomically.
    NextAt,
    LastPolledAt,
    LastError,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConnectorPolls::Table)
                .col(string(ConnectorPolls::WorkspaceId))
                .col(string(ConnectorPolls::Name))
                .col(json_binary(ConnectorPolls::Config))
                .col(big_integer(ConnectorPolls::IntervalSeconds))
                .col(boolean(ConnectorPolls::Enabled))
                .col(text_null(ConnectorPolls::Cursor))
                .col(big_integer(ConnectorPolls::NextAt))
                .col(timestamp_with_time_zone_null(ConnectorPolls::LastPolledAt))
                .col(text_null(ConnectorPolls::LastError))
                .col(timestamp_with_time_zone(ConnectorPolls::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(ConnectorPolls::WorkspaceId)
                        .col(ConnectorPolls::Name),
                )
                .to_owned(),
        )
        .await
    }
}
