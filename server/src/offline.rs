//! Commands that work on files, without a server: `trellis signals eval`, and the scoring
//! analyst's tools.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use trellis_analytics::{Mapping, Suggestion, Table};
use trellis_model::backtest::Backtest;
use trellis_model::scoring::{CompiledModel, ScoringModel};
use trellis_model::signals::{Detector, Evaluation, LabelledText, Lexicon};

/// Reads labelled texts, one JSON object per line (`{"text", "categories", "polarity"}`).
pub fn read_labelled(path: &Path) -> anyhow::Result<Vec<LabelledText>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a labelled text", path.display(), i + 1))
        })
        .collect()
}

/// The detector over `lexicon` (a JSON file) or the built-in lexicon.
pub fn detector(lexicon: Option<&Path>) -> anyhow::Result<Detector> {
    let Some(path) = lexicon else {
        return Ok(Detector::builtin());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lexicon: Lexicon = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a signal lexicon", path.display()))?;
    Detector::new(lexicon).with_context(|| format!("{}", path.display()))
}

/// The evaluation as a table: per category, micro average, polarity accuracy, then the
/// texts it got wrong.
pub fn render_evaluation(e: &Evaluation) -> String {
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
