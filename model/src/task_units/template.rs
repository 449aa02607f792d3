//! Unit templates: what a task unit is made of before anyone is in it — its name pattern,
//! the roles it needs, milestones with their deadlines, dispatch rules that add roles when
//! the trigger calls for them, a knowledge pack, and whether it opens a WeCom group.
//!
//! A template is a versioned document; [`Template::problems`] checks it with JSON
//! pointers (the studio checks as you type, the server on save). [`Template::staff`] turns
//! it, with the facts of one trigger, into the [`Demand`] that [`super::dispatch`] fills,
//! and says which rules held; [`Template::schedule`] gives each milestone's deadline.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Demand, MAX_LEVEL, Override, Role, RoleDemand};
use crate::duration::parse_duration;
use crate::expr::{Expr, Scope, Template as TextTemplate};

/// The most people one role may ask for.
pub const MAX_COUNT: u32 = 20;
/// The highest urgency.
pub const MAX_URGENCY: u8 = 5;

/// A unit template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// In words, e.g. `交付攻坚`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A unit's name, with `{{ }}` over `account`, `lead` and `event`, e.g.
    /// `{{ account.name }}-交付攻坚`.
    pub name_pattern: String,
    /// 1 (can wait) to 5 (drop everything); the first part of a unit's priority.
    pub urgency: u8,
    /// What the unit is for, in words (met when every milestone is done).
    pub goal: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    /// Roles added when the trigger calls for them.
    #[serde(default)]
    pub rules: Vec<DispatchRule>,
    #[serde(default)]
    pub knowledge: Vec<Knowledge>,
    /// Open a WeCom group chat with the members.
    #[serde(default)]
    pub wecom_group: bool,
}

/// A milestone: due an offset after the unit starts or after another milestone's deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// Unique in the template, e.g. `alternative`.
    pub id: String,
    /// In words, e.g. `24 小时内确认替代方案`.
    pub name: String,
    /// The milestone whose deadline this one counts from (listed before it); none: the
    /// unit's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// How long after, e.g. `24h`, `2d`.
    pub offset: String,
    /// The role whose member answers for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_role: Option<String>,
    /// What marks it done, in words.
    #[serde(default)]
    pub done_when: String,
}

/// Roles a template adds when `when` holds over the trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRule {
    /// Unique in the template, e.g. `overseas`.
    pub id: String,
    /// In words; a pick it added names it.
    pub name: String,
    /// CEL over `event`, `account` and `lead`, e.g. `event.properties.overseas == true`.
    pub when: String,
    pub roles: Vec<Role>,
}

/// A link or document the unit's members get.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knowledge {
    pub title: String,
    pub url: String,
    /// The customer scenario it is for (`event.properties.scenario`); none: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

/// What one trigger brings to a template: the facts its rules and name pattern read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The trigger event (`{name, properties, …}`).
    #[serde(default)]
    pub event: Value,
    /// The account (`{id, name, value}`; `value` 0–100, e.g. its best lead's score).
    #[serde(default)]
    pub account: Value,
    #[serde(default)]
    pub lead: Value,
    /// 0–5: how bad the trigger is (e.g. days overdue), the second part of priority.
    #[serde(default)]
    pub severity: u8,
}

impl Facts {
    fn scope(&self) -> Scope<'_> {
        Scope::new()
            .with_ref("event", &self.event)
            .with_ref("account", &self.account)
            .with_ref("lead", &self.lead)
    }

    fn account_id(&self) -> Option<String> {
        self.account
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// Whether a dispatch rule held for a trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    pub id: String,
    pub name: String,
    pub held: bool,
    /// Why it could not be evaluated (it then does not hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A template applied to one trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Staffing {
    /// The unit's name, from the pattern.
    pub name: String,
    pub priority: i64,
    pub demand: Demand,
    pub rules: Vec<RuleOutcome>,
    pub knowledge: Vec<Knowledge>,
}

/// A milestone's deadline, in epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub milestone: String,
    pub name: String,
    pub owner_role: Option<String>,
    pub due_at: i64,
    /// When its `task_unit.milestone_due` reminder goes out: a quarter of its window
    /// before the deadline, at most a day.
    pub remind_at: i64,
}

