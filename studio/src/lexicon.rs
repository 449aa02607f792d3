//! The signal-lexicon page (信号词库): the phrases that make a purchase signal, by category
//! and meaning (topic, advancing, blocking), and the cue words the detector's rules use
//! (negators, question markers, rhetorical cues, phrases to ignore). Every edit is checked
//! at once with the detector itself (`trellis_model::signals::Detector`, the server's code,
//! in the browser), and a sentence typed in the try-out box shows what the draft finds in
//! it before anything is saved.

use std::sync::Arc;

use leptos::prelude::*;
use trellis_model::signals::{Category, Detector, Lexicon, Model, Polarity, Term};

use crate::Session;
use crate::doc_editor::{Banners, Compiled, DocEditor, DocHistory};
use crate::i18n::{self, Lang, say};

fn polarity_code(p: Polarity) -> &'static str {
    p.as_str()
}

fn polarity_of(code: &str) -> Polarity {
    match code {
        "positive" => Polarity::Positive,
        "negative" => Polarity::Negative,
        _ => Polarity::Neutral,
    }
}

/// What a group of phrases means, in words.
fn meaning(p: Polarity, lang: Lang) -> String {
    match p {
        Polarity::Neutral => say(lang, "话题（说到了）", "Topic (mentioned)"),
        Polarity::Positive => say(lang, "推进（状态向好）", "Advancing (a good state)"),
        Polarity::Negative => say(lang, "受阻（状态变差）", "Blocking (a bad state)"),
    }
}

