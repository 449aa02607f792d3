//! Purchase signals in text: budget approved, tender imminent, project postponed, a
//! competitor named, a risk raised — in Chinese and English.
//!
//! The lexicon is data ([`Lexicon`], editable per workspace); the detector is rules over it:
//!
//! - every phrase is found in one pass by a leftmost-longest Aho–Corasick automaton, so
//!   Chinese needs no segmentation (a longer phrase — `上线后`, `没消息`, `不够` — always
//!   wins over the shorter ones inside it, which is also how the lexicon masks false
//!   friends with `ignore` phrases); Latin-script phrases only match whole words;
//! - text is cut into sentences and clauses at punctuation;
//! - a *topic* (`预算`, `tender`) says a category is being talked about (a neutral signal);
//!   a *state* (`已批复`, `推迟`, `frozen`) gives it a polarity; a state that is not
//!   `standalone` needs a topic of its category in the same sentence;
//! - a negator right before a state (`还没批`, `并没有批下来`, `不是问题`,
//!   `has not been approved`) flips its polarity; a topic may say what its negation means
//!   (`没有预算` is a negative budget signal);
//! - in a yes/no question (`预算批了吗？`, `Has it been approved?`) a state is only neutral;
//!   after a rhetorical cue (`不是说…吗`) a positive state is an expectation that was not
//!   met, so it counts as negative.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

pub mod corpus;
pub mod learned;

pub use learned::{Evidence, Model, ModelError};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a signal is about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Budget,
    Timeline,
    Technical,
    Competitor,
    Risk,
    Commercial,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Budget,
        Category::Timeline,
        Category::Technical,
        Category::Competitor,
        Category::Risk,
        Category::Commercial,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Budget => "budget",
            Category::Timeline => "timeline",
            Category::Technical => "technical",
            Category::Competitor => "competitor",
            Category::Risk => "risk",
            Category::Commercial => "commercial",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a signal advances the deal, blocks it, or only shows the topic is live.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    Positive,
    Negative,
    #[default]
    Neutral,
}

impl Polarity {
    pub fn as_str(self) -> &'static str {
        match self {
            Polarity::Positive => "positive",
            Polarity::Negative => "negative",
            Polarity::Neutral => "neutral",
        }
    }

    fn flipped(self) -> Polarity {
        match self {
            Polarity::Positive => Polarity::Negative,
            Polarity::Negative => Polarity::Positive,
            Polarity::Neutral => Polarity::Neutral,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A group of phrases with one meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub category: Category,
    /// `neutral` makes the phrases topics; `positive`/`negative` makes them states.
    #[serde(default)]
    pub polarity: Polarity,
    /// A state that is a signal on its own (`推迟`), without a topic of its category in the
    /// sentence.
    #[serde(default, skip_serializing_if = "is_false")]
    pub standalone: bool,
    /// What a negator right before one of these phrases means. States flip by default;
    /// topics ignore negation unless this says otherwise (`没有预算` → negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negated: Option<Polarity>,
    /// Signal strength, 0–1.
    #[serde(default = "one")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub weight: f64,
    #[schemars(length(min = 1))]
    pub phrases: Vec<String>,
}

/// The detector's data: terms, and the cue words its rules use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis signal lexicon")]
pub struct Lexicon {
    pub terms: Vec<Term>,
    /// Words that negate the state right after them (`没`, `尚未`, `not`).
    pub negators: Vec<String>,
    /// Yes/no question markers within a clause (`吗`, `是否`); a clause ending in `?`/`？` is
    /// a question too.
    pub questions: Vec<String>,
    /// Rhetorical cues (`不是说`): a positive state after one is an unmet expectation.
    pub rhetorical: Vec<String>,
    /// Phrases that mean nothing here but contain a term (`上线后`, `贵公司`, `未来`).
    #[serde(default)]
    pub ignore: Vec<String>,
}

impl Lexicon {
    /// The lexicon Trellis ships with.
    pub fn builtin() -> Lexicon {
        #[expect(
            clippy::expect_used,
            reason = "the built-in lexicon is tested to parse"
        )]
        serde_json::from_str(include_str!("../../lexicon/signals.json"))
            .expect("built-in lexicon parses")
    }

    /// Every problem with this lexicon, as `(JSON pointer, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeMap::<String, String>::new();
        let mut add = |phrase: &str, pointer: String, problems: &mut Vec<(String, String)>| {
            let key = phrase.trim().to_lowercase();
            if key.is_empty() {
                problems.push((pointer, "a phrase must not be empty".into()));
            } else if key.chars().count() > 64 {
                problems.push((pointer, "a phrase is at most 64 characters".into()));
            } else if let Some(first) = seen.get(&key) {
                problems.push((pointer, format!("{phrase:?} is already listed at {first}")));
            } else {
                seen.insert(key, pointer);
            }
        };
        for (i, term) in self.terms.iter().enumerate() {
            if !(0.0..=1.0).contains(&term.weight) {
                problems.push((
                    format!("/terms/{i}/weight"),
                    "weight is between 0 and 1".into(),
                ));
            }
            if term.phrases.is_empty() {
                problems.push((
                    format!("/terms/{i}/phrases"),
                    "a term needs at least one phrase".into(),
                ));
            }
            if term.standalone && term.polarity == Polarity::Neutral {
                problems.push((
                    format!("/terms/{i}/standalone"),
                    "only a positive or negative state can be standalone (a topic always is)"
                        .into(),
                ));
            }
            for (j, p) in term.phrases.iter().enumerate() {
                add(p, format!("/terms/{i}/phrases/{j}"), &mut problems);
            }
        }
        for (field, list) in [
            ("negators", &self.negators),
            ("questions", &self.questions),
            ("rhetorical", &self.rhetorical),
            ("ignore", &self.ignore),
        ] {
            for (j, p) in list.iter().enumerate() {
                add(p, format!("/{field}/{j}"), &mut problems);
            }
        }
        problems
    }
}

