//! The next-best-action rules page (下一步行动): each rule is a condition, built with the
//! condition builder over the lead's score, its latest signal per category, what it did in
//! the last 30 days and its attributes, and the actions a rep is told to take when it
//! holds. Rules are checked as they are edited (`Rules::problems`, the server's own check),
//! and tried on a real lead: its facts (`GET /api/v1/leads/{id}`) are run through the draft
//! here, so the page shows which actions that lead would get before anything is saved.

use leptos::prelude::*;
use serde_json::{Value, json};
use trellis_model::nba::{Action, Facts, Rule, Rules};
use trellis_model::signals::Category;

use crate::Session;
use crate::api::{self, ApiError};
use crate::condition::ConditionBuilder;
use crate::doc_editor::{Banners, DocEditor, DocHistory};
use crate::i18n::{self, Lang, say};
use crate::picker::PickItem;

/// The kinds of action, with their words.
const KINDS: [(&str, &str, &str); 5] = [
    ("call", "打电话", "Call"),
    ("send_content", "发送资料", "Send content"),
    ("meeting", "约会议", "Book a meeting"),
    ("task", "安排任务", "Task"),
    ("wecom_message", "企业微信消息", "WeCom message"),
];

/// How soon, as offered.
const WITHIN: [(&str, &str, &str); 6] = [
    ("1h", "1 小时内", "within 1 hour"),
    ("4h", "4 小时内", "within 4 hours"),
    ("1d", "1 天内", "within 1 day"),
    ("2d", "2 天内", "within 2 days"),
    ("3d", "3 天内", "within 3 days"),
    ("7d", "1 周内", "within a week"),
];

/// The fields a rule's condition can read, in words.
pub fn rule_items(catalog: &Value, lang: Lang) -> Vec<PickItem> {
    let item = |path: String, label: String, samples: Vec<Value>| PickItem {
        path,
        label,
        hint: String::new(),
        samples,
    };
    let mut items = vec![
        item(
            "score.tier".into(),
            say(
                lang,
                "评分等级（hot/warm/cold）",
                "Score tier (hot/warm/cold)",
            ),
            vec![json!("hot"), json!("warm"), json!("cold")],
        ),
        item(
            "score.score".into(),
            say(lang, "分数", "Score"),
            vec![json!(70)],
        ),
        item(
            "score.stage".into(),
            say(lang, "阶段（lead/mql/sql）", "Stage (lead/mql/sql)"),
            vec![json!("lead"), json!("mql"), json!("sql")],
        ),
    ];
    for c in Category::ALL {
        let name = i18n::signal_category(lang, c.as_str());
        items.push(item(
            format!("signal.{}", c.as_str()),
            match lang {
                Lang::Zh => format!(
                    "{name}信号（最近的状态：positive 推进 / negative 受阻 / neutral 提及）"
                ),
                Lang::En => format!("{name} signal (latest: positive / negative / neutral)"),
            },
            vec![json!("positive"), json!("negative"), json!("neutral")],
        ));
    }
    for name in crate::picker::event_names(catalog) {
        if name.starts_with("lead.") {
            continue;
        }
        items.push(item(
            format!("did.{name}"),
            match lang {
                Lang::Zh => format!("最近 30 天「{name}」的次数"),
                Lang::En => format!("\"{name}\" in the last 30 days (times)"),
            },
            vec![json!(1)],
        ));
    }
    for (attr, samples) in crate::picker::lead_attributes(catalog) {
        // CEL reaches plain names by dots; others stay for raw CEL.
        if attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            items.push(item(
                format!("lead.{attr}"),
                match lang {
                    Lang::Zh => format!("线索属性 {attr}"),
                    Lang::En => format!("Lead attribute {attr}"),
                },
                samples,
            ));
        }
    }
    items
}

