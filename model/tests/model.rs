//! Data-driven tests of validation, diff and edits: one small case per behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use expect_test::{Expect, expect};
use serde_json::{Value, json};
use trellis_model::{Edit, FlowDoc, diff, validate_value};

/// A valid base flow: trigger → branch → (true) respond.
fn base() -> Value {
    json!({
        "schema": 1, "name": "t",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
            {"id": "hot", "type": "branch", "config": {"when": "trigger.input.score >= 70.0"}},
            {"id": "reply", "type": "respond", "config": {"body": "{'ok': true}"}}
        ],
        "edges": [
            {"from": "start", "to": "hot"},
            {"from": "hot", "port": "true", "to": "reply"}
        ]
    })
}

/// Applies `patch` (pointer → new value; `null` removes an array item or key) to `base()`
/// and renders the diagnostics one per line.
fn check(patch: &[(&str, Value)], expected: Expect) {
    let mut doc = base();
    for (pointer, value) in patch {
        set(&mut doc, pointer, value.clone());
    }
    let (_, diagnostics) = validate_value(&doc);
    let rendered: Vec<String> = diagnostics
        .iter()
        .map(|d| {
            let pos = d
                .position
                .as_ref()
                .map(|p| format!(" @{}:{}", p.line, p.column))
                .unwrap_or_default();
            format!(
                "{:?} {} {} [{}]{pos}",
                d.severity,
                d.code,
                d.pointer,
                d.node.as_deref().unwrap_or("-")
            )
        })
        .collect();
    expected.assert_eq(&rendered.join("\n"));
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Array(items) => {
            let i: usize = key.parse().unwrap();
            if value.is_null() {
                items.remove(i);
            } else if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        Value::Object(map) => {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_owned(), value);
            }
        }
        _ => panic!("{parent} is not a container"),
    }
}

#[test]
fn valid_flow_has_no_diagnostics() {
    check(&[], expect![[""]]);
}

