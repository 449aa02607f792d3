//! Suggested weights: fit the additive, points-based form of a [`ScoringModel`] to lead
//! history.
//!
//! Each usable column becomes a set of categories (quantile bins plus "missing" for numbers;
//! frequent values plus "other" and "missing" for text; optionally the pair of two text
//! columns). An L2-regularised logistic regression over their one-hot encoding gives a
//! coefficient per category. A feature's weight is the spread of its coefficients, scaled so
//! the weights sum to 100, and each category's level is where its coefficient sits in that
//! spread, so the model's score is an affine function of the regression's log-odds; the
//! inverse of that function is the model's calibration.
//!
//! Pairs are chosen greedily on an inner validation split of the training rows, never on the
//! held-out rows that the reported figures come from.

use std::collections::{BTreeMap, HashMap};

use argmin::core::{CostFunction, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;
use sha2::{Digest, Sha256};
use trellis_model::backtest::{Backtest, BacktestError, Scored, backtest};
use trellis_model::scoring::{
    BehaviourState, Bin, CompiledModel, Feature, ModelError, ScoringModel, Source, Stages, Tiers,
    Transform, display,
};

use crate::table::{Cells, Column, Table, TableError};

#[derive(Clone, Debug, PartialEq)]
pub struct SuggestOptions {
    /// The outcome column (1/0, yes/no, …).
    pub outcome: String,
    /// Columns not to use; `Prefix*` matches every column starting with `Prefix`. Exclude
    /// what leaks the outcome (columns filled in after the sale).
    pub exclude: Vec<String>,
    /// Identifies a lead; the held-out split hashes it, so it is stable across exports.
    pub id_column: Option<String>,
    /// Share of rows held out for the reported backtest (0 = none).
    pub holdout_percent: u32,
    /// Quantile bins per numeric column.
    pub bins: usize,
    /// Fewest training rows a bin or a value needs to get its own level.
    pub min_count: usize,
    /// L2 regularisation strength; `None` chooses one of 1, 3 and 10 by cross-validation on
    /// the training rows.
    pub alpha: Option<f64>,
    /// The model's name.
    pub name: String,
    /// Pairs of text columns to score together (`"职业 × 最近活动"`).
    pub crosses: Vec<(String, String)>,
    /// How many more pairs to choose on an inner validation split (0 = none).
    pub auto_crosses: usize,
}

impl SuggestOptions {
    pub fn new(outcome: impl Into<String>) -> SuggestOptions {
        SuggestOptions {
            outcome: outcome.into(),
            exclude: Vec::new(),
            id_column: None,
            holdout_percent: 20,
            bins: 20,
            min_count: 20,
            alpha: None,
            name: "建议评分模型".into(),
            crosses: Vec::new(),
            auto_crosses: 3,
        }
    }
}

/// A suggested model and how it did.
#[derive(Clone, Debug)]
pub struct Suggestion {
    pub model: ScoringModel,
    pub train_rows: usize,
    pub holdout_rows: usize,
    /// On the rows it was fitted to (optimistic).
    pub train: Backtest,
    /// On the held-out rows: the figure to believe.
    pub holdout: Option<Backtest>,
    /// The regularisation strength used.
    pub alpha: f64,
    /// Columns (and pairs) that became features.
    pub used: Vec<String>,
    /// Columns left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("--exclude {0:?} matches no column")]
    UnknownExclude(String),
    #[error("cross {0:?}: {1}")]
    BadCross(String, String),
    #[error("holdout percent must be between 0 and 50, not {0}")]
    BadHoldout(u32),
    #[error("alpha must be a positive number")]
    BadAlpha,
    #[error("no usable columns: every column was excluded, constant or id-like")]
    NoFeatures,
    #[error("the training rows need both outcomes, converted and not")]
    OneOutcome,
    #[error("fitting the regression failed: {0}")]
    Fit(String),
    #[error("the suggested model is invalid: {0}")]
    Model(String),
    #[error(transparent)]
    Backtest(#[from] BacktestError),
}

impl From<ModelError> for SuggestError {
    fn from(e: ModelError) -> SuggestError {
        SuggestError::Model(
            e.0.iter()
                .map(|d| format!("{}: {}", d.pointer, d.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// How one feature turns a row into a category.
#[derive(Clone, Debug)]
enum Encoder {
    /// Categories `0..=cuts.len()` are bins (`x < cuts[i]`), then missing.
    Numeric { cuts: Vec<f64> },
    /// Categories are the values, then other, then missing.
    Text { values: Vec<String> },
}

impl Encoder {
    fn categories(&self) -> usize {
        match self {
            Encoder::Numeric { cuts } => cuts.len() + 2,
            Encoder::Text { values } => values.len() + 2,
        }
    }
}

/// A candidate feature: a column or a pair of columns, encoded.
#[derive(Clone, Debug)]
struct Candidate {
    name: String,
    attribute: String,
    cross: Option<String>,
    encoder: Encoder,
    /// Category per row of the table.
    codes: Vec<usize>,
}

/// What a suggestion is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Choosing the regularisation strength by cross-validation.
    Regularisation,
    /// Choosing pairs of columns by cross-validation.
    Pairs,
    /// Fitting the final model.
    Fit,
    /// Backtesting it on the training and held-out leads.
    Backtest,
}

/// How far a suggestion is: `done` of `total` regression fits (the costly part), and the
/// step it is in. `total` is known from the start; a pair search that stops early jumps
/// `done` ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub step: Step,
    pub done: u32,
    pub total: u32,
}

/// Counts fits and reports each one.
struct Tracker<'a> {
    done: u32,
    total: u32,
    report: &'a mut dyn FnMut(Progress),
}

impl Tracker<'_> {
    fn tick(&mut self, step: Step) {
        self.done = (self.done + 1).min(self.total);
        (self.report)(Progress {
            step,
            done: self.done,
            total: self.total,
        });
    }

    fn skip_to(&mut self, done: u32) {
        self.done = self.done.max(done.min(self.total));
    }
}

fn cell_text(column: &Column, row: usize) -> Option<String> {
    column.value(row).map(|v| display(&v))
}

fn bucket(id: &str, salt: &str) -> u64 {
    let digest = Sha256::digest(format!("{salt}{id}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b) % 100
}

fn excluded(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    })
}

fn numeric_candidate(c: &Column, train: &[usize], opts: &SuggestOptions) -> Option<Candidate> {
    let Cells::Number(values) = &c.cells else {
        return None;
    };
    let mut present: Vec<f64> = train.iter().filter_map(|&r| values[r]).collect();
    if present.is_empty() {
        return None;
    }
    present.sort_by(f64::total_cmp);
    let m = present.len();
    let mut cuts: Vec<f64> = Vec::new();
    for i in 1..opts.bins.max(1) {
        let q = present[i * m / opts.bins];
        if q > present[0] && cuts.last().is_none_or(|&l| q > l) {
            cuts.push(q);
        }
    }
    // Merge bins too small to estimate: drop the cut that joins the smallest bin to its
    // smaller neighbour, until every bin is big enough.
    loop {
        let mut counts = vec![0usize; cuts.len() + 1];
        for &x in &present {
            counts[cuts.partition_point(|&c| c <= x)] += 1;
        }
        let Some((smallest, &n)) = counts.iter().enumerate().min_by_key(|(_, n)| **n) else {
            break;
        };
        if n >= opts.min_count || cuts.is_empty() {
            break;
        }
        let cut = if smallest == 0 {
            0
        } else if smallest == counts.len() - 1 || counts[smallest - 1] <= counts[smallest + 1] {
            smallest - 1
        } else {
            smallest
        };
        cuts.remove(cut);
    }
    let codes = values
        .iter()
        .map(|v| match v {
            Some(x) => cuts.partition_point(|&c| c <= *x),
            None => cuts.len() + 1,
        })
        .collect();
    Some(Candidate {
        name: c.name.clone(),
        attribute: c.attribute.clone(),
        cross: None,
        encoder: Encoder::Numeric { cuts },
        codes,
    })
}

fn text_candidate(
    name: String,
    attribute: String,
    cross: Option<String>,
    texts: &[Option<String>],
    train: &[usize],
    opts: &SuggestOptions,
) -> Candidate {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for &r in train {
        if let Some(t) = &texts[r] {
            *counts.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut frequent: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, n)| *n >= opts.min_count)
        .collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    frequent.truncate(60);
    let values: Vec<String> = frequent.iter().map(|(v, _)| (*v).to_string()).collect();
    let index: HashMap<&str, usize> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i))
        .collect();
    let codes = texts
        .iter()
        .map(|t| match t {
            Some(t) => index.get(t.as_str()).copied().unwrap_or(values.len()),
            None => values.len() + 1,
        })
        .collect();
    Candidate {
        name,
        attribute,
        cross,
        encoder: Encoder::Text { values },
        codes,
    }
}

fn cross_candidate(
    table: &Table,
    a: &str,
    b: &str,
    train: &[usize],
    opts: &SuggestOptions,
) -> Result<Candidate, SuggestError> {
    let name = format!("{a} × {b}");
    let ca = table
        .column(a)
        .map_err(|e| SuggestError::BadCross(name.clone(), e.to_string()))?;
    let cb = table
        .column(b)
        .map_err(|e| SuggestError::BadCross(name.clone(), e.to_string()))?;
    let texts: Vec<Option<String>> = (0..table.rows)
        .map(|r| match (cell_text(ca, r), cell_text(cb, r)) {
            (Some(x), Some(y)) => Some(format!("{x} × {y}")),
            _ => None,
        })
        .collect();
    Ok(text_candidate(
        name,
        ca.attribute.clone(),
        Some(cb.attribute.clone()),
        &texts,
        train,
        opts,
    ))
}

/// A fitted regression: a coefficient per category of each candidate, and the intercept,
/// oriented so that higher means more likely to convert.
struct Fit {
    coefficients: Vec<Vec<f64>>,
    intercept: f64,
}

impl Fit {
    fn log_odds(&self, features: &[&Candidate], row: usize) -> f64 {
        self.intercept
            + features
                .iter()
                .zip(&self.coefficients)
                .map(|(f, c)| c[f.codes[row]])
                .sum::<f64>()
    }
}

/// The L2-penalised logistic regression over the one-hot encoding of `features`: the
/// negative log-likelihood of `rows` plus `alpha / 2 · ‖w‖²` (the intercept is not
/// penalised), the objective `linfa-logistic` minimises. Each row has exactly one active
/// category per feature, so the design is kept as those indices: a cost or gradient costs
/// rows × features, not rows × categories as a dense matrix would (30 times less on a CRM
/// export), and argmin's L-BFGS minimises it.
struct OneHot<'a> {
    /// `per_row` active columns per row, row after row.
    active: &'a [u32],
    per_row: usize,
    /// +1 converted, −1 not.
    y: &'a [f64],
    alpha: f64,
    /// Columns; the intercept is parameter `width`.
    width: usize,
}

