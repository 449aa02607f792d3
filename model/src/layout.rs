//! Auto-layout: left-to-right layers from the trigger, as the studio's "arrange" button
//! uses it. Pure, so it is tested here and runs in the browser.

use std::collections::{HashMap, VecDeque};

use crate::edit::Edit;
use crate::flow::FlowDoc;

/// Horizontal distance between layers and vertical distance between nodes of a layer.
pub const LAYER_GAP: f64 = 220.0;
pub const ROW_GAP: f64 = 110.0;
const ORIGIN: f64 = 40.0;

/// New positions: each node in the layer of its longest path from the trigger (edges that
/// close a loop are ignored), in document order within a layer; unreachable nodes go in a
/// last column.
pub fn layered(doc: &FlowDoc) -> Vec<(String, [f64; 2])> {
    let index: HashMap<&str, usize> = doc
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let n = doc.nodes.len();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &doc.edges {
        if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
            out[a].push(b);
        }
    }
    let mut layer: Vec<Option<usize>> = vec![None; n];
    if let Some(t) = doc
        .trigger()
        .and_then(|t| index.get(t.id.as_str()).copied())
    {
        // Depth-first from the trigger: an edge to a node on the stack closes a loop.
        let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
        let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut stack = vec![(t, 0usize)];
        state[t] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if let Some(&w) = out[v].get(*k) {
                *k += 1;
                match state[w] {
                    0 => {
                        forward[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    2 => forward[v].push(w),
                    _ => {} // back edge: ignored
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
        // Longest path over the loop-free edges, in topological order (Kahn).
        let mut indegree = vec![0usize; n];
        for targets in &forward {
            for &w in targets {
                indegree[w] += 1;
            }
        }
        layer[t] = Some(0);
        let mut ready = VecDeque::from([t]);
        while let Some(v) = ready.pop_front() {
            let lv = layer[v].unwrap_or(0);
            for &w in &forward[v] {
                layer[w] = Some(layer[w].map_or(lv + 1, |lw| lw.max(lv + 1)));
                indegree[w] -= 1;
                if indegree[w] == 0 {
                    ready.push_back(w);
                }
            }
        }
    }
    let last = layer.iter().flatten().max().map_or(0, |m| m + 1);
    let mut rows: HashMap<usize, usize> = HashMap::new();
    doc.nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let l = layer[i].unwrap_or(last);
            let row = rows.entry(l).or_insert(0);
            let pos = [
                ORIGIN + LAYER_GAP * l as f64,
                ORIGIN + ROW_GAP * *row as f64,
            ];
            *row += 1;
            (node.id.to_string(), pos)
        })
        .collect()
}

/// The layout as one undoable edit (only nodes that move).
pub fn layout_edit(doc: &FlowDoc) -> Edit {
    let edits = layered(doc)
        .into_iter()
        .filter_map(|(id, to)| {
            let node = doc.node(&id)?;
            (node.position != to).then(|| Edit::MoveNode {
                id: node.id.clone(),
                from: node.position,
                to,
            })
        })
        .collect();
    Edit::Batch { edits }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layers_follow_the_longest_path_and_loops_terminate() {
        let doc: FlowDoc = serde_json::from_value(json!({"schema": 1, "name": "l", "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
            {"id": "a", "type": "branch", "config": {"when": "true"}},
            {"id": "b", "type": "wait", "config": {"duration": "1d"}},
            {"id": "c", "type": "note", "config": {}},
            {"id": "lonely", "type": "note", "config": {}}],
            "edges": [{"from": "t", "to": "a"}, {"from": "a", "port": "true", "to": "b"},
                      {"from": "a", "port": "false", "to": "c"}, {"from": "b", "to": "c"}, {"from": "b", "to": "a"}]}))
        .unwrap();
        let pos: HashMap<String, [f64; 2]> = layered(&doc).into_iter().collect();
        assert_eq!(pos["t"], [40.0, 40.0]);
        assert_eq!(pos["a"][0], 40.0 + LAYER_GAP);
        assert_eq!(pos["b"][0], 40.0 + 2.0 * LAYER_GAP);
        assert_eq!(
            pos["c"][0],
            40.0 + 3.0 * LAYER_GAP,
            "c sits after its longest path t→a→b→c"
        );
        assert!(pos["lonely"][0] > pos["c"][0], "unreachable nodes go last");
        let mut moved = doc.clone();
        let edit = layout_edit(&doc);
        edit.apply(&mut moved).unwrap();
        assert_eq!(moved.node("c").unwrap().position, pos["c"]);
        edit.inverse().apply(&mut moved).unwrap();
        assert_eq!(moved, doc, "the layout undoes exactly");
    }
}