/// One purchase signal found in a text. `start` and `end` count Unicode characters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Signal {
    pub category: Category,
    pub polarity: Polarity,
    pub phrase: String,
    pub start: usize,
    pub end: usize,
    pub strength: f64,
    /// Why the model found it: the n-grams, words and lexicon findings that weighed most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Term(usize),
    Negator,
    Question,
    Rhetorical,
    Ignore,
}

/// A lexicon compiled for matching.
#[derive(Debug, Clone)]
pub struct Detector {
    lexicon: Lexicon,
    automaton: AhoCorasick,
    kinds: Vec<Kind>,
    latin: Vec<bool>,
    /// The learned model that decides with the lexicon's findings, when there is one.
    model: Option<Arc<Model>>,
    /// Per pattern: a term phrase the model's lexicon did not have (a workspace's own
    /// addition), whose signals always count.
    own: Vec<bool>,
}

/// Why a lexicon can't be compiled.
#[derive(Debug, thiserror::Error)]
#[error("the lexicon has {} problem(s), first at {}: {}", .0.len(), .0[0].0, .0[0].1)]
pub struct LexiconError(pub Vec<(String, String)>);

#[derive(Clone, Copy, Debug)]
struct Hit {
    kind: Kind,
    pattern: usize,
    start: usize,
    end: usize,
    sentence: usize,
    clause: usize,
}

fn is_sentence_end(c: char, next: Option<char>) -> bool {
    matches!(c, '。' | '！' | '？' | '!' | '?' | '；' | ';' | '\n' | '…')
        || (c == '.' && next.is_none_or(char::is_whitespace))
}

fn is_clause_end(c: char) -> bool {
    matches!(c, '，' | ',' | '、' | '：' | ':' | '（' | '）' | '(' | ')')
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '\''
}

impl Detector {
    pub fn new(lexicon: Lexicon) -> Result<Detector, LexiconError> {
        let problems = lexicon.problems();
        if !problems.is_empty() {
            return Err(LexiconError(problems));
        }
        let mut patterns = Vec::new();
        let mut kinds = Vec::new();
        for (i, term) in lexicon.terms.iter().enumerate() {
            for p in &term.phrases {
                patterns.push(p.trim().to_string());
                kinds.push(Kind::Term(i));
            }
        }
        for (kind, list) in [
            (Kind::Negator, &lexicon.negators),
            (Kind::Question, &lexicon.questions),
            (Kind::Rhetorical, &lexicon.rhetorical),
            (Kind::Ignore, &lexicon.ignore),
        ] {
            for p in list {
                patterns.push(p.trim().to_string());
                kinds.push(kind);
            }
        }
        let latin = patterns
            .iter()
            .map(|p| p.chars().next().is_some_and(is_word_char))
            .collect();
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .map_err(|e| LexiconError(vec![(String::new(), e.to_string())]))?;
        let own = vec![false; kinds.len()];
        Ok(Detector {
            lexicon,
            automaton,
            kinds,
            latin,
            model: None,
            own,
        })
    }

    /// The same lexicon, deciding with `model`: the model weighs the lexicon's findings
    /// with the text's n-grams; phrases the model's lexicon did not have always count.
    pub fn with_model(mut self, model: Arc<Model>) -> Detector {
        let mut own = Vec::with_capacity(self.kinds.len());
        for (i, term) in self.lexicon.terms.iter().enumerate() {
            for p in &term.phrases {
                debug_assert_eq!(self.kinds[own.len()], Kind::Term(i));
                own.push(!model.knows_phrase(p));
            }
        }
        own.resize(self.kinds.len(), false);
        self.own = own;
        self.model = Some(model);
        self
    }

