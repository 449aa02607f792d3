//! Trellis studio: the browser app business users build flows in. Compiled to
//! `wasm32-unknown-unknown`, served by `trellis serve` at `/`, talking to the server over
//! HTTP only.
//!
//! Pages: sign-in with an API token (kept in session storage), the flow list and the
//! flow editor, leads and their lead cards, the scoring model, and the connectors admin
//! page; each has its own URL (`#/flows/<id>`, `#/leads/<id>`, `#/scoring`,
//! `#/connectors`). Chinese first, English on a switch.

mod api;
mod condition;
mod connectors;
mod contact_policy;
mod dialog;
mod directory;
mod doc_editor;
mod editor;
mod flows;
mod history;
mod i18n;
mod inbox;
mod inspector;
mod leads;
mod lexicon;
mod people;
mod picker;
mod rules;
mod scoring;
mod units;
mod url_categories;
mod utterances;
mod words;

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

use crate::api::{ApiError, FlowSummary};
use crate::i18n::{Lang, Text, tr};

const TOKEN_KEY: &str = "trellis.token";
const LANG_KEY: &str = "trellis.lang";

/// Entry point called by the generated JS glue.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// Waits `ms` milliseconds (a browser timer).
pub(crate) async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Has the browser save `text` as a file called `name`.
pub(crate) fn save_file(text: &str, mime: &str, name: &str) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let fail = |_| "the browser refused the download".to_owned();
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(fail)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| "no document".to_owned())?;
    let a: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(fail)?.unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// What the studio shows, mirrored in the URL's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    Flows,
    Flow(String),
    Leads,
    Lead(String),
    Scoring,
    Connectors,
    Inbox,
    /// The signal lexicon (信号词库).
    Lexicon,
    /// The next-best-action rules (下一步行动).
    Rules,
    /// URL-category rules (网址分类).
    UrlCategories,
    /// The contact policy (联系策略).
    ContactPolicy,
    /// The people directory task units are staffed from (人员目录).
    Directory,
    /// Task units and their templates (作战单元).
    Units,
    People,
    /// An invitation or a password reset, opened from its link.
    Ticket(String),
}

impl Page {
    fn parse(hash: &str) -> Page {
        let path = hash.trim_start_matches('#').trim_start_matches('/');
        let (head, id) = path.split_once('/').unwrap_or((path, ""));
        match (head, id) {
            ("flows", id) if !id.is_empty() => Page::Flow(id.to_owned()),
            ("leads", "") => Page::Leads,
            ("leads", id) => Page::Lead(id.to_owned()),
            ("scoring", _) => Page::Scoring,
            ("connectors", _) => Page::Connectors,
            ("inbox", _) => Page::Inbox,
            ("lexicon", _) => Page::Lexicon,
            ("rules", _) => Page::Rules,
            ("url-categories", _) => Page::UrlCategories,
            ("contact-policy", _) => Page::ContactPolicy,
            ("directory", _) => Page::Directory,
            ("units", _) => Page::Units,
            ("people", _) => Page::People,
            ("ticket", t) if !t.is_empty() => Page::Ticket(t.to_owned()),
            _ => Page::Flows,
        }
    }

    fn hash(&self) -> String {
        match self {
            Page::Flows => String::new(),
            Page::Flow(id) => format!("/flows/{id}"),
            Page::Leads => "/leads".into(),
            Page::Lead(id) => format!("/leads/{id}"),
            Page::Scoring => "/scoring".into(),
            Page::Connectors => "/connectors".into(),
            Page::Inbox => "/inbox".into(),
            Page::Lexicon => "/lexicon".into(),
            Page::Rules => "/rules".into(),
            Page::UrlCategories => "/url-categories".into(),
            Page::ContactPolicy => "/contact-policy".into(),
            Page::Directory => "/directory".into(),
            Page::Units => "/units".into(),
            Page::People => "/people".into(),
            Page::Ticket(t) => format!("/ticket/{t}"),
        }
    }
}

/// The file chosen in the file input an event came from; the input is emptied, so choosing
/// the same file again fires again.
pub(crate) fn chosen_file(ev: &leptos::ev::Event) -> Option<web_sys::File> {
    let input: web_sys::HtmlInputElement = ev
        .target()
        .and_then(|t| wasm_bindgen::JsCast::dyn_into(t).ok())?;
    let file = input.files().and_then(|f| f.get(0));
    input.set_value("");
    file
}

fn current_page() -> Page {
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    Page::parse(&hash)
}

