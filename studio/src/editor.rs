//! The flow editor's view: canvas (drag to move, drag a port to connect), palette,
//! toolbar, live validation, save with the base version. Its state and what each gesture
//! changes are in [`state`].

pub mod state;

use leptos::html::Div;
use leptos::prelude::*;
use trellis_model::node_types::{NodeTypeSpec, builtin_node_types, node_type};
use trellis_model::{
    Catalog, Diagnostic, Edge, Edit, FlowDoc, Node, NodeId, Severity, validate_with,
};

use self::state::Editor;
use self::state::{Drag, Selection, Wire, snap};
use crate::Session;
use crate::api::{self, SaveError};
use crate::i18n::Text;

pub const NODE_WIDTH: f64 = 168.0;
const HEADER: f64 = 26.0;
const PORT_GAP: f64 = 18.0;

/// Height of a node box with `ports` output ports.
fn node_height(ports: usize) -> f64 {
    HEADER + 16.0 + PORT_GAP * ports.max(1) as f64
}

/// Output ports shown on the canvas: the `error` port where it is wired, the `blocked` port
/// where it is wired or where the node's operation reaches customers (the contact policy can
/// refuse its calls).
fn visible_ports(doc: &FlowDoc, node: &Node, catalog: &Catalog) -> Vec<String> {
    let Some(spec) = node_type(&node.node_type) else {
        return vec!["out".into()];
    };
    let wired = |port: &str| {
        doc.edges
            .iter()
            .any(|e| e.from == node.id && e.port() == port)
    };
    let contacts = || {
        node.connector
            .as_deref()
            .and_then(|c| catalog.get(c))
            .zip(node.operation.as_deref())
            .and_then(|(entry, op)| entry.operation(op))
            .is_some_and(|op| op.contact.is_some())
    };
    spec.output_ports(&node.config)
        .into_iter()
        .filter(|p| match p.as_str() {
            "error" => wired(p),
            "blocked" => wired(p) || contacts(),
            _ => true,
        })
        .collect()
}

/// Where output port `index` of a node at `position` is.
fn out_port_xy(position: [f64; 2], index: usize) -> (f64, f64) {
    (
        position[0] + NODE_WIDTH,
        position[1] + HEADER + 8.0 + PORT_GAP * index as f64 + PORT_GAP / 2.0,
    )
}

/// Where the input port of a node at `position` is.
fn in_port_xy(position: [f64; 2]) -> (f64, f64) {
    (position[0], position[1] + HEADER + 8.0 + PORT_GAP / 2.0)
}

fn curve((x1, y1): (f64, f64), (x2, y2): (f64, f64)) -> String {
    let dx = ((x2 - x1).abs() / 2.0).max(40.0);
    format!(
        "M {x1} {y1} C {} {y1}, {} {y2}, {x2} {y2}",
        x1 + dx,
        x2 - dx
    )
}