    /// A detector over [`Lexicon::builtin`] and [`Model::builtin`].
    pub fn builtin() -> Detector {
        Detector::builtin_lexicon().with_model(Model::builtin())
    }

    /// A detector over [`Lexicon::builtin`] alone (rules, no model).
    pub fn builtin_lexicon() -> Detector {
        #[expect(
            clippy::expect_used,
            reason = "the built-in lexicon is tested to be valid"
        )]
        Detector::new(Lexicon::builtin()).expect("built-in lexicon is valid")
    }

    pub fn model(&self) -> Option<&Arc<Model>> {
        self.model.as_ref()
    }

    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The signals in `text`, in text order: with a model, at most one per category in
    /// each stretch of text it reads at once (a short text, or a few sentences of a long
    /// one), explained by its evidence; without, the lexicon's rules alone.
    pub fn detect(&self, text: &str) -> Vec<Signal> {
        match &self.model {
            None => self.by_lexicon(text).into_iter().map(|(s, _)| s).collect(),
            Some(model) => self.prepare(text).decide(model, &Decision::of_model(model)),
        }
    }

    /// `text` read by the lexicon and the model, not yet decided: [`Prepared::decide`]
    /// turns it into signals at any thresholds (tuning reads each text once). Without a
    /// model, nothing is read.
    pub fn prepare(&self, text: &str) -> Prepared {
        let Some(model) = &self.model else {
            return Prepared {
                stretches: Vec::new(),
            };
        };
        let stretches = stretches(text)
            .into_iter()
            .map(|(start, end)| {
                // The stretch as a whole, and each of its sentences when it has several: a
                // signal in one sentence is not drowned by the others' words.
                let whole = self.read(model, text, start, end);
                let sentences = sentences(&text[start..end]);
                let parts = if sentences.len() > 1 {
                    sentences
                        .into_iter()
                        .map(|(a, b)| self.read(model, text, start + a, start + b))
                        .collect()
                } else {
                    Vec::new()
                };
                (whole, parts)
            })
            .collect();
        Prepared { stretches }
    }

    /// What the lexicon and the model make of `text[start..end]`.
    fn read(&self, model: &Model, text: &str, start: usize, end: usize) -> Read {
        let unit = &text[start..end];
        let found = self.by_lexicon(unit);
        let lexicon: Vec<Signal> = found.iter().map(|(s, _)| s.clone()).collect();
        let chars = learned::normalise(unit);
        let reading = model.read_text(&chars, &lexicon);
        Read {
            offset: text[..start].chars().count(),
            unit: unit.chars().collect(),
            found,
            chars,
            reading,
        }
    }

    /// The signals the lexicon's rules find in `text`, in text order.
    pub fn detect_by_lexicon(&self, text: &str) -> Vec<Signal> {
        self.by_lexicon(text).into_iter().map(|(s, _)| s).collect()
    }

    /// The lexicon's signals, each with whether a workspace's own phrase made it.
    fn by_lexicon(&self, text: &str) -> Vec<(Signal, bool)> {
        // Sentence and clause index of every byte offset that starts a char; where clauses
        // are questions and sentences rhetorical.
        let mut sentence_of = Vec::with_capacity(text.len() + 1);
        let mut clause_of = Vec::with_capacity(text.len() + 1);
        let mut clause_question = vec![false];
        let (mut sentence, mut clause) = (0usize, 0usize);
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            for _ in 0..c.len_utf8() {
                sentence_of.push(sentence);
                clause_of.push(clause);
            }
            let next = chars.peek().map(|&(_, n)| n);
            if is_sentence_end(c, next) || is_clause_end(c) {
                if matches!(c, '?' | '？') {
                    clause_question[clause] = true;
                }
                if is_sentence_end(c, next) {
                    sentence += 1;
                }
                clause += 1;
                clause_question.push(false);
            }
        }
        sentence_of.push(sentence);
        clause_of.push(clause);

        // Leftmost-longest matches; a Latin phrase must be whole words, and one that is not
        // (`on time` inside "implementation timeframe") gives its text back to the search,
        // from the next character on.
        let mut hits: Vec<Hit> = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let Some(m) = self
                .automaton
                .find(aho_corasick::Input::new(text).span(at..text.len()))
            else {
                break;
            };
            let id = m.pattern().as_usize();
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            if self.latin[id]
                && (before.is_some_and(is_word_char) || after.is_some_and(is_word_char))
            {
                at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            hits.push(Hit {
                kind: self.kinds[id],
                pattern: id,
                start: m.start(),
                end: m.end(),
                sentence: sentence_of[m.start()],
                clause: clause_of[m.start()],
            });
            at = m.end().max(m.start() + 1);
        }

        for h in &hits {
            if h.kind == Kind::Question {
                clause_question[h.clause] = true;
            }
        }
        let rhetorical_sentences: BTreeSet<usize> = hits
            .iter()
            .filter(|h| h.kind == Kind::Rhetorical)
            .map(|h| h.sentence)
            .collect();

        let term = |h: &Hit| match h.kind {
            Kind::Term(i) => Some(&self.lexicon.terms[i]),
            _ => None,
        };
        // A negator is the hit right before, in the same clause, with at most a few
        // characters (or two words) between.
        let negated = |i: usize| -> bool {
            let Some(prev) = i.checked_sub(1).map(|p| hits[p]) else {
                return false;
            };
            if prev.kind != Kind::Negator || prev.clause != hits[i].clause {
                return false;
            }
            let gap = &text[prev.end..hits[i].start];
            gap.chars().count() <= 3 || (gap.is_ascii() && gap.split_whitespace().count() <= 2)
        };

        let mut signals: Vec<(usize, bool, Signal)> = Vec::new(); // (sentence, own, signal)
        let mut used_topics = BTreeSet::new();
        for (i, h) in hits.iter().enumerate() {
            let Some(t) = term(h) else { continue };
            if t.polarity == Polarity::Neutral {
                continue;
            }
            // The nearest topic of the state's category in its sentence, clause first.
            let topic = hits
                .iter()
                .enumerate()
                .filter(|(_, o)| {
                    o.sentence == h.sentence
                        && term(o).is_some_and(|ot| {
                            ot.category == t.category && ot.polarity == Polarity::Neutral
                        })
                })
                .min_by_key(|(_, o)| (o.clause != h.clause, o.start.abs_diff(h.start)))
                .map(|(j, _)| j);
            if topic.is_none() && !t.standalone {
                continue;
            }
            let mut polarity = t.polarity;
            let mut strength = t.weight;
            if negated(i) {
                polarity = t.negated.unwrap_or(polarity.flipped());
            }
            if rhetorical_sentences.contains(&h.sentence) && polarity == Polarity::Positive {
                polarity = Polarity::Negative;
                strength *= 0.6;
            } else if clause_question[h.clause] {
                polarity = Polarity::Neutral;
                strength *= 0.5;
            }
            let (mut start, mut end) = (h.start, h.end);
            let own = self.own[h.pattern] || topic.is_some_and(|j| self.own[hits[j].pattern]);
            if let Some(j) = topic {
                used_topics.insert(j);
                if hits[j].clause == h.clause {
                    start = start.min(hits[j].start);
                    end = end.max(hits[j].end);
                }
            }
            if negated(i) {
                start = start.min(hits[i - 1].start);
            }
            signals.push((
                h.sentence,
                own,
                self.signal(text, t.category, polarity, start, end, strength),
            ));
        }
        // Topics no state spoke about: neutral signals (or what their negation means).
        for (i, h) in hits.iter().enumerate() {
            let Some(t) = term(h) else { continue };
            if t.polarity != Polarity::Neutral || used_topics.contains(&i) {
                continue;
            }
            let covered = signals
                .iter()
                .any(|(s, _, sig)| *s == h.sentence && sig.category == t.category);
            let mut polarity = Polarity::Neutral;
            let mut start = h.start;
            if negated(i)
                && let Some(p) = t.negated
            {
                polarity = if clause_question[h.clause] {
                    Polarity::Neutral
                } else {
                    p
                };
                start = hits[i - 1].start;
            } else if covered {
                continue;
            }
            signals.push((
                h.sentence,
                self.own[h.pattern],
                self.signal(text, t.category, polarity, start, h.end, t.weight),
            ));
        }
        let mut signals: Vec<(Signal, bool)> =
            signals.into_iter().map(|(_, own, s)| (s, own)).collect();
        signals.sort_by_key(|(s, _)| (s.start, s.end));
        signals
    }

    fn signal(
        &self,
        text: &str,
        category: Category,
        polarity: Polarity,
        start: usize,
        end: usize,
        strength: f64,
    ) -> Signal {
        Signal {
            category,
            polarity,
            phrase: text[start..end].to_string(),
            start: text[..start].chars().count(),
            end: text[..end].chars().count(),
            strength: (strength.clamp(0.0, 1.0) * 100.0).round() / 100.0,
            evidence: Vec::new(),
        }
    }
}

