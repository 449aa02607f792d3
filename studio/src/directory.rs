//! The people directory (人员目录) task units are staffed from: members by function, a
//! directory export imported from a CSV file (all or nothing; each problem said with its
//! line and column), and one member added or edited in a form checked as it is typed.

use leptos::prelude::*;
use serde_json::Value;
use trellis_model::task_units::{Function, Member, list_items, parse_skills, skills_text};

use crate::Session;
use crate::api::{self, ApiError, ImportError};
use crate::i18n::{Lang, say};

/// A function in words.
fn function_words(f: Function, lang: Lang) -> String {
    let (zh, en) = f.words();
    say(lang, zh, en)
}

/// The member form's fields, as typed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Form {
    /// Editing this member (its id is fixed); none: a new member.
    editing: Option<String>,
    id: String,
    name: String,
    function: String,
    region: String,
    skills: String,
    permissions: String,
    capacity: String,
    manager: String,
    active: bool,
}

impl Form {
    fn new_member() -> Form {
        Form {
            function: Function::Sales.as_str().into(),
            capacity: "5".into(),
            active: true,
            ..Form::default()
        }
    }

    fn of(m: &Member) -> Form {
        Form {
            editing: Some(m.id.clone()),
            id: m.id.clone(),
            name: m.name.clone(),
            function: m.function.as_str().into(),
            region: m.region.clone().unwrap_or_default(),
            skills: skills_text(&m.skills),
            permissions: m.permissions.iter().cloned().collect::<Vec<_>>().join("; "),
            capacity: m.capacity.to_string(),
            manager: m.manager.clone().unwrap_or_default(),
            active: m.active,
        }
    }

    /// The member the form describes, or what is wrong, in words.
    fn member(&self, time_zone: Option<String>, lang: Lang) -> Result<Member, Vec<String>> {
        let mut problems = Vec::new();
        let skills = parse_skills(&self.skills).unwrap_or_else(|wrong| {
            problems.extend(
                wrong
                    .into_iter()
                    .map(|w| say(lang, &format!("技能 {w}"), &format!("skills {w}"))),
            );
            Default::default()
        });
        let capacity = self.capacity.trim().parse::<u32>().unwrap_or(0);
        let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let member = Member {
            id: self.id.trim().to_owned(),
            name: self.name.trim().to_owned(),
            function: Function::parse(&self.function).unwrap_or(Function::Sales),
            region: optional(&self.region),
            skills,
            permissions: list_items(&self.permissions).map(str::to_owned).collect(),
            capacity,
            time_zone: time_zone.unwrap_or_else(|| "Asia/Shanghai".into()),
            manager: optional(&self.manager),
            active: self.active,
        };
        for (pointer, _) in member.problems() {
            problems.push(match pointer.as_str() {
                "/id" => say(
                    lang,
                    "用户 ID：企业微信的 UserID，1 到 64 个字符",
                    "User id: the WeCom UserID, 1 to 64 characters",
                ),
                "/name" => say(lang, "姓名：1 到 100 个字", "Name: 1 to 100 characters"),
                "/capacity" => say(
                    lang,
                    "容量：同时参与的单元数，1 到 100",
                    "Capacity: open units at once, 1 to 100",
                ),
                other => other.to_owned(),
            });
        }
        if problems.is_empty() {
            Ok(member)
        } else {
            Err(problems)
        }
    }
}

