//! Leads by account: the accounts list counts and ranks each account's leads.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leads {
    Table,
    WorkspaceId,
    AccountId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("leads_by_account")
                .table(Leads::Table)
                .col(Leads::WorkspaceId)
                .col(Leads::AccountId)
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)] // as for `up`
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("leads_by_account")
                .table(Leads::Table)
                .to_owned(),
        )
        .await
    }
}
