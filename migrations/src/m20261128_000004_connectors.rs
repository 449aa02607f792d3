//! The connector registry: components stored by hash, versions per workspace, per-connector
//! limits, capability grants, encrypted secrets and the connectors' key-value store.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectorBlobs {
    Table,
    Sha256,
    Bytes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Connectors {
    Table,
    WorkspaceId,
    Name,
    Limits,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConnectorVersions {
    Table,
    WorkspaceId,
    Name,
    Version,
    Major,
    Sha256,
    /// Text: the manifest as the component described itself, key order kept.
    Manifest,
    Enabled,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConnectorGrants {
    Table,
    WorkspaceId,
    Name,
    /// `host`, `secret` or `kv`.
    Kind,
    Value,
    GrantedBy,
    GrantedAt,
}

#[derive(DeriveIden)]
enum ConnectorSecrets {
    Table,
    WorkspaceId,
    Name,
    Secret,
    /// XChaCha20-Poly1305 nonce and ciphertext.
    Nonce,
    Ciphertext,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ConnectorKv {
    Table,
    WorkspaceId,
    Connector,
    Key,
    Value,
    /// Epoch milliseconds; null keeps the entry.
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // `up` must repeat the trait's elided `&SchemaManager`, or async_trait rejects it.
    #[allow(elided_lifetimes_in_paths)]
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConnectorBlobs::Table)
                .col(string(ConnectorBlobs::Sha256).primary_key())
                .col(blob(ConnectorBlobs::Bytes))
                .col(timestamp_with_time_zone(ConnectorBlobs::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Connectors::Table)
                .col(string(Connectors::WorkspaceId))
                .col(string(Connectors::Name))
                .col(json_binary_null(Connectors::Limits))
                .col(timestamp_with_time_zone(Connectors::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(Connectors::WorkspaceId)
                        .col(Connectors::Name),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConnectorVersions::Table)
                .col(string(ConnectorVersions::WorkspaceId))
                .col(string(ConnectorVersions::Name))
                .col(string(ConnectorVersions::Version))
                .col(big_integer(ConnectorVersions::Major))
                .col(string(ConnectorVersions::Sha256))
                .col(text(ConnectorVersions::Manifest))
                .col(boolean(ConnectorVersions::Enabled))
                .col(string(ConnectorVersions::CreatedBy))
                .col(timestamp_with_time_zone(ConnectorVersions::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(ConnectorVersions::WorkspaceId)
                        .col(ConnectorVersions::Name)
                        .col(ConnectorVersions::Version),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConnectorGrants::Table)
                .col(string(ConnectorGrants::WorkspaceId))
                .col(string(ConnectorGrants::Name))
                .col(string(ConnectorGrants::Kind))
                .col(string(ConnectorGrants::Value))
                .col(string(ConnectorGrants::GrantedBy))
                .col(timestamp_with_time_zone(ConnectorGrants::GrantedAt))
                .primary_key(
                    Index::create()
                        .col(ConnectorGrants::WorkspaceId)
                        .col(ConnectorGrants::Name)
                        .col(ConnectorGrants::Kind)
                        .col(ConnectorGrants::Value),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConnectorSecrets::Table)
                .col(string(ConnectorSecrets::WorkspaceId))
                .col(string(ConnectorSecrets::Name))
                .col(string(ConnectorSecrets::Secret))
                .col(blob(ConnectorSecrets::Nonce))
                .col(blob(ConnectorSecrets::Ciphertext))
                .col(timestamp_with_time_zone(ConnectorSecrets::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(ConnectorSecrets::WorkspaceId)
                        .col(ConnectorSecrets::Name)
                        .col(ConnectorSecrets::Secret),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConnectorKv::Table)
                .col(string(ConnectorKv::WorkspaceId))
                .col(string(ConnectorKv::Connector))
                .col(string(ConnectorKv::Key))
                .col(blob(ConnectorKv::Value))
                .col(big_integer_null(ConnectorKv::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(ConnectorKv::WorkspaceId)
                        .col(ConnectorKv::Connector)
                        .col(ConnectorKv::Key),
                )
                .to_owned(),
        )
        .await
    }
}
