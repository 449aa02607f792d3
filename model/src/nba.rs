//! Next best action: per-workspace rules, each a CEL condition over the lead, its score,
//! its recent purchase signals and events, and the bundle of actions to take when it holds
//! ("technical proposal package + a local success-case video", "call within 1 hour").
//!
//! Rules are data, checked with JSON pointers; the first `max` rules that hold give the
//! lead's next actions, in rule order.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::expr::{Expr, Scope};

/// A workspace's rules, in priority order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id (`snake_case`).
    pub id: String,
    /// What the rule is for, Chinese first.
    pub name: String,
    /// CEL over `lead` (attributes, plus `id` and `owner`), `score` (`score`, `tier`,
    /// `stage`, `probability`), `signals` (recent, `[{category, polarity, phrase}]`),
    /// `events` (recent, `[{name, properties, at}]`), `signal` (category → latest
    /// polarity) and `did` (event name → count); see [`Facts::scope`].
    pub when: String,
    pub actions: Vec<Action>,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// `call`, `send_content`, `meeting`, `task`, `wecom_message`…
    pub kind: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_en: Option<String>,
    /// A content link (proposal package, case video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How soon, e.g. `1h`, `1d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

/// A rule that held and its actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextAction {
    pub rule: String,
    pub name: String,
    pub actions: Vec<Action>,
}

/// The facts rules see.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub lead: Value,
    pub score: Value,
    pub signals: Vec<Value>,
    pub events: Vec<Value>,
}

impl Facts {
    /// What a rule's condition reads: `lead`, `score`, `signals`, `events`, and two
    /// summaries a condition builder can pick fields from: `signal.<category>`, the
    /// polarity of the lead's latest signal of that category (`signal.budget ==
    /// 'positive'`), and `did.<event>`, how many of that event it had (`did.download > 0`,
    /// `!has(did.download)`).
    pub fn scope(&self) -> Scope<'static> {
        let mut signal = serde_json::Map::new();
        for s in &self.signals {
            if let (Some(c), Some(p)) = (s["category"].as_str(), s["polarity"].as_str()) {
                signal.insert(c.to_owned(), Value::from(p));
            }
        }
        let mut did = serde_json::Map::new();
        for e in &self.events {
            if let Some(name) = e["name"].as_str() {
                let n = did.get(name).and_then(Value::as_u64).unwrap_or(0);
                did.insert(name.to_owned(), Value::from(n + 1));
            }
        }
        Scope::new()
            .with("lead", self.lead.clone())
            .with("score", self.score.clone())
            .with("signals", Value::Array(self.signals.clone()))
            .with("events", Value::Array(self.events.clone()))
            .with("signal", Value::Object(signal))
            .with("did", Value::Object(did))
    }
}

impl Rules {
    /// The rules Trellis ships with (a workspace replaces them by saving its own).
    pub fn builtin() -> Rules {
        #[expect(clippy::expect_used, reason = "the built-in rules are tested to parse")]
        serde_json::from_value(json!({ "rules": [
            { "id": "hot_budget", "name": "热线索且预算已批：1 小时内电话跟进",
              "when": "score.tier == 'hot' && signal.budget == 'positive'",
              "actions": [ { "kind": "call", "title": "1 小时内电话联系", "title_en": "Call within 1 hour", "within": "1h" } ] },
            { "id": "technical_interest", "name": "关注技术细节：发送技术方案包和本地成功案例",
              "when": "has(signal.technical) || has(did.download)",
              "actions": [
                { "kind": "send_content", "title": "技术方案包", "title_en": "Technical proposal package" },
                { "kind": "send_content", "title": "本地成功案例视频", "title_en": "Local success-case video" } ] },
            { "id": "competitor", "name": "在比较竞品：安排对比演示",
              "when": "has(signal.competitor)",
              "actions": [ { "kind": "meeting", "title": "安排竞品对比演示", "title_en": "Book a comparison demo", "within": "3d" } ] },
            { "id": "stalled", "name": "预算或项目受阻：销售经理介入",
              "when": "signals.exists(s, s.polarity == 'negative')",
              "actions": [ { "kind": "task", "title": "销售经理复盘并制定推进计划", "title_en": "Sales manager to review and plan", "within": "2d" } ] },
            { "id": "warm_nurture", "name": "温线索：企业微信发送行业资料",
              "when": "score.tier == 'warm'",
              "actions": [ { "kind": "wecom_message", "title": "企业微信发送行业白皮书", "title_en": "Send the industry white paper on WeCom", "within": "1d" } ] }
        ]}))
        .expect("built-in rules parse")
    }