/// Why `edge` may not be added to `doc`, if it may not: the validator's own answer (its
/// first new error's code).
pub fn connection_problem(doc: &FlowDoc, edge: &Edge) -> Option<&'static str> {
    trellis_model::validate::connection_problems(doc, edge)
        .first()
        .map(|d| d.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn doc() -> FlowDoc {
        serde_json::from_value(json!({
            "schema": 1, "name": "t",
            "nodes": [
                {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
                {"id": "hot", "type": "branch", "config": {"when": "true"}},
                {"id": "a", "type": "note", "config": {}},
                {"id": "w", "type": "wait", "config": {"duration": "1h"}}
            ],
            "edges": [{"from": "start", "to": "hot"}, {"from": "hot", "port": "true", "to": "a"}]
        }))
        .expect("doc")
    }

    fn edge(from: &str, port: Option<&str>, to: &str) -> Edge {
        serde_json::from_value(json!({"from": from, "port": port, "to": to})).expect("edge")
    }

    /// The studio refuses exactly the wires the validator refuses.
    #[test]
    fn connections_are_judged_by_the_validator() {
        let d = doc();
        assert_eq!(
            connection_problem(&d, &edge("hot", Some("false"), "a")),
            None
        );
        assert_eq!(
            connection_problem(&d, &edge("a", None, "start")),
            Some("edge_into_trigger")
        );
        assert_eq!(
            connection_problem(&d, &edge("hot", Some("true"), "a")),
            Some("duplicate_edge")
        );
        // What the studio's own rules let through: a port the node lacks, a cycle with no
        // wait; and what they refused though it is valid: a loop through a wait.
        assert_eq!(
            connection_problem(&d, &edge("hot", Some("maybe"), "a")),
            Some("unknown_port")
        );
        assert_eq!(
            connection_problem(&d, &edge("a", None, "hot")),
            Some("cycle")
        );
        assert_eq!(connection_problem(&d, &edge("w", None, "w")), None);
    }

    /// A connector node shows its `blocked` port when its operation reaches customers (so
    /// it can be wired), or when it is wired; the `error` port only when wired.
    #[test]
    fn the_blocked_port_shows_where_the_contact_policy_applies() {
        let op = |name: &str, contact: Option<Value>| {
            json!({"name": name, "title": {"zh": name, "en": name}, "config_schema": {},
                   "input_schema": {}, "output_schema": {}, "side_effects": true, "contact": contact})
        };
        let entry: trellis_model::ConnectorEntry = serde_json::from_value(json!({
            "name": "wecom", "major": 0, "version": "0.1.0", "title": {"zh": "企业微信", "en": "WeCom"},
            "operations": [
                op("create_group_send", Some(json!({"channel": "wecom_group_send",
                    "recipient": "/external_userid", "identity": "external_contact_id"}))),
                op("send_app_message", None)
            ]
        }))
        .expect("entry");
        let catalog = Catalog::new([entry]);
        let node = |op: &str| -> Node {
            serde_json::from_value(
                json!({"id": op, "type": "connector", "connector": "wecom@0",
                                          "operation": op, "config": {}}),
            )
            .expect("node")
        };
        let d = doc();
        assert_eq!(
            visible_ports(&d, &node("create_group_send"), &catalog),
            ["out", "blocked"]
        );
        assert_eq!(
            visible_ports(&d, &node("send_app_message"), &catalog),
            ["out"]
        );
    }

    /// Each drawn edge has its own key, even a repeated one; edges to missing nodes are not drawn.
    #[test]
    fn drawn_edges_are_keyed_uniquely() {
        let mut d = doc();
        d.edges.push(edge("hot", Some("true"), "a"));
        d.edges.push(edge("hot", None, "gone"));
        let keys: Vec<(String, usize)> = drawn_edges(&d)
            .into_iter()
            .map(|(e, n)| (format!("{}-{}-{}", e.from, e.port(), e.to), n))
            .collect();
        assert_eq!(
            keys,
            [
                ("start-out-hot".to_owned(), 0),
                ("hot-true-a".to_owned(), 0),
                ("hot-true-a".to_owned(), 1)
            ]
        );
    }
}

/// The pointer in flow coordinates (canvas scroll and zoom undone).
fn pointer_xy(canvas: &NodeRef<Div>, ev: &web_sys::PointerEvent, zoom: f64) -> (f64, f64) {
    match canvas.get_untracked() {
        Some(el) => {
            let rect = el.get_bounding_client_rect();
            (
                (ev.client_x() as f64 - rect.left() + el.scroll_left() as f64) / zoom,
                (ev.client_y() as f64 - rect.top() + el.scroll_top() as f64) / zoom,
            )
        }
        None => (ev.client_x() as f64 / zoom, ev.client_y() as f64 / zoom),
    }
}

/// Zoom that shows every node in the canvas (at most 100 %).
/// Fits the flow into the canvas: the zoom that shows every node, then the canvas scrolled
/// to the flow's top-left corner (whatever was scrolled before).
fn fit_view(ed: Editor, canvas: NodeRef<Div>) {
    const PAD: f64 = 24.0;
    let Some(el) = canvas.get_untracked() else {
        return;
    };
    let (min, max) = ed.with_shown(|doc| {
        doc.nodes
            .iter()
            .fold(([f64::MAX, f64::MAX], [0.0f64, 0.0f64]), |(min, max), n| {
                (
                    [min[0].min(n.position[0]), min[1].min(n.position[1])],
                    [
                        max[0].max(n.position[0] + NODE_WIDTH),
                        max[1].max(n.position[1] + node_height(3)),
                    ],
                )
            })
    });
    if min[0] > max[0] {
        return;
    }
    let (left, top) = ((min[0] - PAD).max(0.0), (min[1] - PAD).max(0.0));
    let (w, h) = (el.client_width() as f64, el.client_height() as f64);
    let zoom = (w / (max[0] + PAD - left))
        .min(h / (max[1] + PAD - top))
        .clamp(0.2, 1.0);
    ed.zoom.set(zoom);
    // Scrolled once the new scale has laid out.
    request_animation_frame(move || {
        if let Some(el) = canvas.get_untracked() {
            el.set_scroll_left((left * zoom).round() as i32);
            el.set_scroll_top((top * zoom).round() as i32);
        }
    });
}

/// Where a node added by a click goes: a free spot in the part of the canvas on screen,
/// clear of the minimap (`None` when the view is full; the caller falls back to a grid
/// spot).
fn click_spot(ed: Editor, canvas: NodeRef<Div>) -> Option<[f64; 2]> {
    let el = canvas.get_untracked()?;
    let zoom = ed.zoom.get_untracked();
    let (sl, st) = (el.scroll_left() as f64, el.scroll_top() as f64);
    let view = [
        sl / zoom,
        st / zoom,
        (sl + el.client_width() as f64) / zoom,
        (st + el.client_height() as f64) / zoom,
    ];
    let frame = el.get_bounding_client_rect();
    let minimap = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-testid='minimap']").ok().flatten())
        .map(|m| {
            let r = m.get_bounding_client_rect();
            [
                (r.left() - frame.left() + sl) / zoom,
                (r.top() - frame.top() + st) / zoom,
                (r.right() - frame.left() + sl) / zoom,
                (r.bottom() - frame.top() + st) / zoom,
            ]
        });
    ed.with_shown(|doc| {
        state::free_spot(doc, view, minimap.as_slice(), (NODE_WIDTH, node_height(2)))
    })
}

/// The in-port's node id under a pointer event, if any.
fn in_port_under(ev: &web_sys::PointerEvent) -> Option<NodeId> {
    let doc = web_sys::window()?.document()?;
    let el = doc.element_from_point(ev.client_x() as f32, ev.client_y() as f32)?;
    let target = el.closest("[data-in-node]").ok()??;
    NodeId::new(target.get_attribute("data-in-node")?).ok()
}

