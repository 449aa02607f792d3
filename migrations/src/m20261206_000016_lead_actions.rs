//! Lead actions: the lead a run is about (so a flow can stop a lead's runs of another),
//! how long a lead is suppressed, the in-studio inbox that `notify` writes to, and whose
//! turn it is in each round-robin assignment.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    WorkspaceId,
    FlowId,
    LeadId,
}

#[derive(DeriveIden)]
enum Leads {
    Table,
    /// Epoch milliseconds until which no flow starts for the lead (`i64::MAX`: until
    /// lifted).
    SuppressedUntil,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    WorkspaceId,
    Id,
    Recipient,
    Title,
    Body,
    LeadId,
    FlowId,
    RunId,
    CreatedAt,
    ReadAt,
}

#[derive(DeriveIden)]
enum AssignmentTurns {
    Table,
    WorkspaceId,
    /// The assigning node: `<flow id>/<node id>`.
    Key,
    /// How many leads it has assigned: the next goes to `owners[turn % len]`.
    Turn,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(string_null(Runs::LeadId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("runs_by_lead")
                .table(Runs::Table)
                .col(Runs::WorkspaceId)
                .col(Runs::LeadId)
                .col(Runs::FlowId)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .add_column(big_integer_null(Leads::SuppressedUntil))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Notifications::Table)
                .col(string(Notifications::WorkspaceId))
                .col(string(Notifications::Id))
                .col(string(Notifications::Recipient))
                .col(string(Notifications::Title))
                .col(text(Notifications::Body))
                .col(string_null(Notifications::LeadId))
                .col(string_null(Notifications::FlowId))
                .col(string_null(Notifications::RunId))
                .col(timestamp_with_time_zone(Notifications::CreatedAt))
                .col(timestamp_with_time_zone_null(Notifications::ReadAt))
                .primary_key(
                    Index::create()
                        .col(Notifications::WorkspaceId)
                        .col(Notifications::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("notifications_by_recipient")
                .table(Notifications::Table)
                .col(Notifications::WorkspaceId)
                .col(Notifications::Recipient)
                .col(Notifications::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AssignmentTurns::Table)
                .col(string(AssignmentTurns::WorkspaceId))
                .col(string(AssignmentTurns::Key))
                .col(big_integer(AssignmentTurns::Turn))
                .primary_key(
                    Index::create()
                        .col(AssignmentTurns::WorkspaceId)
                        .col(AssignmentTurns::Key),
                )
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AssignmentTurns::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Notifications::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .drop_column(Leads::SuppressedUntil)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("runs_by_lead")
                .table(Runs::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .drop_column(Runs::LeadId)
                .to_owned(),
        )
        .await
    }
}
