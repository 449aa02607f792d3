//! API tests: every one runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{Backend, TestServer, simple_flow};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The README walkthrough: create, save v2, diff, publish, run, roll back to v1.
async fn walkthrough(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(simple_flow("线索评分"), false).await;

    let mut v2 = simple_flow("线索评分 v2");
    v2["nodes"][1]["config"]["vars"]["double"] = json!("trigger.input.n * 3");
    let (st, body) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(json!({"base_version": 1, "doc": v2, "message": "triple"})),
        )
        .await;
    assert_eq!(
        (st, body["version"].clone()),
        (StatusCode::OK, json!(2)),
        "{body}"
    );

    let d = s.get(&format!("/api/v1/flows/{id}/diff?from=1&to=2")).await;
    assert_eq!(
        d["nodes_changed"],
        json!([{"id": "calc", "config_paths": ["/vars/double"], "fields": []}]),
        "{d}"
    );
    assert_eq!(d["renamed"], json!(["线索评分", "线索评分 v2"]));

    let (st, _) = s
        .post(
            &format!("/api/v1/flows/{id}/publish"),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, started) = s
        .post(
            &format!("/api/v1/flows/{id}/runs"),
            json!({"input": {"n": 7}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["version"], json!(2));
    let run = s.wait_run(started["run_id"].as_str().unwrap(), 20).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["response"]["body"], json!({"double": 21}));
    let nodes: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["start", "calc", "reply"]);
    let listed = s.get("/api/v1/flows").await;
    assert_eq!(
        listed["flows"][0]["last_run"]["id"], started["run_id"],
        "{listed}"
    );

    let (st, rb) = s
        .post(
            &format!("/api/v1/flows/{id}/rollback"),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{rb}");
    assert_eq!(
        (rb["version"].clone(), rb["published_version"].clone()),
        (json!(3), json!(3))
    );
    // v1's content, under the name the flow has now (a rollback is not a rename).
    let flow = s.get(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(flow["doc"], simple_flow("线索评分 v2"));
    assert_eq!(
        (
            flow["latest_version"].clone(),
            flow["published_version"].clone()
        ),
        (json!(3), json!(3))
    );
    let versions = s.get(&format!("/api/v1/flows/{id}/versions")).await;
    let numbers: Vec<i64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1], "history is kept");
    let v3 = s.get(&format!("/api/v1/flows/{id}/versions/3")).await;
    let v1 = s.get(&format!("/api/v1/flows/{id}/versions/1")).await;
    assert_eq!(v3["hash"], v1["hash"], "same content, same hash");
    assert_eq!(v3["message"], "rollback to version 1");
    let audit = s.get(&format!("/api/v1/audit?target={id}")).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["flow.rollback", "flow.publish", "flow.save", "flow.create"],
        "{audit}"
    );
    assert_eq!(audit["entries"][0]["actor"], "admin");
    assert_eq!(audit["entries"][0]["detail"]["to"], json!(1));
    s.finish().await;
}
both!(walkthrough);

async fn stale_save_conflicts_and_loses_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(simple_flow("a"), false).await;
    let save = |name: &str, base: i64| json!({"base_version": base, "doc": simple_flow(name), "message": name});
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(save("alice", 1)),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(save("bob", 1)),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["current_version"], json!(2));
    assert_eq!(body["pointer"], "/base_version");
    let flow = s.get(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(flow["doc"]["name"], "alice", "the first save is intact");
    // Bob retries on the current base and succeeds.
    let (st, body) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(save("bob", 2)),
        )
        .await;
    assert_eq!((st, body["version"].clone()), (StatusCode::OK, json!(3)));
    s.finish().await;
}
both!(stale_save_conflicts_and_loses_nothing);

