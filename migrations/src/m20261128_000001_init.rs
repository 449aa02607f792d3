//! The foundation schema: workspaces, tokens, flows and versions, runs and their journal,
//! event subscriptions, events and the audit log. Every row carries its workspace.

// `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    WorkspaceId,
    Name,
    Role,
    TokenHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Flows {
    Table,
    Id,
    WorkspaceId,
    Name,
    LatestVersion,
    PublishedVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FlowVersions {
    Table,
    WorkspaceId,
    FlowId,
    Number,
    Hash,
    Doc,
    Author,
    Message,
    CreatedAt,
}

#[derive(DeriveIden)]
enum FlowTriggers {
    Table,
    WorkspaceId,
    FlowId,
    Kind,
    Key,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    WorkspaceId,
    FlowId,
    Version,
    Status,
    Trigger,
    State,
    StateRev,
    Error,
    WakeAt,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum RunSteps {
    Table,
    WorkspaceId,
    RunId,
    Seq,
    NodeId,
    NodeType,
    Visit,
    Attempt,
    Status,
    Input,
    Output,
    Error,
    StartedAt,
    FinishedAt,
    IdempotencyKey,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    WorkspaceId,
    RunId,
    NodeId,
    Event,
    Matcher,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    WorkspaceId,
    Id,
    Name,
    Lead,
    Properties,
    Timestamp,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    WorkspaceId,
    Actor,
    Action,
    Target,
    Detail,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Workspaces::Table)
                .col(string(Workspaces::Id).primary_key())
                .col(string(Workspaces::Name))
                .col(timestamp_with_time_zone(Workspaces::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .col(string(ApiTokens::Id).primary_key())
                .col(string(ApiTokens::WorkspaceId))
                .col(string(ApiTokens::Name))
                .col(string(ApiTokens::Role))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::WorkspaceId)
                        .to(Workspaces::Table, Workspaces::Id),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Flows::Table)
                .col(string(Flows::Id).primary_key())
                .col(string(Flows::WorkspaceId))
                .col(string(Flows::Name))
                .col(integer(Flows::LatestVersion))
                .col(integer_null(Flows::PublishedVersion))
                .col(timestamp_with_time_zone(Flows::CreatedAt))
                .col(timestamp_with_time_zone(Flows::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Flows::Table, Flows::WorkspaceId)
                        .to(Workspaces::Table, Workspaces::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_flows_workspace")
                .table(Flows::Table)
                .col(Flows::WorkspaceId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(FlowVersions::Table)
                .col(string(FlowVersions::WorkspaceId))
                .col(string(FlowVersions::FlowId))
                .col(integer(FlowVersions::Number))
                .col(string(FlowVersions::Hash))
                // Text, not json/jsonb: a version is kept byte for byte as written, key order
                // included (`set` evaluates its `vars` in document order; jsonb sorts keys).
                .col(text(FlowVersions::Doc))
                .col(string(FlowVersions::Author))
                .col(text(FlowVersions::Message))
                .col(timestamp_with_time_zone(FlowVersions::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(FlowVersions::FlowId)
                        .col(FlowVersions::Number),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(FlowVersions::Table, FlowVersions::FlowId)
                        .to(Flows::Table, Flows::Id),
                )
                .to_owned(),
        )
        .await?;

        // The published version's trigger, for routing hooks and events to flows.
        m.create_table(
            Table::create()
                .table(FlowTriggers::Table)
                .col(string(FlowTriggers::FlowId).primary_key())
                .col(string(FlowTriggers::WorkspaceId))
                .col(string(FlowTriggers::Kind))
                .col(string_null(FlowTriggers::Key))
                .foreign_key(
                    ForeignKey::create()
                        .from(FlowTriggers::Table, FlowTriggers::FlowId)
                        .to(Flows::Table, Flows::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_flow_triggers_route")
                .table(FlowTriggers::Table)
                .col(FlowTriggers::WorkspaceId)
                .col(FlowTriggers::Kind)
                .col(FlowTriggers::Key)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Runs::Table)
                // `wake_at` and `lease_until` are Unix epoch milliseconds: compared in SQL
                // on both backends without time-zone or text-format pitfalls.
                .col(string(Runs::Id).primary_key())
                .col(string(Runs::WorkspaceId))
                .col(string(Runs::FlowId))
                .col(integer(Runs::Version))
                .col(string(Runs::Status))
                .col(json_binary(Runs::Trigger))
                .col(json_binary(Runs::State))
                .col(big_integer(Runs::StateRev))
                .col(text_null(Runs::Error))
                .col(big_integer_null(Runs::WakeAt))
                .col(string_null(Runs::LeaseOwner))
                .col(big_integer_null(Runs::LeaseUntil))
                .col(timestamp_with_time_zone(Runs::CreatedAt))
                .col(timestamp_with_time_zone(Runs::UpdatedAt))
                .col(timestamp_with_time_zone_null(Runs::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Runs::Table, Runs::FlowId)
                        .to(Flows::Table, Flows::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_runs_due")
                .table(Runs::Table)
                .col(Runs::Status)
                .col(Runs::WakeAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_runs_flow")
                .table(Runs::Table)
                .col(Runs::FlowId)
                .col(Runs::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RunSteps::Table)
                .col(string(RunSteps::WorkspaceId))
                .col(string(RunSteps::RunId))
                .col(big_integer(RunSteps::Seq))
                .col(string(RunSteps::NodeId))
                .col(string(RunSteps::NodeType))
                .col(integer(RunSteps::Visit))
                .col(integer(RunSteps::Attempt))
                .col(string(RunSteps::Status))
                .col(json_binary(RunSteps::Input))
                .col(json_binary(RunSteps::Output))
                .col(text_null(RunSteps::Error))
                .col(timestamp_with_time_zone(RunSteps::StartedAt))
                .col(timestamp_with_time_zone(RunSteps::FinishedAt))
                .col(string(RunSteps::IdempotencyKey))
                .primary_key(Index::create().col(RunSteps::RunId).col(RunSteps::Seq))
                .foreign_key(
                    ForeignKey::create()
                        .from(RunSteps::Table, RunSteps::RunId)
                        .to(Runs::Table, Runs::Id),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Subscriptions::Table)
                .col(string(Subscriptions::RunId).primary_key())
                .col(string(Subscriptions::WorkspaceId))
                .col(string(Subscriptions::NodeId))
                .col(string(Subscriptions::Event))
                .col(text_null(Subscriptions::Matcher))
                .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Subscriptions::Table, Subscriptions::RunId)
                        .to(Runs::Table, Runs::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_subscriptions_event")
                .table(Subscriptions::Table)
                .col(Subscriptions::WorkspaceId)
                .col(Subscriptions::Event)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(string(Events::WorkspaceId))
                .col(string(Events::Id))
                .col(string(Events::Name))
                .col(string_null(Events::Lead))
                .col(json_binary(Events::Properties))
                .col(timestamp_with_time_zone(Events::Timestamp))
                .col(timestamp_with_time_zone(Events::ReceivedAt))
                .primary_key(Index::create().col(Events::WorkspaceId).col(Events::Id))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(string(AuditLog::Id).primary_key())
                .col(string(AuditLog::WorkspaceId))
                .col(string(AuditLog::Actor))
                .col(string(AuditLog::Action))
                .col(string(AuditLog::Target))
                .col(json_binary(AuditLog::Detail))
                .col(timestamp_with_time_zone(AuditLog::At))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_audit_workspace")
                .table(AuditLog::Table)
                .col(AuditLog::WorkspaceId)
                .col(AuditLog::At)
                .to_owned(),
        )
        .await
    }
}
