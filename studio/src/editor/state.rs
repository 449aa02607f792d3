//! The editor's state: the flow being edited, its undo/redo history, the selection and
//! copy/paste, as plain Rust (tested natively), and [`Editor`], which holds it in signals
//! for the view.
//!
//! Changes are model [`Edit`]s: [`History`] applies them and undoes them by applying their
//! inverse. What a gesture becomes (which nodes a delete removes, what a paste adds, where
//! a new node goes) is decided here by functions of the document, so the view only
//! renders and dispatches.

use std::collections::{BTreeSet, HashMap};

use leptos::prelude::*;
use trellis_model::node_types::NodeTypeSpec;
use trellis_model::{Catalog, ConnectorEntry, Edge, Edit, FlowDoc, Node, NodeId};

/// The snap grid of node positions, in flow pixels.
const GRID: f64 = 8.0;

/// `v` on the snap grid.
pub fn snap(v: f64) -> f64 {
    (v / GRID).round() * GRID
}

/// The applied edits, for undo and redo. Undo applies an edit's inverse.
#[derive(Clone, Debug, Default)]
pub struct History {
    undo: Vec<Edit>,
    redo: Vec<Edit>,
}

impl History {
    /// Applies `edit` to `doc` and records it for undo, forgetting what could be redone.
    /// An edit that does not apply changes nothing and is not recorded: returns false.
    pub fn apply(&mut self, doc: &mut FlowDoc, edit: Edit) -> bool {
        if edit.apply(doc).is_err() {
            return false;
        }
        self.undo.push(edit);
        self.redo.clear();
        true
    }

    /// Undoes the last edit; false when there is none.
    pub fn undo(&mut self, doc: &mut FlowDoc) -> bool {
        let Some(edit) = self.undo.pop() else {
            return false;
        };
        let _ = edit.inverse().apply(doc);
        self.redo.push(edit);
        true
    }

    /// Applies the last undone edit again; false when there is none.
    pub fn redo(&mut self, doc: &mut FlowDoc) -> bool {
        let Some(edit) = self.redo.pop() else {
            return false;
        };
        let _ = edit.apply(doc);
        self.undo.push(edit);
        true
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

/// The selected nodes: `picked` holds all of them (shift/ctrl-click, box select), `focus`
/// the one the inspector shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub focus: Option<NodeId>,
    pub picked: BTreeSet<NodeId>,
}

impl Selection {
    /// All of `ids`, the first focused.
    pub fn of(ids: BTreeSet<NodeId>) -> Self {
        Selection {
            focus: ids.iter().next().cloned(),
            picked: ids,
        }
    }

    /// A press on `id`. With `toggle` (shift/ctrl) it joins or leaves the selection, and is
    /// focused if it joined. Without, it becomes the selection, unless it is already part of
    /// it (so the whole selection can be dragged), and is focused.
    pub fn pick(&mut self, id: &NodeId, toggle: bool) {
        if toggle {
            let added = !self.picked.remove(id);
            if added {
                self.picked.insert(id.clone());
            }
            self.focus = added.then(|| id.clone());
        } else {
            if !self.picked.contains(id) {
                self.picked = std::iter::once(id.clone()).collect();
            }
            self.focus = Some(id.clone());
        }
    }

