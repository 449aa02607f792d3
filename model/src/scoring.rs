//! Intent scoring: a scoring model is a document of features with weights; a lead's score
//! is the sum of the features' contributions, so every score explains itself line by line.
//!
//! - A *fit* feature reads a lead attribute (`industry`, `employees`) and maps it to a
//!   level between 0 and 1: points per category, bins, or a cap.
//! - A *behaviour* feature aggregates the lead's events (count, sum, last, exists) of one
//!   type, filtered by a CEL predicate, over an optional window of days, with an optional
//!   half-life. Its state ([`Aggregate`]) is updated in O(1) per event and never needs the
//!   event history to score.
//! - A feature's contribution is `weight × level`; weights are the percentages business
//!   users think in and sum to 100, so a score is between 0 and 100.
//!
//! Everything here is pure: the server applies events and scores with it, and the studio
//! runs the same code in the browser to show what a weight change does before publishing.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::expr::{Expr, Scope};
use crate::validate::Diagnostic;

const DAY_MS: i64 = 86_400_000;

pub use crate::identity::IDENTITY_KINDS;

/// A versioned scoring model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis scoring model")]
pub struct ScoringModel {
    #[schemars(range(min = 1, max = 1))]
    pub schema: u32,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    pub features: Vec<Feature>,
    pub tiers: Tiers,
    pub stages: Stages,
    /// Maps a score to a conversion probability, `1 / (1 + e^-(scale·score + offset))`;
    /// set by "suggest weights" from history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// Score thresholds for the warm and hot tiers (below warm is cold).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    pub warm: f64,
    pub hot: f64,
}

/// Score thresholds for marketing- and sales-qualified leads.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stages {
    pub mql: f64,
    pub sql: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub scale: f64,
    pub offset: f64,
}

/// One line of the score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// Stable id (`snake_case`), referenced by diffs and explanations.
    pub id: String,
    /// Display name, Chinese first.
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_en: Option<String>,
    /// The most points this feature can give; the weights of a model sum to 100.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub weight: f64,
    pub source: Source,
    pub transform: Transform,
}

/// Where a feature's raw value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A lead attribute; with `cross`, the pair of two categorical attributes
    /// (`"在职 × 短信"`).
    Fit {
        attribute: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cross: Option<String>,
    },
    /// An aggregate over the lead's events.
    Behaviour(Behaviour),
}

/// An aggregate over a lead's events of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Event type, e.g. `page_view`.
    pub event: String,
    /// CEL over `event` (`event.properties.category == "competitor_comparison"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub aggregate: AggregateKind,
    /// For `sum` and `last`: the event property to read (`amount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Only events of the last N days (calendar days, UTC) count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub window_days: Option<u32>,
    /// An event counts half after this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    Count,
    Sum,
    Last,
    Exists,
}

/// Raw value → level between 0 and 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// A level per value; values not listed get `other`, a missing value `missing`.
    Categorical {
        values: BTreeMap<String, f64>,
        #[serde(default)]
        other: f64,
        #[serde(default)]
        missing: f64,
    },
    /// Numeric bins: the first bin whose `below` is above the value (the last bin has none).
    Bins {
        bins: Vec<Bin>,
        #[serde(default)]
        missing: f64,
    },
    /// `min(value, cap) / cap`.
    Cap { cap: f64 },
    /// `ln(1 + value) / ln(1 + cap)`, at most 1: the first few count most.
    Log { cap: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    pub level: f64,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(rs_type = "String", db_type = "Text")
)]
pub enum Tier {
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "cold"))]
    Cold,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "warm"))]
    Warm,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "hot"))]
    Hot,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Cold => "cold",
            Tier::Warm => "warm",
            Tier::Hot => "hot",
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum),
    sea_orm(rs_type = "String", db_type = "Text")
)]
pub enum Stage {
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "lead"))]
    Lead,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "mql"))]
    Mql,
    #[cfg_attr(feature = "sea-orm", sea_orm(string_value = "sql"))]
    Sql,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Lead => "lead",
            Stage::Mql => "mql",
            Stage::Sql => "sql",
        }
    }
}

