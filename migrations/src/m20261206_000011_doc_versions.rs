//! One table for the versions of every versioned document (flows, scoring models, and the
//! documents to come), so one store serves them all. The rows of `flow_versions` and
//! `scoring_model_versions` move into `doc_versions` unchanged, keyed by the document's
//! kind and id (a flow's id; a scoring model's workspace, one model per workspace).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DocVersions {
    Table,
    WorkspaceId,
    Kind,
    DocId,
    Number,
    Hash,
    Doc,
    Author,
    Message,
    CreatedAt,
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
enum Flows {
    Table,
    Id,
}

const COLUMNS: &str = "workspace_id, kind, doc_id, number, hash, doc, author, message, created_at";
const FIELDS: &str = "number, hash, doc, author, message, created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DocVersions::Table)
                .col(string(DocVersions::WorkspaceId))
                .col(string(DocVersions::Kind))
                .col(string(DocVersions::DocId))
                .col(integer(DocVersions::Number))
                .col(string(DocVersions::Hash))
                // Text, not json/jsonb: a version is kept byte for byte as written, key order
                // included (`set` evaluates its `vars` in document order; jsonb sorts keys).
                .col(text(DocVersions::Doc))
                .col(string(DocVersions::Author))
                .col(text(DocVersions::Message))
                .col(timestamp_with_time_zone(DocVersions::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(DocVersions::Kind)
                        .col(DocVersions::DocId)
                        .col(DocVersions::Number),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("doc_versions_by_workspace")
                .table(DocVersions::Table)
                .col(DocVersions::WorkspaceId)
                .col(DocVersions::Kind)
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO doc_versions ({COLUMNS}) \
             SELECT workspace_id, 'flow', flow_id, {FIELDS} FROM flow_versions"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO doc_versions ({COLUMNS}) \
             SELECT workspace_id, 'scoring_model', workspace_id, {FIELDS} FROM scoring_model_versions"
        ))
        .await?;
        m.drop_table(Table::drop().table(FlowVersions::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(ScoringModelVersions::Table).to_owned())
            .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(FlowVersions::Table)
                .col(string(FlowVersions::WorkspaceId))
                .col(string(FlowVersions::FlowId))
                .col(integer(FlowVersions::Number))
                .col(string(FlowVersions::Hash))
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
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO flow_versions (workspace_id, flow_id, {FIELDS}) \
             SELECT workspace_id, doc_id, {FIELDS} FROM doc_versions WHERE kind = 'flow'"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO scoring_model_versions (workspace_id, {FIELDS}) \
             SELECT workspace_id, {FIELDS} FROM doc_versions WHERE kind = 'scoring_model'"
        ))
        .await?;
        m.drop_table(Table::drop().table(DocVersions::Table).to_owned())
            .await
    }
}
