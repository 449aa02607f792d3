//! A per-workspace document edited in a page as a whole (the signal lexicon, the
//! next-best-action rules, the contact policy, URL categories): loaded once (the built-in
//! one until the workspace saves its own), edited as a draft that the page checks as it
//! goes, saved in one `PUT` as the version after the one loaded (someone else's save in
//! between is refused, and the draft stays), discarded by loading again. [`DocHistory`]
//! lists the versions, shows what each changed and restores one after showing what
//! restoring it would change.

use leptos::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Session;
use crate::api::{self, ApiError, SaveError};
use crate::i18n::{Lang, say};

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
    /// The version loaded (0: the built-in document); a save is based on it.
    pub version: RwSignal<i64>,
    /// Changes with every save or rollback, so the history reloads.
    pub changed: RwSignal<u32>,
    session: Session,
    path: &'static str,
    /// The document's name under `/api/v1/documents/` (`contact-policy`).
    pub kind: &'static str,
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
    /// An editor of the document at `path` (`GET` to load, `PUT` to save) whose history is
    /// under `/api/v1/documents/{kind}`, loading it now.
    pub fn new(
        session: Session,
        path: &'static str,
        kind: &'static str,
        read: fn(&Value) -> Value,
        saved: (&'static str, &'static str),
    ) -> Self {
        let editor = DocEditor {
            draft: RwSignal::new(None),
            builtin: RwSignal::new(true),
            dirty: RwSignal::new(false),
            error: RwSignal::new(None),
            notice: RwSignal::new(None),
            version: RwSignal::new(0),
            changed: RwSignal::new(0),
            session,
            path,
            kind,
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
        leptos::task::spawn_local(self.reload());
    }

    /// [`Self::load`], done when the document is in.
    pub async fn reload(self) {
        match api::get_json(&self.token(), self.path).await {
            Ok(v) => {
                self.builtin.set(v["builtin"].as_bool().unwrap_or(true));
                self.version.set(v["version"].as_i64().unwrap_or(0));
                match serde_json::from_value::<T>((self.read)(&v)) {
                    Ok(doc) => self.draft.set(Some(doc)),
                    Err(e) => self.error.set(Some(e.to_string())),
                }
                self.dirty.set(false);
                self.notice.set(None);
                self.error.set(None);
                // The history shows the version now in force.
                self.changed.update(|c| *c += 1);
            }
            Err(ApiError::Unauthorized) => self.session.sign_out(),
            Err(ApiError::Other(m)) => self.error.set(Some(m)),
        }
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
            let lang = self.session.lang.get_untracked();
            let base = self.version.get_untracked();
            match api::save_doc(&self.token(), self.path, base, &body).await {
                Ok(n) => {
                    self.error.set(None);
                    self.dirty.set(false);
                    self.builtin.set(false);
                    self.version.set(n);
                    self.changed.update(|c| *c += 1);
                    let (zh, en) = self.saved;
                    self.notice.set(Some(format!(
                        "{} {}",
                        say(lang, zh, en),
                        say(lang, &format!("（第 {n} 版）"), &format!("(version {n})"))
                    )));
                }
                Err(SaveError::Conflict { current }) => self.error.set(Some(say(
                    lang,
                    &format!("没有保存：你编辑期间，别人保存了第 {current} 版。你的修改还在页面上；记下它们，点“放弃修改”载入最新版本后再改。"),
                    &format!("Not saved: someone saved version {current} while you were editing. Your changes are still on the page; note them, then \"Discard changes\" to load the latest and edit again."),
                ))),
                Err(SaveError::Other(ApiError::Unauthorized)) => self.session.sign_out(),
                Err(SaveError::Invalid(m) | SaveError::Other(ApiError::Other(m))) => {
                    self.error.set(Some(m))
                }
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

/// One version as the history lists it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct VersionRow {
    number: i64,
    author: String,
    message: String,
    created_at: String,
    current: bool,
}

/// One value a change moves, as `GET /api/v1/documents/{kind}/diff` gives it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Change {
    path: String,
    before: Option<Value>,
    after: Option<Value>,
}

/// What the history panel is showing below the list.
#[derive(Clone, Debug, PartialEq)]
enum Shown {
    Nothing,
    /// What version `to` changed against the one before it.
    Changes {
        to: i64,
        changes: Vec<Change>,
    },
    /// What restoring `to` would change against the version in force; asks to confirm.
    Restore {
        to: i64,
        changes: Vec<Change>,
    },
}

/// A field's name in words, for the keys the workspace documents use.
fn field_words(key: &str, lang: Lang) -> String {
    let words: &[(&str, &str, &str)] = &[
        ("caps", "频次上限", "caps"),
        ("channel", "渠道", "channel"),
        ("max", "最多次数", "at most"),
        ("per", "周期", "period"),
        ("quiet_hours", "免打扰时段", "quiet hours"),
        ("start", "开始", "start"),
        ("end", "结束", "end"),
        ("then", "期间的发送", "sends meanwhile"),
        ("default_time_zone", "默认时区", "default time zone"),
        ("rules", "规则", "rules"),
        ("category", "类别", "category"),
        ("match", "匹配", "match"),
        ("kind", "方式", "kind"),
        ("prefix", "路径前缀", "path prefix"),
        ("pattern", "模式", "pattern"),
        ("keyword", "标题关键词", "title keyword"),
        ("entries", "词条", "entries"),
        ("phrases", "短语", "phrases"),
        ("polarity", "倾向", "polarity"),
        ("weight", "权重", "weight"),
        ("when", "条件", "condition"),
        ("actions", "建议动作", "actions"),
        ("title", "标题", "title"),
        ("within", "期限", "within"),
        ("name", "名称", "name"),
        ("id", "编号", "id"),
        ("body_bytes", "请求体上限", "largest body"),
        ("value_bytes", "单个值上限", "largest value"),
        ("state_bytes", "运行状态上限", "largest run state"),
        (
            "run_retention_days",
            "运行记录保留天数",
            "days runs are kept",
        ),
        ("roles", "角色", "roles"),
        ("milestones", "里程碑", "milestones"),
        ("skills", "技能", "skills"),
        ("skill", "技能", "skill"),
        ("level", "等级", "level"),
        ("permissions", "权限", "permissions"),
        ("region", "区域", "region"),
        ("count", "人数", "how many"),
        ("function", "职能", "function"),
        ("offset", "时长", "offset"),
        ("after", "起算里程碑", "counted from"),
        ("owner_role", "负责角色", "owner role"),
        ("done_when", "完成标志", "done when"),
        ("urgency", "紧急程度", "urgency"),
        ("goal", "目标", "goal"),
        ("name_pattern", "单元命名", "unit name pattern"),
        ("knowledge", "资料包", "knowledge pack"),
        ("url", "链接", "link"),
        ("scenario", "客户场景", "scenario"),
    ];
    words
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or_else(|| key.to_owned(), |(_, zh, en)| say(lang, zh, en))
}

/// A JSON pointer in words: `/caps/0/max` → `频次上限 › 第 1 条 › 最多次数`.
pub(crate) fn path_words(path: &str, lang: Lang) -> String {
    if path == "/" {
        return say(lang, "整个文档", "the whole document");
    }
    path.split('/')
        .skip(1)
        .map(|part| {
            let part = part.replace("~1", "/").replace("~0", "~");
            match part.parse::<usize>() {
                Ok(i) => say(lang, &format!("第 {} 条", i + 1), &format!("#{}", i + 1)),
                Err(_) => field_words(&part, lang),
            }
        })
        .collect::<Vec<_>>()
        .join(" › ")
}

/// A value in a change, short.
fn value_words(v: &Option<Value>, lang: Lang) -> String {
    match v {
        None => say(lang, "（无）", "(none)"),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let text = other.to_string();
            if text.chars().count() > 120 {
                format!("{}…", text.chars().take(120).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// The list of changes, each as "where: before → after".
fn changes_view(changes: &[Change], lang: Lang) -> impl IntoView + use<> {
    if changes.is_empty() {
        return view! { <p class="hint" data-testid="doc-changes-none">{say(lang, "没有改动。", "No changes.")}</p> }
            .into_any();
    }
    view! {
        <ul class="doc-changes" data-testid="doc-changes">
            {changes.iter().map(|c| view! {
                <li>
                    <strong>{path_words(&c.path, lang)}</strong>": "
                    <span class="before">{value_words(&c.before, lang)}</span>" → "
                    <span class="after">{value_words(&c.after, lang)}</span>
                </li>
            }).collect_view()}
        </ul>
    }
    .into_any()
}

/// The versions of the editor's document: who saved each and why, what each changed, and
/// restoring one (after showing what that would change). `can_edit` says whether this
/// person may restore.
#[component]
pub fn DocHistory<T>(doc: DocEditor<T>, can_edit: Signal<bool>) -> impl IntoView
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let open = RwSignal::new(false);
    let rows = RwSignal::new(Vec::<VersionRow>::new());
    let shown = RwSignal::new(Shown::Nothing);
    let failed = RwSignal::new(None::<String>);
    let token = move || session.token.get_untracked().unwrap_or_default();
    let kind = doc.kind;
    let base = move || format!("/api/v1/documents/{kind}");
    let fail = move |e: ApiError| match e {
        ApiError::Unauthorized => session.sign_out(),
        ApiError::Other(m) => failed.set(Some(m)),
    };
    Effect::new(move |_| {
        // Reloads when opened and after every save or rollback.
        doc.changed.track();
        if !open.get() {
            return;
        }
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), &format!("{}/versions", base())).await {
                Ok(v) => {
                    rows.set(serde_json::from_value(v["versions"].clone()).unwrap_or_default());
                    failed.set(None);
                }
                Err(e) => fail(e),
            }
        });
    });
    let diff = move |from: i64, to: i64, restore: bool| {
        leptos::task::spawn_local(async move {
            let path = format!("{}/diff?from={from}&to={to}", base());
            match api::get_json(&token(), &path).await {
                Ok(v) => {
                    let changes: Vec<Change> =
                        serde_json::from_value(v["changes"].clone()).unwrap_or_default();
                    shown.set(if restore {
                        Shown::Restore { to, changes }
                    } else {
                        Shown::Changes { to, changes }
                    });
                }
                Err(e) => fail(e),
            }
        });
    };
    let restore = move |to: i64| {
        leptos::task::spawn_local(async move {
            let body = serde_json::json!({ "version": to });
            match api::post_json(&token(), &format!("{}/rollback", base()), &body).await {
                Ok(v) => {
                    let n = v["version"].as_i64().unwrap_or(0);
                    shown.set(Shown::Nothing);
                    doc.reload().await;
                    let lang = session.lang.get_untracked();
                    let what = version_words(to, lang);
                    doc.notice.set(Some(say(
                        lang,
                        &format!("已恢复{what}，保存为第 {n} 版，立即生效。"),
                        &format!("Restored {what} as version {n}, in force now."),
                    )));
                }
                Err(e) => fail(e),
            }
        });
    };
    let row = move |r: VersionRow| {
        let lang = lang();
        let n = r.number;
        let at = r
            .created_at
            .get(..16)
            .unwrap_or(&r.created_at)
            .replace('T', " ");
        view! {
            <li data-testid=format!("doc-version-{n}")>
                <span class="version">{say(lang, &format!("第 {n} 版"), &format!("Version {n}"))}</span>
                {r.current.then(|| view! { <span class="badge" data-testid="doc-version-current">{say(lang, "当前生效", "in force")}</span> })}
                <span class="hint">{format!("{at} · {}", r.author)}</span>
                {(!r.message.is_empty()).then(|| view! { <span class="hint">{format!(" · {}", r.message)}</span> })}
                <button type="button" class="small" data-testid=format!("doc-version-{n}-changes")
                    on:click=move |_| diff(n - 1, n, false)>{say(lang, "看改动", "Changes")}</button>
                {(!r.current).then(|| view! {
                    <button type="button" class="small" data-testid=format!("doc-version-{n}-restore")
                        disabled=move || !can_edit.get()
                        on:click=move |_| diff(doc.version.get_untracked(), n, true)>{say(lang, "恢复此版", "Restore")}</button>
                })}
            </li>
        }
    };
    view! {
        <section class="doc-history" data-testid="doc-history">
            <button type="button" data-testid="doc-history-toggle" on:click=move |_| open.update(|o| *o = !*o)>
                {move || if open.get() { say(lang(), "收起版本历史", "Hide history") } else { say(lang(), "版本历史", "History") }}
            </button>
            <Show when=move || open.get()>
                {move || failed.get().map(|m| view! { <p class="banner error">{m}</p> })}
                {move || if rows.with(Vec::is_empty) {
                    view! { <p class="hint" data-testid="doc-history-empty">{say(lang(), "还没有保存过版本：正在使用内置默认。", "No versions yet: the built-in document is in use.")}</p> }.into_any()
                } else {
                    view! {
                        <ul class="doc-versions">{rows.get().into_iter().map(row).collect_view()}</ul>
                        <button type="button" class="small" data-testid="doc-restore-builtin" disabled=move || !can_edit.get()
                            on:click=move |_| diff(doc.version.get_untracked(), 0, true)>
                            {say(lang(), "恢复为内置默认", "Restore the built-in document")}</button>
                    }.into_any()
                }}
                {move || match shown.get() {
                    Shown::Nothing => ().into_any(),
                    Shown::Changes { to, changes } => view! {
                        <div class="doc-diff" data-testid="doc-version-diff">
                            <h4>{say(lang(), &format!("第 {to} 版改了什么"), &format!("What version {to} changed"))}</h4>
                            {changes_view(&changes, lang())}
                        </div>
                    }.into_any(),
                    Shown::Restore { to, changes } => {
                        let what = version_words(to, lang());
                        view! {
                            <div class="doc-diff" data-testid="doc-restore-preview">
                                <h4>{say(lang(), &format!("恢复{what}会改动："), &format!("Restoring {what} changes:"))}</h4>
                                {changes_view(&changes, lang())}
                                <p class="hint">{say(lang(), "恢复会保存为新的一版并立即生效；之前的版本都保留。", "Restoring saves a new version, in force at once; every earlier version is kept.")}</p>
                                <button class="primary" data-testid="doc-restore-confirm" on:click=move |_| restore(to)>
                                    {say(lang(), "确认恢复", "Restore")}</button>
                                <button data-testid="doc-restore-cancel" on:click=move |_| shown.set(Shown::Nothing)>
                                    {say(lang(), "取消", "Cancel")}</button>
                            </div>
                        }.into_any()
                    }
                }}
            </Show>
        </section>
    }
}

/// "第 3 版", or the built-in document for 0.
fn version_words(n: i64, lang: Lang) -> String {
    if n == 0 {
        say(lang, "内置默认", "the built-in document")
    } else {
        say(lang, &format!("第 {n} 版"), &format!("version {n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_read_as_words() {
        assert_eq!(
            path_words("/caps/0/max", Lang::Zh),
            "频次上限 › 第 1 条 › 最多次数"
        );
        assert_eq!(
            path_words("/rules/2/match/prefix", Lang::En),
            "rules › #3 › match › path prefix"
        );
        assert_eq!(path_words("/a~1b", Lang::En), "a/b");
        assert_eq!(path_words("/", Lang::Zh), "整个文档");
        assert_eq!(value_words(&None, Lang::Zh), "（无）");
        assert_eq!(
            value_words(&Some(serde_json::json!("21:00")), Lang::En),
            "21:00"
        );
    }
}
