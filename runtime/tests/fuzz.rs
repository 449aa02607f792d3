//! Fuzzing the flow validator and the executor: random flow documents (well-formed and
//! not), random CEL (from a grammar, hostile shapes, and raw text) and random trigger
//! data. Whatever comes in, validation answers with diagnostics, a valid flow compiles,
//! and every run ends, parks or asks for a call within its step budget: nothing panics,
//! overflows or hangs.
//!
//! `cargo xtask test` runs a bounded number of cases; to fuzz for longer:
//!
//! ```sh
//! TRELLIS_FUZZ_SECS=600 cargo test --release -p trellis-runtime --test fuzz -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use trellis_model::validate::is_valid;
use trellis_model::{Expr, Scope, validate_value};
use trellis_runtime::{CallResult, CompiledFlow, Executor, Next, RunState};

/// Steps a fuzzed run may take before it is counted as stuck (the server's segment limit).
const MAX_STEPS: usize = 500;
/// Time one fuzzed run may take (every expression is priced, every step budgeted; this is
/// far above what that allows, so only a hang trips it).
const MAX_CASE_TIME: Duration = Duration::from_secs(60);

fn ident() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "trigger",
        "vars",
        "steps",
        "lead",
        "event",
        "x",
        "trigger.input",
        "trigger.input.l",
        "trigger.input.s",
        "trigger.input.m",
        "vars.a",
        "vars.b",
        "steps.n1.output",
        "steps.n2.output.a",
    ])
    .prop_map(str::to_owned)
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u32>().prop_map(|u| format!("{u}u")),
        (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
        "[a-z0-9 ]{0,6}".prop_map(|s| format!("'{s}'")),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("b'xy'".to_owned()),
        Just("duration('1h')".to_owned()),
        Just("timestamp('2026-01-01T00:00:00Z')".to_owned()),
        Just("has(trigger.input.m)".to_owned()),
    ]
}

/// CEL from a grammar of what the language has, nested a few levels.
fn cel() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![literal(), ident()];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let op = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in",
        ]);
        let func = prop::sample::select(vec![
            "size",
            "string",
            "int",
            "uint",
            "double",
            "bool",
            "type",
            "dyn",
            "min",
            "max",
            "has",
            "duration",
            "timestamp",
            "bytes",
        ]);
        let method = prop::sample::select(vec![
            "contains",
            "startsWith",
            "endsWith",
            "matches",
            "size",
        ]);
        let mac = prop::sample::select(vec!["map", "filter", "exists", "all", "exists_one"]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            (inner.clone(), "[a-z]{1,3}").prop_map(|(a, f)| format!("{a}.{f}")),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("{a}[{i}]")),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(|entries| {
                let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
            (func, prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (inner.clone(), method, inner.clone()).prop_map(|(t, m, a)| format!("{t}.{m}({a})")),
            (inner.clone(), mac, inner.clone())
                .prop_map(|(r, m, body)| format!("{r}.{m}(x, {body})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("round({a}, {b})")),
        ]
    })
}

/// Shapes meant to hurt: long chains, deep nesting, nested comprehensions over the input.
fn hostile() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "+1",
        "(",
        "[",
        "!",
        "-",
        ".a",
        "[0]",
        "size(",
        "true?1:",
        "[1].map(x,",
        "&&true",
        "trigger.input.l.map(a,",
    ]);
    (unit, 1usize..3000).prop_map(|(u, n)| {
        let mut s = String::from("1");
        if u.ends_with('(') || u.ends_with(',') || u == "[" {
            s = format!(
                "{}1{}",
                u.repeat(n),
                if u == "[" { "]" } else { ")" }.repeat(n)
            );
        } else {
            s.push_str(&u.repeat(n));
        }
        s
    })
}

/// What a node's config holds: mostly expressions that parse.
fn node_cel() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => cel(),
        1 => hostile(),
        1 => any::<String>(),
    ]
}

fn any_cel() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => cel(),
        2 => hostile(),
        1 => any::<String>(),
        1 => (cel(), any::<String>()).prop_map(|(a, b)| format!("{a}{b}")),
    ]
}

/// Trigger data: JSON of any shape, with long lists to iterate over.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[a-z\\u{4e00}-\\u{4e10}]{0,8}".prop_map(Value::String),
        (0usize..3000).prop_map(|n| json!((0..n).collect::<Vec<_>>())),
        // Many distinct keys, side by side and across a list's elements.
        (0usize..3000)
            .prop_map(|n| { Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect()) }),
        (0usize..3000).prop_map(|n| {
            Value::Array((0..n).map(|i| json!({ format!("k{i}"): i })).collect())
        }),
    ];
    leaf.prop_recursive(6, 64, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Output ports a node of `kind` has (besides `error`).
fn ports(kind: &str) -> &'static [&'static str] {
    match kind {
        "branch" => &["true", "false"],
        "switch" => &["p1", "p2", "default"],
        "wait_for_event" => &["event", "timeout"],
        "fail" => &["error"],
        _ => &["", "error"],
    }
}