/// Shared state: who is signed in, in which language the studio speaks, and which page is
/// open (mirrored in the URL's hash, so back/forward and links work).
#[derive(Clone, Copy, Debug)]
pub struct Session {
    /// The credential requests carry: an API token (`trl_…`), or the CSRF value of the
    /// signed-in person's session cookie (see `api::with_credential`).
    pub token: RwSignal<Option<String>>,
    /// The signed-in person (`{user: {name…}, role, workspace}`), when signed in with an
    /// account.
    pub user: RwSignal<Option<serde_json::Value>>,
    /// Whether the studio is still asking the server about this browser's session.
    pub checking: RwSignal<bool>,
    pub lang: RwSignal<Lang>,
    pub page: RwSignal<Page>,
    /// Nodes and edges copied with Ctrl-C, pasted with Ctrl-V into any flow.
    pub clipboard: RwSignal<Option<editor::state::Copied>>,
    /// The in-page dialog (questions asked from async tasks, which have no context).
    pub dialogs: dialog::Dialogs,
}

impl Session {
    /// What a page shows when its load failed: an expired token signs out (back to the
    /// sign-in page), anything else is shown as an error under `testid`.
    pub fn failed(&self, error: ApiError, testid: &'static str) -> AnyView {
        match error {
            ApiError::Unauthorized => {
                self.sign_out();
                view! { <p /> }.into_any()
            }
            ApiError::Other(m) => view! { <p class="error" data-testid=testid>{m}</p> }.into_any(),
        }
    }

    pub fn t(&self, text: Text) -> String {
        tr(self.lang.get(), text)
    }

    /// Opens `page` (and records it in the URL).
    pub fn go(&self, page: Page) {
        if let Some(location) = web_sys::window().map(|w| w.location()) {
            let _ = location.set_hash(&page.hash());
        }
        self.page.set(page);
    }

    pub fn sign_out(&self) {
        if let Some(s) = session_storage() {
            let _ = s.remove_item(TOKEN_KEY);
        }
        // A person's session ends on the server too (the cookie is cleared there).
        if let Some(csrf) = self
            .token
            .get_untracked()
            .filter(|t| !t.starts_with("trl_"))
        {
            leptos::task::spawn_local(async move {
                let _ = api::delete(&csrf, "/api/v1/session").await;
            });
        }
        self.user.set(None);
        self.token.set(None);
    }

    /// The signed-in person's role, when signed in with an account.
    pub fn role(&self) -> Option<String> {
        self.user.with(|u| {
            u.as_ref()
                .and_then(|u| u["role"].as_str().map(str::to_owned))
        })
    }

    /// Whether the signed-in person's role is `role` or above (viewer < operator < builder
    /// < admin); an API token's role is checked by the server alone.
    pub fn at_least(&self, role: &str) -> bool {
        const ORDER: [&str; 4] = ["viewer", "operator", "builder", "admin"];
        let rank = |r: &str| ORDER.iter().position(|x| *x == r);
        self.role().is_none_or(|mine| rank(&mine) >= rank(role))
    }

    /// Signs in as the person the server's answer names (`{user, role, csrf…}`).
    pub fn signed_in(&self, answer: serde_json::Value) {
        let csrf = answer["csrf"].as_str().unwrap_or_default().to_owned();
        self.user.set(Some(answer));
        self.token.set(Some(csrf));
    }
}

