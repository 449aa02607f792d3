//! The leads page (best score first; searched, filtered by tier, owner and tag, paged;
//! selected leads enrolled in a flow; exported as CSV) and the lead card: the score
//! with each feature's contribution as a bar, the one-line behaviour summary, purchase
//! signals, next best actions and the recent timeline.

use leptos::prelude::*;
use serde_json::Value;

use crate::api;
use crate::i18n::{self, Lang, Text};
use crate::{Page, Session};

const PER_PAGE: u64 = 50;

#[component]
pub fn LeadsPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let tier = RwSignal::new(String::new());
    let search = RwSignal::new(String::new());
    let owner = RwSignal::new(String::new());
    let tag = RwSignal::new(String::new());
    let page = RwSignal::new(1u64);
    let selected = RwSignal::new(Vec::<String>::new());
    let notice = RwSignal::new(None::<String>);
    // The query the list, the export and the enrolment share.
    let query = move || {
        let mut q = String::new();
        for (name, v) in [
            ("tier", tier.get()),
            ("q", search.get()),
            ("owner", owner.get()),
            ("tag", tag.get()),
        ] {
            if !v.trim().is_empty() {
                q.push_str(&format!(
                    "&{name}={}",
                    js_sys::encode_uri_component(v.trim())
                ));
            }
        }
        q
    };
    let list = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        let (filter, page) = (query(), page.get());
        async move {
            api::get_json(
                &token,
                &format!("/api/v1/leads?page={page}&per_page={PER_PAGE}{filter}"),
            )
            .await
        }
    });
    let flows = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        async move { api::list_flows(&token).await }
    });
    let target = RwSignal::new(String::new());
    let enroll = move |_| {
        let (token, flow, leads) = (
            session.token.get_untracked().unwrap_or_default(),
            target.get_untracked(),
            selected.get_untracked(),
        );
        if flow.is_empty() || leads.is_empty() {
            return;
        }
        leptos::task::spawn_local(async move {
            let body = serde_json::json!({ "leads": leads });
            let lang = session.lang.get_untracked();
            match api::post_json(&token, &format!("/api/v1/flows/{flow}/enroll"), &body).await {
                Ok(v) => {
                    let started = v["started"].as_array().map_or(0, Vec::len);
                    let skipped: Vec<String> = v["skipped"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| {
                            format!(
                                "{}（{}）",
                                s["lead"].as_str().unwrap_or_default(),
                                s["reason"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    notice.set(Some(match lang {
                        Lang::Zh => format!(
                            "已加入 {started} 条线索{}",
                            if skipped.is_empty() {
                                String::new()
                            } else {
                                format!("；跳过 {}", skipped.join("、"))
                            }
                        ),
                        Lang::En => format!(
                            "{started} enrolled{}",
                            if skipped.is_empty() {
                                String::new()
                            } else {
                                format!("; skipped {}", skipped.join(", "))
                            }
                        ),
                    }));
                    selected.set(Vec::new());
                }
                Err(api::ApiError::Other(m)) => notice.set(Some(m)),
                Err(api::ApiError::Unauthorized) => session.sign_out(),
            }
        });
    };
    let export = move |_| {
        let token = session.token.get_untracked().unwrap_or_default();
        let filter = query();
        leptos::task::spawn_local(async move {
            let path = format!("/api/v1/leads/export?{}", filter.trim_start_matches('&'));
            match api::get_text(&token, &path).await {
                Ok(text) => {
                    if let Err(e) = crate::save_file(&text, "text/csv;charset=utf-8", "leads.csv") {
                        notice.set(Some(e));
                    }
                }
                Err(api::ApiError::Other(m)) => notice.set(Some(m)),
                Err(api::ApiError::Unauthorized) => session.sign_out(),
            }
        });
    };
    let lang = move || session.lang.get();
    let filter_input = move |testid: &'static str, signal: RwSignal<String>, text: Text| {
        view! {
            <input type="text" data-testid=testid placeholder=move || session.t(text) prop:value=move || signal.get()
                on:change=move |ev| { signal.set(event_target_value(&ev)); page.set(1); } />
        }
    };
    view! {
        <div class="card" data-testid="leads-page">
            <h2>{move || session.t(Text::Leads)}</h2>
            <div class="lead-filters">
                {filter_input("lead-search", search, Text::SearchLeads)}
                <select id="tier-filter" data-testid="tier-filter" on:change=move |ev| {
                    tier.set(event_target_value(&ev));
                    page.set(1);
                }>
                    <option value="">{move || session.t(Text::AllTiers)}</option>
                    {["hot", "warm", "cold"].map(|t| view! {
                        <option value=t selected=move || tier.get() == t>{move || i18n::tier(lang(), t)}</option>
                    }).collect_view()}
                </select>
                {filter_input("lead-owner-filter", owner, Text::Owner)}
                {filter_input("lead-tag-filter", tag, Text::Tags)}
                <button type="button" data-testid="leads-export" on:click=export>{move || session.t(Text::ExportCsv)}</button>
            </div>
            <div class="lead-filters">
                <select data-testid="enroll-flow" on:change=move |ev| target.set(event_target_value(&ev))>
                    <option value="">{move || session.t(Text::ChooseFlow)}</option>
                    {move || flows.get().and_then(Result::ok).unwrap_or_default().into_iter()
                        .filter(|f| f.published_version.is_some())
                        .map(|f| view! { <option value=f.id.clone()>{f.name.clone()}</option> }).collect_view()}
                </select>
                <button type="button" data-testid="enroll-selected"
                    disabled=move || selected.with(Vec::is_empty) || target.with(String::is_empty) on:click=enroll>
                    {move || format!("{} ({})", session.t(Text::EnrollSelected), selected.with(Vec::len))}
                </button>
                {move || notice.get().map(|n| view! { <span class="hint" data-testid="leads-notice">{n}</span> })}
            </div>
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || list.get().map(|result| match result {
                    Ok(v) => lead_table(session, &v, page, selected).into_any(),
                    Err(e) => session.failed(e, "leads-error"),
                })}
            </Transition>
        </div>
    }
}

fn lead_table(
    session: Session,
    v: &Value,
    page: RwSignal<u64>,
    selected: RwSignal<Vec<String>>,
) -> impl IntoView + use<> {
    let leads = v["leads"].as_array().cloned().unwrap_or_default();
    let total = v["total"].as_u64().unwrap_or(0);
    let current = v["page"].as_u64().unwrap_or(1);
    let pages = total.div_ceil(PER_PAGE).max(1);
    if leads.is_empty() {
        return view! { <p class="empty" data-testid="no-leads">{move || session.t(Text::NoLeads)}</p> }
            .into_any();
    }
    let lang = move || session.lang.get();
    let on_page: Vec<String> = leads
        .iter()
        .filter_map(|l| l["id"].as_str().map(str::to_owned))
        .collect();
    let all = on_page.clone();
    view! {
        <table data-testid="lead-table">
            <thead><tr>
                <th><input type="checkbox" data-testid="select-all-leads" title=move || session.t(Text::SelectAll)
                    prop:checked=move || selected.with(|s| all.iter().all(|id| s.contains(id)))
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        selected.update(|s| {
                            s.retain(|id| !on_page.contains(id));
                            if on { s.extend(on_page.iter().cloned()); }
                        });
                    } /></th>
                <th>{move || session.t(Text::Lead)}</th>
                <th>{move || session.t(Text::Company)}</th>
                <th>{move || session.t(Text::Owner)}</th>
                <th>{move || session.t(Text::Tags)}</th>
                <th>{move || session.t(Text::Score)}</th>
                <th>{move || session.t(Text::Tier)}</th>
                <th>{move || session.t(Text::Stage)}</th>
                <th>{move || session.t(Text::LastActivity)}</th>
            </tr></thead>
            <tbody>
                {leads.into_iter().map(|l| {
                    let id = l["id"].as_str().unwrap_or_default().to_owned();
                    let name = l["name"].as_str().map_or_else(|| id.clone(), str::to_owned);
                    let score = l["score"].as_f64().unwrap_or(0.0);
                    let tier = l["tier"].as_str().unwrap_or("cold").to_owned();
                    let stage = l["stage"].as_str().unwrap_or("lead").to_owned();
                    let tags: Vec<String> = l["tags"].as_array().into_iter().flatten()
                        .filter_map(|t| t.as_str().map(str::to_owned)).collect();
                    let t2 = tier.clone();
                    let open = id.clone();
                    let (pick, checked) = (id.clone(), id.clone());
                    view! {
                        <tr data-testid=format!("lead-row-{id}")>
                            <td><input type="checkbox" data-testid=format!("select-lead-{id}")
                                prop:checked=move || selected.with(|s| s.contains(&checked))
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    selected.update(|s| { s.retain(|x| *x != pick); if on { s.push(pick.clone()); } });
                                } /></td>
                            <td><a href=format!("#/leads/{id}") data-testid=format!("open-lead-{id}")
                                on:click=move |_| session.page.set(Page::Lead(open.clone()))>{name}</a></td>
                            <td>{l["company"].as_str().unwrap_or("—").to_owned()}</td>
                            <td data-testid=format!("lead-owner-{id}")>{l["owner"].as_str().unwrap_or("—").to_owned()}</td>
                            <td><span class="chips">{tags.into_iter().map(|t| view! { <span class="chip">{t}</span> }).collect_view()}</span></td>
                            <td><span class="score-bar"><span style=format!("width: {}%", score.clamp(0.0, 100.0))></span></span>
                                {format!(" {score:.1}")}</td>
                            <td><span class=format!("tier {tier}")>{move || i18n::tier(lang(), &t2)}</span></td>
                            <td>{stage.to_uppercase()}</td>
                            <td class="hint">{short_time(&l["last_event_at"])}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <p class="pager">
            <button data-testid="leads-prev" disabled=current <= 1 on:click=move |_| page.update(|p| *p = p.saturating_sub(1).max(1))>"‹"</button>
            {format!(" {current} / {pages} ({total}) ")}
            <button data-testid="leads-next" disabled=current >= pages on:click=move |_| page.update(|p| *p += 1)>"›"</button>
        </p>
    }
    .into_any()
}

/// An RFC 3339 timestamp as `YYYY-MM-DD HH:MM` (UTC), or a dash.
fn short_time(v: &Value) -> String {
    crate::words::local_time(v.as_str())
}

#[component]
pub fn LeadCard(lead_id: String) -> impl IntoView {
    let session = expect_context::<Session>();
    let id = StoredValue::new(lead_id);
    let card = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        async move { api::get_json(&token, &format!("/api/v1/leads/{}", id.get_value())).await }
    });
    view! {
        <div class="card lead-card" data-testid="lead-card">
            <p><button data-testid="back-to-leads" on:click=move |_| session.go(Page::Leads)>
                {move || session.t(Text::BackToLeads)}</button></p>
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || card.get().map(|result| match result {
                    Ok(v) => card_view(session, v).into_any(),
                    Err(e) => session.failed(e, "lead-error"),
                })}
            </Transition>
        </div>
    }
}

