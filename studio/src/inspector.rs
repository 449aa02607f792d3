//! The node inspector: a form generated from the node type's JSON Schema, in the words
//! its `x-trellis` annotations give (label, help, example, labelled choices; a field shows
//! only where it applies, see [`trellis_model::forms`]). Plain fields (text, number,
//! boolean, enum) get inputs, CEL fields are checked as you type (with the error position),
//! nested objects and arrays are edited as JSON. Every change is an edit, so it can be
//! undone.

use leptos::prelude::*;
use serde_json::{Map, Value};
use trellis_model::forms::{FieldForm, resolve};
use trellis_model::node_types::NodeKind;
use trellis_model::{Catalog, Edit, Expr, Node, NodeId};

use crate::Session;
use crate::editor::state::Editor;
use crate::i18n::Text;
use crate::words::config_schema;

/// How a config property is edited.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    Text,
    Cel,
    Number { integer: bool },
    Bool,
    Choice(Vec<String>),
    Json,
}

fn field_of(root: &Value, schema: &Value) -> Field {
    let schema = resolve(root, schema);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Field::Choice(
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        );
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_owned(),
        _ => "object".to_owned(),
    };
    match ty.as_str() {
        "string" if schema.get("format").and_then(Value::as_str) == Some("cel") => Field::Cel,
        "string" => Field::Text,
        "integer" => Field::Number { integer: true },
        "number" => Field::Number { integer: false },
        "boolean" => Field::Bool,
        _ => Field::Json,
    }
}

/// The secrets a connector node may refer to (empty for other nodes).
fn declared_secrets(node: &Node, catalog: &Catalog) -> Vec<String> {
    node.connector
        .as_deref()
        .and_then(|r| catalog.get(r))
        .map(|e| e.secrets.clone())
        .unwrap_or_default()
}