/// A problem with the rules in words.
fn problem_words(pointer: &str, message: &str, rules: &Rules, lang: Lang) -> String {
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let (place, field) = match parts.as_slice() {
        ["rules", i, rest @ ..] => {
            let i: usize = i.parse().unwrap_or(0);
            let name = rules.rules.get(i).map_or("", |r| r.name.as_str());
            let place = match lang {
                Lang::Zh => format!("第 {} 条规则「{name}」：", i + 1),
                Lang::En => format!("Rule {} \"{name}\": ", i + 1),
            };
            (place, rest.first().copied().unwrap_or(""))
        }
        _ => (format!("{pointer}: "), ""),
    };
    let unset = match parts.as_slice() {
        ["rules", i, ..] => i
            .parse::<usize>()
            .ok()
            .and_then(|i| rules.rules.get(i))
            .is_some_and(|r| r.when.trim().is_empty()),
        _ => false,
    };
    let what = match (lang, field) {
        (Lang::Zh, "when") if unset => "还没有设置条件。".to_owned(),
        (Lang::En, "when") if unset => "no condition yet.".to_owned(),
        (Lang::En, _) => message.to_owned(),
        (Lang::Zh, "when") => format!("条件无法理解：{message}"),
        (Lang::Zh, "actions") if parts.len() > 3 => "每个行动都要有标题。".to_owned(),
        (Lang::Zh, "actions") => "至少要有一个行动。".to_owned(),
        (Lang::Zh, "id") => "规则编号重复或不合规。".to_owned(),
        (Lang::Zh, _) => message.to_owned(),
    };
    format!("{place}{what}")
}

/// An id no rule has yet.
fn fresh_id(rules: &Rules) -> String {
    (1..)
        .map(|n| format!("rule_{n}"))
        .find(|id| !rules.rules.iter().any(|r| &r.id == id))
        .unwrap_or_else(|| "rule".to_owned())
}

