//! Per-node executor overhead: the reference lead-scoring flow (5 nodes) executed in
//! memory, and a chain of `note` nodes that isolates the step machinery from CEL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use trellis_runtime::{CompiledFlow, Executor, Next, RunState};

fn reference() -> Value {
    serde_json::from_str(include_str!(
        "../../templates/flows/reference-lead-scoring.json"
    ))
    .expect("reference flow")
}

fn chain(n: usize) -> Value {
    let mut nodes = vec![json!({"id": "t", "type": "trigger", "config": {"kind": "manual"}})];
    let mut edges = Vec::new();
    let mut prev = "t".to_owned();
    for i in 0..n {
        let id = format!("n{i}");
        nodes.push(json!({"id": id, "type": "note", "config": {"text": ""}}));
        edges.push(json!({"from": prev, "to": id}));
        prev = id;
    }
    json!({"schema": 1, "name": "chain", "nodes": nodes, "edges": edges})
}

fn run_to_end(flow: &CompiledFlow, trigger: &Value) -> usize {
    let ex = Executor::new(flow, "bench", trigger);
    let mut state = RunState::start(flow.trigger_id().unwrap_or("t"));
    let now = Utc::now();
    let mut steps = 0;
    loop {
        let (_, next) = ex.step(&mut state, now, 0.5);
        steps += 1;
        if next != Next::Continue {
            return steps;
        }
    }
}

fn bench(c: &mut Criterion) {
    let flow =
        CompiledFlow::compile(serde_json::from_value(reference()).expect("doc")).expect("compile");
    let trigger = json!({"body": {"userId": "u1", "event": "whitepaper_download", "properties": {"industry": "battery", "visits_7d": 9, "dwell_s": 130}}});
    assert_eq!(run_to_end(&flow, &trigger), 5);
    c.bench_function("reference flow, 5 nodes (CEL included)", |b| {
        b.iter(|| run_to_end(&flow, &trigger))
    });
    let chain =
        CompiledFlow::compile(serde_json::from_value(chain(100)).expect("doc")).expect("compile");
    let empty = json!({"input": {}});
    c.bench_function("100 note nodes (step machinery only)", |b| {
        b.iter(|| run_to_end(&chain, &empty))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
