//! Executor behaviour, driven step by step with an explicit clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use trellis_runtime::{CompiledFlow, Executor, Next, RunState};

/// The reference lead-scoring flow, shared with the benchmarks.
const REFERENCE: &str = include_str!("../../templates/flows/reference-lead-scoring.json");

fn flow(v: Value) -> std::sync::Arc<CompiledFlow> {
    CompiledFlow::compile(serde_json::from_value(v).unwrap()).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
}

/// Runs until the executor parks or finishes; returns the journal and the last `Next`.
fn drive(ex: &Executor<'_>, state: &mut RunState, now: DateTime<Utc>) -> (Vec<String>, Next) {
    let mut journal = Vec::new();
    loop {
        let (record, next) = ex.step(state, now, 0.5);
        if let Some(r) = record {
            journal.push(format!("{}:{}#{}", r.node, r.status.as_str(), r.attempt));
        }
        if next != Next::Continue {
            return (journal, next);
        }
    }
}

#[test]
fn reference_flow_scores_and_responds() {
    let f = flow(serde_json::from_str(REFERENCE).unwrap());
    let trigger = json!({"body": {"userId": "u1", "event": "whitepaper_download", "properties": {"industry": "battery", "visits_7d": 4, "dwell_s": 60}}});
    let ex = Executor::new(&f, "r1", &trigger);
    let mut state = RunState::start("hook");
    let (journal, next) = drive(&ex, &mut state, t0());
    assert_eq!(next, Next::Succeeded);
    assert_eq!(
        journal,
        [
            "hook:completed#1",
            "score:completed#1",
            "tier:completed#1",
            "message:completed#1",
            "reply:completed#1"
        ]
    );
    let response = state.response.unwrap();
    assert_eq!(
        response.body,
        json!({"lead": "u1", "score": 0.75, "tier": "hot"})
    );
    assert_eq!(
        state.vars["wecom"]["text"]["content"],
        json!("高意向线索 u1 评分 0.75")
    );
}

#[test]
fn wait_parks_until_due_then_continues() {
    let f = flow(json!({"schema": 1, "name": "w", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "w", "type": "wait", "config": {"duration": "2s"}},
        {"id": "r", "type": "respond", "config": {"body": "'done'"}}],
        "edges": [{"from": "t", "to": "w"}, {"from": "w", "to": "r"}]}));
    let trigger = json!({"input": {}});
    let ex = Executor::new(&f, "r", &trigger);
    let mut state = RunState::start("t");
    let (journal, next) = drive(&ex, &mut state, t0());
    assert_eq!(journal, ["t:completed#1", "w:waiting#1"]);
    assert_eq!(
        next,
        Next::Park {
            until: t0() + Duration::seconds(2),
            subscription: None
        }
    );
    // Woken early (e.g. a timer claimed on another clock): parks again, same deadline.
    let (_, next) = drive(&ex, &mut state, t0() + Duration::seconds(1));
    assert_eq!(
        next,
        Next::Park {
            until: t0() + Duration::seconds(2),
            subscription: None
        }
    );
    // State survives a round trip through JSON, as it does through the database.
    let mut state: RunState =
        serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
    let (journal, next) = drive(&ex, &mut state, t0() + Duration::seconds(2));
    assert_eq!(journal, ["w:completed#1", "r:completed#1"]);
    assert_eq!(next, Next::Succeeded);
}

#[test]
fn wait_for_event_resumes_on_event_or_times_out() {
    let f = flow(json!({"schema": 1, "name": "e", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "w", "type": "wait_for_event", "config": {"event": "demo_booked", "match": "event.lead == trigger.input.lead", "timeout": "1d"}},
        {"id": "yes", "type": "set", "config": {"vars": {"booked": "true"}}},
        {"id": "no", "type": "set", "config": {"vars": {"booked": "false"}}}],
        "edges": [{"from": "t", "to": "w"}, {"from": "w", "port": "event", "to": "yes"}, {"from": "w", "port": "timeout", "to": "no"}]}));
    let trigger = json!({"input": {"lead": "l1"}});
    let ex = Executor::new(&f, "r", &trigger);

    let mut state = RunState::start("t");
    let (_, next) = drive(&ex, &mut state, t0());
    let Next::Park {
        subscription: Some(sub),
        ..
    } = next
    else {
        panic!("{next:?}")
    };
    assert_eq!(sub.event, "demo_booked");
    assert!(state.deliver("w", json!({"lead": "l1"})));
    let (journal, next) = drive(&ex, &mut state, t0() + Duration::hours(1));
    assert_eq!(journal, ["w:completed#1", "yes:completed#1"]);
    assert_eq!(
        (next, state.vars["booked"].clone()),
        (Next::Succeeded, json!(true))
    );

    let mut state = RunState::start("t");
    drive(&ex, &mut state, t0());
    let (journal, _) = drive(&ex, &mut state, t0() + Duration::days(1));
    assert_eq!(journal, ["w:completed#1", "no:completed#1"]);
    assert_eq!(state.vars["booked"], json!(false));
}

