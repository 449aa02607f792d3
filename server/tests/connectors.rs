//! Connector plugins through the API, on SQLite and PostgreSQL: publish, catalog, grants,
//! secrets, validation, and a flow calling a connector against a local mock API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trellis_e2e::connector_wasm;
use trellis_e2e::mock_api::MockApi;

const SECRET: &str = "s3cr3t-token-XYZ";

fn call_flow(url: &str) -> Value {
    json!({
        "schema": 1,
        "name": "推送线索到 CRM",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            {"id": "push", "type": "connector", "connector": "http-json@0", "operation": "request",
             "config": {"url": url, "method": "POST", "bearer_secret": "token"},
             "input": {"body": "{{ trigger.input }}"},
             "position": [200, 0]},
            {"id": "answer", "type": "respond", "config": {"status": 200, "body": "steps.push.output"}, "position": [400, 0]}
        ],
        "edges": [{"from": "start", "to": "push"}, {"from": "push", "to": "answer"}]
    })
}

/// `PUT path body` answers 422 pointing at `pointer`.
async fn refused(s: &TestServer, path: &str, body: Value, pointer: &str) {
    let (st, p) = s.call(Method::PUT, path, Some(body)).await;
    assert_eq!(
        (st, p["pointer"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(pointer)),
        "{p}"
    );
}

async fn run_flow(s: &TestServer, id: &str, input: Value) -> Value {
    let (st, started) = s
        .post(
            &format!("/api/v1/flows/{id}/runs"),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{started}");
    s.wait_run(started["run_id"].as_str().unwrap(), 30).await
}

fn step<'a>(run: &'a Value, node: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["node"] == node || s["node_id"] == node)
        .unwrap_or_else(|| panic!("no step {node} in {run}"))
}

