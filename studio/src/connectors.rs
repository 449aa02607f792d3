//! The connectors admin page: every connector with its versions (enable/disable), the
//! capabilities it asked for with grant/revoke, and its secrets (write-only: the page
//! only ever learns whether one is set); for one that receives requests, where they go and
//! how the recent ones went; WeCom connected in the five fields its console gives.

use leptos::prelude::*;
use serde_json::{Value, json};

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::{Lang, Text, say};

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
    // Said after a change that reloads the list (the cards are drawn again).
    let notice = RwSignal::new(None::<String>);
    let refresh = Callback::new(move |_| list.refetch());
    view! {
        <div class="card" data-testid="connectors-page">
            <h2>{move || session.t(Text::Connectors)}</h2>
            <p><button data-testid="back-to-flows" on:click=move |_| session.go(crate::Page::Flows)>
                {move || session.t(Text::BackToFlows)}</button></p>
            {move || error.get().map(|e| view! { <p class="error" data-testid="connectors-error">{e}</p> })}
            {move || notice.get().map(|n| view! { <p class="banner ok" data-testid="connectors-notice">{n}</p> })}
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || list.get().map(|result| match result {
                    Ok(v) => {
                        let items = v["connectors"].as_array().cloned().unwrap_or_default();
                        if items.is_empty() {
                            return view! { <p class="empty" data-testid="no-connectors">{session.t(Text::NoConnectors)}</p> }.into_any();
                        }
                        items.into_iter().map(|c| view! { <ConnectorCard c=c error=error notice=notice refresh=refresh /> }).collect_view().into_any()
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
    notice: RwSignal<Option<String>>,
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
    let inbound = c["inbound"].as_bool().unwrap_or(false).then(|| {
        let health = c["inbound_health"].clone();
        view! {
            {inbound_help(&name)}
            <h4>{move || say(session.lang.get(), "最近收到的请求", "Recent deliveries")}</h4>
            {move || inbound_health(&health, session.lang.get())}
        }
    });
    let connect = (name == "wecom")
        .then(|| view! { <WeComConnect c=c.clone() error=error notice=notice refresh=refresh /> });
    view! {
        <section class="connector" data-testid=format!("connector-{name}")>
            <h3>{title}" "<span class="hint">{name.clone()}</span></h3>
            <p class="hint">{c["description"].as_str().unwrap_or_default().to_owned()}</p>
            {connect}
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

/// One field of the WeCom connect form: the secret it is saved as, its words, whether it is
/// hidden as typed, and what a right value looks like.
struct WeComField {
    secret: &'static str,
    zh: &'static str,
    en: &'static str,
    hidden: bool,
    check: fn(&str) -> bool,
    /// What a wrong value is told, zh and en.
    wrong: (&'static str, &'static str),
}

fn alnum(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// What WeCom's admin console gives, field by field, checked as it is typed.
const WECOM_FIELDS: [WeComField; 5] = [
    WeComField {
        secret: "corp_id",
        zh: "企业 ID（CorpID，“我的企业”页底部，以 ww 开头）",
        en: "Corp ID (bottom of \"My company\", starts with ww)",
        hidden: false,
        check: |v| v.len() <= 64 && alnum(v),
        wrong: (
            "企业 ID 只由字母和数字组成",
            "a corp id is letters and digits",
        ),
    },
    WeComField {
        secret: "agent_id",
        zh: "应用 AgentId（应用详情页）",
        en: "App AgentId (the app's page)",
        hidden: false,
        check: |v| !v.is_empty() && v.len() <= 10 && v.chars().all(|c| c.is_ascii_digit()),
        wrong: (
            "AgentId 是一串数字，例如 1000002",
            "an AgentId is a number, such as 1000002",
        ),
    },
    WeComField {
        secret: "secret",
        zh: "应用 Secret",
        en: "App Secret",
        hidden: true,
        check: |v| v.len() <= 128 && alnum(&v.replace(['-', '_'], "")),
        wrong: (
            "Secret 只由字母、数字、- 和 _ 组成",
            "a Secret is letters, digits, - and _",
        ),
    },
    WeComField {
        secret: "token",
        zh: "接收消息 Token",
        en: "Callback Token",
        hidden: true,
        check: |v| v.len() <= 32 && alnum(v),
        wrong: (
            "Token 最多 32 位字母或数字",
            "a Token is at most 32 letters or digits",
        ),
    },
    WeComField {
        secret: "encoding_aes_key",
        zh: "接收消息 EncodingAESKey",
        en: "Callback EncodingAESKey",
        hidden: true,
        check: |v| v.len() == 43 && alnum(v),
        wrong: (
            "EncodingAESKey 是 43 位字母或数字",
            "an EncodingAESKey is 43 letters or digits",
        ),
    },
];

/// The WeCom API host granted when connecting (a private deployment grants its own).
const WECOM_HOST: &str = "qyapi.weixin.qq.com";

/// Connects WeCom in the five fields its admin console gives. Each is saved as a secret
/// (write-only: the form says only whether one is set, and an empty field keeps it), and
/// the connector is granted them, the key-value store and WeCom's API host.
#[component]
fn WeComConnect(
    c: Value,
    error: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
    refresh: Callback<()>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let set: Vec<String> = c["secrets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["set"].as_bool().unwrap_or(false))
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let values: [RwSignal<String>; 5] = std::array::from_fn(|_| RwSignal::new(String::new()));
    let (hosts, secrets, _) = grants_of(&c);
    // Every typed value that is wrong, in words; empty fields keep what is saved.
    let problems = Memo::new(move |_| {
        let lang = lang();
        WECOM_FIELDS
            .iter()
            .zip(values)
            .filter_map(|(f, v)| {
                let v = v.get();
                let v = v.trim();
                if v.is_empty() {
                    return None;
                }
                (!(f.check)(v))
                    .then_some(f.wrong)
                    .map(|(zh, en)| format!("{}：{}", say(lang, f.zh, f.en), say(lang, zh, en)))
            })
            .collect::<Vec<_>>()
    });
    let missing = {
        let set = set.clone();
        Memo::new(move |_| {
            let lang = lang();
            WECOM_FIELDS
                .iter()
                .zip(values)
                .filter(|(f, v)| {
                    !set.iter().any(|s| s == f.secret) && v.with(|v| v.trim().is_empty())
                })
                .map(|(f, _)| say(lang, f.zh, f.en))
                .collect::<Vec<_>>()
        })
    };
    let save = move |_| {
        let token = session.token.get_untracked().unwrap_or_default();
        let typed: Vec<(&'static str, String)> = WECOM_FIELDS
            .iter()
            .zip(values)
            .map(|(f, v)| (f.secret, v.get_untracked().trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut hosts = hosts.clone();
        if !hosts.iter().any(|h| h == WECOM_HOST) {
            hosts.push(WECOM_HOST.to_owned());
        }
        let mut secrets = secrets.clone();
        for f in &WECOM_FIELDS {
            if !secrets.iter().any(|s| s == f.secret) {
                secrets.push(f.secret.to_owned());
            }
        }
        let lang = session.lang.get_untracked();
        leptos::task::spawn_local(async move {
            let grants = json!({ "hosts": hosts, "secrets": secrets, "kv": true });
            let mut result =
                api::put_json(&token, "/api/v1/connectors/wecom/grants", &grants).await;
            for (secret, value) in typed {
                if result.is_err() {
                    break;
                }
                let path = format!("/api/v1/connectors/wecom/secrets/{secret}");
                result = api::put_json(&token, &path, &json!({ "value": value })).await;
            }
            match result {
                Ok(_) => {
                    for v in values {
                        v.set(String::new());
                    }
                    error.set(None);
                    notice.set(Some(say(
                        lang,
                        "已保存。把上面的回调地址和同一组 Token、EncodingAESKey 填到企业微信后台后，下面会显示最近一次回调。",
                        "Saved. Once WeCom's admin console has the callback address above with the same Token and EncodingAESKey, the latest callback shows below.",
                    )));
                    refresh.run(());
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    view! {
        <div class="wecom-connect" data-testid="wecom-connect">
            <h4>{move || say(lang(), "连接企业微信", "Connect WeCom")}</h4>
            <p class="hint">{move || say(lang(),
                "从企业微信管理后台抄下这五项。密钥只写不读：保存后页面只显示“已设置”；留空的项保持原值。",
                "Copy these five from WeCom's admin console. Secrets are write-only: once saved the page shows only \"set\"; a field left empty keeps its value.")}</p>
            {WECOM_FIELDS.iter().zip(values).map(|(f, value)| {
                let is_set = set.iter().any(|s| s == f.secret);
                let secret = f.secret;
                view! {
                    <label class="grant-row">
                        <span class="field-name">{move || say(lang(), f.zh, f.en)}</span>
                        <input type=if f.hidden { "password" } else { "text" } autocomplete="off"
                            data-testid=format!("wecom-{secret}")
                            placeholder=move || if is_set { say(lang(), "已设置；输入新值以替换", "set; type a new value to replace it") } else { String::new() }
                            prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev)) />
                        <span class=if is_set { "status succeeded" } else { "status" } data-testid=format!("wecom-{secret}-status")>
                            {move || session.t(if is_set { Text::SecretSet } else { Text::SecretNotSet })}</span>
                    </label>
                }
            }).collect_view()}
            {move || (!problems.with(Vec::is_empty)).then(|| view! {
                <ul class="error" data-testid="wecom-connect-problems">{problems.get().into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
            })}
            {move || (!missing.with(Vec::is_empty)).then(|| view! {
                <p class="hint" data-testid="wecom-connect-missing">{format!("{}{}", say(lang(), "还缺：", "Still missing: "), missing.get().join(say(lang(), "、", ", ").as_str()))}</p>
            })}
            <p class="actions">
                <button class="primary" data-testid="wecom-connect-save"
                    disabled=move || !problems.with(Vec::is_empty) || values.iter().all(|v| v.with(|v| v.trim().is_empty()))
                    on:click=save>{move || say(lang(), "保存并连接", "Save and connect")}</button>
            </p>

        </div>
    }
}

/// When the connector last answered a delivery and when one last failed, with why.
fn inbound_health(health: &Value, lang: Lang) -> impl IntoView + use<> {
    let when = |v: &Value| {
        v.as_str()
            .map(|s| s.get(..19).unwrap_or(s).replace('T', " "))
            .unwrap_or_default()
    };
    if health.is_null() {
        return view! { <p class="hint" data-testid="inbound-health">{say(lang, "还没有收到过请求。", "Nothing received yet.")}</p> }.into_any();
    }
    let ok = health["ok_total"].as_i64().unwrap_or(0);
    let failed = health["failed_total"].as_i64().unwrap_or(0);
    let last_ok = if ok > 0 {
        say(
            lang,
            &format!(
                "最近一次成功：{} UTC（共 {ok} 次）",
                when(&health["last_ok_at"])
            ),
            &format!(
                "Last answered: {} UTC ({ok} in all)",
                when(&health["last_ok_at"])
            ),
        )
    } else {
        say(lang, "还没有成功过。", "None answered yet.")
    };
    let last_failed = (failed > 0).then(|| {
        let status = health["last_status"].as_i64().unwrap_or(0);
        let reason = health["last_failure"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        say(
            lang,
            &format!(
                "失败 {failed} 次；最近一次 {} UTC，HTTP {status}：{reason}",
                when(&health["last_failed_at"])
            ),
            &format!(
                "{failed} failed; the last at {} UTC, HTTP {status}: {reason}",
                when(&health["last_failed_at"])
            ),
        )
    });
    view! {
        <div data-testid="inbound-health">
            <p class="hint" data-testid="inbound-health-ok">{last_ok}</p>
            {last_failed.map(|f| view! { <p class="error" data-testid="inbound-health-failed">{f}</p> })}
        </div>
    }.into_any()
}