/// The probabilities at which the model's reading counts (see [`Model::threshold`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Per category, in [`Category::ALL`] order.
    pub thresholds: [f64; 6],
    /// Below this, the model drops a category the lexicon found.
    pub veto: f64,
}

impl Decision {
    /// The thresholds a model was trained with.
    pub fn of_model(model: &Model) -> Decision {
        Decision {
            thresholds: Category::ALL.map(|c| model.threshold(c)),
            veto: model.veto(),
        }
    }
}

/// A text read by a detector with a model ([`Detector::prepare`]): per stretch, the
/// reading of the whole and of each sentence.
#[derive(Debug)]
pub struct Prepared {
    stretches: Vec<(Read, Vec<Read>)>,
}

impl Prepared {
    /// The signals at `decision`'s thresholds, in text order.
    pub fn decide(&self, model: &Model, decision: &Decision) -> Vec<Signal> {
        let mut out = Vec::new();
        for (whole, parts) in &self.stretches {
            for (k, &category) in Category::ALL.iter().enumerate() {
                // Found where the model is sure enough; where the lexicon found it too, unless
                // the model is sure it is not there.
                let lexical = |r: &Read| r.found.iter().any(|(s, _)| s.category == category);
                let found = |r: &Read| {
                    let p = r.reading.probability[k];
                    p >= decision.thresholds[k] || (lexical(r) && p >= decision.veto)
                };
                // A sentence on its own counts where the lexicon found the category in it.
                let backed = |r: &&Read| found(r) && lexical(r);
                let learned = std::iter::once(whole)
                    .filter(|r| found(r))
                    .chain(parts.iter().rev().filter(backed))
                    .next();
                let own = whole
                    .found
                    .iter()
                    .any(|(s, own)| *own && s.category == category);
                let Some(read) = learned.or(own.then_some(whole)) else {
                    continue;
                };
                out.push(read.signal(model, category, learned.is_some()));
            }
        }
        out.sort_by_key(|s| (s.start, s.end));
        out
    }
}