#[component]
pub fn RulesPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let doc = DocEditor::<Rules>::new(
        session,
        "/api/v1/nba/rules",
        "nba-rules",
        |v| json!({ "rules": v["rules"] }),
        (
            "已保存：线索卡片上的下一步行动按这些规则给出。",
            "Saved: lead cards now suggest actions by these rules.",
        ),
    );
    let DocEditor {
        draft,
        builtin,
        dirty,
        error,
        notice,
        ..
    } = doc;
    let catalog = RwSignal::new(Value::Null);
    let leads = RwSignal::new(Vec::<(String, String)>::new());
    let facts = RwSignal::new(None::<Facts>);
    leptos::task::spawn_local(async move {
        let t = token();
        if let Ok(c) = api::get_json(&t, "/api/v1/event-catalog").await {
            catalog.set(c);
        }
        if let Ok(v) = api::get_json(&t, "/api/v1/leads?per_page=50").await {
            leads.set(
                v["leads"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| {
                        let id = l["id"].as_str()?.to_owned();
                        let name = l["name"].as_str().map_or_else(|| id.clone(), str::to_owned);
                        Some((id, name))
                    })
                    .collect(),
            );
        }
    });
    let edit = move |f: &dyn Fn(&mut Rules)| doc.edit(f);
    let problems = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref()
                .map(|r| {
                    r.problems()
                        .into_iter()
                        .map(|(p, m)| problem_words(&p, &m, r, session.lang.get()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });
    let tried = Memo::new(move |_| {
        let f = facts.get()?;
        draft.with(|d| d.as_ref().map(|r| r.next_actions(&f, 3)))
    });
    let try_lead = move |id: String| {
        if id.is_empty() {
            facts.set(None);
            return;
        }
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), &format!("/api/v1/leads/{id}")).await {
                Ok(card) => facts.set(serde_json::from_value(card["facts"].clone()).ok()),
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    let items = Signal::derive(move || catalog.with(|c| rule_items(c, session.lang.get())));
    // Cards are rebuilt when rules are added, removed or moved, not on every keystroke.
    let order = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref()
                .map(|r| r.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let card = move |i: usize, rule: Rule| {
        let lang = lang();
        let n = order.with_untracked(Vec::len);
        let action_count = Memo::new(move |_| {
            draft.with(|d| {
                d.as_ref()
                    .and_then(|r| r.rules.get(i))
                    .map_or(0, |r| r.actions.len())
            })
        });
        let id = rule.id.clone();
        let holds = move || tried.with(|t| t.as_ref().map(|t| t.iter().any(|a| a.rule == id)));
        let actions = move || {
            let lang = session.lang.get();
            (0..action_count.get()).map(|j| {
                let action = move || draft.with(|d| d.as_ref().and_then(|r| r.rules.get(i)?.actions.get(j).cloned()));
                let a = action().unwrap_or(Action { kind: "task".into(), title: String::new(), title_en: None, url: None, within: None });
                let p = format!("rule-{i}-action-{j}");
                let is_content = a.kind == "send_content";
                view! {
                    <div class="rule-action" data-testid=p.clone()>
                        <select data-testid=format!("{p}-kind") prop:value=a.kind.clone()
                            on:change=move |ev| {
                                let k = event_target_value(&ev);
                                edit(&|r| if let Some(a) = r.rules.get_mut(i).and_then(|r| r.actions.get_mut(j)) { a.kind = k.clone(); });
                            }>
                            {KINDS.iter().map(|(code, zh, en)| view! { <option value=*code>{say(lang, zh, en)}</option> }).collect_view()}
                        </select>
                        <input type="text" data-testid=format!("{p}-title") placeholder=say(lang, "要做什么", "What to do")
                            prop:value=a.title.clone()
                            on:change=move |ev| {
                                let t = event_target_value(&ev);
                                edit(&|r| if let Some(a) = r.rules.get_mut(i).and_then(|r| r.actions.get_mut(j)) { a.title = t.trim().to_owned(); });
                            } />
                        {is_content.then(|| view! {
                            <input type="url" data-testid=format!("{p}-url") placeholder=say(lang, "资料链接", "Content link")
                                prop:value=a.url.clone().unwrap_or_default()
                                on:change=move |ev| {
                                    let u = event_target_value(&ev).trim().to_owned();
                                    edit(&|r| if let Some(a) = r.rules.get_mut(i).and_then(|r| r.actions.get_mut(j)) { a.url = (!u.is_empty()).then(|| u.clone()); });
                                } />
                        })}
                        <select data-testid=format!("{p}-within") prop:value=a.within.clone().unwrap_or_default()
                            on:change=move |ev| {
                                let w = event_target_value(&ev);
                                edit(&|r| if let Some(a) = r.rules.get_mut(i).and_then(|r| r.actions.get_mut(j)) { a.within = (!w.is_empty()).then(|| w.clone()); });
                            }>
                            <option value="">{say(lang, "不限时间", "No deadline")}</option>
                            {WITHIN.iter().map(|(code, zh, en)| view! { <option value=*code>{say(lang, zh, en)}</option> }).collect_view()}
                        </select>
                        <button type="button" class="small" data-testid=format!("{p}-remove")
                            on:click=move |_| edit(&|r| if let Some(rule) = r.rules.get_mut(i) && j < rule.actions.len() { rule.actions.remove(j); })>"×"</button>
                    </div>
                }
            }).collect_view()
        };
        view! {
            <section class="rule" data-testid=format!("rule-{i}")>
                <div class="rule-head">
                    <input type="text" data-testid=format!("rule-{i}-name") prop:value=rule.name.clone()
                        placeholder=say(lang, "规则名称：什么情况下做什么", "Rule name: when what")
                        on:change=move |ev| {
                            let name = event_target_value(&ev);
                            edit(&|r| if let Some(rule) = r.rules.get_mut(i) { rule.name = name.trim().to_owned(); });
                        } />
                    {move || holds().map(|h| view! {
                        <span class=if h { "badge ok" } else { "badge" } data-testid=format!("rule-{i}-holds") data-holds=h.to_string()>
                            {if h { say(session.lang.get(), "对试用线索成立", "Holds for the lead tried") } else { say(session.lang.get(), "对试用线索不成立", "Does not hold for the lead tried") }}
                        </span>
                    })}
                    <button type="button" class="small" data-testid=format!("rule-{i}-up") disabled={i == 0}
                        on:click=move |_| edit(&|r| if i > 0 && i < r.rules.len() { r.rules.swap(i - 1, i); })>"↑"</button>
                    <button type="button" class="small" data-testid=format!("rule-{i}-down") disabled={i + 1 >= n}
                        on:click=move |_| edit(&|r| if i + 1 < r.rules.len() { r.rules.swap(i, i + 1); })>"↓"</button>
                    <button type="button" class="small" data-testid=format!("rule-{i}-remove")
                        on:click=move |_| edit(&|r| if i < r.rules.len() { r.rules.remove(i); })>{say(lang, "删除", "Remove")}</button>
                </div>
                <div class="hint">{say(lang, "当：", "When:")}</div>
                <ConditionBuilder items=items value=rule.when.clone() testid=format!("rule-{i}-when")
                    on_change=Callback::new(move |cel: Option<String>| {
                        edit(&|r| if let Some(rule) = r.rules.get_mut(i) { rule.when = cel.clone().unwrap_or_default(); });
                    }) />
                <div class="hint">{say(lang, "就让销售：", "Then the rep should:")}</div>
                {actions}
                <button type="button" class="small" data-testid=format!("rule-{i}-add-action")
                    on:click=move |_| edit(&|r| if let Some(rule) = r.rules.get_mut(i) {
                        rule.actions.push(Action { kind: "task".into(), title: String::new(), title_en: None, url: None, within: Some("1d".into()) });
                    })>{say(lang, "+ 再加一个行动", "+ Another action")}</button>
            </section>
        }
    };
    view! {
        <div class="card rules" data-testid="rules-page">
            <h2>{move || say(lang(), "下一步行动规则", "Next-best-action rules")}</h2>
            <p class="hint">{move || say(lang(),
                "线索卡片按顺序检查这些规则，前 3 条成立的规则给出销售的下一步行动。",
                "Lead cards check these rules in order; the first three that hold give the rep's next actions.")}</p>
            <Banners builtin=builtin error=error notice=notice prefix="rules"
                builtin_words=("正在使用内置规则。修改并保存后，它们就成为本工作区自己的规则。", "These are the built-in rules. Once edited and saved, they become this workspace's own.") />
            <p>
                <label for="rules-try-lead">{move || say(lang(), "用一条线索试试：", "Try on a lead: ")}</label>
                <select id="rules-try-lead" data-testid="rules-try-lead" on:change=move |ev| try_lead(event_target_value(&ev))>
                    <option value="">{move || say(lang(), "选择线索…", "Choose a lead…")}</option>
                    {move || leads.get().into_iter().map(|(id, name)| view! { <option value=id.clone()>{name}</option> }).collect_view()}
                </select>
            </p>
            {move || tried.get().map(|t| {
                let lang = lang();
                let line = if t.is_empty() {
                    say(lang, "没有规则成立：这条线索不会得到建议。", "No rule holds: this lead gets no suggestion.")
                } else {
                    let names: Vec<String> = t.iter().map(|a| a.name.clone()).collect();
                    match lang {
                        Lang::Zh => format!("这条线索会得到：{}", names.join("；")),
                        Lang::En => format!("This lead would get: {}", names.join("; ")),
                    }
                };
                view! { <p class="banner info" data-testid="rules-try-result">{line}</p> }
            })}
            {move || {
                let p = problems.get();
                (!p.is_empty()).then(|| view! {
                    <ul class="error" data-testid="rules-problems">{p.into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}</ul>
                })
            }}
            <p class="actions">
                <button class="primary" data-testid="save-rules" disabled=move || !dirty.get() || !problems.with(Vec::is_empty)
                    on:click=move |_| doc.save()>{move || say(lang(), "保存规则", "Save rules")}</button>
                <button data-testid="discard-rules" disabled=move || !dirty.get() on:click=move |_| doc.load()>
                    {move || say(lang(), "放弃修改", "Discard changes")}</button>
            </p>
            <DocHistory doc=doc can_edit=Signal::derive(move || session.at_least("builder")) />
            {move || {
                // Subscribes to the order: rebuilt when rules come, go or move.
                let _count = order.with(Vec::len);
                draft.with_untracked(|d| d.as_ref().map(|r| r.rules.clone()).unwrap_or_default())
                    .into_iter().enumerate().map(|(i, rule)| card(i, rule)).collect_view()
            }}
            <button data-testid="add-rule" on:click=move |_| edit(&|r| {
                let id = fresh_id(r);
                r.rules.push(Rule { id, name: String::new(), when: String::new(), actions: vec![
                    Action { kind: "task".into(), title: String::new(), title_en: None, url: None, within: Some("1d".into()) }] });
            })>{move || say(lang(), "+ 新规则", "+ New rule")}</button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_rules_read_in_the_condition_builder() {
        for r in Rules::builtin().rules {
            if r.id == "stalled" {
                continue; // "any negative signal" stays CEL.
            }
            assert!(
                trellis_model::condition::Condition::from_cel(&r.when).is_some(),
                "{}: {}",
                r.id,
                r.when
            );
        }
        let items = rule_items(
            &json!({"events": [{"name": "download"}, {"name": "lead.tier_changed"}]}),
            Lang::Zh,
        );
        assert!(items.iter().any(|i| i.path == "did.download"));
        assert!(!items.iter().any(|i| i.path.contains("lead.tier_changed")));
        assert_eq!(fresh_id(&Rules::builtin()), "rule_1");
    }

    #[test]
    fn problems_name_the_rule() {
        let mut rules = Rules::builtin();
        rules.rules[1].when = "score.tier ==".into();
        rules.rules[2].actions.clear();
        let words: Vec<String> = rules
            .problems()
            .iter()
            .map(|(p, m)| problem_words(p, m, &rules, Lang::Zh))
            .collect();
        assert!(words[0].starts_with("第 2 条规则「"), "{words:?}");
        assert!(words[0].contains("条件无法理解"), "{words:?}");
        assert!(words[1].ends_with("至少要有一个行动。"), "{words:?}");
    }
}