/// A node of a random type, usually with a config that suits it.
fn node(i: usize) -> impl Strategy<Value = (&'static str, Value)> {
    let kind = prop::sample::select(vec![
        "set",
        "set",
        "set",
        "branch",
        "branch",
        "switch",
        "respond",
        "respond",
        "fail",
        "wait",
        "wait_for_event",
        "note",
        "score",
        "connector",
        "no_such_type",
    ]);
    (kind, node_cel(), node_cel(), json_value(), any::<u8>()).prop_map(
        move |(kind, a, b, junk, pick)| {
            let config = match (kind, pick % 8) {
                (_, 0) => junk,
                ("set", _) => json!({"vars": {"a": a, "b": b}}),
                ("branch", _) => json!({"when": a}),
                ("switch", _) => {
                    json!({"cases": [{"when": a, "port": "p1"}, {"when": b, "port": "p2"}]})
                }
                ("respond", _) => json!({"status": 200, "body": a}),
                ("fail", _) => json!({"message": format!("failed: {{{{{a}}}}}")}),
                ("wait", _) => json!({"duration": "1s"}),
                ("wait_for_event", _) => json!({"event": "e", "timeout": "1s", "match": a}),
                ("score", _) => json!({"lead": a}),
                ("connector", _) => json!({"url": format!("{{{{{a}}}}}")}),
                _ => json!({}),
            };
            let mut n =
                json!({"id": format!("n{i}"), "type": kind, "config": config, "position": [i, 0]});
            if pick % 7 == 0 {
                n["timeout"] = json!("1ms");
            }
            if kind == "connector" {
                n["connector"] = json!("http-json@1");
                n["operation"] = json!("request");
                n["input"] = json!({"x": format!("{{{{{b}}}}}")});
            }
            (kind, n)
        },
    )
}

/// A flow document: a trigger and random nodes, each reached from an earlier one through a
/// port it has, plus a few random edges (some dangling, some closing cycles).
fn flow_doc() -> impl Strategy<Value = Value> {
    (1usize..8).prop_flat_map(|n| {
        let nodes: Vec<_> = (1..=n).map(node).collect();
        let links = prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), n);
        let extra = prop::collection::vec(
            (
                0..=n,
                0..=n + 1,
                prop::sample::select(vec!["", "true", "error", "event", "p1", "nope"]),
            ),
            0..2,
        );
        (nodes, links, extra, any::<bool>()).prop_map(move |(nodes, links, extra, webhook)| {
            let trigger = if webhook {
                json!({"id": "n0", "type": "trigger", "config": {"kind": "webhook", "path": "f"}, "position": [0, 0]})
            } else {
                json!({"id": "n0", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]})
            };
            let kinds: Vec<&str> = std::iter::once("trigger").chain(nodes.iter().map(|(k, _)| *k)).collect();
            let mut edges = Vec::new();
            for (i, (from, port)) in links.iter().enumerate() {
                let to = i + 1;
                let from = from.index(to);
                let port = port.get(ports(kinds[from]));
                let mut e = json!({"from": format!("n{from}"), "to": format!("n{to}")});
                if !port.is_empty() {
                    e["port"] = json!(port);
                }
                edges.push(e);
            }
            for (from, to, port) in extra {
                let mut e = json!({"from": format!("n{from}"), "to": format!("n{to}")});
                if !port.is_empty() {
                    e["port"] = json!(port);
                }
                edges.push(e);
            }
            let mut all = vec![trigger];
            all.extend(nodes.into_iter().map(|(_, v)| v));
            json!({"schema": 1, "name": "fuzzed", "nodes": all, "edges": edges})
        })
    })
}

/// Validates, compiles and runs one document; panics only on a broken promise. True when
/// the document was valid and ran.
fn check_flow(doc: &Value, input: &Value) -> bool {
    let (parsed, diagnostics) = validate_value(doc);
    let Some(flow) = parsed.filter(|_| is_valid(&diagnostics)) else {
        return false;
    };
    let compiled = CompiledFlow::compile(flow).expect("a valid flow compiles");
    let trigger = json!({"input": input, "body": input});
    let ex = Executor::new(&compiled, "fuzz", &trigger);
    let mut state = RunState::start(compiled.trigger_id().expect("trigger"));
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let started = Instant::now();
    for _ in 0..MAX_STEPS {
        assert!(
            started.elapsed() < MAX_CASE_TIME,
            "a run took over {MAX_CASE_TIME:?}: {doc}"
        );
        let (_, next) = ex.step(&mut state, now, 0.5);
        match next {
            Next::Continue => {}
            Next::Call(_) => {
                state.complete_call(CallResult::Err {
                    error: trellis_runtime::connector::ConnectorError::NotFound {
                        message: "no connectors while fuzzing".into(),
                    },
                    version: None,
                });
            }
            Next::Park { .. } | Next::Succeeded | Next::Failed { .. } => return true,
        }
    }
    // Without a wait to park at, a valid flow has no cycle: it ends well within this.
    panic!("a run took {MAX_STEPS} steps without ending or parking: {doc}");
}

