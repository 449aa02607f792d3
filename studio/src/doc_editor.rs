//! A per-workspace document edited in a page as a whole (the signal lexicon, the
//! next-best-action rules): loaded once (the built-in one until the workspace saves its
//! own), edited as a draft that the page checks as it goes, saved in one `PUT`, discarded
//! by loading again.

use leptos::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::say;

/// A draft's compiled form (a detector, a categoriser), held in a memo: equal only to
/// itself, so the memo changes with every compile without comparing what it holds.
pub struct Compiled<T>(pub std::sync::Arc<T>);

impl<T> Clone for Compiled<T> {
    fn clone(&self) -> Self {
        Compiled(self.0.clone())
    }
}

impl<T> PartialEq for Compiled<T> {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What a page keeps about its document; every part is a signal the page reads.
pub struct DocEditor<T: Send + Sync + 'static> {
    pub draft: RwSignal<Option<T>>,
    /// Still the built-in document: the workspace has not saved its own.
    pub builtin: RwSignal<bool>,
    pub dirty: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
    /// Said after a save.
    pub notice: RwSignal<Option<String>>,
    session: Session,
    path: &'static str,
    /// The document in the `GET` answer (`{builtin, …}`).
    read: fn(&Value) -> Value,
    /// What a save says, zh and en.
    saved: (&'static str, &'static str),
}

impl<T: Send + Sync + 'static> Clone for DocEditor<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for DocEditor<T> {}

impl<T> DocEditor<T>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// An editor of the document at `path` (`GET` to load, `PUT` to save), loading it now.
    pub fn new(
        session: Session,
        path: &'static str,
        read: fn(&Value) -> Value,
        saved: (&'static str, &'static str),
    ) -> Self {
        let editor = DocEditor {
            draft: RwSignal::new(None),
            builtin: RwSignal::new(true),
            dirty: RwSignal::new(false),
            error: RwSignal::new(None),
            notice: RwSignal::new(None),
            session,
            path,
            read,
            saved,
        };
        editor.load();
        editor
    }

    fn token(&self) -> String {
        self.session.token.get_untracked().unwrap_or_default()
    }

    /// Loads the saved (or built-in) document, dropping the draft's changes.
    pub fn load(self) {
        leptos::task::spawn_local(async move {
            match api::get_json(&self.token(), self.path).await {
                Ok(v) => {
                    self.builtin.set(v["builtin"].as_bool().unwrap_or(true));
                    match serde_json::from_value::<T>((self.read)(&v)) {
                        Ok(doc) => self.draft.set(Some(doc)),
                        Err(e) => self.error.set(Some(e.to_string())),
                    }
                    self.dirty.set(false);
                    self.notice.set(None);
                }
                Err(ApiError::Unauthorized) => self.session.sign_out(),
                Err(ApiError::Other(m)) => self.error.set(Some(m)),
            }
        });
    }

    /// Changes the draft.
    pub fn edit(self, f: &dyn Fn(&mut T)) {
        self.draft.update(|d| {
            if let Some(d) = d {
                f(d);
            }
        });
        self.dirty.set(true);
        self.notice.set(None);
    }

    /// Saves the draft; the server checks it again and answers with its problems.
    pub fn save(self) {
        let Some(doc) = self.draft.get_untracked() else {
            return;
        };
        leptos::task::spawn_local(async move {
            let body = serde_json::to_value(&doc).unwrap_or(Value::Null);
            match api::put_json(&self.token(), self.path, &body).await {
                Ok(_) => {
                    self.error.set(None);
                    self.dirty.set(false);
                    self.builtin.set(false);
                    let (zh, en) = self.saved;
                    self.notice
                        .set(Some(say(self.session.lang.get_untracked(), zh, en)));
                }
                Err(ApiError::Unauthorized) => self.session.sign_out(),
                Err(ApiError::Other(m)) => self.error.set(Some(m)),
            }
        });
    }
}

/// The banners above a document page: still built-in, an error, a save's notice. Test ids
/// are `{prefix}-builtin`, `{prefix}-error` and `{prefix}-notice`.
#[component]
pub fn Banners(
    builtin: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
    prefix: &'static str,
    /// What "still built-in" means here, zh and en.
    builtin_words: (&'static str, &'static str),
) -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        {move || builtin.get().then(|| view! {
            <p class="banner info" data-testid=format!("{prefix}-builtin")>
                {say(session.lang.get(), builtin_words.0, builtin_words.1)}</p>
        })}
        {move || error.get().map(|e| view! { <p class="banner error" data-testid=format!("{prefix}-error")>{e}</p> })}
        {move || notice.get().map(|n| view! { <p class="banner ok" data-testid=format!("{prefix}-notice")>{n}</p> })}
    }
}