/// The form's fields: (property, how to edit it, required?). A property marked
/// `x-trellis-secret` is a choice among the connector's declared secrets: a reference, so
/// no secret value is ever typed into a flow.
fn fields(node: &Node, catalog: &Catalog) -> Vec<(String, Field, bool)> {
    let Some(schema) = config_schema(node, catalog) else {
        return Vec::new();
    };
    let secrets = declared_secrets(node, catalog);
    let root = &schema;
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    root.get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| {
                    let is_secret = resolve(root, s)
                        .get("x-trellis-secret")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let field = if is_secret {
                        Field::Choice(secrets.clone())
                    } else {
                        field_of(root, s)
                    };
                    (name.clone(), field, required.contains(&name.as_str()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The CEL error for `source`, with its position, in the studio's words.
fn cel_error(source: &str) -> Option<String> {
    match Expr::compile(source) {
        Ok(_) => None,
        Err(e) => Some(match e.position {
            Some(p) => format!("{}:{} {}", p.line, p.column, e.message),
            None => e.message,
        }),
    }
}

fn set_config_value(ed: Editor, id: &NodeId, name: &str, value: Option<Value>) {
    let Some(node) = ed.doc.with_untracked(|d| d.node(id.as_str()).cloned()) else {
        return;
    };
    let mut after = node.config.clone();
    if !after.is_object() {
        after = Value::Object(Map::new());
    }
    if let Some(obj) = after.as_object_mut() {
        match value {
            Some(v) => {
                obj.insert(name.to_owned(), v);
            }
            None => {
                obj.remove(name);
            }
        }
    }
    if after != node.config {
        ed.apply(Edit::SetConfig {
            id: id.clone(),
            before: node.config,
            after,
        });
    }
}

#[component]
pub fn Inspector(ed: Editor) -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        <div class="inspector" data-testid="inspector">
            <PeopleOptions />
            <h3>{move || session.t(Text::Inspector)}</h3>
            {move || {
                let Some(id) = ed.selected.get() else {
                    return view! { <p class="hint">{session.t(Text::SelectANode)}</p> }.into_any();
                };
                // Rebuild the form when another node is selected or a version is viewed, not
                // on every keystroke. A viewed version's node is shown, and cannot be edited.
                let viewing = ed.viewing.with(Option::is_some);
                let Some(node) = ed.viewing.with_untracked(|v| match v {
                    Some((_, d)) => d.node(id.as_str()).cloned(),
                    None => ed.doc.with_untracked(|d| d.node(id.as_str()).cloned()),
                }) else {
                    return view! { <p class="hint">{session.t(Text::SelectANode)}</p> }.into_any();
                };
                view! {
                    <fieldset class="node-fieldset" disabled=viewing data-testid="inspector-fields">
                        <NodeForm ed=ed node=node />
                    </fieldset>
                }.into_any()
            }}
        </div>
    }
}

#[component]
fn NodeForm(ed: Editor, node: Node) -> impl IntoView {
    let session = expect_context::<Session>();
    let id = node.id.clone();
    let label = RwSignal::new(node.label.clone().unwrap_or_default());
    let commit_label = {
        let id = id.clone();
        move |_| {
            let Some(before) = ed.doc.with_untracked(|d| d.node(id.as_str()).cloned()) else {
                return;
            };
            let mut after = before.clone();
            let text = label.get_untracked().trim().to_owned();
            after.label = (!text.is_empty()).then_some(text);
            if after != before {
                ed.apply(Edit::ReplaceNode {
                    before: Box::new(before),
                    after: Box::new(after),
                });
            }
        }
    };
    let schema = StoredValue::new(
        ed.catalog
            .with_untracked(|c| config_schema(&node, c))
            .unwrap_or(Value::Null),
    );
    let rows = ed
        .catalog
        .with_untracked(|c| fields(&node, c))
        .into_iter()
        .map(|(name, field, required)| {
            let current = node.config.get(&name).cloned();
            let widget = schema.with_value(|s| {
                FieldForm::of(s, &name)
                    .and_then(|f| f.widget())
                    .map(str::to_owned)
            });
            let trigger = node.kind() == Some(NodeKind::Trigger);
            view! { <FieldRow ed=ed id=id.clone() name=name field=field required=required current=current schema=schema widget=widget in_trigger=trigger /> }
        })
        .collect_view();
    view! {
        <div class="node-form" data-testid=format!("inspector-{}", node.id)>
            <div class="hint">{
                let (ty, nid) = (node.node_type.clone(), node.id.clone());
                move || format!("{} · {}", crate::words::type_title(&ty, session.lang.get()), nid)
            }</div>
            <label>{move || session.t(Text::Label)}</label>
            <input type="text" data-testid="label-input" prop:value=move || label.get()
                on:input=move |ev| label.set(event_target_value(&ev)) on:change=commit_label />
            {rows}
            {(node.kind() == Some(NodeKind::Connector)).then(|| view! { <ConnectorInput ed=ed node=node.clone() /> })}
            <ExecutionFields ed=ed node=node.clone() />
        </div>
    }
}

/// Replaces node `id` with `change` applied, as one undoable edit.
fn change_node(ed: Editor, id: &NodeId, change: impl FnOnce(&mut Node)) {
    let Some(before) = ed.doc.with_untracked(|d| d.node(id.as_str()).cloned()) else {
        return;
    };
    let mut after = before.clone();
    change(&mut after);
    if after != before {
        ed.apply(Edit::ReplaceNode {
            before: Box::new(before),
            after: Box::new(after),
        });
    }
}

/// A connector node's `input`: JSON whose strings may hold `{{ }}` templates.
#[component]
fn ConnectorInput(ed: Editor, node: Node) -> impl IntoView {
    let session = expect_context::<Session>();
    let id = StoredValue::new(node.id.clone());
    let text = RwSignal::new(
        node.input
            .as_ref()
            .and_then(|v| serde_json::to_string_pretty(v).ok())
            .unwrap_or_else(|| "{}".into()),
    );
    let error = RwSignal::new(None::<String>);
    let commit =
        move |_: leptos::ev::Event| match serde_json::from_str::<Value>(&text.get_untracked()) {
            Ok(v) => {
                error.set(None);
                change_node(ed, &id.get_value(), |n| n.input = Some(v));
            }
            Err(e) => error.set(Some(e.to_string())),
        };
    view! {
        <div class="field">
            <label>{move || session.t(Text::ConnectorInput)}</label>
            <textarea data-testid="connector-input" rows="4" prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev)) on:change=commit></textarea>
            {move || error.get().map(|e| view! { <div class="field-error" data-testid="error-input">{e}</div> })}
        </div>
    }
}