#[test]
fn malformed_document() {
    check(
        &[("/nodes/0/id", json!("bad id!"))],
        expect![[r#"Error malformed /nodes/0/id [bad id!]"#]],
    );
    check(
        &[("/schema", json!(2))],
        expect![[r#"Error malformed /schema [-]"#]],
    );
    check(
        &[("/extra", json!(1))],
        expect![[r#"Error malformed  [-]"#]],
    );
}

#[test]
fn unknown_node_type() {
    check(
        &[("/nodes/1/type", json!("brnch"))],
        expect![[r#"Error unknown_node_type /nodes/1/type [hot]"#]],
    );
}

#[test]
fn bad_config() {
    check(
        &[("/nodes/1/config", json!({"when": 5}))],
        expect![[r#"Error invalid_config /nodes/1/config/when [hot]"#]],
    );
    check(
        &[("/nodes/1/config", json!({}))],
        expect![[r#"Error invalid_config /nodes/1/config [hot]"#]],
    );
    check(
        &[("/nodes/0/config", json!({"kind": "webhook"}))],
        expect![[r#"Error invalid_config /nodes/0/config/path [start]"#]],
    );
    check(
        &[
            ("/nodes/3", json!({"id": "w", "type": "wait", "config": {}})),
            ("/edges/2", json!({"from": "reply", "to": "w"})),
        ],
        expect!["Error invalid_config /nodes/3/config/duration [w]"],
    );
}

#[test]
fn invalid_durations() {
    check(
        &[("/nodes/1/timeout", json!("soon"))],
        expect![[r#"Error invalid_duration /nodes/1/timeout [hot]"#]],
    );
    check(
        &[
            (
                "/nodes/3",
                json!({"id": "w", "type": "wait", "config": {"duration": "2 fortnights"}}),
            ),
            ("/edges/2", json!({"from": "reply", "to": "w"})),
        ],
        expect![[r#"Error invalid_duration /nodes/3/config/duration [w]"#]],
    );
}

#[test]
fn dangling_and_duplicate_edges() {
    check(
        &[(
            "/edges/2",
            json!({"from": "hot", "port": "false", "to": "nowhere"}),
        )],
        expect![[r#"Error dangling_edge /edges/2/to [nowhere]"#]],
    );
    check(
        &[("/edges/2", json!({"from": "ghost", "to": "reply"}))],
        expect![[r#"Error dangling_edge /edges/2/from [ghost]"#]],
    );
    check(
        &[("/edges/2", json!({"from": "start", "to": "hot"}))],
        expect![[r#"Error duplicate_edge /edges/2 [start]"#]],
    );
}

#[test]
fn unknown_port() {
    check(
        &[("/edges/1/port", json!("maybe"))],
        expect![[r#"Error unknown_port /edges/1/port [hot]"#]],
    );
    check(
        &[("/edges/1/port", Value::Null)],
        expect![[r#"Error unknown_port /edges/1 [hot]"#]],
    );
}

#[test]
fn trigger_count() {
    check(
        &[("/nodes/0", Value::Null), ("/edges/0", Value::Null)],
        expect![[r#"
            Error no_trigger /nodes [-]"#]],
    );
    check(
        &[(
            "/nodes/3",
            json!({"id": "again", "type": "trigger", "config": {"kind": "manual"}}),
        )],
        expect![[r#"Error multiple_triggers /nodes/3 [again]"#]],
    );
    check(
        &[("/edges/2", json!({"from": "reply", "to": "start"}))],
        expect![[r#"
        Error edge_into_trigger /edges/2/to [start]
        Error cycle /edges/2 [start]"#]],
    );
}

#[test]
fn cycles_need_a_wait() {
    check(
        &[("/edges/2", json!({"from": "reply", "to": "hot"}))],
        expect![[r#"Error cycle /edges/2 [hot]"#]],
    );
    // The same loop through a wait is allowed.
    check(
        &[
            (
                "/nodes/3",
                json!({"id": "pause", "type": "wait", "config": {"duration": "1d"}}),
            ),
            ("/edges/2", json!({"from": "reply", "to": "pause"})),
            ("/edges/3", json!({"from": "pause", "to": "hot"})),
        ],
        expect![[""]],
    );
}

#[test]
fn invalid_cel_with_position() {
    check(
        &[("/nodes/1/config/when", json!("lead.score >= "))],
        expect![[r#"Error invalid_expression /nodes/1/config/when [hot] @1:15"#]],
    );
    check(
        &[("/nodes/2/config/body", json!("{'a': }"))],
        expect![[r#"Error invalid_expression /nodes/2/config/body [reply] @1:7"#]],
    );
}

#[test]
fn every_problem_is_reported() {
    check(
        &[
            ("/nodes/1/config/when", json!("(")),
            ("/edges/1/port", json!("nope")),
            (
                "/nodes/3",
                json!({"id": "lost", "type": "note", "config": {}}),
            ),
            (
                "/nodes/4",
                json!({"id": "orphan", "type": "fail", "config": {"message": "x"}}),
            ),
        ],
        expect![[r#"
            Error invalid_expression /nodes/1/config/when [hot] @1:2
            Error unknown_port /edges/1/port [hot]
            Warning unreachable_node /nodes/4 [orphan]"#]],
    );
}

fn doc(v: Value) -> FlowDoc {
    serde_json::from_value(v).unwrap()
}

#[test]
fn diff_cases() {
    let a = doc(base());
    let mut b = base();
    b["name"] = json!("renamed");
    b["nodes"][1]["config"]["when"] = json!("true");
    b["nodes"][2]["position"] = json!([10.0, 20.0]);
    b["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "stop", "type": "fail", "config": {"message": "no"}}));
    b["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "hot", "port": "false", "to": "stop"}));
    let d = diff(&a, &doc(b));
    expect![[r#"{"renamed":["t","renamed"],"description_changed":false,"trigger_changed":false,"nodes_added":["stop"],"nodes_removed":[],"nodes_changed":[{"id":"hot","config_paths":["/when"],"fields":[]}],"nodes_moved":["reply"],"edges_added":[{"from":"hot","port":"false","to":"stop"}],"edges_removed":[]}"#]]
        .assert_eq(&serde_json::to_string(&d).unwrap());

    let mut c = base();
    c["nodes"][0]["config"] = json!({"kind": "event", "event": "whitepaper_download"});
    c["nodes"].as_array_mut().unwrap().remove(2);
    c["edges"].as_array_mut().unwrap().remove(1);
    let d = diff(&a, &doc(c));
    expect![[r#"{"description_changed":false,"trigger_changed":true,"nodes_added":[],"nodes_removed":["reply"],"nodes_changed":[{"id":"start","config_paths":["/event","/kind"],"fields":[]}],"nodes_moved":[],"edges_added":[],"edges_removed":[{"from":"hot","port":"true","to":"reply"}]}"#]]
        .assert_eq(&serde_json::to_string(&d).unwrap());
    assert!(diff(&a, &a).is_empty());
}

/// Every edit, applied then inverted, gives back the document it started from.
#[test]
fn edits_round_trip() {
    let original = doc(base());
    let node = |id: &str| {
        serde_json::from_value(json!({"id": id, "type": "note", "config": {"text": "x"}})).unwrap()
    };
    let edge = |from: &str, port: Option<&str>, to: &str| {
        serde_json::from_value(json!({"from": from, "port": port, "to": to})).unwrap()
    };
    let reply = original.node("reply").unwrap().clone();
    let mut relabelled = reply.clone();
    relabelled.label = Some("回复".into());
    let cases = vec![
        Edit::AddNode {
            node: node("n1"),
            index: 1,
        },
        Edit::remove_node(&original, "hot").unwrap(),
        Edit::MoveNode {
            id: reply.id.clone(),
            from: [0.0, 0.0],
            to: [40.0, 60.0],
        },
        Edit::Connect {
            edge: edge("hot", Some("false"), "reply"),
            index: None,
        },
        Edit::disconnect(&original, &edge("start", None, "hot")).unwrap(),
        Edit::SetConfig {
            id: reply.id.clone(),
            before: reply.config.clone(),
            after: json!({"body": "1"}),
        },
        Edit::ReplaceNode {
            before: Box::new(reply.clone()),
            after: Box::new(relabelled),
        },
        Edit::Rename {
            before: "t".into(),
            after: "新名字".into(),
        },
        Edit::Batch {
            edits: vec![
                Edit::AddNode {
                    node: node("n2"),
                    index: 9,
                },
                Edit::Connect {
                    edge: edge("reply", None, "n2"),
                    index: Some(0),
                },
            ],
        },
    ];
    for edit in cases {
        let mut d = original.clone();
        edit.apply(&mut d)
            .unwrap_or_else(|e| panic!("{edit:?}: {e}"));
        assert_ne!(d, original, "{edit:?} changed nothing");
        edit.inverse().apply(&mut d).unwrap();
        assert_eq!(d, original, "{edit:?} did not round-trip");
        // Edits are values: they survive JSON.
        let json = serde_json::to_value(&edit).unwrap();
        assert_eq!(serde_json::from_value::<Edit>(json).unwrap(), edit);
    }
}

#[test]
fn failed_edits_leave_the_document_alone() {
    let original = doc(base());
    let mut d = original.clone();
    let bad = Edit::Batch {
        edits: vec![
            Edit::Rename {
                before: "t".into(),
                after: "x".into(),
            },
            Edit::remove_node(&original, "nope").unwrap_or(Edit::Batch { edits: vec![] }),
            Edit::RemoveNode {
                node: Box::new(original.nodes[1].clone()),
                index: 1,
            },
        ],
    };
    assert!(bad.apply(&mut d).is_err());
    assert_eq!(d, original);
    assert!(Edit::remove_node(&original, "nope").is_err());
}
