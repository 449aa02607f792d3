//! The inbox: what flows' Notify nodes said, newest first, by recipient; a message links to
//! its lead and can be marked read.

use leptos::prelude::*;
use serde_json::Value;

use crate::api;
use crate::i18n::Text;
use crate::{Page, Session};

#[component]
pub fn InboxPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let recipient = RwSignal::new(String::new());
    let unread_only = RwSignal::new(false);
    // Bumped to load again after a message is marked read.
    let reload = RwSignal::new(0u32);
    let list = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        let (who, unread) = (recipient.get(), unread_only.get());
        reload.track();
        async move {
            let mut path = format!("/api/v1/inbox?unread={unread}");
            if !who.trim().is_empty() {
                path.push_str(&format!(
                    "&recipient={}",
                    js_sys::encode_uri_component(who.trim())
                ));
            }
            api::get_json(&token, &path).await
        }
    });
    let mark = move |id: String| {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            let path = format!("/api/v1/inbox/{}/read", js_sys::encode_uri_component(&id));
            if api::post_json(&token, &path, &serde_json::json!({}))
                .await
                .is_ok()
            {
                reload.update(|n| *n += 1);
            }
        });
    };
    let messages = move |v: &Value| {
        let list = v["messages"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return view! { <p class="empty" data-testid="no-messages">{move || session.t(Text::NoMessages)}</p> }
                .into_any();
        }
        view! {
            <ul class="inbox" data-testid="messages">
                {list.into_iter().map(|m| {
                    let id = m["id"].as_str().unwrap_or_default().to_owned();
                    let lead = m["lead"].as_str().map(str::to_owned);
                    let read = !m["read_at"].is_null();
                    let when = crate::words::local_time(m["created_at"].as_str());
                    view! {
                        <li class:read=read data-testid="message">
                            <div class="message-head">
                                <strong data-testid="message-title">{m["title"].as_str().unwrap_or_default().to_owned()}</strong>
                                <span class="hint">{format!(" → {} · {when}", m["recipient"].as_str().unwrap_or_default())}</span>
                            </div>
                            <div data-testid="message-body">{m["body"].as_str().unwrap_or_default().to_owned()}</div>
                            {lead.map(|l| view! {
                                <button type="button" class="link" data-testid="message-lead"
                                    on:click=move |_| session.go(Page::Lead(l.clone()))>{move || session.t(Text::Lead)}</button>
                            })}
                            {(!read).then(|| view! {
                                <button type="button" class="small" data-testid="message-read"
                                    on:click=move |_| mark(id.clone())>{move || session.t(Text::MarkRead)}</button>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        }
        .into_any()
    };
    view! {
        <div class="card" data-testid="inbox-page">
            <h2>{move || session.t(Text::Inbox)}</h2>
            <p>
                <label class="inline">{move || session.t(Text::Recipient)}</label>
                <input type="text" data-testid="inbox-recipient" placeholder=move || session.t(Text::AllRecipients)
                    prop:value=move || recipient.get() on:change=move |ev| recipient.set(event_target_value(&ev)) />
                <label class="inline">
                    <input type="checkbox" data-testid="inbox-unread" prop:checked=move || unread_only.get()
                        on:change=move |ev| unread_only.set(event_target_checked(&ev)) />
                    {move || session.t(Text::UnreadOnly)}
                </label>
            </p>
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || list.get().map(|result| match result {
                    Ok(v) => messages(&v),
                    Err(e) => session.failed(e, "inbox-error"),
                })}
            </Transition>
        </div>
    }
}
