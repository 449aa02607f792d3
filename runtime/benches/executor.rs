//! Per-node executor overhead: the reference lead-scoring flow (5 nodes) executed in
//! memory, a chain of `note` nodes that isolates the step machinery from CEL, and chains of
//! `set` nodes each reading the one before (1,000 and 10,000 nodes: the cost per node must
//! not grow with the length).

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

/// `n` `set` nodes, each `x = steps.<previous>.output.x + 1`.
fn set_chain(n: usize) -> Value {
    let mut nodes = vec![json!({"id": "t", "type": "trigger", "config": {"kind": "manual"}})];
    let mut edges = Vec::new();
    let mut prev = "t".to_owned();
    for i in 0..n {
        let id = format!("n{i}");
        let x = if i == 0 {
            "1".to_owned()
        } else {
            format!("steps.n{}.output.x + 1", i - 1)
        };
        nodes.push(json!({"id": id, "type": "set", "config": {"vars": {"x": x}}}));
        edges.push(json!({"from": prev, "to": id}));
        prev = id;
    }
    json!({"schema": 1, "name": "set chain", "nodes": nodes, "edges": edges})
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
    let mut group = c.benchmark_group("set chain");
    group.sample_size(10);
    for n in [1_000, 10_000] {
        let flow = CompiledFlow::compile(serde_json::from_value(set_chain(n)).expect("doc"))
            .expect("compile");
        assert_eq!(run_to_end(&flow, &empty), n + 1);
        group.bench_function(format!("{n} set nodes, each reading the one before"), |b| {
            b.iter(|| run_to_end(&flow, &empty))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
