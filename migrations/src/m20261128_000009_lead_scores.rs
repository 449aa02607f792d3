//! Scores move out of `leads` into a narrow `lead_scores` table. A rescore rewrites every
//! lead's score; in `leads` that meant rewriting each wide row (attributes and behaviour
//! state included) and the score index beside it. In `lead_scores` a row is eight small
//! columns, so the same rescore writes a fraction of the pages.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Leads {
    Table,
    WorkspaceId,
    Id,
    Score,
    Tier,
    Stage,
    Probability,
    ModelVersion,
    ScoredAt,
}

#[derive(DeriveIden)]
enum LeadScores {
    Table,
    WorkspaceId,
    LeadId,
    Score,
    Tier,
    Stage,
    Probability,
    /// The model version that computed the score.
    ModelVersion,
    /// Epoch milliseconds the score was computed for. It also serves as the score's
    /// revision: every write moves it forward, so a rescore can tell whether an event
    /// rescored the lead after the rescore read it.
    ScoredAt,
}

/// The columns that move, in `lead_scores` order.
const MOVED: [Leads; 6] = [
    Leads::Score,
    Leads::Tier,
    Leads::Stage,
    Leads::Probability,
    Leads::ModelVersion,
    Leads::ScoredAt,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table(LeadScores::Table)
            .col(string(LeadScores::WorkspaceId))
            .col(string(LeadScores::LeadId))
            .col(double(LeadScores::Score))
            .col(string(LeadScores::Tier))
            .col(string(LeadScores::Stage))
            .col(double_null(LeadScores::Probability))
            .col(integer_null(LeadScores::ModelVersion))
            .col(big_integer(LeadScores::ScoredAt))
            .primary_key(
                Index::create()
                    .col(LeadScores::WorkspaceId)
                    .col(LeadScores::LeadId),
            )
            .to_owned();
        if m.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Sqlite {
            // Rows clustered by their key: a rescore, which updates every row in key order,
            // walks one B-tree instead of a key index and the table (SQLite recommends this
            // for small rows with a non-integer key).
            let sql = format!("{} WITHOUT ROWID", table.to_string(SqliteQueryBuilder));
            m.get_connection().execute_unprepared(&sql).await?;
        } else {
            m.create_table(table).await?;
        }
        m.exec_stmt(
            Query::insert()
                .into_table(LeadScores::Table)
                .columns([
                    LeadScores::WorkspaceId,
                    LeadScores::LeadId,
                    LeadScores::Score,
                    LeadScores::Tier,
                    LeadScores::Stage,
                    LeadScores::Probability,
                    LeadScores::ModelVersion,
                    LeadScores::ScoredAt,
                ])
                .select_from(
                    Query::select()
                        .columns([Leads::WorkspaceId, Leads::Id])
                        .columns(MOVED)
                        .from(Leads::Table)
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("lead_scores_by_score")
                .table(LeadScores::Table)
                .col(LeadScores::WorkspaceId)
                .col(LeadScores::Score)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("leads_by_score")
                .table(Leads::Table)
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite alters one at a time.
        for c in MOVED {
            m.alter_table(Table::alter().table(Leads::Table).drop_column(c).to_owned())
                .await?;
        }
        Ok(())
    }

    #[allow(elided_lifetimes_in_paths)] // as for `up`
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            double(Leads::Score).default(0.0).to_owned(),
            string(Leads::Tier).default("cold").to_owned(),
            string(Leads::Stage).default("lead").to_owned(),
            double_null(Leads::Probability),
            integer_null(Leads::ModelVersion),
            big_integer(Leads::ScoredAt).default(0).to_owned(),
        ];
        for c in columns {
            m.alter_table(Table::alter().table(Leads::Table).add_column(c).to_owned())
                .await?;
        }
        // The `lead_scores` row of the `leads` row being updated.
        let same_lead = || {
            Condition::all()
                .add(
                    Expr::col((LeadScores::Table, LeadScores::WorkspaceId))
                        .equals((Leads::Table, Leads::WorkspaceId)),
                )
                .add(
                    Expr::col((LeadScores::Table, LeadScores::LeadId))
                        .equals((Leads::Table, Leads::Id)),
                )
        };
        for c in MOVED {
            // `UPDATE leads SET c = (SELECT c FROM lead_scores WHERE …)`, column by column.
            let from = Query::select()
                .column(c)
                .from(LeadScores::Table)
                .cond_where(same_lead())
                .to_owned();
            m.exec_stmt(
                Query::update()
                    .table(Leads::Table)
                    .value(
                        c,
                        SimpleExpr::SubQuery(None, Box::new(from.into_sub_query_statement())),
                    )
                    .and_where(Expr::exists(
                        Query::select()
                            .expr(Expr::val(1))
                            .from(LeadScores::Table)
                            .cond_where(same_lead())
                            .to_owned(),
                    ))
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("leads_by_score")
                .table(Leads::Table)
                .col(Leads::WorkspaceId)
                .col(Leads::Score)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(LeadScores::Table).to_owned())
            .await
    }
}