/// One stretch or sentence as read: the lexicon's signals in it (with whether a
/// workspace's own phrase made each), and the model's reading.
#[derive(Debug)]
struct Read {
    /// Characters before it in the whole text.
    offset: usize,
    unit: Vec<char>,
    found: Vec<(Signal, bool)>,
    chars: Vec<char>,
    reading: learned::Reading,
}

impl Read {
    /// The signal of `category` this reading gives: polarity from the model when it found
    /// the category (`learned`), else from the lexicon; the span of the lexicon's phrase
    /// that agrees, else of the n-gram that weighed most.
    fn signal(&self, model: &Model, category: Category, learned: bool) -> Signal {
        let ours: Vec<&Signal> = self
            .found
            .iter()
            .map(|(s, _)| s)
            .filter(|s| s.category == category)
            .collect();
        let polarity = match learned::POLAR.iter().position(|&c| c == category) {
            Some(j) if learned => self.reading.polarity[j],
            Some(_) => {
                let mine: Vec<Signal> = ours.iter().map(|s| (*s).clone()).collect();
                polarity_by_category(&mine)
                    .get(&category)
                    .copied()
                    .unwrap_or_default()
            }
            None => Polarity::Neutral,
        };
        let (start, end) = ours
            .iter()
            .find(|s| s.polarity == polarity)
            .or(ours.first())
            .map(|s| (s.start, s.end))
            .or_else(|| model.span_of(&self.chars, &self.reading, category))
            .unwrap_or((0, self.chars.len()));
        let probability = self.reading.probability[learned::head_of(category)];
        Signal {
            category,
            polarity,
            phrase: self.unit[start..end].iter().collect(),
            start: self.offset + start,
            end: self.offset + end,
            // The model's probability, or the lexicon's weight where it found it too.
            strength: if learned {
                let lexical = ours.iter().map(|s| s.strength).fold(0.0, f64::max);
                (probability.max(lexical) * 100.0).round() / 100.0
            } else {
                1.0
            },
            evidence: model.evidence(&self.reading, category, 4),
        }
    }
}

/// A stretch's sentences, as byte ranges.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let next = it.peek().map(|&(_, n)| n);
        if is_sentence_end(c, next) {
            let end = i + c.len_utf8();
            if !text[start..end].trim().is_empty() {
                out.push((start, end));
            }
            start = end;
        }
    }
    if !text[start..].trim().is_empty() {
        out.push((start, text.len()));
    }
    out
}

/// The stretches of a text the model reads at once, as byte ranges: the whole text when
/// short, otherwise runs of whole sentences of about 200 characters.
fn stretches(text: &str) -> Vec<(usize, usize)> {
    const SHORT: usize = 240;
    const RUN: usize = 200;
    if text.len() <= SHORT || text.chars().count() <= SHORT {
        return vec![(0, text.len())];
    }
    let mut out = Vec::new();
    let (mut start, mut chars) = (0, 0);
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        chars += 1;
        let next = it.peek().map(|&(_, n)| n);
        let end = i + c.len_utf8();
        if (is_sentence_end(c, next) && chars >= RUN) || chars >= 2 * RUN {
            out.push((start, end));
            start = end;
            chars = 0;
        }
    }
    if start < text.len() {
        if chars < RUN / 4
            && let Some(last) = out.last_mut()
        {
            last.1 = text.len();
        } else {
            out.push((start, text.len()));
        }
    }
    out
}

