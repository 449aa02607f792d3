//! Learning from history in the page: the outcome is picked from the leads' real
//! attributes (those with two values, like `Converted` 0/1, first), and "suggest weights"
//! fits a model to the leads with an outcome, showing its progress while the server fits
//! (`GET /api/v1/scoring/suggest/progress`), then what it got: held-out AUC, the features
//! it used, the time it took. The result is saved as a draft version for review; nothing is
//! published.

use std::collections::BTreeSet;

use leptos::prelude::*;
use serde_json::{Value, json};

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::{Lang, say};

/// A value an outcome attribute can hold (what the server's `outcome_value` reads).
fn outcome_like(v: &Value) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::Number(n) => n.as_f64().is_some_and(|x| x == 0.0 || x == 1.0),
        Value::String(s) => matches!(
            s.trim().to_lowercase().as_str(),
            "0" | "1"
                | "true"
                | "false"
                | "yes"
                | "no"
                | "y"
                | "n"
                | "converted"
                | "lost"
                | "won"
                | "是"
                | "否"
                | "成交"
                | "未成交"
        ),
        _ => false,
    }
}

/// An attribute named like an outcome: `converted`, `won`, `成交`, `转化`…
pub fn named_like_outcome(name: &str) -> bool {
    let n = name.to_lowercase();
    ["convert", "won", "outcome", "成交", "转化", "赢单"]
        .iter()
        .any(|k| n.contains(k))
}

