//! Reading run rows whose stored JSON may not decode.
//!
//! A run's `trigger` and `state` are read as text and decoded one row at a time, so a row
//! the JSON decoder cannot read back (nested deeper than it allows, say) is reported as
//! that run's problem instead of failing the claim batch, the list or the event it sits
//! beside.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QuerySelect, Statement,
    Value as SqlValue,
};
use serde_json::Value;

use super::entities::run;

/// The columns of `runs`, with `trigger` and `state` as text, as a literal for statements
/// written out (`UPDATE … RETURNING run_columns!()`).
macro_rules! run_columns {
    () => {
        "id, workspace_id, flow_id, version, status, \
         CAST(trigger AS TEXT) AS trigger, CAST(state AS TEXT) AS state, state_rev, error, \
         wake_at, lease_owner, lease_until, created_at, updated_at, finished_at, \
         interruptions, interrupted_rev, test, lead_id"
    };
}

pub(crate) use run_columns;

/// `runs` with `trigger` and `state` as text; add filters, then `.into_model::<RawRun>()`.
pub fn select() -> sea_orm::Select<run::Entity> {
    use run::Column as C;
    run::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::WorkspaceId,
            C::FlowId,
            C::Version,
            C::Status,
            C::StateRev,
            C::Error,
            C::WakeAt,
            C::LeaseOwner,
            C::LeaseUntil,
            C::CreatedAt,
            C::UpdatedAt,
            C::FinishedAt,
            C::Interruptions,
            C::InterruptedRev,
            C::Test,
            C::LeadId,
        ])
        .column_as(Expr::cust("CAST(trigger AS TEXT)"), "trigger")
        .column_as(Expr::cust("CAST(state AS TEXT)"), "state")
}

/// A run row as stored, its JSON columns not yet decoded.
#[derive(Clone, Debug, FromQueryResult)]
pub struct RawRun {
    pub id: String,
    pub workspace_id: String,
    pub flow_id: String,
    pub version: i32,
    pub status: String,
    pub trigger: String,
    pub state: String,
    pub state_rev: i64,
    pub error: Option<String>,
    pub wake_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub interruptions: i32,
    pub interrupted_rev: Option<i64>,
    pub test: bool,
    pub lead_id: Option<String>,
}

/// A run whose stored JSON does not read: its id and why.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub id: String,
    pub state_rev: i64,
    pub reason: String,
}

impl RawRun {
    /// The row with its JSON decoded, or why it cannot be.
    pub fn decode(self) -> Result<run::Model, Unreadable> {
        let json = |column: &str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| Unreadable {
                id: self.id.clone(),
                state_rev: self.state_rev,
                reason: format!("the stored run {column} cannot be read: {e}"),
            })
        };
        let trigger = json("trigger", &self.trigger)?;
        let state = json("state", &self.state)?;
        let status = run::RunStatus::parse(&self.status).ok_or_else(|| Unreadable {
            id: self.id.clone(),
            state_rev: self.state_rev,
            reason: format!(
                "the stored run status {:?} is not one a run has",
                self.status
            ),
        })?;
        Ok(run::Model {
            id: self.id,
            workspace_id: self.workspace_id,
            flow_id: self.flow_id,
            version: self.version,
            status,
            trigger,
            state,
            state_rev: self.state_rev,
            error: self.error,
            wake_at: self.wake_at,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
            interruptions: self.interruptions,
            interrupted_rev: self.interrupted_rev,
            test: self.test,
            lead_id: self.lead_id,
        })
    }
}

/// The run's state, or why it cannot be read.
pub fn state_of(run: &run::Model) -> Result<trellis_runtime::RunState, Unreadable> {
    serde_json::from_value(run.state.clone()).map_err(|e| Unreadable {
        id: run.id.clone(),
        state_rev: run.state_rev,
        reason: format!("the stored run state cannot be read: {e}"),
    })
}

/// Rows of a statement returning [`run_columns!`].
pub async fn query<C: ConnectionTrait>(
    conn: &C,
    backend: DbBackend,
    sql: &str,
    values: impl IntoIterator<Item = SqlValue>,
) -> Result<Vec<RawRun>, sea_orm::DbErr> {
    RawRun::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(conn)
        .await
}
