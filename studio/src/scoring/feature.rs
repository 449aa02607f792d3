//! Editing one feature of the scoring model in words: what it reads (a lead attribute, or
//! the lead's events of one type narrowed by the condition builder, counted or summed over a
//! window), and how that becomes points (per value, per range, or up to a cap). Levels are
//! shown as a share of the feature's weight, with the points they give. The values leads
//! actually have (from the coverage check) are offered, so the right ones are listed.

use leptos::prelude::*;
use serde_json::Value;
use trellis_model::scoring::{AggregateKind, Bin, Feature, ScoringModel, Source, Transform};

use crate::Session;
use crate::condition::ConditionBuilder;
use crate::i18n::{Lang, say};

/// What decides how the editor is laid out: it is rebuilt when this changes, not on every
/// keystroke (a rebuild would take the focus from the field being typed in).
#[derive(Clone, Debug, PartialEq)]
struct Shape {
    index: usize,
    id: String,
    event: Option<String>,
    aggregate: Option<AggregateKind>,
    transform: &'static str,
    keys: Vec<String>,
    bins: usize,
}

fn shape_of(index: usize, f: &Feature) -> Shape {
    let (event, aggregate) = match &f.source {
        Source::Behaviour(b) => (Some(b.event.clone()), Some(b.aggregate)),
        Source::Fit { .. } => (None, None),
    };
    let (keys, bins) = match &f.transform {
        Transform::Categorical { values, .. } => (values.keys().cloned().collect(), 0),
        Transform::Bins { bins, .. } => (Vec::new(), bins.len()),
        _ => (Vec::new(), 0),
    };
    Shape {
        index,
        id: f.id.clone(),
        event,
        aggregate,
        transform: f.transform.kind(),
        keys,
        bins,
    }
}

/// A level (0–1) as the percentage typed.
fn percent(level: f64) -> String {
    let p = (level * 1000.0).round() / 10.0;
    format!("{p}")
}

/// A typed percentage as a level, clamped to 0–1.
fn level_of(text: &str) -> Option<f64> {
    let p: f64 = text.trim().trim_end_matches('%').trim().parse().ok()?;
    p.is_finite().then(|| (p / 100.0).clamp(0.0, 1.0))
}

fn aggregate_code(a: AggregateKind) -> &'static str {
    match a {
        AggregateKind::Count => "count",
        AggregateKind::Sum => "sum",
        AggregateKind::Last => "last",
        AggregateKind::Exists => "exists",
    }
}

fn aggregate_of(code: &str) -> AggregateKind {
    match code {
        "sum" => AggregateKind::Sum,
        "last" => AggregateKind::Last,
        "exists" => AggregateKind::Exists,
        _ => AggregateKind::Count,
    }
}

