//! The server against hostile input: one test per finding of the hardening review, on
//! SQLite and PostgreSQL wherever the database takes part.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait as _;
use serde_json::{Value, json};

/// trigger(webhook `path`) → set(`vars`) → respond(vars), with the set node's `timeout`.
fn hook_flow(path: &str, vars: Value, timeout: Option<&str>) -> Value {
    let mut set =
        json!({"id": "calc", "type": "set", "config": {"vars": vars}, "position": [160, 0]});
    if let Some(t) = timeout {
        set["timeout"] = json!(t);
    }
    json!({
        "schema": 1, "name": format!("hook {path}"),
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "webhook", "path": path}, "position": [0, 0]},
            set,
            {"id": "reply", "type": "respond", "config": {"body": "{'ok': true}"}, "position": [320, 0]}
        ],
        "edges": [{"from": "start", "to": "calc"}, {"from": "calc", "to": "reply"}]
    })
}

/// trigger(manual) → wait(1 h): a run that parks and stays parked.
fn parking_flow() -> Value {
    json!({
        "schema": 1, "name": "parks",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            {"id": "later", "type": "wait", "config": {"duration": "1h"}, "position": [160, 0]}
        ],
        "edges": [{"from": "start", "to": "later"}]
    })
}

async fn hook(s: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    let resp = s
        .client
        .post(format!("{}/hooks/{path}", s.base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Runs `sql` with one text parameter (`$1`/`?1`) on the server's database.
async fn sql(s: &TestServer, sqlite: &str, postgres: &str, values: Vec<sea_orm::Value>) {
    let db = s.state().db.clone();
    let (backend, text) = match s.backend {
        Backend::Sqlite => (sea_orm::DbBackend::Sqlite, sqlite),
        Backend::Postgres => (sea_orm::DbBackend::Postgres, postgres),
    };
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend, text, values,
    ))
    .await
    .unwrap();
}

async fn start_run(s: &TestServer, flow: &str) -> String {
    let (st, v) = s
        .post(&format!("/api/v1/flows/{flow}/runs"), json!({"input": {}}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    v["run_id"].as_str().unwrap().to_owned()
}

async fn wait_status(s: &TestServer, run: &str, status: &str) -> Value {
    for _ in 0..400 {
        let r = s.get(&format!("/api/v1/runs/{run}")).await;
        if r["status"] == status {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never became {status}");
}

/// Finding 1: expressions deep or long enough to overflow a stack are refused with their
/// pointer (viewer validation, backtests, saves), and the process stays up.
async fn expressions_cannot_overflow_the_stack(backend: Backend) {
    let s = TestServer::start(backend).await;
    let viewer = s.token_with("viewer").await;
    let long = format!("1{}", "+1".repeat(6999));
    let deep = format!("1{}", "+1".repeat(2000));
    for (expr, says) in [(&long, "at most 4096"), (&deep, "nests")] {
        let (st, v) = s
            .call_as(
                Some(&viewer),
                Method::POST,
                "/api/v1/flows/validate",
                Some(hook_flow("deep", json!({"x": expr}), None)),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["valid"], json!(false));
        let d = &v["diagnostics"][0];
        assert_eq!(d["pointer"], "/nodes/1/config/vars/x", "{d}");
        assert!(d["message"].as_str().unwrap().contains(says), "{d}");
        let (st, v) = s
            .post("/api/v1/flows", hook_flow("deep", json!({"x": expr}), None))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    let model = json!({
        "schema": 1, "name": "m",
        "features": [
            {"id": "views", "label": "浏览", "weight": 100.0,
             "source": {"kind": "behaviour", "event": "page_view", "filter": long,
                        "aggregate": "count", "window_days": 7, "half_life_days": 3},
             "transform": {"type": "cap", "cap": 3}}
        ],
        "tiers": {"warm": 30, "hot": 60}, "stages": {"mql": 30, "sql": 60}
    });
    let (st, v) = s
        .call_as(
            Some(&viewer),
            Method::POST,
            "/api/v1/scoring/backtest",
            Some(json!({"doc": model, "outcome": "converted"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/doc/features/0/source/filter", "{v}");
    assert_eq!(s.get("/healthz").await["status"], "ok");
    s.finish().await;
}
both!(expressions_cannot_overflow_the_stack);

/// Finding 1's crash loop: a run the process stopped at twice at the same step is failed
/// with the reason instead of being started a third time.
async fn a_run_interrupted_twice_at_one_step_is_not_started_again(backend: Backend) {
    let s = TestServer::start(backend).await;
    let flow = s.create_flow(parking_flow(), true).await;
    let run = start_run(&s, &flow).await;
    wait_status(&s, &run, "waiting").await;
    // As if a process had claimed it at this step and stopped, once before and once now:
    // SQLite counts it when the next process starts, PostgreSQL when a claim takes the
    // lapsed lease over.
    // On SQLite the claim is left standing (no worker takes it over) until the "restart";
    // on PostgreSQL it has lapsed.
    let lease: i64 = if backend == Backend::Sqlite {
        i64::MAX / 2
    } else {
        0
    };
    sql(
        &s,
        "UPDATE runs SET status = 'running', lease_until = ?2, interruptions = 1, interrupted_rev = state_rev, wake_at = 0 WHERE id = ?1",
        "UPDATE runs SET status = 'running', lease_until = $2, interruptions = 1, interrupted_rev = state_rev, wake_at = 0 WHERE id = $1",
        vec![run.clone().into(), lease.into()],
    )
    .await;
    if backend == Backend::Sqlite {
        s.state().runs.release_all_claims().await.unwrap();
    }
    let r = wait_status(&s, &run, "failed").await;
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("stopped 2 times") && error.contains("node later"),
        "{r}"
    );
    // A run interrupted once is simply resumed.
    let other = start_run(&s, &flow).await;
    wait_status(&s, &other, "waiting").await;
    sql(
        &s,
        "UPDATE runs SET status = 'running', lease_until = ?2, wake_at = 0 WHERE id = ?1",
        "UPDATE runs SET status = 'running', lease_until = $2, wake_at = 0 WHERE id = $1",
        vec![other.clone().into(), lease.into()],
    )
    .await;
    if backend == Backend::Sqlite {
        s.state().runs.release_all_claims().await.unwrap();
    }
    let r = wait_status(&s, &other, "waiting").await;
    assert!(r["error"].is_null(), "{r}");
    s.finish().await;
}
both!(a_run_interrupted_twice_at_one_step_is_not_started_again);

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

/// Finding 2: bodies nested deeper than what comes back out of the database are refused
/// with the place; a run row whose JSON does not read (written before this check) is failed
/// with the reason and never breaks a list, a claim batch or a cancel.
async fn deep_bodies_are_refused_and_bad_rows_stay_isolated(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_flow(hook_flow("deep", json!({"n": "1"}), None), true)
        .await;
    let (st, v) = hook(&s, "deep", &nested(126)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], format!("/body{}", "/0".repeat(32)), "{v}");
    let (st, v) = hook(&s, "deep", &nested(31)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "e1", "name": "x", "properties": {"a": nested(40)}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["pointer"]
            .as_str()
            .unwrap()
            .starts_with("/properties/a/0"),
        "{v}"
    );

    // Rows as an older server could have written them.
    let parking = s.create_flow(parking_flow(), true).await;
    let due = start_run(&s, &parking).await;
    let parked = start_run(&s, &parking).await;
    wait_status(&s, &due, "waiting").await;
    wait_status(&s, &parked, "waiting").await;
    let deep_text = format!(
        "{{\"queue\": {}}}",
        serde_json::to_string(&nested(200)).unwrap()
    );
    for (id, wake) in [(&due, 0i64), (&parked, i64::MAX / 2)] {
        sql(
            &s,
            "UPDATE runs SET state = ?1, wake_at = ?2 WHERE id = ?3",
            "UPDATE runs SET state = CAST($1 AS jsonb), wake_at = $2 WHERE id = $3",
            vec![deep_text.clone().into(), wake.into(), id.clone().into()],
        )
        .await;
    }
    let listed = s.get("/api/v1/runs").await;
    assert!(listed["runs"].as_array().unwrap().len() >= 3, "{listed}");
    let one = s.get(&format!("/api/v1/runs/{parked}")).await;
    assert!(
        one["unreadable"][0].as_str().unwrap().starts_with("state:"),
        "{one}"
    );
    let (st, v) = s
        .post(&format!("/api/v1/runs/{parked}/cancel"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    // The due one is failed with the reason at its claim; runs beside it go on.
    let simple = s.create_flow(common::simple_flow("after"), true).await;
    let (_, started) = s
        .post(
            &format!("/api/v1/flows/{simple}/runs"),
            json!({"input": {"n": 2}}),
        )
        .await;
    let failed = wait_status(&s, &due, "failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("cannot be read"),
        "{failed}"
    );
    let ok = s.wait_run(started["run_id"].as_str().unwrap(), 20).await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(
        s.get("/api/v1/flows").await["flows"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    s.finish().await;
}
both!(deep_bodies_are_refused_and_bad_rows_stay_isolated);

/// Finding 3: an expression's cost is bounded before it runs, and a built-in node's
/// `timeout` holds: the step fails with a clear error and the server answers meanwhile.
async fn expression_budgets_and_node_timeouts_hold(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_flow(
        hook_flow(
            "square",
            json!({"n": "trigger.body.l.map(a, trigger.body.l.map(b, a + b)).size()"}),
            Some("1s"),
        ),
        true,
    )
    .await;
    let body = json!({"l": (0..3000).collect::<Vec<_>>()});
    let started = std::time::Instant::now();
    let (st, v) = hook(&s, "square", &body).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("expression_too_costly"),
        "{v}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    s.create_flow(
        hook_flow(
            "slow",
            json!({"n": "trigger.body.l.map(x, x * 2).size()"}),
            Some("1ms"),
        ),
        true,
    )
    .await;
    let body = json!({"l": (0..60_000).collect::<Vec<_>>()});
    let (st, v) = hook(&s, "slow", &body).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("timeout: the node took"),
        "{v}"
    );
    s.finish().await;
}
both!(expression_budgets_and_node_timeouts_hold);

/// Finding 4: variables, step outputs and the run state have caps (admin-settable within
/// maxima); a step over one fails with `state_too_large` and writes nothing.
async fn run_state_is_capped(backend: Backend) {
    let s = TestServer::start(backend).await;
    let vars = json!({
        "v1": "trigger.body.s + trigger.body.s",
        "v2": "vars.v1 + vars.v1",
        "v3": "vars.v2 + vars.v2",
    });
    let flow = s.create_flow(hook_flow("grow", vars, None), true).await;
    let body = json!({"s": "x".repeat(600 * 1024)});
    let (st, v) = hook(&s, "grow", &body).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("state_too_large: variable v1 is 1.2 MiB"),
        "{detail}"
    );
    let run = s
        .get(&format!("/api/v1/runs/{}", v["run_id"].as_str().unwrap()))
        .await;
    assert_eq!(run["vars"], json!({}), "nothing half-written");

    // Viewers may read the limits, only admins change them, within the maxima.
    let viewer = s.token_with("viewer").await;
    let (st, _) = s
        .call_as(
            Some(&viewer),
            Method::PUT,
            "/api/v1/settings/limits",
            Some(json!({"value_bytes": 4 << 20})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/settings/limits",
            Some(json!({"value_bytes": 1u64 << 40})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/value_bytes");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/settings/limits",
            Some(json!({"value_bytes": 16 << 20, "state_bytes": 6 << 20})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let shown = s.get("/api/v1/settings/limits").await;
    assert_eq!(shown["limits"]["value_bytes"], json!(16 << 20), "{shown}");
    assert_eq!(shown["maxima"]["state_bytes"], json!(64 << 20), "{shown}");
    // Each variable now fits, but not all of them the run.
    let (st, v) = hook(&s, "grow", &body).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("state_too_large: the run's variables"),
        "{detail}"
    );
    let _ = flow;
    s.finish().await;
}
both!(run_state_is_capped);

/// Finding 5: a client that never finishes its headers is cut off; beyond the connection
/// cap, a new connection gets a 503 problem at once; the server answers again afterwards.
/// (No database involved: SQLite only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_capped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let http = trellis_server::serve::HttpLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(1),
        max_connections: 8,
    };
    let s = TestServer::start_with(Backend::Sqlite, http).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // The slow ones are closed once their header time is up.
    for mut c in slow {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
        assert!(n.is_ok(), "a slow client was kept open");
    }
    assert_eq!(s.get("/healthz").await["status"], "ok");
    // A body that stops arriving is answered 408 once its time is up.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\"",
        s.token
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    s.finish().await;
}

/// Finding 6: methods outside the known set are answered 405 and counted as `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_come_from_fixed_sets() {
    let s = TestServer::start(Backend::Sqlite).await;
    for i in 0..50 {
        let m = Method::from_bytes(format!("INVENT{i}").as_bytes()).unwrap();
        let (st, v) = s.call_as(None, m, "/healthz", None).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    }
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("INVENT"), "invented methods became labels");
    assert!(text.contains("method=\"other\""), "{text}");
    s.finish().await;
}

/// Finding 7: thirty concurrent events carrying the same new identity make one lead.
async fn one_new_identity_is_one_lead(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut calls = Vec::new();
    for i in 0..30 {
        let client = s.client.clone();
        let url = format!("{}/api/v1/events", s.base);
        let token = s.token.clone();
        calls.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"id": format!("c-{i}"), "name": "page_view",
                              "properties": {"anonymous_id": "anon-shared"}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    let mut leads = std::collections::BTreeSet::new();
    for c in calls {
        let v = c.await.unwrap();
        leads.insert(v["lead"].as_str().unwrap().to_owned());
    }
    assert_eq!(leads.len(), 1, "{leads:?}");
    s.finish().await;
}
both!(one_new_identity_is_one_lead);

/// Finding 8: event timestamps outside [now − 10 years, now + 1 day] are refused.
async fn event_timestamps_are_bounded(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (t, ok) in [
        ("9999-12-31T23:59:59Z", false),
        ("0001-01-01T00:00:00Z", false),
        ("2000-01-01T00:00:00Z", false),
    ] {
        let (st, v) = s
            .post(
                "/api/v1/events",
                json!({"id": format!("t-{t}"), "name": "page_view", "lead": "l1", "timestamp": t}),
            )
            .await;
        assert_eq!(st == StatusCode::ACCEPTED, ok, "{t}: {v}");
        assert_eq!(v["pointer"], "/timestamp", "{v}");
    }
    let now = chrono::Utc::now().to_rfc3339();
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "t-now", "name": "page_view", "lead": "l1", "timestamp": now}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    s.finish().await;
}
both!(event_timestamps_are_bounded);

/// Finding 9 (and 12's empty secret): a webhook secret is write-only: no reader sees it,
/// saving the document back keeps it, and an empty one is refused.
async fn webhook_secrets_are_write_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut doc = hook_flow("guarded", json!({"n": "1"}), None);
    doc["nodes"][0]["config"]["secret"] = json!("s3cret-value");
    let id = s.create_flow(doc.clone(), true).await;
    let viewer = s.token_with("viewer").await;
    for token in [Some(viewer.as_str()), None] {
        for path in [
            format!("/api/v1/flows/{id}"),
            format!("/api/v1/flows/{id}/versions/1"),
        ] {
            let (st, v) = match token {
                Some(t) => s.call_as(Some(t), Method::GET, &path, None).await,
                None => s.call(Method::GET, &path, None).await,
            };
            assert_eq!(st, StatusCode::OK);
            assert!(!v.to_string().contains("s3cret-value"), "{path}: {v}");
            assert_eq!(
                v["doc"]["nodes"][0]["config"]["secret"],
                json!(trellis_model::node_types::SECRET_SET)
            );
        }
    }
    // The document as read, saved back: the secret is kept.
    let read = s.get(&format!("/api/v1/flows/{id}")).await;
    let mut edited = read["doc"].clone();
    edited["name"] = json!("renamed");
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(json!({"base_version": 1, "doc": edited})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    s.post(
        &format!("/api/v1/flows/{id}/publish"),
        json!({"version": 2}),
    )
    .await;
    let resp = s
        .client
        .post(format!("{}/hooks/guarded", s.base))
        .header("x-trellis-secret", "s3cret-value")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (st, _) = hook(&s, "guarded", &json!({})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // A copy keeps the secrets of the flow it copies.
    let (st, v) = s
        .post(&format!("/api/v1/flows?copy_of={id}"), read["doc"].clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let copy = v["id"].as_str().unwrap();
    let stored =
        s.state().runs.compiled(copy, 1).await.unwrap().doc().nodes[0].config["secret"].clone();
    assert_eq!(stored, json!("s3cret-value"));
    // A placeholder with nothing behind it, and an empty secret, are refused.
    let mut fresh = read["doc"].clone();
    fresh["nodes"][0]["config"]["path"] = json!("other");
    let (st, v) = s.post("/api/v1/flows", fresh).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/nodes/0/config/secret");
    doc["nodes"][0]["config"]["secret"] = json!("");
    let (st, v) = s.post("/api/v1/flows", doc).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["diagnostics"][0]["pointer"], "/nodes/0/config/secret",
        "{v}"
    );
    s.finish().await;
}
both!(webhook_secrets_are_write_only);

/// Finding 10: a NUL character is refused with 422 and its place on both databases.
async fn nul_characters_are_refused_alike(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_flow(hook_flow("nul", json!({"n": "1"}), None), true)
        .await;
    let (st, v) = hook(&s, "nul", &json!({"lead": "a\u{0}b"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/body/lead");
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "n1", "name": "x", "lead": "a\u{0}b"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/lead");
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "n2", "name": "x", "properties": {"k": ["ok", "a\u{0}"]}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/properties/k/1");
    let (st, v) = s.call(Method::GET, "/api/v1/flows/a%00b", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    s.finish().await;
}
both!(nul_characters_are_refused_alike);

/// Finding 11: every error is a problem body with its right status (`call` asserts the
/// content type of each), 413 for bodies over the limit, CEL errors in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_problem_bodies() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.create_flow(hook_flow("big", json!({"n": "1"}), None), true)
        .await;
    let big = json!({"s": "x".repeat(1 << 20)});
    let (st, v) = s.call_as(None, Method::POST, "/hooks/big", Some(big)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let large = json!({"id": "h", "name": "x", "properties": {"s": "x".repeat(1 << 20)}});
    let (st, v) = s.post("/api/v1/events", large).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (st, v) = s
        .call(Method::GET, "/api/v1/flows/x/versions/not-a-number", None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = s.call(Method::GET, "/api/v1/runs?limit=lots", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, v) = s
        .post(
            "/api/v1/flows/validate",
            hook_flow("x", json!({"n": "lead.score >= "}), None),
        )
        .await;
    let d = &v["diagnostics"][0];
    assert!(d["position"]["column"].as_u64().is_some(), "{d}");
    assert!(!d["message"].as_str().unwrap().contains("Error("), "{d}");
    s.finish().await;
}

/// Finding 12: the loose ends.
async fn loose_ends_are_tied(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Long names and ids.
    for body in [
        json!({"id": "l1", "name": "x".repeat(100_000)}),
        json!({"id": "l2", "name": "x", "lead": "y".repeat(100_000)}),
        json!({"id": "z".repeat(201), "name": "x"}),
    ] {
        let (st, v) = s.post("/api/v1/events", body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("at most 200"), "{v}");
    }
    // The bearer scheme is case-insensitive.
    let resp = s
        .client
        .get(format!("{}/api/v1/flows", s.base))
        .header("authorization", format!("bearer {}", s.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The last admin token stays; one of two may go.
    let tokens = s.get("/api/v1/tokens").await;
    let admin = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
    let (st, v) = s
        .call(Method::DELETE, &format!("/api/v1/tokens/{admin}"), None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    s.token_with("admin").await;
    let tokens = s.get("/api/v1/tokens").await;
    let second = tokens["tokens"][1]["id"].as_str().unwrap().to_owned();
    let (st, v) = s
        .call(Method::DELETE, &format!("/api/v1/tokens/{second}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let viewer = s.token_with("viewer").await;
    // Credential headers of a webhook call never reach the run.
    s.create_flow(hook_flow("headers", json!({"n": "1"}), None), true)
        .await;
    let resp = s
        .client
        .post(format!("{}/hooks/headers", s.base))
        .header("x-api-key", "k-123")
        .header("x-request-id", "r-1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let run_id = resp.headers()["x-trellis-run"].to_str().unwrap().to_owned();
    let run = s
        .call_as(
            Some(&viewer),
            Method::GET,
            &format!("/api/v1/runs/{run_id}"),
            None,
        )
        .await
        .1;
    assert!(!run.to_string().contains("k-123"), "{run}");
    assert_eq!(run["trigger"]["headers"]["x-request-id"], "r-1");
    // Data files are the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.data_dir()), 0o700);
        assert_eq!(mode(&s.data_dir().join("compiled")), 0o700);
        assert_eq!(mode(&s.data_dir().join("secret-key")), 0o600);
        if backend == Backend::Sqlite {
            assert_eq!(mode(&s.data_dir().join("trellis.sqlite")), 0o600);
        }
    }
    // Retention: finished runs past their time go, journal included; the rest stay.
    let flow = s.create_flow(common::simple_flow("kept"), true).await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (st, v) = s
            .post(
                &format!("/api/v1/flows/{flow}/runs"),
                json!({"input": {"n": 1}}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        runs.push(v["run_id"].as_str().unwrap().to_owned());
    }
    let (old, young) = (runs[0].clone(), runs[1].clone());
    wait_status(&s, &old, "succeeded").await;
    wait_status(&s, &young, "succeeded").await;
    let forty_days_ago = chrono::Utc::now() - chrono::Duration::days(40);
    sql(
        &s,
        "UPDATE runs SET finished_at = ?1 WHERE id = ?2",
        "UPDATE runs SET finished_at = $1 WHERE id = $2",
        vec![forty_days_ago.into(), old.clone().into()],
    )
    .await;
    let (_, stop) = tokio::sync::watch::channel(false);
    let deleted = trellis_server::retention::sweep(&s.state().db, &s.state().limits, &stop)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let (st, _) = s
        .call(Method::GET, &format!("/api/v1/runs/{old}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let steps = s
        .state()
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            s.state().db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM run_steps WHERE run_id = '{old}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(steps, 0);
    assert_eq!(
        s.get(&format!("/api/v1/runs/{young}")).await["status"],
        "succeeded"
    );
    s.finish().await;
}
both!(loose_ends_are_tied);

/// Finding 12's long flow: 10,000 nodes validate, save and run to the end (each step reads
/// only what it refers to, so it costs the same at node 10 and at node 9,999).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_node_flow_runs() {
    let s = TestServer::start(Backend::Sqlite).await;
    let n = 10_000;
    let mut nodes = vec![
        json!({"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]}),
    ];
    let mut edges = Vec::new();
    let mut prev = "start".to_owned();
    for i in 0..n {
        let id = format!("n{i}");
        let expr = if i == 0 {
            "1".to_owned()
        } else {
            format!("steps.n{}.output.x + 1", i - 1)
        };
        nodes.push(
            json!({"id": id, "type": "set", "config": {"vars": {"x": expr}}, "position": [i, 0]}),
        );
        edges.push(json!({"from": prev, "to": id}));
        prev = id;
    }
    let doc = json!({"schema": 1, "name": "long", "nodes": nodes, "edges": edges});
    let flow = s.create_flow(doc, true).await;
    let run = start_run(&s, &flow).await;
    // Poll the list (the run itself carries a 10,000-step journal).
    for _ in 0..6000 {
        let listed = s.get(&format!("/api/v1/runs?flow={flow}")).await;
        if listed["runs"][0]["status"] != "queued" && listed["runs"][0]["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = s.get(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(done["status"], "succeeded", "{}", done["error"]);
    assert_eq!(done["vars"]["x"], json!(n));
    assert_eq!(done["steps"].as_array().unwrap().len(), n + 1);
    s.finish().await;
}