/// `ln(1 + e^t)` without overflow.
fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

impl OneHot<'_> {
    /// Every row's log-odds under `w` (contiguous: the solver's own vectors).
    fn log_odds(&self, w: &[f64]) -> Vec<f64> {
        let b = w[self.width];
        self.active
            .chunks_exact(self.per_row.max(1))
            .map(|cols| b + cols.iter().map(|&j| w[j as usize]).sum::<f64>())
            .collect()
    }
}

/// The parameters as a slice: argmin's vectors are ours, made contiguous by `Array1::zeros`
/// and kept so by its arithmetic.
fn params(w: &Array1<f64>) -> std::borrow::Cow<'_, [f64]> {
    match w.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(w.to_vec()),
    }
}

impl CostFunction for OneHot<'_> {
    type Param = Array1<f64>;
    type Output = f64;

    fn cost(&self, w: &Array1<f64>) -> Result<f64, argmin::core::Error> {
        let w = params(w);
        let z = self.log_odds(&w);
        let loss: f64 = z.iter().zip(self.y).map(|(z, y)| softplus(-y * z)).sum();
        let penalty = 0.5 * self.alpha * w[..self.width].iter().map(|x| x * x).sum::<f64>();
        Ok(loss + penalty)
    }
}

impl Gradient for OneHot<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;

    fn gradient(&self, w: &Array1<f64>) -> Result<Array1<f64>, argmin::core::Error> {
        let w = params(w);
        let z = self.log_odds(&w);
        let mut g = vec![0.0; self.width + 1];
        let mut intercept = 0.0;
        for ((cols, z), y) in self
            .active
            .chunks_exact(self.per_row.max(1))
            .zip(&z)
            .zip(self.y)
        {
            // d/dz of ln(1 + e^(−y·z)) is −y·σ(−y·z).
            let d = -y / (1.0 + (y * z).exp());
            for &j in cols {
                g[j as usize] += d;
            }
            intercept += d;
        }
        for (g, w) in g.iter_mut().zip(w.iter()).take(self.width) {
            *g += self.alpha * w;
        }
        g[self.width] = intercept;
        Ok(Array1::from(g))
    }
}

