//! Versions (list, diff highlighted on the canvas, publish, roll back) and runs (start a
//! manual run, see each node's step status on the canvas).

use std::collections::HashMap;

use leptos::prelude::*;
use serde_json::{Value, json};

use crate::Session;
use crate::api;
use crate::editor::state::Editor;
use crate::i18n::Text;

/// Shows version `n` read-only on the canvas.
async fn show_version(token: &str, flow_id: &str, n: i64, ed: Editor) {
    match api::get_json(token, &format!("/api/v1/flows/{flow_id}/versions/{n}")).await {
        Ok(v) => match serde_json::from_value::<trellis_model::FlowDoc>(v["doc"].clone()) {
            Ok(doc) => {
                ed.view_version(n, doc);
            }
            Err(e) => ed.notice.set(Some(e.to_string())),
        },
        Err(e) => ed.notice.set(Some(format!("{e:?}"))),
    }
}

/// What a test run gives the flow's trigger: its kind, and the webhook path or event name.
#[derive(Clone, Debug, Default, PartialEq)]
struct TriggerShape {
    kind: String,
    path: Option<String>,
    event: Option<String>,
    has_secret: bool,
}

fn trigger_shape(doc: &trellis_model::FlowDoc) -> TriggerShape {
    use trellis_model::node_types::TriggerConfig;
    doc.trigger()
        .and_then(|t| serde_json::from_value::<TriggerConfig>(t.config.clone()).ok())
        .map(|c| TriggerShape {
            kind: c.kind.as_str().to_owned(),
            path: c.path,
            event: c.event,
            has_secret: c.secret.is_some(),
        })
        .unwrap_or_default()
}

/// The body of a test run's request: the typed JSON as the trigger would receive it (a
/// webhook's request body, an event, or manual input).
fn test_run_body(shape: &TriggerShape, typed: Value) -> Value {
    let trigger = match shape.kind.as_str() {
        "webhook" => json!({ "body": typed, "headers": {}, "query": {}, "path": shape.path }),
        // A behaviour trigger starts with the event that completed the behaviour.
        "event" | "behaviour" => {
            let mut event = typed;
            if event.get("name").is_none()
                && let (Some(obj), Some(name)) = (event.as_object_mut(), &shape.event)
            {
                obj.insert("name".into(), json!(name));
            }
            json!({ "event": event })
        }
        _ => json!({ "input": typed }),
    };
    json!({ "trigger": trigger, "test": true })
}

/// The part of a sample trigger the test input shows (the inverse of [`test_run_body`]).
fn sample_part(kind: &str, trigger: &Value) -> Value {
    match kind {
        "webhook" => trigger["body"].clone(),
        "event" | "behaviour" => trigger["event"].clone(),
        _ => trigger
            .get("input")
            .cloned()
            .unwrap_or_else(|| trigger.clone()),
    }
}

/// Node marks from a diff: added / changed.
fn diff_marks(diff: &Value) -> HashMap<String, &'static str> {
    let mut marks = HashMap::new();
    let ids = |key: &str| diff[key].as_array().cloned().unwrap_or_default();
    for id in ids("nodes_added") {
        if let Some(id) = id.as_str() {
            marks.insert(id.to_owned(), "added");
        }
    }
    for change in ids("nodes_changed") {
        if let Some(id) = change["id"].as_str() {
            marks.insert(id.to_owned(), "changed");
        }
    }
    marks
}

/// Node marks from a run: the last step status of each node.
fn run_marks(run: &Value) -> HashMap<String, &'static str> {
    let mut marks = HashMap::new();
    for step in run["steps"].as_array().cloned().unwrap_or_default() {
        let (Some(node), Some(status)) = (step["node"].as_str(), step["status"].as_str()) else {
            continue;
        };
        let mark = match status {
            "completed" => "completed",
            "failed" => "failed",
            "waiting" => "waiting",
            "blocked" => "blocked",
            _ => "retrying",
        };
        marks.insert(node.to_owned(), mark);
    }
    marks
}