#[component]
pub fn App() -> impl IntoView {
    let token = session_storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten());
    let lang = local_storage()
        .and_then(|s| s.get_item(LANG_KEY).ok().flatten())
        .and_then(|l| Lang::parse(&l))
        .unwrap_or(Lang::Zh);
    let checking = token.is_none();
    let session = Session {
        token: RwSignal::new(token),
        user: RwSignal::new(None),
        checking: RwSignal::new(checking),
        lang: RwSignal::new(lang),
        page: RwSignal::new(current_page()),
        clipboard: RwSignal::new(None),
        dialogs: dialog::Dialogs::new(),
    };
    provide_context(session);
    // A person signed in earlier (in this tab or another) has a session cookie.
    if checking {
        leptos::task::spawn_local(async move {
            if let Ok(answer) = api::get_json("", "/api/v1/session").await {
                session.signed_in(answer);
            }
            session.checking.set(false);
        });
    }
    // Back/forward and typed URLs: the hash names the page.
    let nav = window_event_listener(leptos::ev::hashchange, move |_| {
        let page = current_page();
        if session.page.get_untracked() != page {
            session.page.set(page);
        }
    });
    on_cleanup(move || nav.remove());
    Effect::new(move |_| {
        let lang = session.lang.get();
        if let Some(s) = local_storage() {
            let _ = s.set_item(LANG_KEY, lang.code());
        }
        if let Some(doc) = web_sys::window().and_then(|w| w.document())
            && let Some(root) = doc.document_element()
        {
            let _ = root.set_attribute("lang", lang.html_code());
        }
    });
    view! {
        <TopBar />
        <dialog::DialogHost />
        // The editor uses the whole window; the other pages read better as a column.
        <main class:wide=move || matches!(session.page.get(), Page::Flow(_))>
            <Show when=move || session.token.get().is_some() fallback=move || match session.page.get() {
                Page::Ticket(t) => view! { <people::TicketPage ticket=t /> }.into_any(),
                _ if session.checking.get() => view! { <p class="hint">{session.t(Text::Loading)}</p> }.into_any(),
                _ => view! { <SignIn /> }.into_any(),
            }>
                {move || match session.page.get() {
                    Page::Connectors => view! { <connectors::ConnectorsPage /> }.into_any(),
                    Page::Flow(id) => view! {
                        <editor::FlowEditor flow_id=id on_close=Callback::new(move |_| session.go(Page::Flows)) />
                    }.into_any(),
                    Page::Leads => view! { <leads::LeadsPage /> }.into_any(),
                    Page::Lead(id) => view! { <leads::LeadCard lead_id=id /> }.into_any(),
                    Page::Scoring => view! { <scoring::ScoringPage /> }.into_any(),
                    Page::Flows => view! { <FlowList /> }.into_any(),
                    Page::Inbox => view! { <inbox::InboxPage /> }.into_any(),
                    Page::Lexicon => view! { <lexicon::LexiconPage /> }.into_any(),
                    Page::Rules => view! { <rules::RulesPage /> }.into_any(),
                    Page::UrlCategories => view! { <url_categories::UrlCategoriesPage /> }.into_any(),
                    Page::ContactPolicy => view! { <contact_policy::ContactPolicyPage /> }.into_any(),
                    Page::Directory => view! { <directory::DirectoryPage /> }.into_any(),
                    Page::Units => view! { <units::UnitsPage /> }.into_any(),
                    Page::People => view! { <people::PeoplePage /> }.into_any(),
                    Page::Ticket(t) => view! { <people::TicketPage ticket=t /> }.into_any(),
                }}
            </Show>
        </main>
    }
}

#[component]
fn TopBar() -> impl IntoView {
    let session = expect_context::<Session>();
    let toggle = move |_| session.lang.update(|l| *l = l.other());
    view! {
        <header class="top">
            <h1 data-testid="app-title">{move || session.t(Text::AppTitle)}</h1>
            <button data-testid="lang-toggle" on:click=toggle>{move || session.t(Text::SwitchLanguage)}</button>
            <Show when=move || session.token.get().is_some()>
                <nav class="pages">
                    <button data-testid="nav-flows" on:click=move |_| session.go(Page::Flows)>{move || session.t(Text::Flows)}</button>
                    <button data-testid="nav-leads" on:click=move |_| session.go(Page::Leads)>{move || session.t(Text::Leads)}</button>
                    <button data-testid="nav-scoring" on:click=move |_| session.go(Page::Scoring)>{move || session.t(Text::ScoringModel)}</button>
                    <button data-testid="nav-rules" on:click=move |_| session.go(Page::Rules)>{move || crate::i18n::say(session.lang.get(), "行动规则", "Rules")}</button>
                    <button data-testid="nav-lexicon" on:click=move |_| session.go(Page::Lexicon)>{move || crate::i18n::say(session.lang.get(), "信号词库", "Lexicon")}</button>
                    <button data-testid="nav-url-categories" on:click=move |_| session.go(Page::UrlCategories)>{move || crate::i18n::say(session.lang.get(), "网址分类", "URL categories")}</button>
                    <button data-testid="nav-contact-policy" on:click=move |_| session.go(Page::ContactPolicy)>{move || crate::i18n::say(session.lang.get(), "联系策略", "Contact policy")}</button>
                    <button data-testid="nav-directory" on:click=move |_| session.go(Page::Directory)>{move || crate::i18n::say(session.lang.get(), "人员目录", "People directory")}</button>
                    <button data-testid="nav-units" on:click=move |_| session.go(Page::Units)>{move || crate::i18n::say(session.lang.get(), "作战单元", "Task units")}</button>
                    <button data-testid="nav-connectors" on:click=move |_| session.go(Page::Connectors)>{move || session.t(Text::Connectors)}</button>
                    <button data-testid="nav-inbox" on:click=move |_| session.go(Page::Inbox)>{move || session.t(Text::Inbox)}</button>
                    <Show when=move || session.role().is_none_or(|r| r == "admin")>
                        <button data-testid="nav-people" on:click=move |_| session.go(Page::People)>{move || session.t(Text::People)}</button>
                    </Show>
                </nav>
                {move || session.user.get().map(|u| view! {
                    <span class="hint" data-testid="signed-in-as">{format!("{} · {}",
                        u["user"]["name"].as_str().unwrap_or_default(),
                        crate::people::role_name(session.lang.get(), u["role"].as_str().unwrap_or_default()))}</span>
                })}
                <button data-testid="sign-out" on:click=move |_| session.sign_out()>{move || session.t(Text::SignOut)}</button>
            </Show>
        </header>
    }
}