    /// Every selected node, the focused one included.
    pub fn ids(&self) -> BTreeSet<NodeId> {
        let mut ids = self.picked.clone();
        ids.extend(self.focus.clone());
        ids
    }
}

/// Copied nodes and the edges between them (the session's clipboard, so it pastes into
/// any flow).
#[derive(Clone, Debug, PartialEq)]
pub struct Copied {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// The nodes `ids` of `doc` and the edges between them; `None` when `ids` is empty.
pub fn copy(doc: &FlowDoc, ids: &BTreeSet<NodeId>) -> Option<Copied> {
    if ids.is_empty() {
        return None;
    }
    let nodes = doc
        .nodes
        .iter()
        .filter(|n| ids.contains(&n.id))
        .cloned()
        .collect();
    let edges = doc
        .edges
        .iter()
        .filter(|e| ids.contains(&e.from) && ids.contains(&e.to))
        .cloned()
        .collect();
    Some(Copied { nodes, edges })
}

/// How far a pasted node lands from its original, in flow pixels (both axes).
const PASTE_OFFSET: f64 = 40.0;

/// Pasting `copied` into `doc`: one edit adding the nodes (renamed `<id>_copy`,
/// `<id>_copy2`, … where their id is taken; shifted by [`PASTE_OFFSET`]) and the edges
/// between them, and the new ids in the clipboard's order. `None` when nothing would be
/// added.
pub fn paste(doc: &FlowDoc, copied: &Copied) -> Option<(Edit, Vec<NodeId>)> {
    let mut doc = doc.clone();
    let mut renamed = HashMap::new();
    let mut added = Vec::new();
    let mut edits = Vec::new();
    for node in &copied.nodes {
        let base = node.id.to_string();
        let mut candidate = base.clone();
        let mut n = 1;
        while doc.node(&candidate).is_some() {
            candidate = format!(
                "{base}_copy{}",
                if n == 1 { String::new() } else { n.to_string() }
            );
            n += 1;
        }
        let Ok(id) = NodeId::new(candidate) else {
            continue;
        };
        let pasted = Node {
            id: id.clone(),
            position: [
                node.position[0] + PASTE_OFFSET,
                node.position[1] + PASTE_OFFSET,
            ],
            ..node.clone()
        };
        let edit = Edit::AddNode {
            node: Box::new(pasted),
            index: doc.nodes.len(),
        };
        if edit.apply(&mut doc).is_ok() {
            renamed.insert(node.id.clone(), id.clone());
            added.push(id);
            edits.push(edit);
        }
    }
    for e in &copied.edges {
        if let (Some(from), Some(to)) = (renamed.get(&e.from), renamed.get(&e.to)) {
            let edit = Edit::Connect {
                edge: Edge {
                    from: from.clone(),
                    port: e.port.clone(),
                    to: to.clone(),
                },
                index: None,
            };
            if edit.apply(&mut doc).is_ok() {
                edits.push(edit);
            }
        }
    }
    (!edits.is_empty()).then_some((Edit::Batch { edits }, added))
}

/// Removing the nodes `ids` (and their edges) from `doc` as one edit; each removal is
/// computed on the document the previous one left. `None` when `ids` is empty.
pub fn remove_nodes(doc: &FlowDoc, ids: &BTreeSet<NodeId>) -> Option<Edit> {
    if ids.is_empty() {
        return None;
    }
    let mut scratch = doc.clone();
    let mut edits = Vec::new();
    for id in ids {
        if let Ok(edit) = Edit::remove_node(&scratch, id.as_str())
            && edit.apply(&mut scratch).is_ok()
        {
            edits.push(edit);
        }
    }
    Some(Edit::Batch { edits })
}

/// A free id `<prefix>_<n>` and the next free grid spot for a new node.
pub fn new_node_slot(doc: &FlowDoc, prefix: &str) -> (String, [f64; 2]) {
    let mut n = 1;
    let id = loop {
        let candidate = format!("{prefix}_{n}");
        if doc.node(&candidate).is_none() {
            break candidate;
        }
        n += 1;
    };
    let count = doc.nodes.len() as f64;
    let spot = [
        snap(40.0 + 200.0 * (count % 5.0)),
        snap(40.0 + 110.0 * (count / 5.0).floor()),
    ];
    (id, spot)
}

/// A rectangle in flow coordinates: left, top, right, bottom.
pub type Rect = [f64; 4];

fn overlaps(a: Rect, b: Rect) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

/// Where a node added by a click goes: the first grid spot, row by row, inside `view` (the
/// part of the canvas on screen) that overlaps no node and nothing in `avoid` (the
/// minimap); `None` when the view has no such spot.
pub fn free_spot(doc: &FlowDoc, view: Rect, avoid: &[Rect], size: (f64, f64)) -> Option<[f64; 2]> {
    const MARGIN: f64 = 24.0;
    let (w, h) = size;
    let taken: Vec<Rect> = doc
        .nodes
        .iter()
        .map(|n| {
            [
                n.position[0] - MARGIN,
                n.position[1] - MARGIN,
                n.position[0] + w + MARGIN,
                n.position[1] + h + MARGIN,
            ]
        })
        .chain(avoid.iter().copied())
        .collect();
    let mut y = snap(view[1] + MARGIN);
    while y + h <= view[3] {
        let mut x = snap(view[0] + MARGIN);
        while x + w <= view[2] {
            let spot = [x, y, x + w, y + h];
            if !taken.iter().any(|t| overlaps(spot, *t)) {
                return Some([x, y]);
            }
            x += GRID * 2.0;
        }
        y += GRID * 2.0;
    }
    None
}

/// A node being dragged, with the rest of the selection.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Drag {
    pub id: NodeId,
    pub from: [f64; 2],
    /// Where the pointer holds the node, from its top-left corner.
    pub grab: (f64, f64),
    pub at: [f64; 2],
    /// The rest of the selection, moving by the same offset.
    pub others: Vec<(NodeId, [f64; 2])>,
}

impl Drag {
    /// Where `id` is while this drag lasts, if it moves with it.
    pub fn position_of(&self, id: &NodeId) -> Option<[f64; 2]> {
        let (dx, dy) = (self.at[0] - self.from[0], self.at[1] - self.from[1]);
        if &self.id == id {
            return Some(self.at);
        }
        self.others
            .iter()
            .find(|(o, _)| o == id)
            .map(|(_, p)| [(p[0] + dx).max(0.0), (p[1] + dy).max(0.0)])
    }

