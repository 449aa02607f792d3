//! The learned half of the detector: a linear model over character n-grams (Chinese),
//! words (Latin script) and what the lexicon found, with one logistic head per category
//! and a three-way (positive, negative, neutral) head for the polarity of budget and
//! timeline. Trained by [`fit`] from the corpus (`trellis signals train`), shipped as
//! data (`model/signals/model.json`), read by [`Model::read`]; pure Rust, so the studio
//! runs it too.
//!
//! Features are present or not. Chinese needs no segmentation: every character n-gram (up
//! to [`Shape::order`]) of a run of non-Latin characters is a feature (`批下`, `还没`, `吗？`);
//! Latin words are features with their bigrams and a five-letter prefix (`approv*`); the
//! lexicon contributes one feature per category it found and one per category and
//! polarity. With [`Shape::normalised`], each present feature weighs less the more a text
//! has.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::{Category, LabelledText, Polarity, Signal};

/// The categories whose signals have a polarity.
pub const POLAR: [Category; 2] = [Category::Budget, Category::Timeline];
const POLARITIES: [Polarity; 3] = [Polarity::Positive, Polarity::Negative, Polarity::Neutral];
/// Six category heads, then three polarity heads for each of [`POLAR`].
const HEADS: usize = 6 + 3 * POLAR.len();
/// Weights are stored as integers of this many units per 1.0.
const SCALE: f64 = 1000.0;

const WORD: char = '\u{1}';
const LEXICON: char = '\u{2}';

pub(crate) fn head_of(c: Category) -> usize {
    Category::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

fn polar_index(c: Category) -> Option<usize> {
    POLAR.iter().position(|&x| x == c)
}

/// The text as the model reads it, one char per input char (so positions carry over):
/// ASCII lower-cased, full-width forms folded to ASCII, digits all `0`.
pub(crate) fn normalise(text: &str) -> Vec<char> {
    text.chars()
        .map(|c| {
            let c = match c {
                '\u{3000}' => ' ',
                '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
                _ => c,
            };
            if c.is_ascii_digit() {
                '0'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn is_latin(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '\''
}

/// Calls `f` with every feature of a text (repeats included) and the char span it covers
/// (none for the lexicon's).
/// How a text is cut into features, and how much each weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Longest character n-gram read from Chinese text (1–4).
    pub order: usize,
    /// Whether a text's features weigh √(16 / how many it has) each rather than 1, so a
    /// long text does not pile up evidence that a short one would not (a text of 16
    /// features reads as before). Models trained before this was an option do not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub normalised: bool,
}

impl Shape {
    /// What each of `features` features weighs in a text that has that many.
    pub fn scale(&self, features: usize) -> f64 {
        if self.normalised {
            (16.0 / features.max(1) as f64).sqrt()
        } else {
            1.0
        }
    }
}

fn each_feature(
    chars: &[char],
    lexicon: &[Signal],
    shape: Shape,
    mut f: impl FnMut(&str, Option<(usize, usize)>),
) {
    let mut buf = String::new();
    let mut i = 0;
    let mut previous_word: Option<(usize, usize)> = None;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let latin = is_latin(c);
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && is_latin(chars[i]) == latin {
            i += 1;
        }
        if latin {
            let word = &chars[start..i];
            buf.clear();
            buf.push(WORD);
            buf.extend(word);
            f(&buf, Some((start, i)));
            if word.len() > 6 {
                buf.clear();
                buf.push(WORD);
                buf.extend(&word[..5]);
                buf.push('*');
                f(&buf, Some((start, i)));
            }
            if let Some((ps, pe)) = previous_word {
                buf.clear();
                buf.push(WORD);
                buf.extend(&chars[ps..pe]);
                buf.push(' ');
                buf.extend(word);
                f(&buf, Some((ps, i)));
            }
            previous_word = Some((start, i));
        } else {
            previous_word = None;
            for a in start..i {
                for n in 1..=shape.order.min(4) {
                    if a + n > i {
                        break;
                    }
                    buf.clear();
                    buf.extend(&chars[a..a + n]);
                    f(&buf, Some((a, a + n)));
                }
            }
        }
    }
    for s in lexicon {
        buf.clear();
        buf.push(LEXICON);
        buf.push_str(s.category.as_str());
        f(&buf, None);
        buf.push(':');
        buf.push_str(s.polarity.as_str());
        f(&buf, None);
    }
}

/// How a feature reads to a person: the n-gram or word itself, or `lexicon:budget:positive`
/// for what the lexicon found (the studio says 词库).
pub fn describe_feature(feature: &str) -> String {
    if let Some(rest) = feature.strip_prefix(LEXICON) {
        format!("lexicon:{rest}")
    } else if let Some(rest) = feature.strip_prefix(WORD) {
        rest.to_string()
    } else {
        feature.to_string()
    }
}

/// The stored form of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    /// Format version.
    version: u32,
    /// Labelled texts it was trained on.
    trained_on: usize,
    /// Per category (in [`Category::ALL`] order), the probability at which it counts as
    /// found.
    thresholds: [f64; 6],
    /// Below this probability the model overrules the lexicon: a category the lexicon
    /// found is dropped.
    veto: f64,
    shape: Shape,
    /// Term phrases of the lexicon it was trained with: a workspace's own additions are
    /// phrases not in this list, and always count.
    lexicon: Vec<String>,
    /// One per head, in units of 1/1000.
    bias: Vec<i32>,
    /// Per feature, one weight per head, in units of 1/1000.
    weights: BTreeMap<String, Vec<i32>>,
}

/// A trained model, ready to score.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    file: ModelFile,
    index: HashMap<String, u32>,
    /// Feature names by index.
    names: Vec<String>,
    weights: Vec<f32>,
    bias: Vec<f32>,
    lexicon: BTreeSet<String>,
}

/// Why a model can't be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model is not valid JSON of its format: {0}")]
    Format(#[from] serde_json::Error),
    #[error("the model has {found} weights for {feature:?}, expected {HEADS}")]
    Shape { feature: String, found: usize },
    #[error("the model's format is version {0}, this build reads version 1")]
    Version(u32),
}

/// The model's reading of one text.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// Per category: probability it is spoken about.
    pub probability: [f64; 6],
    /// For [`POLAR`]: the polarity the model gives.
    pub polarity: [Polarity; 2],
    /// The features that fired, deduplicated, as indices.
    features: Vec<u32>,
}