#[component]
fn SignIn() -> impl IntoView {
    let session = expect_context::<Session>();
    // People sign in with their account; IT can still paste an API token.
    let with_token = RwSignal::new(false);
    let input = RwSignal::new(String::new());
    let login = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<Text>);
    let busy = RwSignal::new(false);
    let submit_token = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let token = input.get_untracked().trim().to_owned();
        if token.is_empty() {
            error.set(Some(Text::TokenRequired));
            return;
        }
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::list_flows(&token).await {
                Ok(_) => {
                    if let Some(s) = session_storage() {
                        let _ = s.set_item(TOKEN_KEY, &token);
                    }
                    error.set(None);
                    session.token.set(Some(token));
                }
                Err(ApiError::Unauthorized) => error.set(Some(Text::TokenRejected)),
                Err(ApiError::Other(_)) => error.set(Some(Text::ServerUnreachable)),
            }
            busy.set(false);
        });
    };
    let submit_account = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = serde_json::json!({
            "login": login.get_untracked().trim(),
            "password": password.get_untracked(),
        });
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::post_json("", "/api/v1/session", &body).await {
                Ok(answer) => {
                    error.set(None);
                    password.set(String::new());
                    session.signed_in(answer);
                }
                Err(ApiError::Unauthorized) => error.set(Some(Text::BadLogin)),
                Err(ApiError::Other(_)) => error.set(Some(Text::ServerUnreachable)),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="card signin" data-testid="sign-in-page">
            <h2>{move || session.t(Text::SignInTitle)}</h2>
            {move || if with_token.get() {
                view! {
                    <p class="hint">{session.t(Text::SignInHint)}</p>
                    <form on:submit=submit_token>
                        <label for="token">{move || session.t(Text::TokenLabel)}</label>
                        <input id="token" type="password" data-testid="token-input" autocomplete="off"
                            prop:value=move || input.get() on:input=move |ev| input.set(event_target_value(&ev)) />
                        <p></p>
                        <button class="primary" type="submit" data-testid="sign-in" disabled=move || busy.get()>
                            {move || session.t(Text::SignIn)}
                        </button>
                    </form>
                }.into_any()
            } else {
                view! {
                    <form on:submit=submit_account>
                        <label for="login">{move || session.t(Text::LoginLabel)}</label>
                        <input id="login" type="text" data-testid="login-input" autocomplete="username"
                            prop:value=move || login.get() on:input=move |ev| login.set(event_target_value(&ev)) />
                        <label for="password">{move || session.t(Text::PasswordLabel)}</label>
                        <input id="password" type="password" data-testid="password-input" autocomplete="current-password"
                            prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) />
                        <p></p>
                        <button class="primary" type="submit" data-testid="sign-in-account" disabled=move || busy.get()>
                            {move || session.t(Text::SignIn)}
                        </button>
                    </form>
                }.into_any()
            }}
            {move || error.get().map(|e| view! { <p class="error" data-testid="sign-in-error">{session.t(e)}</p> })}
            <p>
                <button type="button" class="link" data-testid="use-token" on:click=move |_| { error.set(None); with_token.update(|t| *t = !*t); }>
                    {move || if with_token.get() { session.t(Text::UsePassword) } else { session.t(Text::UseToken) }}
                </button>
            </p>
        </div>
    }
}

