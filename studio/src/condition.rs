//! The condition builder and the behaviour editor: conditions made by picking a field, an
//! operator and a value (in AND/OR groups) instead of typing CEL, and behaviour conditions
//! ("did A and B within 7 days") made from event names and such conditions. Both write what
//! the flow stores (CEL; the behaviour's JSON) and read it back; CEL that says more than
//! the builder can show stays CEL, editable in place (one click away for everyone).

use leptos::prelude::*;
use serde_json::{Value, json};
use trellis_model::behaviour::{Behaviour, Did};
use trellis_model::condition::{Condition, Group, Join, Op, Rule};

use crate::Session;
use crate::i18n::{Lang, say};
use crate::picker::PickItem;

fn op_code(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Gt => "gt",
        Op::Ge => "ge",
        Op::Lt => "lt",
        Op::Le => "le",
        Op::Contains => "contains",
        Op::NotContains => "not_contains",
        Op::StartsWith => "starts_with",
        Op::In => "in",
        Op::Exists => "exists",
        Op::Missing => "missing",
        Op::WithinDays => "within_days",
        Op::OlderThanDays => "older_than_days",
    }
}

fn op_of(code: &str) -> Op {
    Op::ALL
        .into_iter()
        .find(|o| op_code(*o) == code)
        .unwrap_or(Op::Eq)
}

