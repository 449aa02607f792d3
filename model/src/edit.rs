//! Graph edits as values. Each edit carries what it needs to be undone, so
//! `apply(e)` then `apply(e.inverse())` restores the document exactly; the studio's
//! undo/redo is a stack of these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flow::{Edge, FlowDoc, Node, NodeId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Edit {
    /// Insert `node` at `index` (clamped to the end).
    AddNode {
        node: Box<Node>,
        index: usize,
    },
    /// Remove the node (which must have no edges: use [`Edit::remove_node`]).
    RemoveNode {
        node: Box<Node>,
        index: usize,
    },
    MoveNode {
        id: NodeId,
        from: [f64; 2],
        to: [f64; 2],
    },
    /// Add `edge` at position `index` of the edge list (`None` appends).
    Connect {
        edge: Edge,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
    },
    /// Remove `edge`; `index` is where it stood, so undo puts it back there.
    Disconnect {
        edge: Edge,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
    },
    SetConfig {
        id: NodeId,
        before: Value,
        after: Value,
    },
    /// Replace a node's other fields (label, retry, timeout, …); the id must stay.
    ReplaceNode {
        before: Box<Node>,
        after: Box<Node>,
    },
    Rename {
        before: String,
        after: String,
    },
    /// Several edits as one undo step.
    Batch {
        edits: Vec<Edit>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("node {0:?} already exists")]
    NodeExists(String),
    #[error("node {0:?} does not exist")]
    NoSuchNode(String),
    #[error("node {0:?} still has edges; remove them first")]
    NodeHasEdges(String),
    #[error("edge {0} already exists")]
    EdgeExists(String),
    #[error("edge {0} does not exist")]
    NoSuchEdge(String),
    #[error("node {0:?} is not in the state this edit expects")]
    Stale(String),
}

fn edge_name(e: &Edge) -> String {
    format!("{} -[{}]-> {}", e.from, e.port(), e.to)
}

impl Edit {
    /// Removing a node together with its edges, as one undoable edit.
    pub fn remove_node(doc: &FlowDoc, id: &str) -> Result<Edit, EditError> {
        let index = doc
            .node_index(id)
            .ok_or_else(|| EditError::NoSuchNode(id.into()))?;
        // Each index is where the edge stands when its removal runs (earlier removals
        // shift it left), so the reversed inverse re-inserts every edge in place.
        let mut edits: Vec<Edit> = doc
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.from.as_str() == id || e.to.as_str() == id)
            .enumerate()
            .map(|(k, (j, e))| Edit::Disconnect {
                edge: e.clone(),
                index: Some(j - k),
            })
            .collect();
        edits.push(Edit::RemoveNode {
            node: Box::new(doc.nodes[index].clone()),
            index,
        });
        Ok(Edit::Batch { edits })
    }

    /// Disconnecting `edge`, remembering its place for undo.
    pub fn disconnect(doc: &FlowDoc, edge: &Edge) -> Result<Edit, EditError> {
        let index = doc
            .edges
            .iter()
            .position(|e| e == edge)
            .ok_or_else(|| EditError::NoSuchEdge(edge_name(edge)))?;
        Ok(Edit::Disconnect {
            edge: edge.clone(),
            index: Some(index),
        })
    }

    /// The edit that undoes this one.
    pub fn inverse(&self) -> Edit {
        match self.clone() {
            Edit::AddNode { node, index } => Edit::RemoveNode { node, index },
            Edit::RemoveNode { node, index } => Edit::AddNode { node, index },
            Edit::MoveNode { id, from, to } => Edit::MoveNode {
                id,
                from: to,
                to: from,
            },
            Edit::Connect { edge, index } => Edit::Disconnect { edge, index },
            Edit::Disconnect { edge, index } => Edit::Connect { edge, index },
            Edit::SetConfig { id, before, after } => Edit::SetConfig {
                id,
                before: after,
                after: before,
            },
            Edit::ReplaceNode { before, after } => Edit::ReplaceNode {
                before: after,
                after: before,
            },
            Edit::Rename { before, after } => Edit::Rename {
                before: after,
                after: before,
            },
            Edit::Batch { edits } => Edit::Batch {
                edits: edits.iter().rev().map(Edit::inverse).collect(),
            },
        }
    }

    /// Applies the edit; on error the document is left unchanged.
    pub fn apply(&self, doc: &mut FlowDoc) -> Result<(), EditError> {
        if let Edit::Batch { edits } = self {
            let mut scratch = doc.clone();
            for edit in edits {
                edit.apply(&mut scratch)?;
            }
            *doc = scratch;
            return Ok(());
        }
        self.apply_one(doc)
    }

    fn apply_one(&self, doc: &mut FlowDoc) -> Result<(), EditError> {
        let find = |doc: &FlowDoc, id: &str| {
            doc.node_index(id)
                .ok_or_else(|| EditError::NoSuchNode(id.into()))
        };
        match self {
            Edit::AddNode { node, index } => {
                if doc.node_index(node.id.as_str()).is_some() {
                    return Err(EditError::NodeExists(node.id.to_string()));
                }
                let at = (*index).min(doc.nodes.len());
                doc.nodes.insert(at, node.as_ref().clone());
            }
            Edit::RemoveNode { node, .. } => {
                let i = find(doc, node.id.as_str())?;
                if doc
                    .edges
                    .iter()
                    .any(|e| e.from == node.id || e.to == node.id)
                {
                    return Err(EditError::NodeHasEdges(node.id.to_string()));
                }
                doc.nodes.remove(i);
            }
            Edit::MoveNode { id, to, .. } => {
                let i = find(doc, id.as_str())?;
                doc.nodes[i].position = *to;
            }
            Edit::Connect { edge, index } => {
                if doc.edges.contains(edge) {
                    return Err(EditError::EdgeExists(edge_name(edge)));
                }
                let at = index.unwrap_or(usize::MAX).min(doc.edges.len());
                doc.edges.insert(at, edge.clone());
            }
            Edit::Disconnect { edge, .. } => {
                let j = doc
                    .edges
                    .iter()
                    .position(|e| e == edge)
                    .ok_or_else(|| EditError::NoSuchEdge(edge_name(edge)))?;
                doc.edges.remove(j);
            }
            Edit::SetConfig { id, before, after } => {
                let i = find(doc, id.as_str())?;
                if &doc.nodes[i].config != before {
                    return Err(EditError::Stale(id.to_string()));
                }
                doc.nodes[i].config = after.clone();
            }
            Edit::ReplaceNode { before, after } => {
                let i = find(doc, before.id.as_str())?;
                if doc.nodes[i] != **before || before.id != after.id {
                    return Err(EditError::Stale(before.id.to_string()));
                }
                doc.nodes[i] = after.as_ref().clone();
            }
            Edit::Rename { after, .. } => doc.name = after.clone(),
            Edit::Batch { .. } => self.apply(doc)?,
        }
        Ok(())
    }
}