/// A problem from [`Lexicon::problems`] in words: where, then what.
fn problem_words(pointer: &str, message: &str, lexicon: &Lexicon, lang: Lang) -> String {
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let place = match parts.as_slice() {
        ["terms", i, rest @ ..] => {
            let i: usize = i.parse().unwrap_or(0);
            let category = lexicon
                .terms
                .get(i)
                .map(|t| i18n::signal_category(lang, t.category.as_str()))
                .unwrap_or_default();
            let phrase = match rest {
                ["phrases", j] => j
                    .parse::<usize>()
                    .ok()
                    .and_then(|j| lexicon.terms.get(i)?.phrases.get(j).cloned())
                    .map(|p| format!("「{p}」"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            match lang {
                Lang::Zh => format!("{category}第 {} 组{phrase}：", i + 1),
                Lang::En => format!("{category} group {}{phrase}: ", i + 1),
            }
        }
        [list, j] => {
            let word = list_name(list, lang);
            match lang {
                Lang::Zh => format!("{word}第 {} 个：", j.parse::<usize>().unwrap_or(0) + 1),
                Lang::En => format!("{word} #{}: ", j.parse::<usize>().unwrap_or(0) + 1),
            }
        }
        _ => format!("{pointer}: "),
    };
    let what = match lang {
        Lang::En => message.to_owned(),
        Lang::Zh if message.contains("already listed") => "这个短语已经在别处列出。".to_owned(),
        Lang::Zh if message.contains("empty") => "短语不能为空。".to_owned(),
        Lang::Zh if message.contains("64") => "短语最多 64 个字。".to_owned(),
        Lang::Zh if message.contains("weight") => "强度在 0 到 1 之间。".to_owned(),
        Lang::Zh if message.contains("at least one phrase") => "每组至少要有一个短语。".to_owned(),
        Lang::Zh if message.contains("standalone") => {
            "只有“推进”或“受阻”的状态可以单独成立。".to_owned()
        }
        Lang::Zh => message.to_owned(),
    };
    format!("{place}{what}")
}

fn list_name(list: &str, lang: Lang) -> String {
    match list {
        "negators" => say(lang, "否定词", "Negators"),
        "questions" => say(lang, "疑问标记", "Question markers"),
        "rhetorical" => say(lang, "反问提示", "Rhetorical cues"),
        "ignore" => say(lang, "忽略的短语", "Phrases to ignore"),
        other => other.to_owned(),
    }
}

/// A list of short phrases as chips, each removable, and a field to add one.
#[component]
fn Phrases(
    phrases: Signal<Vec<String>>,
    on_change: Callback<Vec<String>>,
    testid: String,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let new_phrase = RwSignal::new(String::new());
    let prefix = StoredValue::new(testid);
    let add = move || {
        let p = new_phrase.get_untracked().trim().to_owned();
        if !p.is_empty() {
            let mut list = phrases.get_untracked();
            list.push(p);
            on_change.run(list);
        }
        new_phrase.set(String::new());
    };
    view! {
        <div class="chips" data-testid=prefix.get_value()>
            {move || phrases.get().into_iter().enumerate().map(|(j, p)| view! {
                <span class="chip" data-testid=format!("{}-{j}", prefix.get_value())>{p.clone()}
                    <button type="button" class="small" data-testid=format!("{}-remove-{j}", prefix.get_value())
                        on:click=move |_| {
                            let mut list = phrases.get_untracked();
                            if j < list.len() { list.remove(j); }
                            on_change.run(list);
                        }>"×"</button>
                </span>
            }).collect_view()}
            <input type="text" class="short" data-testid=format!("{}-new", prefix.get_value())
                placeholder=move || say(session.lang.get(), "新短语，回车添加", "New phrase, Enter to add")
                prop:value=move || new_phrase.get()
                on:input=move |ev| new_phrase.set(event_target_value(&ev))
                on:keydown=move |ev| if ev.key() == "Enter" { add(); } />
            <button type="button" class="small" data-testid=format!("{}-add", prefix.get_value())
                on:click=move |_| add()>"+"</button>
        </div>
    }
}

#[component]
pub fn LexiconPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let doc = DocEditor::<Lexicon>::new(
        session,
        "/api/v1/signals/lexicon",
        "signal-lexicon",
        |v| v["lexicon"].clone(),
        (
            "已保存：新的消息和通话从现在起按这个词库识别。",
            "Saved: new messages and calls are read with this lexicon from now on.",
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
    let sample = RwSignal::new(String::new());
    // The learned model the server decides with, fetched once: the try-out box reads with
    // the draft lexicon and it, as the server will.
    let model = RwSignal::new(None::<Arc<Model>>);
    {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            if let Ok(text) = crate::api::get_text(&token, "/api/v1/signals/model").await
                && let Ok(m) = Model::read(&text)
            {
                model.set(Some(Arc::new(m)));
            }
        });
    }
    let edit = move |f: &dyn Fn(&mut Lexicon)| doc.edit(f);
    // The draft checked as the server checks it: its problems, or the detector it compiles
    // to (compiled once per edit, shared with the try-out sentence).
    let compiled = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref().map(|l| {
                let problems = l.problems();
                if problems.is_empty() {
                    Detector::new(l.clone())
                        .map(|d| match model.get() {
                            Some(m) => d.with_model(m),
                            None => d,
                        })
                        .map(|d| Compiled(Arc::new(d)))
                        .map_err(|e| e.0)
                } else {
                    Err(problems)
                }
            })
        })
    });
    // What the draft finds in the try-out sentence: with the model, and by the lexicon's
    // rules alone.
    let found = Memo::new(move |_| {
        let text = sample.get();
        if text.trim().is_empty() {
            return (Vec::new(), Vec::new());
        }
        compiled.with(|c| match c {
            Some(Ok(Compiled(det))) => (det.detect(&text), det.detect_by_lexicon(&text)),
            _ => (Vec::new(), Vec::new()),
        })
    });
    let add_term = move |category: Category| {
        edit(&|l| {
            l.terms.push(Term {
                category,
                polarity: Polarity::Positive,
                standalone: false,
                negated: None,
                weight: 1.0,
                phrases: Vec::new(),
            })
        })
    };
    let terms_of = move |category: Category| {
        let lang = lang();
        let indices: Vec<usize> = draft.with(|d| {
            d.as_ref()
                .map(|l| {
                    l.terms
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.category == category)
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default()
        });
        indices
            .into_iter()
            .map(|i| {
                let term = move || draft.with(|d| d.as_ref().and_then(|l| l.terms.get(i).cloned()));
                let polarity = term().map_or(Polarity::Neutral, |t| t.polarity);
                view! {
                    <div class="term" data-testid=format!("term-{i}")>
                        <select data-testid=format!("term-{i}-polarity") prop:value=polarity_code(polarity)
                            on:change=move |ev| {
                                let p = polarity_of(&event_target_value(&ev));
                                edit(&|l| if let Some(t) = l.terms.get_mut(i) {
                                    t.polarity = p;
                                    if p == Polarity::Neutral { t.standalone = false; }
                                });
                            }>
                            {[Polarity::Neutral, Polarity::Positive, Polarity::Negative].into_iter().map(|p| view! {
                                <option value=polarity_code(p)>{meaning(p, lang)}</option>
                            }).collect_view()}
                        </select>
                        <label class="inline">
                            <input type="checkbox" data-testid=format!("term-{i}-standalone")
                                prop:checked=move || term().is_some_and(|t| t.standalone)
                                disabled=move || term().is_none_or(|t| t.polarity == Polarity::Neutral)
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    edit(&|l| if let Some(t) = l.terms.get_mut(i) { t.standalone = on; });
                                } />
                            {say(lang, "单独出现也算", "Counts on its own")}
                        </label>
                        <button type="button" class="small" data-testid=format!("term-{i}-remove")
                            on:click=move |_| edit(&|l| if i < l.terms.len() { l.terms.remove(i); })>
                            {say(lang, "删除这组", "Remove group")}</button>
                        <Phrases phrases=Signal::derive(move || term().map(|t| t.phrases).unwrap_or_default())
                            testid=format!("term-{i}-phrases")
                            on_change=Callback::new(move |list: Vec<String>| edit(&|l| if let Some(t) = l.terms.get_mut(i) { t.phrases = list.clone(); })) />
                    </div>
                }
            })
            .collect_view()
    };
    // The category sections are rebuilt when a group is added or removed, not per phrase.
    let groups = Memo::new(move |_| draft.with(|d| d.as_ref().map(|l| l.terms.len())));
    view! {
        <div class="card lexicon" data-testid="lexicon-page">
            <h2>{move || say(lang(), "信号词库", "Signal lexicon")}</h2>
            <p class="hint">{move || say(lang(),
                "客户说的话里出现这些短语时，识别为购买信号：先说到话题（如“预算”），再看状态是推进（“批了”）还是受阻（“被砍”）。否定词会反转状态，疑问句不算已发生。",
                "Phrases that make a purchase signal in what customers say: a topic (\"budget\") and its state, advancing (\"approved\") or blocking (\"cut\"). Negators flip a state; a question is not a fact.")}</p>
            <Banners builtin=builtin error=error notice=notice prefix="lexicon"
                builtin_words=("正在使用内置词库。修改并保存后，它就成为本工作区自己的词库。", "This is the built-in lexicon. Once edited and saved, it becomes this workspace's own.") />
            <section class="try">
                <h3>{move || say(lang(), "试一试", "Try it")}</h3>
                <textarea data-testid="lexicon-try" rows="2"
                    placeholder=move || say(lang(), "输入一句客户的话，例如：我们的预算已经批了，下个月招标", "Type what a customer said, e.g. our budget is approved, the tender starts next month")
                    prop:value=move || sample.get() on:input=move |ev| sample.set(event_target_value(&ev))></textarea>
                <ul data-testid="lexicon-signals">
                    {move || found.get().0.into_iter().map(|s| {
                        let lang = lang();
                        let because: Vec<String> = s.evidence.iter().map(|e| {
                            let f = e.feature.strip_prefix("lexicon:").map_or_else(
                                || format!("「{}」", e.feature),
                                |rest| format!("{}{}", say(lang, "词库:", "lexicon:"), rest));
                            format!("{f} {:+.2}", e.weight)
                        }).collect();
                        view! {
                            <li data-category=s.category.as_str() data-polarity=s.polarity.as_str()>
                                {format!("{} · {} · 「{}」", i18n::signal_category(lang, s.category.as_str()),
                                    i18n::polarity(lang, s.polarity.as_str()), s.phrase)}
                                {(!because.is_empty()).then(|| view! {
                                    <span class="hint" data-testid="lexicon-evidence">
                                        {format!(" · {}{}", say(lang, "依据 ", "because of "), because.join(say(lang, "、", ", ").as_str()))}
                                    </span>
                                })}
                            </li>
                        }
                    }).collect_view()}
                </ul>
                {move || (!sample.with(|s| s.trim().is_empty()) && found.with(|f| f.0.is_empty())).then(|| view! {
                    <p class="hint" data-testid="lexicon-no-signal">{say(lang(), "没有识别到信号。", "No signal found.")}</p>
                })}
                {move || (model.with(Option::is_some) && !sample.with(|s| s.trim().is_empty())).then(|| {
                    let lang = lang();
                    let rules: Vec<String> = found.get().1.into_iter().map(|s| format!("{} · {} · 「{}」",
                        i18n::signal_category(lang, s.category.as_str()), i18n::polarity(lang, s.polarity.as_str()), s.phrase)).collect();
                    view! {
                        <p class="hint" data-testid="lexicon-rules-only">
                            {say(lang, "仅按词库规则：", "By the lexicon's rules alone: ")}
                            {if rules.is_empty() { say(lang, "无", "nothing") } else { rules.join("；") }}
                        </p>
                    }
                })}
            </section>
            {move || match compiled.get() {
                Some(Err(problems)) => {
                    let lang = lang();
                    let words: Vec<String> = draft.with_untracked(|d| d.as_ref().map(|l| problems.iter()
                        .map(|(p, m)| problem_words(p, m, l, lang)).collect()).unwrap_or_default());
                    view! {
                        <ul class="error" data-testid="lexicon-problems">
                            {words.into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}
                        </ul>
                    }.into_any()
                }
                _ => ().into_any(),
            }}
            <p class="actions">
                <button class="primary" data-testid="save-lexicon"
                    disabled=move || !dirty.get() || !compiled.with(|c| matches!(c, Some(Ok(_))))
                    on:click=move |_| doc.save()>{move || say(lang(), "保存词库", "Save lexicon")}</button>
                <button data-testid="discard-lexicon" disabled=move || !dirty.get() on:click=move |_| doc.load()>
                    {move || say(lang(), "放弃修改", "Discard changes")}</button>
                <button data-testid="builtin-lexicon" on:click=move |_| {
                    // The built-in lexicon comes from the server, not the studio's download.
                    let token = session.token.get_untracked().unwrap_or_default();
                    leptos::task::spawn_local(async move {
                        match crate::api::get_json(&token, "/api/v1/signals/lexicon/builtin").await {
                            Ok(v) => match serde_json::from_value::<Lexicon>(v["lexicon"].clone()) {
                                Ok(builtin) => edit(&|l| *l = builtin.clone()),
                                Err(e) => error.set(Some(e.to_string())),
                            },
                            Err(crate::api::ApiError::Unauthorized) => session.sign_out(),
                            Err(crate::api::ApiError::Other(m)) => error.set(Some(m)),
                        }
                    });
                }>
                    {move || say(lang(), "恢复为内置词库", "Back to the built-in lexicon")}</button>
            </p>
            <DocHistory doc=doc can_edit=Signal::derive(move || session.at_least("builder")) />
            {move || groups.get().map(|_| Category::ALL.into_iter().map(|c| {
                let lang = lang();
                view! {
                    <section class="category" data-testid=format!("category-{}", c.as_str())>
                        <h3>{i18n::signal_category(lang, c.as_str())}</h3>
                        {terms_of(c)}
                        <button type="button" class="small" data-testid=format!("add-term-{}", c.as_str())
                            on:click=move |_| add_term(c)>{say(lang, "+ 新的一组短语", "+ A new group of phrases")}</button>
                    </section>
                }
            }).collect_view())}
            <section class="cues">
                <h3>{move || say(lang(), "规则用到的提示词", "Cue words the rules use")}</h3>
                {["negators", "questions", "rhetorical", "ignore"].into_iter().map(|list| view! {
                    <div>
                        <h4>{move || list_name(list, lang())}</h4>
                        <Phrases
                            phrases=Signal::derive(move || draft.with(|d| d.as_ref().map(|l| cue_list(l, list).clone()).unwrap_or_default()))
                            testid=format!("cue-{list}")
                            on_change=Callback::new(move |v: Vec<String>| edit(&|l| *cue_list_mut(l, list) = v.clone())) />
                    </div>
                }).collect_view()}
            </section>
        </div>
    }
}

fn cue_list<'a>(l: &'a Lexicon, list: &str) -> &'a Vec<String> {
    match list {
        "negators" => &l.negators,
        "questions" => &l.questions,
        "rhetorical" => &l.rhetorical,
        _ => &l.ignore,
    }
}

fn cue_list_mut<'a>(l: &'a mut Lexicon, list: &str) -> &'a mut Vec<String> {
    match list {
        "negators" => &mut l.negators,
        "questions" => &mut l.questions,
        "rhetorical" => &mut l.rhetorical,
        _ => &mut l.ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_say_where_and_what() {
        let mut l = Lexicon::builtin();
        let first = l.terms[0].phrases[0].clone();
        l.terms[1].phrases.push(first.clone());
        let problems = l.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (p, m) = &problems[0];
        let words = problem_words(p, m, &l, Lang::Zh);
        assert!(words.starts_with("预算第 2 组「"), "{words}");
        assert!(words.ends_with("这个短语已经在别处列出。"), "{words}");
        assert_eq!(polarity_of("negative"), Polarity::Negative);
        assert_eq!(list_name("negators", Lang::Zh), "否定词");
    }
}