/// A rule's value as the input shows it.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What was typed, as the value a rule compares with: numbers for comparisons and for
/// fields whose samples are numbers, booleans for boolean fields, a list for "is one of".
pub fn typed_value(op: Op, text: &str, samples: &[Value]) -> Value {
    let numeric = samples.iter().any(Value::is_number);
    let boolean = samples.iter().any(Value::is_boolean);
    let one = |t: &str| -> Value {
        let t = t.trim();
        if matches!(
            op,
            Op::Gt | Op::Ge | Op::Lt | Op::Le | Op::WithinDays | Op::OlderThanDays
        ) || numeric
        {
            if let Ok(n) = t.parse::<i64>() {
                return json!(n);
            }
            if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                return Value::Number(n);
            }
        }
        if boolean && (t == "true" || t == "false") {
            return Value::Bool(t == "true");
        }
        Value::String(t.to_owned())
    };
    match op {
        Op::Exists | Op::Missing => Value::Null,
        Op::In => Value::Array(
            text.split([',', '，'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(one)
                .collect(),
        ),
        _ => one(text),
    }
}

/// The condition builder. `value` is the CEL stored now (empty: none); `on_change` gets the
/// new CEL (`None` when no rule is left).
#[component]
pub fn ConditionBuilder(
    /// The fields a rule can compare.
    items: Signal<Vec<PickItem>>,
    value: String,
    on_change: Callback<Option<String>>,
    /// Test ids start with this.
    testid: String,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let parsed = if value.trim().is_empty() {
        Some(Condition::default())
    } else {
        Condition::from_cel(&value)
    };
    let raw = RwSignal::new(parsed.is_none());
    let raw_text = RwSignal::new(value.clone());
    let cond = RwSignal::new(parsed.unwrap_or_default());
    let prefix = StoredValue::new(testid);
    let emit = move || {
        // A rule without a field says nothing yet.
        let mut c = cond.get_untracked();
        for g in &mut c.groups {
            g.rules.retain(|r| !r.path.trim().is_empty());
        }
        c.groups.retain(|g| !g.rules.is_empty());
        let cel = (!c.is_empty()).then(|| c.to_cel());
        raw_text.set(cel.clone().unwrap_or_default());
        on_change.run(cel);
    };
    let samples_of = move |path: &str| -> Vec<Value> {
        items.with_untracked(|items| {
            items
                .iter()
                .find(|i| i.path == path)
                .map(|i| i.samples.clone())
                .unwrap_or_default()
        })
    };
    let add_rule = move |g: usize| {
        let first = items.with_untracked(|i| i.first().map(|i| i.path.clone()));
        cond.update(|c| {
            if c.groups.len() <= g {
                c.groups.push(Group::default());
            }
            c.groups[g].rules.push(Rule {
                path: first.unwrap_or_default(),
                op: Op::Eq,
                value: Value::String(String::new()),
            });
        });
    };
    let rules_view = move || {
        let lang = session.lang.get();
        let c = cond.get();
        let p = prefix.get_value();
        let groups = c.groups.clone();
        let many_groups = groups.iter().filter(|g| !g.rules.is_empty()).count() > 1;
        let top_join = (groups.len() > 1).then(|| {
            let p = p.clone();
            view! {
                <select data-testid=format!("{p}-top-join") prop:value=if c.join == Join::Any { "any" } else { "all" }
                    on:change=move |ev| {
                        let any = event_target_value(&ev) == "any";
                        cond.update(|c| c.join = if any { Join::Any } else { Join::All });
                        emit();
                    }>
                    <option value="all">{say(lang, "以下各组都满足", "All groups below hold")}</option>
                    <option value="any">{say(lang, "以下任一组满足", "Any group below holds")}</option>
                </select>
            }
        });
        let group_views = groups.into_iter().enumerate().map(|(g, group)| {
            let p = p.clone();
            let join = (group.rules.len() > 1).then(|| {
                let p = p.clone();
                view! {
                    <select data-testid=format!("{p}-join-{g}") prop:value=if group.join == Join::Any { "any" } else { "all" }
                        on:change=move |ev| {
                            let any = event_target_value(&ev) == "any";
                            cond.update(|c| if let Some(gr) = c.groups.get_mut(g) { gr.join = if any { Join::Any } else { Join::All } });
                            emit();
                        }>
                        <option value="all">{say(lang, "全部满足", "All of these")}</option>
                        <option value="any">{say(lang, "任一满足", "Any of these")}</option>
                    </select>
                }
            });
            let rules = group.rules.into_iter().enumerate().map(|(r, rule)| {
                let p = p.clone();
                let path = rule.path.clone();
                let mut options: Vec<(String, String)> = items.with(|items| items.iter().map(|i| (i.path.clone(), i.label.clone())).collect());
                if !options.iter().any(|(o, _)| *o == path) {
                    options.insert(0, (path.clone(), path.clone()));
                }
                let samples = samples_of(&path);
                let list_id = format!("{p}-samples-{g}-{r}");
                let takes_value = rule.op.takes_value();
                view! {
                    <div class="cond-rule" data-testid=format!("{p}-rule-{g}-{r}")>
                        <select data-testid=format!("{p}-field-{g}-{r}") prop:value=path.clone()
                            on:change=move |ev| {
                                let path = event_target_value(&ev);
                                cond.update(|c| if let Some(rule) = c.groups.get_mut(g).and_then(|gr| gr.rules.get_mut(r)) { rule.path = path });
                                emit();
                            }>
                            {options.into_iter().map(|(o, label)| view! { <option value=o.clone()>{label}</option> }).collect_view()}
                        </select>
                        <select data-testid=format!("{p}-op-{g}-{r}") prop:value=op_code(rule.op)
                            on:change=move |ev| {
                                let op = op_of(&event_target_value(&ev));
                                cond.update(|c| if let Some(rule) = c.groups.get_mut(g).and_then(|gr| gr.rules.get_mut(r)) {
                                    let text = shown(&rule.value);
                                    rule.value = typed_value(op, &text, &samples_of(&rule.path));
                                    rule.op = op;
                                });
                                emit();
                            }>
                            {Op::ALL.into_iter().map(|o| view! { <option value=op_code(o)>{o.words(lang.code())}</option> }).collect_view()}
                        </select>
                        {takes_value.then(|| view! {
                            <input type="text" data-testid=format!("{p}-value-{g}-{r}") list=list_id.clone()
                                placeholder=say(lang, "值", "value") prop:value=shown(&rule.value)
                                on:change=move |ev| {
                                    let text = event_target_value(&ev);
                                    cond.update(|c| if let Some(rule) = c.groups.get_mut(g).and_then(|gr| gr.rules.get_mut(r)) {
                                        rule.value = typed_value(rule.op, &text, &samples_of(&rule.path));
                                    });
                                    emit();
                                } />
                            <datalist id=list_id.clone()>
                                {samples.iter().map(|s| view! { <option value=shown(s)></option> }).collect_view()}
                            </datalist>
                        })}
                        <button type="button" class="small" data-testid=format!("{p}-remove-{g}-{r}")
                            title=say(lang, "删除这个条件", "Remove this rule")
                            on:click=move |_| {
                                cond.update(|c| {
                                    if let Some(gr) = c.groups.get_mut(g) && r < gr.rules.len() {
                                        gr.rules.remove(r);
                                    }
                                    c.groups.retain(|gr| !gr.rules.is_empty());
                                });
                                emit();
                            }>"×"</button>
                    </div>
                }
            }).collect_view();
            view! {
                <div class="cond-group" class:framed=many_groups data-testid=format!("{p}-group-{g}")>
                    {join}
                    {rules}
                    <button type="button" class="small" data-testid=format!("{p}-add-{g}")
                        on:click=move |_| { add_rule(g); emit(); }>{say(lang, "+ 条件", "+ Rule")}</button>
                </div>
            }
        }).collect_view();
        let next_group = c.groups.len();
        view! {
            {top_join}
            {group_views}
            <button type="button" class="small" data-testid=format!("{p}-add-group")
                on:click=move |_| { add_rule(next_group); emit(); }>
                {if next_group == 0 { say(lang, "+ 添加条件", "+ Add a rule") } else { say(lang, "+ 另一组条件", "+ Another group") }}
            </button>
        }
    };
    let raw_error = RwSignal::new(None::<String>);
    view! {
        <div class="cond" data-testid=prefix.get_value()>
            {move || (!raw.get()).then(rules_view)}
            {move || raw.get().then(|| {
                let p = prefix.get_value();
                view! {
                    <input type="text" class="cel" data-testid=format!("{p}-cel") prop:value=move || raw_text.get()
                        on:input=move |ev| raw_text.set(event_target_value(&ev))
                        on:change=move |_| {
                            let text = raw_text.get_untracked();
                            if text.trim().is_empty() {
                                raw_error.set(None);
                                on_change.run(None);
                                return;
                            }
                            match trellis_model::Expr::compile(&text) {
                                Ok(_) => { raw_error.set(None); on_change.run(Some(text)); }
                                Err(e) => raw_error.set(Some(e.message)),
                            }
                        } />
                    {move || raw_error.get().map(|e| view! { <div class="field-error">{e}</div> })}
                }
            })}
            <button type="button" class="link" data-testid=format!("{}-toggle", prefix.get_value())
                on:click=move |_| {
                    if raw.get_untracked() {
                        // Back to the builder only when the CEL reads as rules.
                        match Condition::from_cel(&raw_text.get_untracked()).or_else(|| raw_text.get_untracked().trim().is_empty().then(Condition::default)) {
                            Some(c) => { cond.set(c); raw.set(false); raw_error.set(None); }
                            None => raw_error.set(Some(if session.lang.get_untracked() == Lang::Zh {
                                "这个表达式超出了条件构建器能表示的范围，请继续用 CEL 编辑".to_owned()
                            } else {
                                "This expression says more than the builder can show; keep editing it as CEL".to_owned()
                            })),
                        }
                    } else {
                        raw_text.set(cond.get_untracked().to_cel());
                        raw.set(true);
                    }
                }>
                {move || match (raw.get(), session.lang.get()) {
                    (false, Lang::Zh) => "以 CEL 编辑",
                    (false, Lang::En) => "Edit as CEL",
                    (true, Lang::Zh) => "用条件构建器",
                    (true, Lang::En) => "Use the builder",
                }}
            </button>
        </div>
    }
}

fn kind_code(b: &Behaviour) -> &'static str {
    match b {
        Behaviour::AllWithin { .. } => "all_within",
        Behaviour::AtLeast { .. } => "at_least",
        Behaviour::NoneWithin { .. } => "none_within",
    }
}

