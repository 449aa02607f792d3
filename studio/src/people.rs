//! People: the workspace's users and their roles (changed in place), inviting someone and
//! resetting a password (admins; each gives a one-time link, shown once), and the page such a link
//! opens, where the person sets a password and is signed in.

use leptos::prelude::*;
use serde_json::{Value, json};

use crate::api::{self, ApiError};
use crate::i18n::{Lang, Text, say, tr};
use crate::{Page, Session};

const ROLES: [&str; 4] = ["viewer", "operator", "builder", "admin"];

/// A role in words.
pub fn role_name(lang: Lang, role: &str) -> String {
    match role {
        "viewer" => tr(lang, Text::RoleViewer),
        "operator" => tr(lang, Text::RoleOperator),
        "builder" => tr(lang, Text::RoleBuilder),
        "admin" => tr(lang, Text::RoleAdmin),
        other => other.to_owned(),
    }
}

/// The studio address a ticket opens.
fn ticket_link(ticket: &str) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}/#/ticket/{ticket}")
}

#[component]
pub fn PeoplePage() -> impl IntoView {
    let session = expect_context::<Session>();
    let reload = RwSignal::new(0u32);
    let list = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        reload.track();
        async move { api::get_json(&token, "/api/v1/users").await }
    });
    let name = RwSignal::new(String::new());
    let login = RwSignal::new(String::new());
    let role = RwSignal::new("builder".to_owned());
    let link = RwSignal::new(None::<(Text, String)>);
    let error = RwSignal::new(None::<String>);
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (n, l) = (name.get_untracked(), login.get_untracked());
        if n.trim().is_empty() || l.trim().is_empty() {
            error.set(Some(session.t(Text::InviteNeedsLogin)));
            return;
        }
        let mut body = json!({ "name": n.trim(), "role": role.get_untracked() });
        body[if l.contains('@') { "email" } else { "phone" }] = json!(l.trim());
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            match api::post_json(&token, "/api/v1/users/invites", &body).await {
                Ok(v) => {
                    error.set(None);
                    name.set(String::new());
                    login.set(String::new());
                    link.set(Some((
                        Text::InviteLink,
                        ticket_link(v["ticket"].as_str().unwrap_or_default()),
                    )));
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    let reset = move |id: String| {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            let path = format!("/api/v1/users/{}/reset", js_sys::encode_uri_component(&id));
            match api::post_json(&token, &path, &json!({})).await {
                Ok(v) => link.set(Some((
                    Text::ResetLink,
                    ticket_link(v["ticket"].as_str().unwrap_or_default()),
                ))),
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    let change_role = move |id: String, role: String| {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            let path = format!("/api/v1/users/{}", js_sys::encode_uri_component(&id));
            match api::patch_json(&token, &path, &json!({ "role": role })).await {
                Ok(_) => error.set(None),
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
            reload.update(|n| *n += 1);
        });
    };
    // Disabling asks first: the person is signed out at once and cannot sign in.
    let set_disabled = move |id: String, name: String, disabled: bool| {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            let lang = session.lang.get_untracked();
            let question = say(
                lang,
                &format!(
                    "停用「{name}」的账号？对方会立即退出登录，之后无法登录，也不再出现在负责人和收件人的候选中。"
                ),
                &format!(
                    "Disable {name}'s account? They are signed out at once, cannot sign in, and are no longer offered as an owner or recipient."
                ),
            );
            if disabled && !session.dialogs.confirm(question).await {
                return;
            }
            let path = format!("/api/v1/users/{}", js_sys::encode_uri_component(&id));
            match api::patch_json(&token, &path, &json!({ "disabled": disabled })).await {
                Ok(_) => error.set(None),
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
            reload.update(|n| *n += 1);
        });
    };
    let table = move |v: Value| {
        let lang = session.lang.get();
        let rows = v["users"].as_array().cloned().unwrap_or_default();
        view! {
            <table data-testid="people">
                <thead><tr>
                    <th>{session.t(Text::Name)}</th>
                    <th>{session.t(Text::Email)}" / "{session.t(Text::Phone)}</th>
                    <th>{session.t(Text::Role)}</th>
                    <th></th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|u| {
                        let id = u["id"].as_str().unwrap_or_default().to_owned();
                        let reach = u["email"].as_str().or(u["phone"].as_str()).unwrap_or_default().to_owned();
                        let person = u["name"].as_str().unwrap_or_default().to_owned();
                        let disabled = u["disabled"].as_bool().unwrap_or(false);
                        let (did, dname) = (id.clone(), person.clone());
                        view! {
                            <tr data-testid=format!("person-{reach}") class:disabled=disabled>
                                <td>{person.clone()}{disabled.then(|| view! {
                                    " "<span class="chip" data-testid=format!("disabled-{reach}")>{say(lang, "已停用", "disabled")}</span>
                                })}</td>
                                <td>{reach.clone()}</td>
                                <td>{
                                    let (uid, current) = (id.clone(), u["role"].as_str().unwrap_or_default().to_owned());
                                    view! {
                                        <select data-testid=format!("role-{reach}") prop:value=current.clone()
                                            on:change=move |ev| change_role(uid.clone(), event_target_value(&ev))>
                                            {ROLES.map(|r| view! { <option value=r selected=current == r>{role_name(lang, r)}</option> }).collect_view()}
                                        </select>
                                    }
                                }</td>
                                <td>
                                    <button type="button" class="small" data-testid=format!("reset-{reach}")
                                        on:click=move |_| reset(id.clone())>{session.t(Text::ResetPassword)}</button>
                                    " "
                                    <button type="button" class="small" data-testid=format!("toggle-disabled-{reach}")
                                        on:click=move |_| set_disabled(did.clone(), dname.clone(), !disabled)>
                                        {if disabled { say(lang, "启用", "Enable") } else { say(lang, "停用", "Disable") }}
                                    </button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }
    };
    view! {
        <div class="card" data-testid="people-page">
            <h2>{move || session.t(Text::People)}</h2>
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || list.get().map(|r| match r {
                    Ok(v) => table(v).into_any(),
                    Err(e) => session.failed(e, "people-error"),
                })}
            </Transition>
            <h3>{move || session.t(Text::InviteMember)}</h3>
            <form class="invite" on:submit=invite>
                <input type="text" data-testid="invite-name" placeholder=move || session.t(Text::Name)
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                <input type="text" data-testid="invite-login" placeholder=move || session.t(Text::LoginLabel)
                    prop:value=move || login.get() on:input=move |ev| login.set(event_target_value(&ev)) />
                <select data-testid="invite-role" prop:value=move || role.get() on:change=move |ev| role.set(event_target_value(&ev))>
                    {ROLES.map(|r| view! { <option value=r>{move || role_name(session.lang.get(), r)}</option> }).collect_view()}
                </select>
                <button class="primary" type="submit" data-testid="invite">{move || session.t(Text::InviteMember)}</button>
            </form>
            {move || error.get().map(|e| view! { <p class="error" data-testid="people-error">{e}</p> })}
            {move || link.get().map(|(what, l)| view! {
                <p data-testid="ticket-note">{session.t(what)}</p>
                <code data-testid="ticket-link">{l}</code>
            })}
        </div>
    }
}

/// The page an invitation or a reset link opens: set a password, be signed in.
#[component]
pub fn TicketPage(ticket: String) -> impl IntoView {
    let session = expect_context::<Session>();
    let ticket = StoredValue::new(ticket);
    let info = LocalResource::new(move || {
        let t = ticket.get_value();
        async move {
            api::get_json(
                "",
                &format!("/api/v1/tickets/{}", js_sys::encode_uri_component(&t)),
            )
            .await
        }
    });
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let p = password.get_untracked();
        if p.chars().count() < 8 {
            error.set(Some(session.t(Text::PasswordTooShort)));
            return;
        }
        let t = ticket.get_value();
        leptos::task::spawn_local(async move {
            let path = format!("/api/v1/tickets/{}", js_sys::encode_uri_component(&t));
            match api::post_json("", &path, &json!({ "password": p })).await {
                Ok(answer) => {
                    session.signed_in(answer);
                    session.go(Page::Flows);
                }
                Err(ApiError::Other(m)) => error.set(Some(m)),
                Err(ApiError::Unauthorized) => error.set(Some(session.t(Text::TicketInvalid))),
            }
        });
    };
    view! {
        <div class="card signin" data-testid="ticket-page">
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || info.get().map(|r| match r {
                    Ok(v) => view! {
                        <h2>{v["name"].as_str().or(v["email"].as_str()).unwrap_or_default().to_owned()}</h2>
                        <p class="hint">{v["email"].as_str().or(v["phone"].as_str()).unwrap_or_default().to_owned()}</p>
                        <form on:submit=submit>
                            <label for="new-password">{move || session.t(Text::PasswordLabel)}</label>
                            <input id="new-password" type="password" data-testid="new-password" autocomplete="new-password"
                                prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) />
                            <p></p>
                            <button class="primary" type="submit" data-testid="set-password">{move || session.t(Text::SetPassword)}</button>
                        </form>
                        {move || error.get().map(|e| view! { <p class="error" data-testid="ticket-error">{e}</p> })}
                    }.into_any(),
                    Err(_) => view! { <p class="error" data-testid="ticket-invalid">{session.t(Text::TicketInvalid)}</p> }.into_any(),
                })}
            </Transition>
        </div>
    }
}
