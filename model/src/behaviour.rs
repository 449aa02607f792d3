//! Behaviour conditions: what a lead did over its history, in the words sales teams use —
//! "viewed the comparison page and downloaded the whitepaper, in either order, within 7
//! days", "visited the pricing page at least 3 times in 14 days", "has not opened a mail in
//! 30 days". A condition is checked against the lead's recorded events (the server reads
//! them; this module only decides), as a trigger ("starts when the condition becomes true")
//! and as a branch ("does it hold now?").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::expr::{Expr, ExprError, Scope};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The longest window a condition may look back (a year): the server reads this much
/// history at most.
pub const MAX_DAYS: u32 = 366;

/// One kind of thing a lead did: events of one name, and of those only the ones `filter`
/// (CEL over `event`: its `name`, `properties`, `timestamp`) holds for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Did {
    #[schemars(length(min = 1, max = 200))]
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub filter: Option<String>,
}

/// A condition over a lead's history. Windows end now and reach `days` back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// Did every one of `did`, in any order, within the last `days`.
    AllWithin {
        #[schemars(length(min = 1, max = 10))]
        did: Vec<Did>,
        #[schemars(range(min = 1, max = 366))]
        days: u32,
    },
    /// Did `did` at least `times` times within the last `days`.
    AtLeast {
        did: Did,
        #[schemars(range(min = 1, max = 1000))]
        times: u32,
        #[schemars(range(min = 1, max = 366))]
        days: u32,
    },
    /// Did not do `did` within the last `days`.
    NoneWithin {
        did: Did,
        #[schemars(range(min = 1, max = 366))]
        days: u32,
    },
}

/// An event from a lead's history, as a condition sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Happened {
    pub id: String,
    pub name: String,
    pub at_ms: i64,
    pub properties: Value,
}

impl Happened {
    /// What a filter sees as `event`.
    fn scope_value(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "properties": self.properties,
            "timestamp": chrono::DateTime::from_timestamp_millis(self.at_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        })
    }
}

/// Whether a condition holds, and what made it so.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub holds: bool,
    /// Per `did` (in order), how many matching events fell in the window.
    pub counts: Vec<u32>,
    /// The ids of the matching events in the window, newest first (at most 20).
    pub matched: Vec<String>,
}

impl Behaviour {
    pub fn days(&self) -> u32 {
        match self {
            Behaviour::AllWithin { days, .. }
            | Behaviour::AtLeast { days, .. }
            | Behaviour::NoneWithin { days, .. } => *days,
        }
    }

    pub fn dids(&self) -> Vec<&Did> {
        match self {
            Behaviour::AllWithin { did, .. } => did.iter().collect(),
            Behaviour::AtLeast { did, .. } | Behaviour::NoneWithin { did, .. } => vec![did],
        }
    }

    /// [`dids`](Self::dids), to edit.
    pub fn dids_mut(&mut self) -> Vec<&mut Did> {
        match self {
            Behaviour::AllWithin { did, .. } => did.iter_mut().collect(),
            Behaviour::AtLeast { did, .. } | Behaviour::NoneWithin { did, .. } => vec![did],
        }
    }

    /// The event names the condition looks at, without repeats.
    pub fn event_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for d in self.dids() {
            if !names.contains(&d.event.as_str()) {
                names.push(&d.event);
            }
        }
        names
    }

    /// Whether an arriving event can make the condition true (a "did not" condition only
    /// becomes true as time passes, so it cannot start a flow).
    pub fn can_start(&self) -> bool {
        !matches!(self, Behaviour::NoneWithin { .. })
    }

    /// The CEL filters, by their JSON pointer under the condition.
    pub fn filters(&self) -> Vec<(String, &str)> {
        match self {
            Behaviour::AllWithin { did, .. } => did
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.filter.as_deref().map(|f| (format!("/did/{i}/filter"), f)))
                .collect(),
            Behaviour::AtLeast { did, .. } | Behaviour::NoneWithin { did, .. } => did
                .filter
                .as_deref()
                .map(|f| vec![("/did/filter".to_owned(), f)])
                .unwrap_or_default(),
        }
    }

    /// The condition with its filters compiled; the error names the filter's pointer.
    pub fn compile(&self) -> Result<CompiledBehaviour, (String, ExprError)> {
        let mut filters = Vec::new();
        for d in self.dids() {
            filters.push(match &d.filter {
                Some(f) => Some(Expr::compile(f).map_err(|e| (self.pointer_of(d), e))?),
                None => None,
            });
        }
        if self.days() == 0 || self.days() > MAX_DAYS {
            return Err((
                "/days".into(),
                ExprError {
                    message: format!("days must be between 1 and {MAX_DAYS}"),
                    position: None,
                },
            ));
        }
        Ok(CompiledBehaviour {
            behaviour: self.clone(),
            filters,
        })
    }

    fn pointer_of(&self, d: &Did) -> String {
        match self {
            Behaviour::AllWithin { did, .. } => {
                let i = did.iter().position(|x| std::ptr::eq(x, d)).unwrap_or(0);
                format!("/did/{i}/filter")
            }
            _ => "/did/filter".into(),
        }
    }
}

