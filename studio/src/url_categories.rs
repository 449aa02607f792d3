//! The URL-categories page (网址分类): rules that say what a visited page is (价格页,
//! 竞品对比, 白皮书…), by path prefix, wildcard pattern, regular expression or title
//! keyword, first match wins. Every edit is checked with the server's own code
//! (`trellis_model::url_categories`) in the browser, and the last 100 pages visitors saw are
//! shown with the category each got and, beside it, what the draft would give, before
//! anything is saved. Saved rules apply to events recorded from then on.

use std::sync::Arc;

use leptos::prelude::*;
use serde_json::Value;
use trellis_model::url_categories::{Categoriser, KNOWN, UrlCategories, UrlMatch, UrlRule};

use crate::Session;
use crate::api;
use crate::doc_editor::{Banners, Compiled, DocEditor, DocHistory};
use crate::i18n::{Lang, say};

const KINDS: [&str; 4] = ["path_prefix", "glob", "regex", "title_keyword"];

fn kind_of(m: &UrlMatch) -> &'static str {
    match m {
        UrlMatch::PathPrefix { .. } => "path_prefix",
        UrlMatch::Glob { .. } => "glob",
        UrlMatch::Regex { .. } => "regex",
        UrlMatch::TitleKeyword { .. } => "title_keyword",
    }
}

fn kind_words(kind: &str, lang: Lang) -> String {
    match kind {
        "path_prefix" => say(lang, "路径开头是", "Path starts with"),
        "glob" => say(lang, "路径符合通配符", "Path matches wildcard"),
        "regex" => say(lang, "路径符合正则表达式", "Path matches regex"),
        _ => say(lang, "标题包含", "Title contains"),
    }
}

fn text_of(m: &UrlMatch) -> String {
    match m {
        UrlMatch::PathPrefix { prefix: t }
        | UrlMatch::Glob { pattern: t }
        | UrlMatch::Regex { pattern: t }
        | UrlMatch::TitleKeyword { keyword: t } => t.clone(),
    }
}

fn matcher(kind: &str, text: String) -> UrlMatch {
    match kind {
        "path_prefix" => UrlMatch::PathPrefix { prefix: text },
        "glob" => UrlMatch::Glob { pattern: text },
        "regex" => UrlMatch::Regex { pattern: text },
        _ => UrlMatch::TitleKeyword { keyword: text },
    }
}

/// A category in words (the known ones), else as written.
pub fn category_words(category: &str, lang: Lang) -> String {
    KNOWN
        .iter()
        .find(|(c, ..)| *c == category)
        .map_or_else(|| category.to_owned(), |(_, zh, en)| say(lang, zh, en))
}

/// A problem in words: which rule, then what.
fn problem_words(pointer: &str, message: &str, lang: Lang) -> String {
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["rules", i, field @ ..] => {
            let n = i.parse::<usize>().map_or(0, |n| n + 1);
            let what = match field.first().copied() {
                Some("category") => say(lang, "分类", "category"),
                Some("id") => say(lang, "编号", "id"),
                _ => say(lang, "匹配条件", "condition"),
            };
            say(
                lang,
                &format!("第 {n} 条规则的{what}：{message}"),
                &format!("Rule {n}, {what}: {message}"),
            )
        }
        _ => message.to_owned(),
    }
}

/// An id for a new rule no other rule has.
fn fresh_id(doc: &UrlCategories) -> String {
    (1..)
        .map(|n| format!("rule-{n}"))
        .find(|id| !doc.rules.iter().any(|r| &r.id == id))
        .unwrap_or_default()
}