#[component]
pub fn HistoryPanel(
    ed: Editor,
    flow_id: String,
    base: RwSignal<i64>,
    /// The published version, shared with the editor's toolbar.
    published: RwSignal<Option<i64>>,
    reload: Callback<()>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let flow_id = StoredValue::new(flow_id);
    let token = move || session.token.get_untracked().unwrap_or_default();
    let refresh = RwSignal::new(0u32);
    let versions = LocalResource::new(move || {
        refresh.track();
        base.track();
        published.track();
        let (token, id) = (token(), flow_id.get_value());
        async move { api::get_json(&token, &format!("/api/v1/flows/{id}/versions")).await }
    });
    let diff_text = RwSignal::new(None::<String>);
    let run_status = RwSignal::new(None::<String>);
    let input = RwSignal::new("{}".to_owned());
    let current_run = RwSignal::new(None::<Value>);
    let open_step = RwSignal::new(None::<i64>);
    let runs_refresh = RwSignal::new(0u32);
    let runs = LocalResource::new(move || {
        runs_refresh.track();
        let (token, id) = (token(), flow_id.get_value());
        async move { api::get_json(&token, &format!("/api/v1/runs?flow={id}&limit=10")).await }
    });
    let show_run = move |run_id: String| {
        let token = token();
        let id = flow_id.get_value();
        leptos::task::spawn_local(async move {
            if let Ok(run) = api::get_json(&token, &format!("/api/v1/runs/{run_id}")).await {
                // A run is shown on the canvas of the version it is pinned to.
                let version = run["version"].as_i64().unwrap_or(0);
                if version != base.get_untracked() {
                    show_version(&token, &id, version, ed).await;
                } else if ed.read_only() {
                    ed.back_to_latest();
                }
                ed.marks.set(run_marks(&run));
                open_step.set(None);
                current_run.set(Some(run));
            }
        });
    };

    let compare = move |n: i64| {
        let (token, id, to) = (token(), flow_id.get_value(), base.get_untracked());
        leptos::task::spawn_local(async move {
            match api::get_json(&token, &format!("/api/v1/flows/{id}/diff?from={n}&to={to}")).await
            {
                Ok(d) => {
                    ed.marks.set(diff_marks(&d));
                    let removed = d["nodes_removed"].as_array().map(|a| a.len()).unwrap_or(0);
                    let changed: Vec<String> = d["nodes_changed"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|c| {
                            format!("{} {}", c["id"].as_str().unwrap_or(""), c["config_paths"])
                        })
                        .collect();
                    diff_text.set(Some(format!(
                        "v{n} → v{to}: +{} −{removed} ~{} {}",
                        d["nodes_added"].as_array().map(|a| a.len()).unwrap_or(0),
                        changed.len(),
                        changed.join("; ")
                    )));
                }
                Err(e) => diff_text.set(Some(format!("{e:?}"))),
            }
        });
    };
    let act = move |action: &'static str, n: i64| {
        let question = match action {
            "publish" => format!("{} v{n}?", session.t(Text::Publish)),
            _ => format!("{} v{n}?", session.t(Text::Rollback)),
        };
        let (token, id) = (token(), flow_id.get_value());
        leptos::task::spawn_local(async move {
            if !session.dialogs.confirm(question).await {
                return;
            }
            match api::post_json(
                &token,
                &format!("/api/v1/flows/{id}/{action}"),
                &json!({ "version": n }),
            )
            .await
            {
                Ok(_) if action == "rollback" => reload.run(()),
                Ok(_) => published.set(Some(n)),
                Err(e) => ed.notice.set(Some(format!("{e:?}"))),
            }
        });
    };
    // What a test run gives the trigger follows the trigger's kind in the working document.
    let shape = Memo::new(move |_| ed.doc.with(trigger_shape));
    let samples_refresh = RwSignal::new(0u32);
    // Samples follow the saved trigger: a save that changes it offers its events.
    let samples = LocalResource::new(move || {
        samples_refresh.track();
        base.track();
        let (token, id) = (token(), flow_id.get_value());
        async move { api::get_json(&token, &format!("/api/v1/flows/{id}/samples")).await }
    });
    // The runs list follows new runs (webhook calls, events) while the editor is open.
    if let Ok(every) = set_interval_with_handle(
        move || runs_refresh.update(|r| *r += 1),
        std::time::Duration::from_secs(3),
    ) {
        on_cleanup(move || every.clear());
    }
    let start_run = move |_| {
        let text = input.get_untracked();
        let value = if text.trim().is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_str::<Value>(&text)
        };
        let body = match value {
            Ok(v) => {
                let mut body = test_run_body(&shape.get_untracked(), v);
                body["version"] = json!(base.get_untracked());
                body
            }
            Err(e) => {
                run_status.set(Some(format!("JSON: {e}")));
                return;
            }
        };
        let (token, id) = (token(), flow_id.get_value());
        leptos::task::spawn_local(async move {
            let started =
                match api::post_json(&token, &format!("/api/v1/flows/{id}/runs"), &body).await {
                    Ok(v) => v,
                    Err(e) => {
                        run_status.set(Some(format!("{e:?}")));
                        return;
                    }
                };
            let run_id = started["run_id"].as_str().unwrap_or_default().to_owned();
            // Live refresh while the run is active.
            for _ in 0..120 {
                if let Ok(run) = api::get_json(&token, &format!("/api/v1/runs/{run_id}")).await {
                    ed.marks.set(run_marks(&run));
                    let status = run["status"].as_str().unwrap_or("").to_owned();
                    run_status.set(Some(status.clone()));
                    current_run.set(Some(run));
                    if matches!(
                        status.as_str(),
                        "succeeded" | "failed" | "cancelled" | "waiting"
                    ) {
                        runs_refresh.update(|r| *r += 1);
                        break;
                    }
                }
                crate::sleep(500).await;
            }
        });
    };

    view! {
        <div class="history" data-testid="history">
            <h3>{move || session.t(Text::TestRun)}</h3>
            {move || {
                let s = shape.get();
                (s.kind == "webhook").then(|| {
                    let origin = web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default();
                    let url = format!("{origin}/hooks/{}", s.path.clone().unwrap_or_default());
                    let secret = if s.has_secret { " -H 'X-Trellis-Secret: …'" } else { "" };
                    let curl = format!("curl -X POST {url} -H 'Content-Type: application/json'{secret} -d '{{\"company\": \"…\"}}'");
                    let copied = RwSignal::new(false);
                    let to_copy = url.clone();
                    view! {
                        <div class="webhook" data-testid="webhook">
                            <label>{move || session.t(Text::WebhookUrl)}</label>
                            <div class="grant-row">
                                <code data-testid="webhook-url">{url.clone()}</code>
                                <button data-testid="copy-webhook-url" on:click=move |_| {
                                    if let Some(w) = web_sys::window() {
                                        let _ = w.navigator().clipboard().write_text(&to_copy);
                                        copied.set(true);
                                    }
                                }>{move || if copied.get() { session.t(Text::Copied) } else { session.t(Text::Copy) }}</button>
                            </div>
                            <div class="hint">{move || session.t(Text::CurlExample)}</div>
                            <pre class="curl" data-testid="webhook-curl">{curl}</pre>
                        </div>
                    }
                })
            }}
            <label>{move || match shape.get().kind.as_str() {
                "webhook" => session.t(Text::TestBody),
                "event" => session.t(Text::TestEvent),
                _ => session.t(Text::TestInput),
            }}</label>
            {move || samples.get().map(|r| {
                let list = r.ok().and_then(|v| v["samples"].as_array().cloned()).unwrap_or_default();
                if list.is_empty() {
                    return view! { <div class="hint" data-testid="no-samples">{session.t(Text::NoSamples)}</div> }.into_any();
                }
                let kind = shape.get_untracked().kind;
                let options: Vec<(String, String)> = list.iter().map(|sample| {
                    let part = sample_part(&kind, &sample["trigger"]);
                    let text = serde_json::to_string(&part).unwrap_or_default();
                    let short: String = text.chars().take(60).collect();
                    (crate::words::local_time(sample["at"].as_str()) + " · " + &short,
                     serde_json::to_string_pretty(&part).unwrap_or_default())
                }).collect();
                let fills = StoredValue::new(options.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
                view! {
                    <select data-testid="run-sample" on:change=move |ev| {
                        if let Ok(i) = event_target_value(&ev).parse::<usize>()
                            && let Some(v) = fills.with_value(|f| f.get(i).cloned())
                        {
                            input.set(v);
                        }
                    }>
                        <option value="">{session.t(Text::UseRecentSample)}</option>
                        {options.into_iter().enumerate().map(|(i, (label, _))| view! { <option value=i.to_string()>{label}</option> }).collect_view()}
                    </select>
                }.into_any()
            })}
            <textarea rows="4" data-testid="run-input" prop:value=move || input.get() on:input=move |ev| input.set(event_target_value(&ev))></textarea>
            <button data-testid="run-flow" on:click=move |ev| { start_run(ev); samples_refresh.update(|r| *r += 1); }>{move || session.t(Text::TestRun)}</button>
            {move || run_status.get().map(|s| view! { <span class="status" data-testid="run-status">{crate::i18n::status(session.lang.get(), &s)}</span> })}
            {move || current_run.get().map(|run| {
                let steps = run["steps"].as_array().cloned().unwrap_or_default();
                view! {
                    <div class="run-steps" data-testid="run-steps">
                        <div class="hint">{format!("{} · v{}", run["id"].as_str().unwrap_or(""), run["version"])}</div>
                        {run["error"].as_str().map(|e| view! { <div class="field-error" data-testid="run-error">{e.to_owned()}</div> })}
                        <table>
                            {steps.into_iter().map(|step| {
                                let seq = step["seq"].as_i64().unwrap_or(0);
                                let status = step["status"].as_str().unwrap_or("").to_owned();
                                let detail = step.clone();
                                view! {
                                    <tr class="step" data-testid=format!("step-{seq}") on:click=move |_| open_step.set(Some(seq))>
                                        <td data-testid=format!("step-node-{seq}")>{
                                            // The node's label in the version on the canvas (the run's), else its id.
                                            let node = step["node"].as_str().unwrap_or("").to_owned();
                                            move || ed.with_shown(|d| d.node(&node).and_then(|n| n.label.clone()).unwrap_or_else(|| node.clone()))
                                        }</td>
                                        <td>{
                                            let status = status.clone();
                                            move || crate::i18n::step_status(session.lang.get(), &status)
                                        }</td>
                                        <td>{format!("#{}", step["attempt"])}</td>
                                        <td>{format!("{} ms", step["duration_ms"])}</td>
                                    </tr>
                                    {move || (open_step.get() == Some(seq)).then(|| view! {
                                        <tr><td colspan="4"><pre class="step-detail" data-testid="step-detail">{
                                            serde_json::to_string_pretty(&json!({"input": detail["input"], "output": detail["output"], "error": detail["error"]})).unwrap_or_default()
                                        }</pre></td></tr>
                                    })}
                                }
                            }).collect_view()}
                        </table>
                    </div>
                }
            })}
            <h3>{move || session.t(Text::RecentRuns)}</h3>
            <Transition fallback=|| ()>
                {move || runs.get().map(|r| match r {
                    Ok(v) => v["runs"].as_array().cloned().unwrap_or_default().into_iter().map(|run| {
                        let id = run["id"].as_str().unwrap_or("").to_owned();
                        let status = run["status"].as_str().unwrap_or("").to_owned();
                        let open = id.clone();
                        view! {
                            <div class="run-row" data-testid=format!("run-row-{id}") on:click=move |_| show_run(open.clone())>
                                {run["test"].as_bool().unwrap_or(false).then(|| view! {
                                    <span class="tag" data-testid=format!("run-test-{id}")>{move || session.t(Text::TestRunTag)}</span>" "
                                })}
                                <span class=format!("status {status}") data-testid=format!("run-row-status-{id}")>{
                                    let status = status.clone();
                                    move || crate::i18n::status(session.lang.get(), &status)
                                }</span>
                                <span class="hint">{format!(" v{} · {}", run["version"], crate::words::local_time(run["created_at"].as_str()))}</span>
                            </div>
                        }
                    }).collect_view().into_any(),
                    Err(e) => view! { <p class="error">{format!("{e:?}")}</p> }.into_any(),
                })}
            </Transition>
            <h3>{move || session.t(Text::Versions)}</h3>
            {move || diff_text.get().map(|t| view! { <div class="diff" data-testid="diff-summary">{t}</div> })}
            <Transition fallback=|| ()>
                {move || versions.get().map(|r| match r {
                    Ok(v) => v["versions"].as_array().cloned().unwrap_or_default().into_iter().map(|ver| {
                        let n = ver["number"].as_i64().unwrap_or(0);
                        let published = ver["published"].as_bool().unwrap_or(false);
                        view! {
                            <div class="version-row" data-testid=format!("version-{n}")>
                                <strong>{format!("v{n}")}</strong>
                                {published.then(|| view! { <span class="badge" data-testid=format!("published-{n}")>{session.t(Text::PublishedBadge)}</span> })}
                                <span class="hint">{format!(" {} · {}", ver["author"].as_str().unwrap_or(""), ver["message"].as_str().unwrap_or(""))}</span>
                                <div>
                                    <button data-testid=format!("view-{n}") on:click=move |_| {
                                        let (token, id) = (token(), flow_id.get_value());
                                        leptos::task::spawn_local(async move { show_version(&token, &id, n, ed).await });
                                    }>{session.t(Text::View)}</button>
                                    <button data-testid=format!("compare-{n}") on:click=move |_| compare(n)>{session.t(Text::Compare)}</button>
                                    <button data-testid=format!("publish-{n}") on:click=move |_| act("publish", n)>{session.t(Text::Publish)}</button>
                                    <button data-testid=format!("rollback-{n}") on:click=move |_| act("rollback", n)>{session.t(Text::Rollback)}</button>
                                </div>
                            </div>
                        }
                    }).collect_view().into_any(),
                    Err(e) => view! { <p class="error">{format!("{e:?}")}</p> }.into_any(),
                })}
            </Transition>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_or_behaviour_sample_round_trips_through_the_test_input() {
        let sample = json!({"event": {"id": "v-1", "name": "page_view", "lead": "east-1"}});
        for kind in ["event", "behaviour"] {
            let shape = TriggerShape {
                kind: kind.into(),
                ..TriggerShape::default()
            };
            let typed = sample_part(kind, &sample);
            assert_eq!(test_run_body(&shape, typed)["trigger"], sample, "{kind}");
        }
        let manual = TriggerShape {
            kind: "manual".into(),
            ..TriggerShape::default()
        };
        assert_eq!(
            test_run_body(&manual, json!({"n": 1}))["trigger"],
            json!({"input": {"n": 1}})
        );
    }
}