impl ScoringModel {
    /// The JSON Schema of the document.
    pub fn json_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(ScoringModel)).unwrap_or(Value::Null)
    }

    /// Every problem with the model, each with its JSON pointer.
    pub fn problems(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut err = |pointer: String, code: &'static str, message: String| {
            out.push(Diagnostic::error(code, pointer, None, message));
        };
        if self.schema != 1 {
            err(
                "/schema".into(),
                "invalid_schema",
                "schema must be 1".into(),
            );
        }
        if self.name.trim().is_empty() {
            err(
                "/name".into(),
                "invalid_name",
                "the model needs a name".into(),
            );
        }
        let mut ids = BTreeMap::new();
        for (i, f) in self.features.iter().enumerate() {
            let at = format!("/features/{i}");
            if crate::flow::NodeId::new(f.id.clone()).is_err() {
                err(
                    format!("{at}/id"),
                    "invalid_feature_id",
                    format!(
                        "{:?}: a feature id is 1-64 letters, digits, '_' or '-'",
                        f.id
                    ),
                );
            }
            if let Some(first) = ids.insert(f.id.as_str(), i) {
                err(
                    format!("{at}/id"),
                    "duplicate_feature",
                    format!("feature {:?} is already defined at /features/{first}", f.id),
                );
            }
            if !(0.0..=100.0).contains(&f.weight) || !f.weight.is_finite() {
                err(
                    format!("{at}/weight"),
                    "invalid_weight",
                    "a weight is between 0 and 100".into(),
                );
            }
            match &f.source {
                Source::Fit { attribute, cross } => {
                    if attribute.trim().is_empty() {
                        err(
                            format!("{at}/source/attribute"),
                            "invalid_source",
                            "name the lead attribute".into(),
                        );
                    }
                    if cross.is_some() && !matches!(f.transform, Transform::Categorical { .. }) {
                        err(
                            format!("{at}/transform"),
                            "invalid_transform",
                            "a crossed attribute pair needs a categorical transform".into(),
                        );
                    }
                }
                Source::Behaviour(b) => {
                    if b.event.trim().is_empty() {
                        err(
                            format!("{at}/source/event"),
                            "invalid_source",
                            "name the event type".into(),
                        );
                    }
                    if let Some(filter) = &b.filter
                        && let Err(e) = Expr::compile(filter)
                    {
                        let mut d = Diagnostic::error(
                            "invalid_expression",
                            format!("{at}/source/filter"),
                            None,
                            e.message,
                        );
                        d.position = e.position;
                        out_push(&mut err, d);
                    }
                    if matches!(b.aggregate, AggregateKind::Sum | AggregateKind::Last)
                        && b.field.as_deref().is_none_or(|f| f.trim().is_empty())
                    {
                        err(
                            format!("{at}/source/field"),
                            "invalid_source",
                            "sum and last read an event property: name it in field".into(),
                        );
                    }
                    if b.half_life_days
                        .is_some_and(|h| !(h > 0.0 && h.is_finite()))
                    {
                        err(
                            format!("{at}/source/half_life_days"),
                            "invalid_source",
                            "a half-life is a positive number of days".into(),
                        );
                    }
                    if b.window_days == Some(0) {
                        err(
                            format!("{at}/source/window_days"),
                            "invalid_source",
                            "a window is at least one day".into(),
                        );
                    }
                }
            }
            let level_ok = |l: f64| (0.0..=1.0).contains(&l);
            match &f.transform {
                Transform::Categorical {
                    values,
                    other,
                    missing,
                } => {
                    for (k, l) in values {
                        if !level_ok(*l) {
                            err(
                                format!("{at}/transform/values/{}", pointer_escape(k)),
                                "invalid_level",
                                "a level is between 0 and 1".into(),
                            );
                        }
                    }
                    for (name, l) in [("other", other), ("missing", missing)] {
                        if !level_ok(*l) {
                            err(
                                format!("{at}/transform/{name}"),
                                "invalid_level",
                                "a level is between 0 and 1".into(),
                            );
                        }
                    }
                }
                Transform::Bins { bins, missing } => {
                    if bins.is_empty() {
                        err(
                            format!("{at}/transform/bins"),
                            "invalid_transform",
                            "at least one bin".into(),
                        );
                    }
                    let mut last = f64::NEG_INFINITY;
                    for (j, b) in bins.iter().enumerate() {
                        if !level_ok(b.level) {
                            err(
                                format!("{at}/transform/bins/{j}/level"),
                                "invalid_level",
                                "a level is between 0 and 1".into(),
                            );
                        }
                        match b.below {
                            Some(x) if x <= last || !x.is_finite() => err(
                                format!("{at}/transform/bins/{j}/below"),
                                "invalid_transform",
                                "bin bounds increase".into(),
                            ),
                            Some(x) => last = x,
                            None if j + 1 != bins.len() => err(
                                format!("{at}/transform/bins/{j}/below"),
                                "invalid_transform",
                                "only the last bin is open-ended".into(),
                            ),
                            None => {}
                        }
                    }
                    if !level_ok(*missing) {
                        err(
                            format!("{at}/transform/missing"),
                            "invalid_level",
                            "a level is between 0 and 1".into(),
                        );
                    }
                }
                Transform::Cap { cap } | Transform::Log { cap } => {
                    if !(*cap > 0.0 && cap.is_finite()) {
                        err(
                            format!("{at}/transform/cap"),
                            "invalid_transform",
                            "cap is a positive number".into(),
                        );
                    }
                }
            }
        }
        let total: f64 = self.features.iter().map(|f| f.weight).sum();
        if !self.features.is_empty() && (total - 100.0).abs() > 0.05 {
            err(
                "/features".into(),
                "weights_not_100",
                format!("the weights sum to {total:.2}; they must sum to 100"),
            );
        }
        if self.tiers.warm.partial_cmp(&self.tiers.hot) == Some(std::cmp::Ordering::Greater)
            || !self.tiers.warm.is_finite()
            || !self.tiers.hot.is_finite()
        {
            err(
                "/tiers".into(),
                "invalid_thresholds",
                "warm must not be above hot".into(),
            );
        }
        if self.stages.mql.partial_cmp(&self.stages.sql) == Some(std::cmp::Ordering::Greater)
            || !self.stages.mql.is_finite()
            || !self.stages.sql.is_finite()
        {
            err(
                "/stages".into(),
                "invalid_thresholds",
                "mql must not be above sql".into(),
            );
        }
        out
    }

    /// A model to start from when a workspace has none: fit by industry and company size,
    /// behaviour by pricing-page views over the last two weeks.
    pub fn starter() -> ScoringModel {
        #[expect(clippy::expect_used, reason = "the starter model is tested to parse")]
        serde_json::from_value(serde_json::json!({
            "schema": 1, "name": "线索评分",
            "features": [
                { "id": "industry", "label": "行业", "label_en": "Industry", "weight": 30,
                  "source": { "kind": "fit", "attribute": "industry" },
                  "transform": { "type": "categorical", "values": { "新能源汽车零部件": 1.0, "机械": 0.6 }, "other": 0.2 } },
                { "id": "employees", "label": "公司规模", "label_en": "Company size", "weight": 20,
                  "source": { "kind": "fit", "attribute": "employees" },
                  "transform": { "type": "cap", "cap": 1000 } },
                { "id": "pricing_views", "label": "价格页浏览", "label_en": "Pricing page views", "weight": 50,
                  "source": { "kind": "behaviour", "event": "page_view",
                              "filter": "event.properties.category == 'pricing'",
                              "aggregate": "count", "window_days": 14, "half_life_days": 7 },
                  "transform": { "type": "cap", "cap": 3 } }
            ],
            "tiers": { "warm": 40, "hot": 70 },
            "stages": { "mql": 40, "sql": 70 }
        }))
        .expect("the starter model parses")
    }

    /// Sets feature `index`'s weight (clamped to 0–100, to 0.1) and rescales the others in
    /// proportion so the weights still sum to 100: how a business user moves one slider.
    /// A hand edit voids the calibration (a probability fitted to other weights would lie).
    /// The rounding remainder goes to the heaviest other feature.
    pub fn set_weight(&mut self, index: usize, weight: f64) {
        let tenth = |x: f64| (x * 10.0).round() / 10.0;
        let n = self.features.len();
        if index >= n || !weight.is_finite() {
            return;
        }
        // The calibration was fitted to the old weights.
        self.calibration = None;
        if n == 1 {
            self.features[0].weight = 100.0;
            return;
        }
        let w = tenth(weight.clamp(0.0, 100.0));
        let rest: f64 = (self.features.iter().map(|f| f.weight).sum::<f64>()
            - self.features[index].weight)
            .max(0.0);
        let target = 100.0 - w;
        for (j, f) in self.features.iter_mut().enumerate() {
            if j != index {
                let share = if rest > 0.0 {
                    f.weight / rest
                } else {
                    1.0 / (n - 1) as f64
                };
                f.weight = tenth(target * share);
            }
        }
        self.features[index].weight = w;
        let drift = 100.0 - self.features.iter().map(|f| f.weight).sum::<f64>();
        if let Some(heaviest) = self
            .features
            .iter_mut()
            .enumerate()
            .filter(|(j, _)| *j != index)
            .map(|(_, f)| f)
            .max_by(|a, b| a.weight.total_cmp(&b.weight))
        {
            heaviest.weight = tenth((heaviest.weight + drift).max(0.0));
        }
    }

    /// Adds `feature` with its weight (0–100; the only feature gets 100), the others scaled
    /// down in proportion to make room. Its id is made unique. A hand edit voids the
    /// calibration, which was fitted to the old weights.
    pub fn add_feature(&mut self, mut feature: Feature) -> usize {
        feature.id = self.fresh_id(&feature.id);
        let weight = feature.weight;
        feature.weight = 0.0;
        self.features.push(feature);
        let index = self.features.len() - 1;
        self.set_weight(index, weight);
        self.calibration = None;
        index
    }

    /// Removes feature `index`; the others keep their proportions and again sum to 100.
    pub fn remove_feature(&mut self, index: usize) {
        if index >= self.features.len() {
            return;
        }
        self.features.remove(index);
        self.calibration = None;
        let total: f64 = self.features.iter().map(|f| f.weight).sum();
        let n = self.features.len();
        for f in &mut self.features {
            f.weight = if total > 0.0 {
                (f.weight * 1000.0 / total).round() / 10.0
            } else {
                (1000.0 / n as f64).round() / 10.0
            };
        }
        let drift = 100.0 - self.features.iter().map(|f| f.weight).sum::<f64>();
        if let Some(heaviest) = self
            .features
            .iter_mut()
            .max_by(|a, b| a.weight.total_cmp(&b.weight))
        {
            heaviest.weight = ((heaviest.weight + drift).max(0.0) * 10.0).round() / 10.0;
        }
    }

    /// `base` as a feature id no other feature has: letters, digits and `_` kept (others
    /// become `_`), then `_2`, `_3`… if it is taken.
    pub fn fresh_id(&self, base: &str) -> String {
        self.fresh_id_except(base, None)
    }

    /// [`Self::fresh_id`], ignoring the feature at `except` (the one being renamed).
    pub fn fresh_id_except(&self, base: &str, except: Option<usize>) -> String {
        let mut stem: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(56)
            .collect();
        if stem.trim_matches('_').is_empty() {
            stem = "feature".into();
        }
        let taken = |id: &str| {
            self.features
                .iter()
                .enumerate()
                .any(|(i, f)| Some(i) != except && f.id == id)
        };
        if !taken(&stem) {
            return stem;
        }
        (2..)
            .map(|n| format!("{stem}_{n}"))
            .find(|id| !taken(id))
            .unwrap_or(stem)
    }

    pub fn tier(&self, score: f64) -> Tier {
        if score >= self.tiers.hot {
            Tier::Hot
        } else if score >= self.tiers.warm {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }

    pub fn stage(&self, score: f64) -> Stage {
        if score >= self.stages.sql {
            Stage::Sql
        } else if score >= self.stages.mql {
            Stage::Mql
        } else {
            Stage::Lead
        }
    }
}