/// A unit's priority: urgency first, then the trigger's severity, then the account's
/// value (0–100), so an urgent template always outranks a valuable account.
pub fn priority(urgency: u8, severity: u8, account_value: f64) -> i64 {
    let value = if account_value.is_finite() {
        account_value.clamp(0.0, 100.0).round() as i64
    } else {
        0
    };
    i64::from(urgency.min(MAX_URGENCY)) * 10_000 + i64::from(severity.min(5)) * 1_000 + value
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn role_problems(role: &Role, at: &str, out: &mut Vec<(String, String)>) {
    if !is_id(&role.id) {
        out.push((
            format!("{at}/id"),
            "a role id is snake_case (a-z, 0-9, _)".into(),
        ));
    }
    if role.name.trim().is_empty() {
        out.push((format!("{at}/name"), "a role needs a name".into()));
    }
    if role.count == 0 || role.count > MAX_COUNT {
        out.push((
            format!("{at}/count"),
            format!("a role asks for 1 to {MAX_COUNT} people"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (k, need) in role.skills.iter().enumerate() {
        if need.skill.trim().is_empty() {
            out.push((format!("{at}/skills/{k}/skill"), "name the skill".into()));
        } else if !seen.insert(need.skill.as_str()) {
            out.push((
                format!("{at}/skills/{k}/skill"),
                format!("{:?} is listed twice", need.skill),
            ));
        }
        if need.level == 0 || need.level > MAX_LEVEL {
            out.push((
                format!("{at}/skills/{k}/level"),
                format!("a level is 1 to {MAX_LEVEL}"),
            ));
        }
    }
    for (k, p) in role.permissions.iter().enumerate() {
        if p.trim().is_empty() {
            out.push((
                format!("{at}/permissions/{k}"),
                "name the permission".into(),
            ));
        }
    }
}

impl Template {
    /// Every problem, as `(JSON pointer, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("/name".into(), "a template needs a name".into()));
        }
        match TextTemplate::parse(&self.name_pattern) {
            Err(e) => out.push(("/name_pattern".into(), e.to_string())),
            Ok(_) if self.name_pattern.trim().is_empty() => {
                out.push(("/name_pattern".into(), "a unit needs a name pattern".into()));
            }
            Ok(_) => {}
        }
        if self.urgency == 0 || self.urgency > MAX_URGENCY {
            out.push(("/urgency".into(), format!("urgency is 1 to {MAX_URGENCY}")));
        }
        if self.goal.trim().is_empty() {
            out.push(("/goal".into(), "say what the unit is for".into()));
        }
        if self.roles.is_empty() {
            out.push(("/roles".into(), "a unit needs at least one role".into()));
        }
        let mut role_ids = BTreeSet::new();
        for (i, r) in self.roles.iter().enumerate() {
            role_problems(r, &format!("/roles/{i}"), &mut out);
            if !r.id.is_empty() && !role_ids.insert(r.id.as_str()) {
                out.push((
                    format!("/roles/{i}/id"),
                    format!("role {:?} is used twice", r.id),
                ));
            }
        }
        let mut rule_ids = BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !is_id(&rule.id) {
                out.push((
                    format!("/rules/{i}/id"),
                    "a rule id is snake_case (a-z, 0-9, _)".into(),
                ));
            } else if !rule_ids.insert(rule.id.as_str()) {
                out.push((
                    format!("/rules/{i}/id"),
                    format!("rule {:?} is used twice", rule.id),
                ));
            }
            if rule.name.trim().is_empty() {
                out.push((format!("/rules/{i}/name"), "a rule needs a name".into()));
            }
            if let Err(e) = Expr::compile(&rule.when) {
                out.push((format!("/rules/{i}/when"), e.to_string()));
            }
            if rule.roles.is_empty() {
                out.push((
                    format!("/rules/{i}/roles"),
                    "a rule adds at least one role".into(),
                ));
            }
            for (j, r) in rule.roles.iter().enumerate() {
                role_problems(r, &format!("/rules/{i}/roles/{j}"), &mut out);
                if !r.id.is_empty() && !role_ids.insert(r.id.as_str()) {
                    out.push((
                        format!("/rules/{i}/roles/{j}/id"),
                        format!("role {:?} is used twice", r.id),
                    ));
                }
            }
        }
        let mut milestones = BTreeSet::new();
        for (i, m) in self.milestones.iter().enumerate() {
            let at = format!("/milestones/{i}");
            if !is_id(&m.id) {
                out.push((
                    format!("{at}/id"),
                    "a milestone id is snake_case (a-z, 0-9, _)".into(),
                ));
            } else if milestones.contains(m.id.as_str()) {
                out.push((
                    format!("{at}/id"),
                    format!("milestone {:?} is used twice", m.id),
                ));
            }
            if m.name.trim().is_empty() {
                out.push((format!("{at}/name"), "a milestone needs a name".into()));
            }
            if let Some(after) = &m.after
                && !milestones.contains(after.as_str())
            {
                out.push((
                    format!("{at}/after"),
                    format!("{after:?} is not a milestone listed before this one"),
                ));
            }
            match parse_duration(&m.offset) {
                Err(e) => out.push((format!("{at}/offset"), e)),
                Ok(d) if d.as_secs() > 366 * 86_400 => out.push((
                    format!("{at}/offset"),
                    "a milestone is due within a year".into(),
                )),
                Ok(_) => {}
            }
            if let Some(owner) = &m.owner_role
                && !role_ids.contains(owner.as_str())
            {
                out.push((
                    format!("{at}/owner_role"),
                    format!("{owner:?} is not one of the template's roles"),
                ));
            }
            milestones.insert(m.id.as_str());
        }
        for (i, k) in self.knowledge.iter().enumerate() {
            if k.title.trim().is_empty() {
                out.push((format!("/knowledge/{i}/title"), "give it a title".into()));
            }
            if !(k.url.starts_with("https://") || k.url.starts_with("http://")) {
                out.push((
                    format!("/knowledge/{i}/url"),
                    "a link starts with https:// or http://".into(),
                ));
            }
        }
        out
    }

    /// Each milestone's deadline and reminder for a unit started at `start` (epoch ms), in
    /// the template's order. Call on a template without problems (an unreadable offset
    /// counts as zero).
    pub fn schedule(&self, start: i64) -> Vec<Deadline> {
        let mut due: BTreeMap<&str, i64> = BTreeMap::new();
        let mut out = Vec::with_capacity(self.milestones.len());
        for m in &self.milestones {
            let from = m
                .after
                .as_deref()
                .and_then(|a| due.get(a).copied())
                .unwrap_or(start);
            let window = parse_duration(&m.offset)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let due_at = from.saturating_add(window);
            due.insert(m.id.as_str(), due_at);
            out.push(Deadline {
                milestone: m.id.clone(),
                name: m.name.clone(),
                owner_role: m.owner_role.clone(),
                due_at,
                remind_at: due_at - (window / 4).min(86_400_000),
            });
        }
        out
    }

    /// The template applied to one trigger: the unit's name and priority, the roles to fill
    /// (the template's, then those of each rule that holds, named by it), and the
    /// knowledge for the trigger's scenario. A rule that cannot be evaluated does not hold
    /// and says why.
    pub fn staff(
        &self,
        unit: &str,
        facts: &Facts,
        manager: Option<String>,
        overrides: Vec<Override>,
    ) -> Staffing {
        let scope = facts.scope();
        // A pattern over a fact the trigger lacks falls back to the template's name.
        let name = TextTemplate::parse(&self.name_pattern)
            .ok()
            .and_then(|t| t.render(&scope).ok())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| self.name.clone());
        let mut roles: Vec<RoleDemand> = self
            .roles
            .iter()
            .map(|r| RoleDemand {
                role: r.clone(),
                rule: None,
            })
            .collect();
        let mut outcomes = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let held = Expr::compile(&rule.when)
                .map_err(|e| e.to_string())
                .and_then(|e| e.eval_bool(&scope).map_err(|e| e.message));
            if held == Ok(true) {
                roles.extend(rule.roles.iter().map(|r| RoleDemand {
                    role: r.clone(),
                    rule: Some(rule.name.clone()),
                }));
            }
            outcomes.push(RuleOutcome {
                id: rule.id.clone(),
                name: rule.name.clone(),
                held: held == Ok(true),
                error: held.err(),
            });
        }
        let scenario = facts
            .event
            .pointer("/properties/scenario")
            .and_then(Value::as_str);
        let knowledge = self
            .knowledge
            .iter()
            .filter(|k| k.scenario.is_none() || k.scenario.as_deref() == scenario)
            .cloned()
            .collect();
        let value = facts
            .account
            .get("value")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let priority = priority(self.urgency, facts.severity, value);
        Staffing {
            name,
            priority,
            demand: Demand {
                unit: unit.to_owned(),
                priority,
                account: facts.account_id(),
                roles,
                overrides,
                manager,
            },
            rules: outcomes,
            knowledge,
        }
    }

    /// The template a new one cloned from this starts as: the same, under a new name.
    pub fn cloned_as(&self, name: &str) -> Template {
        Template {
            name: name.to_owned(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn delivery_rescue() -> Template {
        serde_json::from_value(json!({
            "name": "交付攻坚",
            "name_pattern": "{{ account.name }}-交付攻坚",
            "urgency": 5,
            "goal": "48 小时内客户签收替代方案",
            "roles": [
                { "id": "warehouse", "name": "华东仓管", "function": "warehouse",
                  "skills": [{ "skill": "实时库存", "level": 3 }], "region": "华东" },
                { "id": "purchasing", "name": "紧急采购", "function": "purchasing",
                  "permissions": ["紧急空运"] },
                { "id": "service", "name": "资深服务工程师", "function": "service",
                  "skills": [{ "skill": "故障诊断", "level": 4 }] }
            ],
            "milestones": [
                { "id": "alternative", "name": "24 小时内确认替代方案", "offset": "24h",
                  "owner_role": "purchasing", "done_when": "客户确认替代型号" },
                { "id": "signed", "name": "48 小时内客户签收", "after": "alternative",
                  "offset": "24h", "owner_role": "service" }
            ],
            "rules": [
                { "id": "overseas", "name": "海外交付加派关务", "when": "event.properties.overseas == true",
                  "roles": [ { "id": "customs", "name": "关务专家", "function": "logistics" } ] }
            ],
            "knowledge": [
                { "title": "替代料号清单", "url": "https://kb.example.cn/alt" },
                { "title": "海外清关指引", "url": "https://kb.example.cn/customs", "scenario": "overseas" }
            ],
            "wecom_group": true
        }))
        .expect("the example template reads")
    }

    #[test]
    fn the_example_template_has_no_problems() {
        assert_eq!(delivery_rescue().problems(), Vec::<(String, String)>::new());
    }

    #[test]
    fn problems_name_their_pointers() {
        let mut t = delivery_rescue();
        t.urgency = 9;
        t.roles[1].id = "warehouse".into();
        t.milestones[0].after = Some("signed".into());
        t.milestones[1].offset = "soon".into();
        t.milestones[1].owner_role = Some("legal".into());
        t.rules[0].when = "event.properties.overseas ==".into();
        t.knowledge[0].url = "kb/alt".into();
        let pointers: Vec<String> = t.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            pointers,
            [
                "/urgency",
                "/roles/1/id",
                "/rules/0/when",
                "/milestones/0/after",
                // Its owner was the renamed role.
                "/milestones/0/owner_role",
                "/milestones/1/offset",
                "/milestones/1/owner_role",
                "/knowledge/0/url",
            ]
        );
    }

    #[test]
    fn milestones_count_from_the_start_or_another_deadline() {
        let d = delivery_rescue().schedule(1_000);
        let h = 3_600_000;
        assert_eq!(d[0].due_at, 1_000 + 24 * h);
        assert_eq!(d[0].remind_at, 1_000 + 18 * h);
        assert_eq!(d[1].due_at, 1_000 + 48 * h);
        assert_eq!(d[1].owner_role.as_deref(), Some("service"));
    }

    #[test]
    fn staffing_names_the_unit_adds_rule_roles_and_ranks_priority() {
        let t = delivery_rescue();
        let facts = Facts {
            event: json!({"name": "erp.delivery_overdue", "properties": {"overseas": true, "scenario": "overseas"}}),
            account: json!({"id": "acc-1", "name": "华东精密", "value": 80}),
            lead: Value::Null,
            severity: 3,
        };
        let s = t.staff("u1", &facts, Some("boss".into()), vec![]);
        assert_eq!(s.name, "华东精密-交付攻坚");
        assert_eq!(s.priority, 5 * 10_000 + 3 * 1_000 + 80);
        assert_eq!(s.demand.account.as_deref(), Some("acc-1"));
        let roles: Vec<(&str, Option<&str>)> = s
            .demand
            .roles
            .iter()
            .map(|r| (r.role.id.as_str(), r.rule.as_deref()))
            .collect();
        assert_eq!(
            roles,
            [
                ("warehouse", None),
                ("purchasing", None),
                ("service", None),
                ("customs", Some("海外交付加派关务")),
            ]
        );
        assert!(s.rules[0].held);
        assert_eq!(s.knowledge.len(), 2);

        let domestic = Facts {
            event: json!({"properties": {}}),
            ..facts
        };
        let s = t.staff("u2", &domestic, None, vec![]);
        assert_eq!(s.demand.roles.len(), 3);
        assert!(!s.rules[0].held);
        // A missing property makes the rule fail to evaluate: it does not hold, and says why.
        assert!(s.rules[0].error.is_some());
        assert_eq!(s.knowledge.len(), 1);
    }

    #[test]
    fn urgency_outranks_severity_outranks_account_value() {
        assert!(priority(4, 0, 0.0) > priority(3, 5, 100.0));
        assert!(priority(3, 2, 0.0) > priority(3, 1, 100.0));
        assert!(priority(3, 1, 60.0) > priority(3, 1, 59.0));
        assert_eq!(priority(3, 1, f64::NAN), 31_000);
    }
}