fn fit(
    features: &[&Candidate],
    rows: &[usize],
    outcome: &[bool],
    alpha: f64,
) -> Result<Fit, SuggestError> {
    let offsets: Vec<usize> = features
        .iter()
        .scan(0, |acc, f| {
            let o = *acc;
            *acc += f.encoder.categories();
            Some(o)
        })
        .collect();
    let width: usize = features.iter().map(|f| f.encoder.categories()).sum();
    let active: Vec<u32> = rows
        .iter()
        .flat_map(|&r| {
            features
                .iter()
                .zip(&offsets)
                .map(move |(f, o)| (o + f.codes[r]) as u32)
        })
        .collect();
    let y: Vec<f64> = rows
        .iter()
        .map(|&r| if outcome[r] { 1.0 } else { -1.0 })
        .collect();
    if y.iter().all(|&v| v > 0.0) || y.iter().all(|&v| v < 0.0) {
        return Err(SuggestError::OneOutcome);
    }
    let problem = OneHot {
        active: &active,
        per_row: features.len(),
        y: &y,
        alpha,
        width,
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(1e-4)
        .map_err(|e| SuggestError::Fit(e.to_string()))?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(Array1::zeros(width + 1)).max_iters(400))
        .run()
        .map_err(|e| SuggestError::Fit(e.to_string()))?;
    let params = result
        .state
        .best_param
        .unwrap_or_else(|| Array1::zeros(width + 1));
    Ok(Fit {
        coefficients: features
            .iter()
            .zip(&offsets)
            .map(|(f, o)| (0..f.encoder.categories()).map(|k| params[o + k]).collect())
            .collect(),
        intercept: params[width],
    })
}