fn out_push(err: &mut impl FnMut(String, &'static str, String), d: Diagnostic) {
    // Keeps one collector for every problem; the position is folded into the message.
    let message = match &d.position {
        Some(p) => format!("{} (at {}:{})", d.message, p.line, p.column),
        None => d.message,
    };
    err(d.pointer, d.code, message);
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Behaviour {
    /// Identifies the aggregate: two features with the same definition share their state,
    /// and a weight or transform change keeps it.
    pub fn key(&self) -> String {
        let canonical = serde_json::to_string(&(
            &self.event,
            &self.filter,
            self.aggregate,
            &self.field,
            self.window_days,
            self.half_life_days,
        ))
        .unwrap_or_default();
        hex::encode(&Sha256::digest(canonical.as_bytes())[..8])
    }

    fn decay(&self, elapsed_ms: i64) -> f64 {
        match self.half_life_days {
            Some(h) => (-(elapsed_ms as f64) / (h * DAY_MS as f64)).exp2(),
            None => 1.0,
        }
    }
}

impl Feature {
    /// A fit feature on `attribute`: points per listed value (none yet), nothing for other
    /// or missing values.
    pub fn fit(label: &str, attribute: &str) -> Feature {
        Feature {
            id: attribute.to_owned(),
            label: label.to_owned(),
            label_en: None,
            weight: 10.0,
            source: Source::Fit {
                attribute: attribute.to_owned(),
                cross: None,
            },
            transform: Transform::Categorical {
                values: BTreeMap::new(),
                other: 0.0,
                missing: 0.0,
            },
        }
    }

    /// A behaviour feature counting `event` over the last 30 days, full points at 3.
    pub fn behaviour(label: &str, event: &str) -> Feature {
        Feature {
            id: event.to_owned(),
            label: label.to_owned(),
            label_en: None,
            weight: 10.0,
            source: Source::Behaviour(Behaviour {
                event: event.to_owned(),
                filter: None,
                aggregate: AggregateKind::Count,
                field: None,
                window_days: Some(30),
                half_life_days: None,
            }),
            transform: Transform::Cap { cap: 3.0 },
        }
    }
}

impl Transform {
    /// The code of this kind of transform (`categorical`, `bins`, `cap`, `log`).
    pub fn kind(&self) -> &'static str {
        match self {
            Transform::Categorical { .. } => "categorical",
            Transform::Bins { .. } => "bins",
            Transform::Cap { .. } => "cap",
            Transform::Log { .. } => "log",
        }
    }

    /// A transform of kind `code` made from this one: the level of a missing value and a cap
    /// carry over where both kinds have them. `None` for an unknown code.
    pub fn with_kind(&self, code: &str) -> Option<Transform> {
        let missing = match self {
            Transform::Categorical { missing, .. } | Transform::Bins { missing, .. } => *missing,
            _ => 0.0,
        };
        let cap = match self {
            Transform::Cap { cap } | Transform::Log { cap } => *cap,
            _ => 3.0,
        };
        Some(match code {
            "categorical" => Transform::Categorical {
                values: BTreeMap::new(),
                other: 0.0,
                missing,
            },
            "bins" => Transform::Bins {
                bins: vec![
                    Bin {
                        below: Some(cap),
                        level: 0.5,
                    },
                    Bin {
                        below: None,
                        level: 1.0,
                    },
                ],
                missing,
            },
            "cap" => Transform::Cap { cap },
            "log" => Transform::Log { cap },
            _ => return None,
        })
        .filter(|t| t.kind() != self.kind())
        .or_else(|| Some(self.clone()))
    }
}

/// One day's (or, without a window, all time's) events of an aggregate.
/// `sum` is `Σ x·2^((t − anchor)/half-life)`: decayed to any later time by one factor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub anchor: i64,
    pub sum: f64,
    /// The undecayed sum, to say how much decay took off.
    pub total: f64,
    pub count: u64,
}

