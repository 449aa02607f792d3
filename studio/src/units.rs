//! Task units (作战单元): unit templates and the units at work.
//!
//! - Templates: the list (with what each was cloned from), a form for one template — name,
//!   unit name pattern, urgency, goal, roles, milestones with their timeline, dispatch rules
//!   and the knowledge pack (rules and pack as JSON, CEL checked as typed) — checked with
//!   `Template::problems`, the same checks the server makes; saved on its base version, or
//!   cloned; and a dispatch preview against an account that shows who would be picked and
//!   why, before anything is created.
//! - Units: the open (and closed) units; one unit's members and why each was picked, roles
//!   left unfilled with their substitute, milestones (marked done here), and its log in
//!   words; an update posted, the unit cancelled.

use leptos::prelude::*;
use serde_json::{Value, json};
use trellis_model::task_units::{
    DispatchRule, Function, Knowledge, MAX_URGENCY, Milestone, Role, SkillNeed, Template,
    parse_skills,
};

use crate::Session;
use crate::api::{self, ApiError};
use crate::doc_editor::path_words;
use crate::i18n::{Lang, say};

/// The example a new template starts from (the scenario's 交付攻坚).
const EXAMPLE: &str = include_str!("../../templates/task-units/delivery-rescue.json");

/// A template being edited: where it is saved, and the parts typed as text.
#[derive(Clone, Debug, PartialEq)]
struct Draft {
    /// Its id; for a new template, typed in the form.
    id: String,
    /// The version the edit started from (0: a new template).
    base: i32,
    template: Template,
    /// Each role's skills as typed (`技能:等级; …`).
    skills: Vec<String>,
    /// The dispatch rules and the knowledge pack as typed (JSON).
    rules: String,
    knowledge: String,
}

impl Draft {
    fn of(id: String, base: i32, template: Template) -> Draft {
        Draft {
            skills: template
                .roles
                .iter()
                .map(|r| skills_text(&r.skills))
                .collect(),
            rules: pretty(&template.rules),
            knowledge: pretty(&template.knowledge),
            id,
            base,
            template,
        }
    }

    /// The template as typed, and every problem in words (pointers as paths).
    fn checked(&self, lang: Lang) -> (Template, Vec<String>) {
        let mut t = self.template.clone();
        let mut problems = Vec::new();
        for (i, text) in self.skills.iter().enumerate() {
            match parse_skills(text) {
                Ok(skills) => {
                    if let Some(r) = t.roles.get_mut(i) {
                        r.skills = skills
                            .into_iter()
                            .map(|(skill, level)| SkillNeed { skill, level })
                            .collect();
                    }
                }
                Err(wrong) => problems.push(say(
                    lang,
                    &format!("角色 {} 的技能：{}", i + 1, wrong.join("；")),
                    &format!("role {} skills: {}", i + 1, wrong.join("; ")),
                )),
            }
        }
        match serde_json::from_str::<Vec<DispatchRule>>(&self.rules) {
            Ok(rules) => t.rules = rules,
            Err(e) => problems.push(say(
                lang,
                &format!("加派规则（JSON）：{e}"),
                &format!("dispatch rules (JSON): {e}"),
            )),
        }
        match serde_json::from_str::<Vec<Knowledge>>(&self.knowledge) {
            Ok(k) => t.knowledge = k,
            Err(e) => problems.push(say(
                lang,
                &format!("资料包（JSON）：{e}"),
                &format!("knowledge pack (JSON): {e}"),
            )),
        }
        problems.extend(
            t.problems()
                .into_iter()
                .map(|(p, m)| format!("{}：{m}", path_words(&p, lang))),
        );
        if self.base == 0 && !valid_id(&self.id) {
            problems.push(say(
                lang,
                "模板 ID：小写字母、数字、- 和 _，最多 64 个",
                "Template id: a-z, 0-9, - and _, at most 64",
            ));
        }
        (t, problems)
    }
}

/// A list as JSON for its text area.
fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "[]".into())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn skills_text(skills: &[SkillNeed]) -> String {
    skills
        .iter()
        .map(|s| format!("{}:{}", s.skill, s.level))
        .collect::<Vec<_>>()
        .join("; ")
}

fn function_words(f: Function, lang: Lang) -> String {
    let (zh, en) = f.words();
    say(lang, zh, en)
}

/// Hours as words (`24 小时`, `2 天 4 小时`).
fn hours_words(h: f64, lang: Lang) -> String {
    let h = h.round() as i64;
    if h >= 24 && h % 24 == 0 {
        say(lang, &format!("{} 天", h / 24), &format!("{} d", h / 24))
    } else if h >= 24 {
        say(
            lang,
            &format!("{} 天 {} 小时", h / 24, h % 24),
            &format!("{} d {} h", h / 24, h % 24),
        )
    } else {
        say(lang, &format!("{h} 小时"), &format!("{h} h"))
    }
}

/// A time (epoch ms) in Beijing time, `MM-DD HH:MM`.
fn when(ms: i64) -> String {
    let iso = String::from(
        js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
            ms as f64 + 8.0 * 3_600_000.0,
        ))
        .to_iso_string(),
    );
    iso.get(5..16).unwrap_or_default().replace('T', " ")
}

#[component]
pub fn UnitsPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let tab = RwSignal::new("units");
    view! {
        <div class="card" data-testid="units-page">
            <h2>{move || say(lang(), "作战单元", "Task units")}</h2>
            <p class="hint">{move || say(lang(),
                "作战单元按模板组建：从人员目录里按技能、权限、区域和当前负载挑人，带里程碑；流程中的「创建作战单元」节点或手动都可以创建。",
                "Task units are assembled from templates: people picked from the directory by skills, permissions, region and current load, with milestones; a flow's Create task unit node or a person creates them.")}</p>
            <p class="tabs">
                <button data-testid="units-tab-units" class:active=move || tab.get() == "units" on:click=move |_| tab.set("units")>
                    {move || say(lang(), "单元", "Units")}</button>
                <button data-testid="units-tab-templates" class:active=move || tab.get() == "templates" on:click=move |_| tab.set("templates")>
                    {move || say(lang(), "单元模板", "Unit templates")}</button>
                <button data-testid="units-tab-health" class:active=move || tab.get() == "health" on:click=move |_| tab.set("health")>
                    {move || say(lang(), "协作健康度", "Collaboration health")}</button>
            </p>
            {move || match tab.get() {
                "templates" => view! { <Templates /> }.into_any(),
                "health" => view! { <HealthDashboard /> }.into_any(),
                _ => view! { <Units /> }.into_any(),
            }}
        </div>
    }
}

