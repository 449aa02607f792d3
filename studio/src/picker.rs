//! The data picker beside every expression field: what a flow can read, in the user's
//! words — the trigger's data (for an event trigger, the properties its events really carry,
//! with sample values, from the event catalog), the run's variables and earlier steps'
//! outputs. Picking a field inserts its path; picking one of its sample values inserts the
//! comparison (`trigger.event.properties.category == 'pricing'`), so a condition can be made
//! without typing CEL.

use leptos::prelude::*;
use serde_json::Value;
use trellis_model::FlowDoc;
use trellis_model::node_types::{NodeKind, TriggerConfig, TriggerKind};

use crate::Session;
use crate::editor::state::Editor;
use crate::i18n::{Lang, say};

/// One field a flow can read.
#[derive(Clone, Debug, PartialEq)]
pub struct PickItem {
    /// The CEL path, e.g. `trigger.event.properties.category`.
    pub path: String,
    /// What it is, in words.
    pub label: String,
    /// Types and how often it was seen, when known.
    pub hint: String,
    pub samples: Vec<Value>,
}

/// A group of fields: the trigger's, variables, earlier steps'.
#[derive(Clone, Debug, PartialEq)]
pub struct PickGroup {
    pub title: String,
    pub items: Vec<PickItem>,
}

/// A JSON sample as a CEL literal (`'text'`, `12`, `true`); `None` for lists and objects.
pub fn cel_literal(v: &Value) -> Option<String> {
    (!v.is_array() && !v.is_object() && !v.is_null()).then(|| trellis_model::condition::literal(v))
}

fn item(path: String, label: String) -> PickItem {
    PickItem {
        path,
        label,
        hint: String::new(),
        samples: Vec::new(),
    }
}

