//! The scoring page. Each feature of the model has a weight slider; moving one rescales
//! the other weights (they always sum to 100) and rescores a sample of leads right here in
//! the browser with `trellis-model`, the same code the server scores with, so the tier
//! moves show while the slider moves. Below: the diff against the published version, a
//! backtest of the draft (ROC and lift charts), save, publish with the rescore's progress,
//! and rollback to any earlier version.

mod feature;
pub(crate) mod suggest;

use leptos::prelude::*;
use serde_json::{Value, json};
use trellis_model::scoring::{
    BehaviourState, CompiledModel, Feature, Rating, ScoringModel, Source, diff,
};

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::{self, Lang, Text, say};
use feature::{FeatureEditor, coverage_warning, new_feature};

/// Leads the page rescores in the browser.
const SAMPLE_SIZE: u64 = 200;
/// Sample rows shown (tier moves first).
const SAMPLE_ROWS: usize = 20;

/// A lead as the page rescores it.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    id: String,
    name: String,
    attributes: Value,
    state: BehaviourState,
    stored_score: f64,
    stored_tier: String,
}

fn sample_of(v: &Value) -> Sample {
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    Sample {
        name: v["name"].as_str().map_or_else(|| id.clone(), str::to_owned),
        id,
        attributes: v["attributes"].clone(),
        state: serde_json::from_value(v["state"].clone()).unwrap_or_default(),
        stored_score: v["score"].as_f64().unwrap_or(0.0),
        stored_tier: v["tier"].as_str().unwrap_or("cold").to_owned(),
    }
}

/// Each sample's rating under `model`, or `None` when the model does not compile.
fn rate_all(model: &ScoringModel, samples: &[Sample], now: i64) -> Option<Vec<Rating>> {
    let compiled = CompiledModel::new(model.clone()).ok()?;
    Some(
        samples
            .iter()
            .map(|s| compiled.rate(&s.attributes, &s.state, now))
            .collect(),
    )
}

/// A 404 from the API: there is no model yet.
fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::Other(m) if m.starts_with("404"))
}

/// Everything the page loads.
#[derive(Clone, Debug)]
struct Loaded {
    head: Value,
    doc: ScoringModel,
    published: Option<(i64, ScoringModel)>,
    versions: Vec<Value>,
}

