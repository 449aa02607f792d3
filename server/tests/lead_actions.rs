//! Lead actions and behaviour conditions over HTTP, on SQLite and PostgreSQL: a behaviour
//! trigger ("viewed the comparison and downloaded the whitepaper, either order, within 7
//! days") starts a flow once per lead; the flow tags the lead, assigns the territory's rep,
//! notifies them in the inbox and enrolls the lead in another flow; another flow removes
//! it; a trigger's condition filters events; a behaviour branch counts visits; a
//! suppressed lead starts nothing.

mod common;

use chrono::{Duration, Utc};
use common::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn event(s: &TestServer, id: &str, name: &str, props: Value, days_ago: i64) -> Value {
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({"id": id, "name": name, "properties": props,
                   "timestamp": Utc::now() - Duration::days(days_ago)}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    v
}

fn step(run: &Value, id: &str) -> Value {
    run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|x| x["node"] == json!(id))
        .cloned()
        .unwrap_or_else(|| panic!("no step {id}: {run}"))
}

async fn runs_of(s: &TestServer, flow: &str) -> Vec<Value> {
    s.get(&format!("/api/v1/runs?flow={flow}"))
        .await
        .get("runs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

async fn lead_actions_and_behaviour(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, v) = s
        .post(
            "/api/v1/leads/import",
            json!({"leads": [
                {"id": "east", "attributes": {"name": "王磊", "region": "华东"}, "identities": {"user_id": "u-east"}},
                {"id": "south", "attributes": {"name": "李娜", "region": "华南"}, "identities": {"user_id": "u-south"}},
                {"id": "north", "attributes": {"name": "赵强"}, "identities": {"user_id": "u-north"}},
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let nurture = s
        .create_flow(
            json!({"schema": 1, "name": "培育", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
                {"id": "w", "type": "wait", "config": {"duration": "3d"}}],
                "edges": [{"from": "t", "to": "w"}]}),
            true,
        )
        .await;
    let hot = s
        .create_flow(
            json!({"schema": 1, "name": "高意向跟进", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "behaviour", "behaviour": {
                    "kind": "all_within", "days": 7, "did": [
                        {"event": "page_view", "filter": "event.properties.category == 'competitor_comparison'"},
                        {"event": "download", "filter": "event.properties.category == 'whitepaper'"}]}}},
                {"id": "tag", "type": "update_lead", "config": {"lead": "trigger.event.lead", "add_tags": ["高意向"], "lifecycle_stage": "sql"}},
                {"id": "own", "type": "assign_owner", "config": {"lead": "trigger.event.lead", "strategy": "territory",
                    "territory_attribute": "region", "territories": {"华东": "zhang.wei", "华南": "li.na"}, "fallback": "wang.fang"}},
                {"id": "tell", "type": "notify", "config": {"to": "lead_owner", "lead": "trigger.event.lead",
                    "title": "高意向线索：{{ trigger.event.lead }}", "message": "刚看过竞品对比并下载了白皮书"}},
                {"id": "in", "type": "enroll", "config": {"action": "enroll", "flow": nurture, "lead": "trigger.event.lead"}}],
                "edges": [{"from": "t", "to": "tag"}, {"from": "tag", "to": "own"}, {"from": "own", "to": "tell"}, {"from": "tell", "to": "in"}]}),
            true,
        )
        .await;

    // East: the whitepaper two days ago, the comparison now: the comparison completes it.
    let v = event(
        &s,
        "e1",
        "download",
        // A download's form traits are kept on the lead.
        json!({"user_id": "u-east", "category": "whitepaper", "traits": {"job_title": "采购经理"}}),
        2,
    )
    .await;
    assert_eq!(v["runs_started"], json!(0), "{v}");
    let v = event(
        &s,
        "e2",
        "page_view",
        json!({"user_id": "u-east", "category": "competitor_comparison"}),
        0,
    )
    .await;
    assert_eq!(v["runs_started"], json!(1), "{v}");
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(run["status"], json!("succeeded"), "{run}");
    assert_eq!(
        step(&run, "own")["output"]["owner"],
        json!("zhang.wei"),
        "{run}"
    );
    assert_eq!(
        step(&run, "tell")["output"]["notified"],
        json!(["zhang.wei"])
    );
    let enrolled = step(&run, "in")["output"].clone();
    assert_eq!(enrolled["started"], json!(true), "{enrolled}");
    // A repeat visit after it held starts nothing new.
    let v = event(
        &s,
        "e3",
        "page_view",
        json!({"user_id": "u-east", "category": "competitor_comparison"}),
        0,
    )
    .await;
    assert_eq!(v["runs_started"], json!(0), "{v}");
    let card = s.get("/api/v1/leads/east").await;
    assert_eq!(card["owner"], json!("zhang.wei"), "{card}");
    assert_eq!(card["attributes"]["tags"], json!(["高意向"]), "{card}");
    assert_eq!(
        card["attributes"]["lifecycle_stage"],
        json!("sql"),
        "{card}"
    );
    assert_eq!(card["attributes"]["job_title"], json!("采购经理"), "{card}");
    let inbox = s.get("/api/v1/inbox?recipient=zhang.wei").await;
    assert_eq!(inbox["unread"], json!(1), "{inbox}");
    let message = inbox["messages"][0].clone();
    assert_eq!(message["title"], json!("高意向线索：east"), "{message}");
    assert_eq!(message["lead"], json!("east"));
    let (st, read) = s
        .post(
            &format!("/api/v1/inbox/{}/read", message["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{read}");
    assert!(!read["read_at"].is_null());
    assert_eq!(
        s.get("/api/v1/inbox?recipient=zhang.wei").await["unread"],
        json!(0)
    );
    // The enrolment is a live run of the nurture flow for that lead.
    let nurture_runs = runs_of(&s, &nurture).await;
    assert_eq!(nurture_runs.len(), 1, "{nurture_runs:?}");

    // South in the other order; north falls to the fallback owner.
    event(
        &s,
        "s1",
        "page_view",
        json!({"user_id": "u-south", "category": "competitor_comparison"}),
        3,
    )
    .await;
    let v = event(
        &s,
        "s2",
        "download",
        json!({"user_id": "u-south", "category": "whitepaper"}),
        0,
    )
    .await;
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(
        step(&run, "own")["output"]["owner"],
        json!("li.na"),
        "{run}"
    );
    // Too far apart for north: nothing; then within the window: the fallback.
    event(
        &s,
        "n1",
        "download",
        json!({"user_id": "u-north", "category": "whitepaper"}),
        9,
    )
    .await;
    let v = event(
        &s,
        "n2",
        "page_view",
        json!({"user_id": "u-north", "category": "competitor_comparison"}),
        0,
    )
    .await;
    assert_eq!(v["runs_started"], json!(0), "{v}");
    let v = event(
        &s,
        "n3",
        "download",
        json!({"user_id": "u-north", "category": "whitepaper"}),
        0,
    )
    .await;
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(
        step(&run, "own")["output"]["owner"],
        json!("wang.fang"),
        "{run}"
    );
    assert_eq!(runs_of(&s, &hot).await.len(), 3);

    // Removing east from the nurture flow cancels its run there.
    let remove = s
        .create_flow(
            json!({"schema": 1, "name": "移出培育", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
                {"id": "out", "type": "enroll", "config": {"action": "remove", "flow": nurture, "lead": "trigger.event.lead"}}],
                "edges": [{"from": "t", "to": "out"}]}),
            true,
        )
        .await;
    let (st, started) = s
        .post(
            &format!("/api/v1/flows/{remove}/runs"),
            json!({"trigger": {"event": {"lead": "east"}}}),
        )
        .await;
    assert!(st.is_success(), "{started}");
    let run = s
        .wait_run(started["run_id"].as_str().expect("run"), 20)
        .await;
    assert_eq!(
        step(&run, "out")["output"]["cancelled"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{run}"
    );
    let cancelled = s
        .get(&format!(
            "/api/v1/runs/{}",
            enrolled["run"].as_str().expect("run")
        ))
        .await;
    assert_eq!(cancelled["status"], json!("cancelled"), "{cancelled}");

    // An event trigger's condition filters its events; a behaviour branch counts visits.
    let pricing = s
        .create_flow(
            json!({"schema": 1, "name": "价格页", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "page_view",
                    "when": "trigger.event.properties.category == 'pricing'"}},
                {"id": "b", "type": "behaviour", "config": {"lead": "trigger.event.lead",
                    "condition": {"kind": "at_least", "did": {"event": "page_view", "filter": "event.properties.category == 'pricing'"}, "times": 2, "days": 14}}},
                {"id": "yes", "type": "set", "config": {"vars": {"again": "true"}}},
                {"id": "no", "type": "set", "config": {"vars": {"again": "false"}}}],
                "edges": [{"from": "t", "to": "b"}, {"from": "b", "port": "true", "to": "yes"}, {"from": "b", "port": "false", "to": "no"}]}),
            true,
        )
        .await;
    let v = event(
        &s,
        "p0",
        "page_view",
        json!({"user_id": "u-south", "category": "careers"}),
        0,
    )
    .await;
    assert_eq!(
        v["runs_started"],
        json!(0),
        "the condition keeps careers views out: {v}"
    );
    let v = event(
        &s,
        "p1",
        "page_view",
        json!({"user_id": "u-south", "category": "pricing"}),
        0,
    )
    .await;
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(run["vars"]["again"], json!(false), "{run}");
    assert_eq!(
        step(&run, "no")["status"],
        json!("completed"),
        "went on at false: {run}"
    );
    let v = event(
        &s,
        "p2",
        "page_view",
        json!({"user_id": "u-south", "category": "pricing"}),
        0,
    )
    .await;
    let run = s.wait_run(v["run_ids"][0].as_str().expect("run"), 20).await;
    assert_eq!(run["vars"]["again"], json!(true), "{run}");
    assert_eq!(step(&run, "b")["output"]["counts"], json!([2]), "{run}");

    // A suppressed lead starts no flow until lifted.
    let hush = s
        .create_flow(
            json!({"schema": 1, "name": "暂停", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
                {"id": "s", "type": "suppress", "config": {"lead": "trigger.event.lead", "days": 30}}],
                "edges": [{"from": "t", "to": "s"}]}),
            true,
        )
        .await;
    let (_, started) = s
        .post(
            &format!("/api/v1/flows/{hush}/runs"),
            json!({"trigger": {"event": {"lead": "south"}}}),
        )
        .await;
    let run = s
        .wait_run(started["run_id"].as_str().expect("run"), 20)
        .await;
    assert_eq!(
        step(&run, "s")["output"]["suppressed"],
        json!(true),
        "{run}"
    );
    let v = event(
        &s,
        "p3",
        "page_view",
        json!({"user_id": "u-south", "category": "pricing"}),
        0,
    )
    .await;
    assert_eq!(v["runs_started"], json!(0), "suppressed: {v}");
    assert_eq!(runs_of(&s, &pricing).await.len(), 2);

    // The leads list searches names and attributes, filters by tag and owner; an export
    // is CSV a spreadsheet reads; leads are enrolled in a flow in bulk.
    let ids = |v: Value| -> Vec<String> {
        let mut ids: Vec<String> = v["leads"]
            .as_array()
            .expect("leads")
            .iter()
            .map(|l| l["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(s.get("/api/v1/leads?q=%E7%8E%8B%E7%A3%8A").await),
        ["east"]
    ); // 王磊
    assert_eq!(
        ids(s.get("/api/v1/leads?q=%E5%8D%8E").await),
        ["east", "south"]
    ); // 华
    assert_eq!(
        ids(s.get("/api/v1/leads?q=100%25").await),
        Vec::<String>::new()
    );
    let tagged = s.get("/api/v1/leads?tag=%E9%AB%98%E6%84%8F%E5%90%91").await; // 高意向
    assert_eq!(ids(tagged.clone()), ["east", "north", "south"]);
    assert_eq!(tagged["leads"][0]["tags"], json!(["高意向"]));
    assert_eq!(ids(s.get("/api/v1/leads?owner=li.na").await), ["south"]);
    let csv = s
        .client
        .get(format!("{}/api/v1/leads/export?owner=zhang.wei", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("export");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = csv.bytes().await.expect("csv");
    assert_eq!(
        &bytes[..3],
        b"\xEF\xBB\xBF",
        "a byte-order mark for spreadsheets"
    );
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,name,company,owner,score,tier,stage,tags,last_activity"
    );
    assert!(
        lines[1].starts_with("east,王磊,,zhang.wei,") && lines[1].contains(",高意向,"),
        "{text}"
    );
    assert_eq!(lines.len(), 2, "{text}");
    let (st, v) = s
        .post(
            &format!("/api/v1/flows/{nurture}/enroll"),
            json!({"leads": ["east", "south", "ghost"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["started"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        v["skipped"][0],
        json!({"lead": "south", "reason": "the lead is suppressed"})
    );
    assert_eq!(v["skipped"][1]["lead"], json!("ghost"));
    let (st, v) = s
        .post(
            &format!("/api/v1/flows/{nurture}/enroll"),
            json!({"leads": []}),
        )
        .await;
    assert_eq!(
        (st, v["pointer"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("/leads"))
    );

    // Mistakes read as problems with the field, before anything runs.
    let (st, v) = s
        .post(
            "/api/v1/flows",
            json!({"schema": 1, "name": "坏", "nodes": [
                {"id": "t", "type": "trigger", "config": {"kind": "behaviour", "behaviour": {"kind": "none_within", "did": {"event": "x"}, "days": 7}}},
                {"id": "a", "type": "assign_owner", "config": {"lead": "trigger.event.lead", "strategy": "round_robin"}}],
                "edges": [{"from": "t", "to": "a"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let text = v.to_string();
    assert!(text.contains("/nodes/0/config/behaviour/kind"), "{text}");
    assert!(text.contains("/nodes/1/config/owners"), "{text}");
    s.finish().await;
}
both!(lead_actions_and_behaviour);