/// Per-node execution policy: timeout and retries.
#[component]
fn ExecutionFields(ed: Editor, node: Node) -> impl IntoView {
    let session = expect_context::<Session>();
    let id = StoredValue::new(node.id.clone());
    let timeout = RwSignal::new(node.timeout.clone().unwrap_or_default());
    let attempts = RwSignal::new(
        node.retry
            .as_ref()
            .map(|r| r.max_attempts.to_string())
            .unwrap_or_default(),
    );
    let backoff = RwSignal::new(
        node.retry
            .as_ref()
            .map(|r| r.backoff.clone())
            .unwrap_or_else(|| "1s".into()),
    );
    let error = RwSignal::new(None::<String>);
    let existing = StoredValue::new(node.retry.clone());
    let commit = move |_: leptos::ev::Event| {
        let t = timeout.get_untracked().trim().to_owned();
        if !t.is_empty()
            && let Err(e) = trellis_model::duration::parse_duration(&t)
        {
            error.set(Some(e));
            return;
        }
        let a = attempts.get_untracked().trim().to_owned();
        let retry = if a.is_empty() {
            None
        } else {
            match a.parse::<u32>() {
                Ok(n) if (1..=20).contains(&n) => {
                    let b = backoff.get_untracked().trim().to_owned();
                    if let Err(e) = trellis_model::duration::parse_duration(&b) {
                        error.set(Some(e));
                        return;
                    }
                    let mut policy =
                        existing
                            .get_value()
                            .unwrap_or_else(|| trellis_model::RetryPolicy {
                                max_attempts: n,
                                backoff: b.clone(),
                                max_backoff: "5m".into(),
                                multiplier: 2.0,
                                jitter: true,
                            });
                    policy.max_attempts = n;
                    policy.backoff = b;
                    Some(policy)
                }
                _ => {
                    error.set(Some(session.t(Text::AttemptsRange)));
                    return;
                }
            }
        };
        error.set(None);
        change_node(ed, &id.get_value(), |n| {
            n.timeout = (!t.is_empty()).then_some(t);
            n.retry = retry;
        });
    };
    view! {
        <div class="execution">
            <label>{move || session.t(Text::Timeout)}</label>
            <input type="text" data-testid="timeout-input" placeholder="30s" prop:value=move || timeout.get()
                on:input=move |ev| timeout.set(event_target_value(&ev)) on:change=commit />
            <label>{move || session.t(Text::RetryAttempts)}</label>
            <input type="text" data-testid="retry-attempts" placeholder="1" prop:value=move || attempts.get()
                on:input=move |ev| attempts.set(event_target_value(&ev)) on:change=commit />
            <label>{move || session.t(Text::RetryBackoff)}</label>
            <input type="text" data-testid="retry-backoff" prop:value=move || backoff.get()
                on:input=move |ev| backoff.set(event_target_value(&ev)) on:change=commit />
            {move || error.get().map(|e| view! { <div class="field-error" data-testid="execution-error">{e}</div> })}
        </div>
    }
}