#[test]
fn retries_then_routes_to_the_error_port() {
    let f = flow(json!({"schema": 1, "name": "r", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "bad", "type": "set", "config": {"vars": {"x": "trigger.input.missing + 1"}},
         "retry": {"max_attempts": 3, "backoff": "1s", "jitter": false}},
        {"id": "handler", "type": "set", "config": {"vars": {"handled": "steps.bad.output.error != ''"}}}],
        "edges": [{"from": "t", "to": "bad"}, {"from": "bad", "port": "error", "to": "handler"}]}));
    let trigger = json!({"input": {}});
    let ex = Executor::new(&f, "r", &trigger);
    let mut state = RunState::start("t");
    let (journal, next) = drive(&ex, &mut state, t0());
    assert_eq!(journal, ["t:completed#1", "bad:retrying#1"]);
    assert_eq!(
        next,
        Next::Park {
            until: t0() + Duration::seconds(1),
            subscription: None
        }
    );
    let (journal, _) = drive(&ex, &mut state, t0() + Duration::seconds(1));
    assert_eq!(journal, ["bad:retrying#2"]);
    let (journal, next) = drive(&ex, &mut state, t0() + Duration::seconds(3));
    assert_eq!(journal, ["bad:failed#3", "handler:completed#1"]);
    assert_eq!(next, Next::Succeeded);
    assert_eq!(state.vars["handled"], json!(true));
}

#[test]
fn failure_without_handler_fails_the_run() {
    let f = flow(json!({"schema": 1, "name": "f", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "stop", "type": "fail", "config": {"message": "lead {{trigger.input.lead}} rejected"}}],
        "edges": [{"from": "t", "to": "stop"}]}));
    let trigger = json!({"input": {"lead": "l9"}});
    let ex = Executor::new(&f, "r", &trigger);
    let mut state = RunState::start("t");
    let (journal, next) = drive(&ex, &mut state, t0());
    assert_eq!(journal, ["t:completed#1", "stop:failed#1"]);
    assert_eq!(
        next,
        Next::Failed {
            error: "node stop: lead l9 rejected".into()
        }
    );
}

#[test]
fn relative_dates_compare_with_the_steps_clock() {
    // "Visited within the last 7 days", as the condition builder writes it.
    let f = flow(json!({"schema": 1, "name": "最近访问", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
        {"id": "b", "type": "branch", "config": {
            "when": "timestamp(trigger.input.visited_at) >= timestamp(now) - duration('168h')"}, "position": [200, 0]},
        {"id": "recent", "type": "set", "config": {"vars": {"recent": "true"}}, "position": [400, 0]},
        {"id": "stale", "type": "set", "config": {"vars": {"recent": "false"}}, "position": [400, 100]}],
        "edges": [{"from": "t", "to": "b"}, {"from": "b", "port": "true", "to": "recent"},
                  {"from": "b", "port": "false", "to": "stale"}]}));
    let trigger = json!({"input": {"visited_at": "2026-10-28T09:00:00+08:00"}});
    for (now, recent) in [(t0(), true), (t0() + Duration::days(10), false)] {
        let ex = Executor::new(&f, "r1", &trigger);
        let mut state = RunState::start("t");
        let (_, next) = drive(&ex, &mut state, now);
        assert_eq!(next, Next::Succeeded);
        assert_eq!(state.vars["recent"], json!(recent), "at {now}");
    }
}