    /// The edit that drops the dragged nodes with the dragged one at `to`: one move, or a
    /// batch moving the whole selection. `None` when it did not move.
    pub fn drop_at(&self, to: [f64; 2]) -> Option<Edit> {
        if to == self.from {
            return None;
        }
        let moved = Drag {
            at: to,
            ..self.clone()
        };
        let mut edits = vec![Edit::MoveNode {
            id: self.id.clone(),
            from: self.from,
            to,
        }];
        for (id, from) in &self.others {
            if let Some(to) = moved.position_of(id) {
                edits.push(Edit::MoveNode {
                    id: id.clone(),
                    from: *from,
                    to,
                });
            }
        }
        Some(if edits.len() == 1 {
            edits.remove(0)
        } else {
            Edit::Batch { edits }
        })
    }
}

/// A wire being drawn from an output port.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Wire {
    pub from: NodeId,
    pub port: String,
    pub start: (f64, f64),
    pub at: (f64, f64),
    /// The node whose input port is under the pointer.
    pub over: Option<NodeId>,
}

/// A selection box: where the pointer went down and where it is, in flow coordinates.
pub(super) type BoxSpan = ((f64, f64), (f64, f64));

/// The editor's state in signals; `Copy` so event handlers can share it.
#[derive(Clone, Copy, Debug)]
pub struct Editor {
    /// The working document.
    pub doc: RwSignal<FlowDoc>,
    history: RwSignal<History>,
    /// The document as last loaded or saved: `dirty` is whether the working one differs
    /// (undoing back to it is clean again).
    saved: StoredValue<FlowDoc>,
    pub dirty: RwSignal<bool>,
    /// The node the inspector shows (see [`Selection`]). Setting it, even to the same
    /// node, rebuilds the inspector's form.
    pub selected: RwSignal<Option<NodeId>>,
    /// All selected nodes (see [`Selection`]).
    pub picked: RwSignal<BTreeSet<NodeId>>,
    pub(super) drag: RwSignal<Option<Drag>>,
    pub(super) wire: RwSignal<Option<Wire>>,
    pub notice: RwSignal<Option<String>>,
    /// A node type being dragged from the palette.
    pub(super) palette_drag: RwSignal<Option<&'static str>>,
    /// Canvas scale (1 = 100 %).
    pub zoom: RwSignal<f64>,
    /// The keyboard-shortcut overlay.
    pub(super) help: RwSignal<bool>,
    /// Box selection in progress: (start, current) in flow coordinates.
    pub(super) rubber: RwSignal<Option<BoxSpan>>,
    /// An older version shown read-only instead of the working document.
    pub viewing: RwSignal<Option<(i64, FlowDoc)>>,
    /// Node marks on the canvas: diff (`added`, `changed`) or run step status.
    pub marks: RwSignal<HashMap<String, &'static str>>,
    /// The enabled connectors' operations (palette, inspector, validation).
    pub catalog: RwSignal<Catalog>,
    /// The workspace's event catalog (`GET /api/v1/event-catalog`): the data picker's
    /// events, properties and lead attributes.
    pub events: RwSignal<serde_json::Value>,
}

