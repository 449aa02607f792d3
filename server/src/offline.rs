//! Commands that work on files, without a server: `trellis signals eval`, and the scoring
//! analyst's tools.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
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
