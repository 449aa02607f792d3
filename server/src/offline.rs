//! Commands that work on files, without a server: `trellis signals eval`, and the scoring
//! analyst's tools.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use trellis_analytics::{Mapping, Suggestion, Table};
use trellis_model::backtest::Backtest;
use trellis_model::scoring::{CompiledModel, ScoringModel};
use trellis_model::signals::corpus::{self, Part, Tuning};
use trellis_model::signals::learned::{Options, Shape, fit};
use trellis_model::signals::{
    Category, Decision, Detector, Evaluation, LabelledText, Lexicon, Model, Prepared,
};

/// Reads labelled texts, one JSON object per line (`{"text", "categories", "polarity"}`),
/// from a file or from every `*.jsonl` file of a folder (the corpus), in name order.
pub fn read_labelled(path: &Path) -> anyhow::Result<Vec<LabelledText>> {
    Ok(read_by_file(path)?
        .into_iter()
        .flat_map(|(_, records)| records)
        .collect())
}

/// As [`read_labelled`], file by file: each with its name (in the corpus, one writer's).
pub fn read_by_file(path: &Path) -> anyhow::Result<Vec<(String, Vec<LabelledText>)>> {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        anyhow::ensure!(!files.is_empty(), "{} has no .jsonl files", path.display());
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let records =
            corpus::parse_jsonl(&text).map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?;
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into(),
        );
        out.push((name, records));
    }
    Ok(out)
}

/// Which detector `signals eval` and `signals detect` use.
#[derive(Debug, Default)]
pub struct DetectorChoice<'a> {
    /// A lexicon JSON file instead of the built-in one.
    pub lexicon: Option<&'a Path>,
    /// A model JSON file instead of the built-in one.
    pub model: Option<&'a Path>,
    /// The lexicon's rules alone.
    pub rules_only: bool,
}

/// The detector as chosen: the built-in lexicon and model unless files are given.
pub fn detector(choice: &DetectorChoice<'_>) -> anyhow::Result<Detector> {
    let rules = match choice.lexicon {
        None => Detector::builtin_lexicon(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lexicon: Lexicon = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a signal lexicon", path.display()))?;
            Detector::new(lexicon).with_context(|| format!("{}", path.display()))?
        }
    };
    if choice.rules_only {
        return Ok(rules);
    }
    let model = match choice.model {
        None => Model::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Arc::new(Model::read(&text).with_context(|| format!("{}", path.display()))?)
        }
    };
    Ok(rules.with_model(model))
}

/// Keeps the records of one part of the corpus (`all` keeps every record).
pub fn select_part(records: Vec<LabelledText>, part: &str) -> anyhow::Result<Vec<LabelledText>> {
    let part = match part {
        "all" => return Ok(records),
        "train" => Part::Train,
        "dev" => Part::Dev,
        "test" => Part::Test,
        other => anyhow::bail!("--part is train, dev, test or all, not {other:?}"),
    };
    Ok(corpus::part(&records, part))
}

/// What `signals train` did.
#[derive(Debug)]
pub struct Training {
    /// The model fitted on the train part, evaluated on the dev part.
    pub dev: Evaluation,
    /// The lexicon alone on the dev part, for comparison.
    pub dev_rules: Evaluation,
    /// The shipped model, fitted on train and dev (and any extra labels).
    pub model: Model,
    pub train_texts: usize,
    pub dev_texts: usize,
    pub extra_texts: usize,
}

/// Fits the model on the corpus's train part, measures it on the dev part, then fits the
/// model to ship on train, dev and `extra` (a workspace's labels). The test part is
/// dropped as the corpus is read ([`Tuning::new`]).
pub fn train(corpus: Vec<LabelledText>, extra: Vec<LabelledText>, options: &Options) -> Training {
    let tuning = Tuning::new(corpus);
    let rules = Detector::builtin_lexicon();
    let on_train = fit(&tuning.train, &rules, options);
    let dev = rules
        .clone()
        .with_model(Arc::new(on_train))
        .evaluate(&tuning.dev);
    let dev_rules = rules.evaluate(&tuning.dev);
    let (train_texts, dev_texts, extra_texts) = (tuning.train.len(), tuning.dev.len(), extra.len());
    let mut all = tuning.train;
    all.extend(tuning.dev);
    all.extend(extra);
    let model = fit(&all, &rules, options);
    Training {
        dev,
        dev_rules,
        model,
        train_texts,
        dev_texts,
        extra_texts,
    }
}

