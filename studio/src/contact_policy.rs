//! The contact-policy page (联系策略): how often a customer may be contacted on each
//! channel, the quiet hours, and the time zone of leads whose own is unknown. Every edit is
//! checked with the server's own code (`trellis_model::contact_policy`) in the browser, and
//! the page says in a sentence what the draft will do before it is saved. Admins save it;
//! it applies to calls decided from then on.

use leptos::prelude::*;
use trellis_model::contact_policy::{Cap, ContactPolicy, Period, QuietHours, WhenQuiet};

use crate::Session;
use crate::doc_editor::{Banners, DocEditor, DocHistory};
use crate::i18n::{Lang, say};
use crate::words::channel_label;

/// Channels the connectors declare today, offered in the channel picker.
const CHANNELS: [&str; 3] = ["wecom_group_send", "email", "sms"];

/// Time zones offered (any IANA name may be typed).
const ZONES: [&str; 8] = [
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/New_York",
    "UTC",
];

fn period_words(p: Period, lang: Lang) -> String {
    match p {
        Period::Day => say(lang, "每天", "a day"),
        Period::Week => say(lang, "每周", "a week"),
        Period::Month => say(lang, "每月", "a month"),
    }
}

fn period_of(s: &str) -> Period {
    match s {
        "week" => Period::Week,
        "month" => Period::Month,
        _ => Period::Day,
    }
}

fn period_code(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

/// What the draft does, in one paragraph.
pub fn summary(p: &ContactPolicy, lang: Lang) -> String {
    let mut parts = Vec::new();
    if p.caps.is_empty() {
        parts.push(say(lang, "不限制联系次数", "No limit on how often"));
    }
    for c in &p.caps {
        parts.push(match lang {
            Lang::Zh => format!(
                "{}{}最多 {} 次",
                channel_label(&c.channel, lang),
                period_words(c.per, lang),
                c.max
            ),
            Lang::En => format!(
                "{}: at most {} {}",
                channel_label(&c.channel, lang),
                c.max,
                period_words(c.per, lang)
            ),
        });
    }
    let quiet = match &p.quiet_hours {
        None => say(lang, "没有免打扰时段", "no quiet hours"),
        Some(q) => match (lang, q.then) {
            (Lang::Zh, WhenQuiet::Wait) => format!(
                "{}–{} 免打扰，期间的发送等到 {} 再发",
                q.start, q.end, q.end
            ),
            (Lang::Zh, WhenQuiet::Block) => {
                format!("{}–{} 免打扰，期间的发送不再发出", q.start, q.end)
            }
            (Lang::En, WhenQuiet::Wait) => format!(
                "quiet from {} to {}: sends then wait until {}",
                q.start, q.end, q.end
            ),
            (Lang::En, WhenQuiet::Block) => format!(
                "quiet from {} to {}: sends then are not made",
                q.start, q.end
            ),
        },
    };
    match lang {
        Lang::Zh => format!(
            "每位客户：{}；{}（按客户所在时区，未知时按 {}）。撤回许可的客户（删除企业微信好友、退订）不会再被联系。",
            parts.join("，"),
            quiet,
            p.default_time_zone
        ),
        Lang::En => format!(
            "Each customer: {}; {} (in the customer's time zone, {} when unknown). Customers who revoked consent (removed the rep on WeCom, unsubscribed) are not contacted.",
            parts.join(", "),
            quiet,
            p.default_time_zone
        ),
    }
}

/// A problem in words: which part, then what.
fn problem_words(pointer: &str, message: &str, lang: Lang) -> String {
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["caps", i, ..] => {
            let n = i.parse::<usize>().map_or(0, |n| n + 1);
            say(
                lang,
                &format!("第 {n} 条频次上限：{message}"),
                &format!("Cap {n}: {message}"),
            )
        }
        ["quiet_hours", ..] => say(
            lang,
            &format!("免打扰时段：{message}"),
            &format!("Quiet hours: {message}"),
        ),
        ["default_time_zone"] => say(
            lang,
            &format!("默认时区：{message}"),
            &format!("Default time zone: {message}"),
        ),
        _ => message.to_owned(),
    }
}