async fn roles_are_enforced(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(simple_flow("r"), false).await;
    let save = json!({"base_version": 1, "doc": simple_flow("r2")});
    let run = json!({"input": {"n": 1}});
    let token = json!({"name": "x", "role": "viewer"});
    // (role, can read, can run, can save, can manage tokens)
    for (role, read, start, write, admin) in [
        ("viewer", true, false, false, false),
        ("operator", true, true, false, false),
        ("builder", true, true, true, false),
        ("admin", true, true, true, true),
    ] {
        let t = s.token_with(role).await;
        let t = Some(t.as_str());
        let expect =
            |ok: bool, success: StatusCode| if ok { success } else { StatusCode::FORBIDDEN };
        let (st, _) = s
            .call_as(t, Method::GET, &format!("/api/v1/flows/{id}"), None)
            .await;
        assert_eq!(st, expect(read, StatusCode::OK), "{role} read");
        let (st, _) = s
            .call_as(
                t,
                Method::POST,
                &format!("/api/v1/flows/{id}/runs"),
                Some(run.clone()),
            )
            .await;
        assert_eq!(st, expect(start, StatusCode::ACCEPTED), "{role} run");
        let latest = s.get(&format!("/api/v1/flows/{id}")).await["latest_version"].clone();
        let mut body = save.clone();
        body["base_version"] = latest;
        let (st, _) = s
            .call_as(t, Method::PUT, &format!("/api/v1/flows/{id}"), Some(body))
            .await;
        assert_eq!(st, expect(write, StatusCode::OK), "{role} save");
        let (st, _) = s
            .call_as(t, Method::POST, "/api/v1/tokens", Some(token.clone()))
            .await;
        assert_eq!(st, expect(admin, StatusCode::CREATED), "{role} tokens");
    }
    let (st, body) = s.call_as(None, Method::GET, "/api/v1/flows", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (st, _) = s
        .call_as(Some("trl_nope"), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // A revoked token stops working.
    let (_, created) = s
        .post("/api/v1/tokens", json!({"name": "temp", "role": "viewer"}))
        .await;
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call_as(
            created["token"].as_str(),
            Method::GET,
            "/api/v1/flows",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    s.finish().await;
}
both!(roles_are_enforced);

/// One invalid document per diagnostic kind: each is refused with 422 and that diagnostic.
async fn invalid_flows_get_all_diagnostics(backend: Backend) {
    let s = TestServer::start(backend).await;
    let base = simple_flow("bad");
    type Patch = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Patch)> = vec![
        (
            "malformed",
            Box::new(|d| d["nodes"][0]["id"] = json!("has space")),
        ),
        (
            "unknown_node_type",
            Box::new(|d| d["nodes"][1]["type"] = json!("sett")),
        ),
        (
            "invalid_config",
            Box::new(|d| d["nodes"][1]["config"] = json!({"vars": "nope"})),
        ),
        (
            "invalid_expression",
            Box::new(|d| d["nodes"][1]["config"]["vars"]["double"] = json!("trigger.input.n *")),
        ),
        (
            "invalid_duration",
            Box::new(|d| d["nodes"][1]["timeout"] = json!("a while")),
        ),
        (
            "dangling_edge",
            Box::new(|d| d["edges"][1]["to"] = json!("ghost")),
        ),
        (
            "duplicate_edge",
            Box::new(|d| {
                d["edges"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"from": "start", "to": "calc"}))
            }),
        ),
        (
            "unknown_port",
            Box::new(|d| d["edges"][1]["port"] = json!("sideways")),
        ),
        (
            "no_trigger",
            Box::new(|d| d["nodes"][0]["type"] = json!("note")),
        ),
        (
            "multiple_triggers",
            Box::new(|d| {
                d["nodes"][1] =
                    json!({"id": "calc", "type": "trigger", "config": {"kind": "manual"}})
            }),
        ),
        (
            "duplicate_node_id",
            Box::new(|d| d["nodes"][2]["id"] = json!("calc")),
        ),
        (
            "cycle",
            Box::new(|d| {
                d["edges"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"from": "reply", "to": "calc"}))
            }),
        ),
        (
            "edge_into_trigger",
            Box::new(|d| {
                d["edges"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"from": "reply", "to": "start"}))
            }),
        ),
    ];
    for (code, patch) in cases {
        let mut doc = base.clone();
        patch(&mut doc);
        let (st, body) = s.post("/api/v1/flows", doc.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {body}");
        let diagnostics = body["diagnostics"].as_array().unwrap();
        assert!(
            diagnostics.iter().any(|d| d["code"] == code),
            "{code} missing in {body}"
        );
        assert!(
            diagnostics.iter().all(|d| d["pointer"].is_string()),
            "{body}"
        );
        // The validate endpoint says the same without saving.
        let (st, v) = s.post("/api/v1/flows/validate", doc).await;
        assert_eq!((st, v["valid"].clone()), (StatusCode::OK, json!(false)));
        assert!(
            v["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["code"] == code)
        );
    }
    // Several problems at once are all reported.
    let mut doc = base.clone();
    doc["nodes"][1]["type"] = json!("sett");
    doc["edges"][1]["to"] = json!("ghost");
    let (_, body) = s.post("/api/v1/flows", doc).await;
    let codes: Vec<&str> = body["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"unknown_node_type") && codes.contains(&"dangling_edge"),
        "{codes:?}"
    );
    // Nothing was saved.
    assert_eq!(s.get("/api/v1/flows").await["flows"], json!([]));
    s.finish().await;
}
both!(invalid_flows_get_all_diagnostics);

async fn bad_input_gets_problem_bodies(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(simple_flow("x"), false).await;
    let raw = |body: &'static str| {
        s.client
            .post(format!("{}/api/v1/flows/{id}/publish", s.base))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{not json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("line 1"),
        "{body}"
    );
    let (st, body) = s
        .post(
            &format!("/api/v1/flows/{id}/publish"),
            json!({"version": "one"}),
        )
        .await;
    assert_eq!(
        (st, body["pointer"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("/version")),
        "{body}"
    );
    let (st, body) = s
        .post(
            &format!("/api/v1/flows/{id}/publish"),
            json!({"version": 9}),
        )
        .await;
    assert_eq!(
        (st, body["pointer"].clone()),
        (StatusCode::NOT_FOUND, json!("/version")),
        "{body}"
    );
    let (st, body) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(json!({"base_version": 1, "doc": {"schema": 1}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["pointer"].as_str().unwrap().starts_with("/doc"),
        "{body}"
    );
    let (st, _) = s.call(Method::GET, "/api/v1/flows/nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.call(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = s
        .call(
            Method::GET,
            &format!("/api/v1/flows/{id}/diff?from=x"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (st, _) = s.call(Method::GET, "/api/v1/runs?limit=100000", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, body) = s
        .post("/api/v1/events", json!({"id": "", "name": "x"}))
        .await;
    assert_eq!(
        (st, body["pointer"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("/id"))
    );
    s.finish().await;
}
both!(bad_input_gets_problem_bodies);

async fn webhook_runs_respond_synchronously(backend: Backend) {
    let s = TestServer::start(backend).await;
    let flow = json!({"schema": 1, "name": "hook", "nodes": [
        {"id": "in", "type": "trigger", "config": {"kind": "webhook", "path": "lead", "secret": "s3cret"}},
        {"id": "tier", "type": "branch", "config": {"when": "trigger.body.score >= 70.0"}},
        {"id": "hot", "type": "respond", "config": {"body": "{'tier': 'hot', 'q': trigger.query.src}"}},
        {"id": "cold", "type": "respond", "config": {"status": 201, "body": "{'tier': 'cold'}"}}],
        "edges": [{"from": "in", "to": "tier"}, {"from": "tier", "port": "true", "to": "hot"}, {"from": "tier", "port": "false", "to": "cold"}]});
    s.create_flow(flow.clone(), true).await;
    let hook = |score: f64, secret: &'static str| {
        s.client
            .post(format!("{}/hooks/lead?src=web", s.base))
            .header("x-trellis-secret", secret)
            .json(&json!({"score": score}))
            .send()
    };
    let r = hook(80.0, "s3cret").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let run_id = r.headers()["x-trellis-run"].to_str().unwrap().to_owned();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"tier": "hot", "q": "web"})
    );
    let r = hook(10.0, "s3cret").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = hook(80.0, "wrong").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The run is recorded, secret headers are not.
    let run = s.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "succeeded");
    assert!(
        run["trigger"]["headers"].get("x-trellis-secret").is_none(),
        "{run}"
    );
    // Workspace-qualified path, and an unknown one.
    let r = s
        .client
        .post(format!("{}/hooks/default/lead?src=ws", s.base))
        .header("x-trellis-secret", "s3cret")
        .json(&json!({"score": 99}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .client
        .post(format!("{}/hooks/nowhere", s.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A second flow cannot publish the same path.
    let (_, created) = s.post("/api/v1/flows", flow).await;
    let (st, body) = s
        .post(
            &format!("/api/v1/flows/{}/publish", created["id"].as_str().unwrap()),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    s.finish().await;
}
both!(webhook_runs_respond_synchronously);

async fn events_dedupe_start_and_resume(backend: Backend) {
    let s = TestServer::start(backend).await;
    let starter = s.create_flow(json!({"schema": 1, "name": "on download", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "whitepaper_download"}},
        {"id": "s", "type": "set", "config": {"vars": {"asset": "trigger.event.properties.asset"}}}],
        "edges": [{"from": "t", "to": "s"}]}), true).await;
    let waiter = s.create_flow(json!({"schema": 1, "name": "await demo", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "w", "type": "wait_for_event", "config": {"event": "demo_booked", "match": "event.lead == trigger.input.lead", "timeout": "1h"}},
        {"id": "yes", "type": "set", "config": {"vars": {"booked": "event_ok"}}},
        {"id": "ok", "type": "set", "config": {"vars": {"booked": "steps.w.output.lead"}}}],
        "edges": [{"from": "t", "to": "w"}, {"from": "w", "port": "event", "to": "ok"}]}), true).await;
    let _ = waiter.clone();

    let ev = json!({"id": "e-1", "name": "whitepaper_download", "lead": "l-1", "properties": {"asset": "bms.pdf"}});
    let (st, first) = s.post("/api/v1/events", ev.clone()).await;
    assert_eq!(
        (
            st,
            first["duplicate"].clone(),
            first["runs_started"].clone()
        ),
        (StatusCode::ACCEPTED, json!(false), json!(1)),
        "{first}"
    );
    let (st, again) = s.post("/api/v1/events", ev).await;
    assert_eq!(
        (
            st,
            again["duplicate"].clone(),
            again["runs_started"].clone()
        ),
        (StatusCode::ACCEPTED, json!(true), json!(0))
    );
    let run = s.wait_run(first["run_ids"][0].as_str().unwrap(), 20).await;
    assert_eq!(run["vars"]["asset"], "bms.pdf", "{run}");
    let runs = s.get(&format!("/api/v1/runs?flow={starter}")).await;
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "the duplicate started nothing"
    );

    let (_, a) = s
        .post(
            &format!("/api/v1/flows/{waiter}/runs"),
            json!({"input": {"lead": "l-2"}}),
        )
        .await;
    let (_, b) = s
        .post(
            &format!("/api/v1/flows/{waiter}/runs"),
            json!({"input": {"lead": "l-3"}}),
        )
        .await;
    for r in [&a, &b] {
        wait_status(&s, r["run_id"].as_str().unwrap(), "waiting").await;
    }
    let (_, res) = s
        .post(
            "/api/v1/events",
            json!({"id": "e-2", "name": "demo_booked", "lead": "l-2"}),
        )
        .await;
    assert_eq!(res["runs_resumed"], json!(1), "{res}");
    let done = s.wait_run(a["run_id"].as_str().unwrap(), 20).await;
    assert_eq!(done["vars"]["booked"], "l-2", "{done}");
    let other = s
        .get(&format!("/api/v1/runs/{}", b["run_id"].as_str().unwrap()))
        .await;
    assert_eq!(
        other["status"], "waiting",
        "the non-matching run still waits"
    );
    // Cancel it.
    let (st, c) = s
        .post(
            &format!("/api/v1/runs/{}/cancel", b["run_id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, c["status"].clone()),
        (StatusCode::OK, json!("cancelled"))
    );
    let (st, _) = s
        .post(
            &format!("/api/v1/runs/{}/cancel", b["run_id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    s.finish().await;
}
both!(events_dedupe_start_and_resume);

async fn wait_status(s: &TestServer, run_id: &str, status: &str) {
    for _ in 0..200 {
        if s.get(&format!("/api/v1/runs/{run_id}")).await["status"] == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {run_id} never reached {status}");
}

async fn waits_park_and_resume(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s
        .create_flow(
            json!({"schema": 1, "name": "wait", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "w", "type": "wait", "config": {"duration": "1s"}},
        {"id": "r", "type": "respond", "config": {"body": "'done'"}}],
        "edges": [{"from": "t", "to": "w"}, {"from": "w", "to": "r"}]}),
            true,
        )
        .await;
    let (_, started) = s.post(&format!("/api/v1/flows/{id}/runs"), json!({})).await;
    let run_id = started["run_id"].as_str().unwrap();
    wait_status(&s, run_id, "waiting").await;
    let run = s.wait_run(run_id, 20).await;
    assert_eq!(run["status"], "succeeded");
    let statuses: Vec<String> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["node"].as_str().unwrap(),
                s["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        statuses,
        ["t:completed", "w:waiting", "w:completed", "r:completed"]
    );
    s.finish().await;
}
both!(waits_park_and_resume);

async fn meta_endpoints(backend: Backend) {
    let s = TestServer::start(backend).await;
    let types = s.get("/api/v1/node-types").await;
    let names: Vec<&str> = types["node_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    for want in [
        "trigger",
        "branch",
        "switch",
        "set",
        "wait",
        "wait_for_event",
        "respond",
        "fail",
        "note",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        types["node_types"][1]["config_schema"]["properties"]["when"].is_object(),
        "{}",
        types["node_types"][1]
    );
    let schema = s.get("/api/v1/schema/flow").await;
    assert_eq!(schema["title"], "Trellis flow");
    let openapi = s.get("/api/v1/openapi.json").await;
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        openapi["openapi"]
    );
    for path in [
        "/api/v1/flows",
        "/api/v1/flows/{id}",
        "/api/v1/flows/{id}/diff",
        "/api/v1/runs/{id}",
        "/api/v1/events",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let health = s.get("/healthz").await;
    assert_eq!(health["status"], "ok");
    let r = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("trellis_http_requests_total"), "{text}");
    s.finish().await;
}
both!(meta_endpoints);

/// A version is stored exactly as written: `set` evaluates `vars` in document order even
/// where the database would reorder object keys (PostgreSQL `jsonb` sorts them).
async fn set_vars_keep_document_order(backend: Backend) {
    let s = TestServer::start(backend).await;
    let doc = json!({"schema": 1, "name": "order", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "s", "type": "set", "config": {"vars": {"industry_match": "1.0", "score": "vars.industry_match * 0.33", "z": "vars.score * 2.0"}}}],
        "edges": [{"from": "t", "to": "s"}]});
    let id = s.create_flow(doc.clone(), true).await;
    let stored = s.get(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(
        serde_json::to_string(&stored["doc"]).unwrap(),
        serde_json::to_string(&doc).unwrap(),
        "key order kept"
    );
    let (_, started) = s.post(&format!("/api/v1/flows/{id}/runs"), json!({})).await;
    let run = s.wait_run(started["run_id"].as_str().unwrap(), 20).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["vars"]["z"], json!(0.66));
    s.finish().await;
}
both!(set_vars_keep_document_order);

/// A published schedule trigger starts runs on time, and a fire starts exactly one run
/// however often it is evaluated (as when several processes tick together).
async fn schedules_start_runs_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(json!({"schema": 1, "name": "every second", "nodes": [
        {"id": "tick", "type": "trigger", "config": {"kind": "schedule", "cron": "* * * * * *", "timezone": "UTC"}},
        {"id": "s", "type": "set", "config": {"vars": {"at": "trigger.scheduled_at"}}}],
        "edges": [{"from": "tick", "to": "s"}]}), true).await;
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs = s
            .get(&format!("/api/v1/runs?flow={id}&status=succeeded"))
            .await["runs"]
            .as_array()
            .unwrap()
            .clone();
        if runs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        runs.len() >= 2,
        "the schedule started {} runs in 10 s",
        runs.len()
    );
    let run = s
        .get(&format!("/api/v1/runs/{}", runs[0]["id"].as_str().unwrap()))
        .await;
    assert!(run["vars"]["at"].is_string(), "{run}");

    let st = s.state();
    // A second scheduler on the same database, as another process would run.
    let scheduler = trellis_server::scheduler::Scheduler::new(
        st.db.clone(),
        st.runs.clone(),
        st.events.clone(),
        st.registry.clone(),
    );
    let now = chrono::Utc::now();
    let window = (
        now + chrono::Duration::hours(1),
        now + chrono::Duration::hours(1) + chrono::Duration::seconds(3),
    );
    assert_eq!(
        scheduler.fire_schedules(window.0, window.1).await.unwrap(),
        3
    );
    assert_eq!(
        scheduler.fire_schedules(window.0, window.1).await.unwrap(),
        0,
        "a fire starts one run only"
    );
    s.finish().await;
}
both!(schedules_start_runs_once);

/// Deleting a flow archives it: gone from the list and from webhook routing, its runs kept.
async fn delete_archives_a_flow(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(json!({"schema": 1, "name": "to delete", "nodes": [
        {"id": "in", "type": "trigger", "config": {"kind": "webhook", "path": "gone"}},
        {"id": "r", "type": "respond", "config": {"body": "'ok'"}}], "edges": [{"from": "in", "to": "r"}]}), true).await;
    let r = s
        .client
        .post(format!("{}/hooks/gone", s.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let run_id = r.headers()["x-trellis-run"].to_str().unwrap().to_owned();
    let viewer = s.token_with("viewer").await;
    let (st, _) = s
        .call_as(
            Some(&viewer),
            Method::DELETE,
            &format!("/api/v1/flows/{id}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .call(Method::DELETE, &format!("/api/v1/flows/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/api/v1/flows").await["flows"], json!([]));
    let (st, _) = s
        .call(Method::GET, &format!("/api/v1/flows/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let r = s
        .client
        .post(format!("{}/hooks/gone", s.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.get(&format!("/api/v1/runs/{run_id}")).await["status"],
        "succeeded",
        "runs are kept"
    );
    let (st, _) = s
        .call(Method::DELETE, &format!("/api/v1/flows/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.finish().await;
}
both!(delete_archives_a_flow);

/// Cancelling a run waiting for an event removes what it waits for: the subscription goes
/// with it, so later events of that name do not read the cancelled run again.
async fn cancel_removes_the_subscription(backend: Backend) {
    use sea_orm::{ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _};
    use trellis_server::db::entities::subscription;
    let s = TestServer::start(backend).await;
    let id = s
        .create_flow(
            json!({
                "schema": 1, "name": "waits",
                "nodes": [
                    {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
                    {"id": "w", "type": "wait_for_event", "config": {"event": "demo_booked", "timeout": "1h"}, "position": [160, 0]}
                ],
                "edges": [{"from": "start", "to": "w"}]
            }),
            true,
        )
        .await;
    let (_, started) = s
        .post(&format!("/api/v1/flows/{id}/runs"), json!({"input": {}}))
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let db = s.state().db.clone();
    let waiting = || {
        subscription::Entity::find()
            .filter(subscription::Column::RunId.eq(run_id.as_str()))
            .count(&db)
    };
    for _ in 0..200 {
        if waiting().await.unwrap() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(waiting().await.unwrap(), 1, "the run subscribed");
    let (st, v) = s
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        waiting().await.unwrap(),
        0,
        "the subscription went with the run"
    );
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "after-cancel", "name": "demo_booked"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["runs_resumed"], json!(0));
    s.finish().await;
}
both!(cancel_removes_the_subscription);

/// Migration 000011 (flow and scoring-model versions into the one document store) rolls
/// back and forward again without losing a version, and the store reads them after.
async fn the_document_store_migration_keeps_every_version(backend: Backend) {
    use sea_orm::ConnectionTrait as _;
    use trellis_migrations::{Migrator, MigratorTrait as _};
    let s = TestServer::start(backend).await;
    let id = s.create_flow(simple_flow("v1"), true).await;
    let (st, body) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(json!({"base_version": 1, "doc": simple_flow("v2"), "message": "第二版"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let model = json!({"schema": 1, "name": "行业评分", "features": [
        {"id": "industry", "label": "行业", "weight": 100.0,
         "source": {"kind": "fit", "attribute": "industry"},
         "transform": {"type": "categorical", "values": {"机械": 1.0}, "other": 0.1}}],
        "tiers": {"warm": 30, "hot": 60}, "stages": {"mql": 30, "sql": 60}});
    let (st, body) = s
        .call(
            Method::PUT,
            "/api/v1/scoring/model",
            Some(json!({"base_version": 0, "doc": model})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let versions = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["number"].clone(), v["hash"].clone(), v["message"].clone()))
            .collect()
    };
    let flow_before = versions(&s.get(&format!("/api/v1/flows/{id}/versions")).await);
    let model_before = versions(&s.get("/api/v1/scoring/model/versions").await);
    assert_eq!(flow_before.len(), 2);
    assert_eq!(model_before.len(), 1);

    let db = s.state().db.clone();
    // Undo every migration from the document store's on (later ones come off first).
    let migrations = <Migrator as trellis_migrations::MigratorTrait>::migrations();
    let at = migrations
        .iter()
        .position(|m| m.name() == "m20261206_000011_doc_versions")
        .expect("the document store migration");
    let steps = (migrations.len() - at) as u32;
    Migrator::down(&db, Some(steps)).await.expect("down");
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap()
        }
    };
    assert_eq!(count("flow_versions").await, 2);
    assert_eq!(count("scoring_model_versions").await, 1);
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(count("doc_versions").await, 3);

    assert_eq!(
        versions(&s.get(&format!("/api/v1/flows/{id}/versions")).await),
        flow_before
    );
    assert_eq!(
        versions(&s.get("/api/v1/scoring/model/versions").await),
        model_before
    );
    let flow = s.get(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(flow["doc"]["name"], "v2");
    assert_eq!(flow["published_version"], 1);
    s.finish().await;
}
both!(the_document_store_migration_keeps_every_version);

/// A flow's name is its own: a rename makes no version, a rollback keeps the name the flow
/// has, a save names the flow as its document does; a bad name is refused with its pointer.
async fn renames_make_no_version_and_rollbacks_keep_the_name(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_flow(simple_flow("询价跟进"), false).await;
    let (st, body) = s
        .call(
            Method::PUT,
            &format!("/api/v1/flows/{id}"),
            Some(json!({"base_version": 1, "doc": simple_flow("询价跟进 v2"), "message": "两倍"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        s.get(&format!("/api/v1/flows/{id}")).await["name"],
        "询价跟进 v2"
    );

    let (st, body) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/flows/{id}"),
            Some(json!({"name": "  竞品对比线索培育  "})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["previous"], "询价跟进 v2");
    let flow = s.get(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(flow["name"], "竞品对比线索培育");
    assert_eq!(
        flow["doc"]["name"], "竞品对比线索培育",
        "the editor loads the name"
    );
    assert_eq!(
        flow["latest_version"],
        json!(2),
        "a rename is not a version"
    );

    let (st, body) = s
        .post(
            &format!("/api/v1/flows/{id}/rollback"),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let flow = s.get(&format!("/api/v1/flows/{id}")).await;
    assert_eq!(flow["latest_version"], json!(3));
    assert_eq!(
        flow["name"], "竞品对比线索培育",
        "a rollback keeps the name"
    );
    let listed = s.get("/api/v1/flows").await;
    assert_eq!(listed["flows"][0]["name"], "竞品对比线索培育", "{listed}");

    for bad in [json!({"name": "   "}), json!({"name": "名".repeat(201)})] {
        let (st, body) = s
            .call(Method::PATCH, &format!("/api/v1/flows/{id}"), Some(bad))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["pointer"], "/name", "{body}");
    }
    let (st, body) = s
        .call(
            Method::PATCH,
            "/api/v1/flows/no-such-flow",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let audit = s.get(&format!("/api/v1/audit?target={id}")).await;
    assert_eq!(audit["entries"][1]["action"], "flow.rename", "{audit}");
    s.finish().await;
}
both!(renames_make_no_version_and_rollbacks_keep_the_name);

/// Test runs: a webhook flow is tested with a whole trigger (`trigger.body`), taken from a
/// recent real call; an event flow from a recent event. A test run is listed as a test and
/// never becomes the flow's last run.
async fn test_runs_use_real_samples_and_are_not_the_last_run(backend: Backend) {
    let s = TestServer::start(backend).await;
    let hook = json!({"schema": 1, "name": "询价 Webhook", "nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "webhook", "path": "quote"}, "position": [0, 0]},
        {"id": "reply", "type": "respond", "config": {"body": "{'company': trigger.body.company}"}, "position": [160, 0]}],
        "edges": [{"from": "start", "to": "reply"}]});
    let id = s.create_flow(hook, true).await;
    let live = s
        .client
        .post(format!("{}/hooks/quote", s.base))
        .json(&json!({"company": "苏州精工"}))
        .send()
        .await
        .expect("hook");
    assert_eq!(live.status(), StatusCode::OK);
    let samples = s.get(&format!("/api/v1/flows/{id}/samples")).await;
    assert_eq!(samples["kind"], "webhook", "{samples}");
    assert_eq!(samples["path"], "quote", "{samples}");
    let trigger = samples["samples"][0]["trigger"].clone();
    assert_eq!(trigger["body"]["company"], "苏州精工", "{samples}");

    let mut changed = trigger.clone();
    changed["body"]["company"] = json!("无锡重工");
    let (st, started) = s
        .post(
            &format!("/api/v1/flows/{id}/runs"),
            json!({"trigger": changed, "test": true}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{started}");
    let run = s.wait_run(started["run_id"].as_str().unwrap(), 20).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["response"]["body"],
        json!({"company": "无锡重工"}),
        "{run}"
    );
    assert_eq!(run["test"], json!(true));
    let listed = s.get("/api/v1/flows").await;
    let last = &listed["flows"][0]["last_run"];
    assert_ne!(
        last["id"], started["run_id"],
        "a test run is not the last run: {listed}"
    );
    let runs = s.get(&format!("/api/v1/runs?flow={id}")).await;
    assert_eq!(runs["runs"][0]["test"], json!(true), "{runs}");
    assert_eq!(runs["runs"][1]["test"], json!(false), "{runs}");
    // The test run is not a sample of real traffic.
    let samples = s.get(&format!("/api/v1/flows/{id}/samples")).await;
    assert_eq!(
        samples["samples"].as_array().map(Vec::len),
        Some(1),
        "{samples}"
    );

    // Bad triggers are refused with their place.
    for (body, pointer) in [
        (json!({"trigger": [1]}), "/trigger"),
        (
            json!({"trigger": {"body": {}}, "input": {"x": 1}}),
            "/input",
        ),
    ] {
        let (st, problem) = s.post(&format!("/api/v1/flows/{id}/runs"), body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["pointer"], pointer, "{problem}");
    }

    // An event flow's samples are recent events of its name.
    let on_event = json!({"schema": 1, "name": "下载白皮书", "nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "event", "event": "download"}, "position": [0, 0]},
        {"id": "calc", "type": "set", "config": {"vars": {"file": "trigger.event.properties.file"}}, "position": [160, 0]}],
        "edges": [{"from": "start", "to": "calc"}]});
    let event_flow = s.create_flow(on_event, false).await;
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "dl-1", "name": "download", "lead": "lead-7", "properties": {"file": "安全白皮书.pdf"}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let samples = s.get(&format!("/api/v1/flows/{event_flow}/samples")).await;
    assert_eq!(samples["kind"], "event", "{samples}");
    let event = &samples["samples"][0]["trigger"]["event"];
    assert_eq!(event["properties"]["file"], "安全白皮书.pdf", "{samples}");
    assert_eq!(event["name"], "download", "{samples}");
    s.finish().await;
}
both!(test_runs_use_real_samples_and_are_not_the_last_run);

/// The event catalog: each event name with its count, its properties' paths, types and
/// sample values, and the attributes leads carry.
async fn the_event_catalog_lists_names_properties_and_lead_attributes(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (i, (name, props)) in [
        (
            "page_view",
            json!({"category": "pricing", "page": {"path": "/pricing"}}),
        ),
        (
            "page_view",
            json!({"category": "competitor_comparison", "seconds": 42}),
        ),
        ("download", json!({"file": "安全白皮书.pdf"})),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, v) = s
            .post(
                "/api/v1/events",
                json!({"id": format!("c-{i}"), "name": name, "lead": "lead-1", "properties": props}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let (st, v) = s
        .post(
            "/api/v1/leads/import",
            json!({"leads": [{"id": "lead-9", "attributes": {"industry": "机械", "employees": 120}}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let c = s.get("/api/v1/event-catalog").await;
    assert_eq!(c["events"][0]["name"], "page_view", "{c}");
    assert_eq!(c["events"][0]["count"], json!(2), "{c}");
    assert_eq!(c["events"][1]["name"], "download", "{c}");
    let props = c["events"][0]["properties"].as_array().expect("properties");
    let category = props
        .iter()
        .find(|p| p["path"] == "category")
        .expect("category");
    assert_eq!(category["seen"], json!(2));
    assert_eq!(category["types"], json!(["string"]));
    let mut samples: Vec<&str> = category["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    samples.sort();
    assert_eq!(samples, ["competitor_comparison", "pricing"]);
    assert!(props.iter().any(|p| p["path"] == "page.path"), "{c}");
    let attributes: Vec<&str> = c["lead_attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert!(
        attributes.contains(&"industry") && attributes.contains(&"employees"),
        "{c}"
    );
    s.finish().await;
}
both!(the_event_catalog_lists_names_properties_and_lead_attributes);

/// Per-workspace documents are versioned in the one store: a save names its base (a stale
/// one is a 409 that changes nothing), every version is kept with its author and message,
/// two versions (or a version and the built-in document) diff by pointer, and a rollback
/// restores an earlier one as a new version that is in force at once (new events are
/// categorised by it). A document saved before versions were kept becomes version 1.
async fn workspace_documents_are_versioned(backend: Backend) {
    let s = TestServer::start(backend).await;
    let builtin = s.get("/api/v1/contact-policy").await;
    assert_eq!(
        (&builtin["builtin"], &builtin["version"]),
        (&json!(true), &json!(0)),
        "{builtin}"
    );
    let none = s.get("/api/v1/documents/contact-policy/versions").await;
    assert_eq!(none["versions"], json!([]), "{none}");
    let policy =
        |max: u32| json!({"caps": [{"channel": "wecom_group_send", "max": max, "per": "day"}]});
    let put = |q: &'static str, body: Value| {
        let s = &s;
        async move {
            s.call(
                Method::PUT,
                &format!("/api/v1/contact-policy{q}"),
                Some(body),
            )
            .await
        }
    };
    let (st, v) = put("?base_version=0", policy(1)).await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(1)), "{v}");
    // Saved meanwhile: the edit based on the built-in one is refused and changes nothing.
    let (st, v) = put("?base_version=0", policy(7)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, v) = put("?base_version=x", policy(7)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let now = s.get("/api/v1/contact-policy").await;
    assert_eq!(
        (&now["version"], &now["doc"]["caps"][0]["max"]),
        (&json!(1), &json!(1)),
        "{now}"
    );
    let (st, v) = put(
        "?base_version=1&message=%E6%AF%8F%E5%A4%A9%E4%B8%A4%E6%AC%A1",
        policy(2),
    )
    .await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(2)), "{v}");
    // Without a base the save goes on top of the latest.
    let (st, v) = put("", policy(3)).await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(3)), "{v}");

    let list = s.get("/api/v1/documents/contact-policy/versions").await;
    let numbers: Vec<(i64, bool)> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["number"].as_i64().unwrap(),
                v["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(numbers, vec![(3, true), (2, false), (1, false)], "{list}");
    assert_eq!(list["versions"][1]["message"], "每天两次", "{list}");
    assert_eq!(list["versions"][1]["author"], "admin", "{list}");
    let diff = s
        .get("/api/v1/documents/contact-policy/diff?from=1&to=2")
        .await;
    assert_eq!(
        diff["changes"],
        json!([{"path": "/caps/0/max", "before": 1, "after": 2}]),
        "{diff}"
    );
    let from_builtin = s
        .get("/api/v1/documents/contact-policy/diff?from=0&to=1")
        .await;
    assert!(
        from_builtin["changes"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{from_builtin}"
    );
    let one = s.get("/api/v1/documents/contact-policy/versions/1").await;
    assert_eq!(one["doc"]["caps"][0]["max"], 1, "{one}");

    // Rolling back makes a new version with the old content, in force at once.
    let (st, v) = s
        .post(
            "/api/v1/documents/contact-policy/rollback",
            json!({"version": 1}),
        )
        .await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(4)), "{v}");
    let now = s.get("/api/v1/contact-policy").await;
    assert_eq!(
        (&now["version"], &now["doc"]["caps"][0]["max"]),
        (&json!(4), &json!(1)),
        "{now}"
    );
    let (st, v) = s
        .post(
            "/api/v1/documents/contact-policy/rollback",
            json!({"version": 0}),
        )
        .await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(5)), "{v}");
    assert_eq!(s.get("/api/v1/contact-policy").await["doc"], builtin["doc"]);
    for (path, body, status) in [
        (
            "/api/v1/documents/contact-policy/rollback",
            json!({"version": 99}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/documents/nope/rollback",
            json!({"version": 1}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/documents/contact-policy/rollback",
            json!({"version": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (st, v) = s.post(path, body).await;
        assert_eq!(st, status, "{path}: {v}");
    }
    // Admins edit the policy; a builder may not, nor roll it back.
    let builder = s.token_with("builder").await;
    let (st, _) = s
        .call_as(
            Some(&builder),
            Method::PUT,
            "/api/v1/contact-policy",
            Some(policy(5)),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .call_as(
            Some(&builder),
            Method::POST,
            "/api/v1/documents/contact-policy/rollback",
            Some(json!({"version": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // URL categories: a rollback applies to the events recorded after it.
    let rules = json!({"rules": [{"id": "offers", "category": "pricing", "match": {"kind": "path_prefix", "prefix": "/offers"}}]});
    let (st, v) = s
        .call_as(
            Some(&builder),
            Method::PUT,
            "/api/v1/url-categories",
            Some(rules),
        )
        .await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(1)), "{v}");
    let visit = |id: &'static str| {
        let s = &s;
        async move {
            let (st, v) = s
                .post(
                    "/api/v1/events",
                    json!({"id": id, "name": "page_view", "properties": {"anonymous_id": "v1", "url": "https://x.cn/offers/x5"}}),
                )
                .await;
            assert!(st.is_success(), "{v}");
        }
    };
    visit("before").await;
    let (st, v) = s
        .call_as(
            Some(&builder),
            Method::POST,
            "/api/v1/documents/url-categories/rollback",
            Some(json!({"version": 0})),
        )
        .await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(2)), "{v}");
    visit("after").await;
    let recent = s.get("/api/v1/url-categories/recent").await;
    let category = |id: &str| {
        recent["pages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["event"] == id)
            .map(|p| p["rule"].clone())
            .unwrap_or_else(|| panic!("{id} in {recent}"))
    };
    assert_eq!(category("before"), json!("offers"), "{recent}");
    assert_ne!(category("after"), json!("offers"), "{recent}");

    // Limits and next-best-action rules keep versions the same way.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/settings/limits",
            Some(json!({"run_retention_days": 60})),
        )
        .await;
    assert_eq!((st, &v["version"]), (StatusCode::OK, &json!(1)), "{v}");
    assert_eq!(s.get("/api/v1/nba/rules").await["version"], 0);

    // A document saved before versions were kept is filed as version 1 when the server
    // starts, with its text unchanged.
    let state = s.state();
    {
        use sea_orm::{ConnectionTrait, Statement};
        let db = &state.db;
        let sql = "INSERT INTO workspace_docs (workspace_id, kind, doc, author, updated_at, version) \
                   VALUES ('default', 'signal_lexicon', '{\"entries\": []}', 'old-admin', CURRENT_TIMESTAMP, 0)";
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("insert an unversioned document");
        trellis_server::db::version_unversioned_docs(db)
            .await
            .expect("file it");
    }
    let old = s.get("/api/v1/documents/signal-lexicon/versions").await;
    assert_eq!(old["versions"][0]["number"], 1, "{old}");
    assert_eq!(old["versions"][0]["author"], "old-admin", "{old}");
    assert_eq!(
        s.get("/api/v1/documents/signal-lexicon/versions/1").await["doc"],
        json!({"entries": []})
    );
    s.finish().await;
}
both!(workspace_documents_are_versioned);
