//! The connectors admin page: every connector with its versions (enable/disable), the
//! capabilities it asked for with grant/revoke, and its secrets (write-only: the page
//! only ever learns whether one is set).

use leptos::prelude::*;
use serde_json::{Value, json};

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::{Text, say};

/// Granted hosts, granted secrets, key-value store granted.
type GrantSet = (Vec<String>, Vec<String>, bool);

/// The grant set as the API takes it.
fn grants_of(c: &Value) -> GrantSet {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        list(&c["grants"]["hosts"]),
        list(&c["grants"]["secrets"]),
        c["grants"]["kv"].as_bool().unwrap_or(false),
    )
}

#[component]
pub fn ConnectorsPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let list = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        async move { api::get_json(&token, "/api/v1/connectors").await }
    });
    let error = RwSignal::new(None::<String>);
    let refresh = Callback::new(move |_| list.refetch());
    view! {
        <div class="card" data-testid="connectors-page">
            <h2>{move || session.t(Text::Connectors)}</h2>
            <p><button data-testid="back-to-flows" on:click=move |_| session.go(crate::Page::Flows)>
                {move || session.t(Text::BackToFlows)}</button></p>
            {move || error.get().map(|e| view! { <p class="error" data-testid="connectors-error">{e}</p> })}
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || list.get().map(|result| match result {
                    Ok(v) => {
                        let items = v["connectors"].as_array().cloned().unwrap_or_default();
                        if items.is_empty() {
                            return view! { <p class="empty" data-testid="no-connectors">{session.t(Text::NoConnectors)}</p> }.into_any();
                        }
                        items.into_iter().map(|c| view! { <ConnectorCard c=c error=error refresh=refresh /> }).collect_view().into_any()
                    }
                    Err(e) => session.failed(e, "connectors-load-error"),
                })}
            </Transition>
        </div>
    }
}

/// Runs an API call, then refreshes the list or shows the error.
fn act(
    error: RwSignal<Option<String>>,
    refresh: Callback<()>,
    call: impl std::future::Future<Output = Result<Value, ApiError>> + 'static,
) {
    leptos::task::spawn_local(async move {
        match call.await {
            Ok(_) => {
                error.set(None);
                refresh.run(());
            }
            Err(ApiError::Unauthorized) => error.set(Some("401".into())),
            Err(ApiError::Other(m)) => error.set(Some(m)),
        }
    });
}