/// A condition ready to check.
#[derive(Clone, Debug)]
pub struct CompiledBehaviour {
    pub behaviour: Behaviour,
    filters: Vec<Option<Expr>>,
}

impl CompiledBehaviour {
    /// Checks the condition at `now_ms` against `history` (any order; events outside the
    /// window or of other names are ignored). `leave_out` is an event id to check without:
    /// a trigger starts only when the event that just arrived turned the condition from
    /// false to true. A filter that fails to evaluate on an event does not match it.
    pub fn check(&self, history: &[Happened], now_ms: i64, leave_out: Option<&str>) -> Verdict {
        let b = &self.behaviour;
        let since = now_ms - i64::from(b.days()) * DAY_MS;
        let dids = b.dids();
        let mut counts = vec![0u32; dids.len()];
        let mut matched: Vec<(i64, &str)> = Vec::new();
        // Filters may compare an event's dates with `now` (the condition builder's "within
        // the last N days"): the time the condition is checked at.
        let now = Value::String(
            chrono::DateTime::from_timestamp_millis(now_ms)
                .unwrap_or_default()
                .to_rfc3339(),
        );
        for h in history {
            if h.at_ms <= since || h.at_ms > now_ms || Some(h.id.as_str()) == leave_out {
                continue;
            }
            let mut scope_value = None;
            let mut any = false;
            for (i, d) in dids.iter().enumerate() {
                if d.event != h.name {
                    continue;
                }
                let ok = match &self.filters[i] {
                    None => true,
                    Some(f) => {
                        let v = scope_value.get_or_insert_with(|| h.scope_value());
                        f.eval_bool(&Scope::new().with_ref("event", v).with_ref("now", &now))
                            .unwrap_or(false)
                    }
                };
                if ok {
                    counts[i] = counts[i].saturating_add(1);
                    any = true;
                }
            }
            if any {
                matched.push((h.at_ms, &h.id));
            }
        }
        let holds = match b {
            Behaviour::AllWithin { .. } => counts.iter().all(|c| *c > 0),
            Behaviour::AtLeast { times, .. } => counts[0] >= *times,
            Behaviour::NoneWithin { .. } => counts[0] == 0,
        };
        matched.sort_by_key(|m| std::cmp::Reverse(m.0));
        Verdict {
            holds,
            counts,
            matched: matched
                .into_iter()
                .take(20)
                .map(|(_, id)| id.to_owned())
                .collect(),
        }
    }

    /// Whether the event `arrived` (already in `history`) turned the condition true: it
    /// holds with the event and did not without it.
    pub fn became_true(&self, history: &[Happened], now_ms: i64, arrived: &str) -> bool {
        self.behaviour.can_start()
            && self.check(history, now_ms, None).holds
            && !self.check(history, now_ms, Some(arrived)).holds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, name: &str, day: i64, category: &str) -> Happened {
        Happened {
            id: id.into(),
            name: name.into(),
            at_ms: day * DAY_MS,
            properties: json!({ "category": category }),
        }
    }

    fn both_within_7() -> CompiledBehaviour {
        Behaviour::AllWithin {
            did: vec![
                Did {
                    event: "page_view".into(),
                    filter: Some("event.properties.category == 'competitor_comparison'".into()),
                },
                Did {
                    event: "download".into(),
                    filter: Some("event.properties.category == 'whitepaper'".into()),
                },
            ],
            days: 7,
        }
        .compile()
        .unwrap()
    }

    #[test]
    fn both_in_either_order_within_the_window() {
        let c = both_within_7();
        // Download first, comparison later: the comparison completes it.
        let history = [
            ev("d1", "download", 10, "whitepaper"),
            ev("p1", "page_view", 12, "competitor_comparison"),
        ];
        let v = c.check(&history, 12 * DAY_MS, None);
        assert!(v.holds);
        assert_eq!(v.counts, vec![1, 1]);
        assert_eq!(v.matched, vec!["p1", "d1"]);
        assert!(c.became_true(&history, 12 * DAY_MS, "p1"));
        // The other order.
        let history = [
            ev("p1", "page_view", 10, "competitor_comparison"),
            ev("d1", "download", 12, "whitepaper"),
        ];
        assert!(c.became_true(&history, 12 * DAY_MS, "d1"));
    }