#[component]
fn FlowList() -> impl IntoView {
    let session = expect_context::<Session>();
    let flows = LocalResource::new(move || {
        let token = session.token.get().unwrap_or_default();
        async move { api::list_flows(&token).await }
    });
    // A new flow is named first: the list would otherwise fill with 新流程.
    let new_flow = move |_| {
        let token = session.token.get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            let Some(name) = session
                .dialogs
                .ask(session.t(Text::NewFlowPrompt), String::new())
                .await
            else {
                return;
            };
            let doc = serde_json::json!({"schema": 1, "name": name, "nodes": [
                {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [40, 40]}], "edges": []});
            if let Ok(id) = api::create_flow(&token, &doc).await {
                session.go(Page::Flow(id));
            }
        });
    };
    let error = RwSignal::new(None::<String>);
    let refresh = Callback::new(move |_| flows.refetch());
    let import = move |ev: leptos::ev::Event| {
        let Some(file) = crate::chosen_file(&ev) else {
            return;
        };
        flows::act(error, refresh, flows::import(session, file));
    };
    provide_context(FlowActions { error, refresh });
    view! {
        <div class="card" data-testid="flow-list">
            <h2>{move || session.t(Text::Flows)}</h2>
            <p>
                <button class="primary" data-testid="new-flow" on:click=new_flow>{move || session.t(Text::NewFlow)}</button>
                " "
                <label class="file-button">{move || session.t(Text::Import)}
                    <input type="file" accept="application/json,.json" data-testid="import-file" on:change=import />
                </label>
            </p>
            {move || error.get().map(|e| view! { <p class="error" data-testid="flow-action-error">{e}</p> })}
            <Transition fallback=move || view! { <p class="hint">{session.t(Text::Loading)}</p> }>
                {move || flows.get().map(|result| match result {
                    Ok(list) => flow_table(session, list).into_any(),
                    Err(e) => session.failed(e, "flow-list-error"),
                })}
            </Transition>
        </div>
    }
}

/// Where flow-row actions report and how they refresh the list.
#[derive(Clone, Copy, Debug)]
struct FlowActions {
    error: RwSignal<Option<String>>,
    refresh: Callback<()>,
}

fn flow_table(session: Session, list: Vec<FlowSummary>) -> impl IntoView {
    let actions = expect_context::<FlowActions>();
    if list.is_empty() {
        return view! { <p class="empty" data-testid="flow-list-empty">{move || session.t(Text::NoFlows)}</p> }.into_any();
    }
    view! {
        <table>
            <thead><tr>
                <th>{move || session.t(Text::Name)}</th>
                <th>{move || session.t(Text::Published)}</th>
                <th>{move || session.t(Text::Latest)}</th>
                <th>{move || session.t(Text::LastRun)}</th>
                <th></th>
            </tr></thead>
            <tbody>
                <For each=move || list.clone() key=|f| f.id.clone() let:flow>
                    <tr data-testid="flow-row" data-flow-id=flow.id.clone()>
                        <td data-testid="flow-name">
                            <a href=format!("#/flows/{}", flow.id) data-testid="open-flow" on:click={
                                let id = flow.id.clone();
                                move |_| session.page.set(Page::Flow(id.clone()))
                            }>{flow.name.clone()}</a>
                        </td>
                        <td>{flow.published_version.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into())}</td>
                        <td>{format!("v{}", flow.latest_version)}</td>
                        <td>{match flow.last_run.clone() {
                            Some(run) => {
                                let class = format!("status {}", run.status);
                                let status = run.status.clone();
                                view! { <span class=class data-testid="last-run-status">{move || i18n::status(session.lang.get(), &status)}</span> }.into_any()
                            }
                            None => view! { <span class="hint">{move || session.t(Text::NeverRun)}</span> }.into_any(),
                        }}</td>
                    <td class="row-actions">{
                            let (id, name) = (flow.id.clone(), flow.name.clone());
                            let (a, b, c, d) = (id.clone(), id.clone(), id.clone(), id.clone());
                            view! {
                                <button data-testid=format!("rename-{id}") on:click=move |_| flows::act(actions.error, actions.refresh, flows::rename(session, a.clone()))>{move || session.t(Text::Rename)}</button>
                                <button data-testid=format!("duplicate-{id}") on:click=move |_| flows::act(actions.error, actions.refresh, flows::duplicate(session, b.clone()))>{move || session.t(Text::Duplicate)}</button>
                                <button data-testid=format!("export-{id}") on:click=move |_| flows::act(actions.error, actions.refresh, flows::export(session, c.clone()))>{move || session.t(Text::Export)}</button>
                                <button data-testid=format!("delete-{id}") on:click=move |_| flows::act(actions.error, actions.refresh, flows::delete(session, d.clone(), name.clone()))>{move || session.t(Text::Delete)}</button>
                            }
                        }</td>
                    </tr>
                </For>
            </tbody>
        </table>
    }
    .into_any()
}