/// The properties recent events named `name` carry, as fields under `prefix`
/// (`trigger.event.properties.` in a flow, `event.properties.` in a behaviour condition).
pub fn event_items(catalog: &Value, name: &str, prefix: &str, lang: Lang) -> Vec<PickItem> {
    let known = catalog["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["name"] == name));
    let read = known.and_then(|e| e["read"].as_u64()).unwrap_or(0);
    known
        .and_then(|e| e["properties"].as_array())
        .into_iter()
        .flatten()
        .map(|p| {
            let path = p["path"].as_str().unwrap_or_default();
            let types: Vec<&str> = p["types"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            PickItem {
                path: format!("{prefix}{path}"),
                label: say(
                    lang,
                    &format!("事件属性 {path}"),
                    &format!("Property {path}"),
                ),
                hint: match lang {
                    Lang::Zh => format!(
                        "{}；最近 {read} 个事件中 {} 个有",
                        types.join("/"),
                        p["seen"]
                    ),
                    Lang::En => format!(
                        "{}; in {} of the last {read} events",
                        types.join("/"),
                        p["seen"]
                    ),
                },
                samples: p["samples"].as_array().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// The event names the workspace has seen, most frequent first.
pub fn event_names(catalog: &Value) -> Vec<String> {
    catalog["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

/// The lead attributes the workspace's leads carry, most common first, with sample values.
pub fn lead_attributes(catalog: &Value) -> Vec<(String, Vec<Value>)> {
    catalog["lead_attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let path = a["path"].as_str()?.to_owned();
            Some((path, a["samples"].as_array().cloned().unwrap_or_default()))
        })
        .collect()
}

/// What a flow can read, grouped: from its trigger (and the event catalog), its `set`
/// nodes' variables and its other nodes' outputs.
pub fn pick_groups(doc: &FlowDoc, catalog: &Value, lang: Lang) -> Vec<PickGroup> {
    let mut groups = Vec::new();
    let trigger = doc
        .trigger()
        .and_then(|t| serde_json::from_value::<TriggerConfig>(t.config.clone()).ok());
    let mut trigger_items = Vec::new();
    match trigger.as_ref().map(|t| (t.kind, t.event.as_deref())) {
        Some((kind @ (TriggerKind::Event | TriggerKind::Behaviour), name)) => {
            trigger_items.push(item(
                "trigger.event.lead".into(),
                say(lang, "事件所属线索", "The event's lead"),
            ));
            trigger_items.push(item(
                "trigger.event.timestamp".into(),
                say(lang, "事件发生时间", "When it happened"),
            ));
            let names: Vec<String> = match kind {
                TriggerKind::Behaviour => {
                    trigger_items.push(item(
                        "trigger.event.name".into(),
                        say(lang, "事件名称", "The event's name"),
                    ));
                    trigger
                        .as_ref()
                        .and_then(|t| t.behaviour.as_ref())
                        .map(|b| b.event_names().into_iter().map(str::to_owned).collect())
                        .unwrap_or_default()
                }
                _ => name.into_iter().map(str::to_owned).collect(),
            };
            for name in names {
                for i in event_items(catalog, &name, "trigger.event.properties.", lang) {
                    if !trigger_items.iter().any(|t| t.path == i.path) {
                        trigger_items.push(i);
                    }
                }
            }
        }
        Some((TriggerKind::Webhook, _)) => trigger_items.push(item(
            "trigger.body".into(),
            say(lang, "Webhook 请求内容", "The webhook's request body"),
        )),
        _ => trigger_items.push(item(
            "trigger.input".into(),
            say(lang, "运行时的输入", "The run's input"),
        )),
    }
    groups.push(PickGroup {
        title: say(lang, "触发数据", "What started the run"),
        items: trigger_items,
    });
    let vars: Vec<PickItem> = doc
        .nodes
        .iter()
        .filter(|n| n.kind() == Some(NodeKind::Set))
        .flat_map(|n| {
            n.config["vars"]
                .as_object()
                .map(|v| v.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .map(|name| {
            let label = say(lang, &format!("变量 {name}"), &format!("Variable {name}"));
            item(format!("vars.{name}"), label)
        })
        .collect();
    if !vars.is_empty() {
        groups.push(PickGroup {
            title: say(lang, "变量", "Variables"),
            items: vars,
        });
    }
    let steps: Vec<PickItem> = doc
        .nodes
        .iter()
        .filter(|n| !matches!(n.kind(), Some(NodeKind::Trigger | NodeKind::Note)))
        .map(|n| {
            let name = n
                .label
                .clone()
                .unwrap_or_else(|| crate::words::type_title(&n.node_type, lang));
            item(
                format!("steps.{}.output", n.id),
                say(
                    lang,
                    &format!("「{name}」的结果"),
                    &format!("The result of \"{name}\""),
                ),
            )
        })
        .collect();
    if !steps.is_empty() {
        groups.push(PickGroup {
            title: say(lang, "之前步骤的结果", "Earlier steps' results"),
            items: steps,
        });
    }
    groups
}

/// The picker button and its list; `on_pick` gets the CEL to insert.
#[component]
pub fn DataPicker(ed: Editor, field: String, on_pick: Callback<String>) -> impl IntoView {
    let session = expect_context::<Session>();
    let open = RwSignal::new(false);
    let filter = RwSignal::new(String::new());
    let field = StoredValue::new(field);
    let groups = move || {
        let lang = session.lang.get();
        let q = filter.get().to_lowercase();
        ed.with_shown(|doc| ed.events.with(|c| pick_groups(doc, c, lang)))
            .into_iter()
            .map(|mut g| {
                g.items.retain(|i| {
                    q.is_empty()
                        || i.path.to_lowercase().contains(&q)
                        || i.label.to_lowercase().contains(&q)
                });
                g
            })
            .filter(|g| !g.items.is_empty())
            .collect::<Vec<_>>()
    };
    let pick = move |text: String| {
        on_pick.run(text);
        open.set(false);
    };
    view! {
        <button class="pick-toggle" type="button" data-testid=move || format!("pick-{}", field.get_value())
            on:click=move |_| open.update(|o| *o = !*o)>
            {move || if session.lang.get() == Lang::Zh { "选择数据" } else { "Pick data" }}
        </button>
        {move || open.get().then(|| view! {
            <div class="picker" data-testid=format!("picker-{}", field.get_value())>
                <input type="text" data-testid="picker-search"
                    placeholder=move || if session.lang.get() == Lang::Zh { "搜索字段" } else { "Search fields" }
                    prop:value=move || filter.get() on:input=move |ev| filter.set(event_target_value(&ev)) />
                {move || groups().into_iter().map(|g| view! {
                    <div class="picker-group">
                        <div class="picker-title">{g.title}</div>
                        {g.items.into_iter().map(|i| {
                            let path = i.path.clone();
                            let chips = i.samples.iter().filter_map(|s| {
                                let literal = cel_literal(s)?;
                                let compare = format!("{} == {literal}", i.path);
                                let shown = match s { Value::String(t) => t.clone(), other => other.to_string() };
                                let testid = format!("pick-value-{}-{shown}", i.path);
                                Some(view! {
                                    <button type="button" class="chip" data-testid=testid
                                        on:click=move |_| pick(compare.clone())>{shown}</button>
                                })
                            }).collect_view();
                            view! {
                                <div class="picker-item">
                                    <button type="button" class="picker-path" data-testid=format!("pick-path-{}", i.path)
                                        on:click=move |_| pick(path.clone())>
                                        <span>{i.label}</span>" "<code>{i.path.clone()}</code>
                                    </button>
                                    {(!i.hint.is_empty()).then(|| view! { <div class="hint">{i.hint.clone()}</div> })}
                                    <div class="chips">{chips}</div>
                                </div>
                            }
                        }).collect_view()}
                    </div>
                }).collect_view()}
            </div>
        })}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_flow_offers_the_properties_its_events_carry() {
        let doc: FlowDoc = serde_json::from_value(json!({"schema": 1, "name": "t", "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "event", "event": "page_view"}, "position": [0, 0]},
            {"id": "mark", "type": "set", "label": "标记", "config": {"vars": {"hot": "true"}}, "position": [200, 0]}],
            "edges": [{"from": "start", "to": "mark"}]}))
        .expect("doc");
        let catalog = json!({"events": [{"name": "page_view", "count": 9, "read": 9, "properties": [
            {"path": "category", "types": ["string"], "seen": 9, "samples": ["pricing", "it's"]}]}]});
        let groups = pick_groups(&doc, &catalog, Lang::Zh);
        let paths: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.items.iter().map(|i| i.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                "trigger.event.lead",
                "trigger.event.timestamp",
                "trigger.event.properties.category",
                "vars.hot",
                "steps.mark.output"
            ]
        );
        assert_eq!(groups[2].items[0].label, "「标记」的结果");
        assert_eq!(cel_literal(&json!("it's")).as_deref(), Some("'it\\'s'"));
        assert_eq!(cel_literal(&json!(3)).as_deref(), Some("3"));
        assert_eq!(cel_literal(&json!({"a": 1})), None);
    }
}