#[component]
fn ConnectorCard(
    c: Value,
    error: RwSignal<Option<String>>,
    refresh: Callback<()>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let name = c["name"].as_str().unwrap_or_default().to_owned();
    let lang = session.lang.get_untracked().code();
    let title = c["display"][lang].as_str().unwrap_or(&name).to_owned();
    let (hosts, secrets, kv) = grants_of(&c);
    let grants = StoredValue::new((hosts.clone(), secrets.clone(), kv));
    let token = move || session.token.get_untracked().unwrap_or_default();
    let n = StoredValue::new(name.clone());
    // Replaces the grant set with `change` applied.
    let put_grants = move |change: Box<dyn FnOnce(&mut GrantSet)>| {
        let mut g = grants.get_value();
        change(&mut g);
        let body = json!({ "hosts": g.0, "secrets": g.1, "kv": g.2 });
        let path = format!("/api/v1/connectors/{}/grants", n.get_value());
        let t = token();
        act(error, refresh, async move {
            api::put_json(&t, &path, &body).await
        });
    };
    let versions = c["versions"].as_array().cloned().unwrap_or_default();
    let requested_hosts: Vec<String> = c["requested"]["hosts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let wildcard = requested_hosts.iter().any(|h| h.contains('*'));
    let new_host = RwSignal::new(String::new());
    let secret_rows = c["secrets"].as_array().cloned().unwrap_or_default();
    let kv_requested = c["requested"]["kv"].as_bool().unwrap_or(false);
    let inbound = c["inbound"]
        .as_bool()
        .unwrap_or(false)
        .then(|| inbound_help(&name));
    view! {
        <section class="connector" data-testid=format!("connector-{name}")>
            <h3>{title}" "<span class="hint">{name.clone()}</span></h3>
            <p class="hint">{c["description"].as_str().unwrap_or_default().to_owned()}</p>
            {inbound}
            <h4>{move || session.t(Text::Versions)}</h4>
            <table><tbody>
                {versions.into_iter().map(|v| {
                    let version = v["version"].as_str().unwrap_or_default().to_owned();
                    let enabled = v["enabled"].as_bool().unwrap_or(false);
                    let path = format!("/api/v1/connectors/{}/versions/{version}", n.get_value());
                    let ops = v["operations"].as_array().cloned().unwrap_or_default().iter().map(|o| {
                        let t = o["display"][lang].as_str().or(o["name"].as_str()).unwrap_or_default().to_owned();
                        if o["side_effects"].as_bool().unwrap_or(false) { format!("{t} ⚡") } else { t }
                    }).collect::<Vec<_>>().join(" · ");
                    view! {
                        <tr>
                            <td>{version.clone()}</td>
                            <td><label><input type="checkbox" data-testid=format!("enabled-{}-{version}", n.get_value()) prop:checked=enabled
                                on:change=move |ev| {
                                    let body = json!({ "enabled": event_target_checked(&ev) });
                                    let (t, path) = (token(), path.clone());
                                    act(error, refresh, async move { api::patch_json(&t, &path, &body).await });
                                } />{move || session.t(Text::Enabled)}</label></td>
                            <td class="hint">{ops}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody></table>
            <h4>{move || session.t(Text::Requested)}</h4>
            <div class="capabilities">
                <strong>{move || session.t(Text::Hosts)}</strong>
                <ul>
                    {requested_hosts.iter().filter(|h| !h.contains('*')).map(|h| {
                        let on = hosts.contains(h);
                        let host = h.clone();
                        view! { <li><label><input type="checkbox" data-testid=format!("grant-host-{}-{h}", n.get_value()) prop:checked=on
                            on:change=move |ev| {
                                let grant = event_target_checked(&ev);
                                let host = host.clone();
                                put_grants(Box::new(move |g| {
                                    g.0.retain(|x| *x != host);
                                    if grant { g.0.push(host); }
                                }));
                            } />{h.clone()}</label></li> }
                    }).collect_view()}
                    {hosts.iter().filter(|h| !requested_hosts.contains(h)).map(|h| {
                        let host = h.clone();
                        view! { <li data-testid=format!("granted-host-{}-{h}", n.get_value())>{h.clone()}" "
                            <button data-testid=format!("revoke-host-{}-{h}", n.get_value()) on:click=move |_| {
                                let host = host.clone();
                                put_grants(Box::new(move |g| g.0.retain(|x| *x != host)));
                            }>{move || session.t(Text::Revoke)}</button></li> }
                    }).collect_view()}
                </ul>
                {wildcard.then(|| view! {
                    <p class="hint" title=requested_hosts.join(", ")>{move || session.t(Text::AnyHostHint)}</p>
                    <div class="grant-row">
                        <input type="text" data-testid=format!("grant-host-input-{}", n.get_value()) placeholder=move || session.t(Text::HostPlaceholder)
                            prop:value=move || new_host.get() on:input=move |ev| new_host.set(event_target_value(&ev)) />
                        <button data-testid=format!("grant-host-add-{}", n.get_value()) on:click=move |_| {
                            let host = new_host.get_untracked().trim().to_owned();
                            if host.is_empty() { return; }
                            new_host.set(String::new());
                            put_grants(Box::new(move |g| if !g.0.contains(&host) { g.0.push(host) }));
                        }>{move || session.t(Text::Grant)}</button>
                    </div>
                })}
                <strong data-testid=format!("secrets-heading-{}", n.get_value())>{move || session.t(Text::Secrets)}</strong>
                <ul>
                    {secret_rows.into_iter().map(|s| {
                        let secret = s["name"].as_str().unwrap_or_default().to_owned();
                        let is_set = s["set"].as_bool().unwrap_or(false);
                        let granted = secrets.contains(&secret);
                        let value = RwSignal::new(String::new());
                        let (s1, s2) = (secret.clone(), secret.clone());
                        view! {
                            <li>
                                <label><input type="checkbox" data-testid=format!("grant-secret-{}-{secret}", n.get_value()) prop:checked=granted
                                    on:change=move |ev| {
                                        let grant = event_target_checked(&ev);
                                        let secret = s1.clone();
                                        put_grants(Box::new(move |g| {
                                            g.1.retain(|x| *x != secret);
                                            if grant { g.1.push(secret); }
                                        }));
                                    } />{secret.clone()}</label>
                                " "
                                <span class=if is_set { "status succeeded" } else { "status" } data-testid=format!("secret-status-{}-{secret}", n.get_value())>
                                    {move || session.t(if is_set { Text::SecretSet } else { Text::SecretNotSet })}</span>
                                " "
                                <input type="password" autocomplete="off" data-testid=format!("secret-input-{}-{secret}", n.get_value())
                                    placeholder=move || session.t(Text::SecretPlaceholder)
                                    prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev)) />
                                <button data-testid=format!("secret-save-{}-{secret}", n.get_value()) on:click=move |_| {
                                    let v = value.get_untracked();
                                    if v.is_empty() { return; }
                                    value.set(String::new());
                                    let path = format!("/api/v1/connectors/{}/secrets/{}", n.get_value(), s2);
                                    let t = token();
                                    act(error, refresh, async move { api::put_json(&t, &path, &json!({ "value": v })).await });
                                }>{move || session.t(Text::SaveSecret)}</button>
                            </li>
                        }
                    }).collect_view()}
                </ul>
                {kv_requested.then(|| view! {
                    <label><input type="checkbox" data-testid=format!("grant-kv-{}", n.get_value()) prop:checked=kv
                        on:change=move |ev| {
                            let grant = event_target_checked(&ev);
                            put_grants(Box::new(move |g| g.2 = grant));
                        } />{move || session.t(Text::KeyValueStore)}</label>
                })}
            </div>
        </section>
    }
}

/// A text to copy, with its button.
#[component]
fn CopyLine(text: String, testid: String) -> impl IntoView {
    let session = expect_context::<Session>();
    let copied = RwSignal::new(false);
    let to_copy = text.clone();
    view! {
        <div class="grant-row">
            <code data-testid=testid.clone()>{text}</code>
            <button type="button" class="small" data-testid=format!("copy-{testid}") on:click=move |_| {
                if let Some(w) = web_sys::window() {
                    let _ = w.navigator().clipboard().write_text(&to_copy);
                    copied.set(true);
                }
            }>{move || if copied.get() { session.t(Text::Copied) } else { session.t(Text::Copy) }}</button>
        </div>
    }
}

/// Where a connector that receives requests is reached, and for the product connectors
/// what to paste where: WeCom's callback address, the site's tracking snippet.
fn inbound_help(name: &str) -> impl IntoView + use<> {
    let session = expect_context::<Session>();
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    let base = format!("{origin}/hooks/connectors/{name}");
    let lang = move || session.lang.get();
    let specific = match name {
        "wecom" => view! {
            <p class="hint">{move || say(lang(),
                "在企业微信管理后台“接收消息”里填写下面的 URL，并把同一组 Token 和 EncodingAESKey 填到下方的密钥 token、encoding_aes_key，企业 ID 填到 corp_id。",
                "In WeCom's admin console (receive messages), enter this URL, and give the same Token and EncodingAESKey as the secrets token and encoding_aes_key below, the corp id as corp_id.")}</p>
            <CopyLine text=format!("{base}/callback") testid="wecom-callback-url".to_owned() />
        }
        .into_any(),
        "site-tracking" => view! {
            <p class="hint">{move || say(lang(),
                "把下面这行粘贴到网站每个页面的 <head> 里，并把“写入密钥”换成下方 write_key 密钥里设置的值（多个密钥用逗号分隔）。Segment 的客户端库把主机地址设为上面的接收地址即可。",
                "Paste this line into the <head> of every page of the site, with the write key set as the write_key secret below (several may be listed, separated by commas). Segment's client libraries take the inbound address above as their host.")}</p>
            <CopyLine text=format!("<script async src=\"{base}/snippet.js\" data-key=\"写入密钥\"></script>")
                testid="tracking-snippet".to_owned() />
        }
        .into_any(),
        _ => ().into_any(),
    };
    view! {
        <h4>{move || say(lang(), "接收地址", "Inbound address")}</h4>
        <CopyLine text=base.clone() testid=format!("inbound-url-{name}") />
        {specific}
    }
}
