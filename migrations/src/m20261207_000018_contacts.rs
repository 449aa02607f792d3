//! The contact policy's memory: every contact a run made with a customer (counted against
//! the caps, written before the call in the run's checkpoint transaction, so a crash can
//! neither lose the count nor make the call twice), and every revocation of a lead's
//! consent to be contacted.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contacts {
    Table,
    WorkspaceId,
    /// The call's idempotency key: one contact per call, whatever the restarts.
    IdempotencyKey,
    LeadId,
    /// `identity:value` of the customer the call named.
    Recipient,
    Channel,
    RunId,
    Node,
    /// `pending` (decided, call under way), `sent`, `unknown` (may have been delivered),
    /// `failed` (nothing was sent).
    State,
    /// Epoch milliseconds of the decision.
    AtMs,
}

#[derive(DeriveIden)]
enum ConsentRevocations {
    Table,
    WorkspaceId,
    Id,
    LeadId,
    /// `None`: every channel.
    Channel,
    Reason,
    /// `event` (the event id in `event_id`) or `admin` (the user in `author`).
    Source,
    EventId,
    Author,
    AtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Contacts::Table)
                .col(string(Contacts::WorkspaceId))
                .col(string(Contacts::IdempotencyKey))
                .col(string_null(Contacts::LeadId))
                .col(string(Contacts::Recipient))
                .col(string(Contacts::Channel))
                .col(string(Contacts::RunId))
                .col(string(Contacts::Node))
                .col(string(Contacts::State))
                .col(big_integer(Contacts::AtMs))
                .primary_key(
                    Index::create()
                        .col(Contacts::WorkspaceId)
                        .col(Contacts::IdempotencyKey),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("contacts_by_recipient")
                .table(Contacts::Table)
                .col(Contacts::WorkspaceId)
                .col(Contacts::Recipient)
                .col(Contacts::AtMs)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("contacts_by_lead")
                .table(Contacts::Table)
                .col(Contacts::WorkspaceId)
                .col(Contacts::LeadId)
                .col(Contacts::AtMs)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConsentRevocations::Table)
                .col(string(ConsentRevocations::WorkspaceId))
                .col(string(ConsentRevocations::Id))
                .col(string(ConsentRevocations::LeadId))
                .col(string_null(ConsentRevocations::Channel))
                .col(text(ConsentRevocations::Reason))
                .col(string(ConsentRevocations::Source))
                .col(string_null(ConsentRevocations::EventId))
                .col(string_null(ConsentRevocations::Author))
                .col(big_integer(ConsentRevocations::AtMs))
                .primary_key(
                    Index::create()
                        .col(ConsentRevocations::WorkspaceId)
                        .col(ConsentRevocations::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("consent_revocations_by_lead")
                .table(ConsentRevocations::Table)
                .col(ConsentRevocations::WorkspaceId)
                .col(ConsentRevocations::LeadId)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConsentRevocations::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Contacts::Table).to_owned())
            .await
    }
}
