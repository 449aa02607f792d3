//! sea-orm entities, one module per table (see `trellis-migrations` for the schema).

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod workspace {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "workspaces")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod api_token {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub name: String,
        pub role: String,
        pub token_hash: String,
        pub created_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod flow {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "flows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub name: String,
        pub latest_version: i32,
        pub published_version: Option<i32>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// Set when the flow is deleted (archived); hidden from lists and routes.
        pub deleted_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod doc_version {
    use sea_orm::entity::prelude::*;

    /// The kinds of versioned documents.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    pub enum DocKind {
        /// A flow; its id is the flow's.
        #[sea_orm(string_value = "flow")]
        Flow,
        /// A workspace's scoring model; its id is the workspace's (one model each).
        #[sea_orm(string_value = "scoring_model")]
        ScoringModel,
        /// A task-unit template (`trellis_model::task_units::Template`); its head is in
        /// `task_unit_templates`, and a saved version applies at once.
        #[sea_orm(string_value = "task_unit_template")]
        TaskUnitTemplate,
        /// The workspace documents below have their id the workspace's (one each) and their
        /// head in `workspace_docs`; a saved version applies at once.
        /// The contact policy (caps, quiet hours).
        #[sea_orm(string_value = "contact_policy")]
        ContactPolicy,
        /// The URL-category rules applied at ingest.
        #[sea_orm(string_value = "url_categories")]
        UrlCategories,
        /// The purchase-signal lexicon.
        #[sea_orm(string_value = "signal_lexicon")]
        SignalLexicon,
        /// The next-best-action rules.
        #[sea_orm(string_value = "nba_rules")]
        NbaRules,
        /// The workspace's limits (body sizes, run state, retention).
        #[sea_orm(string_value = "limits")]
        Limits,
    }

    impl DocKind {
        /// The kinds kept in `workspace_docs`, one document per workspace.
        pub const WORKSPACE: [DocKind; 5] = [
            DocKind::ContactPolicy,
            DocKind::UrlCategories,
            DocKind::SignalLexicon,
            DocKind::NbaRules,
            DocKind::Limits,
        ];

        /// A document kept in `workspace_docs` (its versions apply as they are saved).
        pub fn is_workspace_doc(self) -> bool {
            Self::WORKSPACE.contains(&self)
        }

        /// A kind whose latest version is the one in force: saving it publishes it.
        pub fn applies_on_save(self) -> bool {
            self.is_workspace_doc() || self == DocKind::TaskUnitTemplate
        }

        /// The name stored in `doc_versions.kind` and `workspace_docs.kind`.
        pub fn as_str(self) -> &'static str {
            match self {
                DocKind::Flow => "flow",
                DocKind::ScoringModel => "scoring_model",
                DocKind::TaskUnitTemplate => "task_unit_template",
                DocKind::ContactPolicy => "contact_policy",
                DocKind::UrlCategories => "url_categories",
                DocKind::SignalLexicon => "signal_lexicon",
                DocKind::NbaRules => "nba_rules",
                DocKind::Limits => "limits",
            }
        }
    }

    /// One immutable version of a document.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "doc_versions")]
    pub struct Model {
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: DocKind,
        #[sea_orm(primary_key, auto_increment = false)]
        pub doc_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub number: i32,
        pub hash: String,
        /// The document as written (JSON text; key order matters to `set`).
        #[sea_orm(column_type = "Text")]
        pub doc: String,
        pub author: String,
        #[sea_orm(column_type = "Text")]
        pub message: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();

    impl Model {
        /// The document as JSON (key order kept).
        pub fn doc_value(&self) -> serde_json::Value {
            serde_json::from_str(&self.doc).unwrap_or(serde_json::Value::Null)
        }
    }
}

pub mod flow_trigger {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "flow_triggers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub flow_id: String,
        pub workspace_id: String,
        pub kind: String,
        pub key: Option<String>,
    }
    no_relations!();
}

pub mod run {
    use sea_orm::entity::prelude::*;