fn slug(name: &str, taken: &mut Vec<String>, index: usize) -> String {
    let mut s = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            s.push(ch.to_ascii_lowercase());
        } else if !s.ends_with('_') && !s.is_empty() {
            s.push('_');
        }
    }
    let mut s = s.trim_end_matches('_').to_string();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s = format!("f{index}_{s}").trim_end_matches('_').to_string();
    }
    let mut unique = s.clone();
    let mut n = 2;
    while taken.contains(&unique) {
        unique = format!("{s}_{n}");
        n += 1;
    }
    taken.push(unique.clone());
    unique
}

fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Turns a fit into a model document: weights from coefficient spreads, levels from where
/// each category sits in its feature's spread.
fn to_model(
    features: &[&Candidate],
    fit: &Fit,
    train: &[usize],
    opts: &SuggestOptions,
) -> (ScoringModel, Vec<String>) {
    struct Spread {
        levels: Vec<f64>,
        range: f64,
    }
    let mut spreads = Vec::with_capacity(features.len());
    let mut offset = fit.intercept;
    for (f, coef) in features.iter().zip(&fit.coefficients) {
        let mut counts = vec![0usize; coef.len()];
        for &r in train {
            counts[f.codes[r]] += 1;
        }
        let seen = || {
            coef.iter()
                .zip(&counts)
                .filter(|(_, n)| **n > 0)
                .map(|(b, _)| *b)
        };
        let min = seen().fold(f64::INFINITY, f64::min);
        let max = seen().fold(f64::NEG_INFINITY, f64::max);
        offset += min;
        let range = max - min;
        let mut levels: Vec<f64> = coef
            .iter()
            .map(|b| if range > 0.0 { (b - min) / range } else { 0.0 })
            .collect();
        // A category no training row had (a value absent from this split): the feature's
        // average level, not an artefact of regularisation.
        let total: usize = counts.iter().sum();
        let mean = levels
            .iter()
            .zip(&counts)
            .map(|(l, n)| l * *n as f64)
            .sum::<f64>()
            / total.max(1) as f64;
        for (l, n) in levels.iter_mut().zip(&counts) {
            if *n == 0 {
                *l = mean;
            }
        }
        spreads.push(Spread { levels, range });
    }
    let total_range: f64 = spreads.iter().map(|s| s.range).sum();
    let mut order: Vec<usize> = (0..features.len())
        .filter(|&i| spreads[i].range > 1e-6 * total_range.max(1e-12))
        .collect();
    order.sort_by(|&a, &b| spreads[b].range.total_cmp(&spreads[a].range));
    let kept_range: f64 = order.iter().map(|&i| spreads[i].range).sum();
    let mut taken = Vec::new();
    let mut out = Vec::with_capacity(order.len());
    let mut used = Vec::with_capacity(order.len());
    for (n, &i) in order.iter().enumerate() {
        let f = features[i];
        let s = &spreads[i];
        let level = |k: usize| round_to(s.levels[k], 4);
        let transform = match &f.encoder {
            Encoder::Numeric { cuts } => Transform::Bins {
                bins: cuts
                    .iter()
                    .enumerate()
                    .map(|(k, c)| Bin {
                        below: Some(*c),
                        level: level(k),
                    })
                    .chain(std::iter::once(Bin {
                        below: None,
                        level: level(cuts.len()),
                    }))
                    .collect(),
                missing: level(cuts.len() + 1),
            },
            Encoder::Text { values } => Transform::Categorical {
                values: values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (v.clone(), level(k)))
                    .collect::<BTreeMap<_, _>>(),
                other: level(values.len()),
                missing: level(values.len() + 1),
            },
        };
        used.push(f.name.clone());
        out.push(Feature {
            id: slug(&f.name, &mut taken, n + 1),
            label: f.name.clone(),
            label_en: None,
            weight: round_to(100.0 * s.range / kept_range, 2),
            source: Source::Fit {
                attribute: f.attribute.clone(),
                cross: f.cross.clone(),
            },
            transform,
        });
    }
    // The heaviest feature absorbs the rounding, so the weights sum to exactly 100.
    let rest: f64 = out.iter().skip(1).map(|f| f.weight).sum();
    if let Some(first) = out.first_mut() {
        first.weight = round_to(100.0 - rest, 2);
    }
    let model = ScoringModel {
        schema: 1,
        name: opts.name.clone(),
        features: out,
        tiers: Tiers {
            warm: 0.0,
            hot: 0.0,
        },
        stages: Stages { mql: 0.0, sql: 0.0 },
        calibration: Some(trellis_model::scoring::Calibration {
            scale: round_to(kept_range / 100.0, 6),
            offset: round_to(offset, 6),
        }),
    };
    (model, used)
}