/// The state of one behaviour aggregate for one lead.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<Bucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<i64>,
}

/// A lead's behaviour state: aggregates by [`Behaviour::key`].
pub type BehaviourState = BTreeMap<String, Aggregate>;

/// An event as scoring sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    #[serde(default)]
    pub properties: Value,
}

fn property<'a>(props: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(props, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

impl Aggregate {
    fn add(&mut self, def: &Behaviour, at: i64, x: f64, raw: Option<&Value>) {
        let anchor = if def.window_days.is_some() {
            at.div_euclid(DAY_MS) * DAY_MS
        } else {
            self.buckets.first().map_or(at, |b| b.anchor)
        };
        let idx = match self.buckets.iter().position(|b| b.anchor == anchor) {
            Some(i) => i,
            None => {
                let pos = self.buckets.partition_point(|b| b.anchor < anchor);
                self.buckets.insert(
                    pos,
                    Bucket {
                        anchor,
                        ..Bucket::default()
                    },
                );
                pos
            }
        };
        let b = &mut self.buckets[idx];
        b.sum += x * def.decay(anchor - at);
        b.total += x;
        b.count += 1;
        if self.last_at.is_none_or(|t| at >= t) {
            self.last_at = Some(at);
            self.last = raw.cloned();
        }
        // Without a window, keep the anchor recent so the stored sum stays in range.
        if def.window_days.is_none() && at > self.buckets[0].anchor + 30 * DAY_MS {
            let b = &mut self.buckets[0];
            b.sum *= def.decay(at - b.anchor);
            b.anchor = at;
        }
        if let Some(w) = def.window_days {
            let newest = self.buckets.last().map_or(anchor, |b| b.anchor);
            let oldest_kept = newest - (i64::from(w) - 1) * DAY_MS;
            self.buckets.retain(|b| b.anchor >= oldest_kept);
        }
    }

    /// The aggregate's value at `now`: decayed count or sum, the last value, or 0/1.
    fn value(&self, def: &Behaviour, now: i64) -> (Option<f64>, u64) {
        let in_window = |b: &&Bucket| match def.window_days {
            Some(w) => b.anchor >= now.div_euclid(DAY_MS) * DAY_MS - (i64::from(w) - 1) * DAY_MS,
            None => true,
        };
        let count: u64 = self.buckets.iter().filter(in_window).map(|b| b.count).sum();
        let value = match def.aggregate {
            AggregateKind::Count | AggregateKind::Sum => Some(
                self.buckets
                    .iter()
                    .filter(in_window)
                    .map(|b| b.sum * def.decay(now - b.anchor))
                    .sum(),
            ),
            AggregateKind::Exists => Some(if count > 0 { 1.0 } else { 0.0 }),
            AggregateKind::Last => match (def.window_days, self.last_at) {
                (Some(_), Some(t))
                    if !in_window(&&Bucket {
                        anchor: t.div_euclid(DAY_MS) * DAY_MS,
                        ..Bucket::default()
                    }) =>
                {
                    None
                }
                _ => self.last.as_ref().and_then(as_number),
            },
        };
        (value, count)
    }
}

/// The undecayed value of a count or sum in its window.
fn v_total(agg: &Aggregate, def: &Behaviour, now: i64) -> f64 {
    let start = def.window_days.map_or(i64::MIN, |w| {
        now.div_euclid(DAY_MS) * DAY_MS - (i64::from(w) - 1) * DAY_MS
    });
    agg.buckets
        .iter()
        .filter(|b| b.anchor >= start)
        .map(|b| b.total)
        .sum()
}

/// One feature's part of a score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contribution {
    pub feature: String,
    pub label: String,
    pub points: f64,
    pub weight: f64,
    /// The raw value the feature saw (attribute value, or the aggregate).
    pub value: Value,
    /// One readable line: "+15 竞品对比页停留 3 次 (7 天内, 衰减 50%)".
    pub explanation: String,
    pub explanation_en: String,
}

/// A lead's score with its explanation; `score` is the sum of the contributions' points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Score {
    pub score: f64,
    pub tier: Tier,
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    pub contributions: Vec<Contribution>,
}

/// Why a model can't be compiled.
#[derive(Debug, thiserror::Error)]
#[error("the scoring model has {} problem(s), first at {}: {}", .0.len(), .0[0].pointer, .0[0].message)]
pub struct ModelError(pub Vec<Diagnostic>);