    /// Where a run is in its life. Stored as its lower-case name.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    pub enum RunStatus {
        /// Due at `wake_at`, for any worker to claim.
        #[sea_orm(string_value = "queued")]
        Queued,
        /// Claimed by `lease_owner` until `lease_until`.
        #[sea_orm(string_value = "running")]
        Running,
        /// Parked until `wake_at` or the event it subscribed to.
        #[sea_orm(string_value = "waiting")]
        Waiting,
        #[sea_orm(string_value = "succeeded")]
        Succeeded,
        #[sea_orm(string_value = "failed")]
        Failed,
        #[sea_orm(string_value = "cancelled")]
        Cancelled,
    }

    impl RunStatus {
        /// The statuses a run ends in.
        pub const TERMINAL: [RunStatus; 3] = [
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ];
        /// The statuses of a run that has not ended.
        pub const LIVE: [RunStatus; 3] =
            [RunStatus::Queued, RunStatus::Running, RunStatus::Waiting];

        pub fn as_str(self) -> &'static str {
            match self {
                RunStatus::Queued => "queued",
                RunStatus::Running => "running",
                RunStatus::Waiting => "waiting",
                RunStatus::Succeeded => "succeeded",
                RunStatus::Failed => "failed",
                RunStatus::Cancelled => "cancelled",
            }
        }

        /// The status stored as `s`, if it is one.
        pub fn parse(s: &str) -> Option<RunStatus> {
            <RunStatus as sea_orm::Iterable>::iter().find(|v| v.as_str() == s)
        }

        pub fn is_terminal(self) -> bool {
            Self::TERMINAL.contains(&self)
        }
    }

    impl std::fmt::Display for RunStatus {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }

    impl serde::Serialize for RunStatus {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.as_str())
        }
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub flow_id: String,
        pub version: i32,
        pub status: RunStatus,
        #[sea_orm(column_type = "JsonBinary")]
        pub trigger: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub state: Json,
        pub state_rev: i64,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        /// Epoch milliseconds when a queued or waiting run becomes due.
        pub wake_at: Option<i64>,
        pub lease_owner: Option<String>,
        /// Epoch milliseconds when a running claim lapses.
        pub lease_until: Option<i64>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
        /// Times in a row the run's process stopped while running it at `interrupted_rev`.
        pub interruptions: i32,
        pub interrupted_rev: Option<i64>,
        /// A test run (a sample trigger from the studio): not the flow's "last run".
        pub test: bool,
        /// The lead the run is about (its trigger event's lead, or the lead enrolled).
        pub lead_id: Option<String>,
    }
    no_relations!();
}

pub mod run_step {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "run_steps")]
    pub struct Model {
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub node_id: String,
        pub node_type: String,
        pub visit: i32,
        pub attempt: i32,
        pub status: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub input: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub output: Json,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub started_at: DateTimeUtc,
        pub finished_at: DateTimeUtc,
        pub idempotency_key: String,
    }
    no_relations!();
}

pub mod subscription {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "subscriptions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        pub workspace_id: String,
        pub node_id: String,
        pub event: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub matcher: Option<String>,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod event {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub lead: Option<String>,
        #[sea_orm(column_type = "JsonBinary")]
        pub properties: Json,
        pub timestamp: DateTimeUtc,
        pub received_at: DateTimeUtc,
        /// The lead the event was attributed to (after identity resolution and merges).
        pub lead_id: Option<String>,
    }
    no_relations!();
}

pub mod audit {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub actor: String,
        pub action: String,
        pub target: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub detail: Json,
        pub at: DateTimeUtc,
    }
    no_relations!();
}

pub mod schedule_fire {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedule_fires")]
    pub struct Model {
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub flow_id: String,
        /// Epoch milliseconds of the fire time.
        #[sea_orm(primary_key, auto_increment = false)]
        pub fire_at: i64,
        pub run_id: String,
    }
    no_relations!();
}

