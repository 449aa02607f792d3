//! Reading one utterance: the lexicon's rules, then the model over its n-grams.
//! `cargo bench -p trellis-model --bench signals`; the README reports the figures.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use trellis_model::signals::Detector;

const UTTERANCES: [&str; 4] = [
    "预算上周批下来了，不过另外一家的报价比你们低不少，月底前要定。",
    "嗯…那个，切换那天要是停线了，谁来负责？我们IT就两个人。",
    "We're also talking to the incumbent, and the budget is frozen until Q3.",
    "好的，明天下午三点见。",
];

fn detect(c: &mut Criterion) {
    let detector = Detector::builtin();
    for (i, text) in UTTERANCES.iter().enumerate() {
        c.bench_function(&format!("detect utterance {i}"), |b| {
            b.iter(|| detector.detect(black_box(text)))
        });
    }
    let rules = Detector::builtin_lexicon();
    c.bench_function("detect utterance 0, lexicon only", |b| {
        b.iter(|| rules.detect(black_box(UTTERANCES[0])))
    });
}

criterion_group!(benches, detect);
criterion_main!(benches);