    /// Every problem, as `(JSON pointer, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            if r.id.is_empty()
                || !r
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                out.push((format!("/rules/{i}/id"), "an id is snake_case".into()));
            } else if !ids.insert(r.id.as_str()) {
                out.push((
                    format!("/rules/{i}/id"),
                    format!("{:?} is used twice", r.id),
                ));
            }
            if let Err(e) = Expr::compile(&r.when) {
                out.push((format!("/rules/{i}/when"), e.to_string()));
            }
            if r.actions.is_empty() {
                out.push((
                    format!("/rules/{i}/actions"),
                    "a rule needs at least one action".into(),
                ));
            }
            for (j, a) in r.actions.iter().enumerate() {
                if a.title.trim().is_empty() {
                    out.push((
                        format!("/rules/{i}/actions/{j}/title"),
                        "an action needs a title".into(),
                    ));
                }
            }
        }
        out
    }

    /// The first `max` rules that hold for `facts`, in order. A rule whose condition fails
    /// to evaluate (a missing attribute) does not hold.
    pub fn next_actions(&self, facts: &Facts, max: usize) -> Vec<NextAction> {
        let scope = facts.scope();
        self.rules
            .iter()
            .filter(|r| {
                Expr::compile(&r.when)
                    .ok()
                    .and_then(|e| e.eval_bool(&scope).ok())
                    .unwrap_or(false)
            })
            .take(max)
            .map(|r| NextAction {
                rule: r.id.clone(),
                name: r.name.clone(),
                actions: r.actions.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(tier: &str, signals: Value) -> Facts {
        Facts {
            lead: json!({"id": "l1", "industry": "机械"}),
            score: json!({"score": 72, "tier": tier, "stage": "sql"}),
            signals: signals.as_array().cloned().unwrap_or_default(),
            events: vec![],
        }
    }

    #[test]
    fn builtin_rules_are_valid_and_pick_bundles_in_order() {
        let rules = Rules::builtin();
        assert!(rules.problems().is_empty(), "{:?}", rules.problems());
        let hot = facts(
            "hot",
            json!([{"category": "budget", "polarity": "positive", "phrase": "预算已批"},
                   {"category": "technical", "polarity": "neutral", "phrase": "技术参数"}]),
        );
        let picked: Vec<String> = rules
            .next_actions(&hot, 3)
            .into_iter()
            .map(|n| n.rule)
            .collect();
        assert_eq!(picked, ["hot_budget", "technical_interest"]);
        let technical = &rules.next_actions(&hot, 3)[1];
        assert_eq!(technical.actions.len(), 2);
        assert_eq!(technical.actions[1].title, "本地成功案例视频");
        let stalled = facts(
            "warm",
            json!([{"category": "budget", "polarity": "negative", "phrase": "预算还没批"}]),
        );
        let picked: Vec<String> = rules
            .next_actions(&stalled, 1)
            .into_iter()
            .map(|n| n.rule)
            .collect();
        assert_eq!(picked, ["stalled"]);
        assert!(rules.next_actions(&facts("cold", json!([])), 3).is_empty());
    }

    #[test]
    fn problems_point_at_the_rule() {
        let rules: Rules = serde_json::from_value(json!({"rules": [
            {"id": "a", "name": "x", "when": "score.tier ==", "actions": [{"kind": "call", "title": "打电话"}]},
            {"id": "a", "name": "y", "when": "true", "actions": []},
            {"id": "Bad Id", "name": "z", "when": "true", "actions": [{"kind": "call", "title": " "}]}
        ]}))
        .expect("parses");
        let pointers: Vec<String> = rules.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            pointers,
            [
                "/rules/0/when",
                "/rules/1/id",
                "/rules/1/actions",
                "/rules/2/id",
                "/rules/2/actions/0/title"
            ]
        );
    }
}
