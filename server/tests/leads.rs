//! The intent engine over HTTP, on SQLite and PostgreSQL: events attribute to leads and
//! update their scores incrementally (matching a full recompute), behaviour decays, an
//! identify call merges an anonymous history, a tier change starts a flow, publishing a model
//! rescores every lead, and each explanation sums to its score.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trellis_model::scoring::{CompiledModel, EventView, ScoringModel};

fn model(industry_weight: f64) -> Value {
    json!({
        "schema": 1,
        "name": "制造业线索评分",
        "features": [
            { "id": "industry", "label": "行业", "label_en": "Industry", "weight": industry_weight,
              "source": { "kind": "fit", "attribute": "industry" },
              "transform": { "type": "categorical", "values": { "新能源汽车零部件": 1.0, "机械": 0.5 }, "other": 0.1 } },
            { "id": "pricing_views", "label": "价格页浏览", "label_en": "Pricing page views",
              "weight": 100.0 - industry_weight,
              "source": { "kind": "behaviour", "event": "page_view",
                          "filter": "event.properties.category == 'pricing'",
                          "aggregate": "count", "window_days": 7, "half_life_days": 3 },
              "transform": { "type": "cap", "cap": 3 } }
        ],
        "tiers": { "warm": 30, "hot": 60 },
        "stages": { "mql": 30, "sql": 60 }
    })
}