/// Scores `rows` of `table` with `model`, paired with their outcomes.
pub fn score_rows(
    table: &Table,
    model: &CompiledModel,
    rows: impl IntoIterator<Item = usize>,
    outcome: &[bool],
) -> Vec<Scored> {
    let state = BehaviourState::new();
    rows.into_iter()
        .map(|r| {
            let s = model.score(&table.attributes(r), &state, 0);
            Scored {
                score: s.score,
                probability: s.probability,
                converted: outcome[r],
            }
        })
        .collect()
}

/// Backtests `model` against every row of `table`.
pub fn backtest_table(
    table: &Table,
    model: &CompiledModel,
    outcome_column: &str,
) -> Result<Backtest, SuggestError> {
    let outcome = table.outcome(outcome_column)?;
    Ok(backtest(&score_rows(
        table,
        model,
        0..table.rows,
        &outcome,
    ))?)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Fits a model to `table`'s history. See the module documentation.
pub fn suggest(table: &Table, opts: &SuggestOptions) -> Result<Suggestion, SuggestError> {
    suggest_with_progress(table, opts, &mut |_| {})
}

/// [`suggest`], reporting its progress after every regression fit.
pub fn suggest_with_progress(
    table: &Table,
    opts: &SuggestOptions,
    report: &mut dyn FnMut(Progress),
) -> Result<Suggestion, SuggestError> {
    if opts.holdout_percent > 50 {
        return Err(SuggestError::BadHoldout(opts.holdout_percent));
    }
    if let Some(a) = opts.alpha
        && (a.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !a.is_finite())
    {
        return Err(SuggestError::BadAlpha);
    }
    for p in &opts.exclude {
        if !table
            .columns
            .iter()
            .any(|c| excluded(&c.name, std::slice::from_ref(p)))
        {
            return Err(SuggestError::UnknownExclude(p.clone()));
        }
    }
    let outcome = table.outcome(&opts.outcome)?;
    let ids: Vec<String> = match &opts.id_column {
        Some(id) => {
            let c = table.column(id)?;
            (0..table.rows)
                .map(|r| c.text(r).unwrap_or_else(|| format!("row {r}")))
                .collect()
        }
        None => (0..table.rows).map(|r| format!("row {r}")).collect(),
    };
    let (mut train, mut holdout) = (Vec::new(), Vec::new());
    for (r, id) in ids.iter().enumerate() {
        if bucket(id, "holdout:") < u64::from(opts.holdout_percent) {
            holdout.push(r);
        } else {
            train.push(r);
        }
    }

    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for c in &table.columns {
        if c.name == opts.outcome || opts.id_column.as_deref() == Some(c.name.as_str()) {
            continue;
        }
        if excluded(&c.name, &opts.exclude) {
            skipped.push((c.name.clone(), "excluded".to_string()));
            continue;
        }
        let candidate = match &c.cells {
            Cells::Number(_) => numeric_candidate(c, &train, opts),
            Cells::Text(texts) => {
                let distinct: std::collections::HashSet<&String> =
                    train.iter().filter_map(|&r| texts[r].as_ref()).collect();
                if distinct.len() > 100 && distinct.len() * 2 > train.len() {
                    skipped.push((c.name.clone(), "looks like an id".to_string()));
                    continue;
                }
                Some(text_candidate(
                    c.name.clone(),
                    c.attribute.clone(),
                    None,
                    texts,
                    &train,
                    opts,
                ))
            }
        };
        match candidate {
            Some(cand) if cand.encoder.categories() > 2 || has_missing_and_value(&cand, &train) => {
                candidates.push(cand);
            }
            _ => skipped.push((c.name.clone(), "no variation".to_string())),
        }
    }
    for (a, b) in &opts.crosses {
        candidates.push(cross_candidate(table, a, b, &train, opts)?);
    }
    if candidates.is_empty() {
        return Err(SuggestError::NoFeatures);
    }

    let folds = folds(&train);
    let alpha_fits = if opts.alpha.is_none() {
        ALPHAS.len() as u32 * FOLDS as u32
    } else {
        0
    };
    let pair_fits = opts.auto_crosses as u32 * FOLDS as u32;
    let mut tracker = Tracker {
        done: 0,
        // The final fit and the backtest count one each.
        total: alpha_fits + pair_fits + 2,
        report,
    };
    let alpha = match opts.alpha {
        Some(a) => a,
        None => choose_alpha(&candidates, &folds, table.rows, &outcome, &mut tracker)?,
    };
    if opts.auto_crosses > 0 {
        choose_crosses(
            table,
            &mut candidates,
            &train,
            &folds,
            &outcome,
            alpha,
            opts,
            &mut tracker,
        )?;
    }
    tracker.skip_to(alpha_fits + pair_fits);

    let features: Vec<&Candidate> = candidates.iter().collect();
    let fitted = fit(&features, &train, &outcome, alpha)?;
    tracker.tick(Step::Fit);
    let (mut model, used) = to_model(&features, &fitted, &train, opts);

    // Tiers and stages at the training scores' median and 80th percentile.
    let compiled = CompiledModel::new(model.clone())?;
    let train_scores = score_rows(table, &compiled, train.iter().copied(), &outcome);
    let mut sorted: Vec<f64> = train_scores.iter().map(|s| s.score).collect();
    sorted.sort_by(f64::total_cmp);
    let warm = quantile(&sorted, 0.5).round();
    let hot = quantile(&sorted, 0.8).round().max(warm);
    model.tiers = Tiers { warm, hot };
    model.stages = Stages {
        mql: warm,
        sql: hot,
    };
    let compiled = CompiledModel::new(model.clone())?;
    let train_bt = backtest(&score_rows(
        table,
        &compiled,
        train.iter().copied(),
        &outcome,
    ))?;
    let holdout_bt = if holdout.is_empty() {
        None
    } else {
        Some(backtest(&score_rows(
            table,
            &compiled,
            holdout.iter().copied(),
            &outcome,
        ))?)
    };
    tracker.tick(Step::Backtest);
    Ok(Suggestion {
        model,
        train_rows: train.len(),
        holdout_rows: holdout.len(),
        train: train_bt,
        holdout: holdout_bt,
        alpha,
        used,
        skipped,
    })
}

/// A feature whose only split is "missing or not" still carries signal.
fn has_missing_and_value(c: &Candidate, train: &[usize]) -> bool {
    let n = c.encoder.categories();
    let missing = train.iter().filter(|&&r| c.codes[r] == n - 1).count();
    missing > 0 && missing < train.len()
}

/// Folds of the training rows used to choose pairs.
const FOLDS: u64 = 4;

/// The L2-penalised coefficient of each category of `codes` given every row's log-odds so
/// far (`offset`): categories are disjoint, so each is a one-dimensional Newton solve.
fn fit_block(
    codes: &[usize],
    categories: usize,
    offset: &[f64],
    rows: &[usize],
    outcome: &[bool],
    alpha: f64,
) -> Vec<f64> {
    let mut beta = vec![0.0; categories];
    for _ in 0..25 {
        let mut grad: Vec<f64> = beta.iter().map(|b| alpha * b).collect();
        let mut hess = vec![alpha; categories];
        for &r in rows {
            let c = codes[r];
            let p = 1.0 / (1.0 + (-(offset[r] + beta[c])).exp());
            grad[c] += p - f64::from(u8::from(outcome[r]));
            hess[c] += p * (1.0 - p);
        }
        let mut step = 0.0f64;
        for ((b, g), h) in beta.iter_mut().zip(&grad).zip(&hess) {
            let d = g / h;
            *b -= d;
            step = step.max(d.abs());
        }
        if step < 1e-6 {
            break;
        }
    }
    beta
}

fn auc_rows(score: impl Fn(usize) -> f64, rows: &[usize], outcome: &[bool]) -> f64 {
    let scored: Vec<Scored> = rows
        .iter()
        .map(|&r| Scored {
            score: score(r),
            probability: None,
            converted: outcome[r],
        })
        .collect();
    backtest(&scored).map_or(0.5, |b| b.auc)
}

/// The training rows split into folds: `(rows to fit, rows to validate)` each.
fn folds(train: &[usize]) -> Vec<(Vec<usize>, Vec<usize>)> {
    let fold_of: HashMap<usize, u64> = train
        .iter()
        .map(|&r| (r, bucket(&r.to_string(), "fold:") % FOLDS))
        .collect();
    (0..FOLDS)
        .map(|k| train.iter().partition(|r| fold_of[r] != k))
        .collect()
}

/// `f` on every fold, each in a thread of its own: the folds' fits are independent, and
/// a suggestion is what a user waits for.
fn per_fold<T: Send>(
    folds: &[(Vec<usize>, Vec<usize>)],
    f: impl Fn(&(Vec<usize>, Vec<usize>)) -> Result<T, SuggestError> + Sync,
) -> Vec<Result<T, SuggestError>> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = folds
            .iter()
            .map(|fold| scope.spawn(move || f(fold)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The regularisation strengths tried.
const ALPHAS: [f64; 3] = [1.0, 3.0, 10.0];

/// The regularisation strength with the best mean validation AUC over the folds.
fn choose_alpha(
    candidates: &[Candidate],
    folds: &[(Vec<usize>, Vec<usize>)],
    rows: usize,
    outcome: &[bool],
    tracker: &mut Tracker<'_>,
) -> Result<f64, SuggestError> {
    let features: Vec<&Candidate> = candidates.iter().collect();
    let mut best = (f64::NEG_INFINITY, 1.0);
    for alpha in ALPHAS {
        let mut auc = 0.0;
        for fold_auc in per_fold(folds, |(fit_rows, valid)| {
            let f = fit(&features, fit_rows, outcome, alpha)?;
            let eta: Vec<f64> = (0..rows).map(|r| f.log_odds(&features, r)).collect();
            Ok(auc_rows(|r| eta[r], valid, outcome))
        }) {
            auc += fold_auc? / folds.len() as f64;
            tracker.tick(Step::Regularisation);
        }
        if auc > best.0 {
            best = (auc, alpha);
        }
    }
    Ok(best.1)
}

/// Greedy forward selection of pairs of text columns by cross-validation on the training
/// rows (never the held-out ones). Each round refits the model on each fold's other rows,
/// then scores every candidate pair by adding only its block of coefficients on top of
/// that fit (a cheap, exact-per-category solve) and measuring the fold's AUC; the pair that
/// raises the mean AUC most is added, if it raises it by at least 0.0005.
#[expect(
    clippy::too_many_arguments,
    reason = "the cross-validation inputs are read-only and always passed together from `suggest`"
)]
fn choose_crosses(
    table: &Table,
    candidates: &mut Vec<Candidate>,
    train: &[usize],
    folds: &[(Vec<usize>, Vec<usize>)],
    outcome: &[bool],
    alpha: f64,
    opts: &SuggestOptions,
    tracker: &mut Tracker<'_>,
) -> Result<(), SuggestError> {
    let text: Vec<String> = candidates
        .iter()
        .filter(|c| c.cross.is_none() && matches!(c.encoder, Encoder::Text { .. }))
        .map(|c| c.name.clone())
        .collect();
    let mut pairs: Vec<Candidate> = Vec::new();
    for (i, a) in text.iter().enumerate() {
        for b in &text[i + 1..] {
            let cand = cross_candidate(table, a, b, train, opts)?;
            if cand.encoder.categories() > 3 {
                pairs.push(cand);
            }
        }
    }
    for _ in 0..opts.auto_crosses {
        let features: Vec<&Candidate> = candidates.iter().collect();
        let mut offsets = Vec::with_capacity(folds.len());
        let mut base = 0.0;
        for fold in per_fold(folds, |(fit_rows, valid)| {
            let f = fit(&features, fit_rows, outcome, alpha)?;
            let eta: Vec<f64> = (0..table.rows).map(|r| f.log_odds(&features, r)).collect();
            Ok((auc_rows(|r| eta[r], valid, outcome), eta))
        }) {
            let (auc, eta) = fold?;
            tracker.tick(Step::Pairs);
            base += auc / folds.len() as f64;
            offsets.push(eta);
        }
        let mut best: Option<(f64, usize)> = None;
        for (i, pair) in pairs.iter().enumerate() {
            let mut auc = 0.0;
            for ((fit_rows, valid), eta) in folds.iter().zip(&offsets) {
                let beta = fit_block(
                    &pair.codes,
                    pair.encoder.categories(),
                    eta,
                    fit_rows,
                    outcome,
                    alpha,
                );
                auc +=
                    auc_rows(|r| eta[r] + beta[pair.codes[r]], valid, outcome) / folds.len() as f64;
            }
            if best.is_none_or(|(b, _)| auc > b) {
                best = Some((auc, i));
            }
        }
        match best {
            Some((auc, i)) if auc >= base + 0.0005 => candidates.push(pairs.remove(i)),
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Mapping;

    /// 1,500 synthetic leads: conversion depends on visits, on the source, and on an
    /// interaction of role and channel; `after_sale` leaks the outcome.
    fn history() -> Table {
        let mut csv = String::from("id,visits,source,role,channel,after_sale,converted\n");
        for i in 0..1500u32 {
            let h = |salt: u32| {
                // splitmix64: independent draws per (lead, salt).
                let mut z =
                    (u64::from(i) << 8 | u64::from(salt)).wrapping_add(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                u32::try_from((z ^ (z >> 31)) % 1000).unwrap_or(0)
            };
            let visits = h(1) % 12;
            let source = ["展会", "官网", "广告", "转介绍"][(h(2) % 4) as usize];
            let role = ["工程师", "采购", "总经理"][(h(3) % 3) as usize];
            let channel = ["电话", "微信"][(h(4) % 2) as usize];
            let mut p = 0.02 + 0.03 * f64::from(visits);
            if source == "转介绍" {
                p += 0.3;
            }
            if (role == "总经理") == (channel == "微信") {
                p += 0.4;
            }
            let converted = f64::from(h(5)) / 1000.0 < p.min(0.95);
            let missing_visits = h(6) % 10 == 0;
            csv.push_str(&format!(
                "L{i},{},{source},{role},{channel},{},{}\n",
                if missing_visits {
                    String::new()
                } else {
                    visits.to_string()
                },
                if converted { "签约" } else { "Select" },
                u8::from(converted)
            ));
        }
        Table::read(csv.as_bytes(), &Mapping::default()).expect("table")
    }

    fn options() -> SuggestOptions {
        SuggestOptions {
            exclude: vec!["after_*".into()],
            id_column: Some("id".into()),
            holdout_percent: 25,
            min_count: 10,
            ..SuggestOptions::new("converted")
        }
    }

    #[test]
    fn suggests_a_valid_model_whose_score_tracks_the_log_odds() {
        let table = history();
        let s = suggest(&table, &options()).expect("suggestion");
        assert!(s.model.problems().is_empty(), "{:?}", s.model.problems());
        let total: f64 = s.model.features.iter().map(|f| f.weight).sum();
        assert!((total - 100.0).abs() < 1e-9, "weights sum to {total}");
        assert!(!s.used.iter().any(|u| u.starts_with("after_")));
        assert!(
            s.skipped
                .contains(&("after_sale".into(), "excluded".into()))
        );
        assert_eq!(s.train_rows + s.holdout_rows, 1500);
        let holdout = s.holdout.as_ref().expect("holdout");
        assert!(holdout.auc > 0.7, "held-out AUC {}", holdout.auc);
        // The interaction is found on the inner split.
        assert!(
            s.used
                .iter()
                .any(|u| u == "role × channel" || u == "channel × role"),
            "used {:?}",
            s.used
        );
        // The heavier the visits, the higher the level.
        let visits = s
            .model
            .features
            .iter()
            .find(|f| f.id == "visits")
            .expect("visits");
        let Transform::Bins { bins, .. } = &visits.transform else {
            panic!("visits should be binned: {:?}", visits.transform);
        };
        assert!(bins.first().expect("bin").level < bins.last().expect("bin").level);
        // Calibrated probabilities rise with the score.
        let compiled = CompiledModel::new(s.model.clone()).expect("compiles");
        let lo = compiled.score(
            &serde_json::json!({"visits": 0, "source": "广告"}),
            &BehaviourState::new(),
            0,
        );
        let hi = compiled.score(
            &serde_json::json!({"visits": 11, "source": "转介绍"}),
            &BehaviourState::new(),
            0,
        );
        assert!(lo.score < hi.score);
        assert!(lo.probability.expect("p") < hi.probability.expect("p"));
    }

    #[test]
    fn progress_counts_every_fit_and_ends_at_the_total() {
        let table = history();
        let mut seen = Vec::new();
        let s = suggest_with_progress(&table, &options(), &mut |p| seen.push(p));
        assert!(s.is_ok());
        let last = seen.last().copied().expect("progress was reported");
        assert_eq!(last.step, Step::Backtest);
        assert_eq!(last.done, last.total);
        assert!(
            seen.windows(2)
                .all(|w| w[0].done <= w[1].done && w[0].total == w[1].total),
            "{seen:?}"
        );
        assert_eq!(seen[0].step, Step::Regularisation);
        assert!(seen.iter().any(|p| p.step == Step::Fit));
    }

    #[test]
    fn the_split_is_stable_and_backtests_agree() {
        let table = history();
        let a = suggest(&table, &options()).expect("a");
        let b = suggest(&table, &options()).expect("b");
        assert_eq!(a.model, b.model);
        let compiled = CompiledModel::new(a.model).expect("compiles");
        let all = backtest_table(&table, &compiled, "converted").expect("backtest");
        assert_eq!(all.leads, 1500);
        assert!(all.auc > 0.7);
    }

    #[test]
    fn bad_options_are_named() {
        let table = history();
        let e = |o: SuggestOptions| suggest(&table, &o).expect_err("bad").to_string();
        assert_eq!(
            e(SuggestOptions {
                exclude: vec!["Tags".into()],
                ..options()
            }),
            "--exclude \"Tags\" matches no column"
        );
        assert_eq!(
            e(SuggestOptions {
                holdout_percent: 80,
                ..options()
            }),
            "holdout percent must be between 0 and 50, not 80"
        );
        assert!(
            e(SuggestOptions {
                crosses: vec![("role".into(), "nope".into())],
                ..options()
            })
            .starts_with("cross \"role × nope\": no column \"nope\"")
        );
        assert!(e(SuggestOptions::new("nope")).starts_with("no column \"nope\""));
    }
}