/// A number typed in a field, `None` when empty or not a number.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The editor of feature `index` of `draft`. Every edit goes through `edit`, which marks
/// the draft changed.
#[component]
pub fn FeatureEditor(
    draft: RwSignal<Option<ScoringModel>>,
    index: usize,
    /// The event catalog (`GET /api/v1/event-catalog`).
    catalog: Signal<Value>,
    /// This feature's coverage (`POST /api/v1/scoring/coverage`), when known.
    coverage: Signal<Option<Value>>,
    on_edit: Callback<()>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let edit = move |f: &dyn Fn(&mut Feature)| {
        draft.update(|d| {
            if let Some(d) = d
                && let Some(feature) = d.features.get_mut(index)
            {
                f(feature);
                // The calibration was fitted to the model as it was.
                d.calibration = None;
            }
        });
        on_edit.run(());
    };
    let shape = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref()
                .and_then(|d| d.features.get(index))
                .map(|f| shape_of(index, f))
        })
    });
    let body = move || {
        let Some(shape) = shape.get() else {
            return ().into_any();
        };
        let lang = session.lang.get();
        let Some(f) =
            draft.with_untracked(|d| d.as_ref().and_then(|d| d.features.get(index).cloned()))
        else {
            return ().into_any();
        };
        let p = format!("feature-{}", shape.id);
        let source = match &f.source {
            Source::Fit { attribute, .. } => {
                let mut names: Vec<String> = catalog
                    .with(crate::picker::lead_attributes)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                if !attribute.is_empty() && !names.contains(attribute) {
                    names.insert(0, attribute.clone());
                }
                let current = attribute.clone();
                view! {
                    <label>{say(lang, "线索属性", "Lead attribute")}</label>
                    <select data-testid=format!("{p}-attribute") prop:value=current
                        on:change=move |ev| {
                            let a = event_target_value(&ev);
                            rename_with(draft, index, &a);
                            edit(&|f| f.source = Source::Fit { attribute: a.clone(), cross: None });
                        }>
                        {names.into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                    </select>
                    <p class="hint">{say(lang, "按线索的这个属性给分，例如行业、规模、来源。", "Points by this attribute of the lead: industry, size, source…")}</p>
                }
                .into_any()
            }
            Source::Behaviour(b) => {
                let mut names = catalog.with(crate::picker::event_names);
                if !b.event.is_empty() && !names.contains(&b.event) {
                    names.insert(0, b.event.clone());
                }
                let event = b.event.clone();
                let items = Signal::derive(move || {
                    catalog.with(|c| {
                        crate::picker::event_items(
                            c,
                            &event,
                            "event.properties.",
                            session.lang.get(),
                        )
                    })
                });
                let fields: Vec<String> = items
                    .get_untracked()
                    .into_iter()
                    .filter(|i| i.samples.iter().any(Value::is_number) || i.samples.is_empty())
                    .map(|i| i.path.trim_start_matches("event.properties.").to_owned())
                    .collect();
                let needs_field = matches!(b.aggregate, AggregateKind::Sum | AggregateKind::Last);
                let field = b.field.clone().unwrap_or_default();
                view! {
                    <label>{say(lang, "事件", "Event")}</label>
                    <select data-testid=format!("{p}-event") prop:value=b.event.clone()
                        on:change=move |ev| {
                            let e = event_target_value(&ev);
                            rename_with(draft, index, &e);
                            edit(&|f| if let Source::Behaviour(b) = &mut f.source { b.event = e.clone(); b.filter = None; b.field = None; });
                        }>
                        {names.into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                    </select>
                    <div class="hint">{say(lang, "只算满足以下条件的事件：", "Only events that match:")}</div>
                    <ConditionBuilder items=items value=b.filter.clone().unwrap_or_default()
                        testid=format!("{p}-filter")
                        on_change=Callback::new(move |cel: Option<String>| {
                            edit(&|f| if let Source::Behaviour(b) = &mut f.source { b.filter = cel.clone(); });
                        }) />
                    <label>{say(lang, "怎么算", "Measure")}</label>
                    <select data-testid=format!("{p}-aggregate") prop:value=aggregate_code(b.aggregate)
                        on:change=move |ev| {
                            let a = aggregate_of(&event_target_value(&ev));
                            edit(&|f| if let Source::Behaviour(b) = &mut f.source { b.aggregate = a; });
                        }>
                        <option value="count">{say(lang, "发生次数", "How many times")}</option>
                        <option value="exists">{say(lang, "是否发生过", "Whether it happened")}</option>
                        <option value="sum">{say(lang, "某个数值的合计", "Total of a number")}</option>
                        <option value="last">{say(lang, "最近一次的数值", "The latest number")}</option>
                    </select>
                    {needs_field.then(|| view! {
                        <label>{say(lang, "数值字段", "Number field")}</label>
                        <select data-testid=format!("{p}-field") prop:value=field.clone()
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                edit(&|f| if let Source::Behaviour(b) = &mut f.source { b.field = (!v.is_empty()).then(|| v.clone()); });
                            }>
                            <option value="">{say(lang, "选择字段…", "Choose a field…")}</option>
                            {fields.into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                        </select>
                    })}
                    <div class="behaviour-window">
                        <label>{say(lang, "只看最近天数（空＝全部）", "Last N days only (empty = all)")}</label>
                        <input type="number" min="1" max="3650" class="short" data-testid=format!("{p}-window")
                            prop:value=b.window_days.map(|d| d.to_string()).unwrap_or_default()
                            on:change=move |ev| {
                                let d = event_target_value(&ev).trim().parse::<u32>().ok().map(|d| d.clamp(1, 3650));
                                edit(&|f| if let Source::Behaviour(b) = &mut f.source { b.window_days = d; });
                            } />
                        <label>{say(lang, "半衰期天数（空＝不衰减）", "Half-life in days (empty = none)")}</label>
                        <input type="number" min="1" class="short" data-testid=format!("{p}-half-life")
                            prop:value=b.half_life_days.map(|d| d.to_string()).unwrap_or_default()
                            on:change=move |ev| {
                                let h = number(&event_target_value(&ev)).filter(|h| *h > 0.0);
                                edit(&|f| if let Source::Behaviour(b) = &mut f.source { b.half_life_days = h; });
                            } />
                    </div>
                }
                .into_any()
            }
        };
        let weight = f.weight;
        let points = move |level: f64| match lang {
            Lang::Zh => format!("= {:.1} 分", weight * level),
            Lang::En => format!("= {:.1} points", weight * level),
        };
        let level_input = move |testid: String, level: f64, set: fn(&mut Transform, f64)| {
            view! {
                <input type="number" min="0" max="100" step="5" class="short" data-testid=testid
                    prop:value=percent(level)
                    on:change=move |ev| {
                        if let Some(l) = level_of(&event_target_value(&ev)) {
                            edit(&|f| set(&mut f.transform, l));
                        }
                    } />
                "%"<span class="hint">{points(level)}</span>
            }
        };
        let transform = match &f.transform {
            Transform::Categorical {
                values,
                other,
                missing,
            } => {
                // The values leads have that are not listed yet, as the coverage check (which
                // arrives after an edit) found them for this feature.
                let id = shape.id.clone();
                let known = move || -> Vec<String> {
                    let listed: Vec<String> = draft.with(|d| {
                        match d
                            .as_ref()
                            .and_then(|d| d.features.get(index))
                            .map(|f| &f.transform)
                        {
                            Some(Transform::Categorical { values, .. }) => {
                                values.keys().cloned().collect()
                            }
                            _ => Vec::new(),
                        }
                    });
                    coverage.with(|c| {
                        c.as_ref()
                            .filter(|c| c["feature"] == id.as_str())
                            .and_then(|c| c["values"].as_array())
                            .into_iter()
                            .flatten()
                            .filter_map(|v| v["value"].as_str().map(str::to_owned))
                            .filter(|v| !listed.contains(v))
                            .collect()
                    })
                };
                let rows = values.iter().map(|(k, l)| {
                    let key = k.clone();
                    let key2 = k.clone();
                    let set_key = key.clone();
                    view! {
                        <tr>
                            <td>{key.clone()}</td>
                            <td>
                                <input type="number" min="0" max="100" step="5" class="short"
                                    data-testid=format!("{p}-level-{key}") prop:value=percent(*l)
                                    on:change=move |ev| {
                                        if let Some(l) = level_of(&event_target_value(&ev)) {
                                            edit(&|f| if let Transform::Categorical { values, .. } = &mut f.transform { values.insert(set_key.clone(), l); });
                                        }
                                    } />
                                "%"<span class="hint">{points(*l)}</span>
                            </td>
                            <td><button type="button" class="small" data-testid=format!("{p}-remove-value-{key2}")
                                on:click=move |_| edit(&|f| if let Transform::Categorical { values, .. } = &mut f.transform { values.remove(&key2); })>"×"</button></td>
                        </tr>
                    }
                }).collect_view();
                let new_value = RwSignal::new(String::new());
                let add = move |v: String| {
                    let v = v.trim().to_owned();
                    if !v.is_empty() {
                        edit(&|f| {
                            if let Transform::Categorical { values, .. } = &mut f.transform {
                                values.entry(v.clone()).or_insert(1.0);
                            }
                        });
                    }
                };
                let pt = p.clone();
                view! {
                    <table class="levels"><tbody>
                        {rows}
                        <tr>
                            <td>{say(lang, "其他取值", "Any other value")}</td>
                            <td>{level_input(format!("{p}-other"), *other, |t, l| if let Transform::Categorical { other, .. } = t { *other = l })}</td>
                            <td></td>
                        </tr>
                        <tr>
                            <td>{say(lang, "未填写", "Not set")}</td>
                            <td>{level_input(format!("{p}-missing"), *missing, |t, l| if let Transform::Categorical { missing, .. } = t { *missing = l })}</td>
                            <td></td>
                        </tr>
                    </tbody></table>
                    <p>
                        <input type="text" class="short" data-testid=format!("{pt}-new-value")
                            placeholder=say(lang, "取值", "Value")
                            prop:value=move || new_value.get() on:input=move |ev| new_value.set(event_target_value(&ev)) />
                        <button type="button" class="small" data-testid=format!("{pt}-add-value")
                            on:click=move |_| { add(new_value.get_untracked()); new_value.set(String::new()); }>
                            {say(lang, "+ 添加取值（满分）", "+ Add value (full points)")}</button>
                    </p>
                    {move || {
                        let known = known();
                        let pt = pt.clone();
                        (!known.is_empty()).then(|| view! {
                            <p class="hint">{say(lang, "线索中常见的取值（点击添加）：", "Values leads have (click to add):")}
                                {known.into_iter().map(|v| {
                                    let v2 = v.clone();
                                    view! { <button type="button" class="chip" data-testid=format!("{pt}-suggest-{v}")
                                        on:click=move |_| add(v2.clone())>{v.clone()}</button> }
                                }).collect_view()}
                            </p>
                        })
                    }}
                }
                .into_any()
            }
            Transform::Bins { bins, missing } => {
                let n = bins.len();
                let rows = bins.iter().enumerate().map(|(j, bin)| {
                    let lower = if j == 0 { None } else { bins[j - 1].below };
                    let range = match (lower, bin.below, lang) {
                        (None, Some(b), Lang::Zh) => format!("小于 {b}"),
                        (None, Some(b), Lang::En) => format!("below {b}"),
                        (Some(a), Some(b), Lang::Zh) => format!("{a} 到 {b}"),
                        (Some(a), Some(b), Lang::En) => format!("{a} to {b}"),
                        (Some(a), None, Lang::Zh) => format!("{a} 及以上"),
                        (Some(a), None, Lang::En) => format!("{a} and above"),
                        (None, None, Lang::Zh) => "任何数值".to_owned(),
                        (None, None, Lang::En) => "any number".to_owned(),
                    };
                    let level = bin.level;
                    view! {
                        <tr>
                            <td>{range}</td>
                            <td>{bin.below.map(|b| view! {
                                <label>{say(lang, "上限", "Up to")}</label>
                                <input type="number" class="short" data-testid=format!("{p}-bin-below-{j}") prop:value=b.to_string()
                                    on:change=move |ev| {
                                        if let Some(x) = number(&event_target_value(&ev)) {
                                            edit(&|f| if let Transform::Bins { bins, .. } = &mut f.transform && let Some(b) = bins.get_mut(j) { b.below = Some(x); });
                                        }
                                    } />
                            })}</td>
                            <td>
                                <input type="number" min="0" max="100" step="5" class="short"
                                    data-testid=format!("{p}-bin-level-{j}") prop:value=percent(level)
                                    on:change=move |ev| {
                                        if let Some(l) = level_of(&event_target_value(&ev)) {
                                            edit(&|f| if let Transform::Bins { bins, .. } = &mut f.transform && let Some(b) = bins.get_mut(j) { b.level = l; });
                                        }
                                    } />
                                "%"<span class="hint">{points(level)}</span>
                            </td>
                            <td>{(n > 1).then(|| view! {
                                <button type="button" class="small" data-testid=format!("{p}-remove-bin-{j}")
                                    on:click=move |_| edit(&|f| if let Transform::Bins { bins, .. } = &mut f.transform && j < bins.len() && bins.len() > 1 {
                                        bins.remove(j);
                                        if let Some(last) = bins.last_mut() { last.below = None; }
                                    })>"×"</button>
                            })}</td>
                        </tr>
                    }
                }).collect_view();
                view! {
                    <table class="levels"><tbody>
                        {rows}
                        <tr>
                            <td>{say(lang, "未填写", "Not set")}</td>
                            <td></td>
                            <td>{level_input(format!("{p}-missing"), *missing, |t, l| if let Transform::Bins { missing, .. } = t { *missing = l })}</td>
                            <td></td>
                        </tr>
                    </tbody></table>
                    <button type="button" class="small" data-testid=format!("{p}-add-bin")
                        on:click=move |_| edit(&|f| if let Transform::Bins { bins, .. } = &mut f.transform { split_last(bins); })>
                        {say(lang, "+ 再分一段", "+ Split the last range")}</button>
                }
                .into_any()
            }
            Transform::Cap { cap } | Transform::Log { cap } => {
                let log = matches!(f.transform, Transform::Log { .. });
                view! {
                    <label>{say(lang, "达到多少得满分", "Full points at")}</label>
                    <input type="number" min="0" class="short" data-testid=format!("{p}-cap") prop:value=cap.to_string()
                        on:change=move |ev| {
                            if let Some(c) = number(&event_target_value(&ev)).filter(|c| *c > 0.0) {
                                edit(&|f| match &mut f.transform { Transform::Cap { cap } | Transform::Log { cap } => *cap = c, _ => {} });
                            }
                        } />
                    <p class="hint">{if log {
                        say(lang, "前几次最重要：得分按对数增长，到这个数时满分。", "The first few count most: points grow logarithmically up to this.")
                    } else {
                        say(lang, "得分与数值成正比，到这个数时满分。", "Points grow in proportion up to this.")
                    }}</p>
                }
                .into_any()
            }
        };
        let label = f.label.clone();
        view! {
            <div class="feature-editor" data-testid=format!("{p}-editor")>
                <label>{say(lang, "名称", "Name")}</label>
                <input type="text" data-testid=format!("{p}-label") prop:value=label
                    on:change=move |ev| {
                        let l = event_target_value(&ev);
                        if !l.trim().is_empty() {
                            edit(&|f| f.label = l.trim().to_owned());
                        }
                    } />
                {source}
                <label>{say(lang, "怎么给分", "Points")}</label>
                <select data-testid=format!("{p}-transform") prop:value=shape.transform
                    on:change=move |ev| {
                        let code = event_target_value(&ev);
                        edit(&|f| if let Some(t) = f.transform.with_kind(&code) { f.transform = t; });
                    }>
                    <option value="categorical">{say(lang, "按取值给分", "Per value")}</option>
                    <option value="bins">{say(lang, "按数值区间给分", "Per range")}</option>
                    <option value="cap">{say(lang, "按数值比例，封顶满分", "In proportion, up to a cap")}</option>
                    <option value="log">{say(lang, "前几次最重要（对数）", "First few count most (log)")}</option>
                </select>
                {transform}
            </div>
        }
        .into_any()
    };
    view! { {body} }
}

/// A feature still named after what it read (as a new one is) follows a change of what
/// it reads: its name and id become the new attribute or event.
fn rename_with(draft: RwSignal<Option<ScoringModel>>, index: usize, to: &str) {
    draft.update(|d| {
        let Some(d) = d else { return };
        let Some(f) = d.features.get(index) else {
            return;
        };
        let from = match &f.source {
            Source::Fit { attribute, .. } => attribute.clone(),
            Source::Behaviour(b) => b.event.clone(),
        };
        if f.label != from || from == to {
            return;
        }
        let id = d.fresh_id_except(to, Some(index));
        let f = &mut d.features[index];
        f.label = to.to_owned();
        f.id = id;
    });
}

/// Splits the open-ended last range in two: the new bound doubles the previous one (or is
/// 1), and the new last range gets full points.
fn split_last(bins: &mut Vec<Bin>) {
    let prev = bins.iter().rev().find_map(|b| b.below);
    let bound = prev.map_or(1.0, |p| if p > 0.0 { p * 2.0 } else { p + 1.0 });
    if let Some(last) = bins.last_mut() {
        last.below = Some(bound);
    }
    bins.push(Bin {
        below: None,
        level: 1.0,
    });
}

/// A new feature on the first lead attribute (or event) the model does not use yet.
pub fn new_feature(model: &ScoringModel, catalog: &Value, behaviour: bool) -> Feature {
    let used = |name: &str| {
        model.features.iter().any(|f| match &f.source {
            Source::Fit { attribute, .. } => attribute == name,
            Source::Behaviour(b) => b.event == name,
        })
    };
    if behaviour {
        let names = crate::picker::event_names(catalog);
        let event = names
            .iter()
            .find(|n| !used(n))
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "page_view".to_owned());
        Feature::behaviour(&event, &event)
    } else {
        let names: Vec<String> = crate::picker::lead_attributes(catalog)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        // An outcome (`Converted`) is what scores predict, not something to score by.
        let attribute = names
            .iter()
            .find(|n| !used(n) && !super::suggest::named_like_outcome(n))
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "industry".to_owned());
        Feature::fit(&attribute, &attribute)
    }
}

