//! Semantic diff between two flow documents: what a reviewer needs to know, not a text diff.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::flow::{Edge, FlowDoc, Node};
use crate::node_types::{NodeKind, escape_pointer};

/// How one node changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeChange {
    pub id: String,
    /// Set when the node's type changed: `[before, after]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_changed: Option<[String; 2]>,
    /// JSON pointers (inside `config`) whose values differ.
    pub config_paths: Vec<String>,
    /// Other node fields that differ: `label`, `retry`, `timeout`, `connector`, `operation`.
    pub fields: Vec<&'static str>,
}

/// The semantic difference between two versions of a flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlowDiff {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed: Option<[String; 2]>,
    pub description_changed: bool,
    pub trigger_changed: bool,
    pub nodes_added: Vec<String>,
    pub nodes_removed: Vec<String>,
    pub nodes_changed: Vec<NodeChange>,
    /// Nodes that only moved on the canvas.
    pub nodes_moved: Vec<String>,
    pub edges_added: Vec<Edge>,
    pub edges_removed: Vec<Edge>,
}

impl FlowDiff {
    /// True when nothing that affects execution or naming changed.
    pub fn is_empty(&self) -> bool {
        self.renamed.is_none()
            && !self.description_changed
            && self.nodes_added.is_empty()
            && self.nodes_removed.is_empty()
            && self.nodes_changed.is_empty()
            && self.edges_added.is_empty()
            && self.edges_removed.is_empty()
    }
}

/// Compares `a` (before) with `b` (after).
pub fn diff(a: &FlowDoc, b: &FlowDoc) -> FlowDiff {
    let before: BTreeMap<&str, &Node> = a.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let after: BTreeMap<&str, &Node> = b.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = FlowDiff {
        renamed: (a.name != b.name).then(|| [a.name.clone(), b.name.clone()]),
        description_changed: a.description != b.description,
        ..FlowDiff::default()
    };
    for (id, node) in &after {
        match before.get(id) {
            None => out.nodes_added.push(id.to_string()),
            Some(old) => {
                if let Some(change) = node_change(old, node) {
                    if old.kind() == Some(NodeKind::Trigger)
                        || node.kind() == Some(NodeKind::Trigger)
                    {
                        out.trigger_changed = true;
                    }
                    out.nodes_changed.push(change);
                } else if old.position != node.position {
                    out.nodes_moved.push(id.to_string());
                }
            }
        }
    }
    for id in before.keys() {
        if !after.contains_key(id) {
            out.nodes_removed.push(id.to_string());
        }
    }
    let trigger_id = |d: &FlowDoc| d.trigger().map(|t| t.id.clone());
    if trigger_id(a) != trigger_id(b) {
        out.trigger_changed = true;
    }
    out.edges_added = b
        .edges
        .iter()
        .filter(|e| !a.edges.contains(e))
        .cloned()
        .collect();
    out.edges_removed = a
        .edges
        .iter()
        .filter(|e| !b.edges.contains(e))
        .cloned()
        .collect();
    out
}

fn node_change(a: &Node, b: &Node) -> Option<NodeChange> {
    let mut config_paths = Vec::new();
    json_paths("", &a.config, &b.config, &mut config_paths);
    let mut fields = Vec::new();
    if a.label != b.label {
        fields.push("label");
    }
    if a.retry != b.retry {
        fields.push("retry");
    }
    if a.timeout != b.timeout {
        fields.push("timeout");
    }
    if a.connector != b.connector {
        fields.push("connector");
    }
    if a.operation != b.operation {
        fields.push("operation");
    }
    let type_changed =
        (a.node_type != b.node_type).then(|| [a.node_type.clone(), b.node_type.clone()]);
    if type_changed.is_none() && config_paths.is_empty() && fields.is_empty() {
        return None;
    }
    Some(NodeChange {
        id: a.id.to_string(),
        type_changed,
        config_paths,
        fields,
    })
}

/// Leaf pointers where `a` and `b` differ (objects are compared key by key, arrays and
/// scalars as wholes).
pub fn json_paths(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x
                .keys()
                .chain(y.keys().filter(|k| !x.contains_key(*k)))
                .collect();
            keys.sort();
            for key in keys {
                let path = format!("{prefix}/{}", escape_pointer(key));
                match (x.get(key), y.get(key)) {
                    (Some(va), Some(vb)) => json_paths(&path, va, vb, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(if prefix.is_empty() {
            "/".into()
        } else {
            prefix.into()
        }),
        _ => {}
    }
}

/// One value that differs between two JSON documents: where, and what it was and became
/// (`None`: absent on that side).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Every leaf where `a` and `b` differ, for a document edited as a whole (a contact
/// policy, URL-category rules): objects key by key, arrays element by element (an element
/// past the other's end is added or removed), other values as wholes.
pub fn json_changes(a: &Value, b: &Value) -> Vec<JsonChange> {
    let mut out = Vec::new();
    // Pairs still to compare, with their pointers: no recursion on deep documents.
    let mut todo: Vec<(String, Option<&Value>, Option<&Value>)> =
        vec![(String::new(), Some(a), Some(b))];
    while let Some((path, x, y)) = todo.pop() {
        match (x, y) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x
                    .keys()
                    .chain(y.keys().filter(|k| !x.contains_key(*k)))
                    .collect();
                keys.sort();
                for key in keys.into_iter().rev() {
                    todo.push((
                        format!("{path}/{}", escape_pointer(key)),
                        x.get(key),
                        y.get(key),
                    ));
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) => {
                for i in (0..x.len().max(y.len())).rev() {
                    todo.push((format!("{path}/{i}"), x.get(i), y.get(i)));
                }
            }
            (x, y) if x != y => out.push(JsonChange {
                path: if path.is_empty() { "/".into() } else { path },
                before: x.cloned(),
                after: y.cloned(),
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod json_change_tests {
    use serde_json::json;

    use super::json_changes;

    #[test]
    fn changes_name_each_leaf_in_document_order() {
        let a = json!({ "caps": [{ "channel": "wecom", "max": 1 }], "zone": "Asia/Shanghai", "old": true });
        let b = json!({ "caps": [{ "channel": "wecom", "max": 2 }, { "channel": "sms", "max": 4 }], "zone": "Asia/Shanghai", "new": "x~/y" });
        let changes: Vec<(String, Option<serde_json::Value>, Option<serde_json::Value>)> =
            json_changes(&a, &b)
                .into_iter()
                .map(|c| (c.path, c.before, c.after))
                .collect();
        assert_eq!(
            changes,
            vec![
                ("/caps/0/max".into(), Some(json!(1)), Some(json!(2))),
                (
                    "/caps/1".into(),
                    None,
                    Some(json!({ "channel": "sms", "max": 4 }))
                ),
                ("/new".into(), None, Some(json!("x~/y"))),
                ("/old".into(), Some(json!(true)), None),
            ]
        );
        assert!(json_changes(&a, &a).is_empty());
        assert_eq!(json_changes(&json!(1), &json!("1"))[0].path, "/");
    }
}