#[component]
pub fn DirectoryPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let token = move || session.token.get_untracked().unwrap_or_default();
    let reload = RwSignal::new(0u32);
    let filter = RwSignal::new(String::new());
    let members = RwSignal::new(Vec::<Member>::new());
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let import_problems = RwSignal::new(Vec::<Value>::new());
    let form = RwSignal::new(None::<Form>);
    let fail = move |e: ApiError| match e {
        ApiError::Unauthorized => session.sign_out(),
        ApiError::Other(m) => error.set(Some(m)),
    };
    Effect::new(move |_| {
        reload.track();
        let f = filter.get();
        leptos::task::spawn_local(async move {
            let path = if f.is_empty() {
                "/api/v1/people/members".to_owned()
            } else {
                format!("/api/v1/people/members?function={f}")
            };
            match api::get_json(&token(), &path).await {
                Ok(v) => {
                    members.set(serde_json::from_value(v["members"].clone()).unwrap_or_default())
                }
                Err(e) => fail(e),
            }
        });
    });
    let import = move |ev: leptos::ev::Event| {
        let Some(file) = crate::chosen_file(&ev) else {
            return;
        };
        leptos::task::spawn_local(async move {
            let lang = session.lang.get_untracked();
            let Some(text) = wasm_bindgen_futures::JsFuture::from(file.text())
                .await
                .ok()
                .and_then(|v| v.as_string())
            else {
                error.set(Some(say(
                    lang,
                    "读不出这个文件。",
                    "The file could not be read.",
                )));
                return;
            };
            match api::post_csv(&token(), "/api/v1/people/members/import", text).await {
                Ok(v) => {
                    let n = v["saved"].as_u64().unwrap_or(0);
                    import_problems.set(Vec::new());
                    error.set(None);
                    notice.set(Some(say(
                        lang,
                        &format!("已导入 {n} 人。"),
                        &format!("Imported {n} people."),
                    )));
                    reload.update(|r| *r += 1);
                }
                Err(ImportError::Problems(p)) => {
                    notice.set(None);
                    import_problems.set(p);
                }
                Err(ImportError::Other(e)) => fail(e),
            }
        });
    };
    let save = move |_| {
        let Some(f) = form.get_untracked() else {
            return;
        };
        let lang = session.lang.get_untracked();
        // The time zone is not on the form: an edited member keeps theirs.
        let zone = f.editing.as_ref().and_then(|id| {
            members.with_untracked(|m| m.iter().find(|x| &x.id == id).map(|x| x.time_zone.clone()))
        });
        let Ok(member) = f.member(zone, lang) else {
            return;
        };
        leptos::task::spawn_local(async move {
            let body = serde_json::to_value(&member).unwrap_or_default();
            let path = format!("/api/v1/people/members/{}", member.id);
            match api::put_json(&token(), &path, &body).await {
                Ok(_) => {
                    form.set(None);
                    error.set(None);
                    notice.set(Some(say(
                        lang,
                        &format!("已保存 {}。", member.name),
                        &format!("Saved {}.", member.name),
                    )));
                    reload.update(|r| *r += 1);
                }
                Err(e) => fail(e),
            }
        });
    };
    let wecom_open = RwSignal::new(false);
    let wecom_department = RwSignal::new(String::from("1"));
    let wecom_mapping = RwSignal::new(String::new());
    let wecom_capacity = RwSignal::new(String::from("5"));
    let wecom_api_base = RwSignal::new(String::new());
    let wecom_skipped = RwSignal::new(Vec::<Value>::new());
    let import_wecom = move |_| {
        let lang = session.lang.get_untracked();
        let mut functions = serde_json::Map::new();
        for line in wecom_mapping
            .get_untracked()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let Some((department, function)) = line.split_once(['=', '＝']) else {
                error.set(Some(say(
                    lang,
                    &format!("「{line}」应写成 部门ID=职能，例如 2=仓储"),
                    &format!("\"{line}\" should read department id=function, e.g. 2=warehouse"),
                )));
                return;
            };
            functions.insert(department.trim().to_owned(), Value::from(function.trim()));
        }
        let mut body = serde_json::json!({
            "department_id": wecom_department.get_untracked().trim().parse::<u64>().unwrap_or(1),
            "functions": functions,
            "capacity": wecom_capacity.get_untracked().trim().parse::<u32>().unwrap_or(5),
        });
        let base = wecom_api_base.get_untracked();
        if !base.trim().is_empty() {
            body["api_base"] = Value::from(base.trim());
        }
        leptos::task::spawn_local(async move {
            match api::post_json(&token(), "/api/v1/people/members/import-wecom", &body).await {
                Ok(v) => {
                    error.set(None);
                    notice.set(Some(say(
                        lang,
                        &format!(
                            "已从企业微信导入：新增 {} 人，更新 {} 人，跳过 {} 人。",
                            v["created"],
                            v["updated"],
                            v["skipped"].as_array().map_or(0, Vec::len)
                        ),
                        &format!(
                            "Imported from WeCom: {} added, {} updated, {} skipped.",
                            v["created"],
                            v["updated"],
                            v["skipped"].as_array().map_or(0, Vec::len)
                        ),
                    )));
                    wecom_skipped.set(v["skipped"].as_array().cloned().unwrap_or_default());
                    reload.update(|r| *r += 1);
                }
                Err(e) => fail(e),
            }
        });
    };
    let problems = Memo::new(move |_| {
        let lang = lang();
        form.with(|f| {
            f.as_ref()
                .map(|f| f.member(None, lang).err().unwrap_or_default())
                .unwrap_or_default()
        })
    });
    let field = move |key: &'static str, get: fn(&Form) -> String, set: fn(&mut Form, String)| {
        view! {
            <input type="text" data-testid=format!("member-{key}")
                prop:value=move || form.with(|f| f.as_ref().map(get).unwrap_or_default())
                on:input=move |ev| { let v = event_target_value(&ev); form.update(|f| if let Some(f) = f { set(f, v) }); } />
        }
    };
    view! {
        <div class="card" data-testid="directory-page">
            <h2>{move || say(lang(), "人员目录", "People directory")}</h2>
            <p class="hint">{move || say(lang(),
                "作战单元从这里挑人：每人的职能、区域、技能等级（1–5）、权限和同时能参与的单元数。可以导入人员表（CSV），也可以逐个编辑。",
                "Task units are staffed from here: each person's function, region, skill levels (1–5), permissions and how many units they take at once. Import a people export (CSV) or edit one by one.")}</p>
            {move || error.get().map(|e| view! { <p class="banner error" data-testid="directory-error">{e}</p> })}
            {move || notice.get().map(|n| view! { <p class="banner ok" data-testid="directory-notice">{n}</p> })}
            <p class="actions">
                <label>{move || say(lang(), "导入人员表（CSV）：", "Import a people export (CSV): ")}
                    <input type="file" accept=".csv,text/csv" data-testid="directory-import-file" on:change=import /></label>
                <button data-testid="add-member" on:click=move |_| form.set(Some(Form::new_member()))>
                    {move || say(lang(), "新增成员", "Add a person")}</button>
                <select data-testid="directory-filter" on:change=move |ev| filter.set(event_target_value(&ev))>
                    <option value="">{move || say(lang(), "全部职能", "Every function")}</option>
                    {move || Function::ALL.map(|f| view! { <option value=f.as_str()>{function_words(f, lang())}</option> }).collect_view()}
                </select>
            </p>
            <p class="actions"><button data-testid="wecom-import-open" on:click=move |_| wecom_open.update(|o| *o = !*o)>
                {move || say(lang(), "从企业微信通讯录导入…", "Import from WeCom's directory…")}</button></p>
            {move || wecom_open.get().then(|| view! {
                <div class="member-form" data-testid="wecom-import">
                    <p class="hint">{say(lang(), "读取企业微信中某个部门及其下属部门的成员（需先连接企业微信）。每行写一个 部门ID=职能，下级部门沿用上级的职能；已在目录里的人保留技能和容量。", "Reads the employees of a WeCom department and those under it (connect WeCom first). One department id=function a line; sub-departments take their parent's; people already here keep their skills and capacity.")}</p>
                    <label>{say(lang(), "部门 ID（1 为全公司）", "Department id (1: the whole company)")}
                        <input type="text" data-testid="wecom-department" prop:value=move || wecom_department.get() on:input=move |ev| wecom_department.set(event_target_value(&ev)) /></label>
                    <label>{say(lang(), "部门与职能（如 2=仓储）", "Departments and functions (e.g. 2=warehouse)")}
                        <textarea data-testid="wecom-mapping" rows="4" prop:value=move || wecom_mapping.get() on:input=move |ev| wecom_mapping.set(event_target_value(&ev))></textarea></label>
                    <label>{say(lang(), "新成员的容量", "New people's capacity")}
                        <input type="text" data-testid="wecom-capacity" prop:value=move || wecom_capacity.get() on:input=move |ev| wecom_capacity.set(event_target_value(&ev)) /></label>
                    <label>{say(lang(), "接口地址（仅私有部署填写）", "API address (private deployments only)")}
                        <input type="text" data-testid="wecom-api-base" prop:value=move || wecom_api_base.get() on:input=move |ev| wecom_api_base.set(event_target_value(&ev)) /></label>
                    <button class="primary" data-testid="wecom-import-run" on:click=import_wecom>{say(lang(), "导入", "Import")}</button>
                    {move || (!wecom_skipped.with(Vec::is_empty)).then(|| view! {
                        <ul class="warning" data-testid="wecom-skipped">{wecom_skipped.get().into_iter().map(|x| view! {
                            <li>{
                                let reason = x["reason"].as_str().unwrap_or_default();
                                let why = if reason.contains("has no function") {
                                    say(lang(), &format!("部门 {} 及其上级部门都没有对应的职能", x["department"]), reason)
                                } else {
                                    reason.to_owned()
                                };
                                format!("{}（{}）：{why}", x["name"].as_str().unwrap_or_default(), x["userid"].as_str().unwrap_or_default())
                            }</li>
                        }).collect_view()}</ul>
                    })}
                </div>
            })}
            <p class="hint">{move || say(lang(),
                "表头：id（企业微信 UserID）, name, function（如 仓储、采购）, region, skills（如 inventory:4; erp:3）, permissions, capacity, time_zone, manager, active。整张表有任何问题都不会导入，下面会列出每个问题的行和列。",
                "Header: id (WeCom UserID), name, function (e.g. warehouse), region, skills (e.g. inventory:4; erp:3), permissions, capacity, time_zone, manager, active. A file with any problem imports nothing; each problem is listed below with its line and column.")}</p>
            {move || (!import_problems.with(Vec::is_empty)).then(|| view! {
                <ul class="error" data-testid="directory-import-problems">
                    {import_problems.get().into_iter().map(|p| {
                        let (line, column, message) = (p["line"].as_u64().unwrap_or(0), p["column"].as_str().unwrap_or("").to_owned(), p["message"].as_str().unwrap_or("").to_owned());
                        view! { <li>{say(lang(), &format!("第 {line} 行「{column}」：{message}"), &format!("line {line}, {column}: {message}"))}</li> }
                    }).collect_view()}
                </ul>
            })}
            {move || form.get().map(|f| view! {
                <div class="member-form" data-testid="member-form">
                    <h3>{if f.editing.is_some() { say(lang(), "编辑成员", "Edit person") } else { say(lang(), "新增成员", "Add a person") }}</h3>
                    <label>{say(lang(), "用户 ID（企业微信 UserID）", "User id (WeCom UserID)")}
                        <input type="text" data-testid="member-id" disabled=f.editing.is_some()
                            prop:value=f.id.clone()
                            on:input=move |ev| { let v = event_target_value(&ev); form.update(|f| if let Some(f) = f { f.id = v }); } /></label>
                    <label>{say(lang(), "姓名", "Name")}{field("name", |f| f.name.clone(), |f, v| f.name = v)}</label>
                    <label>{say(lang(), "职能", "Function")}
                        <select data-testid="member-function" on:change=move |ev| { let v = event_target_value(&ev); form.update(|f| if let Some(f) = f { f.function = v }); }>
                            {Function::ALL.map(|x| view! { <option value=x.as_str() selected=x.as_str() == f.function>{function_words(x, lang())}</option> }).collect_view()}
                        </select></label>
                    <label>{say(lang(), "区域", "Region")}{field("region", |f| f.region.clone(), |f, v| f.region = v)}</label>
                    <label>{say(lang(), "技能（名称:等级，等级 1–5，用分号隔开）", "Skills (name:level, 1–5, separated by ;)")}{field("skills", |f| f.skills.clone(), |f, v| f.skills = v)}</label>
                    <label>{say(lang(), "权限（用分号隔开）", "Permissions (separated by ;)")}{field("permissions", |f| f.permissions.clone(), |f, v| f.permissions = v)}</label>
                    <label>{say(lang(), "容量（同时参与的单元数）", "Capacity (open units at once)")}{field("capacity", |f| f.capacity.clone(), |f, v| f.capacity = v)}</label>
                    <label>{say(lang(), "直属经理（UserID）", "Manager (UserID)")}{field("manager", |f| f.manager.clone(), |f, v| f.manager = v)}</label>
                    <label><input type="checkbox" data-testid="member-active" prop:checked=f.active
                        on:change=move |ev| { let on = event_target_checked(&ev); form.update(|f| if let Some(f) = f { f.active = on }); } />
                        {say(lang(), "在职，可被分配", "Active: may be assigned")}</label>
                    {move || (!problems.with(Vec::is_empty)).then(|| view! {
                        <ul class="error" data-testid="member-problems">{problems.get().into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
                    })}
                    <p class="actions">
                        <button class="primary" data-testid="save-member" disabled=move || !problems.with(Vec::is_empty) on:click=save>
                            {say(lang(), "保存", "Save")}</button>
                        <button data-testid="cancel-member" on:click=move |_| form.set(None)>{say(lang(), "取消", "Cancel")}</button>
                    </p>
                </div>
            })}
            <table data-testid="directory-members">
                <thead><tr>
                    <th>{move || say(lang(), "姓名", "Name")}</th>
                    <th>{move || say(lang(), "用户 ID", "User id")}</th>
                    <th>{move || say(lang(), "职能", "Function")}</th>
                    <th>{move || say(lang(), "区域", "Region")}</th>
                    <th>{move || say(lang(), "技能", "Skills")}</th>
                    <th>{move || say(lang(), "权限", "Permissions")}</th>
                    <th>{move || say(lang(), "容量", "Capacity")}</th>
                    <th></th>
                </tr></thead>
                <tbody>
                    {move || members.get().into_iter().map(|m| {
                        let lang = lang();
                        let edit = m.clone();
                        view! {
                            <tr data-testid=format!("member-row-{}", m.id) class:inactive=!m.active>
                                <td>{m.name.clone()}{(!m.active).then(|| say(lang, "（不在职）", " (inactive)"))}</td>
                                <td>{m.id.clone()}</td>
                                <td>{function_words(m.function, lang)}</td>
                                <td>{m.region.clone().unwrap_or_default()}</td>
                                <td>{m.skills.iter().map(|(s, l)| format!("{s} {l}")).collect::<Vec<_>>().join("、")}</td>
                                <td>{m.permissions.iter().cloned().collect::<Vec<_>>().join("、")}</td>
                                <td>{m.capacity}</td>
                                <td><button class="small" data-testid=format!("edit-member-{}", m.id)
                                    on:click=move |_| form.set(Some(Form::of(&edit)))>{say(lang, "编辑", "Edit")}</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {move || members.with(Vec::is_empty).then(|| view! {
                <p class="empty" data-testid="directory-empty">{say(lang(), "目录里还没有人。导入人员表，或逐个新增。", "Nobody in the directory yet. Import a people export, or add people one by one.")}</p>
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_what_people_type_and_says_what_is_wrong() {
        let mut f = Form::new_member();
        f.id = "wh-east".into();
        f.name = "周敏".into();
        f.function = "warehouse".into();
        f.skills = "inventory:4；erp：3".into();
        f.permissions = "emergency_air_freight、sign_off".into();
        let m = f.member(None, Lang::Zh).expect("reads");
        assert_eq!(m.skills.get("erp"), Some(&3));
        assert_eq!(m.permissions.len(), 2);
        assert_eq!(Form::of(&m).skills, "erp:3; inventory:4");
        f.skills = "inventory:9".into();
        f.capacity = "0".into();
        let problems = f.member(None, Lang::Zh).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].starts_with("容量"), "{problems:?}");
    }
}