/// A text's signals summed up per category: negative wins over positive, positive over
/// neutral (one "budget cut" outweighs a mention that budget exists).
pub fn polarity_by_category(signals: &[Signal]) -> std::collections::BTreeMap<Category, Polarity> {
    let mut out = std::collections::BTreeMap::new();
    for s in signals {
        let e = out.entry(s.category).or_insert(Polarity::Neutral);
        *e = match (*e, s.polarity) {
            (Polarity::Negative, _) | (_, Polarity::Negative) => Polarity::Negative,
            (Polarity::Positive, _) | (_, Polarity::Positive) => Polarity::Positive,
            _ => Polarity::Neutral,
        };
    }
    out
}

/// One labelled text, as in `signals/dev.jsonl`: the categories it speaks about, and the
/// polarity of those that are not neutral.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelledText {
    pub text: String,
    pub categories: Vec<Category>,
    #[serde(default)]
    pub polarity: std::collections::BTreeMap<Category, Polarity>,
}

impl LabelledText {
    /// Every problem with this label, as `(JSON pointer, message)`: an empty text, a
    /// polarity for a category not labelled, or for one other than budget and timeline.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.text.trim().is_empty() {
            out.push(("/text".into(), "the text is empty".into()));
        }
        for c in self.polarity.keys() {
            if !self.categories.contains(c) {
                out.push((
                    format!("/polarity/{c}"),
                    format!("a polarity for {c}, which is not among the categories"),
                ));
            } else if !learned::POLAR.contains(c) {
                out.push((
                    format!("/polarity/{c}"),
                    format!("only budget and timeline have a polarity, not {c}"),
                ));
            }
        }
        out
    }
}

/// Precision, recall and F1 of one category.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CategoryScore {
    pub category: Option<Category>,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl CategoryScore {
    fn finish(mut self) -> CategoryScore {
        let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        self.precision = ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        );
        self.recall = ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        );
        self.f1 = if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        };
        self
    }
}

/// A mistake, for the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Miss {
    pub text: String,
    pub expected: String,
    pub found: String,
}

/// How a detector does on labelled texts.
///
/// Categories are scored per text (a category is found if any signal of it is). Polarity
/// accuracy is over every labelled (text, category) pair: the expected polarity is the
/// label's, or neutral where the label gives none; the found one is
/// [`polarity_by_category`]'s, and a category not found at all counts as wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub texts: usize,
    pub per_category: Vec<CategoryScore>,
    pub micro: CategoryScore,
    pub polarity_pairs: usize,
    pub polarity_correct: usize,
    pub polarity_accuracy: f64,
    /// Over labelled (text, category) pairs: rows the expected polarity (positive,
    /// negative, neutral), columns the found one (positive, negative, neutral, not found).
    pub polarity_confusion: [[usize; 4]; 3],
    /// Rows the expected categories (in [`Category::ALL`] order, then "none" for texts
    /// with no label), columns the found ones (same order, then "none" for texts where
    /// nothing was found): how often a text labelled with the row's category had the
    /// column's found.
    pub category_confusion: [[usize; 7]; 7],
    pub misses: Vec<Miss>,
}