async fn connector_call_end_to_end(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mock = MockApi::start().await;
    let wasm = std::fs::read(connector_wasm("http-json")).unwrap();

    let (st, published) = s.publish_connector(wasm.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{published}");
    assert_eq!(published["reference"], "http-json@0");
    let (st, again) = s.publish_connector(wasm).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "publishing the same bytes again: {again}"
    );

    let types = s.get("/api/v1/node-types").await;
    let entry = types["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "http-json")
        .unwrap_or_else(|| panic!("http-json not in node-types: {types}"));
    assert_eq!(entry["major"], 0);
    let ops: Vec<&str> = entry["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["request", "fetch"]);
    assert_eq!(
        entry["operations"][0]["config_schema"]["properties"]["url"]["type"],
        "string"
    );

    // Validation knows the operations and their config schemas.
    let mut bad = call_flow(&mock.url("/leads"));
    bad["nodes"][1]["operation"] = json!("nope");
    bad["nodes"][1]["config"]["url"] = json!(5);
    let (st, problem) = s.post("/api/v1/flows/validate", bad.clone()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        problem["diagnostics"][0]["code"], "unknown_operation",
        "{problem}"
    );
    bad["nodes"][1]["operation"] = json!("request");
    let (st, problem) = s.post("/api/v1/flows", bad).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["diagnostics"][0]["code"], "invalid_config",
        "{problem}"
    );
    assert_eq!(problem["diagnostics"][0]["pointer"], "/nodes/1/config/url");

    let id = s.create_flow(call_flow(&mock.url("/leads")), true).await;

    // Nothing is granted yet: the call is refused before a packet leaves.
    let run = run_flow(&s, &id, json!({"company": "宁德时代"})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let push = step(&run, "push");
    assert_eq!(
        push["output"]["error"]["kind"], "capability_denied",
        "{push}"
    );
    assert_eq!(push["output"]["error"]["reason"], "granted", "{push}");
    assert!(mock.seen.lock().unwrap().headers.is_empty());

    // Grants must stay within what the connector asked for.
    refused(
        &s,
        "/api/v1/connectors/http-json/grants",
        json!({"secrets": ["other"]}),
        "/secrets/0",
    )
    .await;
    let (st, g) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/http-json/grants",
            Some(json!({"hosts": ["127.0.0.1"], "secrets": ["token"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    assert_eq!(g["grants"]["hosts"], json!(["127.0.0.1"]));

    // Granted but not set: a typed auth failure naming the secret.
    let run = run_flow(&s, &id, json!({"company": "宁德时代"})).await;
    assert_eq!(
        step(&run, "push")["output"]["error"]["kind"],
        "auth_failed",
        "{run}"
    );

    let (st, _) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/http-json/secrets/token",
            Some(json!({"value": SECRET})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, p) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/http-json/secrets/undeclared",
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{p}");

    let run = run_flow(&s, &id, json!({"company": "宁德时代", "employees": 1200})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["response"]["body"],
        json!({"status": 200, "body": {"ok": true, "path": "/leads", "body": {"company": "宁德时代", "employees": 1200}}})
    );
    let push = step(&run, "push");
    assert_eq!(
        push["input"]["version"], "http-json@0.1.0",
        "the run pins the version: {push}"
    );
    {
        let seen = mock.seen.lock().unwrap();
        let last = seen.headers.last().unwrap();
        let header = |n: &str| last.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(header("authorization"), Some(format!("Bearer {SECRET}")));
        assert_eq!(
            header("idempotency-key"),
            Some(push["idempotency_key"].as_str().unwrap().to_owned())
        );
    }

    // The secret shows up in no API answer.
    let c = s.get("/api/v1/connectors").await;
    assert_eq!(
        c["connectors"][0]["secrets"],
        json!([{"name": "token", "set": true}])
    );
    for path in [
        "/api/v1/connectors".to_owned(),
        "/api/v1/connectors/http-json".to_owned(),
        "/api/v1/connectors/http-json/grants".to_owned(),
        format!("/api/v1/runs/{}", run["id"].as_str().unwrap()),
        "/api/v1/audit".to_owned(),
    ] {
        let body = s.get(&path).await.to_string();
        assert!(!body.contains(SECRET), "{path} leaks the secret: {body}");
    }

    // Disabling the only version takes the operation out of the catalog.
    let (st, v) = s
        .call(
            Method::PATCH,
            "/api/v1/connectors/http-json/versions/0.1.0",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let types = s.get("/api/v1/node-types").await;
    assert_eq!(types["connectors"], json!([]));
    s.finish().await;
}
both!(connector_call_end_to_end);

async fn bad_components_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, p) = s.publish_connector(b"\0asm\x01\0\0\0".to_vec()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{p}"
    );
    let (st, p) = s.publish_connector(b"\0asm\x0d\0\x01\0".to_vec()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("trellis:connector"),
        "{p}"
    );
    let (st, p) = s.publish_connector(Vec::new()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");

    let viewer = s.token_with("builder").await;
    let resp = s
        .client
        .post(format!("{}/api/v1/connectors", s.base))
        .bearer_auth(viewer)
        .body(std::fs::read(connector_wasm("http-json")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // A grant outside what the connector declared is refused.
    let (st, _) = s
        .publish_connector(std::fs::read(connector_wasm("adversarial")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED);
    refused(
        &s,
        "/api/v1/connectors/adversarial/grants",
        json!({"hosts": ["example.com"]}),
        "/hosts/0",
    )
    .await;
    refused(
        &s,
        "/api/v1/connectors/adversarial/limits",
        json!({"memory_bytes": 0}),
        "/memory_bytes",
    )
    .await;
    s.finish().await;
}
both!(bad_components_are_refused);

async fn connector_webhooks_become_events(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, _) = s
        .publish_connector(std::fs::read(connector_wasm("adversarial")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let flow = json!({"schema": 1, "name": "新线索", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "crm.lead_created"}},
        {"id": "v", "type": "set", "config": {"vars": {"company": "trigger.event.properties.company"}}}],
        "edges": [{"from": "t", "to": "v"}]});
    s.create_flow(flow, true).await;
    let url = format!("{}/hooks/connectors/adversarial/crm/callback?x=1", s.base);
    let body = json!({"events": [{"name": "crm.lead_created", "id": "L-1", "payload": {"company": "比亚迪", "lead": "l-1"}}]});

    // The connector's own check refuses the caller; nothing is recorded.
    let r = s.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let runs = s.get("/api/v1/runs").await;
    assert_eq!(runs["runs"], json!([]));

    // Twice: the same event (same id) is not processed twice.
    for _ in 0..2 {
        let r = s
            .client
            .post(&url)
            .header("x-signature", "valid")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer, json!({"received": 1, "path": "/crm/callback"}));
    }

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let run = loop {
        let runs = s.get("/api/v1/runs").await;
        let list = runs["runs"].as_array().unwrap().clone();
        if let Some(r) = list.first()
            && r["status"] == "succeeded"
        {
            assert_eq!(list.len(), 1, "one run per event id: {runs}");
            break s
                .get(&format!("/api/v1/runs/{}", r["id"].as_str().unwrap()))
                .await;
        }
        assert!(std::time::Instant::now() < deadline, "no run: {runs}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        step(&run, "v")["output"],
        json!({"company": "比亚迪"}),
        "{run}"
    );

    let r = s
        .client
        .post(format!("{}/hooks/connectors/http-json/x", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // One bad event in a delivery (a lead id no event may carry) is refused on its own;
    // the one after it is recorded and starts its run.
    let batch = json!({"events": [
        {"name": "crm.lead_created", "id": "L-2", "payload": {"company": "格力", "lead": "x".repeat(300)}},
        {"name": "crm.lead_created", "id": "L-3", "payload": {"company": "美的", "lead": "l-3"}}]});
    let r = s
        .client
        .post(&url)
        .header("x-signature", "valid")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let runs = s.get("/api/v1/runs").await;
        let list = runs["runs"].as_array().unwrap().clone();
        if list.len() == 2 && list.iter().all(|r| r["status"] == "succeeded") {
            let newest = s
                .get(&format!("/api/v1/runs/{}", list[0]["id"].as_str().unwrap()))
                .await;
            assert_eq!(
                step(&newest, "v")["output"],
                json!({"company": "美的"}),
                "{newest}"
            );
            break;
        }
        assert!(list.len() <= 2, "the refused event started a run: {runs}");
        assert!(
            std::time::Instant::now() < deadline,
            "no run for L-3: {runs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.finish().await;
}
both!(connector_webhooks_become_events);

async fn polls_bring_events_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, _) = s
        .publish_connector(std::fs::read(connector_wasm("adversarial")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s
        .publish_connector(std::fs::read(connector_wasm("http-json")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let flow = json!({"schema": 1, "name": "发货通知", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "erp.order_shipped"}},
        {"id": "v", "type": "set", "config": {"vars": {"order": "trigger.event.properties.order"}}}],
        "edges": [{"from": "t", "to": "v"}]});
    s.create_flow(flow, true).await;
    refused(
        &s,
        "/api/v1/connectors/adversarial/poll",
        json!({"interval_seconds": 0}),
        "/interval_seconds",
    )
    .await;
    refused(
        &s,
        "/api/v1/connectors/http-json/poll",
        json!({"interval_seconds": 60}),
        "",
    )
    .await;
    let (st, c) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/adversarial/poll",
            Some(json!({"interval_seconds": 1, "config": {"since": "2026-11-01"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["poll"]["interval_seconds"], 1);

    // One order per poll, three in all; later polls find nothing new.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let runs = s.get("/api/v1/runs?status=succeeded").await;
        if runs["runs"].as_array().unwrap().len() >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "polls brought {runs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let runs = s.get("/api/v1/runs").await;
    let mut orders = Vec::new();
    for r in runs["runs"].as_array().unwrap() {
        let run = s
            .get(&format!("/api/v1/runs/{}", r["id"].as_str().unwrap()))
            .await;
        orders.push(step(&run, "v")["output"]["order"].as_i64().unwrap());
    }
    orders.sort();
    assert_eq!(orders, [1, 2, 3], "each event once: {runs}");
    let c = s.get("/api/v1/connectors/adversarial").await;
    assert_eq!(c["poll"]["cursor"], "3", "{c}");
    assert_eq!(c["poll"]["last_error"], Value::Null, "{c}");
    s.finish().await;
}
both!(polls_bring_events_once);