/// A model ready to apply events and score: filters compiled once.
#[derive(Clone, Debug)]
pub struct CompiledModel {
    model: ScoringModel,
    filters: Vec<Option<Expr>>,
    /// [`Behaviour::key`] per feature, hashed once rather than per event and per score.
    keys: Vec<Option<String>>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Null or an empty string: a value that is not there.
fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

fn level_of(t: &Transform, v: Option<&Value>) -> f64 {
    let missing = v.is_none_or(is_blank);
    match t {
        Transform::Categorical {
            values,
            other,
            missing: m,
        } => {
            if missing {
                return *m;
            }
            let key = match v {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            values.get(&key).copied().unwrap_or(*other)
        }
        Transform::Bins { bins, missing: m } => match v.and_then(as_number) {
            None => *m,
            Some(x) => bins
                .iter()
                .find(|b| b.below.is_none_or(|below| x < below))
                .or(bins.last())
                .map_or(0.0, |b| b.level),
        },
        Transform::Cap { cap } => v
            .and_then(as_number)
            .map_or(0.0, |x| (x.max(0.0) / cap).min(1.0)),
        Transform::Log { cap } => v
            .and_then(as_number)
            .map_or(0.0, |x| (x.max(0.0).ln_1p() / cap.ln_1p()).min(1.0)),
    }
}

fn fmt_num(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

/// How a value reads in explanations and in a cross's `"a × b"` key: strings as they are,
/// anything else as JSON.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

impl CompiledModel {
    pub fn new(model: ScoringModel) -> Result<CompiledModel, ModelError> {
        let problems = model.problems();
        if !problems.is_empty() {
            return Err(ModelError(problems));
        }
        let filters = model
            .features
            .iter()
            .map(|f| match &f.source {
                Source::Behaviour(Behaviour {
                    filter: Some(src), ..
                }) => Expr::compile(src).ok(),
                _ => None,
            })
            .collect();
        let keys = model
            .features
            .iter()
            .map(|f| match &f.source {
                Source::Behaviour(b) => Some(b.key()),
                Source::Fit { .. } => None,
            })
            .collect();
        Ok(CompiledModel {
            model,
            filters,
            keys,
        })
    }

    pub fn model(&self) -> &ScoringModel {
        &self.model
    }

    /// The state key of each behaviour feature ([`Behaviour::key`]).
    pub fn behaviour_keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().flatten().map(String::as_str)
    }

    /// The behaviour definitions of this model, each once.
    pub fn behaviours(&self) -> impl Iterator<Item = (usize, &Behaviour)> {
        self.model
            .features
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match &f.source {
                Source::Behaviour(b) => Some((i, b)),
                Source::Fit { .. } => None,
            })
    }

    /// Folds one event into the lead's state: O(features). Returns whether any aggregate
    /// changed. A filter that fails on this event (a missing property) does not count it.
    pub fn apply(&self, state: &mut BehaviourState, event: &EventView) -> bool {
        let mut changed = false;
        let mut seen = std::collections::BTreeSet::new();
        let mut scope = None;
        for (i, b) in self.behaviours() {
            if b.event != event.kind && b.event != "*" {
                continue;
            }
            let key = self.keys[i].clone().unwrap_or_default();
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some(filter) = &self.filters[i] {
                let scope = scope.get_or_insert_with(|| {
                    Scope::new().with(
                        "event",
                        serde_json::json!({
                            "type": event.kind, "at": event.at, "properties": event.properties,
                        }),
                    )
                });
                if !filter.eval_bool(scope).unwrap_or(false) {
                    continue;
                }
            }
            let raw = b
                .field
                .as_deref()
                .and_then(|f| property(&event.properties, f));
            let x = match b.aggregate {
                AggregateKind::Sum => match raw.and_then(as_number) {
                    Some(x) => x,
                    None => continue,
                },
                _ => 1.0,
            };
            state.entry(key).or_default().add(b, event.at, x, raw);
            changed = true;
        }
        changed
    }

    /// Whether `event` counts for feature `index`: a behaviour feature on its type whose
    /// filter (if any) holds. Always false for a fit feature.
    pub fn counts(&self, index: usize, event: &EventView) -> bool {
        let Some(Feature {
            source: Source::Behaviour(b),
            ..
        }) = self.model.features.get(index)
        else {
            return false;
        };
        if b.event != event.kind && b.event != "*" {
            return false;
        }
        match self.filters.get(index).and_then(Option::as_ref) {
            None => true,
            Some(filter) => {
                let scope = Scope::new().with(
                    "event",
                    serde_json::json!({
                        "type": event.kind, "at": event.at, "properties": event.properties,
                    }),
                );
                filter.eval_bool(&scope).unwrap_or(false)
            }
        }
    }

    /// The value feature `index` sees for a lead: the attribute (fit), or the aggregate's
    /// count when events were counted (behaviour). `None` when there is none.
    pub fn observed(
        &self,
        index: usize,
        attributes: &Value,
        state: &BehaviourState,
        now: i64,
    ) -> Option<Value> {
        let (f, key) = (self.model.features.get(index)?, self.keys.get(index)?);
        match &f.source {
            Source::Fit { attribute, cross } => {
                fit_value(attributes, attribute, cross.as_deref()).filter(|v| !is_blank(v))
            }
            Source::Behaviour(b) => {
                let agg = state.get(key.as_ref()?)?;
                let (_, count) = agg.value(b, now);
                (count > 0).then(|| Value::from(count))
            }
        }
    }

    /// Feature `index`'s level (0–1) for a lead: what [`rate`](Self::rate) multiplies by
    /// its weight. 0 for an index out of range.
    pub fn level(&self, index: usize, attributes: &Value, state: &BehaviourState, now: i64) -> f64 {
        let (Some(f), Some(key)) = (self.model.features.get(index), self.keys.get(index)) else {
            return 0.0;
        };
        match &f.source {
            Source::Fit { attribute, cross } => level_of(
                &f.transform,
                fit_value(attributes, attribute, cross.as_deref()).as_ref(),
            ),
            Source::Behaviour(b) => {
                let empty = Aggregate::default();
                let agg = key.as_ref().and_then(|k| state.get(k)).unwrap_or(&empty);
                let (v, _) = agg.value(b, now);
                level_of(&f.transform, v.map(Value::from).as_ref())
            }
        }
    }

    /// The state built from scratch from a lead's events (what [`apply`] keeps up to
    /// date incrementally).
    ///
    /// [`apply`]: CompiledModel::apply
    pub fn replay<'a>(&self, events: impl IntoIterator<Item = &'a EventView>) -> BehaviourState {
        let mut state = BehaviourState::new();
        for e in events {
            self.apply(&mut state, e);
        }
        state
    }