/// How the model does on writers it has not read: the corpus's files (one writer each)
/// fall into `folds` groups by a hash of their name; each group is read by a model fitted
/// on the other groups' train and dev records. Only train and dev records are read, as
/// everywhere in training ([`Tuning::new`] drops the test part).
#[derive(Debug)]
pub struct ByWriter {
    /// Per group: its writers (file names) and the evaluation of its texts.
    pub folds: Vec<(Vec<String>, Evaluation)>,
    /// Every group's texts, each read by the model that did not see its writer.
    pub pooled: Evaluation,
    /// The same texts decided at thresholds and veto chosen on unseen writers: each group
    /// at the decision that did best on the other groups' texts (each read by a model that
    /// had not seen its writer), so no group's texts choose their own decision.
    pub nested: Evaluation,
    /// The decision that does best on every group's texts read that way: the thresholds
    /// and veto a model meant for writers it has not read should ship with.
    pub decision: Decision,
}

/// One group of writers as [`by_writer`] reads it: the model fitted without them, and
/// their texts prepared by it (deciding at other thresholds needs no second reading).
struct GroupReading {
    names: Vec<String>,
    model: Arc<Model>,
    texts: Vec<LabelledText>,
    prepared: Vec<Prepared>,
}

pub fn by_writer(
    writers: Vec<(String, Vec<LabelledText>)>,
    folds: usize,
    options: &Options,
) -> anyhow::Result<ByWriter> {
    anyhow::ensure!(
        folds >= 2 && folds <= writers.len(),
        "--by-writer needs between 2 and {} groups (one per file at most), not {folds}",
        writers.len()
    );
    let group_of = |name: &str| (corpus::fnv1a(name.as_bytes()) % folds as u64) as usize;
    let writers: Vec<(String, usize, Tuning)> = writers
        .into_iter()
        .map(|(name, records)| {
            let group = group_of(&name);
            (name, group, Tuning::new(records))
        })
        .collect();
    let rules = Detector::builtin_lexicon();
    let mut readings: Vec<GroupReading> = Vec::new();
    for group in 0..folds {
        let (mut seen, mut unseen, mut names) = (Vec::new(), Vec::new(), Vec::new());
        for (name, g, tuning) in &writers {
            let records = tuning.train.iter().chain(&tuning.dev).cloned();
            if *g == group {
                names.push(name.clone());
                unseen.extend(records);
            } else {
                seen.extend(records);
            }
        }
        if names.is_empty() || seen.is_empty() {
            continue;
        }
        let model = Arc::new(fit(&seen, &rules, options));
        let detector = rules.clone().with_model(Arc::clone(&model));
        let prepared = unseen.iter().map(|ex| detector.prepare(&ex.text)).collect();
        readings.push(GroupReading {
            names,
            model,
            texts: unseen,
            prepared,
        });
    }
    // The texts of the groups `keep` takes, decided at `decision`, scored.
    let score = |decision: &Decision, keep: &dyn Fn(usize) -> bool| {
        let (mut texts, mut found) = (Vec::new(), Vec::new());
        for (g, r) in readings.iter().enumerate() {
            if keep(g) {
                texts.extend(r.texts.iter().cloned());
                found.extend(r.prepared.iter().map(|p| p.decide(&r.model, decision)));
            }
        }
        Evaluation::of(&texts, |i, _| found[i].clone())
    };
    // What every fold's model was trained with.
    let start = Decision {
        thresholds: options.thresholds,
        veto: options.veto,
    };
    let results = readings
        .iter()
        .enumerate()
        .map(|(g, r)| (r.names.clone(), score(&start, &|h| h == g)))
        .collect();
    let pooled = score(&start, &|_| true);
    let (mut nested_texts, mut nested_found) = (Vec::new(), Vec::new());
    for (g, r) in readings.iter().enumerate() {
        let chosen = search_decision(start, |d| scores(&score(d, &|h| h != g)));
        nested_texts.extend(r.texts.iter().cloned());
        nested_found.extend(r.prepared.iter().map(|p| p.decide(&r.model, &chosen)));
    }
    let nested = Evaluation::of(&nested_texts, |i, _| nested_found[i].clone());
    let decision = search_decision(start, |d| scores(&score(d, &|_| true)));
    Ok(ByWriter {
        folds: results,
        pooled,
        nested,
        decision,
    })
}