#[component]
fn Templates() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let list = RwSignal::new(Vec::<Value>::new());
    let reload = RwSignal::new(0u32);
    let draft = RwSignal::new(None::<Draft>);
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    // The form is made once per template opened, not again at every keystroke (which
    // would take the focus from the field being typed in).
    let editing = Memo::new(move |_| draft.with(Option::is_some));
    let fail = move |e: ApiError| match e {
        ApiError::Unauthorized => session.sign_out(),
        ApiError::Other(m) => error.set(Some(m)),
    };
    Effect::new(move |_| {
        reload.track();
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), "/api/v1/task-unit-templates").await {
                Ok(v) => list.set(v["templates"].as_array().cloned().unwrap_or_default()),
                Err(e) => fail(e),
            }
        });
    });
    let open = move |id: String| {
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), &format!("/api/v1/task-unit-templates/{id}")).await {
                Ok(v) => match serde_json::from_value::<Template>(v["template"].clone()) {
                    Ok(t) => {
                        error.set(None);
                        draft.set(Some(Draft::of(
                            id,
                            v["version"].as_i64().unwrap_or(0) as i32,
                            t,
                        )));
                    }
                    Err(e) => error.set(Some(e.to_string())),
                },
                Err(e) => fail(e),
            }
        });
    };
    let new_template = move |_| {
        if let Ok(t) = serde_json::from_str::<Template>(EXAMPLE) {
            draft.set(Some(Draft::of(String::new(), 0, t)));
        }
    };
    let clone = move |id: String, name: String| {
        leptos::task::spawn_local(async move {
            let lang = session.lang.get_untracked();
            let Some(new_id) = session
                .dialogs
                .ask(
                    say(
                        lang,
                        "新模板的 ID（小写字母、数字、-）",
                        "The new template's id (a-z, 0-9, -)",
                    ),
                    format!("{id}-copy"),
                )
                .await
            else {
                return;
            };
            let Some(new_name) = session
                .dialogs
                .ask(
                    say(lang, "新模板的名称", "The new template's name"),
                    format!("{name}（副本）"),
                )
                .await
            else {
                return;
            };
            let body = json!({ "id": new_id, "clone_from": id, "name": new_name });
            match api::post_json(&token(), "/api/v1/task-unit-templates", &body).await {
                Ok(_) => {
                    notice.set(Some(say(
                        lang,
                        &format!("已克隆为 {new_name}。"),
                        &format!("Cloned as {new_name}."),
                    )));
                    reload.update(|r| *r += 1);
                    open(new_id);
                }
                Err(e) => fail(e),
            }
        });
    };
    view! {
        <div data-testid="unit-templates">
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="templates-error">{e}</p> })}
            {move || notice.get().map(|n| view! { <p class="banner ok" data-testid="templates-notice">{n}</p> })}
            <p class="actions">
                <button data-testid="new-template" on:click=new_template>{move || say(lang(), "新建模板（从交付攻坚示例开始）", "New template (from the 交付攻坚 example)")}</button>
            </p>
            <table data-testid="template-list">
                <thead><tr>
                    <th>{move || say(lang(), "名称", "Name")}</th>
                    <th>{move || say(lang(), "ID", "Id")}</th>
                    <th>{move || say(lang(), "版本", "Version")}</th>
                    <th>{move || say(lang(), "克隆自", "Cloned from")}</th>
                    <th></th>
                </tr></thead>
                <tbody>
                    {move || list.get().into_iter().map(|t| {
                        let id = t["id"].as_str().unwrap_or_default().to_owned();
                        let name = t["name"].as_str().unwrap_or_default().to_owned();
                        let lineage = t["cloned_from"].as_object().map(|l| format!("{} v{}", l.get("template").and_then(Value::as_str).unwrap_or_default(), l.get("version").and_then(Value::as_i64).unwrap_or(0))).unwrap_or_default();
                        let (id_open, id_clone, name_clone) = (id.clone(), id.clone(), name.clone());
                        view! {
                            <tr data-testid=format!("template-row-{id}")>
                                <td>{name.clone()}</td><td>{id.clone()}</td>
                                <td>{t["version"].as_i64().unwrap_or(0)}</td><td>{lineage}</td>
                                <td>
                                    <button class="small" data-testid=format!("edit-template-{id}") on:click=move |_| open(id_open.clone())>{say(lang(), "编辑", "Edit")}</button>
                                    <button class="small" data-testid=format!("clone-template-{id}") on:click=move |_| clone(id_clone.clone(), name_clone.clone())>{say(lang(), "克隆", "Clone")}</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {move || list.with(Vec::is_empty).then(|| view! {
                <p class="empty" data-testid="templates-empty">{say(lang(), "还没有单元模板。从示例新建一个。", "No unit templates yet. Start one from the example.")}</p>
            })}
            {move || editing.get().then(|| view! { <TemplateForm draft=draft reload=reload notice=notice /> })}
        </div>
    }
}

#[component]
fn TemplateForm(
    draft: RwSignal<Option<Draft>>,
    reload: RwSignal<u32>,
    notice: RwSignal<Option<String>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let error = RwSignal::new(None::<String>);
    let checked = Memo::new(move |_| {
        let lang = lang();
        draft.with(|d| d.as_ref().map(|d| d.checked(lang)))
    });
    let problems = move || checked.with(|c| c.as_ref().map(|c| c.1.clone()).unwrap_or_default());
    // What decides which fields exist: rows are made again only when these change, so a
    // field keeps its focus while it is typed in.
    let is_new = Memo::new(move |_| draft.with(|d| d.as_ref().is_some_and(|d| d.base == 0)));
    let role_count =
        Memo::new(move |_| draft.with(|d| d.as_ref().map_or(0, |d| d.template.roles.len())));
    let milestone_count =
        Memo::new(move |_| draft.with(|d| d.as_ref().map_or(0, |d| d.template.milestones.len())));
    let edit = move |f: Box<dyn FnOnce(&mut Draft)>| {
        draft.update(|d| {
            if let Some(d) = d {
                f(d)
            }
        })
    };
    let text = move |key: String, get: fn(&Draft) -> String, set: fn(&mut Draft, String)| {
        view! {
            <input type="text" data-testid=key
                prop:value=move || draft.with(|d| d.as_ref().map(get).unwrap_or_default())
                on:input=move |ev| { let v = event_target_value(&ev); draft.update(|d| if let Some(d) = d { set(d, v) }); } />
        }
    };
    let save = move |_| {
        let Some(d) = draft.get_untracked() else {
            return;
        };
        let lang = session.lang.get_untracked();
        let (t, problems) = d.checked(lang);
        if !problems.is_empty() {
            return;
        }
        leptos::task::spawn_local(async move {
            let body = serde_json::to_value(&t).unwrap_or_default();
            let result = if d.base == 0 {
                api::post_json(
                    &token(),
                    "/api/v1/task-unit-templates",
                    &json!({ "id": d.id, "template": body }),
                )
                .await
            } else {
                api::put_json(
                    &token(),
                    &format!(
                        "/api/v1/task-unit-templates/{}?base_version={}",
                        d.id, d.base
                    ),
                    &body,
                )
                .await
            };
            match result {
                Ok(v) => {
                    let version = v["version"].as_i64().unwrap_or(0) as i32;
                    draft.update(|x| {
                        if let Some(x) = x {
                            x.base = version
                        }
                    });
                    error.set(None);
                    notice.set(Some(say(
                        lang,
                        &format!(
                            "已保存 {}，第 {version} 版，新建的单元从现在起用它。",
                            t.name
                        ),
                        &format!(
                            "Saved {}, version {version}; units created from now use it.",
                            t.name
                        ),
                    )));
                    reload.update(|r| *r += 1);
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    view! {
        <div class="template-form" data-testid="template-form">
            <h3>{move || draft.with(|d| d.as_ref().map(|d| if d.base == 0 { say(lang(), "新建单元模板", "New unit template") } else { say(lang(), &format!("编辑 {}（第 {} 版）", d.template.name, d.base), &format!("Edit {} (version {})", d.template.name, d.base)) }).unwrap_or_default())}</h3>
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="template-error">{e}</p> })}
            {move || is_new.get().then(|| view! {
                <label>{say(lang(), "模板 ID（流程节点用它指名）", "Template id (flow nodes name it)")}{text("template-id".into(), |d| d.id.clone(), |d, v| d.id = v)}</label>
            })}
            <label>{move || say(lang(), "模板名称", "Template name")}{text("template-name".into(), |d| d.template.name.clone(), |d, v| d.template.name = v)}</label>
            <label>{move || say(lang(), "单元命名（可用 {{ account.name }} 等）", "Unit name ({{ account.name }} and the like)")}{text("template-pattern".into(), |d| d.template.name_pattern.clone(), |d, v| d.template.name_pattern = v)}</label>
            <label>{move || say(lang(), "目标", "Goal")}{text("template-goal".into(), |d| d.template.goal.clone(), |d, v| d.template.goal = v)}</label>
            <label>{move || say(lang(), "紧急程度（越高越优先）", "Urgency (higher goes first)")}
                <select data-testid="template-urgency" on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(3); edit(Box::new(move |d| d.template.urgency = v)); }>
                    {move || (1..=MAX_URGENCY).map(|u| view! { <option value=u.to_string() selected=move || draft.with(|d| d.as_ref().is_some_and(|d| d.template.urgency == u))>{u.to_string()}</option> }).collect_view()}
                </select></label>
            <label><input type="checkbox" data-testid="template-wecom-group" prop:checked=move || draft.with(|d| d.as_ref().is_some_and(|d| d.template.wecom_group))
                on:change=move |ev| { let on = event_target_checked(&ev); edit(Box::new(move |d| d.template.wecom_group = on)); } />
                {move || say(lang(), "为成员建企业微信群", "Open a WeCom group chat for the members")}</label>

            <h4>{move || say(lang(), "角色", "Roles")}</h4>
            <table data-testid="template-roles">
                <thead><tr>
                    <th>{move || say(lang(), "编号", "Id")}</th><th>{move || say(lang(), "名称", "Name")}</th>
                    <th>{move || say(lang(), "职能", "Function")}</th><th>{move || say(lang(), "必需技能（技能:最低等级）", "Required skills (skill:min level)")}</th>
                    <th>{move || say(lang(), "必需权限", "Required permissions")}</th><th>{move || say(lang(), "优先区域", "Preferred region")}</th>
                    <th>{move || say(lang(), "人数", "How many")}</th><th></th>
                </tr></thead>
                <tbody>
                    {move || {
                        (0..role_count.get()).map(|i| {
                            let role = move || draft.with(|d| d.as_ref().and_then(|d| d.template.roles.get(i).cloned()));
                            let set = move |f: Box<dyn FnOnce(&mut Role)>| edit(Box::new(move |d| if let Some(r) = d.template.roles.get_mut(i) { f(r) }));
                            view! {
                                <tr data-testid=format!("role-{i}")>
                                    <td><input type="text" data-testid=format!("role-{i}-id") prop:value=move || role().map(|r| r.id).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |r| r.id = v)); } /></td>
                                    <td><input type="text" data-testid=format!("role-{i}-name") prop:value=move || role().map(|r| r.name).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |r| r.name = v)); } /></td>
                                    <td><select data-testid=format!("role-{i}-function") on:change=move |ev| { let v = event_target_value(&ev); if let Some(f) = Function::parse(&v) { set(Box::new(move |r| r.function = f)); } }>
                                        {Function::ALL.map(|f| view! { <option value=f.as_str() selected=move || role().is_some_and(|r| r.function == f)>{function_words(f, lang())}</option> }).collect_view()}
                                    </select></td>
                                    <td><input type="text" data-testid=format!("role-{i}-skills") prop:value=move || draft.with(|d| d.as_ref().and_then(|d| d.skills.get(i).cloned()).unwrap_or_default())
                                        on:input=move |ev| { let v = event_target_value(&ev); edit(Box::new(move |d| if let Some(s) = d.skills.get_mut(i) { *s = v })); } /></td>
                                    <td><input type="text" data-testid=format!("role-{i}-permissions") prop:value=move || role().map(|r| r.permissions.join("; ")).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |r| r.permissions = trellis_model::task_units::list_items(&v).map(str::to_owned).collect())); } /></td>
                                    <td><input type="text" data-testid=format!("role-{i}-region") prop:value=move || role().and_then(|r| r.region).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |r| r.region = Some(v.trim().to_owned()).filter(|s| !s.is_empty()))); } /></td>
                                    <td><input type="number" min="1" max="20" data-testid=format!("role-{i}-count") prop:value=move || role().map(|r| r.count.to_string()).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(0); set(Box::new(move |r| r.count = v)); } /></td>
                                    <td><button class="small" data-testid=format!("role-{i}-remove") on:click=move |_| edit(Box::new(move |d| { if i < d.template.roles.len() { d.template.roles.remove(i); d.skills.remove(i); } }))>{say(lang(), "删除", "Remove")}</button></td>
                                </tr>
                            }
                        }).collect_view()
                    }}
                </tbody>
            </table>
            <button class="small" data-testid="add-role" on:click=move |_| edit(Box::new(|d| {
                d.template.roles.push(Role { id: format!("role_{}", d.template.roles.len() + 1), name: String::new(), function: Function::Sales, skills: Vec::new(), optional_skills: Vec::new(), permissions: Vec::new(), region: None, count: 1 });
                d.skills.push(String::new());
            }))>{move || say(lang(), "+ 添加角色", "+ Add a role")}</button>

            <h4>{move || say(lang(), "里程碑", "Milestones")}</h4>
            <table data-testid="template-milestones">
                <thead><tr>
                    <th>{move || say(lang(), "编号", "Id")}</th><th>{move || say(lang(), "名称", "Name")}</th>
                    <th>{move || say(lang(), "起算", "Counted from")}</th><th>{move || say(lang(), "时长（如 24h、2d）", "Offset (e.g. 24h, 2d)")}</th>
                    <th>{move || say(lang(), "负责角色", "Owner role")}</th><th>{move || say(lang(), "完成标志", "Done when")}</th><th></th>
                </tr></thead>
                <tbody>
                    {move || {
                        (0..milestone_count.get()).map(|i| {
                            let m = move || draft.with(|d| d.as_ref().and_then(|d| d.template.milestones.get(i).cloned()));
                            let set = move |f: Box<dyn FnOnce(&mut Milestone)>| edit(Box::new(move |d| if let Some(x) = d.template.milestones.get_mut(i) { f(x) }));
                            let earlier = move || draft.with(|d| d.as_ref().map(|d| d.template.milestones.iter().take(i).map(|x| (x.id.clone(), x.name.clone())).collect::<Vec<_>>()).unwrap_or_default());
                            let roles = move || draft.with(|d| d.as_ref().map(|d| d.template.roles.iter().map(|r| (r.id.clone(), r.name.clone())).collect::<Vec<_>>()).unwrap_or_default());
                            view! {
                                <tr data-testid=format!("milestone-{i}")>
                                    <td><input type="text" data-testid=format!("milestone-{i}-id") prop:value=move || m().map(|x| x.id).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |x| x.id = v)); } /></td>
                                    <td><input type="text" data-testid=format!("milestone-{i}-name") prop:value=move || m().map(|x| x.name).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |x| x.name = v)); } /></td>
                                    <td><select data-testid=format!("milestone-{i}-after") on:change=move |ev| { let v = event_target_value(&ev); set(Box::new(move |x| x.after = Some(v).filter(|v| !v.is_empty()))); }>
                                        <option value="" selected=move || m().is_some_and(|x| x.after.is_none())>{say(lang(), "单元开始", "the unit's start")}</option>
                                        {move || earlier().into_iter().map(|(id, name)| { let sel = id.clone(); view! { <option value=id.clone() selected=move || m().and_then(|x| x.after) == Some(sel.clone())>{say(lang(), &format!("「{name}」截止后"), &format!("after \"{name}\""))}</option> } }).collect_view()}
                                    </select></td>
                                    <td><input type="text" data-testid=format!("milestone-{i}-offset") prop:value=move || m().map(|x| x.offset).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |x| x.offset = v)); } /></td>
                                    <td><select data-testid=format!("milestone-{i}-owner") on:change=move |ev| { let v = event_target_value(&ev); set(Box::new(move |x| x.owner_role = Some(v).filter(|v| !v.is_empty()))); }>
                                        <option value="">{say(lang(), "（不指定）", "(none)")}</option>
                                        {move || roles().into_iter().map(|(id, name)| { let sel = id.clone(); view! { <option value=id.clone() selected=move || m().and_then(|x| x.owner_role) == Some(sel.clone())>{if name.is_empty() { id.clone() } else { name }}</option> } }).collect_view()}
                                    </select></td>
                                    <td><input type="text" data-testid=format!("milestone-{i}-done") prop:value=move || m().map(|x| x.done_when).unwrap_or_default()
                                        on:input=move |ev| { let v = event_target_value(&ev); set(Box::new(move |x| x.done_when = v)); } /></td>
                                    <td><button class="small" data-testid=format!("milestone-{i}-remove") on:click=move |_| edit(Box::new(move |d| { if i < d.template.milestones.len() { d.template.milestones.remove(i); } }))>{say(lang(), "删除", "Remove")}</button></td>
                                </tr>
                            }
                        }).collect_view()
                    }}
                </tbody>
            </table>
            <button class="small" data-testid="add-milestone" on:click=move |_| edit(Box::new(|d| {
                let n = d.template.milestones.len() + 1;
                d.template.milestones.push(Milestone { id: format!("m{n}"), name: String::new(), after: d.template.milestones.last().map(|m| m.id.clone()), offset: "24h".into(), owner_role: None, done_when: String::new() });
            }))>{move || say(lang(), "+ 添加里程碑", "+ Add a milestone")}</button>
            <Timeline draft=draft />

            <h4>{move || say(lang(), "加派规则（JSON，条件为 CEL，读取 event、account、lead）", "Dispatch rules (JSON; conditions in CEL over event, account, lead)")}</h4>
            <textarea data-testid="template-rules" rows="8" prop:value=move || draft.with(|d| d.as_ref().map(|d| d.rules.clone()).unwrap_or_default())
                on:input=move |ev| { let v = event_target_value(&ev); edit(Box::new(move |d| d.rules = v)); }></textarea>
            <h4>{move || say(lang(), "资料包（JSON：title、url，可按 scenario 区分客户场景）", "Knowledge pack (JSON: title, url, optionally a scenario)")}</h4>
            <textarea data-testid="template-knowledge" rows="5" prop:value=move || draft.with(|d| d.as_ref().map(|d| d.knowledge.clone()).unwrap_or_default())
                on:input=move |ev| { let v = event_target_value(&ev); edit(Box::new(move |d| d.knowledge = v)); }></textarea>

            {move || { let p = problems(); (!p.is_empty()).then(|| view! {
                <ul class="error" data-testid="template-problems">{p.into_iter().map(|x| view! { <li>{x}</li> }).collect_view()}</ul>
            }) }}
            <p class="actions">
                <button class="primary" data-testid="save-template" disabled=move || !problems().is_empty() on:click=save>{move || say(lang(), "保存", "Save")}</button>
                <button data-testid="close-template" on:click=move |_| draft.set(None)>{move || say(lang(), "关闭", "Close")}</button>
            </p>
            <Preview draft=draft checked=checked />
        </div>
    }
}