pub mod connector_blob {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_blobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sha256: String,
        pub bytes: Vec<u8>,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod connector {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connectors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub limits: Option<Json>,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod connector_version {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: String,
        pub major: i64,
        pub sha256: String,
        pub manifest: String,
        pub enabled: bool,
        pub created_by: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod connector_grant {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_grants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        pub granted_by: String,
        pub granted_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod connector_secret {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_secrets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub secret: String,
        pub nonce: Vec<u8>,
        pub ciphertext: Vec<u8>,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod connector_kv {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_kv")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub connector: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: Vec<u8>,
        pub expires_at: Option<i64>,
    }
    no_relations!();
}

pub mod connector_poll {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_polls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub config: Json,
        pub interval_seconds: i64,
        pub enabled: bool,
        pub cursor: Option<String>,
        pub next_at: i64,
        pub last_polled_at: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod lead {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "leads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub account_id: Option<String>,
        pub owner: Option<String>,
        #[sea_orm(column_type = "JsonBinary")]
        pub attributes: Json,
        /// `trellis_model::scoring::BehaviourState`.
        #[sea_orm(column_type = "JsonBinary")]
        pub state: Json,
        pub last_event_at: Option<i64>,
        pub merged_into: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// Epoch milliseconds until which no flow starts for the lead.
        pub suppressed_until: Option<i64>,
    }
    no_relations!();

    /// Every lead has its score row: `leads JOIN lead_scores`.
    impl Related<super::lead_score::Entity> for Entity {
        fn to() -> RelationDef {
            Entity::belongs_to(super::lead_score::Entity)
                .from((Column::WorkspaceId, Column::Id))
                .to((
                    super::lead_score::Column::WorkspaceId,
                    super::lead_score::Column::LeadId,
                ))
                .into()
        }
    }
}

/// A lead's score, kept apart from the wide `leads` row so that a rescore rewrites only
/// narrow rows.
pub mod lead_score {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "lead_scores")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub lead_id: String,
        #[sea_orm(column_type = "Double")]
        pub score: f64,
        pub tier: trellis_model::scoring::Tier,
        pub stage: trellis_model::scoring::Stage,
        #[sea_orm(column_type = "Double", nullable)]
        pub probability: Option<f64>,
        pub model_version: Option<i32>,
        /// Epoch ms the score was computed for; every write moves it forward, so it is
        /// also the score's revision.
        pub scored_at: i64,
    }
    no_relations!();
}

pub mod lead_identity {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "lead_identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        pub lead_id: String,
    }
    no_relations!();
}

pub mod account {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub attributes: Json,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod scoring_model {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_models")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        pub latest_version: i32,
        pub published_version: Option<i32>,
        pub rescore_version: Option<i32>,
        pub rescore_done: i64,
        pub rescore_total: i64,
        pub rescore_started_at: Option<DateTimeUtc>,
        pub rescore_finished_at: Option<DateTimeUtc>,
        /// The process doing the rescore, while it renews its lease (epoch ms).
        pub rescore_owner: Option<String>,
        pub rescore_lease_until: Option<i64>,
        /// The rescore moves scores and tiers without starting flows.
        pub rescore_backfill: bool,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod workspace_doc {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "workspace_docs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        /// One of [`DocKind::WORKSPACE`].
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: super::doc_version::DocKind,
        /// The version in force (its text in `doc`).
        #[sea_orm(column_type = "Text")]
        pub doc: String,
        pub author: String,
        pub updated_at: DateTimeUtc,
        /// The number of the version in `doc` (its row in `doc_versions`).
        pub version: i32,
    }
    no_relations!();
}

/// The in-studio inbox: what `notify` nodes said, to whom.
pub mod notification {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub recipient: String,
        pub title: String,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        pub lead_id: Option<String>,
        pub flow_id: Option<String>,
        pub run_id: Option<String>,
        pub created_at: DateTimeUtc,
        pub read_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

/// Whose turn it is in each round-robin assignment.
pub mod assignment_turn {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "assignment_turns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub turn: i64,
    }
    no_relations!();
}

/// A person who signs in to the studio.
pub mod user {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub email: Option<String>,
        pub phone: Option<String>,
        /// PHC string (`$argon2id$…`).
        pub password_hash: Option<String>,
        pub created_at: DateTimeUtc,
        pub disabled_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

/// A user's role in a workspace.
pub mod membership {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "memberships")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub role: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

/// A signed-in session (the cookie's value is kept only as its SHA-256).
pub mod session {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id_hash: String,
        pub user_id: String,
        pub workspace_id: String,
        pub created_at: DateTimeUtc,
        pub expires_at: i64,
    }
    no_relations!();
}

/// A one-time ticket: an invitation or a password reset.
pub mod user_ticket {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_tickets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub kind: String,
        pub workspace_id: String,
        pub user_id: Option<String>,
        pub role: Option<String>,
        pub name: Option<String>,
        pub email: Option<String>,
        pub phone: Option<String>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub expires_at: i64,
        pub used_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

/// Contacts runs made with customers, counted by the contact policy.
pub mod contact {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idempotency_key: String,
        pub lead_id: Option<String>,
        pub recipient: String,
        pub channel: String,
        pub run_id: String,
        pub node: String,
        pub state: ContactState,
        pub at_ms: i64,
    }
    no_relations!();