/// Compiles and evaluates one expression against random data; true when it compiled.
fn check_expr(src: &str, data: &Value) -> bool {
    let Ok(e) = Expr::compile(src) else {
        return false;
    };
    let scope = Scope::new()
        .with("trigger", json!({"input": data}))
        .with("vars", json!({"a": data, "b": 1}))
        .with("steps", json!({"n1": {"output": data}}));
    let _ = e.eval(&scope);
    let _ = e.step_refs();
    true
}

/// Cases a plain `cargo test` runs; `TRELLIS_FUZZ_SECS` runs for that long instead.
fn runner_for(name: &str) -> (TestRunner, Option<Instant>) {
    let deadline = std::env::var("TRELLIS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let cases = if deadline.is_some() { u32::MAX } else { 1000 };
    // A fixed seed per name in CI (reproducible); a fresh one when fuzzing for long.
    let rng = match deadline {
        Some(_) => TestRng::from_seed(RngAlgorithm::ChaCha, &rand_seed()),
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    let _ = name;
    (
        TestRunner::new_with_rng(
            Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            },
            rng,
        ),
        deadline,
    )
}

/// `TRELLIS_FUZZ_SEED` (64 hex digits, as printed by an earlier run) replays that run;
/// otherwise a fresh seed, printed.
fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Ok(hex) = std::env::var("TRELLIS_FUZZ_SEED") {
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = hex
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .expect("TRELLIS_FUZZ_SEED: 64 hex digits");
        }
        return seed;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    eprintln!("fuzz seed: {} (TRELLIS_FUZZ_SEED replays it)", hex(&seed));
    seed
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `check` over values of `strategy` until the cases or the deadline run out, and
/// requires that at least a tenth of the cases got past the first checks (`check` says so),
/// so the fuzzing reaches what it means to.
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(&S::Value) -> bool)
where
    S::Value: std::fmt::Debug,
{
    let (mut runner, deadline) = runner_for(name);
    let ran = std::cell::Cell::new(0u64);
    let deep = std::cell::Cell::new(0u64);
    let result = runner.run(&strategy, |v| {
        if deadline.is_some_and(|d| Instant::now() > d) {
            // Ends the run (too many rejections) without a failure.
            return Err(TestCaseError::reject("time is up"));
        }
        if check(&v) {
            deep.set(deep.get() + 1);
        }
        ran.set(ran.get() + 1);
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(proptest::test_runner::TestError::Abort(_)) if deadline.is_some() => {}
        Err(e) => panic!("{name}: {e}"),
    }
    eprintln!(
        "{name}: {} cases, {} past the first checks",
        ran.get(),
        deep.get()
    );
    assert!(
        deep.get() * 10 >= ran.get(),
        "{name}: only {} of {} cases got past the first checks",
        deep.get(),
        ran.get()
    );
}

#[test]
fn flows_validate_compile_and_run_without_panicking() {
    fuzz("flows", (flow_doc(), json_value()), |(doc, input)| {
        check_flow(doc, input)
    });
}

#[test]
fn expressions_compile_and_evaluate_without_panicking() {
    fuzz("expressions", (any_cel(), json_value()), |(src, data)| {
        check_expr(src, data)
    });
}

/// Random documents with one character inserted anywhere: whatever still parses as JSON
/// gets diagnostics, each naming its place.
#[test]
fn mangled_documents_get_diagnostics() {
    fuzz(
        "documents",
        (flow_doc(), any::<u16>(), any::<char>()),
        |(doc, at, c)| {
            let mut text = doc.to_string();
            let at = (*at as usize) % text.len().max(1);
            let at = (0..=at)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.insert(at, *c);
            let mut m = Map::new();
            m.insert("nodes".into(), doc["nodes"].clone());
            let _ = validate_value(&Value::Object(m));
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => {
                    let (_, diagnostics) = validate_value(&v);
                    assert!(
                        diagnostics
                            .iter()
                            .all(|d| d.pointer.is_empty() || d.pointer.starts_with('/')),
                        "{diagnostics:?}"
                    );
                    true
                }
                Err(_) => false,
            }
        },
    );
}
