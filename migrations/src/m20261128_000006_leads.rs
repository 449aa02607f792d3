//! The intent engine: leads and the identities that find them, accounts, the scoring model's
//! versions per workspace with its rescore progress, per-workspace signal lexicons and
//! next-best-action rules, and the lead each event was attributed to.

// `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leads {
    Table,
    WorkspaceId,
    Id,
    AccountId,
    Owner,
    Attributes,
    /// The scoring model's per-behaviour aggregates (`BehaviourState`).
    State,
    Score,
    Tier,
    Stage,
    Probability,
    /// The score's contributions, as last computed.
    Contributions,
    /// The model version that computed the score.
    ModelVersion,
    /// Epoch milliseconds the score was computed for.
    ScoredAt,
    LastEventAt,
    /// Set when an identify call merged this (anonymous) lead into another.
    MergedInto,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LeadIdentities {
    Table,
    WorkspaceId,
    /// `user_id`, `anonymous_id`, `external_contact_id`, `email`, `phone`.
    Kind,
    Value,
    LeadId,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    WorkspaceId,
    Id,
    Name,
    Attributes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ScoringModels {
    Table,
    WorkspaceId,
    LatestVersion,
    PublishedVersion,
    /// The version being rescored into every lead, and how far it got.
    RescoreVersion,
    RescoreDone,
    RescoreTotal,
    RescoreStartedAt,
    RescoreFinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScoringModelVersions {
    Table,
    WorkspaceId,
    Number,
    Hash,
    Doc,
    Author,
    Message,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WorkspaceDocs {
    Table,
    WorkspaceId,
    /// `signal_lexicon` or `nba_rules`.
    Kind,
    Doc,
    Author,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    WorkspaceId,
    LeadId,
    Timestamp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Leads::Table)
                .col(string(Leads::WorkspaceId))
                .col(string(Leads::Id))
                .col(string_null(Leads::AccountId))
                .col(string_null(Leads::Owner))
                .col(json_binary(Leads::Attributes))
                .col(json_binary(Leads::State))
                .col(double(Leads::Score))
                .col(string(Leads::Tier))
                .col(string(Leads::Stage))
                .col(double_null(Leads::Probability))
                .col(json_binary(Leads::Contributions))
                .col(integer_null(Leads::ModelVersion))
                .col(big_integer(Leads::ScoredAt))
                .col(big_integer_null(Leads::LastEventAt))
                .col(string_null(Leads::MergedInto))
                .col(timestamp_with_time_zone(Leads::CreatedAt))
                .col(timestamp_with_time_zone(Leads::UpdatedAt))
                .primary_key(Index::create().col(Leads::WorkspaceId).col(Leads::Id))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("leads_by_score")
                .table(Leads::Table)
                .col(Leads::WorkspaceId)
                .col(Leads::Score)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LeadIdentities::Table)
                .col(string(LeadIdentities::WorkspaceId))
                .col(string(LeadIdentities::Kind))
                .col(string(LeadIdentities::Value))
                .col(string(LeadIdentities::LeadId))
                .primary_key(
                    Index::create()
                        .col(LeadIdentities::WorkspaceId)
                        .col(LeadIdentities::Kind)
                        .col(LeadIdentities::Value),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("lead_identities_by_lead")
                .table(LeadIdentities::Table)
                .col(LeadIdentities::WorkspaceId)
                .col(LeadIdentities::LeadId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Accounts::Table)
                .col(string(Accounts::WorkspaceId))
                .col(string(Accounts::Id))
                .col(string(Accounts::Name))
                .col(json_binary(Accounts::Attributes))
                .col(timestamp_with_time_zone(Accounts::CreatedAt))
                .primary_key(Index::create().col(Accounts::WorkspaceId).col(Accounts::Id))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScoringModels::Table)
                .col(string(ScoringModels::WorkspaceId).primary_key())
                .col(integer(ScoringModels::LatestVersion))
                .col(integer_null(ScoringModels::PublishedVersion))
                .col(integer_null(ScoringModels::RescoreVersion))
                .col(big_integer(ScoringModels::RescoreDone))
                .col(big_integer(ScoringModels::RescoreTotal))
                .col(timestamp_with_time_zone_null(
                    ScoringModels::RescoreStartedAt,
                ))
                .col(timestamp_with_time_zone_null(
                    ScoringModels::RescoreFinishedAt,
                ))
                .col(timestamp_with_time_zone(ScoringModels::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScoringModelVersions::Table)
                .col(string(ScoringModelVersions::WorkspaceId))
                .col(integer(ScoringModelVersions::Number))
                .col(string(ScoringModelVersions::Hash))
                .col(text(ScoringModelVersions::Doc))
                .col(string(ScoringModelVersions::Author))
                .col(text(ScoringModelVersions::Message))
                .col(timestamp_with_time_zone(ScoringModelVersions::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(ScoringModelVersions::WorkspaceId)
                        .col(ScoringModelVersions::Number),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WorkspaceDocs::Table)
                .col(string(WorkspaceDocs::WorkspaceId))
                .col(string(WorkspaceDocs::Kind))
                .col(text(WorkspaceDocs::Doc))
                .col(string(WorkspaceDocs::Author))
                .col(timestamp_with_time_zone(WorkspaceDocs::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(WorkspaceDocs::WorkspaceId)
                        .col(WorkspaceDocs::Kind),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Events::Table)
                .add_column(string_null(Events::LeadId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("events_by_lead")
                .table(Events::Table)
                .col(Events::WorkspaceId)
                .col(Events::LeadId)
                .col(Events::Timestamp)
                .to_owned(),
        )
        .await
    }
}