impl Editor {
    pub fn new(doc: FlowDoc) -> Self {
        Editor {
            saved: StoredValue::new(doc.clone()),
            doc: RwSignal::new(doc),
            history: RwSignal::new(History::default()),
            dirty: RwSignal::new(false),
            selected: RwSignal::new(None),
            picked: RwSignal::new(Default::default()),
            drag: RwSignal::new(None),
            wire: RwSignal::new(None),
            notice: RwSignal::new(None),
            palette_drag: RwSignal::new(None),
            zoom: RwSignal::new(1.0),
            help: RwSignal::new(false),
            rubber: RwSignal::new(None),
            viewing: RwSignal::new(None),
            marks: RwSignal::new(Default::default()),
            catalog: RwSignal::new(Catalog::default()),
            events: RwSignal::new(serde_json::Value::Null),
        }
    }

    /// Shows version `n` read-only. The selection is dropped: the inspector must not keep
    /// editing a node of the working document behind a version being viewed.
    pub fn view_version(&self, n: i64, doc: FlowDoc) {
        self.select(Selection::default());
        self.marks.set(Default::default());
        self.viewing.set(Some((n, doc)));
    }

    /// Back from a viewed version to the working document.
    pub fn back_to_latest(&self) {
        self.select(Selection::default());
        self.marks.set(Default::default());
        self.viewing.set(None);
    }

    /// What the canvas shows: a version being viewed, else the working document.
    pub fn shown(&self) -> FlowDoc {
        self.with_shown(FlowDoc::clone)
    }

    /// Reads what the canvas shows (tracked) without copying it.
    pub fn with_shown<T>(&self, f: impl FnOnce(&FlowDoc) -> T) -> T {
        self.viewing.with(|v| match v {
            Some((_, d)) => f(d),
            None => self.doc.with(f),
        })
    }

    /// A version is being viewed: edits are refused.
    pub fn read_only(&self) -> bool {
        self.viewing.with_untracked(Option::is_some)
    }

    pub fn can_undo(&self) -> bool {
        self.history.with(History::can_undo)
    }

    pub fn can_redo(&self) -> bool {
        self.history.with(History::can_redo)
    }

    /// Runs `change` on the history and the working document; both are notified, and the
    /// flow marked unsaved, only when it returns true.
    fn change(&self, change: impl FnOnce(&mut History, &mut FlowDoc) -> bool) {
        if self.read_only() {
            return;
        }
        let mut changed = false;
        self.history.maybe_update(|h| {
            self.doc.maybe_update(|d| {
                changed = change(h, d);
                changed
            });
            changed
        });
        if changed {
            self.refresh_dirty();
        }
    }

    fn refresh_dirty(&self) {
        let dirty = self
            .saved
            .with_value(|saved| self.doc.with_untracked(|d| d != saved));
        if self.dirty.get_untracked() != dirty {
            self.dirty.set(dirty);
        }
    }

    /// Records `doc` as the saved document (what a save sent; the working document may have
    /// moved on meanwhile).
    pub fn mark_saved(&self, doc: FlowDoc) {
        self.saved.set_value(doc);
        self.refresh_dirty();
    }

    /// Applies an edit and records it for undo.
    pub fn apply(&self, edit: Edit) {
        self.change(|h, d| h.apply(d, edit));
    }

    pub fn undo(&self) {
        self.change(History::undo);
    }

    pub fn redo(&self) {
        self.change(History::redo);
    }

    /// The selection, read without tracking.
    pub fn selection(&self) -> Selection {
        Selection {
            focus: self.selected.get_untracked(),
            picked: self.picked.get_untracked(),
        }
    }

    /// Sets the selection (`picked` is notified only if it changed).
    pub fn select(&self, selection: Selection) {
        let Selection { focus, picked } = selection;
        if self.picked.with_untracked(|p| *p != picked) {
            self.picked.set(picked);
        }
        self.selected.set(focus);
    }

    /// Selects `id`; with `toggle` (shift/ctrl) adds it to or removes it from the selection.
    pub fn pick(&self, id: &NodeId, toggle: bool) {
        let mut selection = self.selection();
        selection.pick(id, toggle);
        self.select(selection);
    }

    /// Adds a node calling `operation` of the connector `entry` at `at` (a free grid spot
    /// when `None`).
    pub fn add_connector_node(
        &self,
        entry: &ConnectorEntry,
        operation: &str,
        at: Option<[f64; 2]>,
    ) {
        if self.read_only() {
            return;
        }
        let doc = self.doc.get_untracked();
        let (id, spot) = new_node_slot(&doc, operation);
        let position = at.unwrap_or(spot);
        self.insert_node(
            &doc,
            serde_json::json!({
                "id": id, "type": "connector", "connector": entry.reference(), "operation": operation,
                "config": {}, "input": {}, "position": position
            }),
        );
    }