/// The coverage check's warning for one feature, in words; `None` when it matches data.
pub fn coverage_warning(f: &Feature, c: &Value, lang: Lang) -> Option<String> {
    if !c["matches_nothing"].as_bool().unwrap_or(false) {
        return None;
    }
    let events = &c["events"];
    Some(match (&f.source, lang) {
        (Source::Fit { attribute, .. }, Lang::Zh) if c["with_value"] == 0 => {
            format!("没有线索有属性「{attribute}」：这个特征给每条线索都是 0 分。")
        }
        (Source::Fit { attribute, .. }, Lang::En) if c["with_value"] == 0 => {
            format!("No lead has the attribute \"{attribute}\": this feature gives every lead 0.")
        }
        (Source::Fit { .. }, Lang::Zh) => {
            "没有线索从这个特征得分：列出的取值在线索中都没有出现。".to_owned()
        }
        (Source::Fit { .. }, Lang::En) => {
            "No lead gets points from this feature: none of the listed values occurs.".to_owned()
        }
        (Source::Behaviour(b), Lang::Zh) if events["total"] == 0 => {
            format!(
                "还没有收到过「{}」事件：这个特征给每条线索都是 0 分。",
                b.event
            )
        }
        (Source::Behaviour(b), Lang::En) if events["total"] == 0 => {
            format!(
                "No \"{}\" event has arrived yet: this feature gives every lead 0.",
                b.event
            )
        }
        (Source::Behaviour(b), Lang::Zh) => format!(
            "最近 {} 个「{}」事件中没有一个满足筛选条件。",
            events["examined"], b.event
        ),
        (Source::Behaviour(b), Lang::En) => format!(
            "None of the last {} \"{}\" events matches the filter.",
            events["examined"], b.event
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn levels_are_typed_as_percentages() {
        assert_eq!(level_of(" 40 "), Some(0.4));
        assert_eq!(level_of("150%"), Some(1.0));
        assert_eq!(level_of("abc"), None);
        assert_eq!(percent(0.125), "12.5");
    }

    #[test]
    fn a_split_adds_a_full_points_range_at_the_end() {
        let mut bins = vec![Bin {
            below: None,
            level: 0.5,
        }];
        split_last(&mut bins);
        split_last(&mut bins);
        assert_eq!(
            bins.iter().map(|b| b.below).collect::<Vec<_>>(),
            vec![Some(1.0), Some(2.0), None]
        );
    }

    #[test]
    fn a_new_feature_reads_data_the_model_does_not_use_yet() {
        let catalog = json!({
            "events": [{"name": "page_view"}, {"name": "download"}],
            "lead_attributes": [{"path": "industry"}, {"path": "Lead Source", "samples": ["Google"]}],
        });
        let model = ScoringModel::starter();
        let f = new_feature(&model, &catalog, false);
        assert!(matches!(&f.source, Source::Fit { attribute, .. } if attribute == "Lead Source"));
        let b = new_feature(&model, &catalog, true);
        assert!(matches!(&b.source, Source::Behaviour(d) if d.event == "download"));
        let warning = coverage_warning(
            &f,
            &json!({"matches_nothing": true, "with_value": 0}),
            Lang::Zh,
        );
        assert_eq!(
            warning.as_deref(),
            Some("没有线索有属性「Lead Source」：这个特征给每条线索都是 0 分。")
        );
        assert_eq!(
            coverage_warning(&f, &json!({"matches_nothing": false}), Lang::Zh),
            None
        );
    }
}
