//! The signal corpus (`model/signals/corpus`): big and varied enough, labelled by the
//! guide's rules, split by hash — and training never reads its test part.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use trellis_model::signals::corpus::{self, Part, Tuning};
use trellis_model::signals::learned::{Options, fit};
use trellis_model::signals::{Category, Detector, LabelledText, Model, Polarity};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("signals/corpus")
}

/// Every record, with the file it came from.
fn records() -> Vec<(String, LabelledText)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("model/signals/corpus exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable corpus file");
        let name = f
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        for r in corpus::parse_jsonl(&text).unwrap_or_else(|e| panic!("{name}:{e}")) {
            out.push((name.clone(), r));
        }
    }
    out
}

fn meta(line: &str) -> serde_json::Value {
    serde_json::from_str(line).expect("a JSON line")
}

#[test]
fn the_corpus_is_large_varied_and_labelled_by_the_guide() {
    let all = records();
    assert!(all.len() >= 600, "{} records", all.len());
    let texts: BTreeSet<&str> = all.iter().map(|(_, r)| r.text.trim()).collect();
    assert_eq!(texts.len(), all.len(), "a text is in the corpus twice");

    let mut per_category: BTreeMap<Category, usize> = BTreeMap::new();
    let mut per_polarity: BTreeMap<(Category, Polarity), usize> = BTreeMap::new();
    let mut none = 0;
    for (_, r) in &all {
        if r.categories.is_empty() {
            none += 1;
        }
        for c in &r.categories {
            *per_category.entry(*c).or_default() += 1;
            *per_polarity
                .entry((*c, r.polarity.get(c).copied().unwrap_or_default()))
                .or_default() += 1;
        }
    }
    for c in Category::ALL {
        assert!(
            per_category.get(&c).copied().unwrap_or(0) >= 60,
            "{c}: {per_category:?}"
        );
    }
    for c in [Category::Budget, Category::Timeline] {
        for p in [Polarity::Positive, Polarity::Negative, Polarity::Neutral] {
            assert!(
                per_polarity.get(&(c, p)).copied().unwrap_or(0) >= 30,
                "{c} {p:?}: {per_polarity:?}"
            );
        }
    }
    assert!(none >= 60, "{none} hard negatives");

    // Languages, industries and registers, from each record's own fields.
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for f in std::fs::read_dir(corpus_dir()).expect("the corpus folder") {
        let text = std::fs::read_to_string(f.expect("an entry").path()).expect("a corpus file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let m = meta(line);
            // Workspace labels joined to the corpus may not say; the written files do.
            for key in ["lang", "industry", "register"] {
                if let Some(value) = m[key].as_str() {
                    seen.entry(key).or_default().insert(value.to_owned());
                }
            }
        }
    }
    for (key, want) in [
        ("lang", &["zh", "en", "mixed"][..]),
        (
            "industry",
            &[
                "manufacturing",
                "saas",
                "retail",
                "medical_devices",
                "semiconductors",
            ][..],
        ),
        ("register", &["chat", "email", "meeting"][..]),
    ] {
        for w in want {
            assert!(seen[key].contains(*w), "no {key} {w}: {:?}", seen[key]);
        }
    }

    let parts: BTreeMap<Part, usize> = all.iter().fold(BTreeMap::new(), |mut m, (_, r)| {
        *m.entry(corpus::split_of(&r.text)).or_default() += 1;
        m
    });
    assert!(parts[&Part::Test] >= 100, "{parts:?}");
}

fn train(records: Vec<LabelledText>) -> Model {
    let tuning = Tuning::new(records);
    let mut all = tuning.train;
    all.extend(tuning.dev);
    fit(&all, &Detector::builtin_lexicon(), &Options::default())
}

/// How the test part stays untouched: training reads the corpus through `Tuning`, which
/// drops test records, so changing or removing every one of them changes nothing.
#[test]
fn training_never_reads_the_test_part() {
    let all: Vec<LabelledText> = records().into_iter().map(|(_, r)| r).collect();
    let model = train(all.clone());
    let scrambled: Vec<LabelledText> = all
        .iter()
        .cloned()
        .map(|mut r| {
            if corpus::split_of(&r.text) == Part::Test {
                r.categories = if r.categories.is_empty() {
                    Category::ALL.to_vec()
                } else {
                    Vec::new()
                };
                r.polarity.clear();
            }
            r
        })
        .collect();
    assert_eq!(model.to_json(), train(scrambled).to_json());
    let without: Vec<LabelledText> = all
        .iter()
        .filter(|r| corpus::split_of(&r.text) != Part::Test)
        .cloned()
        .collect();
    assert_eq!(model.to_json(), train(without).to_json());
}

/// The model in the build is the one `trellis signals train` makes from this corpus and
/// lexicon: nobody edits it by hand, and nobody forgets to retrain.
#[test]
fn the_shipped_model_is_what_training_gives() {
    let all: Vec<LabelledText> = records().into_iter().map(|(_, r)| r).collect();
    let trained = train(all);
    assert!(
        trained.to_json() == Model::builtin_json(),
        "model/signals/model.json is not what the corpus trains to: run `cargo run --bin trellis -- signals train`"
    );
}
