//! People: user accounts (a password hashed with argon2id), their role in each workspace,
//! signed-in sessions (only a hash of the cookie's value is kept), and one-time tickets: an
//! invitation to join a workspace or a password reset an admin issued.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Email,
    Phone,
    /// PHC string (`$argon2id$…`); none until the user sets one.
    PasswordHash,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    WorkspaceId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    /// SHA-256 of the cookie's value.
    IdHash,
    UserId,
    WorkspaceId,
    CreatedAt,
    /// Epoch milliseconds.
    ExpiresAt,
}

#[derive(DeriveIden)]
enum UserTickets {
    Table,
    /// SHA-256 of the ticket.
    TokenHash,
    /// `invite` or `reset`.
    Kind,
    WorkspaceId,
    /// The user a reset is for.
    UserId,
    /// An invitation's role, name, email and phone.
    Role,
    Name,
    Email,
    Phone,
    CreatedBy,
    CreatedAt,
    /// Epoch milliseconds.
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(string(Users::Id).primary_key())
                .col(string(Users::Name))
                .col(string_null(Users::Email))
                .col(string_null(Users::Phone))
                .col(string_null(Users::PasswordHash))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone_null(Users::DisabledAt))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("users_by_email", Users::Email),
            ("users_by_phone", Users::Phone),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Users::Table)
                    .col(col)
                    .unique()
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .col(string(Memberships::WorkspaceId))
                .col(string(Memberships::UserId))
                .col(string(Memberships::Role))
                .col(timestamp_with_time_zone(Memberships::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(Memberships::WorkspaceId)
                        .col(Memberships::UserId),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(string(Sessions::IdHash).primary_key())
                .col(string(Sessions::UserId))
                .col(string(Sessions::WorkspaceId))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(big_integer(Sessions::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserTickets::Table)
                .col(string(UserTickets::TokenHash).primary_key())
                .col(string(UserTickets::Kind))
                .col(string(UserTickets::WorkspaceId))
                .col(string_null(UserTickets::UserId))
                .col(string_null(UserTickets::Role))
                .col(string_null(UserTickets::Name))
                .col(string_null(UserTickets::Email))
                .col(string_null(UserTickets::Phone))
                .col(string(UserTickets::CreatedBy))
                .col(timestamp_with_time_zone(UserTickets::CreatedAt))
                .col(big_integer(UserTickets::ExpiresAt))
                .col(timestamp_with_time_zone_null(UserTickets::UsedAt))
                .to_owned(),
        )
        .await
    }

    #[allow(elided_lifetimes_in_paths)]
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            UserTickets::Table.into_iden(),
            Sessions::Table.into_iden(),
            Memberships::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
