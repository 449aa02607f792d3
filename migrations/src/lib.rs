//! Trellis database migrations: one set for SQLite and PostgreSQL. A landed migration is
//! never edited; changes come as new migrations.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_init;
mod m20261128_000002_schedule_fires;
mod m20261128_000003_flow_deleted_at;
mod m20261128_000004_connectors;
mod m20261128_000005_connector_polls;
mod m20261128_000006_leads;
mod m20261128_000007_leads_drop_contributions;
mod m20261128_000008_leads_by_account;
mod m20261128_000009_lead_scores;
mod m20261206_000010_run_guards;
mod m20261206_000011_doc_versions;
mod m20261206_000012_rescore_lease;
mod m20261206_000013_test_runs;
mod m20261206_000014_events_by_name;
mod m20261206_000015_rescore_backfill;
mod m20261206_000016_lead_actions;
mod m20261206_000017_users;
mod m20261207_000018_contacts;
mod m20261207_000019_workspace_doc_versions;
mod m20261207_000020_connector_inbound;
mod m20261207_000021_people;
mod m20261207_000022_task_units;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_init::Migration),
            Box::new(m20261128_000002_schedule_fires::Migration),
            Box::new(m20261128_000003_flow_deleted_at::Migration),
            Box::new(m20261128_000004_connectors::Migration),
            Box::new(m20261128_000005_connector_polls::Migration),
            Box::new(m20261128_000006_leads::Migration),
            Box::new(m20261128_000007_leads_drop_contributions::Migration),
            Box::new(m20261128_000008_leads_by_account::Migration),
            Box::new(m20261128_000009_lead_scores::Migration),
            Box::new(m20261206_000010_run_guards::Migration),
            Box::new(m20261206_000011_doc_versions::Migration),
            Box::new(m20261206_000012_rescore_lease::Migration),
            Box::new(m20261206_000013_test_runs::Migration),
            Box::new(m20261206_000014_events_by_name::Migration),
            Box::new(m20261206_000015_rescore_backfill::Migration),
            Box::new(m20261206_000016_lead_actions::Migration),
            Box::new(m20261206_000017_users::Migration),
            Box::new(m20261207_000018_contacts::Migration),
            Box::new(m20261207_000019_workspace_doc_versions::Migration),
            Box::new(m20261207_000020_connector_inbound::Migration),
            Box::new(m20261207_000021_people::Migration),
            Box::new(m20261207_000022_task_units::Migration),
        ]
    }
}
