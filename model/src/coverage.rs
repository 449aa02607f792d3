//! Which data a scoring model's features match: for each feature, how many leads have a
//! value for it and how many it gives points to, the values leads actually have (so a
//! business user can list the right ones), and for a behaviour feature how many stored
//! events of its type pass its filter. A template feature that matches nothing scores every
//! lead 0; the scoring page warns about it instead of letting a backtest say AUC 0.5.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scoring::{BehaviourState, CompiledModel, EventView, Source, Transform, display};

/// Most frequent values reported per fit feature.
pub const TOP_VALUES: usize = 12;

/// How many leads have one value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub leads: u64,
}

/// A behaviour feature's events: stored, examined (the most recent), passing the filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventCoverage {
    pub total: u64,
    pub examined: u64,
    pub matching: u64,
}

/// One feature's coverage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureCoverage {
    pub feature: String,
    /// Leads with a value: the attribute is set, or (behaviour) events were counted.
    pub with_value: u64,
    /// Leads it gives points to.
    pub scoring: u64,
    /// Fit features: the most frequent values, with their leads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueCount>,
    /// Categorical fit features: listed values no lead has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen_values: Vec<String>,
    /// Behaviour features, when the events were looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventCoverage>,
}

impl FeatureCoverage {
    /// The feature gives no lead any points and, for a behaviour feature, no stored event
    /// passes it: it cannot tell leads apart.
    pub fn matches_nothing(&self) -> bool {
        match self.events {
            Some(e) => e.total == 0 || (e.examined > 0 && e.matching == 0),
            None => self.scoring == 0,
        }
    }
}

/// The coverage of every feature of a model, in the model's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Leads looked at.
    pub leads: u64,
    pub features: Vec<FeatureCoverage>,
}

impl Coverage {
    /// Coverage over `leads` (attributes and behaviour state), scored at `now`.
    pub fn of_leads<'a>(
        model: &CompiledModel,
        leads: impl IntoIterator<Item = (&'a Value, &'a BehaviourState)>,
        now: i64,
    ) -> Coverage {
        let features = &model.model().features;
        let mut with_value = vec![0u64; features.len()];
        let mut scoring = vec![0u64; features.len()];
        let mut values: Vec<HashMap<String, u64>> = vec![HashMap::new(); features.len()];
        let mut n = 0u64;
        for (attributes, state) in leads {
            n += 1;
            for i in 0..features.len() {
                if let Some(v) = model.observed(i, attributes, state, now) {
                    with_value[i] += 1;
                    if matches!(features[i].source, Source::Fit { .. }) {
                        *values[i].entry(display(&v)).or_default() += 1;
                    }
                }
                if model.level(i, attributes, state, now) > 0.0 {
                    scoring[i] += 1;
                }
            }
        }
        let features = features
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut top: Vec<ValueCount> = values[i]
                    .iter()
                    .map(|(value, leads)| ValueCount {
                        value: value.clone(),
                        leads: *leads,
                    })
                    .collect();
                top.sort_by(|a, b| b.leads.cmp(&a.leads).then_with(|| a.value.cmp(&b.value)));
                let unseen_values = match &f.transform {
                    Transform::Categorical { values: listed, .. } => listed
                        .keys()
                        .filter(|k| !values[i].contains_key(k.trim()))
                        .cloned()
                        .collect(),
                    _ => Vec::new(),
                };
                top.truncate(TOP_VALUES);
                FeatureCoverage {
                    feature: f.id.clone(),
                    with_value: with_value[i],
                    scoring: scoring[i],
                    values: top,
                    unseen_values,
                    events: None,
                }
            })
            .collect();
        Coverage { leads: n, features }
    }

    /// Records behaviour feature `index`'s events: `total` stored, of which `recent` were
    /// examined against its filter.
    pub fn add_events(
        &mut self,
        model: &CompiledModel,
        index: usize,
        total: u64,
        recent: &[EventView],
    ) {
        let matching = recent.iter().filter(|e| model.counts(index, e)).count() as u64;
        if let Some(f) = self.features.get_mut(index) {
            f.events = Some(EventCoverage {
                total,
                examined: recent.len() as u64,
                matching,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scoring::{Feature, ScoringModel};

    const NOW: i64 = 1_790_000_000_000;

    fn model() -> CompiledModel {
        let mut m = ScoringModel::starter();
        m.features.truncate(1);
        m.features[0].weight = 100.0;
        m.add_feature(Feature::fit("来源", "Lead Source"));
        let mut b = Feature::behaviour("下载", "download");
        if let Source::Behaviour(def) = &mut b.source {
            def.filter = Some("event.properties.file == 'security.pdf'".into());
        }
        m.add_feature(b);
        CompiledModel::new(m).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_feature_on_an_attribute_no_lead_has_matches_nothing() {
        let m = model();
        let leads = [
            json!({"Lead Source": "Google"}),
            json!({"Lead Source": "Google"}),
            json!({"Lead Source": "Direct Traffic"}),
            json!({"Lead Source": ""}),
        ];
        let state = BehaviourState::new();
        let c = Coverage::of_leads(&m, leads.iter().map(|a| (a, &state)), NOW);
        assert_eq!(c.leads, 4);
        let industry = &c.features[0];
        assert_eq!((industry.with_value, industry.scoring), (0, 0));
        assert!(industry.matches_nothing());
        assert_eq!(
            industry.unseen_values,
            vec!["新能源汽车零部件".to_owned(), "机械".to_owned()]
        );
        let source = &c.features[1];
        assert_eq!(source.with_value, 3, "an empty string is no value");
        assert_eq!(
            source.values[0],
            ValueCount {
                value: "Google".into(),
                leads: 2
            }
        );
        // Listed nothing yet, so it gives no points: it says so too.
        assert!(source.matches_nothing());
    }

    #[test]
    fn a_behaviour_feature_is_judged_by_the_events_its_filter_lets_through() {
        let m = model();
        let mut c = Coverage::of_leads(&m, std::iter::empty(), NOW);
        let event = |file: &str| EventView {
            kind: "download".into(),
            at: NOW,
            properties: json!({ "file": file }),
        };
        c.add_events(&m, 2, 10, &[event("brochure.pdf"), event("brochure.pdf")]);
        assert_eq!(
            c.features[2].events,
            Some(EventCoverage {
                total: 10,
                examined: 2,
                matching: 0
            })
        );
        assert!(c.features[2].matches_nothing());
        c.add_events(&m, 2, 10, &[event("security.pdf")]);
        assert!(!c.features[2].matches_nothing());
        c.add_events(&m, 2, 0, &[]);
        assert!(
            c.features[2].matches_nothing(),
            "no event of its type at all"
        );
    }
}
