//! The flow document: nodes, edges and their per-node execution policy.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only document schema version so far.
pub const SCHEMA_VERSION: u32 = 1;

/// A node id: 1–64 characters of `A–Z a–z 0–9 _ -`. Ids appear in CEL as
/// `steps.<id>.output` and in journal keys, so they are kept plain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub const PATTERN: &'static str = "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$";

    /// Checks the id's form.
    pub fn new(id: impl Into<String>) -> Result<Self, String> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && !id.starts_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(NodeId(id))
        } else {
            Err(format!(
                "invalid node id {id:?}: use 1-64 letters, digits, '_' or '-', not starting with '-'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        NodeId::new(value)
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for NodeId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NodeId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": NodeId::PATTERN,
            "description": "Node id: 1-64 letters, digits, '_' or '-'."
        })
    }
}

/// A flow document, as saved in every version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis flow")]
pub struct FlowDoc {
    /// Document schema version; always 1.
    #[schemars(range(min = 1, max = 1))]
    pub schema: u32,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// One node of a flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: NodeId,
    /// Node type: a built-in (`trigger`, `branch`, …) or `connector`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub node_type: String,
    /// Type-specific settings, checked against the node type's JSON Schema.
    #[serde(default = "empty_object")]
    #[schemars(schema_with = "object_schema")]
    pub config: Value,
    /// Canvas position `[x, y]`.
    #[serde(default)]
    pub position: [f64; 2],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Per-attempt time limit, e.g. `"30s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// For `connector` nodes: `name@major`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// For `connector` nodes: the operation to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// For `connector` nodes: the operation's input, with `{{ }}` templates rendered per
    /// run (a string that is one whole `{{ expr }}` becomes the expression's JSON value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

impl Node {
    /// Its built-in kind (`None` for a type no built-in has: the validator reports it).
    pub fn kind(&self) -> Option<crate::node_types::NodeKind> {
        crate::node_types::NodeKind::from_name(&self.node_type)
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object" })
}

/// Retry policy of a node: exponential backoff with full jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: u32,
    /// Delay before the second attempt, e.g. `"1s"`.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// Upper bound for any delay.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: String,
    /// Growth factor per attempt.
    #[serde(default = "default_multiplier")]
    #[schemars(range(min = 1.0, max = 10.0))]
    pub multiplier: f64,
    /// Randomise each delay in `[0, delay]` (full jitter) to spread retries.
    #[serde(default = "default_true")]
    pub jitter: bool,
}

fn default_backoff() -> String {
    "1s".into()
}
fn default_max_backoff() -> String {
    "5m".into()
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_true() -> bool {
    true
}

/// An edge from an output port of one node to another node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: NodeId,
    /// Output port of `from`; absent means the default port `out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    pub to: NodeId,
}

impl Edge {
    /// The port this edge leaves from, with the default filled in.
    pub fn port(&self) -> &str {
        self.port
            .as_deref()
            .unwrap_or(crate::node_types::DEFAULT_PORT)
    }
}

impl FlowDoc {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id.as_str() == id)
    }

    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id.as_str() == id)
    }

    /// The trigger node, when there is exactly one.
    pub fn trigger(&self) -> Option<&Node> {
        let mut triggers = self
            .nodes
            .iter()
            .filter(|n| n.kind() == Some(crate::node_types::NodeKind::Trigger));
        match (triggers.next(), triggers.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    }

    /// Targets of the edges leaving `from` on `port`, in document order.
    pub fn successors<'a>(
        &'a self,
        from: &'a str,
        port: &'a str,
    ) -> impl Iterator<Item = &'a NodeId> + 'a {
        self.edges
            .iter()
            .filter(move |e| e.from.as_str() == from && e.port() == port)
            .map(|e| &e.to)
    }

    /// The JSON Schema of the document (served at `GET /api/v1/schema/flow`).
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(FlowDoc)).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_checked() {
        assert!(NodeId::new("score_1").is_ok());
        assert!(NodeId::new("a-b").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("-a").is_err());
        assert!(NodeId::new("a.b").is_err());
        assert!(NodeId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn schema_describes_nodes_and_edges() {
        let schema = FlowDoc::json_schema();
        let text = schema.to_string();
        assert!(text.contains("\"nodes\""), "{text}");
        assert!(
            text.contains(NodeId::PATTERN.replace('\\', "\\\\").as_str()),
            "{text}"
        );
    }
}