#[component]
fn FieldRow(
    ed: Editor,
    id: NodeId,
    name: String,
    field: Field,
    required: bool,
    current: Option<Value>,
    /// The node's config schema (the field's words).
    schema: StoredValue<Value>,
    /// The widget the field's words name (`list`, `map`, `template`, `flow`, `condition`,
    /// `behaviour`), if any.
    widget: Option<String>,
    /// Whether the field is the trigger's (its conditions see only what started the run).
    in_trigger: bool,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let testid = format!("field-{name}");
    let words = {
        let name = name.clone();
        move |pick: fn(FieldForm<'_>, &str) -> Option<String>| {
            let lang = session.lang.get();
            schema.with_value(|s| FieldForm::of(s, &name).and_then(|f| pick(f, lang.code())))
        }
    };
    let title = {
        let (name, words) = (name.clone(), words.clone());
        move || {
            let label = words(|f, l| f.label(l)).unwrap_or_else(|| name.clone());
            if required {
                format!("{label} *")
            } else {
                label
            }
        }
    };
    let help = {
        let words = words.clone();
        move || words(|f, l| f.help(l))
    };
    let placeholder = {
        let name = name.clone();
        schema.with_value(|s| FieldForm::of(s, &name).and_then(|f| f.example()))
    };
    // A field naming people offers the workspace's (typing any other id stays possible).
    let people: Option<&'static str> = {
        let name = name.clone();
        schema
            .with_value(|s| FieldForm::of(s, &name).is_some_and(|f| f.names_people()))
            .then_some(PEOPLE_LIST)
    };
    // Shown only where it applies to the node's config as it is now.
    let applies = {
        let (name, id) = (name.clone(), id.clone());
        move || {
            let config = ed
                .doc
                .with(|d| d.node(id.as_str()).map(|n| n.config.clone()));
            config.is_none_or(|c| {
                schema.with_value(|s| FieldForm::of(s, &name).is_none_or(|f| f.applies(&c)))
            })
        }
    };
    let choice_label = {
        let name = name.clone();
        move |value: &str| {
            let lang = session.lang.get();
            schema.with_value(|s| {
                FieldForm::of(s, &name)
                    .map(|f| f.choice_label(value, lang.code()))
                    .unwrap_or_else(|| value.to_owned())
            })
        }
    };
    let text = match (&field, &current) {
        (Field::Json, Some(v)) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Some(Value::String(s))) => s.clone(),
        (_, Some(Value::Null)) | (_, None) => String::new(),
        (_, Some(v)) => v.to_string(),
    };
    let value = RwSignal::new(text);
    let error = RwSignal::new(None::<String>);
    let name = StoredValue::new(name);
    let id = StoredValue::new(id);
    let field = StoredValue::new(field);
    // As you type: check; on change (blur, Enter): commit as an edit.
    let check = move |text: &str| -> Result<Option<Value>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        match field.get_value() {
            Field::Cel => cel_error(text).map_or(Ok(Some(Value::String(text.to_owned()))), Err),
            Field::Text | Field::Choice(_) => Ok(Some(Value::String(text.to_owned()))),
            Field::Number { integer: true } => text
                .trim()
                .parse::<i64>()
                .map(|n| Some(Value::from(n)))
                .map_err(|e| e.to_string()),
            Field::Number { integer: false } => text
                .trim()
                .parse::<f64>()
                .map(|n| Some(Value::from(n)))
                .map_err(|e| e.to_string()),
            Field::Bool => Ok(Some(Value::Bool(text == "true"))),
            Field::Json => serde_json::from_str::<Value>(text)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    };
    let on_input = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        error.set(check(&text).err());
        value.set(text);
    };
    let on_change = move |_| {
        let text = value.get_untracked();
        if let Ok(v) = check(&text) {
            set_config_value(ed, &id.get_value(), &name.get_value(), v);
        }
    };
    let set = move |v: Option<Value>| set_config_value(ed, &id.get_value(), &name.get_value(), v);
    let special = match widget.as_deref() {
        Some("list") => Some(
            view! { <ListField testid=testid.clone() current=current.clone() placeholder=placeholder.clone() list=people on_change=Callback::new(set) /> }
                .into_any(),
        ),
        Some("map") => Some(
            view! { <MapField testid=testid.clone() current=current.clone() list=people on_change=Callback::new(set) /> }.into_any(),
        ),
        Some("flow") => Some(
            view! { <FlowChoice testid=testid.clone() current=current.clone() on_change=Callback::new(set) /> }.into_any(),
        ),
        Some("condition") => {
            let items = Signal::derive(move || {
                let lang = session.lang.get();
                ed.with_shown(|doc| {
                    ed.events.with(|c| crate::picker::pick_groups(doc, c, lang))
                })
                .into_iter()
                .take(if in_trigger { 1 } else { usize::MAX })
                .flat_map(|g| g.items)
                .collect::<Vec<_>>()
            });
            let stored = current.as_ref().and_then(Value::as_str).unwrap_or_default().to_owned();
            Some(view! {
                <crate::condition::ConditionBuilder items=items value=stored testid=format!("cond-{}", name.get_value())
                    on_change=Callback::new(move |cel: Option<String>| set(cel.map(Value::String))) />
            }.into_any())
        }
        Some("behaviour") => {
            let catalog = Signal::derive(move || ed.events.get());
            Some(view! {
                <crate::condition::BehaviourEditor value=current.clone() catalog=catalog testid=format!("behaviour-{}", name.get_value())
                    on_change=Callback::new(move |v: Value| set(Some(v))) />
            }.into_any())
        }
        _ => None,
    };
    let template = widget.as_deref() == Some("template");
    let input = match field.get_value() {
        _ if special.is_some() => special.unwrap_or_else(|| ().into_any()),
        Field::Choice(options) => view! {
            <select data-testid=testid.clone() prop:value=move || value.get()
                on:change=move |ev| {
                    let text = event_target_value(&ev);
                    value.set(text.clone());
                    set_config_value(ed, &id.get_value(), &name.get_value(), (!text.is_empty()).then_some(Value::String(text)));
                }>
                <option value="">"—"</option>
                {options.into_iter().map(|o| {
                    let label = { let (o, choice_label) = (o.clone(), choice_label.clone()); move || choice_label(&o) };
                    view! { <option value=o.clone()>{label}</option> }
                }).collect_view()}
            </select>
        }.into_any(),
        Field::Bool => view! {
            <input type="checkbox" data-testid=testid.clone() prop:checked=move || value.get() == "true"
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    value.set(on.to_string());
                    set_config_value(ed, &id.get_value(), &name.get_value(), Some(Value::Bool(on)));
                } />
        }.into_any(),
        Field::Json => view! {
            <textarea data-testid=testid.clone() rows="5" placeholder=placeholder.clone() prop:value=move || value.get() on:input=on_input on:change=on_change></textarea>
        }.into_any(),
        Field::Cel | Field::Text | Field::Number { .. } => view! {
            <input type="text" data-testid=testid.clone() class:cel=matches!(field.get_value(), Field::Cel)
                list=people placeholder=placeholder.clone() prop:value=move || value.get() on:input=on_input on:change=on_change />
        }.into_any(),
    };
    // Beside an expression: the data picker. A picked field is added to what is there; a
    // picked comparison joins an existing condition with "and".
    let picker = matches!(field.get_value(), Field::Cel).then(|| {
        let on_pick = Callback::new(move |picked: String| {
            let current = value.get_untracked();
            let current = current.trim_end();
            let next = if current.is_empty() {
                picked
            } else if picked.contains(" == ") {
                format!("{current} && {picked}")
            } else {
                format!("{current} {picked}")
            };
            match check(&next) {
                Ok(v) => {
                    error.set(None);
                    set_config_value(ed, &id.get_value(), &name.get_value(), v);
                }
                Err(e) => error.set(Some(e)),
            }
            value.set(next);
        });
        view! { <crate::picker::DataPicker ed=ed field=name.get_value() on_pick=on_pick /> }
    });
    // Beside a text with `{{ }}` holes: the picker inserts a hole.
    let picker = picker.or_else(|| {
        template.then(|| {
            let on_pick = Callback::new(move |picked: String| {
                // A comparison makes no sense in a text: keep its field.
                let path = picked.split(" == ").next().unwrap_or_default().to_owned();
                let next = format!("{}{{{{ {path} }}}}", value.get_untracked());
                set_config_value(
                    ed,
                    &id.get_value(),
                    &name.get_value(),
                    Some(Value::String(next.clone())),
                );
                value.set(next);
            });
            view! { <crate::picker::DataPicker ed=ed field=name.get_value() on_pick=on_pick /> }
        })
    });
    view! {
        <div class="field" data-testid=format!("row-{}", name.get_value()) style:display=move || if applies() { "" } else { "none" }>
            <label data-testid=format!("label-{}", name.get_value())>{title}</label>
            {input}
            {picker}
            {move || help().map(|h| view! { <div class="field-help" data-testid=format!("help-{}", name.get_value())>{h}</div> })}
            {move || error.get().map(|e| view! { <div class="field-error" data-testid=format!("error-{}", name.get_value())>{e}</div> })}
        </div>
    }
}