/// The milestones on a line from the unit's start: where each window starts and ends.
#[component]
fn Timeline(draft: RwSignal<Option<Draft>>) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let bars = move || {
        draft.with(|d| {
            let Some(d) = d else { return Vec::new() };
            let deadlines = d.template.schedule(0);
            let hour = 3_600_000.0;
            let end = deadlines.iter().map(|x| x.due_at).max().unwrap_or(0).max(1) as f64;
            let mut due = std::collections::HashMap::new();
            deadlines
                .into_iter()
                .zip(&d.template.milestones)
                .map(|(x, m)| {
                    let from = m
                        .after
                        .as_ref()
                        .and_then(|a| due.get(a).copied())
                        .unwrap_or(0);
                    due.insert(m.id.clone(), x.due_at);
                    (
                        x.name,
                        from as f64 / end * 100.0,
                        (x.due_at - from) as f64 / end * 100.0,
                        x.due_at as f64 / hour,
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    view! {
        <div class="timeline" data-testid="milestone-timeline">
            {move || bars().into_iter().enumerate().map(|(i, (name, left, width, hours))| view! {
                <div class="timeline-row">
                    <span class="timeline-label">{name}</span>
                    <span class="timeline-track"><span class="timeline-bar" data-testid=format!("timeline-{i}")
                        style=format!("margin-left:{left:.1}%;width:{:.1}%", width.max(1.0))></span></span>
                    <span class="timeline-due">{say(lang(), &format!("开始后 {}", hours_words(hours, lang())), &format!("{} after the start", hours_words(hours, lang())))}</span>
                </div>
            }).collect_view()}
        </div>
    }
}

/// Who a unit from the template as typed would get, and why.
#[component]
fn Preview(
    draft: RwSignal<Option<Draft>>,
    checked: Memo<Option<(Template, Vec<String>)>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let account = RwSignal::new(String::new());
    let severity = RwSignal::new(String::from("3"));
    let event = RwSignal::new(String::from("{\"overseas\": false}"));
    let result = RwSignal::new(None::<Value>);
    let error = RwSignal::new(None::<String>);
    let run = move |_| {
        let Some((t, problems)) = checked.get_untracked() else {
            return;
        };
        let lang = session.lang.get_untracked();
        if !problems.is_empty() {
            error.set(Some(say(
                lang,
                "先改正上面的问题再预览。",
                "Fix the problems above first.",
            )));
            return;
        }
        let properties = match serde_json::from_str::<Value>(&event.get_untracked()) {
            Ok(v) => v,
            Err(e) => {
                error.set(Some(say(
                    lang,
                    &format!("触发事件的属性不是 JSON：{e}"),
                    &format!("The event's properties are not JSON: {e}"),
                )));
                return;
            }
        };
        let id = draft
            .with_untracked(|d| d.as_ref().map(|d| d.id.clone()))
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "draft".into());
        let body = json!({
            "template": t, "account": account.get_untracked(),
            "severity": severity.get_untracked().parse::<u8>().unwrap_or(0),
            "event": { "name": "preview", "properties": properties },
        });
        leptos::task::spawn_local(async move {
            match api::post_json(
                &token(),
                &format!("/api/v1/task-unit-templates/{id}/preview"),
                &body,
            )
            .await
            {
                Ok(v) => {
                    error.set(None);
                    result.set(Some(v));
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    };
    view! {
        <div class="preview" data-testid="dispatch-preview">
            <h4>{move || say(lang(), "预览派单", "Preview dispatch")}</h4>
            <p class="hint">{move || say(lang(), "用当前的人员目录和所有进行中单元的负载，看这个模板会派谁、为什么；不会创建任何东西。", "With the directory and every open unit's load as they are now: who this template would pick and why. Nothing is created.")}</p>
            <label>{move || say(lang(), "客户（名称或 ID）", "Account (name or id)")}
                <input type="text" data-testid="preview-account" prop:value=move || account.get() on:input=move |ev| account.set(event_target_value(&ev)) /></label>
            <label>{move || say(lang(), "严重程度 0–5", "Severity 0–5")}
                <input type="number" min="0" max="5" data-testid="preview-severity" prop:value=move || severity.get() on:input=move |ev| severity.set(event_target_value(&ev)) /></label>
            <label>{move || say(lang(), "触发事件的属性（JSON，加派规则读取）", "The trigger event's properties (JSON, read by the rules)")}
                <textarea data-testid="preview-event" rows="2" prop:value=move || event.get() on:input=move |ev| event.set(event_target_value(&ev))></textarea></label>
            <button data-testid="run-preview" on:click=run>{move || say(lang(), "预览", "Preview")}</button>
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="preview-error">{e}</p> })}
            {move || result.get().map(|v| {
                let lang = lang();
                view! {
                    <div data-testid="preview-result">
                        <p><strong>{v["name"].as_str().unwrap_or_default().to_owned()}</strong>{say(lang, &format!("，优先级 {}", v["priority"]), &format!(", priority {}", v["priority"]))}</p>
                        <ul data-testid="preview-rules">
                            {v["rules"].as_array().cloned().unwrap_or_default().into_iter().map(|r| view! {
                                <li>{format!("{}：{}", r["name"].as_str().unwrap_or_default(), if r["held"] == true { say(lang, "成立，加派", "holds; roles added") } else { say(lang, "不成立", "does not hold") })}</li>
                            }).collect_view()}
                        </ul>
                        <table data-testid="preview-picks">
                            <thead><tr><th>{say(lang, "角色", "Role")}</th><th>{say(lang, "人选", "Person")}</th><th>{say(lang, "为什么", "Why")}</th></tr></thead>
                            <tbody>{v["picks"].as_array().cloned().unwrap_or_default().into_iter().map(|p| view! {
                                <tr data-testid=format!("pick-{}", p["member"].as_str().unwrap_or_default())>
                                    <td>{p["role"].as_str().unwrap_or_default().to_owned()}</td>
                                    <td>{format!("{}（{}）", p["name"].as_str().unwrap_or_default(), p["member"].as_str().unwrap_or_default())}</td>
                                    <td>{p[if lang == Lang::Zh { "zh" } else { "en" }].as_str().unwrap_or_default().to_owned()}</td>
                                </tr>
                            }).collect_view()}</tbody>
                        </table>
                        <ul class="warning" data-testid="preview-unfilled">
                            {v["unfilled"].as_array().cloned().unwrap_or_default().into_iter().map(|u| view! {
                                <li>{u[if lang == Lang::Zh { "zh" } else { "en" }].as_str().unwrap_or_default().to_owned()}</li>
                            }).collect_view()}
                        </ul>
                    </div>
                }
            })}
        </div>
    }
}

#[component]
fn Units() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let status = RwSignal::new(String::from("open"));
    let list = RwSignal::new(Vec::<Value>::new());
    let chosen = RwSignal::new(None::<Value>);
    let error = RwSignal::new(None::<String>);
    let update = RwSignal::new(String::new());
    let reload = RwSignal::new(0u32);
    let fail = move |e: ApiError| match e {
        ApiError::Unauthorized => session.sign_out(),
        ApiError::Other(m) => error.set(Some(m)),
    };
    Effect::new(move |_| {
        reload.track();
        let s = status.get();
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), &format!("/api/v1/task-units?status={s}")).await {
                Ok(v) => list.set(v["units"].as_array().cloned().unwrap_or_default()),
                Err(e) => fail(e),
            }
        });
    });
    let open = move |id: String| {
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), &format!("/api/v1/task-units/{id}")).await {
                Ok(v) => {
                    error.set(None);
                    chosen.set(Some(v));
                }
                Err(e) => fail(e),
            }
        });
    };
    let act = move |body: Value| {
        let Some(id) = chosen.with_untracked(|c| {
            c.as_ref()
                .and_then(|c| c["unit"]["id"].as_str().map(str::to_owned))
        }) else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::post_json(&token(), &format!("/api/v1/task-units/{id}/actions"), &body).await
            {
                Ok(v) => {
                    error.set(None);
                    update.set(String::new());
                    chosen.set(Some(v));
                    reload.update(|r| *r += 1);
                }
                Err(e) => fail(e),
            }
        });
    };
    let cancel = move |_| {
        leptos::task::spawn_local(async move {
            let lang = session.lang.get_untracked();
            if let Some(reason) = session
                .dialogs
                .ask(
                    say(
                        lang,
                        "为什么取消这个单元？（会记入日志）",
                        "Why cancel this unit? (It goes in the log.)",
                    ),
                    String::new(),
                )
                .await
                && !reason.trim().is_empty()
            {
                act(json!({ "kind": "cancel", "reason": reason }));
            }
        });
    };
    view! {
        <div data-testid="unit-list">
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="units-error">{e}</p> })}
            <p class="actions">
                <select data-testid="units-status" on:change=move |ev| status.set(event_target_value(&ev))>
                    <option value="open">{move || say(lang(), "进行中", "Open")}</option>
                    <option value="met">{move || say(lang(), "已达成", "Goal met")}</option>
                    <option value="cancelled">{move || say(lang(), "已取消", "Cancelled")}</option>
                </select>
            </p>
            <table>
                <thead><tr>
                    <th>{move || say(lang(), "单元", "Unit")}</th><th>{move || say(lang(), "模板", "Template")}</th>
                    <th>{move || say(lang(), "优先级", "Priority")}</th><th>{move || say(lang(), "创建于（北京时间）", "Created (Beijing)")}</th>
                </tr></thead>
                <tbody>
                    {move || list.get().into_iter().map(|u| {
                        let id = u["id"].as_str().unwrap_or_default().to_owned();
                        let go = id.clone();
                        view! {
                            <tr data-testid=format!("unit-row-{id}")>
                                <td><a href="#" data-testid=format!("open-unit-{id}") on:click=move |ev| { ev.prevent_default(); open(go.clone()); }>{u["name"].as_str().unwrap_or_default().to_owned()}</a></td>
                                <td>{u["template"].as_str().unwrap_or_default().to_owned()}</td>
                                <td>{u["priority"].as_i64().unwrap_or(0)}</td>
                                <td>{when(u["created_at"].as_i64().unwrap_or(0))}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {move || list.with(Vec::is_empty).then(|| view! {
                <p class="empty" data-testid="units-empty">{say(lang(), "没有这个状态的单元。", "No units in this state.")}</p>
            })}
            {move || chosen.get().map(|u| {
                let lang = lang();
                let open_unit = u["unit"]["status"] == "open";
                let z = if lang == Lang::Zh { "zh" } else { "en" };
                view! {
                    <div class="unit-detail" data-testid="unit-detail">
                        <h3>{u["unit"]["name"].as_str().unwrap_or_default().to_owned()}</h3>
                        <p>{say(lang, &format!("目标：{}", u["goal"].as_str().unwrap_or_default()), &format!("Goal: {}", u["goal"].as_str().unwrap_or_default()))}</p>
                        <h4>{say(lang, "成员与理由", "Members and why")}</h4>
                        <ul data-testid="unit-members">
                            {u["picks"].as_array().cloned().unwrap_or_default().into_iter().map(|p| view! {
                                <li data-testid=format!("unit-member-{}", p["member"].as_str().unwrap_or_default())>
                                    <strong>{format!("{}（{}）", p["name"].as_str().unwrap_or_default(), p["role"].as_str().unwrap_or_default())}</strong>
                                    " " {p[z].as_str().unwrap_or_default().to_owned()}
                                </li>
                            }).collect_view()}
                            {u["unfilled"].as_array().cloned().unwrap_or_default().into_iter().map(|x| view! {
                                <li class="warning">{x[z].as_str().unwrap_or_default().to_owned()}</li>
                            }).collect_view()}
                        </ul>
                        <h4>{say(lang, "里程碑", "Milestones")}</h4>
                        <ul data-testid="unit-milestones">
                            {u["milestones"].as_array().cloned().unwrap_or_default().into_iter().map(|m| {
                                let id = m["id"].as_str().unwrap_or_default().to_owned();
                                let done = m["done_at"].as_i64();
                                let mark = id.clone();
                                view! {
                                    <li data-testid=format!("unit-milestone-{id}") class:overdue=m["overdue"] == true>
                                        {format!("{} — {}", m["name"].as_str().unwrap_or_default(), say(lang, &format!("截止 {}", when(m["due_at"].as_i64().unwrap_or(0))), &format!("due {}", when(m["due_at"].as_i64().unwrap_or(0)))))}
                                        {match done {
                                            Some(at) => say(lang, &format!("，{} 完成", when(at)), &format!(", done {}", when(at))).into_any(),
                                            None if open_unit => view! { <button class="small" data-testid=format!("done-{mark}") on:click=move |_| act(json!({ "kind": "milestone_done", "milestone": mark.clone() }))>{say(lang, "标记完成", "Mark done")}</button> }.into_any(),
                                            None => ().into_any(),
                                        }}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                        {open_unit.then(|| view! {
                            <p class="actions">
                                <input type="text" data-testid="unit-update" placeholder=say(lang, "进展（记入日志）", "Progress (goes in the log)")
                                    prop:value=move || update.get() on:input=move |ev| update.set(event_target_value(&ev)) />
                                <button data-testid="post-update" on:click=move |_| { let t = update.get_untracked(); if !t.trim().is_empty() { act(json!({ "kind": "update", "text": t })); } }>{say(lang, "发布进展", "Post")}</button>
                                <button data-testid="cancel-unit" on:click=cancel>{say(lang, "取消单元", "Cancel the unit")}</button>
                            </p>
                        })}
                        <h4>{say(lang, "日志", "Log")}</h4>
                        <ol data-testid="unit-log">
                            {u["log"].as_array().cloned().unwrap_or_default().into_iter().map(|e| view! {
                                <li>{format!("{} {} · {}", when(e["at"].as_i64().unwrap_or(0)), e["actor"].as_str().unwrap_or_default(), log_words(&e, lang))}</li>
                            }).collect_view()}
                        </ol>
                    </div>
                }
            })}
        </div>
    }
}

/// A bar `share` (0–1) of its track, with its words beside it.
fn bar(testid: String, share: f64, words: String) -> impl IntoView {
    view! {
        <span class="bar-cell" data-testid=testid>
            <span class="bar-track"><span class="bar-fill" style=format!("width:{:.1}%", (share * 100.0).clamp(0.0, 100.0))></span></span>
            <span class="bar-words">{words}</span>
        </span>
    }
}

/// Collaboration health: response times and punctuality by function and by template, load
/// against capacity, the knowledge used and the teams that recur.
#[component]
fn HealthDashboard() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let days = RwSignal::new(90u32);
    let health = RwSignal::new(None::<Value>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let d = days.get();
        leptos::task::spawn_local(async move {
            match api::get_json(&token(), &format!("/api/v1/task-units/health?days={d}")).await {
                Ok(v) => {
                    error.set(None);
                    health.set(Some(v));
                }
                Err(ApiError::Unauthorized) => session.sign_out(),
                Err(ApiError::Other(m)) => error.set(Some(m)),
            }
        });
    });
    let groups = move |v: &Value,
                       key: &str,
                       title: (&'static str, &'static str),
                       testid: &'static str| {
        let lang = lang();
        let rows = v[key].as_array().cloned().unwrap_or_default();
        let slowest = rows
            .iter()
            .filter_map(|g| g["response_p90_minutes"].as_f64())
            .fold(1.0_f64, f64::max);
        let name = move |k: &str| {
            if key == "by_function" {
                Function::parse(k).map_or_else(|| k.to_owned(), |f| function_words(f, lang))
            } else {
                k.to_owned()
            }
        };
        view! {
            <h4>{say(lang, title.0, title.1)}</h4>
            <table data-testid=testid>
                <thead><tr>
                    <th></th><th>{say(lang, "单元", "Units")}</th>
                    <th>{say(lang, "首次响应（中位 / P90）", "First response (median / p90)")}</th>
                    <th>{say(lang, "里程碑按时率", "Milestones on time")}</th>
                </tr></thead>
                <tbody>{rows.into_iter().map(|g| {
                    let k = g["key"].as_str().unwrap_or_default().to_owned();
                    let p50 = g["response_p50_minutes"].as_f64();
                    let p90 = g["response_p90_minutes"].as_f64();
                    let rate = g["on_time_rate"].as_f64();
                    view! {
                        <tr data-testid=format!("{testid}-{k}")>
                            <td>{name(&k)}</td><td>{g["units"].as_u64().unwrap_or(0)}</td>
                            <td>{bar(format!("{testid}-{k}-response"), p90.unwrap_or(0.0) / slowest, match (p50, p90) {
                                (Some(a), Some(b)) => say(lang, &format!("{a:.0} / {b:.0} 分钟（{} / {} 人已响应）", g["responded"], g["invited"]), &format!("{a:.0} / {b:.0} min ({} of {} responded)", g["responded"], g["invited"])),
                                _ => say(lang, "还没有人响应", "nobody has responded yet"),
                            })}</td>
                            <td>{bar(format!("{testid}-{k}-on-time"), rate.unwrap_or(0.0), match rate {
                                Some(r) => say(lang, &format!("{:.0}%（{}/{}）", r * 100.0, g["on_time"], g["judged"]), &format!("{:.0}% ({}/{})", r * 100.0, g["on_time"], g["judged"])),
                                None => say(lang, "还没有到期的里程碑", "no milestone due yet"),
                            })}</td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        }
    };
    view! {
        <div data-testid="units-health">
            <p class="actions">
                <select data-testid="health-days" on:change=move |ev| days.set(event_target_value(&ev).parse().unwrap_or(90))>
                    <option value="90">{move || say(lang(), "最近 90 天", "Last 90 days")}</option>
                    <option value="30">{move || say(lang(), "最近 30 天", "Last 30 days")}</option>
                    <option value="7">{move || say(lang(), "最近 7 天", "Last 7 days")}</option>
                </select>
            </p>
            {move || error.get().map(|e| view! { <p class="banner error">{e}</p> })}
            {move || health.get().map(|v| {
                let lang = lang();
                view! {
                    <p data-testid="health-units">{say(lang, &format!("期间共 {} 个单元。", v["units"]), &format!("{} units in the period.", v["units"]))}</p>
                    {groups(&v, "by_function", ("按职能", "By function"), "health-function")}
                    {groups(&v, "by_template", ("按模板", "By template"), "health-template")}
                    <h4>{say(lang, "当前负载（进行中的单元 / 容量）", "Load now (open units / capacity)")}</h4>
                    <table data-testid="health-load"><tbody>
                        {v["load"].as_array().cloned().unwrap_or_default().into_iter().map(|l| {
                            let (open, cap) = (l["open"].as_f64().unwrap_or(0.0), l["capacity"].as_f64().unwrap_or(0.0));
                            let who = l["member"].as_str().unwrap_or_default().to_owned();
                            view! { <tr><td>{who.clone()}</td><td>{bar(format!("health-load-{who}"), if cap > 0.0 { open / cap } else { 1.0 }, format!("{open:.0} / {cap:.0}"))}</td></tr> }
                        }).collect_view()}
                    </tbody></table>
                    <h4>{say(lang, "最常用的资料", "Most used knowledge")}</h4>
                    <ol data-testid="health-knowledge">{v["knowledge"].as_array().cloned().unwrap_or_default().into_iter().map(|k| view! {
                        <li>{say(lang, &format!("{}（{} 个单元）", k["key"].as_str().unwrap_or_default(), k["count"]), &format!("{} ({} units)", k["key"].as_str().unwrap_or_default(), k["count"]))}</li>
                    }).collect_view()}</ol>
                    <h4>{say(lang, "最常一起出现的成员组合", "Member combinations that recur")}</h4>
                    <ol data-testid="health-combinations">{v["combinations"].as_array().cloned().unwrap_or_default().into_iter().map(|k| view! {
                        <li>{say(lang, &format!("{}（{} 次）", k["key"].as_str().unwrap_or_default(), k["count"]), &format!("{} ({} times)", k["key"].as_str().unwrap_or_default(), k["count"]))}</li>
                    }).collect_view()}</ol>
                }
            })}
        </div>
    }
}

/// A log entry in words.
fn log_words(e: &Value, lang: Lang) -> String {
    let d = &e["detail"];
    let z = if lang == Lang::Zh { "zh" } else { "en" };
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    match e["action"].as_str().unwrap_or_default() {
        "created" => say(
            lang,
            &format!(
                "按模板 {} 第 {} 版创建「{}」",
                s("template"),
                d["version"],
                s("name")
            ),
            &format!(
                "created \"{}\" from {} version {}",
                s("name"),
                s("template"),
                d["version"]
            ),
        ),
        "picked" => format!("{}（{}）：{}", s("name"), s("role"), s(z)),
        "unfilled" | "priority" => s(z),
        "override" => say(
            lang,
            &format!(
                "经理 {} 特批 {} 加入（{}）",
                s("by"),
                s("member"),
                s("reason")
            ),
            &format!(
                "{} put {} in by override ({})",
                s("by"),
                s("member"),
                s("reason")
            ),
        ),
        "update" => say(
            lang,
            &format!("进展：{}", s("text")),
            &format!("update: {}", s("text")),
        ),
        "link" => format!("{} {}", s("title"), s("url")),
        "milestone_done" => say(
            lang,
            &format!(
                "完成里程碑「{}」{}",
                s("name"),
                if d["on_time"] == true {
                    "（按时）"
                } else {
                    "（超期）"
                }
            ),
            &format!(
                "milestone \"{}\" done{}",
                s("name"),
                if d["on_time"] == true {
                    " on time"
                } else {
                    " late"
                }
            ),
        ),
        "milestone_due" => say(
            lang,
            &format!("提醒：里程碑「{}」临近截止", s("milestone_name")),
            &format!("reminder: \"{}\" is due soon", s("milestone_name")),
        ),
        "milestone_overdue" => say(
            lang,
            &format!("里程碑「{}」已超期", s("milestone_name")),
            &format!("\"{}\" is overdue", s("milestone_name")),
        ),
        "closed" => say(
            lang,
            &format!("关闭：{}", s("reason")),
            &format!("closed: {}", s("reason")),
        ),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_reads_and_a_typing_slip_is_said_in_words() {
        let t: Template = serde_json::from_str(EXAMPLE).expect("the example reads");
        let mut d = Draft::of("delivery-rescue".into(), 1, t);
        assert_eq!(d.skills[0], "实时库存:3");
        assert!(
            d.checked(Lang::Zh).1.is_empty(),
            "{:?}",
            d.checked(Lang::Zh).1
        );
        d.skills[2] = "故障诊断:9".into();
        d.rules = "[{\"id\": \"x\"".into();
        d.template.milestones[1].after = Some("later".into());
        let problems = d.checked(Lang::Zh).1;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("角色 3 的技能"), "{problems:?}");
        assert!(problems[1].starts_with("加派规则（JSON）"), "{problems:?}");
        assert!(
            problems[2].starts_with("里程碑 › 第 2 条 › 起算里程碑"),
            "{problems:?}"
        );
        assert_eq!(hours_words(48.0, Lang::Zh), "2 天");
        assert_eq!(hours_words(30.0, Lang::En), "1 d 6 h");
    }
}