    /// Where a contact stands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    pub enum ContactState {
        /// Allowed and counted; the call is under way (or was, when the server stopped).
        #[sea_orm(string_value = "pending")]
        Pending,
        #[sea_orm(string_value = "sent")]
        Sent,
        /// The call failed in a way that does not tell whether it was delivered (a timeout,
        /// a broken connection): it counts, and it is not made again.
        #[sea_orm(string_value = "unknown")]
        Unknown,
        /// The call failed before anything was sent: it does not count.
        #[sea_orm(string_value = "failed")]
        Failed,
    }
}

/// Revocations of a lead's consent to be contacted (on one channel or all).
pub mod consent_revocation {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "consent_revocations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub lead_id: String,
        pub channel: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        pub source: ConsentSource,
        pub event_id: Option<String>,
        pub author: Option<String>,
        pub at_ms: i64,
    }
    no_relations!();

    /// Who revoked consent.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, serde::Serialize)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
    #[serde(rename_all = "snake_case")]
    pub enum ConsentSource {
        /// An event (a WeCom deletion, an unsubscribe): `event_id`.
        #[sea_orm(string_value = "event")]
        Event,
        /// A user: `author`.
        #[sea_orm(string_value = "admin")]
        Admin,
    }
}

/// What each connector's inbound deliveries came to (see `inbound_health`).
pub mod connector_inbound {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_inbound")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub connector: String,
        pub ok_total: i64,
        pub failed_total: i64,
        pub last_ok_ms: Option<i64>,
        pub last_failed_ms: Option<i64>,
        pub last_status: Option<i32>,
        #[sea_orm(column_type = "Text", nullable)]
        pub last_failure: Option<String>,
    }
    no_relations!();
}

/// The people directory (see `people`).
pub mod person {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "people")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        /// The member's WeCom user id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        /// `trellis_model::task_units::Function`, snake case.
        pub function: String,
        /// The member (`trellis_model::task_units::Member`) as JSON.
        #[sea_orm(column_type = "Text")]
        pub doc: String,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

/// The head of each task-unit template: its latest version (the one in force), and the
/// template and version it was cloned from.
pub mod task_unit_template {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_unit_templates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub latest_version: i32,
        pub cloned_from: Option<String>,
        pub cloned_version: Option<i32>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub deleted_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

/// A task unit (作战单元). Times are epoch milliseconds.
pub mod task_unit {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_units")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub template_id: String,
        pub template_version: i32,
        pub name: String,
        /// `crate::task_units::UnitStatus`.
        pub status: String,
        pub priority: i64,
        pub account_id: Option<String>,
        pub lead_id: Option<String>,
        /// The key of the flow call that created it (a repeated call finds it).
        pub origin_key: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub goal: String,
        /// The dispatch (picks with their reasons, unfilled roles), the rules that held and
        /// the knowledge pack, as JSON.
        #[sea_orm(column_type = "Text")]
        pub staffing: String,
        /// The facts it was created from (event, account, lead, severity), as JSON.
        #[sea_orm(column_type = "Text")]
        pub trigger: String,
        pub wecom_group: bool,
        pub created_by: String,
        pub created_at: i64,
        pub closed_at: Option<i64>,
    }
    no_relations!();
}

/// Who is in a unit, in which role; when they were invited and first answered.
pub mod task_unit_member {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_unit_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub unit_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub workspace_id: String,
        pub role: String,
        pub invited_at: i64,
        pub responded_at: Option<i64>,
    }
    no_relations!();
}

/// A unit's milestone and its deadline; `reminded` and `overdue` say which events were
/// raised.
pub mod task_unit_milestone {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_unit_milestones")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub unit_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub milestone_id: String,
        pub workspace_id: String,
        pub position: i32,
        pub name: String,
        pub owner_role: Option<String>,
        pub due_at: i64,
        pub remind_at: i64,
        pub done_at: Option<i64>,
        pub done_by: Option<String>,
        pub reminded: bool,
        pub overdue: bool,
    }
    no_relations!();
}

/// Everything that happened in a unit, in order.
pub mod task_unit_log {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_unit_log")]
    pub struct Model {
        /// UUIDv7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub unit_id: String,
        pub workspace_id: String,
        pub at: i64,
        pub actor: String,
        /// `crate::task_units::LogAction`.
        pub action: String,
        #[sea_orm(column_type = "Text")]
        pub detail: String,
    }
    no_relations!();
}