    /// Scores a lead at `now` (ms since the epoch) from its attributes and state.
    pub fn score(&self, attributes: &Value, state: &BehaviourState, now: i64) -> Score {
        let empty = Aggregate::default();
        let mut contributions = Vec::with_capacity(self.model.features.len());
        for (f, key) in self.model.features.iter().zip(&self.keys) {
            let (value, level, detail_zh, detail_en) = match &f.source {
                Source::Fit { attribute, cross } => {
                    let v = fit_value(attributes, attribute, cross.as_deref());
                    let level = level_of(&f.transform, v.as_ref());
                    // A missing value says so in words: its points are the model's `missing`
                    // level, which is 0 unless the model (or the history it was fitted to)
                    // says a missing value means something.
                    let (zh, en) = match v.as_ref().filter(|v| !is_blank(v)) {
                        Some(v) => (display(v), display(v)),
                        None => ("未填写".to_owned(), "not set".to_owned()),
                    };
                    (v.unwrap_or(Value::Null), level, zh, en)
                }
                Source::Behaviour(b) => {
                    let agg = key.as_ref().and_then(|k| state.get(k)).unwrap_or(&empty);
                    let (v, count) = agg.value(b, now);
                    let level = level_of(&f.transform, v.map(Value::from).as_ref());
                    let mut zh = match b.aggregate {
                        AggregateKind::Count => format!("{count} 次"),
                        AggregateKind::Sum => format!("合计 {}", fmt_num(v.unwrap_or(0.0))),
                        AggregateKind::Last => format!("最近 {}", v.map_or("—".into(), fmt_num)),
                        AggregateKind::Exists => {
                            if count > 0 {
                                "有".into()
                            } else {
                                "无".into()
                            }
                        }
                    };
                    let mut en = match b.aggregate {
                        AggregateKind::Count => format!("{count}×"),
                        AggregateKind::Sum => format!("total {}", fmt_num(v.unwrap_or(0.0))),
                        AggregateKind::Last => format!("latest {}", v.map_or("—".into(), fmt_num)),
                        AggregateKind::Exists => {
                            if count > 0 {
                                "yes".into()
                            } else {
                                "no".into()
                            }
                        }
                    };
                    let mut notes_zh = Vec::new();
                    let mut notes_en = Vec::new();
                    if let Some(w) = b.window_days {
                        notes_zh.push(format!("{w} 天内"));
                        notes_en.push(format!("last {w} days"));
                    }
                    if b.half_life_days.is_some()
                        && matches!(b.aggregate, AggregateKind::Count | AggregateKind::Sum)
                        && count > 0
                    {
                        let raw_total = v_total(agg, b, now).max(f64::MIN_POSITIVE);
                        let decayed = v.unwrap_or(0.0);
                        let pct = ((1.0 - decayed / raw_total) * 100.0)
                            .clamp(0.0, 100.0)
                            .round();
                        notes_zh.push(format!("衰减 {pct}%"));
                        notes_en.push(format!("decayed {pct}%"));
                    }
                    if !notes_zh.is_empty() {
                        zh = format!("{zh} ({})", notes_zh.join(", "));
                        en = format!("{en} ({})", notes_en.join(", "));
                    }
                    (
                        serde_json::json!({"value": v, "count": count}),
                        level,
                        zh,
                        en,
                    )
                }
            };
            let points = round2(f.weight * level);
            let sign = if points >= 0.0 { "+" } else { "" };
            contributions.push(Contribution {
                feature: f.id.clone(),
                label: f.label.clone(),
                points,
                weight: f.weight,
                value,
                explanation: format!("{sign}{} {} {}", fmt_num(points), f.label, detail_zh),
                explanation_en: format!(
                    "{sign}{} {} {}",
                    fmt_num(points),
                    f.label_en.as_deref().unwrap_or(&f.label),
                    detail_en
                ),
            });
        }
        let rating = self.rating(contributions.iter().map(|c| c.points).sum());
        Score {
            score: rating.score,
            tier: rating.tier,
            stage: rating.stage,
            probability: rating.probability,
            contributions,
        }
    }

    /// [`score`](Self::score) without the contributions and their explanations: what a
    /// bulk rescore stores, at a fraction of the cost (no strings are built).
    pub fn rate(&self, attributes: &Value, state: &BehaviourState, now: i64) -> Rating {
        let points = self
            .model
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| round2(f.weight * self.level(i, attributes, state, now)));
        self.rating(points.sum())
    }

    /// Tier, stage and probability of the summed points.
    fn rating(&self, points: f64) -> Rating {
        let score = round2(points);
        Rating {
            score,
            tier: self.model.tier(score),
            stage: self.model.stage(score),
            probability: self
                .model
                .calibration
                .map(|c| round2(100.0 / (1.0 + (-(c.scale * score + c.offset)).exp())) / 100.0),
        }
    }
}

/// A fit feature's value: the attribute, or for a cross the `"a × b"` of both.
fn fit_value(attributes: &Value, attribute: &str, cross: Option<&str>) -> Option<Value> {
    let get = |name: &str| property(attributes, name).or_else(|| attributes.get(name));
    let a = get(attribute);
    match cross {
        None => a.cloned(),
        Some(c) => match (a, get(c)) {
            (Some(a), Some(b)) => Some(Value::String(format!("{} × {}", display(a), display(b)))),
            _ => None,
        },
    }
}

/// A lead's score, tier, stage and probability, without the explanation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rating {
    pub score: f64,
    pub tier: Tier,
    pub stage: Stage,
    pub probability: Option<f64>,
}

/// What changed about one feature between two model versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureChange {
    pub feature: String,
    pub label: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_from: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_to: Option<f64>,
    /// The data it reads (attribute, event, filter, window…) changed.
    pub source_changed: bool,
    /// The points per value or bin changed.
    pub transform_changed: bool,
}

/// A readable diff of two scoring models: features by id, then thresholds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelDiff {
    pub features: Vec<FeatureChange>,
    pub tiers_changed: bool,
    pub stages_changed: bool,
    pub calibration_changed: bool,
}

