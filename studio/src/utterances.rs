//! What a lead said, as the detector read it, on the lead card (客户原话): each utterance
//! with the signals found in it and why, and a form to correct a misreading — the
//! categories it speaks about and whether budget and timeline advance or block. A
//! correction is a label (`POST /api/v1/signals/labels`) that feeds the next training run.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde_json::{Value, json};
use trellis_model::signals::{Category, Polarity};

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::{self, say};

/// The category → polarity a list of signals (JSON) amounts to.
fn read_of(signals: &Value) -> BTreeMap<Category, Polarity> {
    let list: Vec<trellis_model::signals::Signal> =
        serde_json::from_value(signals.clone()).unwrap_or_default();
    trellis_model::signals::polarity_by_category(&list)
}

fn read_of_label(label: &Value) -> BTreeMap<Category, Polarity> {
    let categories: Vec<Category> =
        serde_json::from_value(label["categories"].clone()).unwrap_or_default();
    let polarity: BTreeMap<Category, Polarity> =
        serde_json::from_value(label["polarity"].clone()).unwrap_or_default();
    categories
        .into_iter()
        .map(|c| (c, polarity.get(&c).copied().unwrap_or_default()))
        .collect()
}

/// A reading in words: 预算·推进、竞品.
fn words(read: &BTreeMap<Category, Polarity>, lang: i18n::Lang) -> String {
    if read.is_empty() {
        return say(lang, "无信号", "no signal");
    }
    read.iter()
        .map(|(c, p)| match p {
            Polarity::Neutral => i18n::signal_category(lang, c.as_str()),
            _ => format!(
                "{}·{}",
                i18n::signal_category(lang, c.as_str()),
                i18n::polarity(lang, p.as_str())
            ),
        })
        .collect::<Vec<_>>()
        .join(say(lang, "、", ", ").as_str())
}

#[component]
pub fn Utterances(lead: String, items: Vec<Value>) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    view! {
        <h3>{move || say(lang(), "客户原话", "What the customer said")}</h3>
        <ul data-testid="lead-utterances" class="utterances">
            {if items.is_empty() {
                view! { <li class="hint">{move || say(lang(), "还没有识别过的原话。", "No utterance read yet.")}</li> }.into_any()
            } else {
                items.into_iter().enumerate().map(|(i, u)| view! {
                    <Utterance lead=lead.clone() item=u index=i />
                }).collect_view().into_any()
            }}
        </ul>
    }
}

#[component]
fn Utterance(lead: String, item: Value, index: usize) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let text = item["text"].as_str().unwrap_or_default().to_owned();
    let found = read_of(&item["signals"]);
    let labelled = RwSignal::new((!item["label"].is_null()).then(|| read_of_label(&item["label"])));
    let evidence: Vec<String> = item["signals"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["evidence"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["feature"].as_str().map(str::to_owned))
        .filter(|f| !f.starts_with("lexicon:"))
        .take(6)
        .collect();
    let open = RwSignal::new(false);
    let draft = RwSignal::new(found.clone());
    let error = RwSignal::new(None::<String>);
    let found_words = found.clone();
    let save = {
        let (text, lead) = (text.clone(), lead.clone());
        move |_| {
            let read = draft.get_untracked();
            let categories: Vec<Category> = read.keys().copied().collect();
            let polarity: BTreeMap<Category, Polarity> = read
                .iter()
                .filter(|(c, p)| {
                    **p != Polarity::Neutral && matches!(c, Category::Budget | Category::Timeline)
                })
                .map(|(c, p)| (*c, *p))
                .collect();
            let body = json!({ "text": text, "categories": categories, "polarity": polarity, "lead": lead });
            let token = session.token.get_untracked().unwrap_or_default();
            leptos::task::spawn_local(async move {
                match api::post_json(&token, "/api/v1/signals/labels", &body).await {
                    Ok(_) => {
                        labelled.set(Some(read));
                        open.set(false);
                        error.set(None);
                    }
                    Err(ApiError::Unauthorized) => session.sign_out(),
                    Err(ApiError::Other(m)) => error.set(Some(m)),
                }
            });
        }
    };
    view! {
        <li data-testid=format!("utterance-{index}")>
            <q>{text}</q>
            <p class="hint">
                {move || say(lang(), "识别为：", "Read as: ")}
                <span data-testid=format!("utterance-{index}-read")>{
                    let f = found_words.clone();
                    move || words(&f, lang())
                }</span>
                {(!evidence.is_empty()).then(|| {
                    let e = evidence.iter().map(|f| format!("「{f}」")).collect::<String>();
                    view! { " · "{move || say(lang(), "依据", "because of")}" "{e} }
                })}
            </p>
            {move || labelled.get().map(|l| view! {
                <p class="notice" data-testid=format!("utterance-{index}-label")>
                    {say(lang(), "已纠正为：", "Corrected to: ")}{words(&l, lang())}
                    {say(lang(), "（下次训练时采用）", " (used in the next training run)")}
                </p>
            })}
            <button type="button" class="small" data-testid=format!("utterance-{index}-correct")
                on:click=move |_| open.update(|o| *o = !*o)>
                {move || say(lang(), "识别有误？纠正", "Misread? Correct it")}</button>
            {move || open.get().then(|| view! {
                <div class="label-form" data-testid=format!("utterance-{index}-form")>
                    {Category::ALL.into_iter().map(|c| {
                        let polar = matches!(c, Category::Budget | Category::Timeline);
                        view! {
                            <div class="label-row">
                                <label class="inline">
                                    <input type="checkbox" data-testid=format!("label-{}", c.as_str())
                                        prop:checked=move || draft.with(|d| d.contains_key(&c))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            draft.update(|d| { if on { d.entry(c).or_default(); } else { d.remove(&c); } });
                                        } />
                                    {i18n::signal_category(lang(), c.as_str())}
                                </label>
                                {polar.then(|| view! {
                                    <select data-testid=format!("label-{}-polarity", c.as_str())
                                        disabled=move || draft.with(|d| !d.contains_key(&c))
                                        prop:value=move || draft.with(|d| d.get(&c).copied().unwrap_or_default().as_str())
                                        on:change=move |ev| {
                                            let p = match event_target_value(&ev).as_str() {
                                                "positive" => Polarity::Positive,
                                                "negative" => Polarity::Negative,
                                                _ => Polarity::Neutral,
                                            };
                                            draft.update(|d| { d.insert(c, p); });
                                        }>
                                        {[Polarity::Neutral, Polarity::Positive, Polarity::Negative].into_iter().map(|p| view! {
                                            <option value=p.as_str()>{i18n::polarity(lang(), p.as_str())}</option>
                                        }).collect_view()}
                                    </select>
                                })}
                            </div>
                        }
                    }).collect_view()}
                    <button type="button" class="primary small" data-testid=format!("utterance-{index}-save")
                        on:click=save.clone()>{say(lang(), "保存纠正", "Save correction")}</button>
                    {move || error.get().map(|m| view! { <p class="error">{m}</p> })}
                </div>
            })}
        </li>
    }
}
