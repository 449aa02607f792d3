//! What flows can call: the operations of the enabled connector versions, as the validator
//! (here and in the studio) sees them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation of a connector, with its schemas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorOperation {
    pub name: String,
    /// `{"zh": …, "en": …}`.
    pub title: BTreeMap<String, String>,
    pub config_schema: Value,
    pub input_schema: Value,
    pub output_schema: Value,
    pub side_effects: bool,
    /// The customer contact the operation makes (its calls pass the contact policy, and
    /// its node has a `blocked` port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<crate::contact_policy::ContactDecl>,
}

/// A connector a flow can reference as `name@major`: the enabled version of that major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorEntry {
    pub name: String,
    pub major: u64,
    pub version: String,
    pub title: BTreeMap<String, String>,
    pub operations: Vec<ConnectorOperation>,
    /// Names of the secrets the connector declares (config fields marked
    /// `x-trellis-secret` refer to one of them).
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl ConnectorEntry {
    /// `name@major`, as flow nodes write it.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.major)
    }

    pub fn operation(&self, name: &str) -> Option<&ConnectorOperation> {
        self.operations.iter().find(|o| o.name == name)
    }
}

/// Config validators compiled once per catalog.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    entries: BTreeMap<String, ConnectorEntry>,
    validators: BTreeMap<(String, String), Arc<jsonschema::Validator>>,
}

impl Catalog {
    pub fn new(entries: impl IntoIterator<Item = ConnectorEntry>) -> Catalog {
        let mut catalog = Catalog::default();
        for entry in entries {
            for op in &entry.operations {
                if let Ok(v) = jsonschema::validator_for(&op.config_schema) {
                    catalog
                        .validators
                        .insert((entry.reference(), op.name.clone()), Arc::new(v));
                }
            }
            catalog.entries.insert(entry.reference(), entry);
        }
        catalog
    }

    pub fn get(&self, reference: &str) -> Option<&ConnectorEntry> {
        self.entries.get(reference)
    }

    pub fn entries(&self) -> impl Iterator<Item = &ConnectorEntry> {
        self.entries.values()
    }

    /// Problems with `config` for `reference`'s `operation`.
    /// Strings holding `{{ }}` templates are rendered at run time, so they are not checked
    /// against the schema here (their syntax is).
    pub fn check_config(
        &self,
        reference: &str,
        operation: &str,
        config: &Value,
    ) -> Vec<crate::forms::ConfigProblem> {
        let Some(v) = self
            .validators
            .get(&(reference.to_owned(), operation.to_owned()))
        else {
            return Vec::new();
        };
        crate::forms::schema_problems(v, config, |pointer| {
            config
                .pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|s| s.contains("{{"))
        })
    }
}