async fn save_and_publish(s: &TestServer, doc: Value, base: i32) -> i32 {
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/scoring/model",
            Some(json!({"doc": doc, "base_version": base, "message": "test"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let version = v["version"].as_i64().expect("version") as i32;
    let (st, v) = s
        .post("/api/v1/scoring/model/publish", json!({"version": version}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    wait_rescore(s, version).await;
    version
}

async fn wait_rescore(s: &TestServer, version: i32) -> Value {
    for _ in 0..200 {
        let m = s.get("/api/v1/scoring/model").await;
        if m["rescore"]["version"] == json!(version) && !m["rescore"]["finished_at"].is_null() {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("rescore of version {version} did not finish");
}

async fn event(s: &TestServer, id: &str, name: &str, props: Value, at: DateTime<Utc>) -> Value {
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": id, "name": name, "properties": props, "timestamp": at}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    v
}

fn points_sum(card: &Value) -> f64 {
    card["current"]["contributions"]
        .as_array()
        .expect("contributions")
        .iter()
        .map(|c| c["points"].as_f64().expect("points"))
        .sum()
}

/// The score a full recompute gives from the lead's timeline, at `at`.
fn recomputed(doc: &Value, card: &Value, at: DateTime<Utc>) -> f64 {
    let model: ScoringModel = serde_json::from_value(doc.clone()).expect("model");
    let model = CompiledModel::new(model).expect("compiles");
    let mut events: Vec<EventView> = card["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| !e["name"].as_str().unwrap_or("").starts_with("lead."))
        .map(|e| EventView {
            kind: e["name"].as_str().expect("name").into(),
            at: e["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .expect("timestamp")
                .timestamp_millis(),
            properties: e["properties"].clone(),
        })
        .collect();
    events.sort_by_key(|e| e.at);
    let state = model.replay(&events);
    model
        .score(&card["attributes"], &state, at.timestamp_millis())
        .score
}

async fn intent_engine_end_to_end(backend: Backend) {
    let s = TestServer::start(backend).await;
    let now = Utc::now();

    // A flow that reacts to a lead turning hot.
    let flow = s
        .create_flow(
            json!({"schema": 1, "name": "热线索提醒", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "lead.tier_changed"}},
                {"id": "s", "type": "set", "config": {"vars": {"to": "trigger.event.properties.to_tier", "lead": "trigger.event.lead"}}}],
                "edges": [{"from": "t", "to": "s"}]}),
            true,
        )
        .await;

    // Events before any model is published are kept and attributed, not scored.
    let v = event(
        &s,
        "e0",
        "page_view",
        json!({"user_id": "u-1", "category": "pricing"}),
        now - Duration::days(2),
    )
    .await;
    let known = v["lead"].as_str().expect("lead id").to_owned();
    assert_eq!(v["tier_changed"], Value::Null);

    let v1 = save_and_publish(&s, model(40.0), 0).await;
    let m = s.get("/api/v1/scoring/model").await;
    assert_eq!(m["rescore"]["total"], json!(1), "{m}");
    assert_eq!(m["rescore"]["done"], json!(1), "{m}");
    let card = s.get(&format!("/api/v1/leads/{known}")).await;
    assert_eq!(card["model_version"], json!(v1), "{card}");
    assert!(card["score"].as_f64().expect("score") > 0.0, "{card}");

    // An anonymous visitor browses pricing pages…
    let mut anon = String::new();
    for i in 0..3 {
        let v = event(
            &s,
            &format!("a{i}"),
            "page_view",
            json!({"anonymous_id": "anon-7", "category": "pricing"}),
            now - Duration::hours(i + 1),
        )
        .await;
        anon = v["lead"].as_str().expect("lead").to_owned();
    }
    assert_ne!(anon, known);
    let before = s.get(&format!("/api/v1/leads/{anon}")).await;
    // …and identifies as the known lead: the history merges into it.
    let v = event(
        &s,
        "id1",
        "identify",
        json!({"user_id": "u-1", "anonymous_id": "anon-7",
               "traits": {"industry": "机械", "name": "王工", "company": "宁德某电池"}}),
        now,
    )
    .await;
    assert_eq!(v["lead"], json!(known), "{v}");
    // 20 (half of industry's 40) + 60 for ~4 recent pricing views (capped at 3): hot, and
    // the flow starts.
    assert_eq!(v["tier_changed"]["to_tier"], json!("hot"), "{v}");
    assert_eq!(v["runs_started"], json!(1), "{v}");
    let run_id = v["run_ids"][0].as_str().expect("run id").to_owned();
    let run = s.wait_run(&run_id, 20).await;
    assert_eq!(run["status"], json!("succeeded"), "{run}");
    let runs = s.get(&format!("/api/v1/runs?flow={flow}")).await;
    // The anonymous lead's own move to warm started one too.
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs}");

    let card = s.get(&format!("/api/v1/leads/{known}")).await;
    assert_eq!(card["tier"], json!("hot"), "{card}");
    assert_eq!(card["attributes"]["name"], json!("王工"));
    // The company trait links the lead to its account.
    assert_eq!(card["account"]["name"], json!("宁德某电池"), "{card}");
    assert_eq!(card["account_id"], card["account"]["id"]);
    let kinds: Vec<&str> = card["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"user_id") && kinds.contains(&"anonymous_id"),
        "{card}"
    );
    // 1 + 3 pricing views in the last 7 days, merged from both histories.
    assert_eq!(
        card["summary"]["zh"],
        json!("近7天4次查看pricing"),
        "{card}"
    );
    let timeline = card["timeline"].as_array().expect("timeline");
    assert!(
        timeline.iter().any(|e| e["id"] == json!("a0")),
        "merged history: {card}"
    );
    assert!(
        card["current"]["score"].as_f64().expect("score")
            > before["current"]["score"].as_f64().expect("score")
    );
    // The merged lead answers with the lead it went into.
    let old = s.get(&format!("/api/v1/leads/{anon}")).await;
    assert_eq!(old["id"], json!(known));
    assert_eq!(old["merged_from"], json!(anon));
    let list = s.get("/api/v1/leads").await;
    assert_eq!(
        list["total"],
        json!(1),
        "merged leads are not listed: {list}"
    );

    // Incremental equals a full recompute, and the explanation sums to the score.
    let scored_at: DateTime<Utc> = card["stored"]["scored_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("scored_at");
    let (st, at_card) = s
        .call(
            Method::GET,
            &format!(
                "/api/v1/leads/{known}?at={}",
                scored_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
            .replace('+', "%2B"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{at_card}");
    let stored = card["stored"]["score"].as_f64().expect("stored score");
    assert!((at_card["current"]["score"].as_f64().expect("score") - stored).abs() < 0.01);
    assert!((recomputed(&model(40.0), &card, scored_at) - stored).abs() < 0.01);
    assert!((points_sum(&card) - card["current"]["score"].as_f64().expect("s")).abs() < 0.011);
    let lines = card["current"]["explanation"]
        .as_array()
        .expect("explanation");
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("价格页浏览")),
        "{lines:?}"
    );

    // Decay: three days on, the same views count for less; after the window, nothing.
    let later = |days: i64| {
        format!(
            "/api/v1/leads/{known}?at={}",
            (now + Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    };
    let in3 = s.get(&later(3)).await;
    let in9 = s.get(&later(9)).await;
    let views = |c: &Value| {
        c["current"]["contributions"]
            .as_array()
            .expect("contributions")
            .iter()
            .find(|x| x["feature"] == json!("pricing_views"))
            .and_then(|x| x["points"].as_f64())
            .expect("pricing points")
    };
    assert!(views(&in3) < views(&card), "{in3}");
    assert_eq!(views(&in9), 0.0, "{in9}");
    assert!(
        (recomputed(&model(40.0), &card, now + Duration::days(3))
            - in3["current"]["score"].as_f64().expect("score"))
        .abs()
            < 0.01
    );

    // A new version that weighs industry less rescores every lead in the background.
    let v2 = save_and_publish(&s, model(10.0), v1).await;
    let card2 = s.get(&format!("/api/v1/leads/{known}")).await;
    assert_eq!(card2["model_version"], json!(v2), "{card2}");
    assert_ne!(card2["score"], card["score"]);
    let diff = s
        .get(&format!("/api/v1/scoring/model/diff?from={v1}&to={v2}"))
        .await;
    assert_eq!(diff["features"][0]["weight_from"], json!(40.0), "{diff}");
    assert_eq!(diff["features"][0]["weight_to"], json!(10.0), "{diff}");
    // Rolling back makes version 1's content a new published version.
    let (st, rb) = s
        .post("/api/v1/scoring/model/rollback", json!({"version": v1}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{rb}");
    wait_rescore(&s, v2 + 1).await;
    let card3 = s.get(&format!("/api/v1/leads/{known}")).await;
    assert_eq!(card3["model_version"], json!(v2 + 1));

    // Filters and paging.
    let hot = s.get("/api/v1/leads?tier=hot&min_score=10").await;
    assert_eq!(hot["total"], json!(1), "{hot}");
    let (st, bad) = s
        .call(Method::GET, "/api/v1/leads?tier=boiling", None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (st, missing) = s.call(Method::GET, "/api/v1/leads/nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{missing}");
    s.finish().await;
}
both!(intent_engine_end_to_end);

/// Events for one lead arriving at once all count: each is folded into the lead's
/// aggregates after the previous one (PostgreSQL locks the lead's row), so the stored
/// score equals a full recompute over the timeline.
async fn concurrent_events_for_one_lead_all_count(backend: Backend) {
    let s = TestServer::start(backend).await;
    let doc = model(40.0);
    save_and_publish(&s, doc.clone(), 0).await;
    let first = event(
        &s,
        "c-0",
        "identify",
        json!({"user_id": "busy", "traits": {"industry": "机械"}}),
        Utc::now(),
    )
    .await;
    let lead = first["lead"].as_str().expect("lead").to_owned();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (client, base, token) = (s.client.clone(), s.base.clone(), s.token.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"id": format!("c-{}", i + 1), "name": "page_view",
                "properties": {"user_id": "busy", "category": "pricing"}});
            let r = client
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("send");
            r.status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::ACCEPTED);
    }
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    let views = card["current"]["contributions"]
        .as_array()
        .expect("contributions")
        .iter()
        .find(|c| c["feature"] == "pricing_views")
        .expect("pricing_views")["value"]["count"]
        .clone();
    assert_eq!(views, json!(24), "{card}");
    let at = Utc::now();
    let stored = card["score"].as_f64().expect("score");
    assert!(
        (stored - recomputed(&doc, &card, at)).abs() < 0.05,
        "stored {stored} vs recomputed: {card}"
    );
    s.finish().await;
}
both!(concurrent_events_for_one_lead_all_count);

/// Events arriving while a publish rescores every lead: whichever writes a lead's score
/// last, the stored score is the one the published model gives for the lead's state at
/// the time it was scored, and every lead ends on the published version.
async fn a_rescore_racing_events_keeps_every_score_current(backend: Backend) {
    let s = TestServer::start(backend).await;
    let v1 = save_and_publish(&s, model(40.0), 0).await;
    let industries = ["新能源汽车零部件", "机械", "纺织"];
    let leads: Vec<Value> = (0..600)
        .map(|i| json!({"id": format!("r-{i:03}"), "attributes": {"industry": industries[i % 3]}}))
        .collect();
    let (st, v) = s
        .post("/api/v1/leads/import", json!({ "leads": leads }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    if backend == Backend::Postgres {
        // The import refreshed the planner's statistics: it knows `leads` is not empty.
        use sea_orm::ConnectionTrait as _;
        let db = s.state().db.clone();
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT reltuples::float8 FROM pg_class WHERE oid = 'leads'::regclass",
            ))
            .await
            .expect("pg_class")
            .expect("a row");
        let believed: f64 = row.try_get_by_index(0).expect("reltuples");
        assert!(
            believed >= 600.0,
            "the planner believes leads holds {believed} rows"
        );
    }
    // Anonymous histories merged into imported leads before the publish, so some states
    // have counts to decay.
    for i in 0..30 {
        event(
            &s,
            &format!("before-{i}"),
            "page_view",
            json!({"anonymous_id": format!("a-{i}"), "category": "pricing"}),
            Utc::now() - Duration::hours(i),
        )
        .await;
        let (st, v) = s
            .post(
                "/api/v1/events",
                json!({"id": format!("tie-{i}"), "name": "identify", "lead": format!("r-{:03}", i * 20),
                       "properties": {"anonymous_id": format!("a-{i}")}}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/scoring/model",
            Some(json!({"doc": model(10.0), "base_version": v1, "message": "racing"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let v2 = v["version"].as_i64().expect("version") as i32;
    let (st, v) = s
        .post("/api/v1/scoring/model/publish", json!({"version": v2}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    // Events for a third of the leads while the rescore runs.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, base, token) = (s.client.clone(), s.base.clone(), s.token.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"id": format!("during-{i}"), "name": "page_view",
                "lead": format!("r-{:03}", i * 3), "properties": {"category": "pricing"}});
            client
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::ACCEPTED);
    }
    wait_rescore(&s, v2).await;
    for page in 1..=3 {
        let list = s
            .get(&format!("/api/v1/leads?per_page=200&page={page}"))
            .await;
        for l in list["leads"].as_array().expect("leads") {
            assert_eq!(l["model_version"], json!(v2), "{l}");
        }
    }
    for i in (0..600).step_by(7) {
        let card = s.get(&format!("/api/v1/leads/r-{i:03}")).await;
        let at = card["stored"]["scored_at"].as_str().expect("scored_at");
        let then = s.get(&format!("/api/v1/leads/r-{i:03}?at={at}")).await;
        let (stored, fresh) = (
            card["stored"]["score"].as_f64().expect("score"),
            then["current"]["score"].as_f64().expect("score"),
        );
        assert!(
            (stored - fresh).abs() < 1e-6,
            "stored {stored}, fresh {fresh}: {card}"
        );
        assert_eq!(card["stored"]["tier"], then["current"]["tier"], "{card}");
    }
    s.finish().await;
}
both!(a_rescore_racing_events_keeps_every_score_current);

/// Leads link to accounts by their `company` attribute; the accounts list ranks accounts by
/// their best lead and counts their leads.
async fn accounts_rank_by_their_best_lead(backend: Backend) {
    let s = TestServer::start(backend).await;
    save_and_publish(&s, model(40.0), 0).await;
    let leads = json!([
        {"id": "a1", "attributes": {"company": "宁德电驱", "industry": "新能源汽车零部件"}},
        {"id": "a2", "attributes": {"company": "宁德电驱", "industry": "机械"}},
        {"id": "b1", "attributes": {"company": "Acme 机械", "industry": "机械"}},
        {"id": "c1", "attributes": {"industry": "机械"}}
    ]);
    let (st, v) = s
        .post("/api/v1/leads/import", json!({"leads": leads}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let list = s.get("/api/v1/accounts").await;
    assert_eq!(list["total"], json!(2), "{list}");
    let accounts = list["accounts"].as_array().expect("accounts");
    assert_eq!(accounts[0]["name"], json!("宁德电驱"), "{list}");
    assert_eq!(accounts[0]["leads"], json!(2));
    assert_eq!(accounts[0]["best_score"], json!(40.0));
    assert_eq!(accounts[1]["name"], json!("Acme 机械"));
    assert_eq!(accounts[1]["leads"], json!(1));
    let id = accounts[0]["id"].as_str().expect("id");
    let account = s.get(&format!("/api/v1/accounts/{id}")).await;
    let ids: Vec<&str> = account["leads"]
        .as_array()
        .expect("leads")
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["a1", "a2"], "{account}");
    let card = s.get("/api/v1/leads/a2").await;
    assert_eq!(card["account"]["name"], json!("宁德电驱"));
    let (st, e) = s.call(Method::GET, "/api/v1/accounts/nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");
    let (st, e) = s
        .call(Method::GET, "/api/v1/accounts?per_page=0", None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["pointer"], json!("per_page"));
    s.finish().await;
}
both!(accounts_rank_by_their_best_lead);

async fn scoring_models_refuse_bad_input(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut bad = model(40.0);
    bad["features"][1]["weight"] = json!(10);
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/scoring/model",
            Some(json!({"doc": bad, "base_version": 0})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], json!("/doc/features"), "{v}");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/scoring/model",
            Some(json!({"doc": {"schema": 1, "name": "x", "features": "no"}, "base_version": 0})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["pointer"].as_str().expect("pointer").starts_with("/doc"),
        "{v}"
    );
    let (st, v) = s.call(Method::GET, "/api/v1/scoring/model", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let ok = |base| json!({"doc": model(40.0), "base_version": base});
    let (st, _) = s
        .call(Method::PUT, "/api/v1/scoring/model", Some(ok(0)))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .call(Method::PUT, "/api/v1/scoring/model", Some(ok(0)))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["current_version"], json!(1), "{v}");
    let (st, v) = s
        .post("/api/v1/scoring/model/publish", json!({"version": 9}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // Signals: detection with the built-in lexicon, then a workspace lexicon.
    let (st, v) = s
        .post(
            "/api/v1/signals/detect",
            json!({"text": "预算还没批，项目推迟到明年"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let signals = v["signals"].as_array().expect("signals");
    assert!(
        signals
            .iter()
            .any(|x| x["category"] == json!("budget") && x["polarity"] == json!("negative")),
        "{v}"
    );
    let lexicon = s.get("/api/v1/signals/lexicon").await;
    assert_eq!(lexicon["builtin"], json!(true));
    let mut mine = lexicon["lexicon"].clone();
    mine["terms"][0]["phrases"] = json!([]);
    let (st, v) = s
        .call(Method::PUT, "/api/v1/signals/lexicon", Some(mine))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], json!("/terms/0/phrases"), "{v}");
    let mut mine = lexicon["lexicon"].clone();
    mine["terms"]
        .as_array_mut()
        .expect("terms")
        .push(json!({"category": "competitor", "polarity": "neutral", "phrases": ["竞品甲"]}));
    let (st, v) = s
        .call(Method::PUT, "/api/v1/signals/lexicon", Some(mine))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = s
        .post(
            "/api/v1/signals/detect",
            json!({"text": "客户提到了竞品甲"}),
        )
        .await;
    assert!(
        v["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .any(|x| x["phrase"] == json!("竞品甲") && x["category"] == json!("competitor")),
        "{v}"
    );
    let (st, v) = s
        .post(
            "/api/v1/signals/detect",
            json!({"text": "长".repeat(20_001)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], json!("/text"));
    s.finish().await;
}
both!(scoring_models_refuse_bad_input);

/// 400 leads of history: conversion follows industry and visits; `after_sale` leaks it.
fn history() -> Vec<Value> {
    (0..400u32)
        .map(|i| {
            let industry = ["新能源汽车零部件", "机械", "零售", "软件"][(i % 4) as usize];
            let visits = (i * 7) % 13;
            let p = match industry {
                "新能源汽车零部件" => 0.5,
                "机械" => 0.3,
                _ => 0.1,
            } + 0.04 * f64::from(visits);
            // A fixed, well-spread pseudo-random draw per lead.
            let draw = f64::from((i.wrapping_mul(2_654_435_761) >> 8) % 1000) / 1000.0;
            let converted = draw < p;
            json!({
                "id": format!("crm-{i}"),
                "attributes": {"industry": industry, "visits": visits,
                               "after_sale": if converted { "签约" } else { "—" },
                               "converted": u8::from(converted)},
            })
        })
        .collect()
}

async fn history_import_backtest_suggest(backend: Backend) {
    let s = TestServer::start(backend).await;
    let leads = history();
    let (st, v) = s
        .post("/api/v1/leads/import", json!({"leads": leads}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"created": 400, "updated": 0}));
    let (st, v) = s
        .post("/api/v1/leads/import", json!({"leads": [leads[0].clone()]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"created": 0, "updated": 1}));
    let (st, v) = s
        .post(
            "/api/v1/leads/import",
            json!({"leads": [{"id": "x", "identities": {"fax": "1"}}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], json!("/leads/0/identities/fax"));

    // Publishing rescores the imported leads; the backtest measures the model on them.
    let v1 = save_and_publish(&s, model(100.0 - 60.0), 0).await;
    let (st, b) = s
        .post("/api/v1/scoring/backtest", json!({"outcome": "converted"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["version"], json!(v1));
    assert_eq!(b["backtest"]["leads"], json!(400));
    let auc = b["backtest"]["auc"].as_f64().expect("auc");
    assert!(auc > 0.55, "industry alone should rank: {b}");
    let (st, e) = s
        .post("/api/v1/scoring/backtest", json!({"outcome": "nope"}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // Suggested weights become a draft version with its diff and backtests.
    let (st, sug) = s
        .post(
            "/api/v1/scoring/suggest",
            json!({"outcome": "converted", "exclude": ["after_*"], "auto_crosses": 0, "name": "建议"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{sug}");
    assert_eq!(sug["version"], json!(v1 + 1));
    assert_eq!(sug["diff"]["from"], json!(v1));
    let used = sug["used"].as_array().expect("used");
    assert!(
        used.contains(&json!("industry")) && used.contains(&json!("visits")),
        "{sug}"
    );
    assert!(!used.iter().any(|u| u == "after_sale"));
    assert!(sug["holdout"]["auc"].as_f64().expect("auc") > 0.6, "{sug}");
    // Its progress stays readable, finished: every fit done.
    let progress = s.get("/api/v1/scoring/suggest/progress").await;
    assert_eq!(progress["running"], json!(false), "{progress}");
    assert_eq!(progress["leads"], json!(400), "{progress}");
    assert_eq!(progress["error"], Value::Null, "{progress}");
    assert!(
        progress["progress"]["done"].as_u64() > Some(0),
        "{progress}"
    );
    assert_eq!(
        progress["progress"]["done"], progress["progress"]["total"],
        "{progress}"
    );
    // Coverage: the attribute every lead has matches; an event none has does not.
    let (st, cov) = s
        .post("/api/v1/scoring/coverage", json!({"doc": model(40.0)}))
        .await;
    assert_eq!(st, StatusCode::OK, "{cov}");
    assert_eq!(cov["leads"], json!(400), "{cov}");
    let features = cov["features"].as_array().expect("features");
    let industry = features
        .iter()
        .find(|f| f["feature"] == "industry")
        .expect("industry");
    assert_eq!(industry["with_value"], json!(400), "{cov}");
    assert_eq!(industry["matches_nothing"], json!(false), "{cov}");
    assert!(
        industry["values"].as_array().is_some_and(|v| v.len() == 4),
        "the four industries leads have: {cov}"
    );
    for f in features.iter().filter(|f| f["events"].is_object()) {
        assert_eq!(f["events"]["total"], json!(0), "{cov}");
        assert_eq!(f["matches_nothing"], json!(true), "{cov}");
    }
    let mut bad = model(40.0);
    bad["tiers"]["warm"] = json!(90);
    let (st, e) = s
        .post("/api/v1/scoring/coverage", json!({"doc": bad}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["pointer"], json!("/doc/tiers"), "{e}");
    let m = s.get("/api/v1/scoring/model").await;
    assert_eq!(m["latest_version"], json!(v1 + 1));
    assert_eq!(m["published_version"], json!(v1), "a suggestion is a draft");
    let (st, b2) = s
        .post(
            "/api/v1/scoring/backtest",
            json!({"outcome": "converted", "version": v1 + 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b2}");
    assert!(b2["backtest"]["auc"].as_f64().expect("auc") > auc, "{b2}");
    // An unsaved draft (the studio's) backtests the same as its saved version.
    let draft = s
        .get(&format!("/api/v1/scoring/model/versions/{}", v1 + 1))
        .await["doc"]
        .clone();
    let (st, b3) = s
        .post(
            "/api/v1/scoring/backtest",
            json!({"outcome": "converted", "doc": draft}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b3}");
    assert_eq!(b3["version"], Value::Null);
    assert_eq!(b3["backtest"], b2["backtest"]);
    let (st, e) = s
        .post(
            "/api/v1/scoring/backtest",
            json!({"outcome": "converted", "doc": draft, "version": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["pointer"], json!("/doc"));
    let mut bad = draft.clone();
    bad["features"][0]["weight"] = json!(-5);
    let (st, e) = s
        .post(
            "/api/v1/scoring/backtest",
            json!({"outcome": "converted", "doc": bad}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["pointer"], json!("/doc/features/0/weight"));
    // The studio's sample: leads with what it needs to rescore them in the browser.
    let sample = s.get("/api/v1/leads?per_page=5&with_state=true").await;
    let first = &sample["leads"][0];
    assert!(first["attributes"]["industry"].is_string(), "{sample}");
    assert!(first["state"].is_object(), "{sample}");
    assert!(s.get("/api/v1/leads?per_page=5").await["leads"][0]["state"].is_null());
    let (st, e) = s
        .post(
            "/api/v1/scoring/suggest",
            json!({"outcome": "converted", "exclude": ["Tags"]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["pointer"], json!("/exclude"));
    let progress = s.get("/api/v1/scoring/suggest/progress").await;
    assert!(
        progress["error"]
            .as_str()
            .is_some_and(|e| e.contains("Tags")),
        "a failed suggestion says why: {progress}"
    );
    s.finish().await;
}
both!(history_import_backtest_suggest);

async fn intent_nodes_in_flows(backend: Backend) {
    let s = TestServer::start(backend).await;
    save_and_publish(&s, model(40.0), 0).await;
    s.create_flow(
        json!({"schema": 1, "name": "通话转写", "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "call_transcribed"}},
            {"id": "d", "type": "detect_signals", "config": {"text": "trigger.event.properties.text", "lead": "trigger.event.lead"}},
            {"id": "sc", "type": "score", "config": {"lead": "trigger.event.lead"}},
            {"id": "n", "type": "next_best_action", "config": {"lead": "trigger.event.lead"}},
            {"id": "v", "type": "set", "config": {"vars": {"tier": "steps.sc.output.tier", "n": "size(steps.d.output.signals)"}}}],
            "edges": [{"from": "t", "to": "d"}, {"from": "d", "to": "sc"}, {"from": "sc", "to": "n"}, {"from": "n", "to": "v"}]}),
        true,
    )
    .await;
    let v = event(
        &s,
        "call-1",
        "call_transcribed",
        json!({"user_id": "u-9", "text": "预算已经批了，不过竞品也在报价"}),
        Utc::now(),
    )
    .await;
    let lead = v["lead"].as_str().expect("lead").to_owned();
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(run["status"], json!("succeeded"), "{run}");
    let step = |id: &str| {
        run["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|x| x["node"] == json!(id))
            .cloned()
            .unwrap_or_else(|| panic!("no step {id}: {run}"))
    };
    let signals = step("d")["output"]["signals"].clone();
    assert!(
        signals
            .as_array()
            .expect("signals")
            .iter()
            .any(|x| x["category"] == json!("budget") && x["polarity"] == json!("positive")),
        "{signals}"
    );
    let scored = step("sc")["output"].clone();
    assert_eq!(scored["lead"], json!(lead));
    assert!(
        scored["explanation"]
            .as_array()
            .is_some_and(|e| e.len() == 2),
        "{scored}"
    );
    // Cold, but comparing competitors: the built-in rules say book a comparison demo.
    let next = step("n")["output"]["next_actions"].clone();
    assert_eq!(next[0]["rule"], json!("competitor"), "{next}");
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(card["next_actions"], next, "{card}");
    assert!(
        card["signals"]
            .as_array()
            .is_some_and(|x| x.iter().any(|s| s["category"] == json!("budget"))),
        "{card}"
    );
    assert!(
        card["summary"]["zh"]
            .as_str()
            .expect("summary")
            .starts_with("近7天")
    );
    // A workspace's own rules replace the built-in ones; bad ones are refused with pointers.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/nba/rules",
            Some(json!({"rules": [{"id": "x", "name": "坏规则", "when": "score.tier ==", "actions": []}]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], json!("/rules/0/when"), "{v}");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/nba/rules",
            Some(json!({"rules": [{"id": "budget_ok", "name": "预算已批：报价", "when": "signals.exists(s, s.category == 'budget' && s.polarity == 'positive')",
                                   "actions": [{"kind": "task", "title": "发送正式报价", "within": "1d"}]}]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(
        card["next_actions"][0]["rule"],
        json!("budget_ok"),
        "{card}"
    );
    assert_eq!(s.get("/api/v1/nba/rules").await["builtin"], json!(false));
    assert!(
        card["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["name"] == json!("signal.detected")),
        "signals become lead events: {card}"
    );
    // A lead that does not exist fails the step with a typed error.
    let bad = s
        .create_flow(
            json!({"schema": 1, "name": "坏线索", "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
            {"id": "sc", "type": "score", "config": {"lead": "'nobody'"}}],
            "edges": [{"from": "t", "to": "sc"}]}),
            true,
        )
        .await;
    let (st, started) = s
        .post(&format!("/api/v1/flows/{bad}/runs"), json!({}))
        .await;
    assert!(st.is_success(), "{started}");
    let run = s
        .wait_run(started["run_id"].as_str().expect("run id"), 20)
        .await;
    assert_eq!(run["status"], json!("failed"), "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .contains("does not exist"),
        "{run}"
    );
    s.finish().await;
}
both!(intent_nodes_in_flows);

/// Issue 24: a rep corrects what the detector read in a lead's utterance from the lead card;
/// the correction is a label (a `signal.labelled` event) the next training run reads, and
/// the studio gets the model it runs in the browser.
async fn a_misread_utterance_is_labelled_from_the_card(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_flow(
        json!({"schema": 1, "name": "聊天记录", "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "chat_message"}},
            {"id": "d", "type": "detect_signals", "config": {"text": "trigger.event.properties.text", "lead": "trigger.event.lead"}}],
            "edges": [{"from": "t", "to": "d"}]}),
        true,
    )
    .await;
    let text = "预算上周批下来了，月底前要定下来。";
    let v = event(
        &s,
        "chat-1",
        "chat_message",
        json!({"user_id": "u-7", "text": text}),
        Utc::now(),
    )
    .await;
    let lead = v["lead"].as_str().expect("lead").to_owned();
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(run["status"], json!("succeeded"), "{run}");
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    let said = &card["utterances"][0];
    assert_eq!(said["text"], json!(text), "{card}");
    assert!(said["label"].is_null(), "{said}");
    let signals = said["signals"].as_array().expect("signals");
    assert!(
        signals.iter().any(|x| x["category"] == json!("budget")
            && x["evidence"].as_array().is_some_and(|e| !e.is_empty())),
        "each signal says why: {said}"
    );

    // A polarity for a category that has none, or one not labelled, is refused by path.
    for (bad, pointer) in [
        (
            json!({"text": text, "categories": ["risk"], "polarity": {"risk": "negative"}}),
            "/polarity/risk",
        ),
        (
            json!({"text": text, "categories": [], "polarity": {"budget": "positive"}}),
            "/polarity/budget",
        ),
        (json!({"text": "  ", "categories": []}), "/text"),
    ] {
        let (st, e) = s.post("/api/v1/signals/labels", bad).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["pointer"], json!(pointer), "{e}");
    }
    let (st, e) = s
        .post(
            "/api/v1/signals/labels",
            json!({"text": text, "categories": ["money"]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // The correction, then a second thought: the latest label of a text wins.
    let label = |timeline: &str| {
        json!({"text": text, "lead": lead, "categories": ["budget", "timeline"],
               "polarity": {"budget": "positive", "timeline": timeline}})
    };
    let (st, first) = s.post("/api/v1/signals/labels", label("negative")).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let (st, _) = s.post("/api/v1/signals/labels", label("positive")).await;
    assert_eq!(st, StatusCode::OK);
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(
        card["utterances"][0]["label"]["polarity"]["timeline"],
        json!("positive"),
        "{card}"
    );
    let labels = s.get("/api/v1/signals/labels").await;
    assert_eq!(
        labels["labels"].as_array().map(Vec::len),
        Some(1),
        "{labels}"
    );
    assert_eq!(labels["labels"][0]["lead"], json!(lead));
    let (st, jsonl) = s.get_text("/api/v1/signals/labels?format=jsonl").await;
    assert_eq!(st, StatusCode::OK);
    let lines: Vec<trellis_model::signals::LabelledText> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a labelled text per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{jsonl}");
    assert_eq!(lines[0].text, text);
    assert_eq!(
        lines[0]
            .polarity
            .get(&trellis_model::signals::Category::Timeline),
        Some(&trellis_model::signals::Polarity::Positive)
    );
    // `trellis signals labels` downloads the same, checked.
    let (pulled, count) = trellis_server::cli::labels(&s.base, &s.token)
        .await
        .expect("the labels download");
    assert_eq!((pulled, count), (jsonl.clone(), 1));
    let refused = trellis_server::cli::labels(&s.base, "trl_wrong")
        .await
        .expect_err("a wrong token is refused");
    assert!(refused.to_string().contains("401"), "{refused}");
    let (st, e) = s.get_text("/api/v1/signals/labels?format=csv").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // The model the studio runs is the one the server decides with.
    let (st, model) = s.get_text("/api/v1/signals/model").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(model, trellis_model::signals::Model::builtin_json());
    s.finish().await;
}
both!(a_misread_utterance_is_labelled_from_the_card);

/// A lead's score columns as `table` holds them (`leads` before migration 000009,
/// `lead_scores` after), by lead id.
type ScoreRow = (String, f64, String, String, Option<f64>, Option<i32>, i64);

async fn score_rows(db: &sea_orm::DatabaseConnection, table: &str, id: &str) -> Vec<ScoreRow> {
    use sea_orm::ConnectionTrait as _;
    let sql = format!(
        "SELECT {id}, score, tier, stage, probability, model_version, scored_at \
         FROM {table} ORDER BY {id}"
    );
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .expect("select scores");
    rows.iter()
        .map(|r| {
            (
                r.try_get_by_index(0).expect("id"),
                r.try_get_by_index(1).expect("score"),
                r.try_get_by_index(2).expect("tier"),
                r.try_get_by_index(3).expect("stage"),
                r.try_get_by_index(4).expect("probability"),
                r.try_get_by_index(5).expect("model_version"),
                r.try_get_by_index(6).expect("scored_at"),
            )
        })
        .collect()
}

/// Migration 000009 (scores out of `leads` into `lead_scores`) rolls back and forward
/// again without losing a score.
async fn the_lead_scores_migration_rolls_back_without_loss(backend: Backend) {
    use trellis_migrations::{Migrator, MigratorTrait as _};
    let s = TestServer::start(backend).await;
    save_and_publish(&s, model(40.0), 0).await;
    let leads: Vec<Value> = ["新能源汽车零部件", "机械", "纺织"]
        .iter()
        .enumerate()
        .map(|(i, industry)| json!({"id": format!("m-{i}"), "attributes": {"industry": industry}}))
        .collect();
    let (st, v) = s
        .post("/api/v1/leads/import", json!({ "leads": leads }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": "m-view", "name": "page_view", "lead": "m-1",
                   "properties": {"category": "pricing"}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let db = s.state().db.clone();
    let before = score_rows(&db, "lead_scores", "lead_id").await;
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(
        before.iter().any(|r| r.2 != before[0].2),
        "the leads differ in tier: {before:?}"
    );

    // Down past the migrations after 000009 too, then 000009 itself.
    let after_9 = Migrator::migrations().len() as u32 - 9;
    Migrator::down(&db, Some(after_9 + 1)).await.expect("down");
    assert_eq!(score_rows(&db, "leads", "id").await, before);
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(score_rows(&db, "lead_scores", "lead_id").await, before);
    s.finish().await;
}
both!(the_lead_scores_migration_rolls_back_without_loss);

/// Several processes on one database: a rescore is done by the one that holds its lease;
/// another does nothing while the lease is live, and takes the rescore over once the holder
/// stops renewing it.
async fn one_process_holds_a_rescore_and_another_takes_over(backend: Backend) {
    use sea_orm::{ConnectionTrait as _, Statement};
    let s = TestServer::start(backend).await;
    let leads: Vec<Value> = (0..300)
        .map(|i| json!({"id": format!("p-{i:03}"), "attributes": {"industry": "机械"}}))
        .collect();
    let (st, v) = s
        .post("/api/v1/leads/import", json!({ "leads": leads }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let v1 = save_and_publish(&s, model(40.0), 0).await;

    // A second process on the same database: its own intent engine, the same stores.
    let state = s.state();
    let other = trellis_server::intent::Intent::new(
        state.db.clone(),
        state.db.clone(),
        std::sync::Arc::new(trellis_server::leads::Models::default()),
        state.events.clone(),
        state.runs.clone(),
    );
    let db = state.db.clone();
    let sql = |q: &str| Statement::from_string(db.get_database_backend(), q.to_owned());
    let workspace: String = db
        .query_one_raw(sql("SELECT workspace_id FROM scoring_models"))
        .await
        .expect("select")
        .expect("a model")
        .try_get_by_index(0)
        .expect("workspace");

    // The finished rescore is nobody's to do.
    assert_eq!(
        other.rescore_all(&workspace, v1).await.expect("rescore"),
        None
    );

    // As if a third process were rescoring (its lease is live) when this one looks.
    let live = Utc::now().timestamp_millis() + 60_000;
    db.execute_raw(sql(&format!(
        "UPDATE scoring_models SET rescore_finished_at = NULL, rescore_done = 0, \
         rescore_owner = 'elsewhere', rescore_lease_until = {live}"
    )))
    .await
    .expect("update");
    assert_eq!(other.take_over_rescores().await.expect("look"), 0);
    assert_eq!(
        other.rescore_all(&workspace, v1).await.expect("rescore"),
        None
    );
    assert_eq!(
        state
            .intent
            .rescore_all(&workspace, v1)
            .await
            .expect("rescore"),
        None
    );
    let m = s.get("/api/v1/scoring/model").await;
    assert!(m["rescore"]["finished_at"].is_null(), "{m}");

    // The holder stops: its lease lapses. Both processes try at once; one does it.
    db.execute_raw(sql(&format!(
        "UPDATE scoring_models SET rescore_lease_until = {}",
        Utc::now().timestamp_millis() - 1
    )))
    .await
    .expect("update");
    let (a, b) = tokio::join!(
        other.rescore_all(&workspace, v1),
        state.intent.rescore_all(&workspace, v1)
    );
    // (The server's own watch may, rarely, have taken it over first: then neither did.)
    let done: Vec<u64> = [a.expect("rescore"), b.expect("rescore")]
        .into_iter()
        .flatten()
        .collect();
    assert!(done.len() <= 1, "two processes did the rescore: {done:?}");
    assert!(done.iter().all(|n| *n == 300), "{done:?}");
    let m = wait_rescore(&s, v1).await;
    assert_eq!(m["rescore"]["done"], json!(300), "{m}");

    // A publish frees the new rescore for whichever process claims it first; the watch of
    // a process that did not publish finds nothing left to take.
    let v2 = save_and_publish(&s, model(10.0), v1).await;
    assert_eq!(other.take_over_rescores().await.expect("look"), 0);
    let card = s.get("/api/v1/leads/p-007").await;
    assert_eq!(card["model_version"], json!(v2), "{card}");
    s.finish().await;
}
both!(one_process_holds_a_rescore_and_another_takes_over);

/// Publishing a model shows its impact first, and can be a backfill: scores and tiers move
/// and the changes are on the leads' timelines, but no flow starts. A normal publish starts
/// the flows that react to tier changes.
async fn a_publish_shows_its_impact_and_a_backfill_starts_no_flow(backend: Backend) {
    let s = TestServer::start(backend).await;
    let v1 = save_and_publish(&s, model(40.0), 0).await;
    let leads: Vec<Value> = (0..20)
        .map(|i| {
            let industry = if i < 12 {
                "新能源汽车零部件"
            } else {
                "纺织"
            };
            json!({"id": format!("b-{i:02}"), "attributes": {"industry": industry}})
        })
        .collect();
    let (st, v) = s
        .post("/api/v1/leads/import", json!({ "leads": leads }))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let flow = s
        .create_flow(
            json!({"schema": 1, "name": "降温提醒", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "lead.tier_changed"}},
                {"id": "s", "type": "set", "config": {"vars": {"to": "trigger.event.properties.to_tier"}}}],
                "edges": [{"from": "t", "to": "s"}]}),
            true,
        )
        .await;
    let runs_of_flow = || async {
        s.get(&format!("/api/v1/runs?flow={flow}&limit=500")).await["runs"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    assert_eq!(runs_of_flow().await, 0);

    // Industry weighs less in v2: the 12 leads of the best industry fall from warm to cold.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/scoring/model",
            Some(json!({"doc": model(10.0), "base_version": v1, "message": "行业权重降低"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let v2 = v["version"].as_i64().expect("version") as i32;
    let impact = s
        .get(&format!("/api/v1/scoring/model/impact?version={v2}"))
        .await;
    assert_eq!(impact["leads"], json!(20), "{impact}");
    assert_eq!(impact["changes"], json!(12), "{impact}");
    assert_eq!(
        impact["moves"],
        json!([{"from": "warm", "to": "cold", "leads": 12}]),
        "{impact}"
    );
    assert_eq!(impact["flows"][0]["id"], json!(flow), "{impact}");
    assert_eq!(impact["flows"][0]["runs"], json!(12), "{impact}");
    let (st, v) = s
        .call(Method::GET, "/api/v1/scoring/model/impact?version=99", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // A backfill moves the tiers and starts nothing.
    let (st, v) = s
        .post(
            "/api/v1/scoring/model/publish",
            json!({"version": v2, "backfill": true}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    wait_rescore(&s, v2).await;
    let card = s.get("/api/v1/leads/b-03").await;
    assert_eq!(card["tier"], "cold", "{card}");
    assert_eq!(card["model_version"], json!(v2), "{card}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(runs_of_flow().await, 0, "a backfill started runs");

    // Publishing v1 again (a rollback, not a backfill) moves them back and starts the flow.
    let (st, v) = s
        .post("/api/v1/scoring/model/rollback", json!({"version": v1}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let v3 = v["version"].as_i64().expect("version") as i32;
    wait_rescore(&s, v3).await;
    let mut started = 0;
    for _ in 0..100 {
        started = runs_of_flow().await;
        if started == 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(started, 12, "one run per lead that moved");
    s.finish().await;
}
both!(a_publish_shows_its_impact_and_a_backfill_starts_no_flow);

/// The events of [`a_delivery_is_attributed_as_its_events_one_by_one`], their ids and
/// identities under `p` (`solo` or `bulk`): visitors browsing anonymously, identifying (the
/// second identify ties another visitor's history to the same person: a merge in the middle
/// of the delivery), a resent event, an id twice in the delivery, a lead named before it is
/// stored, an email that later brings an anonymous id, and an event about nobody.
fn delivery(p: &str, start: DateTime<Utc>) -> Vec<trellis_runtime::connector::InboundEvent> {
    let page = |cat: &str| json!({"category": cat, "path": format!("/{cat}")});
    let with = |mut props: Value, extra: Value| {
        for (k, v) in extra.as_object().expect("object") {
            props[k] = v.clone();
        }
        props
    };
    let steps: Vec<(&str, &str, Value)> = vec![
        (
            "e1",
            "page_view",
            with(page("pricing"), json!({"anonymous_id": format!("{p}-a1")})),
        ),
        (
            "e2",
            "page_view",
            with(page("docs"), json!({"anonymous_id": format!("{p}-a1")})),
        ),
        (
            "e3",
            "page_view",
            with(page("pricing"), json!({"anonymous_id": format!("{p}-a2")})),
        ),
        (
            "e4",
            "identify",
            json!({"anonymous_id": format!("{p}-a1"), "user_id": format!("{p}-u1"),
                                  "owner": "rep1",
                                  "traits": {"company": format!("{p}-华东机械"), "industry": "机械"}}),
        ),
        (
            "e5",
            "page_view",
            with(page("pricing"), json!({"anonymous_id": format!("{p}-a2")})),
        ),
        (
            "e6",
            "identify",
            json!({"anonymous_id": format!("{p}-a2"), "user_id": format!("{p}-u1")}),
        ),
        (
            "e7",
            "page_view",
            with(page("pricing"), json!({"user_id": format!("{p}-u1")})),
        ),
        (
            "e1",
            "page_view",
            with(page("pricing"), json!({"anonymous_id": format!("{p}-a1")})),
        ),
        (
            "e8",
            "page_view",
            with(page("pricing"), json!({"lead": format!("{p}-named")})),
        ),
        (
            "e8",
            "page_view",
            with(page("pricing"), json!({"lead": format!("{p}-named")})),
        ),
        (
            "e9",
            "page_view",
            with(page("pricing"), json!({"lead": format!("{p}-named")})),
        ),
        (
            "e10",
            "page_view",
            with(page("pricing"), json!({"email": format!("{p}@x.cn")})),
        ),
        (
            "e11",
            "page_view",
            with(
                page("pricing"),
                json!({"email": format!("{p}@x.cn"), "anonymous_id": format!("{p}-a3")}),
            ),
        ),
        (
            "e12",
            "page_view",
            with(page("pricing"), json!({"anonymous_id": format!("{p}-a3")})),
        ),
        ("e13", "heartbeat", json!({})),
    ];
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (id, name, mut props))| {
            props["timestamp"] = json!((start + Duration::seconds(i as i64)).to_rfc3339());
            trellis_runtime::connector::InboundEvent {
                id: Some(id.to_owned()),
                name: name.to_owned(),
                payload: props,
            }
        })
        .collect()
}

/// What the delivery left, per lead (by its identities), with `p` written as `P`.
async fn left_by(db: &sea_orm::DatabaseConnection, p: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait as _, Statement};
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT l.id, l.owner, l.attributes, l.state, l.merged_into, s.score, s.tier, s.stage, \
             (SELECT count(*) FROM events e WHERE e.lead_id = l.id AND e.name NOT LIKE 'lead.%') AS events, \
             (SELECT count(*) FROM events e WHERE e.lead_id = l.id AND e.name = 'lead.tier_changed') AS changes \
             FROM leads l JOIN lead_scores s ON s.lead_id = l.id AND s.workspace_id = l.workspace_id"
                .to_owned(),
        ))
        .await
        .expect("leads");
    let identities = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT lead_id, kind, value FROM lead_identities".to_owned(),
        ))
        .await
        .expect("identities");
    let ours = |id: &str| {
        id.starts_with(p)
            || identities.iter().any(|i| {
                i.try_get::<String>("", "lead_id").expect("lead") == id
                    && i.try_get::<String>("", "value")
                        .expect("value")
                        .starts_with(p)
            })
    };
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.try_get("", "id").expect("id");
        let merged_into: Option<String> = r.try_get("", "merged_into").expect("merged");
        if !ours(&id) && !merged_into.as_deref().is_some_and(ours) {
            continue;
        }
        let mut known: Vec<String> = identities
            .iter()
            .filter(|i| i.try_get::<String>("", "lead_id").expect("lead") == id)
            .map(|i| {
                format!(
                    "{}={}",
                    i.try_get::<String>("", "kind").expect("kind"),
                    i.try_get::<String>("", "value").expect("value")
                )
            })
            .collect();
        known.sort();
        let attributes: Value = r.try_get("", "attributes").expect("attributes");
        let state: Value = r.try_get("", "state").expect("state");
        let line = format!(
            "{} | named {} | merged {} | owner {:?} | {} | {} | {:.2} {} {} | events {} | changes {}",
            known.join(","),
            id.starts_with(p),
            merged_into.is_some(),
            r.try_get::<Option<String>>("", "owner").expect("owner"),
            attributes,
            state,
            r.try_get::<f64>("", "score").expect("score"),
            r.try_get::<String>("", "tier").expect("tier"),
            r.try_get::<String>("", "stage").expect("stage"),
            r.try_get::<i64>("", "events").expect("events"),
            r.try_get::<i64>("", "changes").expect("changes"),
        );
        out.push(line.replace(p, "P"));
    }
    out.sort();
    out
}

/// A connector delivery is recorded set-based (its events folded into their leads in
/// memory, a merge or an unstored lead taking the one-by-one path in the middle): every
/// lead, identity, attribute, behaviour state, score and tier change comes out exactly as
/// when the same events arrive one at a time.
async fn a_delivery_is_attributed_as_its_events_one_by_one(backend: Backend) {
    use sea_orm::{ConnectionTrait as _, Statement};
    use trellis_server::events::{NewEvent, Recorded};
    let s = TestServer::start(backend).await;
    save_and_publish(
        &s,
        json!({
            "schema": 1, "name": "逐条与批量",
            "features": [
                {"id": "industry", "label": "行业", "weight": 30.0,
                 "source": {"kind": "fit", "attribute": "industry"},
                 "transform": {"type": "categorical", "values": {"机械": 1.0}, "other": 0.0}},
                {"id": "pricing", "label": "价格页", "weight": 70.0,
                 "source": {"kind": "behaviour", "event": "page_view",
                            "filter": "event.properties.category == 'pricing'",
                            "aggregate": "count", "window_days": 30},
                 "transform": {"type": "cap", "cap": 4}}
            ],
            "tiers": {"warm": 30, "hot": 60}, "stages": {"mql": 30, "sql": 60}
        }),
        0,
    )
    .await;
    let state = s.state();
    let db = state.db.clone();
    let workspace: String = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT workspace_id FROM scoring_models".to_owned(),
        ))
        .await
        .expect("select")
        .expect("a model")
        .try_get_by_index(0)
        .expect("workspace");
    let start = Utc::now() - Duration::hours(1);

    let mut one_by_one = Vec::new();
    for e in delivery("solo", start) {
        let event = NewEvent::from_connector("solo", e);
        one_by_one.push(
            state
                .events
                .record(&workspace, event)
                .await
                .expect("record"),
        );
    }
    let duplicates = one_by_one
        .iter()
        .filter(|r| matches!(r, Recorded::Duplicate))
        .count();
    assert_eq!(
        duplicates, 2,
        "the resent event and the repeated id: {one_by_one:?}"
    );

    let batch = state
        .events
        .record_batch(&workspace, "bulk", delivery("bulk", start))
        .await
        .expect("batch");
    assert!(batch.refused.is_empty(), "{:?}", batch.refused);
    assert_eq!(batch.recorded as usize, one_by_one.len() - duplicates);

    let (one, all) = (left_by(&db, "solo").await, left_by(&db, "bulk").await);
    assert!(one.len() >= 4, "leads of the one-by-one events: {one:#?}");
    assert!(
        one.iter().any(|l| l.contains("merged true")),
        "the second identify merged a lead: {one:#?}"
    );
    assert!(
        one.iter().any(|l| l
            .rsplit_once("changes ")
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)),
        "a lead moved tier more than once: {one:#?}"
    );
    assert_eq!(one, all, "one by one (left) and as one delivery (right)");
    s.finish().await;
}
both!(a_delivery_is_attributed_as_its_events_one_by_one);