#[component]
pub fn ContactPolicyPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let lang = move || session.lang.get();
    let doc = DocEditor::<ContactPolicy>::new(
        session,
        "/api/v1/contact-policy",
        "contact-policy",
        |v| v["doc"].clone(),
        (
            "已保存：从现在起的每次客户联系都按此策略判断。",
            "Saved: every customer contact from now on is decided by this policy.",
        ),
    );
    let DocEditor {
        draft,
        builtin,
        dirty,
        error,
        notice,
        ..
    } = doc;
    let edit = move |f: &dyn Fn(&mut ContactPolicy)| doc.edit(f);
    let admin = move || session.role().is_none_or(|r| r == "admin");
    let problems = Memo::new(move |_| draft.with(|d| d.as_ref().map(ContactPolicy::problems)));
    let caps = Memo::new(move |_| draft.with(|d| d.as_ref().map_or(0, |d| d.caps.len())));
    let cap_row = move |i: usize| {
        let Some(c) = draft.with(|d| d.as_ref().and_then(|d| d.caps.get(i).cloned())) else {
            return ().into_any();
        };
        let lang = lang();
        view! {
            <div class="url-rule" data-testid=format!("cap-{i}")>
                <input type="text" list="contact-channels" data-testid=format!("cap-{i}-channel")
                    prop:value=c.channel.clone()
                    on:change=move |ev| {
                        let v = event_target_value(&ev).trim().to_owned();
                        // A channel picked by its words is stored as its code.
                        let code = CHANNELS.iter().find(|ch| **ch == v
                                || channel_label(ch, Lang::Zh) == v || channel_label(ch, Lang::En) == v)
                            .map_or(v, |ch| (*ch).to_owned());
                        edit(&|d| if let Some(c) = d.caps.get_mut(i) { c.channel = code.clone(); });
                    } />
                <span class="hint">{channel_label(&c.channel, lang)}</span>
                <select data-testid=format!("cap-{i}-per")
                    on:change=move |ev| {
                        let p = period_of(&event_target_value(&ev));
                        edit(&|d| if let Some(c) = d.caps.get_mut(i) { c.per = p; });
                    }>
                    {[Period::Day, Period::Week, Period::Month].map(|p| view! {
                        <option value=period_code(p) selected=p == c.per>{period_words(p, lang)}</option>
                    }).collect_view()}
                </select>
                <span>{say(lang, "最多", "at most")}</span>
                <input type="number" min="1" max="1000" class="narrow" data-testid=format!("cap-{i}-max")
                    prop:value=c.max.to_string()
                    on:change=move |ev| {
                        let m = event_target_value(&ev).trim().parse::<u32>().unwrap_or(0);
                        edit(&|d| if let Some(c) = d.caps.get_mut(i) { c.max = m; });
                    } />
                <span>{say(lang, "次", "times")}</span>
                <button type="button" class="small" data-testid=format!("cap-{i}-remove")
                    on:click=move |_| edit(&|d| if i < d.caps.len() { d.caps.remove(i); })>{say(lang, "删除", "Remove")}</button>
            </div>
        }
        .into_any()
    };
    let add_cap = move |_| {
        edit(&|d| {
            d.caps.push(Cap {
                channel: "wecom_group_send".into(),
                max: 1,
                per: Period::Day,
            })
        })
    };
    let quiet = move || draft.with(|d| d.as_ref().and_then(|d| d.quiet_hours.clone()));
    let set_quiet = move |f: &dyn Fn(&mut QuietHours)| {
        edit(&|d| {
            if let Some(q) = d.quiet_hours.as_mut() {
                f(q);
            }
        })
    };
    view! {
        <div class="card url-categories" data-testid="contact-policy-page">
            <h2>{move || say(lang(), "联系策略", "Contact policy")}</h2>
            <p class="hint">{move || say(lang(),
                "流程里每一次触达客户的操作（如企业微信客户群发）发出前都先按此策略判断：客户是否撤回了许可、是否超过频次上限、是否在免打扰时段。被拦下的操作不会发出，节点走“被联系策略拦截”分支，运行记录写明是哪条规则。",
                "Before any step that reaches a customer (a WeCom group send, say) the flow asks this policy: has the customer revoked consent, is the cap reached, is it quiet hours? A refused call is not made: the node takes its \"blocked\" branch and the run's journal names the rule.")}</p>
            <Banners builtin=builtin error=error notice=notice prefix="contact-policy"
                builtin_words=("正在使用内置策略。修改并保存后，它就成为本工作区自己的策略。", "This is the built-in policy. Once edited and saved, it becomes this workspace's own.") />
            <datalist id="contact-channels">
                {move || CHANNELS.map(|c| view! { <option value=c>{channel_label(c, lang())}</option> }).collect_view()}
            </datalist>
            <h3>{move || say(lang(), "频次上限（每位客户）", "Caps (per customer)")}</h3>
            <section data-testid="contact-caps">
                {move || (0..caps.get()).map(cap_row).collect_view()}
            </section>
            <p class="actions">
                <button type="button" data-testid="add-cap" on:click=add_cap>
                    {move || say(lang(), "添加频次上限", "Add a cap")}</button>
            </p>
            <h3>{move || say(lang(), "免打扰时段", "Quiet hours")}</h3>
            <label>
                <input type="checkbox" data-testid="quiet-enabled" prop:checked=move || quiet().is_some()
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        edit(&|d| d.quiet_hours = on.then(|| QuietHours {
                            start: "21:00".into(), end: "08:00".into(), then: WhenQuiet::Wait,
                        }));
                    } />
                {move || say(lang(), "夜间不打扰客户", "Do not disturb customers at night")}
            </label>
            {move || quiet().map(|q| {
                let lang = lang();
                view! {
                    <p class="url-rule" data-testid="quiet-hours">
                        <span>{say(lang, "从", "From")}</span>
                        <input type="time" data-testid="quiet-start" prop:value=q.start.clone()
                            on:change=move |ev| { let v = event_target_value(&ev); set_quiet(&|q| q.start = v.clone()); } />
                        <span>{say(lang, "到", "to")}</span>
                        <input type="time" data-testid="quiet-end" prop:value=q.end.clone()
                            on:change=move |ev| { let v = event_target_value(&ev); set_quiet(&|q| q.end = v.clone()); } />
                        <select data-testid="quiet-then"
                            on:change=move |ev| {
                                let then = if event_target_value(&ev) == "block" { WhenQuiet::Block } else { WhenQuiet::Wait };
                                set_quiet(&|q| q.then = then);
                            }>
                            <option value="wait" selected=q.then == WhenQuiet::Wait>{say(lang, "期间的发送等到结束后再发", "sends wait until it ends")}</option>
                            <option value="block" selected=q.then == WhenQuiet::Block>{say(lang, "期间的发送不再发出", "sends are not made")}</option>
                        </select>
                    </p>
                }
            })}
            <h3>{move || say(lang(), "默认时区", "Default time zone")}</h3>
            <p>
                <input type="text" list="contact-zones" data-testid="default-time-zone"
                    prop:value=move || draft.with(|d| d.as_ref().map(|d| d.default_time_zone.clone()).unwrap_or_default())
                    on:change=move |ev| { let v = event_target_value(&ev).trim().to_owned(); edit(&|d| d.default_time_zone = v.clone()); } />
                <span class="hint">{move || say(lang(), "客户线索没有 time_zone 属性时按此时区计算", "For leads without a time_zone attribute")}</span>
            </p>
            <datalist id="contact-zones">{ZONES.map(|z| view! { <option value=z></option> }).collect_view()}</datalist>
            <p class="summary" data-testid="contact-policy-summary">
                {move || draft.with(|d| d.as_ref().map(|d| summary(d, lang())).unwrap_or_default())}
            </p>
            {move || match problems.get() {
                Some(p) if !p.is_empty() => view! {
                    <ul class="error" data-testid="contact-policy-problems">
                        {p.iter().map(|(ptr, m)| view! { <li>{problem_words(ptr, m, lang())}</li> }).collect_view()}
                    </ul>
                }.into_any(),
                _ => ().into_any(),
            }}
            <p class="actions">
                <button class="primary" data-testid="save-contact-policy"
                    disabled=move || !admin() || !dirty.get() || problems.with(|p| p.as_ref().is_none_or(|p| !p.is_empty()))
                    on:click=move |_| { doc.save(); }>{move || say(lang(), "保存策略", "Save policy")}</button>
                <button data-testid="discard-contact-policy" disabled=move || !dirty.get() on:click=move |_| doc.load()>
                    {move || say(lang(), "放弃修改", "Discard changes")}</button>
                <Show when=move || !admin()>
                    <span class="hint">{move || say(lang(), "只有管理员可以保存联系策略。", "Only admins can save the contact policy.")}</span>
                </Show>
            </p>
            <DocHistory doc=doc can_edit=Signal::derive(admin) />
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_the_built_in_policy_does() {
        let zh = summary(&ContactPolicy::builtin(), Lang::Zh);
        assert!(zh.contains("企业微信客户群发每天最多 1 次"), "{zh}");
        assert!(zh.contains("每月最多 4 次"), "{zh}");
        assert!(
            zh.contains("21:00–08:00 免打扰，期间的发送等到 08:00 再发"),
            "{zh}"
        );
        let en = summary(&ContactPolicy::builtin(), Lang::En);
        assert!(en.contains("at most 1 a day"), "{en}");
    }
}