fn card_view(session: Session, v: Value) -> impl IntoView {
    let lang = move || session.lang.get();
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let name = v["name"].as_str().map_or_else(|| id.clone(), str::to_owned);
    // The score as of now with the published model; the stored one when none is published.
    let current = if v["current"].is_object() {
        v["current"].clone()
    } else {
        v["stored"].clone()
    };
    let score = current["score"].as_f64().unwrap_or(0.0);
    let tier = current["tier"].as_str().unwrap_or("cold").to_owned();
    let stage = current["stage"].as_str().unwrap_or("lead").to_uppercase();
    let probability = current["probability"].as_f64();
    let contributions = current["contributions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let summary = v["summary"].clone();
    let signals = v["signals"].as_array().cloned().unwrap_or_default();
    let utterances = v["utterances"].as_array().cloned().unwrap_or_default();
    let actions = v["next_actions"].as_array().cloned().unwrap_or_default();
    let timeline = v["timeline"].as_array().cloned().unwrap_or_default();
    let account = v["account"]["name"].as_str().map(str::to_owned);
    let channels = v["contact"]["channels"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let revoked = v["contact"]["revoked"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let t2 = tier.clone();
    view! {
        <header class="lead-head">
            <h2 data-testid="lead-name">{name}</h2>
            <span class=format!("tier {tier}") data-testid="lead-tier">{move || i18n::tier(lang(), &t2)}</span>
            <span class="lead-stage">{stage}</span>
            <span class="big-score" data-testid="lead-score">{format!("{score:.1}")}</span>
            {probability.map(|p| view! { <span class="hint">{move || session.t(Text::ConversionProbability)}{format!(" {:.0}%", p * 100.0)}</span> })}
        </header>
        <p class="hint">
            {account.map(|a| format!("{a} · "))}
            {v["owner"].as_str().map(|o| format!("{o} · "))}
            {id.clone()}
        </p>
        <p class="summary" data-testid="lead-summary">{
            let s = summary.clone();
            move || match lang() {
                Lang::Zh => s["zh"].as_str().unwrap_or_default().to_owned(),
                Lang::En => s["en"].as_str().unwrap_or_default().to_owned(),
            }
        }</p>
        <div class="lead-grid">
            <section data-testid="explanation">
                <h3>{move || session.t(Text::ScoreExplanation)}</h3>
                {if contributions.is_empty() {
                    view! { <p class="hint">{move || session.t(Text::NothingPublished)}</p> }.into_any()
                } else {
                    // One scale for every bar (the largest feature weight is the full track),
                    // so +3.4 looks a tenth of +35.
                    let full = contributions
                        .iter()
                        .filter_map(|c| c["weight"].as_f64())
                        .fold(0.0f64, f64::max);
                    contributions.into_iter().map(|c| {
                        let points = c["points"].as_f64().unwrap_or(0.0);
                        let weight = c["weight"].as_f64().unwrap_or(0.0);
                        let pct = if full > 0.0 { (points / full * 100.0).clamp(0.0, 100.0) } else { 0.0 };
                        let (zh, en) = (
                            c["explanation"].as_str().unwrap_or_default().to_owned(),
                            c["explanation_en"].as_str().unwrap_or_default().to_owned(),
                        );
                        view! {
                            <div class="contribution" data-testid="explanation-bar" data-feature=c["feature"].as_str().unwrap_or_default().to_owned()>
                                <div class="bar-track" title=format!("{points:.1} / {weight:.1}")>
                                    <div class="bar-fill" data-points=format!("{points:.3}") data-pct=format!("{pct:.3}") style=format!("width: {pct:.1}%")></div>
                                </div>
                                <span class="points">{format!("{points:+.1}")}</span>
                                <span class="why">{move || if lang() == Lang::En { en.clone() } else { zh.clone() }}</span>
                            </div>
                        }
                    }).collect_view().into_any()
                }}
            </section>
            <section>
                <h3>{move || session.t(Text::NextActions)}</h3>
                <ul data-testid="next-actions">
                    {if actions.is_empty() {
                        view! { <li class="hint">{move || session.t(Text::NoNextActions)}</li> }.into_any()
                    } else {
                        actions.into_iter().map(|a| {
                            let rule = a["name"].as_str().unwrap_or_default().to_owned();
                            let items = a["actions"].as_array().cloned().unwrap_or_default();
                            view! {
                                <li data-testid="next-action"><strong>{rule}</strong>
                                    <ul>{items.into_iter().map(|x| {
                                        let (zh, en) = (
                                            x["title"].as_str().unwrap_or_default().to_owned(),
                                            x["title_en"].as_str().map(str::to_owned),
                                        );
                                        let title = move || match (lang(), &en) { (Lang::En, Some(e)) => e.clone(), _ => zh.clone() };
                                        let within = x["within"].as_str().map(|w| format!(" ({w})"));
                                        match x["url"].as_str().map(str::to_owned) {
                                            Some(url) => view! { <li><a href=url target="_blank" rel="noopener">{title}</a>{within}</li> }.into_any(),
                                            None => view! { <li>{title}{within}</li> }.into_any(),
                                        }
                                    }).collect_view()}</ul>
                                </li>
                            }
                        }).collect_view().into_any()
                    }}
                </ul>
                <h3>{move || session.t(Text::Signals)}</h3>
                <ul data-testid="lead-signals">
                    {if signals.is_empty() {
                        view! { <li class="hint">{move || session.t(Text::NoSignals)}</li> }.into_any()
                    } else {
                        signals.into_iter().map(|s| {
                            let polarity = s["polarity"].as_str().unwrap_or("neutral").to_owned();
                            let category = s["category"].as_str().unwrap_or_default().to_owned();
                            let c2 = category.clone();
                            let class = format!("signal {polarity}");
                            view! {
                                <li data-testid="lead-signal" class=class>
                                    <span class="signal-category">{move || i18n::signal_category(lang(), &c2)}</span>" "
                                    {format!("“{}”", s["phrase"].as_str().unwrap_or_default())}
                                    " "<span class="hint">{move || i18n::polarity(lang(), &polarity)}</span>
                                </li>
                            }
                        }).collect_view().into_any()
                    }}
                </ul>
                <crate::utterances::Utterances lead=id.clone() items=utterances />
                <h3>{move || session.t(Text::ContactHeading)}</h3>
                <ul data-testid="lead-contact">
                    {channels.into_iter().map(|c| {
                        let channel = c["channel"].as_str().unwrap_or_default().to_owned();
                        let d = c["decision"].clone();
                        let decision = d["decision"].as_str().unwrap_or_default().to_owned();
                        let allowed = decision == "allow";
                        let sent = c["recent"].as_array().map_or(0, Vec::len);
                        let testid = format!("lead-contact-{channel}");
                        view! {
                            <li data-testid=testid data-decision=decision>
                                <strong>{move || crate::words::channel_label(&channel, lang())}</strong>"："
                                {move || if allowed {
                                    session.t(Text::ContactAllowed)
                                } else {
                                    let key = if lang() == Lang::En { "en" } else { "zh" };
                                    d[key].as_str().unwrap_or_default().to_owned()
                                }}
                                <span class="hint">{format!(" ({sent})")}</span>
                            </li>
                        }
                    }).collect_view()}
                    {revoked.into_iter().map(|r| {
                        let channel = r["channel"].as_str().map(str::to_owned);
                        let reason = r["reason"].as_str().unwrap_or_default().to_owned();
                        view! {
                            <li data-testid="lead-contact-revoked" class="signal negative">
                                {move || session.t(Text::ContactRevoked)}" · "
                                {move || channel.as_deref().map_or_else(|| "*".to_owned(), |c| crate::words::channel_label(c, lang()))}
                                " · "{reason.clone()}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
        </div>
        <section>
            <h3>{move || session.t(Text::Timeline)}</h3>
            <table class="timeline" data-testid="lead-timeline"><tbody>
                {timeline.into_iter().map(|e| view! {
                    <tr>
                        <td class="hint">{short_time(&e["timestamp"])}</td>
                        <td>{e["name"].as_str().unwrap_or_default().to_owned()}</td>
                        <td class="hint">{properties_line(&e["properties"])}</td>
                    </tr>
                }).collect_view()}
            </tbody></table>
        </section>
    }
}

/// An event's properties on one line, identities left out.
fn properties_line(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| {
            !trellis_model::scoring::IDENTITY_KINDS.contains(&k.as_str()) && k.as_str() != "signals"
        })
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(" · ")
        .chars()
        .take(160)
        .collect()
}