/// The two figures with a target: micro-F1 and polarity accuracy.
fn scores(e: &Evaluation) -> (f64, f64) {
    (e.micro.f1, e.polarity_accuracy)
}

/// What a pair of (micro-F1, polarity accuracy) is worth when choosing: the lower of the
/// two (both have a target), the sum breaking ties.
fn worth((f1, polarity): (f64, f64)) -> f64 {
    f1.min(polarity) + 1e-3 * (f1 + polarity)
}

/// The thresholds and veto `score` rates best, by coordinate ascent from `start`: each
/// category's threshold in turn, then the veto, moves to the grid value that does most,
/// until no move helps.
fn search_decision(start: Decision, score: impl Fn(&Decision) -> (f64, f64)) -> Decision {
    const THRESHOLDS: [f64; 13] = [
        0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
    ];
    const VETOES: [f64; 7] = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4];
    let mut decision = start;
    let mut best = worth(score(&decision));
    let mut improved = true;
    while improved {
        improved = false;
        for k in 0..=6 {
            let grid: &[f64] = if k < 6 { &THRESHOLDS } else { &VETOES };
            for &t in grid {
                let mut candidate = decision;
                if k < 6 {
                    candidate.thresholds[k] = t;
                } else {
                    candidate.veto = t;
                }
                let w = worth(score(&candidate));
                if w > best + 1e-9 {
                    (best, decision, improved) = (w, candidate, true);
                }
            }
        }
    }
    decision
}

/// Searches training options on the dev part (the model fitted on train), best first by
/// the lower of micro-F1 and polarity accuracy (both have a target; the sum breaks ties).
/// Each shape's thresholds and veto are chosen with it ([`search_decision`]); the ones a
/// shipped model uses come from unseen writers instead ([`by_writer`]).
pub fn tune(corpus: Vec<LabelledText>) -> Vec<(Options, f64, f64)> {
    let tuning = Tuning::new(corpus);
    let rules = Detector::builtin_lexicon();
    // Each dev text is read once per model; the decision only changes what counts.
    let mut results = Vec::new();
    for min_count in [1, 2] {
        for order in [2, 3] {
            for l2 in [1e-2, 3e-2] {
                let base = Options {
                    min_count,
                    l2,
                    shape: Shape {
                        order,
                        normalised: true,
                    },
                    ..Options::default()
                };
                let model = Arc::new(fit(&tuning.train, &rules, &base));
                let detector = rules.clone().with_model(Arc::clone(&model));
                let prepared: Vec<Prepared> = tuning
                    .dev
                    .iter()
                    .map(|ex| detector.prepare(&ex.text))
                    .collect();
                let score = |decision: &Decision| {
                    scores(&Evaluation::of(&tuning.dev, |i, _| {
                        prepared[i].decide(&model, decision)
                    }))
                };
                let start = Decision {
                    thresholds: [0.4; 6],
                    veto: base.veto,
                };
                let decision = search_decision(start, score);
                let (f1, polarity) = score(&decision);
                results.push((
                    Options {
                        thresholds: decision.thresholds,
                        veto: decision.veto,
                        ..base
                    },
                    f1,
                    polarity,
                ));
            }
        }
    }
    results.sort_by(|a, b| worth((b.1, b.2)).total_cmp(&worth((a.1, a.2))));
    results
}

const POLARITY_NAMES: [&str; 4] = ["positive", "negative", "neutral", "not found"];

/// The evaluation as a table: per category, micro average, polarity accuracy, the
/// confusion tables, then the texts it got wrong.
pub fn render_evaluation(e: &Evaluation) -> String {
    let mut out = render_scores(e);
    if !e.misses.is_empty() {
        let _ = writeln!(out, "\nmisses:");
        for m in &e.misses {
            let _ = writeln!(
                out,
                "  {}\n    expected {}\n    found    {}",
                m.text, m.expected, m.found
            );
        }
    }
    out
}