#[component]
pub fn FlowEditor(flow_id: String, on_close: Callback<()>) -> impl IntoView {
    let session = expect_context::<Session>();
    let id = StoredValue::new(flow_id);
    let loaded = LocalResource::new(move || {
        let token = session.token.get_untracked().unwrap_or_default();
        let id = id.get_value();
        async move { api::get_flow(&token, &id).await }
    });
    view! {
        <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
            {move || loaded.get().map(|result| match result {
                Ok(flow) => match serde_json::from_value::<FlowDoc>(flow.doc.clone()) {
                    Ok(doc) => view! { <EditorView flow_id=id.get_value() doc=doc base_version=flow.latest_version
                        published_version=flow.published_version on_close=on_close
                        reload=Callback::new(move |_| loaded.refetch()) /> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                },
                Err(api::ApiError::Unauthorized) => {
                    session.sign_out();
                    view! { <p /> }.into_any()
                }
                Err(e) => view! { <p class="error" data-testid="editor-error">{format!("{e:?}")}</p> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn EditorView(
    flow_id: String,
    doc: FlowDoc,
    base_version: i64,
    published_version: Option<i64>,
    on_close: Callback<()>,
    reload: Callback<()>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let ed = Editor::new(doc);
    let base = RwSignal::new(base_version);
    let published = RwSignal::new(published_version);
    let flow_id = StoredValue::new(flow_id);
    let canvas = NodeRef::<Div>::new();
    let message = RwSignal::new(String::new());
    let conflict = RwSignal::new(None::<i64>);
    let saved = RwSignal::new(None::<i64>);
    let diagnostics = Memo::new(move |_| ed.catalog.with(|c| ed.doc.with(|d| validate_with(d, c))));
    leptos::task::spawn_local(async move {
        let token = session.token.get_untracked().unwrap_or_default();
        if let Ok(events) = api::get_json(&token, "/api/v1/event-catalog").await {
            ed.events.set(events);
        }
        if let Ok(catalog) = api::catalog(&token).await {
            ed.catalog.set(catalog);
        }
    });

    // Keyboard: undo/redo, delete.
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        let target_is_input = ev
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        if target_is_input {
            return;
        }
        let ctrl = ev.ctrl_key() || ev.meta_key();
        match ev.key().as_str() {
            "z" | "Z" if ctrl && ev.shift_key() => ed.redo(),
            "z" if ctrl => ed.undo(),
            "y" if ctrl => ed.redo(),
            "Delete" | "Backspace" => ed.delete_selected(),
            "c" if ctrl => {
                if let Some(copied) = ed.copy_selection() {
                    session.clipboard.set(Some(copied));
                }
            }
            "v" if ctrl => {
                session.clipboard.with_untracked(|c| {
                    if let Some(copied) = c {
                        ed.paste(copied);
                    }
                });
            }
            "?" => ed.help.update(|h| *h = !*h),
            "Escape" => ed.help.set(false),
            _ => return,
        }
        ev.prevent_default();
    });
    // A release outside the canvas cancels the gesture (the node stays where it was).
    let release = window_event_listener(leptos::ev::pointerup, move |ev| {
        ed.drag.set(None);
        ed.wire.set(None);
        ed.rubber.set(None);
        // A palette item dropped on the canvas becomes a node where it was dropped.
        if let Some(name) = ed.palette_drag.get_untracked() {
            ed.palette_drag.set(None);
            let over_canvas = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.element_from_point(ev.client_x() as f32, ev.client_y() as f32))
                .and_then(|el| el.closest("[data-testid='canvas']").ok().flatten())
                .is_some();
            if over_canvas && let Some(spec) = node_type(name) {
                let (x, y) = pointer_xy(&canvas, &ev, ed.zoom.get_untracked());
                ed.add_node(
                    spec,
                    Some([
                        snap(x - NODE_WIDTH / 2.0).max(0.0),
                        snap(y - HEADER / 2.0).max(0.0),
                    ]),
                );
            }
        }
    });
    // Leaving the page with unsaved work asks first.
    let unload = window_event_listener(leptos::ev::beforeunload, move |ev| {
        if ed.dirty.get_untracked() {
            ev.prevent_default();
            ev.set_return_value("unsaved");
        }
    });
    on_cleanup(move || {
        keys.remove();
        release.remove();
        unload.remove();
    });

    let on_move = move |ev: web_sys::PointerEvent| {
        let (x, y) = pointer_xy(&canvas, &ev, ed.zoom.get_untracked());
        if let Some(mut d) = ed.drag.get_untracked() {
            d.at = [snap(x - d.grab.0).max(0.0), snap(y - d.grab.1).max(0.0)];
            ed.drag.set(Some(d));
        }
        if let Some((start, _)) = ed.rubber.get_untracked() {
            ed.rubber.set(Some((start, (x, y))));
        }
        if let Some(mut w) = ed.wire.get_untracked() {
            w.at = (x, y);
            w.over = in_port_under(&ev);
            ed.wire.set(Some(w));
        }
    };
    let on_up = move |ev: web_sys::PointerEvent| {
        if let Some((start, _)) = ed.rubber.get_untracked() {
            ed.rubber.set(None);
            let end = pointer_xy(&canvas, &ev, ed.zoom.get_untracked());
            let (x0, x1) = (start.0.min(end.0), start.0.max(end.0));
            let (y0, y1) = (start.1.min(end.1), start.1.max(end.1));
            if x1 - x0 > 4.0 || y1 - y0 > 4.0 {
                let inside = ed.with_shown(|doc| {
                    doc.nodes
                        .iter()
                        .filter(|n| {
                            let (nx, ny) = (n.position[0], n.position[1]);
                            nx < x1 && nx + NODE_WIDTH > x0 && ny < y1 && ny + node_height(1) > y0
                        })
                        .map(|n| n.id.clone())
                        .collect()
                });
                ed.select(Selection::of(inside));
            }
        }
        if let Some(d) = ed.drag.get_untracked() {
            ed.drag.set(None);
            // Where the pointer was released decides, whatever moves were seen on the way.
            let (x, y) = pointer_xy(&canvas, &ev, ed.zoom.get_untracked());
            // A click is not a move: snapping alone would shift a node off the grid and
            // leave an edit to undo.
            let pressed = (d.from[0] + d.grab.0, d.from[1] + d.grab.1);
            let moved = (x - pressed.0).abs() > CLICK_SLOP || (y - pressed.1).abs() > CLICK_SLOP;
            let to = [snap(x - d.grab.0).max(0.0), snap(y - d.grab.1).max(0.0)];
            // The whole selection moves as one undoable edit.
            if moved && let Some(edit) = d.drop_at(to) {
                ed.apply(edit);
            }
        }
        if let Some(w) = ed.wire.get_untracked() {
            ed.wire.set(None);
            if let Some(to) = in_port_under(&ev) {
                let port = (w.port != "out").then_some(w.port.clone());
                let edge = Edge {
                    from: w.from,
                    port,
                    to,
                };
                let problem = ed.doc.with_untracked(|d| connection_problem(d, &edge));
                match problem {
                    None => ed.apply(Edit::Connect { edge, index: None }),
                    Some(_) => ed
                        .notice
                        .set(Some(session.t(Text::ConnectionRefused).to_owned())),
                }
            }
        }
    };

    let save = move |_| {
        let token = session.token.get_untracked().unwrap_or_default();
        let sent = ed.doc.get_untracked();
        let doc = serde_json::to_value(&sent).unwrap_or_default();
        let msg = message.get_untracked();
        let base_version = base.get_untracked();
        let id = flow_id.get_value();
        leptos::task::spawn_local(async move {
            match api::save_flow(&token, &id, base_version, &doc, &msg).await {
                Ok(version) => {
                    base.set(version);
                    saved.set(Some(version));
                    conflict.set(None);
                    ed.mark_saved(sent);
                    message.set(String::new());
                }
                Err(SaveError::Conflict { current }) => conflict.set(Some(current)),
                Err(SaveError::Invalid(m)) => ed.notice.set(Some(m)),
                Err(SaveError::Other(api::ApiError::Unauthorized)) => session.sign_out(),
                Err(SaveError::Other(e)) => ed.notice.set(Some(format!("{e:?}"))),
            }
        });
    };

    view! {
           <div class="editor" data-testid="editor">
               <div class="toolbar">
                   <button data-testid="back" on:click=move |_| {
                    if !ed.dirty.get_untracked() {
                        on_close.run(());
                        return;
                    }
                    leptos::task::spawn_local(async move {
                        if session.dialogs.confirm(session.t(Text::DiscardChanges)).await {
                            on_close.run(());
                        }
                    });
                }>{move || session.t(Text::BackToList)}</button>
                   <strong data-testid="flow-title">{move || ed.doc.with(|d| d.name.clone())}</strong>
                   <span class="hint" data-testid="version">{move || format!("v{}", base.get())}</span>
                   <span class="dirty" data-testid="dirty" data-dirty=move || ed.dirty.get().to_string()>
                       {move || if ed.dirty.get() { session.t(Text::Unsaved) } else { String::new() }}
                   </span>
                   <span class="spacer"></span>
                   <button data-testid="zoom-out" on:click=move |_| ed.zoom.update(|z| *z = (*z / 1.25).max(0.2))>"−"</button>
                   <span class="hint" data-testid="zoom">{move || format!("{:.0}%", ed.zoom.get() * 100.0)}</span>
                   <button data-testid="zoom-in" on:click=move |_| ed.zoom.update(|z| *z = (*z * 1.25).min(2.0))>"+"</button>
                   <button data-testid="zoom-fit" on:click=move |_| fit_view(ed, canvas)>{move || session.t(Text::FitView)}</button>
                   <button data-testid="auto-layout" on:click=move |_| {
                       let edit = ed.doc.with_untracked(trellis_model::layout::layout_edit);
                       if !matches!(&edit, Edit::Batch { edits } if edits.is_empty()) {
                           ed.apply(edit);
                       }
                   }>{move || session.t(Text::AutoLayout)}</button>
                   <button data-testid="help-toggle" on:click=move |_| ed.help.update(|h| *h = !*h)>"?"</button>
    <button data-testid="delete-node" disabled=move || ed.viewing.with(Option::is_some) || (ed.selected.get().is_none() && ed.picked.with(|p| p.is_empty())) on:click=move |_| ed.delete_selected()>{move || session.t(Text::DeleteNode)}</button>
                   <button data-testid="undo" disabled=move || !ed.can_undo() on:click=move |_| ed.undo()>{move || session.t(Text::Undo)}</button>
                   <button data-testid="redo" disabled=move || !ed.can_redo() on:click=move |_| ed.redo()>{move || session.t(Text::Redo)}</button>
                   <input type="text" data-testid="save-message" placeholder=move || session.t(Text::SaveMessage)
                       prop:value=move || message.get() on:input=move |ev| message.set(event_target_value(&ev)) />
                   <button class="primary" data-testid="save" disabled=move || ed.viewing.with(Option::is_some) on:click=save>{move || session.t(Text::Save)}</button>
                   // Publishing is always in sight: the latest saved version, once saved.
                   <button data-testid="publish-latest"
                       disabled=move || ed.dirty.get() || ed.viewing.with(Option::is_some) || published.get() == Some(base.get())
                       title=move || if ed.dirty.get() { session.t(Text::Unsaved) } else { String::new() }
                       on:click=move |_| {
                           let n = base.get_untracked();
                           let (token, id) = (session.token.get_untracked().unwrap_or_default(), flow_id.get_value());
                           leptos::task::spawn_local(async move {
                               let question = format!("{} v{n}?", session.t(Text::Publish));
                               if !session.dialogs.confirm(question).await {
                                   return;
                               }
                               match api::post_json(&token, &format!("/api/v1/flows/{id}/publish"), &serde_json::json!({ "version": n })).await {
                                   Ok(_) => published.set(Some(n)),
                                   Err(e) => ed.notice.set(Some(format!("{e:?}"))),
                               }
                           });
                       }>
                       {move || if published.get() == Some(base.get()) {
                           format!("{} v{}", session.t(Text::PublishedBadge), base.get())
                       } else {
                           format!("{} v{}", session.t(Text::Publish), base.get())
                       }}
                   </button>
               </div>
               {move || ed.help.get().then(|| view! {
                <div class="help" data-testid="help" on:click=move |_| ed.help.set(false)>
                    <h3>{session.t(Text::Shortcuts)}</h3>
                    <table>
                        <tr><td><kbd>"Ctrl+Z"</kbd></td><td>{session.t(Text::Undo)}</td></tr>
                        <tr><td><kbd>"Ctrl+Shift+Z"</kbd>" / "<kbd>"Ctrl+Y"</kbd></td><td>{session.t(Text::Redo)}</td></tr>
                        <tr><td><kbd>"Delete"</kbd></td><td>{session.t(Text::DeleteNode)}</td></tr>
                        <tr><td><kbd>"?"</kbd></td><td>{session.t(Text::Shortcuts)}</td></tr>
                    </table>
                </div>
            })}
            {move || ed.viewing.get().map(|(n, _)| view! {
                <div class="banner info" data-testid="read-only">
                    {format!("{} v{n} ", session.t(Text::ReadOnlyVersion))}
                    <button data-testid="back-to-latest" on:click=move |_| ed.back_to_latest()>
                        {session.t(Text::BackToLatest)}
                    </button>
                </div>
            })}
            {move || conflict.get().map(|current| view! {
                   <div class="banner error" data-testid="conflict">
                       {format!("{} {current} ", session.t(Text::Conflict))}
                       <button data-testid="reload" on:click=move |_| {
                           if let Some(w) = web_sys::window() { let _ = w.location().reload(); }
                       }>{session.t(Text::Reload)}</button>
                   </div>
               })}
               {move || saved.get().filter(|_| !ed.dirty.get()).map(|v| view! {
                   <div class="banner ok" data-testid="saved">{format!("{} v{v}", session.t(Text::Saved))}</div>
               })}
               {move || ed.notice.get().map(|m| view! {
                   <div class="banner error" data-testid="notice" on:click=move |_| ed.notice.set(None)>{m}</div>
               })}
               <div class="workspace">
                   <Palette ed=ed canvas=canvas />
                   <div class="canvas-wrap">
                   <div class="canvas" node_ref=canvas data-testid="canvas" data-dragging=move || ed.drag.with(Option::is_some).to_string()
                       on:pointermove=on_move on:pointerup=on_up
                       on:pointerdown=move |ev: web_sys::PointerEvent| {
                           commit_pending_input();
                           ed.select(Selection::default());
                           let p = pointer_xy(&canvas, &ev, ed.zoom.get_untracked());
                           ed.rubber.set(Some((p, p)));
                       }>
                       <div class="stage" data-testid="stage" style=move || format!("transform: scale({}); transform-origin: 0 0", ed.zoom.get())>
                       <svg class="edges" width="4000" height="3000">
                           // Keyed like the nodes: a drag or an edit redraws only the edges
                           // it moves.
                           <For each=move || ed.with_shown(drawn_edges) key=Clone::clone
                               children=move |(edge, _)| view! { <EdgePath ed=ed edge=edge /> } />
                           {move || ed.wire.get().map(|w| {
                               let bad = w.over.as_ref().is_some_and(|to| {
                                   let port = (w.port != "out").then_some(w.port.clone());
                                   ed.doc.with(|d| connection_problem(d, &Edge { from: w.from.clone(), port, to: to.clone() }).is_some())
                               });
                               view! { <path class=if bad { "wire invalid" } else { "wire" } data-testid="wire" data-invalid=bad.to_string() d=curve(w.start, w.at) /> }
                           })}
                       </svg>
                       {move || ed.rubber.get().map(|((x0, y0), (x1, y1))| view! {
                           <div class="rubber" data-testid="rubber" style=format!("left:{}px;top:{}px;width:{}px;height:{}px",
                               x0.min(x1), y0.min(y1), (x1 - x0).abs(), (y1 - y0).abs())></div>
                       })}
                       // Keyed by node id: a box is created once per node and follows the
                       // document itself, so an edit re-renders only what it changed (and
                       // the box under the pointer lives through a drag).
                       <For each=move || ed.with_shown(|d| d.nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
                           key=NodeId::clone
                           children=move |id| view! { <NodeBox ed=ed id=id diagnostics=diagnostics canvas=canvas /> } />
                       </div>
                   </div>
                   <Minimap ed=ed canvas=canvas />
                   </div>
                   <div class="side">
                    // Problems first: always in sight, whatever the inspector holds.
                    <ProblemsPanel ed=ed diagnostics=diagnostics />
                    <crate::inspector::Inspector ed=ed />
                    <crate::history::HistoryPanel ed=ed flow_id=flow_id.get_value() base=base published=published reload=reload />
                </div>
               </div>
           </div>
       }
}

#[component]
fn Palette(ed: Editor, canvas: NodeRef<Div>) -> impl IntoView {
    let session = expect_context::<Session>();
    let query = RwSignal::new(String::new());
    // Categories in palette order, each with its node types.
    let mut categories: Vec<&'static str> = Vec::new();
    for spec in builtin_node_types() {
        // Connector nodes are added per operation, below.
        if spec.name != "connector" && !categories.contains(&spec.category) {
            categories.push(spec.category);
        }
    }
    let matches = move |spec: &NodeTypeSpec| {
        let q = query.get().trim().to_lowercase();
        q.is_empty()
            || spec.name.contains(&q)
            || spec.title.values().any(|t| t.to_lowercase().contains(&q))
            || spec
                .description
                .values()
                .any(|t| t.to_lowercase().contains(&q))
    };
    view! {
        <div class="palette" data-testid="palette">
            <h3>{move || session.t(Text::Palette)}</h3>
            <input type="text" class="palette-search" data-testid="palette-search" placeholder=move || session.t(Text::SearchNodes)
                prop:value=move || query.get() on:input=move |ev| query.set(event_target_value(&ev)) />
            {categories.into_iter().map(|category| {
                let specs: Vec<&'static NodeTypeSpec> = builtin_node_types().iter().filter(|s| s.category == category).collect();
                let shown = {
                    let specs = specs.clone();
                    move || specs.iter().any(|s| matches(s))
                };
                view! {
                    <Show when=shown.clone()>
                        <div class="palette-category" data-testid=format!("category-{category}")>
                            {move || crate::i18n::category(session.lang.get(), category)}
                        </div>
                    </Show>
                    {specs.into_iter().map(|spec| {
                        let testid = format!("palette-{}", spec.name);
                        view! {
                            <Show when=move || matches(spec)>
                                <button class="palette-item" data-testid=testid.clone() on:click=move |_| ed.add_node(spec, click_spot(ed, canvas))
                                    on:pointerdown=move |_| ed.palette_drag.set(Some(spec.name))
                                    title=move || spec.description.get(session.lang.get().code()).copied().unwrap_or("")>
                                    {move || spec.title.get(session.lang.get().code()).copied().unwrap_or(spec.name)}
                                </button>
                            </Show>
                        }
                    }).collect_view()}
                }
            }).collect_view()}
            {move || {
                let q = query.get().trim().to_lowercase();
                let lang = session.lang.get().code();
                ed.catalog.with(|c| c.entries().cloned().collect::<Vec<_>>()).into_iter().map(|entry| {
                    let title = entry.title.get(lang).cloned().unwrap_or_else(|| entry.name.clone());
                    let ops: Vec<_> = entry.operations.iter().filter(|o| {
                        q.is_empty() || o.name.contains(&q) || entry.name.contains(&q)
                            || title.to_lowercase().contains(&q)
                            || o.title.values().any(|t| t.to_lowercase().contains(&q))
                    }).cloned().collect();
                    let header = (!ops.is_empty()).then(|| view! {
                        <div class="palette-category" data-testid=format!("category-connector-{}", entry.name)
                            title=format!("{} {}", entry.reference(), entry.version)>{title.clone()}</div>
                    });
                    let items = ops.into_iter().map(|op| {
                        let label = op.title.get(lang).cloned().unwrap_or_else(|| op.name.clone());
                        let entry = entry.clone();
                        let testid = format!("palette-connector-{}-{}", entry.name, op.name);
                        view! {
                            <button class="palette-item connector" data-testid=testid
                                on:click=move |_| ed.add_connector_node(&entry, &op.name, click_spot(ed, canvas))>{label}</button>
                        }
                    }).collect_view();
                    view! { {header} {items} }
                }).collect_view()
            }}
        </div>
    }
}

/// The edges the canvas draws (both ends exist), each with how many identical edges come
/// before it, which keys it uniquely.
fn drawn_edges(doc: &FlowDoc) -> Vec<(Edge, usize)> {
    let nodes: std::collections::HashSet<&NodeId> = doc.nodes.iter().map(|n| &n.id).collect();
    let mut seen: std::collections::HashMap<&Edge, usize> = Default::default();
    doc.edges
        .iter()
        .filter(|e| nodes.contains(&e.from) && nodes.contains(&e.to))
        .map(|e| {
            let before = seen.entry(e).or_default();
            *before += 1;
            (e.clone(), *before - 1)
        })
        .collect()
}

/// One edge on the canvas, from its port to the target's input, following a drag.
#[component]
fn EdgePath(ed: Editor, edge: Edge) -> impl IntoView {
    let testid = format!("edge-{}-{}-{}", edge.from, edge.port(), edge.to);
    let path = Memo::new(move |_| {
        let at = |n: &Node| {
            ed.drag
                .with(|d| d.as_ref().and_then(|d| d.position_of(&n.id)))
                .unwrap_or(n.position)
        };
        ed.with_shown(|doc| {
            let from = doc.node(edge.from.as_str())?;
            let to = doc.node(edge.to.as_str())?;
            let i = ed
                .catalog
                .with(|c| visible_ports(doc, from, c))
                .iter()
                .position(|p| p == edge.port())
                .unwrap_or(0);
            Some(curve(out_port_xy(at(from), i), in_port_xy(at(to))))
        })
        .unwrap_or_default()
    });
    view! { <path class="edge" data-testid=testid d=move || path.get() /> }
}

/// One node on the canvas, created once per node id. What it shows follows the shown
/// document through memos, so another node's edit leaves it alone and its own edit
/// updates only the parts that changed.
#[component]
fn NodeBox(
    ed: Editor,
    id: NodeId,
    diagnostics: Memo<Vec<Diagnostic>>,
    canvas: NodeRef<Div>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    // `None` only while the node's removal reaches the `<For>` that drops this box.
    let node = {
        let id = id.clone();
        Memo::new(move |_| ed.with_shown(|d| d.node(id.as_str()).cloned()))
    };
    let ports = Memo::new(move |_| {
        node.with(|n| {
            n.as_ref()
                .map(|n| ed.with_shown(|d| ed.catalog.with(|c| visible_ports(d, n, c))))
                .unwrap_or_default()
        })
    });
    let position = Memo::new(move |_| {
        node.with(|n| n.as_ref().map(|n| n.position))
            .unwrap_or_default()
    });
    let kind = Memo::new(move |_| {
        node.with(|n| n.as_ref().map(|n| n.node_type.clone()).unwrap_or_default())
    });
    let label = {
        let id = id.clone();
        Memo::new(move |_| {
            node.with(|n| n.as_ref().and_then(|n| n.label.clone()))
                .unwrap_or_else(|| id.to_string())
        })
    };
    let errors = {
        let id = id.clone();
        Memo::new(move |_| {
            diagnostics.with(|all| {
                all.iter()
                    .filter(|d| {
                        d.severity == Severity::Error && d.node.as_deref() == Some(id.as_str())
                    })
                    .map(|d| {
                        let lang = session.lang.get();
                        ed.with_shown(|doc| {
                            ed.catalog.with(|c| crate::words::describe(d, doc, c, lang))
                        })
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    // Where a drag has the node for now: only the boxes it moves are restyled.
    let dragged = {
        let id = id.clone();
        Memo::new(move |_| {
            ed.drag
                .with(|d| d.as_ref().and_then(|d| d.position_of(&id)))
        })
    };
    let style = move || {
        let [x, y] = dragged.get().unwrap_or_else(|| position.get());
        let height = node_height(ports.with(Vec::len));
        format!("left:{x}px;top:{y}px;width:{NODE_WIDTH}px;height:{height}px")
    };
    let title = move || {
        kind.with(|k| match node_type(k) {
            Some(s) => {
                let lang = if session.lang.get() == crate::i18n::Lang::Zh {
                    "zh"
                } else {
                    "en"
                };
                s.title.get(lang).copied().unwrap_or(s.name).to_string()
            }
            None => k.clone(),
        })
    };
    let selected = {
        let id = id.clone();
        move || ed.selected.get().as_ref() == Some(&id) || ed.picked.with(|p| p.contains(&id))
    };
    let mark = {
        let id = id.to_string();
        move || ed.marks.with(|m| m.get(&id).copied().unwrap_or(""))
    };
    let start_drag = {
        let id = id.clone();
        move |ev: web_sys::PointerEvent| {
            ev.stop_propagation();
            commit_pending_input();
            let toggle = ev.shift_key() || ev.ctrl_key() || ev.meta_key();
            ed.pick(&id, toggle);
            if ed.read_only() || toggle {
                return;
            }
            let (x, y) = pointer_xy(&canvas, &ev, ed.zoom.get_untracked());
            let from = position.get_untracked();
            let others = ed.doc.with_untracked(|d| {
                ed.picked.with_untracked(|p| {
                    p.iter()
                        .filter(|o| **o != id)
                        .filter_map(|o| d.node(o.as_str()).map(|n| (o.clone(), n.position)))
                        .collect()
                })
            });
            ed.drag.set(Some(Drag {
                id: id.clone(),
                from,
                grab: (x - from[0], y - from[1]),
                at: from,
                others,
            }));
        }
    };
    let out_ports = {
        let id = id.clone();
        move || {
            ports.get().into_iter().enumerate().map(|(i, port)| {
                let top = HEADER + 8.0 + PORT_GAP * i as f64 + PORT_GAP / 2.0 - 6.0;
                let from = id.clone();
                let p = port.clone();
                let start_wire = move |ev: web_sys::PointerEvent| {
                    ev.stop_propagation();
                    if ed.read_only() {
                        return;
                    }
                    let start = out_port_xy(position.get_untracked(), i);
                    ed.wire.set(Some(Wire { from: from.clone(), port: p.clone(), start, at: pointer_xy(&canvas, &ev, ed.zoom.get_untracked()), over: None }));
                };
                view! {
                    <div class="port-label" data-testid=format!("port-label-{id}-{port}") style=format!("top:{}px", top - 3.0)>{
                        let port = port.clone();
                        move || crate::words::port_label(&port, session.lang.get())
                    }</div>
                    <div class="port out" data-testid=format!("out-{id}-{port}") style=format!("top:{top}px") on:pointerdown=start_wire></div>
                }
            }).collect_view()
        }
    };
    let in_port =
        {
            let id = id.clone();
            move || {
                (kind.with(|k| k != "trigger")).then(|| view! {
            <div class="port in" data-in-node=id.to_string() data-testid=format!("in-{id}")
                style=format!("top:{}px", HEADER + 8.0 + PORT_GAP / 2.0 - 6.0)></div>
        })
            }
        };
    view! {
        <div class="node" class:selected=selected class:has-errors=move || errors.with(|e| !e.is_empty())
            data-testid=format!("node-{id}") data-node-id=id.to_string()
            data-mark=mark
            title=move || errors.with(|e| e.join("\n")) style=style on:pointerdown=start_drag>
            <div class="node-title">{title}</div>
            <div class="node-label">{move || label.get()}</div>
            {in_port}
            {out_ports}
        </div>
    }
}

#[component]
fn ProblemsPanel(ed: Editor, diagnostics: Memo<Vec<Diagnostic>>) -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        <div class="problems" data-testid="problems">
            <h3>{move || session.t(Text::Problems)}</h3>
            {move || {
                let list = diagnostics.get();
                if list.is_empty() {
                    return view! { <p class="hint" data-testid="no-problems">{session.t(Text::NoProblems)}</p> }.into_any();
                }
                let lang = session.lang.get();
                list.into_iter().map(|d| {
                    let node = d.node.clone();
                    let field = d.field.clone();
                    let class = if d.severity == Severity::Error { "problem error" } else { "problem warning" };
                    let words = ed.doc.with(|doc| ed.catalog.with(|c| crate::words::describe(&d, doc, c, lang)));
                    view! {
                        <div class=class data-testid="problem" data-code=d.code title=d.pointer.clone() on:click=move |_| {
                            if let Some(n) = node.clone().and_then(|n| NodeId::new(n).ok()) {
                                ed.pick(&n, false);
                                // The form is built on the next frame; then take the user to the field.
                                if let Some(f) = field.clone() {
                                    request_animation_frame(move || focus_testid(&format!("field-{f}")));
                                }
                            }
                        }>{words}</div>
                    }
                }).collect_view().into_any()
            }}
        </div>
    }
}

/// How far (px) the pointer may wander between press and release for a click.
const CLICK_SLOP: f64 = 3.0;

/// Takes the focus from the field being typed in, so the browser commits it (its `change`
/// fires, synchronously) before a click elsewhere rebuilds the inspector: a pointer press
/// on the canvas comes before the browser's own blur, and would otherwise drop the edit.
fn commit_pending_input() {
    use wasm_bindgen::JsCast;
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.blur();
    }
}

/// Focuses (and scrolls to) the element with `data-testid` `testid`, if there is one.
fn focus_testid(testid: &str) {
    use wasm_bindgen::JsCast;
    let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| {
        d.query_selector(&format!("[data-testid=\"{testid}\"]"))
            .ok()
            .flatten()
    }) else {
        return;
    };
    el.scroll_into_view();
    if let Ok(el) = el.dyn_into::<web_sys::HtmlElement>() {
        let _ = el.focus();
    }
}

/// The whole flow in miniature with the visible part framed; a click scrolls there.
#[component]
fn Minimap(ed: Editor, canvas: NodeRef<Div>) -> impl IntoView {
    const W: f64 = 160.0;
    const H: f64 = 100.0;
    // The flow's extent (at least one screen) decides the scale.
    let extent = move || {
        let doc = ed.shown();
        let max_x = doc
            .nodes
            .iter()
            .map(|n| n.position[0] + NODE_WIDTH)
            .fold(800.0, f64::max);
        let max_y = doc
            .nodes
            .iter()
            .map(|n| n.position[1] + node_height(2))
            .fold(500.0, f64::max);
        (W / max_x).min(H / max_y)
    };
    let scroll_tick = RwSignal::new(0u32);
    let on_click = move |ev: web_sys::MouseEvent| {
        let k = extent();
        let Some(el) = canvas.get_untracked() else {
            return;
        };
        let zoom = ed.zoom.get_untracked();
        let (x, y) = (
            ev.offset_x() as f64 / k * zoom,
            ev.offset_y() as f64 / k * zoom,
        );
        el.set_scroll_left((x - el.client_width() as f64 / 2.0).max(0.0) as i32);
        el.set_scroll_top((y - el.client_height() as f64 / 2.0).max(0.0) as i32);
        scroll_tick.update(|t| *t += 1);
    };
    view! {
        <svg class="minimap" data-testid="minimap" width=W height=H on:click=on_click>
            {move || {
                let k = extent();
                ed.shown().nodes.iter().map(|n| view! {
                    <rect class="mini-node" data-testid=format!("mini-{}", n.id) x=n.position[0] * k y=n.position[1] * k
                        width=NODE_WIDTH * k height=node_height(1) * k />
                }).collect_view()
            }}
            {move || {
                scroll_tick.track();
                let k = extent();
                let zoom = ed.zoom.get();
                canvas.get().map(|el| view! {
                    <rect class="mini-view" x=el.scroll_left() as f64 / zoom * k y=el.scroll_top() as f64 / zoom * k
                        width=el.client_width() as f64 / zoom * k height=el.client_height() as f64 / zoom * k />
                })
            }}
        </svg>
    }
}