    #[test]
    fn outside_the_window_or_filtered_out_does_not_count() {
        let c = both_within_7();
        let history = [
            ev("d1", "download", 1, "whitepaper"),
            ev("p1", "page_view", 12, "competitor_comparison"),
        ];
        assert!(!c.check(&history, 12 * DAY_MS, None).holds);
        let history = [
            ev("d1", "download", 11, "price_list"),
            ev("p1", "page_view", 12, "competitor_comparison"),
        ];
        let v = c.check(&history, 12 * DAY_MS, None);
        assert_eq!((v.holds, v.counts.clone()), (false, vec![1, 0]));
    }

    #[test]
    fn a_repeat_after_it_held_does_not_start_again() {
        let c = both_within_7();
        let history = [
            ev("d1", "download", 10, "whitepaper"),
            ev("p1", "page_view", 11, "competitor_comparison"),
            ev("p2", "page_view", 12, "competitor_comparison"),
        ];
        assert!(!c.became_true(&history, 12 * DAY_MS, "p2"));
    }

    #[test]
    fn at_least_and_none_within() {
        let three = Behaviour::AtLeast {
            did: Did {
                event: "page_view".into(),
                filter: Some("event.properties.category == 'pricing'".into()),
            },
            times: 3,
            days: 14,
        }
        .compile()
        .unwrap();
        let mut history = vec![
            ev("a", "page_view", 1, "pricing"),
            ev("b", "page_view", 2, "pricing"),
            ev("c", "page_view", 3, "careers"),
        ];
        assert!(!three.check(&history, 3 * DAY_MS, None).holds);
        history.push(ev("d", "page_view", 4, "pricing"));
        assert!(three.became_true(&history, 4 * DAY_MS, "d"));
        let quiet = Behaviour::NoneWithin {
            did: Did {
                event: "email_open".into(),
                filter: None,
            },
            days: 30,
        }
        .compile()
        .unwrap();
        assert!(quiet.check(&history, 4 * DAY_MS, None).holds);
        assert!(!quiet.behaviour.can_start());
        history.push(ev("e", "email_open", 4, ""));
        assert!(!quiet.check(&history, 4 * DAY_MS, None).holds);
    }

    #[test]
    fn filters_compare_dates_with_the_time_of_the_check() {
        // "a quote request whose project starts within the last 3 days": the builder's
        // relative date, with `now` the time the condition is checked at.
        let filter = crate::condition::Condition::rule(
            "event.properties.project_start",
            crate::condition::Op::WithinDays,
            json!(3),
        )
        .to_cel();
        let recent = Behaviour::AtLeast {
            did: Did {
                event: "quote".into(),
                filter: Some(filter),
            },
            times: 1,
            days: 30,
        }
        .compile()
        .unwrap();
        let quote = |starts_day: i64| Happened {
            id: "q".into(),
            name: "quote".into(),
            at_ms: DAY_MS,
            properties: json!({ "project_start": chrono::DateTime::from_timestamp_millis(starts_day * DAY_MS).unwrap().to_rfc3339() }),
        };
        assert!(recent.check(&[quote(9)], 10 * DAY_MS, None).holds);
        assert!(!recent.check(&[quote(5)], 10 * DAY_MS, None).holds);
        // The same event, checked later: its date is no longer recent.
        assert!(!recent.check(&[quote(9)], 20 * DAY_MS, None).holds);
    }

    #[test]
    fn bad_filters_and_windows_are_refused_by_pointer() {
        let bad = Behaviour::AllWithin {
            did: vec![
                Did {
                    event: "a".into(),
                    filter: None,
                },
                Did {
                    event: "b".into(),
                    filter: Some("event.properties.x ==".into()),
                },
            ],
            days: 7,
        };
        assert_eq!(bad.compile().unwrap_err().0, "/did/1/filter");
        let long = Behaviour::AtLeast {
            did: Did {
                event: "a".into(),
                filter: None,
            },
            times: 1,
            days: 400,
        };
        assert_eq!(long.compile().unwrap_err().0, "/days");
        let parsed: Behaviour = serde_json::from_value(json!({
            "kind": "all_within", "days": 7,
            "did": [{"event": "page_view"}, {"event": "download"}]
        }))
        .unwrap();
        assert_eq!(parsed.event_names(), vec!["page_view", "download"]);
    }
}