/// The id of the `<datalist>` of the workspace's people.
const PEOPLE_LIST: &str = "trellis-people";

/// The workspace's people as suggestions (`GET /api/v1/people`): their login as the value,
/// their name as the label, for the fields that name an owner or a recipient.
#[component]
fn PeopleOptions() -> impl IntoView {
    let session = expect_context::<Session>();
    let people = RwSignal::new(Vec::<(String, String)>::new());
    leptos::task::spawn_local(async move {
        let token = session.token.get_untracked().unwrap_or_default();
        // Viewers are not shown the list; the fields then take typed ids only.
        if let Ok(v) = crate::api::get_json(&token, "/api/v1/people").await {
            people.set(
                v["people"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        Some((
                            p["login"].as_str()?.to_owned(),
                            p["name"].as_str().unwrap_or_default().to_owned(),
                        ))
                    })
                    .collect(),
            );
        }
    });
    view! {
        <datalist id=PEOPLE_LIST data-testid="people-options">
            {move || people.get().into_iter().map(|(login, name)| view! {
                <option value=login>{name}</option>
            }).collect_view()}
        </datalist>
    }
}

/// A list of words (tags, people): chips with a remove button, and an input that adds one
/// on Enter or with the button.
#[component]
fn ListField(
    testid: String,
    current: Option<Value>,
    placeholder: Option<String>,
    /// A `<datalist>` of suggestions (the workspace's people).
    list: Option<&'static str>,
    on_change: Callback<Option<Value>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let items = RwSignal::new(
        current
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let typed = RwSignal::new(String::new());
    let emit = move || {
        let list = items.get_untracked();
        on_change.run((!list.is_empty()).then(|| Value::from(list)));
    };
    let add = move || {
        let text = typed.get_untracked();
        let new: Vec<String> = text
            .split([',', '，'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if new.is_empty() {
            return;
        }
        items.update(|l| {
            for t in new {
                if !l.contains(&t) {
                    l.push(t);
                }
            }
        });
        typed.set(String::new());
        emit();
    };
    let tid = StoredValue::new(testid);
    view! {
        <div class="list-field">
            <div class="chips">
                {move || items.get().into_iter().enumerate().map(|(i, t)| view! {
                    <span class="chip" data-testid=format!("{}-item-{i}", tid.get_value())>{t}
                        <button type="button" class="small" data-testid=format!("{}-remove-{i}", tid.get_value())
                            on:click=move |_| { items.update(|l| { if i < l.len() { l.remove(i); } }); emit(); }>"×"</button>
                    </span>
                }).collect_view()}
            </div>
            <input type="text" data-testid=tid.get_value() list=list placeholder=placeholder prop:value=move || typed.get()
                on:input=move |ev| typed.set(event_target_value(&ev))
                on:keydown=move |ev| if ev.key() == "Enter" { ev.prevent_default(); add(); }
                on:change=move |_| add() />
            <button type="button" class="small" data-testid=format!("{}-add", tid.get_value()) on:click=move |_| add()>
                {move || session.t(Text::Add)}
            </button>
        </div>
    }
}

/// Name → value pairs (attributes to set, territory → owner): a row each, added and
/// removed with buttons.
#[component]
fn MapField(
    testid: String,
    current: Option<Value>,
    /// A `<datalist>` of suggestions for the values (the workspace's people).
    list: Option<&'static str>,
    on_change: Callback<Option<Value>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let rows = RwSignal::new(
        current
            .as_ref()
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let emit = move || {
        let map: Map<String, Value> = rows
            .get_untracked()
            .into_iter()
            .filter(|(k, _)| !k.trim().is_empty())
            .map(|(k, v)| (k.trim().to_owned(), Value::String(v)))
            .collect();
        on_change.run((!map.is_empty()).then_some(Value::Object(map)));
    };
    let tid = StoredValue::new(testid);
    // Rebuilt when a row is added or removed; typing edits the row in place.
    let count = Memo::new(move |_| rows.with(Vec::len));
    view! {
        <div class="map-field" data-testid=tid.get_value()>
            {move || (0..count.get()).map(|i| {
                let (k, v) = rows.with_untracked(|r| r.get(i).cloned().unwrap_or_default());
                view! {
                    <div class="map-row">
                        <input type="text" data-testid=format!("{}-key-{i}", tid.get_value()) prop:value=k
                            placeholder=move || session.t(Text::Name)
                            on:change=move |ev| { let t = event_target_value(&ev); rows.update(|r| if let Some(x) = r.get_mut(i) { x.0 = t }); emit(); } />
                        <span>"→"</span>
                        <input type="text" data-testid=format!("{}-value-{i}", tid.get_value()) list=list prop:value=v
                            on:change=move |ev| { let t = event_target_value(&ev); rows.update(|r| if let Some(x) = r.get_mut(i) { x.1 = t }); emit(); } />
                        <button type="button" class="small" data-testid=format!("{}-remove-{i}", tid.get_value())
                            on:click=move |_| { rows.update(|r| { if i < r.len() { r.remove(i); } }); emit(); }>"×"</button>
                    </div>
                }
            }).collect_view()}
            <button type="button" class="small" data-testid=format!("{}-add", tid.get_value())
                on:click=move |_| rows.update(|r| r.push((String::new(), String::new())))>
                {move || session.t(Text::AddRow)}
            </button>
        </div>
    }
}

/// One of the workspace's flows, by name.
#[component]
fn FlowChoice(
    testid: String,
    current: Option<Value>,
    on_change: Callback<Option<Value>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let flows = RwSignal::new(Vec::<crate::api::FlowSummary>::new());
    let token = session.token.get_untracked().unwrap_or_default();
    leptos::task::spawn_local(async move {
        if let Ok(list) = crate::api::list_flows(&token).await {
            flows.set(list);
        }
    });
    let chosen = current
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    view! {
        <select data-testid=testid prop:value=move || { flows.track(); chosen.clone() }
            on:change=move |ev| {
                let id = event_target_value(&ev);
                on_change.run((!id.is_empty()).then_some(Value::String(id)));
            }>
            <option value="">{move || session.t(Text::ChooseFlow)}</option>
            {move || flows.get().into_iter().map(|f| {
                let unpublished = f.published_version.is_none();
                view! {
                    <option value=f.id.clone()>
                        {f.name.clone()}{move || if unpublished { format!(" ({})", session.t(Text::NotPublished)) } else { String::new() }}
                    </option>
                }
            }).collect_view()}
        </select>
    }
}
