//! Per-node executor overhead: the reference lead-scoring flow (5 nodes) executed in
//! memory, and a chain of `note` nodes that isolates the step machinery from CEL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use trellis_runtime::{CompiledFlow, Executor, Next, RunState};

fn reference() -> Value {
    json!({"schema": 1, "name": "ref", "nodes": [
        {"id": "hook", "type": "trigger", "config": {"kind": "webhook", "path": "lead"}},
        {"id": "score", "type": "set", "config": {"vars": {
            "industry_match": "trigger.body.properties.industry in ['ev-parts', 'battery'] ? 1.0 : 0.0",
            "score": "0.33 * vars.industry_match + 0.25 * min(double(trigger.body.properties.visits_7d) / 10.0, 1.0) + 0.22 * (trigger.body.event == 'whitepaper_download' ? 1.0 : 0.0) + 0.20 * min(double(trigger.body.properties.dwell_s) / 120.0, 1.0)"}}},
        {"id": "tier", "type": "switch", "config": {"cases": [{"port": "hot", "when": "vars.score >= 0.7"}, {"port": "warm", "when": "vars.score >= 0.4"}]}},
        {"id": "message", "type": "set", "config": {"vars": {"wecom": "{'touser': trigger.body.userId, 'msgtype': 'text', 'text': {'content': 'hot ' + trigger.body.userId}}"}}},
        {"id": "reply", "type": "respond", "config": {"body": "{'lead': trigger.body.userId, 'score': round(vars.score, 4), 'tier': steps.tier.output.port}"}}],
        "edges": [{"from": "hook", "to": "score"}, {"from": "score", "to": "tier"}, {"from": "tier", "port": "hot", "to": "message"},
                  {"from": "message", "to": "reply"}, {"from": "tier", "port": "warm", "to": "reply"}, {"from": "tier", "port": "default", "to": "reply"}]})
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
    let ex = Executor {
        flow,
        run_id: "bench",
        trigger,
        lead: None,
    };
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