#[component]
pub fn UrlCategoriesPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let doc = DocEditor::<UrlCategories>::new(
        session,
        "/api/v1/url-categories",
        "url-categories",
        |v| v["doc"].clone(),
        (
            "已保存：从现在起记录的访问按这些规则分类（已记录的不变）。",
            "Saved: visits recorded from now on are categorised by these rules (recorded ones stay as they are).",
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
    let edit = move |f: &dyn Fn(&mut UrlCategories)| doc.edit(f);
    let recent = RwSignal::new(Vec::<Value>::new());
    let load_recent = move || {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            if let Ok(v) = api::get_json(&token, "/api/v1/url-categories/recent").await {
                recent.set(v["pages"].as_array().cloned().unwrap_or_default());
            }
        });
    };
    load_recent();
    // The draft checked as the server checks it, and compiled once per edit.
    let compiled = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref()
                .map(|d| d.compile().map(|c: Categoriser| Compiled(Arc::new(c))))
        })
    });
    // The rows are drawn again when rules are added, removed or moved, not per keystroke.
    let order = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref()
                .map(|d| d.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let rule_row = move |i: usize| {
        let rule = move || draft.with(|d| d.as_ref().and_then(|d| d.rules.get(i).cloned()));
        let Some(r) = rule() else {
            return ().into_any();
        };
        let lang = lang();
        let kind = kind_of(&r.matcher);
        view! {
            <div class="url-rule" data-testid=format!("url-rule-{i}")>
                <span class="hint">{format!("{}.", i + 1)}</span>
                <select data-testid=format!("url-rule-{i}-kind") prop:value=kind
                    on:change=move |ev| {
                        let k = event_target_value(&ev);
                        edit(&|d| if let Some(r) = d.rules.get_mut(i) {
                            r.matcher = matcher(&k, text_of(&r.matcher));
                        });
                    }>
                    {KINDS.map(|k| view! { <option value=k selected=k == kind>{kind_words(k, lang)}</option> }).collect_view()}
                </select>
                <input type="text" data-testid=format!("url-rule-{i}-pattern")
                    placeholder=move || match rule().map(|r| kind_of(&r.matcher)) {
                        Some("path_prefix") => "/pricing".to_owned(),
                        Some("glob") => "/products/*/compare".to_owned(),
                        Some("regex") => "(?i)/(vs|compare)/".to_owned(),
                        _ => say(lang, "对比", "comparison"),
                    }
                    prop:value=text_of(&r.matcher)
                    on:change=move |ev| {
                        let t = event_target_value(&ev);
                        edit(&|d| if let Some(r) = d.rules.get_mut(i) {
                            r.matcher = matcher(kind_of(&r.matcher), t.clone());
                        });
                    } />
                <span>"→"</span>
                <input type="text" list="url-category-options" data-testid=format!("url-rule-{i}-category")
                    prop:value=r.category.clone()
                    on:change=move |ev| {
                        let c = event_target_value(&ev).trim().to_owned();
                        // A category picked by its words is stored as its code.
                        let code = KNOWN.iter().find(|(code, zh, en)| *code == c || *zh == c || *en == c)
                            .map_or(c, |(code, ..)| (*code).to_owned());
                        edit(&|d| if let Some(r) = d.rules.get_mut(i) { r.category = code.clone(); });
                    } />
                <span class="hint" data-testid=format!("url-rule-{i}-category-words")>
                    {move || rule().map(|r| category_words(&r.category, lang)).unwrap_or_default()}</span>
                <button type="button" class="small" data-testid=format!("url-rule-{i}-up") disabled={i == 0}
                    on:click=move |_| edit(&|d| if i > 0 && i < d.rules.len() { d.rules.swap(i - 1, i); })>"↑"</button>
                <button type="button" class="small" data-testid=format!("url-rule-{i}-down")
                    on:click=move |_| edit(&|d| if i + 1 < d.rules.len() { d.rules.swap(i, i + 1); })>"↓"</button>
                <button type="button" class="small" data-testid=format!("url-rule-{i}-remove")
                    on:click=move |_| edit(&|d| if i < d.rules.len() { d.rules.remove(i); })>{say(lang, "删除", "Remove")}</button>
            </div>
        }
        .into_any()
    };
    let add_rule = move |_| {
        edit(&|d| {
            let id = fresh_id(d);
            // Empty until filled in: the page says what is missing, nothing matches yet.
            d.rules.push(UrlRule {
                id,
                category: String::new(),
                matcher: UrlMatch::PathPrefix {
                    prefix: String::new(),
                },
            });
        })
    };
    let cell = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    view! {
        <div class="card url-categories" data-testid="url-categories-page">
            <h2>{move || say(lang(), "网址分类", "URL categories")}</h2>
            <p class="hint">{move || say(lang(),
                "访客看的每个页面按这些规则归类（自上而下，第一条符合的规则生效），评分和流程就能按“页面分类”筛选，例如“看过竞品对比页”。",
                "Every page a visitor sees is categorised by these rules (top to bottom, the first that fits wins), so scoring and flows can filter on the page's category, e.g. \"viewed a competitor comparison\".")}</p>
            <Banners builtin=builtin error=error notice=notice prefix="url-categories"
                builtin_words=("正在使用内置规则。修改并保存后，它们就成为本工作区自己的规则。", "These are the built-in rules. Once edited and saved, they become this workspace's own.") />
            <datalist id="url-category-options">
                {move || KNOWN.iter().map(|(code, zh, en)| view! {
                    <option value=*code>{say(lang(), zh, en)}</option>
                }).collect_view()}
            </datalist>
            <section data-testid="url-rules">
                {move || (0..order.with(Vec::len)).map(rule_row).collect_view()}
            </section>
            <p class="actions">
                <button type="button" data-testid="add-url-rule" on:click=add_rule>
                    {move || say(lang(), "添加规则", "Add rule")}</button>
            </p>
            {move || match compiled.get() {
                Some(Err(problems)) => view! {
                    <ul class="error" data-testid="url-categories-problems">
                        {problems.iter().map(|(p, m)| view! { <li>{problem_words(p, m, lang())}</li> }).collect_view()}
                    </ul>
                }.into_any(),
                _ => ().into_any(),
            }}
            <p class="actions">
                <button class="primary" data-testid="save-url-categories"
                    disabled=move || !dirty.get() || !compiled.with(|c| matches!(c, Some(Ok(_))))
                    on:click=move |_| { doc.save(); }>{move || say(lang(), "保存规则", "Save rules")}</button>
                <button data-testid="discard-url-categories" disabled=move || !dirty.get() on:click=move |_| doc.load()>
                    {move || say(lang(), "放弃修改", "Discard changes")}</button>
                <button data-testid="reload-recent-pages" on:click=move |_| load_recent()>
                    {move || say(lang(), "刷新最近页面", "Reload recent pages")}</button>
            </p>
            <DocHistory doc=doc can_edit=Signal::derive(move || session.at_least("builder")) />
            <h3>{move || say(lang(), "最近 100 个页面", "The last 100 pages")}</h3>
            <table data-testid="recent-pages">
                <thead><tr>
                    <th>{move || say(lang(), "页面", "Page")}</th>
                    <th>{move || say(lang(), "标题", "Title")}</th>
                    <th>{move || say(lang(), "记录时的分类（规则）", "Category when recorded (rule)")}</th>
                    <th>{move || say(lang(), "按当前草稿", "With this draft")}</th>
                </tr></thead>
                <tbody>
                    {move || {
                        let lang = lang();
                        recent.get().into_iter().enumerate().map(|(n, p)| {
                            let page = p["path"].as_str().or(p["url"].as_str()).unwrap_or_default().to_owned();
                            let stored = match (p["category"].as_str(), p["rule"].as_str()) {
                                (Some(c), Some(r)) => format!("{}（{r}）", category_words(c, lang)),
                                (Some(c), None) => format!("{}（{}）", category_words(c, lang), say(lang, "来源自带", "from the sender")),
                                _ => "—".to_owned(),
                            };
                            let draft_says = compiled.with(|c| match c {
                                Some(Ok(Compiled(rules))) => rules
                                    .categorise(p["path"].as_str(), p["url"].as_str(), p["title"].as_str())
                                    .map(|x| (x.category, x.rule)),
                                _ => None,
                            });
                            let changes = p["rule"].as_str().is_some() || p["category"].is_null();
                            // A category the sender gave is kept whatever the rules say.
                            let drafted = match &draft_says {
                                _ if !changes => stored.clone(),
                                Some((c, r)) => format!("{}（{r}）", category_words(c, lang)),
                                None => "—".to_owned(),
                            };
                            let differs = changes && draft_says.as_ref().map(|(c, _)| c.as_str()) != p["category"].as_str();
                            view! {
                                <tr data-testid=format!("recent-page-{n}") class:changed=differs>
                                    <td>{page}</td>
                                    <td>{cell(&p["title"])}</td>
                                    <td data-testid=format!("recent-page-{n}-stored")>{stored}</td>
                                    <td data-testid=format!("recent-page-{n}-draft")>{drafted}</td>
                                </tr>
                            }
                        }).collect_view()
                    }}
                </tbody>
            </table>
        </div>
    }
}
