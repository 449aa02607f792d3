//! In-page dialogs instead of the browser's `confirm` and `prompt`: they speak the studio's
//! language, show what is at stake, and can insist on an answer (a name must not be empty).
//! [`Dialogs::confirm`] and [`Dialogs::ask`] are async: the caller awaits the answer.

use futures::channel::oneshot;
use leptos::prelude::*;

use crate::Session;
use crate::i18n::Text;

/// The dialog on screen, if any (provided at the app's root).
#[derive(Clone, Copy, Debug)]
pub struct Dialogs {
    /// Where the answer goes.
    reply: StoredValue<Option<oneshot::Sender<Option<String>>>>,
    /// What the dialog shows: the message and, for a question, the text it starts from.
    shown: RwSignal<Option<(String, Option<String>)>>,
}

impl Dialogs {
    pub fn new() -> Self {
        Dialogs {
            reply: StoredValue::new(None),
            shown: RwSignal::new(None),
        }
    }

    fn open(&self, message: String, input: Option<String>) -> oneshot::Receiver<Option<String>> {
        let (reply, answer) = oneshot::channel();
        // A question still open is answered "cancel" by the new one.
        if let Some(old) = self.reply.try_update_value(Option::take).flatten() {
            let _ = old.send(None);
        }
        self.reply.set_value(Some(reply));
        self.shown.set(Some((message, input)));
        answer
    }

    fn answer(&self, value: Option<String>) {
        self.shown.set(None);
        if let Some(reply) = self.reply.try_update_value(Option::take).flatten() {
            let _ = reply.send(value);
        }
    }
}

impl Default for Dialogs {
    fn default() -> Self {
        Self::new()
    }
}

impl Dialogs {
    /// Asks yes or no; `true` for yes.
    pub async fn confirm(self, message: String) -> bool {
        matches!(self.open(message, None).await, Ok(Some(_)))
    }

    /// Asks for a text that must not be empty, starting from `initial`; `None` if
    /// cancelled.
    pub async fn ask(self, message: String, initial: String) -> Option<String> {
        self.open(message, Some(initial))
            .await
            .ok()
            .flatten()
            .map(|s| s.trim().to_owned())
    }
}

/// The dialog, drawn over the page while a question is open.
#[component]
pub fn DialogHost() -> impl IntoView {
    let session = expect_context::<Session>();
    let dialogs = session.dialogs;
    let text = RwSignal::new(String::new());
    let missing = RwSignal::new(false);
    let field = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some((_, Some(initial))) = dialogs.shown.get() {
            text.set(initial);
            missing.set(false);
            // Typing goes straight into the field once it is drawn.
            request_animation_frame(move || {
                if let Some(el) = field.get_untracked() {
                    let _ = el.focus();
                    el.select();
                }
            });
        }
    });
    let ok = move || match dialogs.shown.get_untracked() {
        Some((_, Some(_))) => {
            let value = text.get_untracked();
            if value.trim().is_empty() {
                missing.set(true);
            } else {
                dialogs.answer(Some(value));
            }
        }
        Some((_, None)) => dialogs.answer(Some(String::new())),
        None => {}
    };
    let on_key = move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        "Enter" => {
            ev.prevent_default();
            ok();
        }
        "Escape" => dialogs.answer(None),
        _ => {}
    };
    view! {
        {move || dialogs.shown.get().map(|(message, input)| view! {
            <div class="dialog-backdrop" on:keydown=on_key>
                <div class="dialog modal" role="dialog" aria-modal="true" data-testid="dialog">
                    <p data-testid="dialog-message">{message}</p>
                    {input.map(|_| view! {
                        <input type="text" data-testid="dialog-input" node_ref=field
                            prop:value=move || text.get() on:input=move |ev| { text.set(event_target_value(&ev)); missing.set(false); } />
                        {move || missing.get().then(|| view! {
                            <div class="field-error" data-testid="dialog-missing">{session.t(Text::NameRequired)}</div>
                        })}
                    })}
                    <p class="actions">
                        <button class="primary" data-testid="dialog-ok" on:click=move |_| ok()>{move || session.t(Text::Ok)}</button>
                        <button data-testid="dialog-cancel" on:click=move |_| dialogs.answer(None)>{move || session.t(Text::Cancel)}</button>
                    </p>
                </div>
            </div>
        })}
    }
}
