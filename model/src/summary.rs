//! A lead's recent behaviour in one line, Chinese and English:
//! "近7天3次查看电池管理系统技术文档，2次访问竞品对比页".
//!
//! Events are grouped by type and by what they were about (`title`, else `category`, else
//! `page` in their properties); the three most frequent groups are named, with a verb per
//! known event type and the type's own name otherwise.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scoring::EventView;

const DAY_MS: i64 = 86_400_000;

/// The one-line summary in both languages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub zh: String,
    pub en: String,
}

/// Verbs for the event types Trellis and its connectors record: (type, 中文, English).
const VERBS: &[(&str, &str, &str)] = &[
    ("page_view", "查看", "viewed"),
    ("download", "下载", "downloaded"),
    ("whitepaper_download", "下载", "downloaded"),
    ("form_submit", "提交", "submitted"),
    ("email_open", "打开邮件", "opened email"),
    ("email_click", "点击邮件", "clicked email"),
    ("wecom_message", "企业微信沟通", "WeCom chat"),
    ("call", "通话", "call"),
    ("meeting", "会议", "meeting"),
    ("demo_booked", "预约演示", "booked a demo"),
    ("signal.detected", "提及购买信号", "purchase signals"),
];

fn about(properties: &Value) -> Option<String> {
    ["title", "category", "page"].iter().find_map(|k| {
        properties
            .get(*k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(40).collect())
    })
}

/// Summarises the events of the last `days` days before `now` (ms since the epoch).
pub fn summarize(events: &[EventView], now: i64, days: u32) -> Summary {
    let since = now - i64::from(days) * DAY_MS;
    let mut groups: Vec<(String, Option<String>, usize, i64)> = Vec::new();
    for e in events {
        if e.at < since || e.at > now || e.kind.starts_with("lead.") || e.kind == "identify" {
            continue;
        }
        let object = about(&e.properties);
        match groups
            .iter_mut()
            .find(|(k, o, _, _)| *k == e.kind && *o == object)
        {
            Some(g) => {
                g.2 += 1;
                g.3 = g.3.max(e.at);
            }
            None => groups.push((e.kind.clone(), object, 1, e.at)),
        }
    }
    if groups.is_empty() {
        return Summary {
            zh: format!("近{days}天无互动"),
            en: format!("No activity in the last {days} days"),
        };
    }
    // Most frequent first; among equals, the most recent.
    groups.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)));
    let mut zh = Vec::new();
    let mut en = Vec::new();
    for (kind, object, n, _) in groups.iter().take(3) {
        let (vz, ve) = VERBS
            .iter()
            .find(|(k, _, _)| k == kind)
            .map_or((kind.as_str(), kind.as_str()), |(_, z, e)| (*z, *e));
        let object = object.as_deref().unwrap_or("");
        zh.push(format!("{n}次{vz}{object}"));
        en.push(if object.is_empty() {
            format!("{ve} {n}×")
        } else {
            format!("{ve} {object} {n}×")
        });
    }
    let rest = groups.len().saturating_sub(3);
    let mut zh = format!("近{days}天{}", zh.join("，"));
    let mut en = format!("Last {days} days: {}", en.join(", "));
    if rest > 0 {
        zh.push_str(&format!("，另有{rest}类互动"));
        en.push_str(&format!(", and {rest} more"));
    }
    Summary { zh, en }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_000_000_000;

    fn ev(kind: &str, days_ago: i64, props: Value) -> EventView {
        EventView {
            kind: kind.into(),
            at: NOW - days_ago * DAY_MS,
            properties: props,
        }
    }

    #[test]
    fn names_the_most_frequent_recent_behaviour() {
        let docs = json!({"title": "电池管理系统技术文档"});
        let rival = json!({"category": "竞品对比页"});
        let events = vec![
            ev("page_view", 1, docs.clone()),
            ev("page_view", 2, docs.clone()),
            ev("page_view", 6, docs),
            ev("page_view", 3, rival.clone()),
            ev("page_view", 4, rival),
            ev("page_view", 30, json!({"title": "旧文章"})),
            ev("lead.tier_changed", 1, json!({})),
        ];
        let s = summarize(&events, NOW, 7);
        assert_eq!(s.zh, "近7天3次查看电池管理系统技术文档，2次查看竞品对比页");
        assert_eq!(
            s.en,
            "Last 7 days: viewed 电池管理系统技术文档 3×, viewed 竞品对比页 2×"
        );
    }

    #[test]
    fn unknown_types_and_quiet_leads() {
        let events = vec![
            ev("trade_show_visit", 1, json!({})),
            ev("a", 1, json!({})),
            ev("b", 1, json!({})),
            ev("c", 2, json!({})),
        ];
        let s = summarize(&events, NOW, 7);
        assert_eq!(s.zh, "近7天1次trade_show_visit，1次a，1次b，另有1类互动");
        assert_eq!(summarize(&[], NOW, 7).zh, "近7天无互动");
        assert_eq!(summarize(&[], NOW, 7).en, "No activity in the last 7 days");
    }
}