/// What `signals train --by-writer` found: a line per group of writers, then the scores
/// of every text read by a model that had not seen its writer (without the misses, which
/// would be most of the corpus's hard texts).
pub fn render_by_writer(result: &ByWriter) -> String {
    let mut out = String::new();
    for (names, e) in &result.folds {
        let _ = writeln!(
            out,
            "{} writers, {} texts: micro-F1 {:.3} (precision {:.3}, recall {:.3}), polarity accuracy {:.3}",
            names.len(),
            e.texts,
            e.micro.f1,
            e.micro.precision,
            e.micro.recall,
            e.polarity_accuracy
        );
    }
    let _ = writeln!(
        out,
        "every text, read by a model that has not seen its writer:"
    );
    out.push_str(&render_scores(&result.pooled));
    let e = &result.nested;
    let _ = writeln!(
        out,
        "\neach group decided at the thresholds and veto that did best on the other groups' texts: micro-F1 {:.3} (precision {:.3}, recall {:.3}), polarity accuracy {:.3}",
        e.micro.f1, e.micro.precision, e.micro.recall, e.polarity_accuracy
    );
    let d = &result.decision;
    let _ = writeln!(
        out,
        "the decision that does best on every group's texts: thresholds {:?} (budget, timeline, technical, competitor, risk, commercial), veto {}",
        d.thresholds, d.veto
    );
    out
}

/// [`render_evaluation`] without the misses.
fn render_scores(e: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} texts", e.texts);
    let _ = writeln!(
        out,
        "{:<12} {:>4} {:>4} {:>4} {:>9} {:>7} {:>6}",
        "category", "tp", "fp", "fn", "precision", "recall", "F1"
    );
    for s in e.per_category.iter().chain(std::iter::once(&e.micro)) {
        let name = s.category.map_or("micro".to_string(), |c| c.to_string());
        let _ = writeln!(
            out,
            "{:<12} {:>4} {:>4} {:>4} {:>9.3} {:>7.3} {:>6.3}",
            name,
            s.true_positives,
            s.false_positives,
            s.false_negatives,
            s.precision,
            s.recall,
            s.f1
        );
    }
    let _ = writeln!(
        out,
        "polarity accuracy {:.3} ({} of {} labelled categories)",
        e.polarity_accuracy, e.polarity_correct, e.polarity_pairs
    );
    let _ = writeln!(out, "\npolarity confusion (rows expected, columns found):");
    let _ = write!(out, "{:<10}", "");
    for name in POLARITY_NAMES {
        let _ = write!(out, " {name:>9}");
    }
    let _ = writeln!(out);
    for (row, counts) in POLARITY_NAMES.iter().zip(&e.polarity_confusion) {
        let _ = write!(out, "{row:<10}");
        for n in counts {
            let _ = write!(out, " {n:>9}");
        }
        let _ = writeln!(out);
    }
    let names: Vec<String> = Category::ALL
        .iter()
        .map(ToString::to_string)
        .chain(std::iter::once("none".to_string()))
        .collect();
    let _ = writeln!(
        out,
        "\ncategory confusion (rows labelled, columns found in the same text):"
    );
    let _ = write!(out, "{:<11}", "");
    for name in &names {
        let _ = write!(out, " {name:>10}");
    }
    let _ = writeln!(out);
    for (row, counts) in names.iter().zip(&e.category_confusion) {
        let _ = write!(out, "{row:<11}");
        for n in counts {
            let _ = write!(out, " {n:>10}");
        }
        let _ = writeln!(out);
    }
    out
}

/// Reads a column mapping (JSON), or the default one.
pub fn read_mapping(path: Option<&Path>) -> anyhow::Result<Mapping> {
    let Some(path) = path else {
        return Ok(Mapping::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a column mapping", path.display()))
}

/// Reads a CRM export with `mapping`.
pub fn read_table(csv: &Path, mapping: &Mapping) -> anyhow::Result<Table> {
    let file = std::fs::File::open(csv).with_context(|| format!("opening {}", csv.display()))?;
    Table::read(std::io::BufReader::new(file), mapping)
        .with_context(|| format!("reading {}", csv.display()))
}

/// Reads and compiles a scoring model document.
pub fn read_model(path: &Path) -> anyhow::Result<CompiledModel> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let model: ScoringModel = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a scoring model", path.display()))?;
    CompiledModel::new(model).map_err(|e| {
        let problems: Vec<String> =
            e.0.iter()
                .map(|d| format!("  {}: {}", d.pointer, d.message))
                .collect();
        anyhow::anyhow!(
            "{}: invalid model:\n{}",
            path.display(),
            problems.join("\n")
        )
    })
}

/// AUC, lift at 10% and the calibration table.
pub fn render_backtest(b: &Backtest) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "leads {}  converted {} (base rate {:.1}%)",
        b.leads,
        b.converted,
        b.base_rate * 100.0
    );
    let _ = writeln!(out, "AUC {:.4}", b.auc);
    let _ = writeln!(out, "lift at 10% {:.2}", b.lift_at_10);
    let _ = writeln!(
        out,
        "{:>6} {:>6} {:>15} {:>10} {:>9}",
        "decile", "leads", "score", "predicted", "observed"
    );
    for d in &b.calibration {
        let _ = writeln!(
            out,
            "{:>6} {:>6} {:>6.1} – {:>6.1} {:>10} {:>8.1}%",
            d.decile,
            d.leads,
            d.min_score,
            d.max_score,
            d.predicted
                .map_or("—".to_string(), |p| format!("{:.1}%", p * 100.0)),
            d.observed * 100.0
        );
    }
    out
}