    /// Adds a node of `spec`'s type at `at` (a free grid spot when `None`).
    pub fn add_node(&self, spec: &NodeTypeSpec, at: Option<[f64; 2]>) {
        if self.read_only() {
            return;
        }
        let doc = self.doc.get_untracked();
        let (id, spot) = new_node_slot(&doc, spec.name);
        let config = spec.default_config.clone();
        self.insert_node(
            &doc,
            serde_json::json!({
                "id": id, "type": spec.name, "config": config, "position": at.unwrap_or(spot)
            }),
        );
    }

    /// Appends the node `value` describes as one undoable edit and focuses it.
    fn insert_node(&self, doc: &FlowDoc, value: serde_json::Value) {
        let Ok(node) = serde_json::from_value::<Node>(value) else {
            return;
        };
        self.selected.set(Some(node.id.clone()));
        self.apply(Edit::AddNode {
            node: Box::new(node),
            index: doc.nodes.len(),
        });
    }

    /// Removes the selected nodes and their edges as one undoable edit.
    pub fn delete_selected(&self) {
        let ids = self.selection().ids();
        let Some(edit) = self.doc.with_untracked(|d| remove_nodes(d, &ids)) else {
            return;
        };
        self.select(Selection::default());
        self.apply(edit);
    }

    /// The selected nodes and the edges between them.
    pub fn copy_selection(&self) -> Option<Copied> {
        let ids = self.selection().ids();
        self.doc.with_untracked(|d| copy(d, &ids))
    }