async fn load_model(token: &str) -> Result<Option<Loaded>, ApiError> {
    let v = match api::get_json(token, "/api/v1/scoring/model").await {
        Ok(v) => v,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let doc: ScoringModel =
        serde_json::from_value(v["doc"].clone()).map_err(|e| ApiError::Other(e.to_string()))?;
    let latest = v["latest_version"].as_i64().unwrap_or(0);
    let published = match v["published_version"].as_i64() {
        Some(n) if n == latest => Some((n, doc.clone())),
        Some(n) => {
            let p = api::get_json(token, &format!("/api/v1/scoring/model/versions/{n}")).await?;
            serde_json::from_value(p["doc"].clone())
                .ok()
                .map(|d| (n, d))
        }
        None => None,
    };
    let versions = api::get_json(token, "/api/v1/scoring/model/versions")
        .await?
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(Some(Loaded {
        head: v,
        doc,
        published,
        versions,
    }))
}

async fn load_samples(token: &str) -> Result<Vec<Sample>, ApiError> {
    let v = api::get_json(
        token,
        &format!("/api/v1/leads?per_page={SAMPLE_SIZE}&with_state=true"),
    )
    .await?;
    Ok(v["leads"]
        .as_array()
        .map(|a| a.iter().map(sample_of).collect())
        .unwrap_or_default())
}

#[component]
pub fn ScoringPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let loaded = RwSignal::new(None::<Loaded>);
    let missing = RwSignal::new(false);
    let draft = RwSignal::new(None::<ScoringModel>);
    let dirty = RwSignal::new(false);
    let samples = RwSignal::new(Vec::<Sample>::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let backtest = RwSignal::new(None::<Value>);
    // The outcome attribute: chosen from the leads' real attributes once they are known.
    let outcome = RwSignal::new(String::new());
    // The event catalog: lead attributes and events, for the pickers.
    let catalog = RwSignal::new(Value::Null);
    // What data each feature of the draft matches (`POST /api/v1/scoring/coverage`).
    let coverage = RwSignal::new(None::<Value>);
    // The feature whose editor is open.
    let open = RwSignal::new(None::<usize>);
    // Scores decay with time: both sides of a comparison are taken at the same instant.
    let now = RwSignal::new(js_sys::Date::now() as i64);

    let fail = move |e: ApiError| match e {
        ApiError::Unauthorized => session.sign_out(),
        ApiError::Other(m) => error.set(Some(m)),
    };
    let load_sample = move |t: String| async move {
        match load_samples(&t).await {
            Ok(s) => samples.set(s),
            Err(e) => fail(e),
        }
        now.set(js_sys::Date::now() as i64);
    };
    let reload = move || {
        leptos::task::spawn_local(async move {
            let t = token();
            match load_model(&t).await {
                Ok(Some(l)) => {
                    missing.set(false);
                    draft.set(Some(l.doc.clone()));
                    dirty.set(false);
                    loaded.set(Some(l));
                }
                Ok(None) => missing.set(true),
                Err(e) => fail(e),
            }
            load_sample(t).await;
        });
    };
    reload();
    leptos::task::spawn_local(async move {
        match api::get_json(&token(), "/api/v1/event-catalog").await {
            Ok(c) => {
                if let Some(first) = suggest::outcome_candidates(&c).into_iter().next()
                    && outcome.get_untracked().is_empty()
                {
                    outcome.set(first);
                }
                catalog.set(c);
            }
            Err(e) => fail(e),
        }
    });

    // Coverage is checked again when what the features read or how they give points
    // changes, not when a weight moves (a slider stays request-free), half a second after
    // the last change.
    // What coverage depends on: what each feature reads and how it turns it into points,
    // not the weights (a slider move sends no request).
    let coverage_key = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref().map(|d| {
                let reads = d
                    .features
                    .iter()
                    .map(|f| (f.source.clone(), f.transform.clone()))
                    .collect::<Vec<_>>();
                // A draft becoming valid is checked too.
                (reads, d.problems().is_empty())
            })
        })
    });
    let coverage_seq = StoredValue::new(0u32);
    Effect::new(move |_| {
        if coverage_key.with(Option::is_none) {
            return;
        }
        let Some(full) = draft.get_untracked() else {
            return;
        };
        if !full.problems().is_empty() {
            return;
        }
        let n = coverage_seq.get_value().wrapping_add(1);
        coverage_seq.set_value(n);
        leptos::task::spawn_local(async move {
            crate::sleep(500).await;
            if coverage_seq.get_value() != n {
                return;
            }
            let body = json!({ "doc": full });
            match api::post_json(&token(), "/api/v1/scoring/coverage", &body).await {
                Ok(v) if coverage_seq.get_value() == n => coverage.set(Some(v)),
                Ok(_) => {}
                Err(ApiError::Unauthorized) => session.sign_out(),
                // A draft the server refuses shows its problems already.
                Err(ApiError::Other(_)) => coverage.set(None),
            }
        });
    });
    let coverage_of = move |i: usize| -> Option<Value> {
        coverage.with(|c| c.as_ref().and_then(|c| c["features"].get(i).cloned()))
    };
    let feature_at = move |i: usize| -> Option<Feature> {
        draft.with(|d| d.as_ref().and_then(|d| d.features.get(i).cloned()))
    };
    // The features' ids: the list is rebuilt when a feature is added or removed, while
    // weights, labels and warnings update in place.
    let ids = Memo::new(move |_| {
        draft.with(|d| {
            d.as_ref()
                .map(|d| d.features.iter().map(|f| f.id.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let add_feature = move |behaviour: bool| {
        let c = catalog.get_untracked();
        draft.update(|d| {
            if let Some(d) = d {
                let f = new_feature(d, &c, behaviour);
                open.set(Some(d.add_feature(f)));
            }
        });
        dirty.set(true);
    };
    let remove_feature = move |i: usize| {
        open.set(None);
        draft.update(|d| {
            if let Some(d) = d {
                d.remove_feature(i);
            }
        });
        dirty.set(true);
    };
    let warnings = Memo::new(move |_| {
        let lang = session.lang.get();
        draft.with(|d| {
            let Some(d) = d else { return 0 };
            d.features
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    coverage_of(*i)
                        .filter(|c| c["feature"] == f.id.as_str())
                        .and_then(|c| coverage_warning(f, &c, lang))
                        .is_some()
                })
                .count()
        })
    });

    // The comparison: the published model's ratings (or the stored ones) against the
    // draft's, both computed here.
    let baseline = Memo::new(move |_| {
        let list = samples.get();
        let published = loaded.with(|l| l.as_ref().and_then(|l| l.published.clone()));
        match published.and_then(|(_, m)| rate_all(&m, &list, now.get())) {
            Some(r) => r
                .into_iter()
                .map(|r| (r.score, r.tier.as_str().to_owned()))
                .collect::<Vec<_>>(),
            None => list
                .iter()
                .map(|s| (s.stored_score, s.stored_tier.clone()))
                .collect(),
        }
    });
    let rated = Memo::new(move |_| {
        let list = samples.get();
        draft.with(|d| d.as_ref().and_then(|m| rate_all(m, &list, now.get())))
    });
    let problems = Memo::new(move |_| {
        draft.with(|d| d.as_ref().map(ScoringModel::problems).unwrap_or_default())
    });

    // Rows to show: leads whose tier moves first, then the rest, up to SAMPLE_ROWS.
    let rows = Memo::new(move |_| {
        let list = samples.get();
        let base = baseline.get();
        let Some(rated) = rated.get() else {
            return Vec::new();
        };
        let mut rows: Vec<(Sample, f64, String, f64, String)> = list
            .into_iter()
            .zip(base)
            .zip(rated)
            .map(|((s, (bs, bt)), r)| (s, bs, bt, r.score, r.tier.as_str().to_owned()))
            .collect();
        rows.sort_by_key(|r| r.2 == r.4);
        rows.truncate(SAMPLE_ROWS);
        rows
    });
    let moves = Memo::new(move |_| {
        let base = baseline.get();
        rated.get().map_or(0, |r| {
            base.iter()
                .zip(r)
                .filter(|((_, bt), r)| bt != r.tier.as_str())
                .count()
        })
    });

    // A publish waiting for confirmation: the version and what publishing it would do.
    let pending = RwSignal::new(None::<(i64, Value)>);
    let save = move |publish: bool| {
        let Some(doc) = draft.get_untracked() else {
            return;
        };
        let base = loaded.with_untracked(|l| {
            l.as_ref()
                .and_then(|l| l.head["latest_version"].as_i64())
                .unwrap_or(0)
        });
        let was_dirty = dirty.get_untracked();
        busy.set(true);
        leptos::task::spawn_local(async move {
            let t = token();
            let result = async {
                let version = if was_dirty || base == 0 {
                    let body = json!({ "doc": doc, "base_version": base, "message": "studio" });
                    api::put_json(&t, "/api/v1/scoring/model", &body).await?["version"]
                        .as_i64()
                        .unwrap_or(base + 1)
                } else {
                    base
                };
                // A publish shows what it will do first (see `confirm_publish`).
                if publish {
                    let impact = api::get_json(
                        &t,
                        &format!("/api/v1/scoring/model/impact?version={version}"),
                    )
                    .await?;
                    pending.set(Some((version, impact)));
                }
                Ok::<_, ApiError>(())
            }
            .await;
            match result {
                Ok(()) => error.set(None),
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
            busy.set(false);
            if !publish {
                reload();
            }
        });
    };
    // Publishes the version the impact was shown for; a backfill starts no flow.
    let confirm_publish = move |backfill: bool| {
        let Some((version, _)) = pending.get_untracked() else {
            return;
        };
        pending.set(None);
        busy.set(true);
        leptos::task::spawn_local(async move {
            let r = api::post_json(
                &token(),
                "/api/v1/scoring/model/publish",
                &json!({ "version": version, "backfill": backfill }),
            )
            .await;
            match r {
                Ok(_) => error.set(None),
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
            busy.set(false);
            reload();
        });
    };
    let rollback = move |version: i64| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            let r = api::post_json(
                &token(),
                "/api/v1/scoring/model/rollback",
                &json!({ "version": version }),
            )
            .await;
            if let Err(ApiError::Other(m)) = r {
                error.set(Some(m));
            }
            busy.set(false);
            reload();
        });
    };
    let run_backtest = move |_| {
        let Some(doc) = draft.get_untracked() else {
            return;
        };
        busy.set(true);
        leptos::task::spawn_local(async move {
            let body = json!({ "outcome": outcome.get_untracked(), "doc": doc });
            match api::post_json(&token(), "/api/v1/scoring/backtest", &body).await {
                Ok(v) => {
                    backtest.set(Some(v["backtest"].clone()));
                    error.set(None);
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => {
                    backtest.set(None);
                    error.set(Some(m));
                }
            }
            busy.set(false);
        });
    };
    let create_starter = move |_| {
        leptos::task::spawn_local(async move {
            let body =
                json!({ "doc": ScoringModel::starter(), "base_version": 0, "message": "starter" });
            if let Err(ApiError::Other(m)) =
                api::put_json(&token(), "/api/v1/scoring/model", &body).await
            {
                error.set(Some(m));
            }
            reload();
        });
    };

    // While a rescore runs, poll its progress (the model's head only: a draft being edited
    // meanwhile stays); once it finishes, the samples are reloaded with their new state.
    Effect::new(move |_| {
        let running = loaded.with(|l| {
            l.as_ref().is_some_and(|l| {
                l.head["rescore"].is_object() && l.head["rescore"]["finished_at"].is_null()
            })
        });
        if running {
            leptos::task::spawn_local(async move {
                crate::sleep(500).await;
                let t = token();
                match api::get_json(&t, "/api/v1/scoring/model").await {
                    Ok(head) => {
                        let finished = !head["rescore"]["finished_at"].is_null();
                        loaded.update(|l| {
                            if let Some(l) = l {
                                l.head = head;
                            }
                        });
                        if finished {
                            load_sample(t).await;
                        }
                    }
                    Err(e) => fail(e),
                }
            });
        }
    });

    let lang = move || session.lang.get();
    view! {
        <div class="card scoring" data-testid="scoring-page">
            <h2>{move || session.t(Text::ScoringModel)}</h2>
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="scoring-error">{e}</p> })}
            <Show when=move || missing.get()>
                <p class="empty" data-testid="no-model">{move || session.t(Text::NoScoringModel)}</p>
                <p><button class="primary" data-testid="create-starter-model" on:click=create_starter>
                    {move || session.t(Text::StartFromTemplate)}</button></p>
                <p class="hint">{move || say(lang(),
                    "已有带结果（例如是否成交）的历史线索？用下方的「建议权重」直接从数据中得到一个模型。",
                    "Leads with a known outcome (converted or not)? \"Suggest weights\" below makes a model from that history.")}</p>
            </Show>
            {move || loaded.get().map(|l| {
                let latest = l.head["latest_version"].as_i64().unwrap_or(0);
                let published = l.head["published_version"].as_i64();
                view! {
                    <p class="hint" data-testid="model-versions">
                        {format!("{} · ", l.doc.name)}
                        {move || session.t(Text::Latest)}{format!(" v{latest} · ")}
                        {move || session.t(Text::Published)}{published.map_or_else(|| " —".to_owned(), |p| format!(" v{p}"))}
                    </p>
                    {rescore_progress(session, &l.head)}
                }
            })}
            <Show when=move || draft.with(Option::is_some)>
                <div class="scoring-grid">
                    <section class="features" data-testid="features">
                        <h3>{move || session.t(Text::FeatureWeights)}
                            <span class="dirty">{move || dirty.get().then(|| session.t(Text::Unsaved))}</span></h3>
                        {move || (warnings.get() > 0).then(|| view! {
                            <p class="banner warning" data-testid="coverage-warnings">{move || match lang() {
                                Lang::Zh => format!("有 {} 个特征与现有数据不匹配，给所有线索都是 0 分：见下方提示。", warnings.get()),
                                Lang::En => format!("{} feature(s) match none of the data and give every lead 0: see below.", warnings.get()),
                            }}</p>
                        })}
                        {move || ids.get().into_iter().enumerate().map(|(i, id)| {
                            let label = move || feature_at(i).map(|f| match lang() {
                                Lang::En => f.label_en.clone().unwrap_or_else(|| f.label.clone()),
                                Lang::Zh => f.label.clone(),
                            }).unwrap_or_default();
                            let what = move || feature_at(i).map(|f| describe(&f, lang())).unwrap_or_default();
                            let weight = move || feature_at(i).map_or(0.0, |f| f.weight);
                            let warning = move || {
                                let f = feature_at(i)?;
                                let c = coverage_of(i).filter(|c| c["feature"] == f.id.as_str())?;
                                coverage_warning(&f, &c, lang())
                            };
                            let wid = id.clone();
                            view! {
                                <div class="feature-row" data-testid=format!("feature-row-{id}")>
                                    <label for=format!("weight-{id}")>{label}" "<span class="hint">{what}</span></label>
                                    <input type="range" min="0" max="100" step="0.5" id=format!("weight-{id}")
                                        data-testid=format!("weight-{id}") prop:value=move || weight().to_string()
                                        on:input=move |ev| {
                                            if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                                                draft.update(|d| if let Some(d) = d { d.set_weight(i, v) });
                                                dirty.set(true);
                                            }
                                        } />
                                    <span class="weight" data-testid=format!("weight-value-{id}")>{move || format!("{:.1}%", weight())}</span>
                                    <button type="button" class="small" data-testid=format!("edit-feature-{id}")
                                        on:click=move |_| open.update(|o| *o = if *o == Some(i) { None } else { Some(i) })>
                                        {move || if open.get() == Some(i) { say(lang(), "收起", "Close") } else { say(lang(), "编辑", "Edit") }}</button>
                                    <button type="button" class="small" data-testid=format!("remove-feature-{id}")
                                        on:click=move |_| remove_feature(i)>{move || say(lang(), "删除", "Remove")}</button>
                                </div>
                                {move || warning().map(|w| view! { <p class="warning" data-testid=format!("feature-warning-{wid}")>{w}</p> })}
                                {move || (open.get() == Some(i)).then(|| view! {
                                    <FeatureEditor draft=draft index=i catalog=catalog.into()
                                        coverage=Signal::derive(move || coverage_of(i))
                                        on_edit=Callback::new(move |()| dirty.set(true)) />
                                })}
                            }
                        }).collect_view()}
                        <p class="actions">
                            <button type="button" data-testid="add-fit-feature" on:click=move |_| add_feature(false)>
                                {move || say(lang(), "+ 按线索属性给分", "+ Points by a lead attribute")}</button>
                            <button type="button" data-testid="add-behaviour-feature" on:click=move |_| add_feature(true)>
                                {move || say(lang(), "+ 按线索行为给分", "+ Points by behaviour")}</button>
                        </p>
                        <Thresholds draft=draft on_edit=Callback::new(move |()| dirty.set(true)) />
                        {move || {
                            let p = problems.get();
                            (!p.is_empty()).then(|| view! {
                                <ul class="error" data-testid="model-problems">
                                    {p.into_iter().map(|d| {
                                        let words = draft.with_untracked(|m| m.as_ref().map(|m| problem_words(&d, m, lang())).unwrap_or_default());
                                        view! { <li>{words}</li> }
                                    }).collect_view()}
                                </ul>
                            })
                        }}
                        <p class="actions">
                            <button data-testid="save-model" disabled=move || busy.get() || !dirty.get() || !problems.with(Vec::is_empty)
                                on:click=move |_| save(false)>{move || session.t(Text::Save)}</button>
                            <button class="primary" data-testid="publish-model" disabled=move || busy.get() || !problems.with(Vec::is_empty)
                                on:click=move |_| save(true)>{move || session.t(Text::Publish)}</button>
                            <button data-testid="discard-model" disabled=move || !dirty.get()
                                on:click=move |_| reload()>{move || session.t(Text::DiscardDraft)}</button>
                        </p>
                        {move || pending.get().map(|(version, impact)| {
                            let lang = session.lang.get();
                            view! {
                                <div class="dialog" data-testid="publish-impact" role="dialog">
                                    <p><strong>{impact_title(version, lang)}</strong></p>
                                    <p data-testid="impact-leads">{impact_leads(&impact, lang)}</p>
                                    <ul data-testid="impact-flows">
                                        {impact_flows(&impact, lang).into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}
                                    </ul>
                                    <p class="actions">
                                        <button class="primary" data-testid="publish-confirm" on:click=move |_| confirm_publish(false)>
                                            {if lang == Lang::Zh { "发布" } else { "Publish" }}</button>
                                        <button data-testid="publish-backfill" on:click=move |_| confirm_publish(true)>
                                            {if lang == Lang::Zh { "只回填分数，不启动流程" } else { "Backfill scores only, start no flow" }}</button>
                                        <button data-testid="publish-cancel" on:click=move |_| { pending.set(None); reload(); }>
                                            {if lang == Lang::Zh { "取消" } else { "Cancel" }}</button>
                                    </p>
                                </div>
                            }
                        })}
                    </section>
                    <section class="samples" data-testid="samples">
                        <h3>{move || session.t(Text::SampleLeads)}</h3>
                        <p class="hint" data-testid="tier-moves">{move || {
                            let n = moves.get();
                            let total = samples.with(Vec::len);
                            match lang() {
                                Lang::Zh => format!("{total} 条样本线索中有 {n} 条层级变化（在浏览器中实时计算）"),
                                Lang::En => format!("{n} of {total} sample leads change tier (computed in the browser)"),
                            }
                        }}</p>
                        <table>
                            <thead><tr>
                                <th>{move || session.t(Text::Lead)}</th>
                                <th>{move || session.t(Text::Score)}</th>
                                <th>{move || session.t(Text::Tier)}</th>
                            </tr></thead>
                            <tbody>
                                {move || rows.get().into_iter().map(|(s, bs, bt, ds, dt)| {
                                    let moved = bt != dt;
                                    let up = moved && tier_rank(&dt) > tier_rank(&bt);
                                    let class = if !moved { "" } else if up { "moved up" } else { "moved down" };
                                    let (bt2, dt2) = (bt.clone(), dt.clone());
                                    view! {
                                        <tr class=class data-testid=format!("sample-{}", s.id)>
                                            <td>{s.name.clone()}</td>
                                            <td data-testid=format!("sample-score-{}", s.id)>{format!("{bs:.1} → {ds:.1}")}</td>
                                            <td>
                                                {moved.then(|| view! {
                                                    <span class=format!("tier {bt}")>{move || i18n::tier(lang(), &bt2)}</span>" → "
                                                })}
                                                <span class=format!("tier {dt}") data-testid=format!("sample-tier-{}", s.id) data-tier=dt.clone()>
                                                    {move || i18n::tier(lang(), &dt2)}</span>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                </div>
                <section class="model-diff" data-testid="model-diff">
                    <h3>{move || session.t(Text::DiffAgainstPublished)}</h3>
                    {move || {
                        let published = loaded.with(|l| l.as_ref().and_then(|l| l.published.clone()));
                        let Some((n, p)) = published else {
                            return view! { <p class="hint">{session.t(Text::NothingPublished)}</p> }.into_any();
                        };
                        let Some(d) = draft.get() else { return view! { <p /> }.into_any() };
                        let changes = diff(&p, &d);
                        if changes.features.is_empty() && !changes.tiers_changed && !changes.stages_changed {
                            return view! { <p class="hint" data-testid="diff-empty">{format!("= v{n}")}</p> }.into_any();
                        }
                        view! {
                            <ul>
                                {changes.features.into_iter().map(|c| {
                                    let w = match (c.weight_from, c.weight_to) {
                                        (Some(a), Some(b)) => format!("{a:.1}% → {b:.1}%"),
                                        (None, Some(b)) => format!("+ {b:.1}%"),
                                        (Some(a), None) => format!("− {a:.1}%"),
                                        (None, None) => String::new(),
                                    };
                                    let change = match (lang(), c.change.as_str()) {
                                        (Lang::Zh, "added") => "新增".to_owned(),
                                        (Lang::Zh, "removed") => "删除".to_owned(),
                                        (Lang::Zh, "changed") => "修改".to_owned(),
                                        (_, other) => other.to_owned(),
                                    };
                                    view! { <li data-testid=format!("diff-{}", c.feature)>{format!("{} ({change}) {w}", c.label)}</li> }
                                }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                </section>
                <section class="model-history">
                    <h3>{move || session.t(Text::Versions)}</h3>
                    <table><tbody>
                        {move || loaded.get().map(|l| l.versions.into_iter().map(|v| {
                            let n = v["number"].as_i64().unwrap_or(0);
                            let is_published = v["published"].as_bool().unwrap_or(false);
                            view! {
                                <tr data-testid=format!("model-version-{n}")>
                                    <td>{format!("v{n}")}{is_published.then(|| view! { <span class="badge">{session.t(Text::PublishedBadge)}</span> })}</td>
                                    <td class="hint">{v["message"].as_str().unwrap_or_default().to_owned()}</td>
                                    <td class="hint">{crate::words::local_time(v["created_at"].as_str())}</td>
                                    <td>{(!is_published).then(|| view! {
                                        <button data-testid=format!("rollback-model-{n}") disabled=move || busy.get()
                                            on:click=move |_| rollback(n)>{session.t(Text::Rollback)}</button>
                                    })}</td>
                                </tr>
                            }
                        }).collect_view())}
                    </tbody></table>
                </section>
            </Show>
            <section class="backtest" data-testid="history-section">
                <h3>{move || session.t(Text::Backtest)}</h3>
                <p>
                    <label for="outcome">{move || session.t(Text::OutcomeAttribute)}</label>
                    <suggest::OutcomePicker outcome=outcome catalog=catalog.into() />
                    " "
                    <button data-testid="run-backtest"
                        disabled=move || busy.get() || outcome.with(String::is_empty) || draft.with(Option::is_none) || !problems.with(Vec::is_empty)
                        on:click=run_backtest>{move || session.t(Text::RunBacktest)}</button>
                </p>
                {move || backtest.get().map(|b| backtest_view(session, &b))}
                <suggest::SuggestPanel outcome=outcome catalog=catalog.into()
                    on_done=Callback::new(move |()| reload()) />
            </section>
        </div>
    }
}

/// A problem with the model in words: where (the feature by name, the thresholds) and
/// what, in the studio's language.
fn problem_words(d: &trellis_model::Diagnostic, m: &ScoringModel, lang: Lang) -> String {
    let mut parts = d.pointer.trim_start_matches('/').split('/');
    let place = match (
        parts.next(),
        parts.next().and_then(|i| i.parse::<usize>().ok()),
    ) {
        (Some("features"), Some(i)) => {
            let label = m.features.get(i).map_or("", |f| f.label.as_str());
            match lang {
                Lang::Zh => format!("第 {} 个特征「{label}」：", i + 1),
                Lang::En => format!("Feature {} \"{label}\": ", i + 1),
            }
        }
        (Some("features"), None) => String::new(),
        (Some("tiers"), _) => say(lang, "等级分数线：", "Tier thresholds: "),
        (Some("stages"), _) => say(lang, "阶段分数线：", "Stage thresholds: "),
        (Some("name"), _) => say(lang, "模型名称：", "Model name: "),
        _ => format!("{}: ", d.pointer),
    };
    let what = match (lang, d.code) {
        (Lang::En, _) => d.message.clone(),
        (Lang::Zh, "weights_not_100") => "各特征权重合计须为 100。".to_owned(),
        (Lang::Zh, "invalid_weight") => "权重在 0 到 100 之间。".to_owned(),
        (Lang::Zh, "invalid_level") => "得分比例在 0% 到 100% 之间。".to_owned(),
        (Lang::Zh, "invalid_source") => {
            "请选择要读取的属性或事件（“合计”和“最近一次的数值”还要选数值字段；天数至少为 1）。"
                .to_owned()
        }
        (Lang::Zh, "invalid_expression") => format!("筛选条件无法理解：{}", d.message),
        (Lang::Zh, "invalid_transform") => {
            "给分方式有误：区间上限要依次增大、只有最后一段不设上限，封顶值为正数。".to_owned()
        }
        (Lang::Zh, "invalid_thresholds") if d.pointer == "/tiers" => {
            "温的分数线不能高于热。".to_owned()
        }
        (Lang::Zh, "invalid_thresholds") => "MQL 的分数线不能高于 SQL。".to_owned(),
        (Lang::Zh, "duplicate_feature") => "特征编号重复。".to_owned(),
        (Lang::Zh, "invalid_feature_id") => "特征编号只能用字母、数字、_ 或 -。".to_owned(),
        (Lang::Zh, "invalid_name") => "模型需要一个名称。".to_owned(),
        (Lang::Zh, _) => d.message.clone(),
    };
    format!("{place}{what}")
}

/// What a feature reads, in a few words: the attribute, or the event and its window.
fn describe(f: &Feature, lang: Lang) -> String {
    match &f.source {
        Source::Fit {
            attribute,
            cross: None,
        } => attribute.clone(),
        Source::Fit {
            attribute,
            cross: Some(c),
        } => format!("{attribute} × {c}"),
        Source::Behaviour(b) => match (b.window_days, lang) {
            (Some(d), Lang::Zh) => format!("{}（{d} 天内）", b.event),
            (Some(d), Lang::En) => format!("{} (last {d} days)", b.event),
            (None, _) => b.event.clone(),
        },
    }
}

/// The tier and stage thresholds, edited as scores.
#[component]
fn Thresholds(draft: RwSignal<Option<ScoringModel>>, on_edit: Callback<()>) -> impl IntoView {
    let session = expect_context::<Session>();
    let field = move |testid: &'static str,
                      zh: &'static str,
                      en: &'static str,
                      get: fn(&ScoringModel) -> f64,
                      set: fn(&mut ScoringModel, f64)| {
        view! {
            <label>{move || say(session.lang.get(), zh, en)}
                <input type="number" min="0" max="100" step="1" class="short" data-testid=testid
                    prop:value=move || draft.with(|d| d.as_ref().map(get).unwrap_or_default()).to_string()
                    on:change=move |ev| {
                        if let Ok(x) = event_target_value(&ev).trim().parse::<f64>()
                            && x.is_finite()
                        {
                            draft.update(|d| if let Some(d) = d { set(d, x.clamp(0.0, 100.0)) });
                            on_edit.run(());
                        }
                    } />
            </label>
        }
    };
    view! {
        <div class="thresholds" data-testid="thresholds">
            <h4>{move || say(session.lang.get(), "分数线", "Thresholds")}</h4>
            {field("tier-warm", "温 ≥", "Warm ≥", |m| m.tiers.warm, |m, x| m.tiers.warm = x)}
            {field("tier-hot", "热 ≥", "Hot ≥", |m| m.tiers.hot, |m, x| m.tiers.hot = x)}
            {field("stage-mql", "市场认可线索（MQL）≥", "MQL ≥", |m| m.stages.mql, |m, x| m.stages.mql = x)}
            {field("stage-sql", "销售认可线索（SQL）≥", "SQL ≥", |m| m.stages.sql, |m, x| m.stages.sql = x)}
        </div>
    }
}

fn tier_rank(tier: &str) -> u8 {
    match tier {
        "hot" => 2,
        "warm" => 1,
        _ => 0,
    }
}

fn impact_title(version: i64, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("发布版本 {version} 之前，先看看它会带来什么："),
        Lang::En => format!("Before publishing version {version}, here is what it will do:"),
    }
}

fn tier_word(tier: &str, lang: Lang) -> String {
    let (zh, en) = match tier {
        "hot" => ("热", "hot"),
        "warm" => ("温", "warm"),
        "cold" => ("冷", "cold"),
        other => (other, other),
    };
    match lang {
        Lang::Zh => zh.to_owned(),
        Lang::En => en.to_owned(),
    }
}

/// "20 条线索中，12 条的等级或阶段会变化：温 → 冷 12 条".
fn impact_leads(impact: &Value, lang: Lang) -> String {
    let moves: Vec<String> = impact["moves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let (from, to) = (
                tier_word(m["from"].as_str().unwrap_or(""), lang),
                tier_word(m["to"].as_str().unwrap_or(""), lang),
            );
            match lang {
                Lang::Zh => format!("{from} → {to} {} 条", m["leads"]),
                Lang::En => format!("{from} → {to}: {}", m["leads"]),
            }
        })
        .collect();
    let (leads, changes) = (&impact["leads"], &impact["changes"]);
    match (lang, moves.is_empty()) {
        (Lang::Zh, true) => format!("{leads} 条线索中，{changes} 条的等级或阶段会变化。"),
        (Lang::Zh, false) => format!(
            "{leads} 条线索中，{changes} 条的等级或阶段会变化：{}。",
            moves.join("，")
        ),
        (Lang::En, true) => format!("Of {leads} leads, {changes} change tier or stage."),
        (Lang::En, false) => format!(
            "Of {leads} leads, {changes} change tier or stage: {}.",
            moves.join(", ")
        ),
    }
}

/// One line per flow that reacts to tier changes, with the runs it would start.
fn impact_flows(impact: &Value, lang: Lang) -> Vec<String> {
    let flows = impact["flows"].as_array().cloned().unwrap_or_default();
    if flows.is_empty() {
        return vec![match lang {
            Lang::Zh => "没有流程会因此启动。".to_owned(),
            Lang::En => "No flow starts because of it.".to_owned(),
        }];
    }
    flows
        .iter()
        .map(|f| {
            let (name, runs) = (f["name"].as_str().unwrap_or(""), &f["runs"]);
            match lang {
                Lang::Zh => format!("流程「{name}」将启动约 {runs} 次运行"),
                Lang::En => format!("Flow \"{name}\" will start about {runs} runs"),
            }
        })
        .collect()
}

/// The rescore a publish started: a progress bar until it finishes.
fn rescore_progress(session: Session, head: &Value) -> impl IntoView + use<> {
    let r = &head["rescore"];
    if !r.is_object() {
        return None;
    }
    let (done, total) = (
        r["done"].as_i64().unwrap_or(0),
        r["total"].as_i64().unwrap_or(0),
    );
    let finished = !r["finished_at"].is_null();
    let version = r["version"].as_i64().unwrap_or(0);
    let pct = if total > 0 { done * 100 / total } else { 100 };
    Some(view! {
        <p class="rescore" data-testid="rescore-progress" data-version=version.to_string()
            data-finished=finished.to_string()>
            <progress max="100" value=pct.to_string()></progress>" "
            {move || match (session.lang.get(), finished) {
                (Lang::Zh, true) => format!("v{version} 已发布：{total} 条线索已重新评分"),
                (Lang::Zh, false) => format!("v{version} 重新评分中：{done}/{total}"),
                (Lang::En, true) => format!("v{version} published: {total} leads rescored"),
                (Lang::En, false) => format!("v{version} rescoring: {done}/{total}"),
            }}
        </p>
    })
}

/// Points of a polyline in a 200×200 chart, y up.
fn polyline(points: impl Iterator<Item = (f64, f64)>, x_max: f64, y_max: f64) -> String {
    points
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                x / x_max * 200.0,
                200.0 - (y / y_max).min(1.0) * 200.0
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// AUC, lift at 10%, the ROC curve and the lift curve of a backtest.
fn backtest_view(session: Session, b: &Value) -> impl IntoView + use<> {
    let auc = b["auc"].as_f64().unwrap_or(0.0);
    let lift10 = b["lift_at_10"].as_f64().unwrap_or(0.0);
    let leads = b["leads"].as_u64().unwrap_or(0);
    let converted = b["converted"].as_u64().unwrap_or(0);
    let roc = polyline(
        b["roc"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0))),
        1.0,
        1.0,
    );
    let lift: Vec<(f64, f64)> = b["lift"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["top_percent"].as_f64().unwrap_or(0.0),
                p["lift"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let lift_max = lift.iter().map(|p| p.1).fold(1.0, f64::max).ceil();
    let bar_w = 200.0 / lift.len().max(1) as f64;
    view! {
        <p data-testid="backtest-summary">
            <strong data-testid="backtest-auc">{format!("AUC {auc:.3}")}</strong>
            {format!(" · lift@10% {lift10:.2} · ")}
            {move || match session.lang.get() {
                Lang::Zh => format!("{leads} 条线索，{converted} 条转化"),
                Lang::En => format!("{leads} leads, {converted} converted"),
            }}
        </p>
        <div class="charts">
            <figure>
                <svg class="chart" data-testid="roc-chart" viewBox="-24 -8 232 232" width="232" height="232">
                    <rect x="0" y="0" width="200" height="200" class="frame" />
                    <line x1="0" y1="200" x2="200" y2="0" class="diagonal" />
                    <polyline points=roc class="curve" />
                    <text x="100" y="220" class="axis">"FPR"</text>
                    <text x="-20" y="100" class="axis">"TPR"</text>
                </svg>
                <figcaption>{move || session.t(Text::RocCurve)}</figcaption>
            </figure>
            <figure>
                <svg class="chart" data-testid="lift-chart" viewBox="-24 -8 232 232" width="232" height="232">
                    <rect x="0" y="0" width="200" height="200" class="frame" />
                    <line x1="0" y1={200.0 - 200.0 / lift_max} x2="200" y2={200.0 - 200.0 / lift_max} class="diagonal" />
                    {lift.iter().enumerate().map(|(i, (_, l))| {
                        let h = l / lift_max * 200.0;
                        view! { <rect class="bar" x={i as f64 * bar_w + 1.0} y={200.0 - h} width={(bar_w - 2.0).max(1.0)} height=h /> }
                    }).collect_view()}
                    <text x="70" y="220" class="axis">"top % →"</text>
                    <text x="-20" y="12" class="axis">{format!("{lift_max}×")}</text>
                </svg>
                <figcaption>{move || session.t(Text::LiftCurve)}</figcaption>
            </figure>
        </div>
    }
}