/// What `to` changes relative to `from`.
pub fn diff(from: &ScoringModel, to: &ScoringModel) -> ModelDiff {
    let mut features = Vec::new();
    for b in &to.features {
        match from.features.iter().find(|a| a.id == b.id) {
            None => features.push(FeatureChange {
                feature: b.id.clone(),
                label: b.label.clone(),
                change: "added".into(),
                weight_from: None,
                weight_to: Some(b.weight),
                source_changed: true,
                transform_changed: true,
            }),
            Some(a) if a != b => features.push(FeatureChange {
                feature: b.id.clone(),
                label: b.label.clone(),
                change: "changed".into(),
                weight_from: Some(a.weight),
                weight_to: Some(b.weight),
                source_changed: a.source != b.source,
                transform_changed: a.transform != b.transform,
            }),
            Some(_) => {}
        }
    }
    for a in &from.features {
        if !to.features.iter().any(|b| b.id == a.id) {
            features.push(FeatureChange {
                feature: a.id.clone(),
                label: a.label.clone(),
                change: "removed".into(),
                weight_from: Some(a.weight),
                weight_to: None,
                source_changed: true,
                transform_changed: true,
            });
        }
    }
    ModelDiff {
        features,
        tiers_changed: from.tiers != to.tiers,
        stages_changed: from.stages != to.stages,
        calibration_changed: from.calibration != to.calibration,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn model() -> ScoringModel {
        serde_json::from_value(json!({
            "schema": 1,
            "name": "制造业线索评分",
            "features": [
                { "id": "industry", "label": "行业", "label_en": "Industry", "weight": 30,
                  "source": { "kind": "fit", "attribute": "industry" },
                  "transform": { "type": "categorical", "values": { "新能源汽车零部件": 1.0, "机械": 0.5 }, "other": 0.2 } },
                { "id": "employees", "label": "规模", "weight": 20,
                  "source": { "kind": "fit", "attribute": "company.employees" },
                  "transform": { "type": "bins", "bins": [ { "below": 50, "level": 0.1 }, { "below": 500, "level": 0.5 }, { "level": 1.0 } ] } },
                { "id": "competitor_pages", "label": "竞品对比页停留", "label_en": "Competitor comparison views", "weight": 50,
                  "source": { "kind": "behaviour", "event": "page_view",
                              "filter": "event.properties.category == 'competitor_comparison'",
                              "aggregate": "count", "window_days": 7, "half_life_days": 3 },
                  "transform": { "type": "cap", "cap": 3 } }
            ],
            "tiers": { "warm": 40, "hot": 70 },
            "stages": { "mql": 40, "sql": 70 }
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn features_are_added_and_removed_with_weights_summing_to_100() {
        let mut m = model();
        m.calibration = Some(Calibration {
            scale: 0.1,
            offset: -5.0,
        });
        let mut f = Feature::fit("行业", "industry");
        f.weight = 20.0;
        let i = m.add_feature(f);
        assert_eq!(m.features[i].id, "industry_2", "the id is made unique");
        assert_eq!(m.features[i].weight, 20.0);
        assert!(m.calibration.is_none(), "a hand edit voids the calibration");
        let total = |m: &ScoringModel| m.features.iter().map(|f| f.weight).sum::<f64>();
        assert!((total(&m) - 100.0).abs() < 1e-9, "{}", total(&m));
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        m.remove_feature(0);
        assert!((total(&m) - 100.0).abs() < 1e-9, "{}", total(&m));
        assert_eq!(m.features.len(), 3);
        // The rest keep their proportions: 20 : 50 of the old weights stay 2 : 5 or so.
        let (a, b) = (m.features[0].weight, m.features[1].weight);
        assert!((a / b - 0.4).abs() < 0.01, "{a} {b}");
        let mut empty = model();
        empty.features.clear();
        let i = empty.add_feature(Feature::behaviour("下载", "download"));
        assert_eq!(empty.features[i].weight, 100.0);
        assert!(empty.problems().is_empty(), "{:?}", empty.problems());
        assert_eq!(empty.fresh_id("Lead Source"), "lead_source");
        // A feature renamed to what it is already called keeps its id.
        let own = m.features[0].id.clone();
        assert_eq!(m.fresh_id_except(&own, Some(0)), own);
        assert_eq!(m.fresh_id(&own), format!("{own}_2"));
        assert_eq!(
            empty.fresh_id("公司 规模"),
            "feature",
            "nothing ASCII is left"
        );
    }

    #[test]
    fn a_transform_changes_kind_keeping_what_carries_over() {
        let t = Transform::Categorical {
            values: BTreeMap::new(),
            other: 0.0,
            missing: 0.3,
        };
        match t.with_kind("bins") {
            Some(Transform::Bins { bins, missing }) => {
                assert_eq!(missing, 0.3);
                assert_eq!(bins.last().map(|b| b.below), Some(None));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Transform::Cap { cap: 5.0 }.with_kind("log"),
            Some(Transform::Log { cap: 5.0 })
        );
        assert_eq!(t.with_kind("categorical"), Some(t.clone()));
        assert_eq!(t.with_kind("sigmoid"), None);
    }

    #[test]
    fn a_missing_value_reads_as_not_set_and_adds_its_missing_level() {
        let m = CompiledModel::new(model()).unwrap_or_else(|e| panic!("{e}"));
        let s = m.score(&json!({"industry": ""}), &BehaviourState::new(), NOW);
        let industry = &s.contributions[0];
        assert_eq!(industry.points, 0.0);
        assert!(
            industry.explanation.contains("未填写"),
            "{}",
            industry.explanation
        );
        assert!(industry.explanation_en.contains("not set"));
    }

    fn view(category: &str, days_ago: f64) -> EventView {
        EventView {
            kind: "page_view".into(),
            at: NOW - (days_ago * DAY_MS as f64) as i64,
            properties: json!({ "category": category }),
        }
    }

    fn compiled() -> CompiledModel {
        CompiledModel::new(model()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn explanation_sums_to_the_score() {
        let m = compiled();
        let events = [view("competitor_comparison", 0.0), view("pricing", 0.0)];
        let state = m.replay(&events);
        let attrs = json!({ "industry": "机械", "company": { "employees": 800 } });
        let s = m.score(&attrs, &state, NOW);
        let sum: f64 = s.contributions.iter().map(|c| c.points).sum();
        assert!((sum - s.score).abs() < 1e-9, "{s:#?}");
        // 30·0.5 + 20·1 + 50·(1/3)
        assert!((s.score - 51.67).abs() < 0.01, "{s:#?}");
        assert_eq!((s.tier, s.stage), (Tier::Warm, Stage::Mql));
        assert_eq!(s.contributions[0].explanation, "+15 行业 机械");
    }

    #[test]
    fn the_starter_model_is_valid() {
        let m = ScoringModel::starter();
        assert!(m.problems().is_empty(), "{:?}", m.problems());
    }

    #[test]
    fn moving_one_weight_rescales_the_others_to_100() {
        let mut m = model();
        let before: Vec<f64> = m.features.iter().map(|f| f.weight).collect();
        m.set_weight(0, 33.0);
        let after: Vec<f64> = m.features.iter().map(|f| f.weight).collect();
        assert_eq!(after[0], 33.0);
        let total: f64 = after.iter().sum();
        assert!((total - 100.0).abs() < 1e-9, "{after:?}");
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        // The others keep their proportions (to the rounding).
        let ratio = |w: &[f64]| w[1] / w[2];
        assert!(
            (ratio(&before) - ratio(&after)).abs() < 0.02,
            "{before:?} → {after:?}"
        );
        for target in [0.0, 100.0, 0.1, 99.95, 57.3] {
            m.set_weight(1, target);
            let total: f64 = m.features.iter().map(|f| f.weight).sum();
            assert!((total - 100.0).abs() < 1e-9, "{target}: {:?}", m.features);
            assert!(m.features.iter().all(|f| f.weight >= 0.0));
        }
        // From all-on-one, the others share the rest evenly.
        m.set_weight(0, 100.0);
        m.set_weight(0, 40.0);
        let w: Vec<f64> = m.features.iter().map(|f| f.weight).collect();
        assert_eq!(w, [40.0, 30.0, 30.0]);
    }

    #[test]
    fn rating_is_the_score_without_its_explanation() {
        let m = compiled();
        let attrs = [
            json!({ "industry": "机械", "company": { "employees": 800 } }),
            json!({ "industry": "零售" }),
            json!({}),
        ];
        for (i, a) in attrs.iter().enumerate() {
            let events: Vec<_> = (0..i * 3)
                .map(|d| view("competitor_comparison", d as f64))
                .collect();
            let state = m.replay(&events);
            for at in [NOW, NOW + 2 * DAY_MS, NOW + 9 * DAY_MS] {
                let s = m.score(a, &state, at);
                let r = m.rate(a, &state, at);
                assert_eq!(
                    (r.score, r.tier, r.stage, r.probability),
                    (s.score, s.tier, s.stage, s.probability),
                    "lead {a} at {at}"
                );
            }
        }
    }

    #[test]
    fn decay_halves_after_a_half_life_and_the_window_forgets() {
        let m = compiled();
        let events: Vec<_> = (0..3).map(|_| view("competitor_comparison", 3.0)).collect();
        let state = m.replay(&events);
        let s = m.score(&json!({}), &state, NOW);
        let c = &s.contributions[2];
        // 3 views 3 days ago count 1.5: half of the cap.
        assert!((c.points - 25.0).abs() < 0.01, "{c:#?}");
        assert_eq!(c.explanation, "+25 竞品对比页停留 3 次 (7 天内, 衰减 50%)");
        assert_eq!(
            c.explanation_en,
            "+25 Competitor comparison views 3× (last 7 days, decayed 50%)"
        );
        let later = m.score(&json!({}), &state, NOW + 5 * DAY_MS);
        assert_eq!(
            later.contributions[2].points, 0.0,
            "outside the 7-day window"
        );
    }

    #[test]
    fn incremental_state_matches_a_full_replay_in_any_order() {
        let m = compiled();
        let mut events: Vec<_> = (0..40)
            .map(|i| {
                view(
                    if i % 3 == 0 {
                        "pricing"
                    } else {
                        "competitor_comparison"
                    },
                    f64::from(i) * 0.37,
                )
            })
            .collect();
        events.reverse(); // oldest first, as they arrive
        let mut incremental = BehaviourState::new();
        let mut scores = Vec::new();
        for e in &events {
            m.apply(&mut incremental, e);
            scores.push(m.score(&json!({}), &incremental, e.at).score);
        }
        let mut shuffled = events.clone();
        shuffled.sort_by_key(|e| (e.at % 7, e.at));
        let full = m.replay(&shuffled);
        let a = m.score(&json!({}), &incremental, NOW);
        let b = m.score(&json!({}), &full, NOW);
        assert!((a.score - b.score).abs() < 1e-6, "{a:#?} vs {b:#?}");
        assert!(
            scores.windows(2).any(|w| w[0] != w[1]),
            "scores moved with events"
        );
    }

    #[test]
    fn problems_point_at_the_field() {
        let mut m = model();
        m.features[0].weight = 40.0;
        m.features[1].id = "industry".into();
        if let Source::Behaviour(b) = &mut m.features[2].source {
            b.filter = Some("event.properties.category ==".into());
        }
        let problems: Vec<_> = m
            .problems()
            .into_iter()
            .map(|d| (d.pointer, d.code))
            .collect();
        assert!(
            problems.contains(&("/features".into(), "weights_not_100")),
            "{problems:?}"
        );
        assert!(
            problems.contains(&("/features/1/id".into(), "duplicate_feature")),
            "{problems:?}"
        );
        assert!(
            problems.contains(&("/features/2/source/filter".into(), "invalid_expression")),
            "{problems:?}"
        );
    }

    #[test]
    fn behaviour_keys_survive_weight_changes() {
        let a = model();
        let mut b = model();
        b.features[2].weight = 10.0;
        b.features[2].transform = Transform::Log { cap: 10.0 };
        let key = |m: &ScoringModel| match &m.features[2].source {
            Source::Behaviour(x) => x.key(),
            Source::Fit { .. } => String::new(),
        };
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn schema_describes_the_document() {
        let schema = ScoringModel::json_schema();
        assert_eq!(schema["title"], "Trellis scoring model");
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
        assert!(validator.is_valid(&serde_json::to_value(model()).unwrap_or_default()));
    }

    #[test]
    fn diff_names_weight_moves_and_added_and_removed_features() {
        let a = model();
        let mut b = model();
        b.features[0].weight = 40.0;
        b.features[1].weight = 10.0;
        let removed = b.features.remove(2);
        b.features.push(Feature {
            id: "budget".into(),
            ..removed.clone()
        });
        b.tiers.hot = 75.0;
        let d = diff(&a, &b);
        let summary: Vec<_> = d
            .features
            .iter()
            .map(|c| {
                (
                    c.feature.as_str(),
                    c.change.as_str(),
                    c.weight_from,
                    c.weight_to,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("industry", "changed", Some(30.0), Some(40.0)),
                ("employees", "changed", Some(20.0), Some(10.0)),
                ("budget", "added", None, Some(50.0)),
                ("competitor_pages", "removed", Some(50.0), None),
            ]
        );
        assert!(!d.features[0].transform_changed && !d.features[0].source_changed);
        assert!(d.tiers_changed && !d.stages_changed);
        assert_eq!(diff(&a, &a), ModelDiff::default());
    }
}
