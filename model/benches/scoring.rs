//! Scoring costs, in memory: one event folded into a lead's aggregates and the lead
//! rescored (the work `POST /api/v1/events` adds per event), and rescoring 100,000 leads
//! after a weight change (the compute part of publishing a model; `cargo xtask
//! bench-intent` measures the whole server path).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use trellis_model::scoring::{BehaviourState, CompiledModel, EventView, ScoringModel};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_795_000_000_000;

fn model(industry: f64) -> CompiledModel {
    let doc: ScoringModel = serde_json::from_value(json!({
        "schema": 1, "name": "bench",
        "features": [
            { "id": "industry", "label": "行业", "weight": industry,
              "source": { "kind": "fit", "attribute": "industry" },
              "transform": { "type": "categorical", "values": { "新能源汽车零部件": 1.0, "机械": 0.5 }, "other": 0.1 } },
            { "id": "employees", "label": "规模", "weight": 15,
              "source": { "kind": "fit", "attribute": "employees" },
              "transform": { "type": "bins", "bins": [ { "below": 50, "level": 0.1 }, { "below": 500, "level": 0.5 }, { "level": 1.0 } ] } },
            { "id": "pricing", "label": "价格页浏览", "weight": 40.0 - industry + 15.0,
              "source": { "kind": "behaviour", "event": "page_view",
                          "filter": "event.properties.category == 'pricing'",
                          "aggregate": "count", "window_days": 7, "half_life_days": 3 },
              "transform": { "type": "cap", "cap": 5 } },
            { "id": "docs", "label": "技术文档下载", "weight": 30,
              "source": { "kind": "behaviour", "event": "download", "aggregate": "exists", "window_days": 30 },
              "transform": { "type": "cap", "cap": 1 } }
        ],
        "tiers": { "warm": 30, "hot": 60 }, "stages": { "mql": 30, "sql": 60 }
    }))
    .unwrap();
    CompiledModel::new(doc).unwrap()
}

fn event(i: i64) -> EventView {
    let category = if i % 3 == 0 { "pricing" } else { "blog" };
    EventView {
        kind: if i % 7 == 0 { "download" } else { "page_view" }.into(),
        at: NOW - (i % 20) * DAY / 2,
        properties: json!({ "category": category, "url": format!("/p/{i}") }),
    }
}

fn lead(i: i64) -> Value {
    let industries = ["新能源汽车零部件", "机械", "零售", "软件"];
    json!({ "industry": industries[(i % 4) as usize], "employees": (i * 37) % 2000 })
}

fn benches(c: &mut Criterion) {
    let m = model(30.0);
    let history: Vec<EventView> = (0..20).map(event).collect();
    let state = m.replay(&history);
    let attributes = lead(1);
    let next = event(21);
    c.bench_function("scoring/event_apply_and_rescore", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| {
                m.apply(&mut s, &next);
                m.rate(&attributes, &s, NOW)
            },
            BatchSize::SmallInput,
        )
    });
    // What the lead card and the `score` node add: every contribution explained.
    c.bench_function("scoring/score_with_explanation", |b| {
        b.iter(|| m.score(&attributes, &state, NOW))
    });

    // 100,000 leads with ~10 events of history each, then a weight change.
    let leads: Vec<(Value, BehaviourState)> = (0..100_000i64)
        .map(|i| {
            let events: Vec<EventView> = (0..(i % 20)).map(|k| event(i + k)).collect();
            (lead(i), m.replay(&events))
        })
        .collect();
    let changed = model(33.0);
    let mut group = c.benchmark_group("scoring");
    group.sample_size(10);
    group.bench_function("rescore_100k_leads_after_weight_change", |b| {
        b.iter(|| {
            let mut hot = 0usize;
            for (attributes, state) in &leads {
                let s = changed.rate(attributes, state, NOW);
                hot += usize::from(s.tier == trellis_model::scoring::Tier::Hot);
            }
            hot
        })
    });
    group.finish();
}

criterion_group!(scoring, benches);
criterion_main!(scoring);