/// A feature's part in a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    /// The n-gram, word or lexicon finding, as [`describe_feature`] writes it.
    pub feature: String,
    pub weight: f64,
}

impl Model {
    /// The stored form of the model Trellis ships with.
    pub fn builtin_json() -> &'static str {
        include_str!("../../signals/model.json")
    }

    /// The model Trellis ships with, read once.
    pub fn builtin() -> Arc<Model> {
        static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                #[expect(clippy::expect_used, reason = "the shipped model is tested to read")]
                Arc::new(
                    Model::read(Model::builtin_json()).expect("the shipped signal model reads"),
                )
            })
            .clone()
    }

    pub fn read(json: &str) -> Result<Model, ModelError> {
        Model::from_file(serde_json::from_str(json)?)
    }

    fn from_file(file: ModelFile) -> Result<Model, ModelError> {
        if file.version != 1 {
            return Err(ModelError::Version(file.version));
        }
        if file.bias.len() != HEADS {
            return Err(ModelError::Shape {
                feature: "(bias)".into(),
                found: file.bias.len(),
            });
        }
        let mut index = HashMap::with_capacity(file.weights.len());
        let mut weights = Vec::with_capacity(file.weights.len() * HEADS);
        for (i, (feature, w)) in file.weights.iter().enumerate() {
            if w.len() != HEADS {
                return Err(ModelError::Shape {
                    feature: feature.clone(),
                    found: w.len(),
                });
            }
            index.insert(feature.clone(), i as u32);
            weights.extend(w.iter().map(|&x| (f64::from(x) / SCALE) as f32));
        }
        let bias = file
            .bias
            .iter()
            .map(|&x| (f64::from(x) / SCALE) as f32)
            .collect();
        let lexicon = file
            .lexicon
            .iter()
            .map(|p| p.trim().to_lowercase())
            .collect();
        let names = file.weights.keys().cloned().collect();
        Ok(Model {
            file,
            index,
            names,
            weights,
            bias,
            lexicon,
        })
    }

    /// The stored form, one feature per line so changes diff well.
    pub fn to_json(&self) -> String {
        let f = &self.file;
        let mut out = format!(
            "{{\"version\":{},\"trained_on\":{},\"thresholds\":{},\"veto\":{},\"shape\":{},\"lexicon\":{},\"bias\":{},\"weights\":{{\n",
            f.version,
            f.trained_on,
            serde_json::Value::from(f.thresholds.to_vec()),
            f.veto,
            serde_json::to_string(&f.shape).unwrap_or_default(),
            serde_json::Value::from(f.lexicon.clone()),
            serde_json::Value::from(f.bias.clone()),
        );
        let lines: Vec<String> = f
            .weights
            .iter()
            .map(|(k, w)| {
                format!(
                    "{}:{}",
                    serde_json::Value::from(k.as_str()),
                    serde_json::Value::from(w.clone())
                )
            })
            .collect();
        out.push_str(&lines.join(",\n"));
        out.push_str("\n}}\n");
        out
    }

    pub fn features(&self) -> usize {
        self.index.len()
    }

    pub fn trained_on(&self) -> usize {
        self.file.trained_on
    }

    /// The probability at which `category` counts as found.
    pub fn threshold(&self, category: Category) -> f64 {
        self.file.thresholds[head_of(category)]
    }

    /// The probability below which the model drops a category the lexicon found.
    pub fn veto(&self) -> f64 {
        self.file.veto
    }

    /// Whether the lexicon the model was trained with has this phrase.
    pub fn knows_phrase(&self, phrase: &str) -> bool {
        self.lexicon.contains(&phrase.trim().to_lowercase())
    }

    /// Reads a text (already [`normalise`]d) with what the lexicon found in it.
    pub fn read_text(&self, chars: &[char], lexicon: &[Signal]) -> Reading {
        let mut features = Vec::with_capacity(chars.len() * 3);
        each_feature(chars, lexicon, self.file.shape, |f, _| {
            if let Some(&i) = self.index.get(f) {
                features.push(i);
            }
        });
        features.sort_unstable();
        features.dedup();
        let mut z = [0f32; HEADS];
        for &i in &features {
            let w = &self.weights[i as usize * HEADS..(i as usize + 1) * HEADS];
            for (zk, wk) in z.iter_mut().zip(w) {
                *zk += wk;
            }
        }
        let s = self.file.shape.scale(features.len()) as f32;
        for (zk, b) in z.iter_mut().zip(&self.bias) {
            *zk = *zk * s + b;
        }
        let mut probability = [0f64; 6];
        for (k, p) in probability.iter_mut().enumerate() {
            *p = sigmoid(f64::from(z[k]));
        }
        let mut polarity = [Polarity::Neutral; 2];
        for (j, p) in polarity.iter_mut().enumerate() {
            let heads = &z[6 + 3 * j..9 + 3 * j];
            let best = (0..3)
                .max_by(|&a, &b| heads[a].total_cmp(&heads[b]).then(b.cmp(&a)))
                .unwrap_or(2);
            *p = POLARITIES[best];
        }
        Reading {
            probability,
            polarity,
            features,
        }
    }

    /// The features that did most for `category` being found (and, for budget and
    /// timeline, for its polarity), strongest first.
    pub fn evidence(&self, reading: &Reading, category: Category, n: usize) -> Vec<Evidence> {
        let k = head_of(category);
        let polar = polar_index(category).map(|j| {
            let chosen = POLARITIES
                .iter()
                .position(|&p| p == reading.polarity[j])
                .unwrap_or(2);
            (6 + 3 * j, chosen)
        });
        let names = &self.names;
        let scale = self.file.shape.scale(reading.features.len());
        let mut scored: Vec<(f64, u32)> = reading
            .features
            .iter()
            .map(|&i| {
                let w = &self.weights[i as usize * HEADS..(i as usize + 1) * HEADS];
                let mut s = f64::from(w[k]);
                if let Some((base, chosen)) = polar {
                    let others = (0..3)
                        .filter(|&c| c != chosen)
                        .map(|c| f64::from(w[base + c]));
                    s += f64::from(w[base + chosen]) - others.fold(f64::MIN, f64::max).max(0.0);
                }
                (s * scale, i)
            })
            .filter(|(s, _)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(n)
            .map(|(s, i)| Evidence {
                feature: describe_feature(&names[i as usize]),
                weight: (s * 100.0).round() / 100.0,
            })
            .collect()
    }

    /// Where in the text (chars) the strongest n-gram or word for `category` is.
    pub fn span_of(
        &self,
        chars: &[char],
        reading: &Reading,
        category: Category,
    ) -> Option<(usize, usize)> {
        let k = head_of(category);
        let names = &self.names;
        let best = reading
            .features
            .iter()
            .filter(|&&i| !names[i as usize].starts_with(LEXICON))
            .max_by(|&&a, &&b| {
                self.weights[a as usize * HEADS + k]
                    .total_cmp(&self.weights[b as usize * HEADS + k])
                    .then(b.cmp(&a))
            })?;
        let mut span = None;
        each_feature(chars, &[], self.file.shape, |f, s| {
            if span.is_none() && f == names[*best as usize].as_str() {
                span = s;
            }
        });
        span
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// How training goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// A feature must occur in at least this many training texts.
    pub min_count: usize,
    pub epochs: usize,
    /// AdaGrad's step.
    pub rate: f64,
    /// L2 penalty per update.
    pub l2: f64,
    /// Per category (in [`Category::ALL`] order), the probability at which it counts as
    /// found.
    pub thresholds: [f64; 6],
    /// The probability below which the model drops a category the lexicon found.
    pub veto: f64,
    /// Weights smaller than this (absolute) are dropped from the stored model.
    pub prune: f64,
    pub shape: Shape,
    /// How much more a text labelled with a category weighs than one without, in the
    /// category heads (categories are rare in any one text).
    pub positive_weight: f64,
}

impl Default for Options {
    /// The options `trellis signals train --tune` found best on the dev part (the model
    /// fitted on train), by the lower of micro-F1 and polarity accuracy: 0.867 and 0.878
    /// there, within 0.004 of the best (character 3-grams, every feature kept) at a sixth
    /// of the size. The model drops a lexicon finding only when it gives it under 10 %.
    fn default() -> Options {
        Options {
            min_count: 2,
            epochs: 30,
            rate: 0.1,
            l2: 1e-2,
            // budget, timeline, technical, competitor, risk, commercial
            thresholds: [0.4, 0.4, 0.6, 0.35, 0.5, 0.6],
            veto: 0.1,
            prune: 0.01,
            shape: Shape {
                order: 2,
                normalised: true,
            },
            positive_weight: 2.0,
        }
    }
}

/// Trains a model on `examples`, reading each with `rules` (a detector without a model:
/// its lexicon's findings are features, its term phrases the model's known lexicon).
/// Deterministic: the same examples, lexicon and options give the same model.
pub fn fit(examples: &[LabelledText], rules: &super::Detector, options: &Options) -> Model {
    // Each text's features as strings, then the vocabulary of those frequent enough.
    let docs: Vec<Vec<String>> = examples
        .iter()
        .map(|ex| {
            let chars = normalise(&ex.text);
            let mut fs = BTreeSet::new();
            each_feature(
                &chars,
                &rules.detect_by_lexicon(&ex.text),
                options.shape,
                |f, _| {
                    fs.insert(f.to_string());
                },
            );
            fs.into_iter().collect()
        })
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &docs {
        for f in d {
            *counts.entry(f).or_default() += 1;
        }
    }
    let vocabulary: Vec<&str> = counts
        .iter()
        .filter(|(f, n)| **n >= options.min_count || f.starts_with(LEXICON))
        .map(|(f, _)| *f)
        .collect();
    let position: HashMap<&str, usize> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, i))
        .collect();
    let rows: Vec<Vec<usize>> = docs
        .iter()
        .map(|d| {
            d.iter()
                .filter_map(|f| position.get(f.as_str()).copied())
                .collect()
        })
        .collect();

    let n = vocabulary.len();
    let mut w = vec![0f64; (n + 1) * HEADS]; // the last row is the bias
    let mut g2 = vec![1e-8f64; (n + 1) * HEADS];
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| super::corpus::fnv1a(examples[i].text.as_bytes()));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |w: &mut [f64], g2: &mut [f64], idx: usize, grad: f64, l2: f64| {
        let g = grad + l2 * w[idx];
        g2[idx] += g * g;
        w[idx] -= options.rate * g / g2[idx].sqrt();
    };
    for _ in 0..options.epochs {
        // A fixed shuffle per epoch (xorshift), so runs repeat exactly.
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &d in &order {
            let ex = &examples[d];
            let row = &rows[d];
            let sc = options.shape.scale(row.len());
            let mut z = [0f64; HEADS];
            for (k, zk) in z.iter_mut().enumerate() {
                *zk = w[n * HEADS + k] + sc * row.iter().map(|&f| w[f * HEADS + k]).sum::<f64>();
            }
            let mut grads = [0f64; HEADS];
            let mut active = [false; HEADS];
            for (k, c) in Category::ALL.iter().enumerate() {
                grads[k] = if ex.categories.contains(c) {
                    (sigmoid(z[k]) - 1.0) * options.positive_weight
                } else {
                    sigmoid(z[k])
                };
                active[k] = true;
            }
            for (j, c) in POLAR.iter().enumerate() {
                if !ex.categories.contains(c) {
                    continue;
                }
                let y = ex.polarity.get(c).copied().unwrap_or_default();
                let heads = &z[6 + 3 * j..9 + 3 * j];
                let max = heads.iter().copied().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = heads.iter().map(|h| (h - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for (c, p) in POLARITIES.iter().enumerate() {
                    let target = if *p == y { 1.0 } else { 0.0 };
                    grads[6 + 3 * j + c] = exps[c] / sum - target;
                    active[6 + 3 * j + c] = true;
                }
            }
            for k in 0..HEADS {
                if !active[k] {
                    continue;
                }
                step(&mut w, &mut g2, n * HEADS + k, grads[k], 0.0);
                for &f in row {
                    step(&mut w, &mut g2, f * HEADS + k, grads[k] * sc, options.l2);
                }
            }
        }
    }
    let q = |x: f64| (x * SCALE).round() as i32;
    let prune = (options.prune * SCALE).round() as i32;
    let weights: BTreeMap<String, Vec<i32>> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                f.to_string(),
                w[i * HEADS..(i + 1) * HEADS]
                    .iter()
                    .map(|&x| q(x))
                    .collect::<Vec<i32>>(),
            )
        })
        .filter(|(_, ws)| ws.iter().any(|x| x.abs() >= prune.max(1)))
        .map(|(f, ws)| {
            (
                f,
                ws.into_iter()
                    .map(|x| if x.abs() < prune { 0 } else { x })
                    .collect(),
            )
        })
        .collect();
    let mut lexicon: Vec<String> = rules
        .lexicon()
        .terms
        .iter()
        .flat_map(|t| &t.phrases)
        .map(|p| p.trim().to_lowercase())
        .collect();
    lexicon.sort();
    lexicon.dedup();
    #[expect(clippy::expect_used, reason = "the shape is built right above")]
    Model::from_file(ModelFile {
        version: 1,
        trained_on: examples.len(),
        thresholds: options.thresholds,
        veto: options.veto,
        shape: options.shape,
        lexicon,
        bias: w[n * HEADS..].iter().map(|&x| q(x)).collect(),
        weights,
    })
    .expect("a fitted model has its shape")
}
