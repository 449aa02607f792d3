//! What each connector's inbound deliveries (WeCom callbacks, tracking batches) came to,
//! for its admin page: how many were answered and how many failed, when the last of each
//! came, and why the last failure failed.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectorInbound {
    Table,
    WorkspaceId,
    Connector,
    OkTotal,
    FailedTotal,
    /// Epoch milliseconds of the latest delivery answered with success.
    LastOkMs,
    /// Epoch milliseconds of the latest failed delivery.
    LastFailedMs,
    /// The HTTP status the latest failure was answered with.
    LastStatus,
    /// Why it failed, in the connector's or the intake's words.
    LastFailure,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConnectorInbound::Table)
                .col(string(ConnectorInbound::WorkspaceId))
                .col(string(ConnectorInbound::Connector))
                .col(big_integer(ConnectorInbound::OkTotal).default(0))
                .col(big_integer(ConnectorInbound::FailedTotal).default(0))
                .col(big_integer_null(ConnectorInbound::LastOkMs))
                .col(big_integer_null(ConnectorInbound::LastFailedMs))
                .col(integer_null(ConnectorInbound::LastStatus))
                .col(text_null(ConnectorInbound::LastFailure))
                .primary_key(
                    Index::create()
                        .col(ConnectorInbound::WorkspaceId)
                        .col(ConnectorInbound::Connector),
                )
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConnectorInbound::Table).to_owned())
            .await
    }
}