/// What `scoring suggest` tells the analyst on stderr: the split, the features with their
/// weights, what was left out, and the backtests.
pub fn render_suggestion(s: &Suggestion) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fitted on {} rows, {} held out",
        s.train_rows, s.holdout_rows
    );
    let _ = writeln!(out, "regularisation alpha {}", s.alpha);
    let _ = writeln!(out, "features (weight):");
    for f in &s.model.features {
        let _ = writeln!(out, "  {:>6.2}  {}", f.weight, f.label);
    }
    if !s.skipped.is_empty() {
        let _ = writeln!(out, "left out:");
        for (column, why) in &s.skipped {
            let _ = writeln!(out, "  {column}: {why}");
        }
    }
    let _ = writeln!(
        out,
        "tiers: warm ≥ {}, hot ≥ {}",
        s.model.tiers.warm, s.model.tiers.hot
    );
    let _ = writeln!(
        out,
        "\ntraining rows: AUC {:.4}, lift at 10% {:.2}",
        s.train.auc, s.train.lift_at_10
    );
    match &s.holdout {
        Some(h) => {
            let _ = writeln!(out, "\nheld-out rows:\n{}", render_backtest(h));
        }
        None => {
            let _ = writeln!(out, "no rows held out (--holdout-percent 0)");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: String, category: Option<Category>) -> LabelledText {
        serde_json::from_value(serde_json::json!({
            "text": text,
            "categories": category.map(|c| vec![c.as_str()]).unwrap_or_default(),
        }))
        .expect("a labelled text")
    }

    #[test]
    fn by_writer_reads_each_text_with_a_model_that_has_not_seen_its_writer() {
        let writers: Vec<(String, Vec<LabelledText>)> = (0..6)
            .map(|w| {
                let records = (0..30)
                    .map(|i| match i % 3 {
                        0 => record(
                            format!("报价单第{i}版，作者{w}"),
                            Some(Category::Commercial),
                        ),
                        1 => record(
                            format!("接口文档第{i}页，作者{w}"),
                            Some(Category::Technical),
                        ),
                        _ => record(format!("周末愉快{i}，作者{w}"), None),
                    })
                    .collect();
                (format!("w{w}"), records)
            })
            .collect();
        let readable = |records: &[LabelledText]| {
            records
                .iter()
                .filter(|r| corpus::split_of(&r.text) != Part::Test)
                .count()
        };
        let expected: usize = writers.iter().map(|(_, r)| readable(r)).sum();
        let result = by_writer(writers.clone(), 3, &Options::default()).expect("three groups");
        // Every writer is held out exactly once, and only train and dev texts are read.
        let mut names: Vec<String> = result.folds.iter().flat_map(|(n, _)| n.clone()).collect();
        names.sort();
        assert_eq!(names, ["w0", "w1", "w2", "w3", "w4", "w5"]);
        assert_eq!(result.pooled.texts, expected);
        assert_eq!(
            result.folds.iter().map(|(_, e)| e.texts).sum::<usize>(),
            expected
        );
        // The words that carry each category are shared by all writers, so unseen writers
        // are read well.
        assert!(result.pooled.micro.f1 > 0.9, "{:?}", result.pooled.micro);

        let e = by_writer(writers, 1, &Options::default()).unwrap_err();
        assert!(e.to_string().contains("between 2 and 6 groups"), "{e}");
    }
}