/// `b` turned into kind `code`, keeping what carries over.
fn with_kind(b: &Behaviour, code: &str) -> Behaviour {
    let days = b.days();
    let first = b.dids().first().map(|d| (*d).clone()).unwrap_or(Did {
        event: String::new(),
        filter: None,
    });
    match code {
        "all_within" => Behaviour::AllWithin {
            did: b.dids().into_iter().cloned().collect(),
            days,
        },
        "none_within" => Behaviour::NoneWithin { did: first, days },
        _ => Behaviour::AtLeast {
            did: first,
            times: match b {
                Behaviour::AtLeast { times, .. } => *times,
                _ => 2,
            },
            days,
        },
    }
}

/// The behaviour editor: which events, how many times, within how many days, each event
/// narrowed with the condition builder over the properties such events carry.
#[component]
pub fn BehaviourEditor(
    /// The stored condition (JSON), if any.
    value: Option<Value>,
    /// The event catalog (`GET /api/v1/event-catalog`).
    catalog: Signal<Value>,
    on_change: Callback<Value>,
    testid: String,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let start = value
        .and_then(|v| serde_json::from_value::<Behaviour>(v).ok())
        .unwrap_or(Behaviour::AllWithin {
            did: vec![Did {
                event: String::new(),
                filter: None,
            }],
            days: 7,
        });
    let b = RwSignal::new(start);
    let prefix = StoredValue::new(testid);
    let emit = move || on_change.run(serde_json::to_value(b.get_untracked()).unwrap_or_default());
    // Rebuilt when the kind or the list of events changes, not on every edit inside.
    let shape = Memo::new(move |_| {
        b.with(|b| {
            (
                kind_code(b),
                b.dids().iter().map(|d| d.event.clone()).collect::<Vec<_>>(),
            )
        })
    });
    let body = move || {
        let lang = session.lang.get();
        let (kind, events) = shape.get();
        let p = prefix.get_value();
        let current = b.get_untracked();
        let names = catalog.with(crate::picker::event_names);
        let dids = current.dids().into_iter().cloned().collect::<Vec<_>>();
        let did_views = dids.into_iter().enumerate().map(|(i, did)| {
            let p = p.clone();
            let mut options = names.clone();
            if !did.event.is_empty() && !options.contains(&did.event) {
                options.insert(0, did.event.clone());
            }
            let event = did.event.clone();
            let items = Signal::derive(move || {
                catalog.with(|c| crate::picker::event_items(c, &event, "event.properties.", session.lang.get()))
            });
            let removable = kind == "all_within" && events.len() > 1;
            view! {
                <div class="behaviour-did" data-testid=format!("{p}-did-{i}")>
                    <div class="behaviour-head">
                    <select data-testid=format!("{p}-event-{i}") prop:value=did.event.clone()
                        on:change=move |ev| {
                            let name = event_target_value(&ev);
                            b.update(|b| if let Some(d) = b.dids_mut().into_iter().nth(i) { d.event = name; d.filter = None; });
                            emit();
                        }>
                        <option value="">{say(lang, "选择事件…", "Choose an event…")}</option>
                        {options.into_iter().map(|o| view! { <option value=o.clone()>{o.clone()}</option> }).collect_view()}
                    </select>
                    {removable.then(|| view! {
                        <button type="button" class="small" data-testid=format!("{p}-remove-{i}")
                            on:click=move |_| {
                                b.update(|b| if let Behaviour::AllWithin { did, .. } = b && i < did.len() { did.remove(i); });
                                emit();
                            }>"×"</button>
                    })}
                    </div>
                    <div class="hint">{say(lang, "而且这个事件满足：", "where the event matches:")}</div>
                    <ConditionBuilder items=items value=did.filter.clone().unwrap_or_default()
                        testid=format!("{p}-filter-{i}")
                        on_change=Callback::new(move |cel: Option<String>| {
                            b.update(|b| if let Some(d) = b.dids_mut().into_iter().nth(i) { d.filter = cel; });
                            emit();
                        }) />
                </div>
            }
        }).collect_view();
        let times = match &current {
            Behaviour::AtLeast { times, .. } => Some(*times),
            _ => None,
        };
        view! {
            <select data-testid=format!("{p}-kind") prop:value=kind
                on:change=move |ev| {
                    let code = event_target_value(&ev);
                    b.update(|b| *b = with_kind(b, &code));
                    emit();
                }>
                <option value="all_within">{say(lang, "以下行为都做过（顺序不限）", "Did all of these (any order)")}</option>
                <option value="at_least">{say(lang, "做过至少几次", "Did this at least N times")}</option>
                <option value="none_within">{say(lang, "没有做过", "Did not do this")}</option>
            </select>
            <div class="behaviour-window">
                {times.map(|t| view! {
                    <label>{say(lang, "至少次数", "At least")}</label>
                    <input type="number" min="1" data-testid=format!("{p}-times") prop:value=t.to_string()
                        on:change=move |ev| {
                            if let Ok(n) = event_target_value(&ev).trim().parse::<u32>() {
                                b.update(|b| if let Behaviour::AtLeast { times, .. } = b { *times = n.max(1); });
                                emit();
                            }
                        } />
                })}
                <label>{say(lang, "最近天数", "Within the last (days)")}</label>
                <input type="number" min="1" max="366" data-testid=format!("{p}-days") prop:value=current.days().to_string()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).trim().parse::<u32>() {
                            b.update(|b| match b {
                                Behaviour::AllWithin { days, .. } | Behaviour::AtLeast { days, .. } | Behaviour::NoneWithin { days, .. } => *days = n.clamp(1, 366),
                            });
                            emit();
                        }
                    } />
            </div>
            {did_views}
            {(kind == "all_within").then(|| view! {
                <button type="button" class="small" data-testid=format!("{p}-add")
                    on:click=move |_| {
                        b.update(|b| if let Behaviour::AllWithin { did, .. } = b { did.push(Did { event: String::new(), filter: None }); });
                        emit();
                    }>{say(lang, "+ 再加一个行为", "+ Another behaviour")}</button>
            })}
        }
    };
    view! { <div class="behaviour" data-testid=prefix.get_value()>{body}</div> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_follow_the_operator_and_the_samples() {
        assert_eq!(typed_value(Op::Gt, " 3 ", &[]), json!(3));
        assert_eq!(typed_value(Op::Eq, "3", &[]), json!("3"));
        assert_eq!(typed_value(Op::Eq, "3.5", &[json!(1)]), json!(3.5));
        assert_eq!(typed_value(Op::Eq, "true", &[json!(false)]), json!(true));
        assert_eq!(
            typed_value(Op::In, "华东，华南, 华北", &[]),
            json!(["华东", "华南", "华北"])
        );
        assert_eq!(typed_value(Op::Exists, "x", &[]), Value::Null);
        assert_eq!(
            typed_value(Op::WithinDays, " 7 ", &[json!("2026-12-01")]),
            json!(7)
        );
        for op in Op::ALL {
            assert_eq!(op_of(op_code(op)), op);
        }
    }

    #[test]
    fn a_kind_change_keeps_the_events_and_the_window() {
        let b = Behaviour::AllWithin {
            did: vec![
                Did {
                    event: "page_view".into(),
                    filter: Some("event.properties.category == 'pricing'".into()),
                },
                Did {
                    event: "download".into(),
                    filter: None,
                },
            ],
            days: 14,
        };
        let at_least = with_kind(&b, "at_least");
        assert_eq!(kind_code(&at_least), "at_least");
        assert_eq!(at_least.days(), 14);
        assert_eq!(at_least.dids()[0].event, "page_view");
        assert_eq!(with_kind(&at_least, "all_within").dids().len(), 1);
    }
}