/// The attributes that look like an outcome (every sample a yes/no), those named like one
/// (`converted`, `成交`, `won`) first, then every other attribute.
pub fn outcome_candidates(catalog: &Value) -> Vec<String> {
    let attributes = crate::picker::lead_attributes(catalog);
    let mut binary: Vec<&String> = attributes
        .iter()
        .filter(|(_, samples)| !samples.is_empty() && samples.iter().all(outcome_like))
        .map(|(n, _)| n)
        .collect();
    binary.sort_by_key(|n| !named_like_outcome(n));
    let mut out: Vec<String> = binary.into_iter().cloned().collect();
    for (n, _) in &attributes {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// The outcome attribute, picked from the leads' attributes.
#[component]
pub fn OutcomePicker(outcome: RwSignal<String>, catalog: Signal<Value>) -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        <select id="outcome" data-testid="backtest-outcome" prop:value=move || outcome.get()
            on:change=move |ev| outcome.set(event_target_value(&ev))>
            {move || {
                let mut names = catalog.with(outcome_candidates);
                let current = outcome.get();
                if !current.is_empty() && !names.contains(&current) {
                    names.insert(0, current);
                }
                let empty = names.is_empty();
                view! {
                    {empty.then(|| view! {
                        <option value="">{say(session.lang.get(), "还没有线索属性：先导入线索", "No lead attributes yet: import leads first")}</option>
                    })}
                    {names.into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                }
            }}
        </select>
    }
}

/// The step of a suggestion, in words.
fn step_words(step: &str, lang: Lang) -> String {
    match step {
        "regularisation" => say(lang, "正在选择正则化强度", "Choosing the regularisation"),
        "pairs" => say(lang, "正在挑选属性组合", "Choosing pairs of attributes"),
        "fit" => say(lang, "正在拟合最终模型", "Fitting the model"),
        "backtest" => say(lang, "正在回测", "Backtesting"),
        _ => say(lang, "正在读取线索", "Reading leads"),
    }
}

/// The progress line and bar of a running suggestion (`GET …/suggest/progress`).
fn progress_view(status: &Value, lang: Lang) -> impl IntoView + use<> {
    let (done, total) = (
        status["progress"]["done"].as_u64().unwrap_or(0),
        status["progress"]["total"].as_u64().unwrap_or(0),
    );
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    let leads = status["leads"].as_u64().unwrap_or(0);
    let step = step_words(status["progress"]["step"].as_str().unwrap_or(""), lang);
    let line = match lang {
        Lang::Zh if total > 0 => format!("{step}（{done}/{total}），{leads} 条有结果的线索"),
        Lang::En if total > 0 => format!("{step} ({done}/{total}), {leads} leads with an outcome"),
        _ => step,
    };
    view! {
        <p class="rescore" data-testid="suggest-progress" data-done=done.to_string() data-total=total.to_string()>
            <progress max="100" value=pct.to_string()></progress>" "{line}
        </p>
    }
}

/// What the suggestion got, in words.
fn result_words(r: &Value, seconds: f64, lang: Lang) -> String {
    let leads = r["train_leads"].as_u64().unwrap_or(0) + r["holdout_leads"].as_u64().unwrap_or(0);
    let auc = r["holdout"]["auc"]
        .as_f64()
        .or_else(|| r["train"]["auc"].as_f64())
        .unwrap_or(0.5);
    let used = r["used"].as_array().map_or(0, Vec::len);
    let version = &r["version"];
    match lang {
        Lang::Zh => format!(
            "用 {leads} 条线索的历史生成了建议（留出线索上 AUC {auc:.3}，{used} 个特征），已存为草稿版本 v{version}，耗时 {seconds:.1} 秒。检查后再发布。"
        ),
        Lang::En => format!(
            "Suggested from {leads} leads' history (held-out AUC {auc:.3}, {used} features), saved as draft v{version} in {seconds:.1} s. Review it, then publish."
        ),
    }
}

/// "Suggest weights": attributes to leave out, the button, progress, the result.
#[component]
pub fn SuggestPanel(
    outcome: RwSignal<String>,
    catalog: Signal<Value>,
    /// Called when a suggestion was saved (the page reloads the model).
    on_done: Callback<()>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let excluded = RwSignal::new(BTreeSet::<String>::new());
    let running = RwSignal::new(false);
    let status = RwSignal::new(None::<Value>);
    let result = RwSignal::new(None::<(Value, f64)>);
    let error = RwSignal::new(None::<String>);
    let start = move |_| {
        let target = outcome.get_untracked();
        if target.is_empty() || running.get_untracked() {
            return;
        }
        running.set(true);
        status.set(None);
        result.set(None);
        error.set(None);
        let token = session.token.get_untracked().unwrap_or_default();
        let started = js_sys::Date::now();
        // Polls the progress while the request runs.
        let poll_token = token.clone();
        leptos::task::spawn_local(async move {
            while running.get_untracked() {
                crate::sleep(300).await;
                if let Ok(s) = api::get_json(&poll_token, "/api/v1/scoring/suggest/progress").await
                    && running.get_untracked()
                    && s["running"].as_bool() == Some(true)
                {
                    status.set(Some(s));
                }
            }
        });
        leptos::task::spawn_local(async move {
            let body = json!({
                "outcome": target,
                "exclude": excluded.get_untracked().into_iter().collect::<Vec<_>>(),
            });
            let r = api::post_json(&token, "/api/v1/scoring/suggest", &body).await;
            running.set(false);
            match r {
                Ok(v) => {
                    result.set(Some((v, (js_sys::Date::now() - started) / 1000.0)));
                    on_done.run(());
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    view! {
        <div class="suggest" data-testid="suggest-panel">
            <h4>{move || say(lang(), "根据历史建议权重", "Suggest weights from history")}</h4>
            <p class="hint">{move || say(lang(),
                "用已有结果的线索（例如是否成交）拟合评分模型：每个属性的权重和每个取值的得分都由数据决定，结果存为草稿，不会直接发布。",
                "Fits a scoring model to the leads whose outcome is known: the data decides each attribute's weight and each value's points. The result is saved as a draft, not published.")}</p>
            <details data-testid="suggest-exclude">
                <summary>{move || say(lang(), "不参与建议的属性（例如成交后才填写、会泄露结果的字段）", "Attributes to leave out (e.g. filled in after the sale: they leak the outcome)")}</summary>
                <div class="chips">
                    {move || {
                        let target = outcome.get();
                        crate::picker::lead_attributes(&catalog.get()).into_iter()
                            .filter(|(n, _)| *n != target)
                            .map(|(n, _)| {
                                let n2 = n.clone();
                                view! {
                                    <label class="chip">
                                        <input type="checkbox" data-testid=format!("suggest-exclude-{n}")
                                            prop:checked=move || excluded.with(|e| e.contains(&n2))
                                            on:change={
                                                let n = n.clone();
                                                move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    excluded.update(|e| { if on { e.insert(n.clone()); } else { e.remove(&n); } });
                                                }
                                            } />
                                        {n.clone()}
                                    </label>
                                }
                            }).collect_view()
                    }}
                </div>
            </details>
            <p>
                <button class="primary" data-testid="suggest-weights"
                    disabled=move || running.get() || outcome.with(String::is_empty)
                    on:click=start>{move || if running.get() {
                        say(lang(), "正在计算…", "Working…")
                    } else {
                        say(lang(), "建议权重", "Suggest weights")
                    }}</button>
            </p>
            {move || running.get().then(|| match status.get() {
                Some(s) => progress_view(&s, lang()).into_any(),
                None => view! {
                    <p class="rescore" data-testid="suggest-progress"><progress></progress>" "
                        {say(lang(), "正在读取线索…", "Reading leads…")}</p>
                }.into_any(),
            })}
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="suggest-error">{e}</p> })}
            {move || result.get().map(|(r, seconds)| view! {
                <p class="banner" data-testid="suggest-result">{result_words(&r, seconds, lang())}</p>
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_like_attributes_come_first_and_named_ones_before_them() {
        let catalog = json!({"lead_attributes": [
            {"path": "Lead Source", "samples": ["Google", "Direct Traffic"]},
            {"path": "Do Not Email", "samples": ["No", "Yes"]},
            {"path": "Converted", "samples": [0, 1]},
            {"path": "TotalVisits", "samples": [0, 5, 1]},
        ]});
        assert_eq!(
            outcome_candidates(&catalog),
            vec!["Converted", "Do Not Email", "Lead Source", "TotalVisits"]
        );
    }

    #[test]
    fn a_result_says_what_it_got_in_words() {
        let r = json!({"version": 3, "train_leads": 80, "holdout_leads": 20,
            "holdout": {"auc": 0.9012}, "used": ["a", "b"]});
        let zh = result_words(&r, 2.34, Lang::Zh);
        assert!(
            zh.contains("100 条线索") && zh.contains("AUC 0.901") && zh.contains("v3"),
            "{zh}"
        );
        assert_eq!(
            step_words("pairs", Lang::En),
            "Choosing pairs of attributes"
        );
    }
}
