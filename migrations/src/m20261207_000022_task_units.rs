//! Task units: unit templates (versioned documents; this is their head, with the template
//! each was cloned from), the units themselves, their members (the load and collaboration
//! history matching reads), their milestones (deadlines the scheduler watches) and their
//! logs (ids are UUIDv7, so a log reads in order by time, then id).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TaskUnitTemplates {
    Table,
    WorkspaceId,
    Id,
    Name,
    LatestVersion,
    ClonedFrom,
    ClonedVersion,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum TaskUnits {
    Table,
    Id,
    WorkspaceId,
    TemplateId,
    TemplateVersion,
    Name,
    Status,
    Priority,
    AccountId,
    LeadId,
    OriginKey,
    Goal,
    Staffing,
    Trigger,
    WecomGroup,
    CreatedBy,
    CreatedAt,
    ClosedAt,
}

#[derive(DeriveIden)]
enum TaskUnitMembers {
    Table,
    UnitId,
    MemberId,
    WorkspaceId,
    Role,
    InvitedAt,
    RespondedAt,
}

#[derive(DeriveIden)]
enum TaskUnitMilestones {
    Table,
    UnitId,
    MilestoneId,
    WorkspaceId,
    Position,
    Name,
    OwnerRole,
    DueAt,
    RemindAt,
    DoneAt,
    DoneBy,
    Reminded,
    Overdue,
}

#[derive(DeriveIden)]
enum TaskUnitLog {
    Table,
    Id,
    UnitId,
    WorkspaceId,
    At,
    Actor,
    Action,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TaskUnitTemplates::Table)
                .col(string(TaskUnitTemplates::WorkspaceId))
                .col(string(TaskUnitTemplates::Id))
                .col(string(TaskUnitTemplates::Name))
                .col(integer(TaskUnitTemplates::LatestVersion))
                .col(string_null(TaskUnitTemplates::ClonedFrom))
                .col(integer_null(TaskUnitTemplates::ClonedVersion))
                .col(timestamp_with_time_zone(TaskUnitTemplates::CreatedAt))
                .col(timestamp_with_time_zone(TaskUnitTemplates::UpdatedAt))
                .col(timestamp_with_time_zone_null(TaskUnitTemplates::DeletedAt))
                .primary_key(
                    Index::create()
                        .col(TaskUnitTemplates::WorkspaceId)
                        .col(TaskUnitTemplates::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TaskUnits::Table)
                .col(string(TaskUnits::Id).primary_key())
                .col(string(TaskUnits::WorkspaceId))
                .col(string(TaskUnits::TemplateId))
                .col(integer(TaskUnits::TemplateVersion))
                .col(string(TaskUnits::Name))
                .col(string(TaskUnits::Status))
                .col(big_integer(TaskUnits::Priority))
                .col(string_null(TaskUnits::AccountId))
                .col(string_null(TaskUnits::LeadId))
                .col(string_null(TaskUnits::OriginKey))
                .col(text(TaskUnits::Goal))
                .col(text(TaskUnits::Staffing))
                .col(text(TaskUnits::Trigger))
                .col(boolean(TaskUnits::WecomGroup))
                .col(string(TaskUnits::CreatedBy))
                .col(big_integer(TaskUnits::CreatedAt))
                .col(big_integer_null(TaskUnits::ClosedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("task_units_by_status")
                .table(TaskUnits::Table)
                .col(TaskUnits::WorkspaceId)
                .col(TaskUnits::Status)
                .to_owned(),
        )
        .await?;
        // A flow step that creates a unit names it by its call's key: a repeated call finds
        // the unit it made.
        m.create_index(
            Index::create()
                .name("task_units_by_origin")
                .table(TaskUnits::Table)
                .col(TaskUnits::WorkspaceId)
                .col(TaskUnits::OriginKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TaskUnitMembers::Table)
                .col(string(TaskUnitMembers::UnitId))
                .col(string(TaskUnitMembers::MemberId))
                .col(string(TaskUnitMembers::WorkspaceId))
                .col(string(TaskUnitMembers::Role))
                .col(big_integer(TaskUnitMembers::InvitedAt))
                .col(big_integer_null(TaskUnitMembers::RespondedAt))
                .primary_key(
                    Index::create()
                        .col(TaskUnitMembers::UnitId)
                        .col(TaskUnitMembers::MemberId),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("task_unit_members_by_member")
                .table(TaskUnitMembers::Table)
                .col(TaskUnitMembers::WorkspaceId)
                .col(TaskUnitMembers::MemberId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TaskUnitMilestones::Table)
                .col(string(TaskUnitMilestones::UnitId))
                .col(string(TaskUnitMilestones::MilestoneId))
                .col(string(TaskUnitMilestones::WorkspaceId))
                .col(integer(TaskUnitMilestones::Position))
                .col(string(TaskUnitMilestones::Name))
                .col(string_null(TaskUnitMilestones::OwnerRole))
                .col(big_integer(TaskUnitMilestones::DueAt))
                .col(big_integer(TaskUnitMilestones::RemindAt))
                .col(big_integer_null(TaskUnitMilestones::DoneAt))
                .col(string_null(TaskUnitMilestones::DoneBy))
                .col(boolean(TaskUnitMilestones::Reminded))
                .col(boolean(TaskUnitMilestones::Overdue))
                .primary_key(
                    Index::create()
                        .col(TaskUnitMilestones::UnitId)
                        .col(TaskUnitMilestones::MilestoneId),
                )
                .to_owned(),
        )
        .await?;
        // What the scheduler reads each tick: open milestones by when they next need a
        // word.
        m.create_index(
            Index::create()
                .name("task_unit_milestones_pending")
                .table(TaskUnitMilestones::Table)
                .col(TaskUnitMilestones::DoneAt)
                .col(TaskUnitMilestones::RemindAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TaskUnitLog::Table)
                .col(string(TaskUnitLog::Id).primary_key())
                .col(string(TaskUnitLog::UnitId))
                .col(string(TaskUnitLog::WorkspaceId))
                .col(big_integer(TaskUnitLog::At))
                .col(string(TaskUnitLog::Actor))
                .col(string(TaskUnitLog::Action))
                .col(text(TaskUnitLog::Detail))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("task_unit_log_by_unit")
                .table(TaskUnitLog::Table)
                .col(TaskUnitLog::UnitId)
                .col(TaskUnitLog::At)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TaskUnitLog::Table.into_iden(),
            TaskUnitMilestones::Table.into_iden(),
            TaskUnitMembers::Table.into_iden(),
            TaskUnits::Table.into_iden(),
            TaskUnitTemplates::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