    /// Pastes copied nodes as one undoable edit and selects them, the first focused.
    pub fn paste(&self, copied: &Copied) {
        let Some((edit, added)) = self.doc.with_untracked(|d| paste(d, copied)) else {
            return;
        };
        self.select(Selection {
            focus: added.first().cloned(),
            picked: added.into_iter().collect(),
        });
        self.apply(edit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> FlowDoc {
        serde_json::from_value(json!({
            "schema": 1, "name": "t",
            "nodes": [
                {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
                {"id": "a", "type": "note", "config": {"text": "a"}, "position": [200, 0]},
                {"id": "b", "type": "note", "config": {"text": "b"}, "position": [400, 0]}
            ],
            "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}]
        }))
        .expect("doc")
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).expect("id")
    }

    fn ids(list: &[&str]) -> BTreeSet<NodeId> {
        list.iter().map(|s| id(s)).collect()
    }

    fn node_ids(doc: &FlowDoc) -> Vec<String> {
        doc.nodes.iter().map(|n| n.id.to_string()).collect()
    }

    fn edge_names(doc: &FlowDoc) -> Vec<String> {
        doc.edges
            .iter()
            .map(|e| format!("{}-{}-{}", e.from, e.port(), e.to))
            .collect()
    }

    fn mv(node: &str, from: [f64; 2], to: [f64; 2]) -> Edit {
        Edit::MoveNode {
            id: id(node),
            from,
            to,
        }
    }

    #[test]
    fn undo_and_redo_walk_the_history() {
        let original = doc();
        let mut d = original.clone();
        let mut h = History::default();
        assert!(!h.can_undo() && !h.can_redo());
        assert!(h.apply(&mut d, mv("a", [200.0, 0.0], [208.0, 16.0])));
        let moved = d.clone();
        let edit = remove_nodes(&d, &ids(&["b"])).expect("edit");
        assert!(h.apply(&mut d, edit));
        assert_eq!(node_ids(&d), ["start", "a"]);
        assert_eq!(edge_names(&d), ["start-out-a"]);

        assert!(h.undo(&mut d));
        assert_eq!(d, moved);
        assert!(h.undo(&mut d));
        assert_eq!(d, original);
        assert!(!h.undo(&mut d), "nothing left to undo");
        assert!(!h.can_undo() && h.can_redo());

        assert!(h.redo(&mut d));
        assert_eq!(d, moved);
        // A new edit forgets what could be redone.
        assert!(h.apply(
            &mut d,
            Edit::Rename {
                before: "t".into(),
                after: "u".into()
            }
        ));
        assert!(!h.can_redo());
        assert!(!h.redo(&mut d));
        assert_eq!(d.name, "u");
    }

    #[test]
    fn an_edit_that_does_not_apply_is_not_recorded() {
        let mut d = doc();
        let mut h = History::default();
        assert!(!h.apply(&mut d, mv("nope", [0.0, 0.0], [8.0, 8.0])));
        assert_eq!(d, doc());
        assert!(!h.can_undo());
    }

    #[test]
    fn pressing_a_node_selects_it_and_toggling_adds_or_removes() {
        let mut s = Selection::default();
        assert!(s.ids().is_empty());
        s.pick(&id("a"), false);
        assert_eq!(s, Selection::of(ids(&["a"])));
        s.pick(&id("b"), true);
        assert_eq!(
            (s.focus.clone(), s.picked.clone()),
            (Some(id("b")), ids(&["a", "b"]))
        );
        // Pressing a node of the selection keeps the selection (to drag it all), focused there.
        s.pick(&id("a"), false);
        assert_eq!(
            (s.focus.clone(), s.picked.clone()),
            (Some(id("a")), ids(&["a", "b"]))
        );
        // Toggling a selected node off leaves nothing focused.
        s.pick(&id("a"), true);
        assert_eq!((s.focus.clone(), s.picked.clone()), (None, ids(&["b"])));
        // Pressing a node outside the selection starts a new one.
        s.pick(&id("start"), false);
        assert_eq!(s, Selection::of(ids(&["start"])));
        assert_eq!(
            Selection {
                focus: Some(id("start")),
                picked: ids(&["b"])
            }
            .ids(),
            ids(&["b", "start"])
        );
    }

    #[test]
    fn copy_takes_the_nodes_and_the_edges_between_them() {
        let d = doc();
        assert_eq!(copy(&d, &BTreeSet::new()), None);
        let c = copy(&d, &ids(&["b", "a"])).expect("copied");
        assert_eq!(
            c.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(c.edges.len(), 1, "start→a is not between copied nodes");
    }

    #[test]
    fn paste_renames_shifts_and_undoes_as_one_edit() {
        let mut d = doc();
        let c = copy(&d, &ids(&["a", "b"])).expect("copied");
        let mut h = History::default();
        let (edit, added) = paste(&d, &c).expect("paste");
        assert_eq!(added, [id("a_copy"), id("b_copy")]);
        assert!(h.apply(&mut d, edit));
        assert_eq!(node_ids(&d), ["start", "a", "b", "a_copy", "b_copy"]);
        assert_eq!(d.node("a_copy").map(|n| n.position), Some([240.0, 40.0]));
        assert_eq!(
            d.node("b_copy").map(|n| n.config.clone()),
            Some(json!({"text": "b"}))
        );
        assert_eq!(
            edge_names(&d),
            ["start-out-a", "a-out-b", "a_copy-out-b_copy"]
        );
        // Pasting again picks the next free names.
        let (edit, added) = paste(&d, &c).expect("paste");
        assert_eq!(added, [id("a_copy2"), id("b_copy2")]);
        assert!(h.apply(&mut d, edit));
        assert!(h.undo(&mut d));
        assert!(h.undo(&mut d));
        assert_eq!(d, doc());
    }

    #[test]
    fn paste_into_another_flow_keeps_free_ids() {
        let c = copy(&doc(), &ids(&["a"])).expect("copied");
        let empty: FlowDoc =
            serde_json::from_value(json!({"schema": 1, "name": "e", "nodes": [], "edges": []}))
                .expect("doc");
        let (_, added) = paste(&empty, &c).expect("paste");
        assert_eq!(added, [id("a")]);
    }

    #[test]
    fn delete_removes_the_nodes_with_their_edges_in_one_edit() {
        let mut d = doc();
        assert_eq!(remove_nodes(&d, &BTreeSet::new()), None);
        let edit = remove_nodes(&d, &ids(&["a", "b"])).expect("edit");
        let mut h = History::default();
        assert!(h.apply(&mut d, edit));
        assert_eq!(node_ids(&d), ["start"]);
        assert!(d.edges.is_empty());
        assert!(h.undo(&mut d));
        assert_eq!(d, doc());
    }

    #[test]
    fn a_drag_moves_the_selection_by_the_same_offset_as_one_edit() {
        let drag = Drag {
            id: id("a"),
            from: [200.0, 0.0],
            grab: (10.0, 10.0),
            at: [200.0, 0.0],
            others: vec![(id("b"), [400.0, 0.0]), (id("start"), [0.0, 0.0])],
        };
        assert_eq!(drag.drop_at([200.0, 0.0]), None);
        assert_eq!(
            drag.drop_at([160.0, 8.0]),
            Some(Edit::Batch {
                edits: vec![
                    mv("a", [200.0, 0.0], [160.0, 8.0]),
                    mv("b", [400.0, 0.0], [360.0, 8.0]),
                    // Never left of the canvas.
                    mv("start", [0.0, 0.0], [0.0, 8.0]),
                ]
            })
        );
        let alone = Drag {
            others: Vec::new(),
            ..drag
        };
        assert_eq!(
            alone.drop_at([216.0, 0.0]),
            Some(mv("a", [200.0, 0.0], [216.0, 0.0]))
        );
    }

    #[test]
    fn new_nodes_get_free_ids_and_grid_spots() {
        let d = doc();
        assert_eq!(new_node_slot(&d, "note"), ("note_1".into(), [640.0, 40.0]));
        assert_eq!(snap(13.0), 16.0);
    }

    #[test]
    fn a_clicked_node_lands_in_view_clear_of_nodes_and_the_minimap() {
        let d = doc();
        let size = (168.0, 80.0);
        // Scrolled far right: nothing there yet, so the view's first spot.
        let spot = free_spot(&d, [800.0, 0.0, 1600.0, 600.0], &[], size).expect("a spot");
        assert_eq!(spot, [824.0, 24.0]);
        // Over the document's nodes: a spot none of them covers.
        let view = [0.0, 0.0, 900.0, 600.0];
        let spot = free_spot(&d, view, &[], size).expect("a spot");
        let taken = |n: &Node| {
            overlaps(
                [spot[0], spot[1], spot[0] + 168.0, spot[1] + 80.0],
                [
                    n.position[0],
                    n.position[1],
                    n.position[0] + 168.0,
                    n.position[1] + 80.0,
                ],
            )
        };
        assert!(!d.nodes.iter().any(taken), "{spot:?}");
        assert!(spot[0] + 168.0 <= 900.0 && spot[1] + 80.0 <= 600.0);
        // The minimap's corner is avoided, and a full view gives none.
        let minimap = [600.0, 0.0, 900.0, 600.0];
        let spot = free_spot(&d, view, &[minimap], size).expect("a spot");
        assert!(spot[0] + 168.0 <= 600.0, "{spot:?}");
        assert_eq!(free_spot(&d, [0.0, 0.0, 100.0, 100.0], &[], size), None);
    }

    /// The signals glue: the editor's operations reach the document, history and selection.
    #[test]
    fn the_editor_applies_undoes_and_pastes_through_its_signals() {
        let ed = Editor::new(doc());
        ed.pick(&id("a"), false);
        ed.pick(&id("b"), true);
        let copied = ed.copy_selection().expect("copied");
        ed.paste(&copied);
        assert_eq!(ed.selected.get_untracked(), Some(id("a_copy")));
        assert_eq!(ed.picked.get_untracked(), ids(&["a_copy", "b_copy"]));
        assert!(ed.dirty.get_untracked());
        assert!(ed.history.with_untracked(History::can_undo));
        ed.delete_selected();
        assert_eq!(ed.doc.with_untracked(node_ids), ["start", "a", "b"]);
        assert_eq!(ed.selection(), Selection::default());
        ed.undo();
        ed.undo();
        assert_eq!(ed.doc.get_untracked(), doc());
        assert!(
            !ed.dirty.get_untracked(),
            "undone back to the saved document"
        );
        ed.redo();
        assert!(ed.dirty.get_untracked());
        ed.mark_saved(ed.doc.get_untracked());
        assert!(!ed.dirty.get_untracked());
        assert_eq!(ed.doc.with_untracked(|d| d.nodes.len()), 5);
        // Viewing an older version is read-only.
        ed.pick(&id("a"), false);
        ed.view_version(1, doc());
        assert_eq!(ed.selection(), Selection::default());
        ed.undo();
        assert_eq!(ed.doc.with_untracked(|d| d.nodes.len()), 5);
        assert_eq!(ed.shown(), doc());
    }
}