fn describe(map: &std::collections::BTreeMap<Category, Polarity>) -> String {
    if map.is_empty() {
        return "—".into();
    }
    map.iter()
        .map(|(c, p)| format!("{c}:{}", p.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Detector {
    pub fn evaluate(&self, examples: &[LabelledText]) -> Evaluation {
        Evaluation::of(examples, |_, ex| self.detect(&ex.text))
    }
}

impl Evaluation {
    /// Scores what `detect` finds in each example (given with its index) against its labels.
    pub fn of(
        examples: &[LabelledText],
        mut detect: impl FnMut(usize, &LabelledText) -> Vec<Signal>,
    ) -> Evaluation {
        let mut per: std::collections::BTreeMap<Category, CategoryScore> = Category::ALL
            .iter()
            .map(|&c| {
                (
                    c,
                    CategoryScore {
                        category: Some(c),
                        ..CategoryScore::default()
                    },
                )
            })
            .collect();
        let (mut pairs, mut correct) = (0, 0);
        let mut polarity_confusion = [[0usize; 4]; 3];
        let mut category_confusion = [[0usize; 7]; 7];
        let column = |p: Polarity| match p {
            Polarity::Positive => 0,
            Polarity::Negative => 1,
            Polarity::Neutral => 2,
        };
        let mut misses = Vec::new();
        for (i, ex) in examples.iter().enumerate() {
            let found = polarity_by_category(&detect(i, ex));
            let expected: std::collections::BTreeMap<Category, Polarity> = ex
                .categories
                .iter()
                .map(|c| (*c, ex.polarity.get(c).copied().unwrap_or_default()))
                .collect();
            for (c, score) in per.iter_mut() {
                match (expected.contains_key(c), found.contains_key(c)) {
                    (true, true) => score.true_positives += 1,
                    (false, true) => score.false_positives += 1,
                    (true, false) => score.false_negatives += 1,
                    (false, false) => {}
                }
            }
            for (c, p) in &expected {
                pairs += 1;
                if found.get(c) == Some(p) {
                    correct += 1;
                }
                polarity_confusion[column(*p)][found.get(c).map_or(3, |f| column(*f))] += 1;
            }
            let index = |c: &Category| Category::ALL.iter().position(|x| x == c).unwrap_or(0);
            let rows: Vec<usize> = if expected.is_empty() {
                vec![6]
            } else {
                expected.keys().map(index).collect()
            };
            let columns: Vec<usize> = if found.is_empty() {
                vec![6]
            } else {
                found.keys().map(index).collect()
            };
            for &r in &rows {
                for &c in &columns {
                    category_confusion[r][c] += 1;
                }
            }
            if expected != found {
                misses.push(Miss {
                    text: ex.text.clone(),
                    expected: describe(&expected),
                    found: describe(&found),
                });
            }
        }
        let mut micro = CategoryScore::default();
        for s in per.values() {
            micro.true_positives += s.true_positives;
            micro.false_positives += s.false_positives;
            micro.false_negatives += s.false_negatives;
        }
        Evaluation {
            texts: examples.len(),
            per_category: per.into_values().map(CategoryScore::finish).collect(),
            micro: micro.finish(),
            polarity_pairs: pairs,
            polarity_correct: correct,
            polarity_accuracy: if pairs == 0 {
                1.0
            } else {
                correct as f64 / pairs as f64
            },
            polarity_confusion,
            category_confusion,
            misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(text: &str) -> String {
        polarity_by_category(&Detector::builtin_lexicon().detect(text))
            .into_iter()
            .map(|(c, p)| format!("{c}:{}", p.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn builtin_lexicon_is_valid() {
        assert_eq!(Lexicon::builtin().problems(), vec![]);
    }

    #[test]
    fn approvals_and_their_negations() {
        // A plan with a date ("下周可以开始走…") is a positive timeline, as the guide says.
        assert_eq!(
            summary("预算已批复，下周可以开始走合同流程。"),
            "budget:positive timeline:positive commercial:neutral"
        );
        assert_eq!(
            summary("预算还没批，等董事会开完会再说。"),
            "budget:negative timeline:negative"
        );
        assert_eq!(summary("预算并没有批下来。"), "budget:negative");
        assert_eq!(summary("预算不是问题。"), "budget:positive");
        assert_eq!(summary("今年没有预算。"), "budget:negative");
        assert_eq!(summary("Budget has been approved."), "budget:positive");
        assert_eq!(
            summary("The budget has not been approved yet."),
            "budget:negative"
        );
        assert_eq!(summary("Budget is not a problem."), "budget:positive");
    }

    #[test]
    fn questions_are_not_statements() {
        assert_eq!(summary("预算批了吗？"), "budget:neutral");
        assert_eq!(
            summary("不是说招标启动在即吗？怎么又没消息了"),
            "timeline:negative"
        );
        assert_ne!(summary("招标启动在即吗？"), "timeline:positive");
        assert_eq!(summary("Has the budget been approved?"), "budget:neutral");
        assert_eq!(
            summary("Wasn't the tender supposed to start next month?"),
            "timeline:negative"
        );
    }

    #[test]
    fn spans_count_characters_and_cover_the_phrase() {
        let text = "好的。预算还没批";
        let signals = Detector::builtin_lexicon().detect(text);
        assert_eq!(signals.len(), 1);
        let s = &signals[0];
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[s.start..s.end].iter().collect::<String>(), s.phrase);
        assert_eq!(s.phrase, "预算还没批");
    }

    #[test]
    fn latin_phrases_match_whole_words_only() {
        assert_eq!(summary("I know the notes."), "");
        // A phrase inside other words does not hide a whole one that starts within it.
        let mut lexicon = Lexicon::builtin();
        lexicon.terms.push(Term {
            category: Category::Timeline,
            polarity: Polarity::Neutral,
            standalone: false,
            negated: None,
            weight: 1.0,
            phrases: vec!["on tim".into()],
        });
        let found = Detector::new(lexicon)
            .expect("valid")
            .detect("The implementation timeframe is open.");
        assert!(found.iter().any(|s| s.phrase == "timeframe"), "{found:?}");
        assert_eq!(
            summary("We're also evaluating Salesforce."),
            "competitor:neutral"
        );
    }

    #[test]
    fn ignore_phrases_mask_false_friends() {
        assert_eq!(summary("上线后出了问题你们多久能响应？"), "risk:neutral");
        assert_eq!(summary("贵公司的方案我们看过了"), "");
    }

    /// Our own labelled texts (not the evaluation data): both languages, negations,
    /// questions, false friends, chit-chat.
    #[test]
    fn labelled_fixture_scores() {
        let examples: Vec<LabelledText> = include_str!("../../tests/fixtures/signals.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let e = Detector::builtin_lexicon().evaluate(&examples);
        assert!(
            e.micro.f1 >= 0.95,
            "micro F1 {} misses {:#?}",
            e.micro.f1,
            e.misses
        );
        assert!(
            e.polarity_accuracy >= 0.95,
            "polarity {} misses {:#?}",
            e.polarity_accuracy,
            e.misses
        );
    }

    #[test]
    fn evaluation_counts_misses() {
        let examples = vec![
            LabelledText {
                text: "预算已批复".into(),
                categories: vec![Category::Budget],
                polarity: [(Category::Budget, Polarity::Negative)].into(),
            },
            LabelledText {
                text: "明天见".into(),
                categories: vec![Category::Risk],
                polarity: Default::default(),
            },
        ];
        let e = Detector::builtin_lexicon().evaluate(&examples);
        assert_eq!(
            (
                e.micro.true_positives,
                e.micro.false_negatives,
                e.micro.false_positives
            ),
            (1, 1, 0)
        );
        assert_eq!((e.polarity_pairs, e.polarity_correct), (2, 0));
        assert_eq!(e.misses.len(), 2);
    }

    #[test]
    fn the_shipped_model_reads_and_explains() {
        let model = Model::builtin();
        assert!(model.features() > 1000, "{} features", model.features());
        let signals = Detector::builtin().detect("预算上周已经批下来了。");
        let budget = signals
            .iter()
            .find(|s| s.category == Category::Budget)
            .unwrap_or_else(|| panic!("{signals:?}"));
        assert_eq!(budget.polarity, Polarity::Positive, "{signals:?}");
        assert!(!budget.evidence.is_empty(), "{budget:?}");
        assert!(budget.evidence.iter().all(|e| e.weight > 0.0), "{budget:?}");
        assert!(Detector::builtin().detect("好的，明天见。").is_empty());
    }

    #[test]
    fn a_workspace_phrase_always_counts() {
        let mut lexicon = Lexicon::builtin();
        lexicon.terms.push(Term {
            category: Category::Competitor,
            polarity: Polarity::Neutral,
            standalone: false,
            negated: None,
            weight: 1.0,
            phrases: vec!["蓝鲸智控".into()],
        });
        let text = "下午和蓝鲸智控的王总吃饭";
        assert!(
            !Detector::builtin()
                .detect(text)
                .iter()
                .any(|s| s.category == Category::Competitor),
            "the built-in detector does not know the name"
        );
        let mine = Detector::new(lexicon)
            .expect("valid")
            .with_model(Model::builtin());
        let found = mine.detect(text);
        assert!(
            found
                .iter()
                .any(|s| s.category == Category::Competitor && s.phrase == "蓝鲸智控"),
            "{found:?}"
        );
    }

    #[test]
    fn long_texts_are_read_a_stretch_at_a_time() {
        let filler = "我们今天先把会议纪要过一遍，大家各自说一下本周的工作情况。";
        let mut text = filler.repeat(12);
        let offset = text.chars().count();
        text.push_str("另外，今年的信息化预算被砍了一半。");
        text.push_str(&filler.repeat(6));
        let signals = Detector::builtin().detect(&text);
        let budget = signals
            .iter()
            .find(|s| s.category == Category::Budget)
            .unwrap_or_else(|| panic!("{signals:?}"));
        assert_eq!(budget.polarity, Polarity::Negative);
        assert!(budget.start >= offset, "{budget:?} before {offset}");
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(
            chars[budget.start..budget.end].iter().collect::<String>(),
            budget.phrase
        );
        for (a, b) in stretches(&text) {
            assert!(text[a..b].chars().count() <= 450);
        }
    }

    #[test]
    fn a_malformed_model_is_refused_in_words() {
        let e = Model::read("{\"version\": 2}").unwrap_err();
        assert!(
            e.to_string().contains("not valid JSON of its format"),
            "{e}"
        );
        let json = Model::builtin_json().replacen("\"version\":1", "\"version\":7", 1);
        assert!(matches!(Model::read(&json), Err(ModelError::Version(7))));
    }

    #[test]
    fn lexicon_problems_name_the_path() {
        let mut lex = Lexicon::builtin();
        lex.negators.push("预算".into());
        lex.terms[0].weight = 2.0;
        let problems = lex.problems();
        assert!(
            problems.iter().any(|(p, _)| p == "/terms/0/weight"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(p, m)| p.starts_with("/negators/") && m.contains("already listed")),
            "{problems:?}"
        );
    }
}
