//! Task units (issue 23): the people directory they are staffed from.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Posts a CSV file to the directory import.
async fn import(s: &TestServer, csv: &str) -> (StatusCode, Value) {
    let resp = s
        .client
        .post(format!("{}/api/v1/people/members/import", s.base))
        .bearer_auth(&s.token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The directory is imported from a CSV export (Chinese words and lists), all or nothing:
/// a file with problems saves nobody and names each problem's line and column. Members are
/// listed by function, saved one by one with every problem by pointer, and removed; a
/// viewer reads but does not change it.
async fn the_people_directory_is_imported_and_edited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let bad = "id,name,function,region,skills,permissions,capacity\n\
               wh-east,周敏,仓储,华东,inventory:4,,5\n\
               buy-fast,陈静,采购,,sourcing:7,emergency_air_freight,4\n\
               svc,赵磊,厨师,,,,3\n";
    let (st, v) = import(&s, bad).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let problems: Vec<(u64, String)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        vec![(3, "skills".to_owned()), (4, "function".to_owned())],
        "{v}"
    );
    let none = s.get("/api/v1/people/members").await;
    assert_eq!(none["members"], json!([]), "nothing saved from a bad file");

    let good = "\u{feff}id,name,function,region,skills,permissions,capacity,manager,active\n\
                wh-east,周敏,仓储,华东,inventory:4；erp:3,,5,mgr-li,是\n\
                buy-fast,陈静,采购,,sourcing:3,emergency_air_freight; sign_off,4,mgr-li,\n\
                svc-knows,赵磊,售后服务,华东,fault_diagnosis:4,,3,,在职\n";
    let (st, v) = import(&s, good).await;
    assert_eq!((st, &v["saved"]), (StatusCode::OK, &json!(3)), "{v}");
    let all = s.get("/api/v1/people/members").await;
    let ids: Vec<&str> = all["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["buy-fast", "svc-knows", "wh-east"], "{all}");
    assert!(
        all["functions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["function"] == "warehouse" && f["zh"] == "仓储"),
        "{all}"
    );
    let warehouse = s.get("/api/v1/people/members?function=仓储").await;
    assert_eq!(
        warehouse["members"].as_array().unwrap().len(),
        1,
        "{warehouse}"
    );
    assert_eq!(warehouse["members"][0]["skills"]["erp"], 3, "{warehouse}");
    let (st, v) = s
        .call(Method::GET, "/api/v1/people/members?function=chef", None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let buyer = s.get("/api/v1/people/members/buy-fast").await;
    assert_eq!(
        buyer["member"]["permissions"],
        json!(["emergency_air_freight", "sign_off"]),
        "{buyer}"
    );

    // One member at a time: every problem by its pointer; the address names the member.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/people/members/wh-north",
            Some(json!({"name": "刘强", "function": "warehouse", "skills": {"inventory": 6}, "capacity": 0})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let pointers: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/capacity", "/skills/inventory"], "{v}");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/people/members/wh-north",
            Some(json!({"id": "someone-else", "name": "刘强", "function": "warehouse", "capacity": 5})),
        )
        .await;
    assert_eq!(
        (st, &v["pointer"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("/id")),
        "{v}"
    );
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/people/members/wh-north",
            Some(json!({"name": "刘强", "function": "warehouse", "region": "华北", "skills": {"inventory": 5}, "capacity": 5})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["member"]["time_zone"], "Asia/Shanghai", "{v}");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/people/members/wh-north",
            Some(json!({"name": "刘强", "function": "warehouse", "capacity": 2, "colour": "red"})),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unknown field: {v}"
    );

    // A viewer reads, and may not change it.
    let viewer = s.token_with("viewer").await;
    let (st, _) = s
        .call_as(Some(&viewer), Method::GET, "/api/v1/people/members", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call_as(
            Some(&viewer),
            Method::DELETE,
            "/api/v1/people/members/wh-north",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .call(Method::DELETE, "/api/v1/people/members/wh-north", None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s
        .call(Method::DELETE, "/api/v1/people/members/wh-north", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        s.get("/api/v1/people/members").await["members"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    s.finish().await;
}
both!(the_people_directory_is_imported_and_edited);

/// The directory the unit tests staff from: two warehouse keepers, two buyers (one with
/// emergency air-freight rights), a senior service engineer with room for one unit, a
/// junior one, and a customs expert.
const DIRECTORY: &str = "id,name,function,region,skills,permissions,capacity,manager\n\
    wh-east,周敏,仓储,华东,实时库存:4,,5,mgr-li\n\
    wh-north,孙强,仓储,华北,实时库存:5,,5,mgr-li\n\
    buy-fast,陈静,采购,华东,寻源:3,紧急空运,4,mgr-li\n\
    buy-slow,吴刚,采购,华东,寻源:4,,4,mgr-li\n\
    svc-senior,赵磊,售后服务,华东,故障诊断:5,,1,mgr-li\n\
    svc-junior,钱坤,售后服务,华东,故障诊断:2,,3,mgr-li\n\
    customs-1,冯雪,报关,华东,清关:4,,3,mgr-li\n";

fn delivery_rescue() -> Value {
    json!({
        "name": "交付攻坚",
        "name_pattern": "{{ account.name }}-交付攻坚",
        "urgency": 5,
        "goal": "48 小时内客户签收替代方案",
        "roles": [
            { "id": "warehouse", "name": "华东仓管", "function": "warehouse",
              "skills": [{ "skill": "实时库存", "level": 3 }], "region": "华东" },
            { "id": "purchasing", "name": "紧急采购", "function": "purchasing",
              "permissions": ["紧急空运"] },
            { "id": "service", "name": "资深服务工程师", "function": "service",
              "skills": [{ "skill": "故障诊断", "level": 4 }] }
        ],
        "milestones": [
            { "id": "alternative", "name": "24 小时内确认替代方案", "offset": "24h",
              "owner_role": "purchasing", "done_when": "客户确认替代型号" },
            { "id": "signed", "name": "48 小时内客户签收", "after": "alternative",
              "offset": "24h", "owner_role": "service" }
        ],
        "rules": [
            { "id": "overseas", "name": "海外交付加派关务", "when": "has(event.properties.overseas) && event.properties.overseas",
              "roles": [ { "id": "customs", "name": "关务专家", "function": "customs" } ] }
        ],
        "knowledge": [ { "title": "替代料号清单", "url": "https://kb.example.cn/alt" } ],
        "wecom_group": true
    })
}

/// How many events named `name` the workspace recorded.
async fn events_named(s: &TestServer, name: &str) -> usize {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use trellis_server::db::entities::event;
    event::Entity::find()
        .filter(event::Column::Name.eq(name))
        .all(&s.state().db)
        .await
        .unwrap()
        .len()
}

fn picked(unit: &Value) -> Vec<(String, String)> {
    unit["picks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["role"].as_str().unwrap().to_owned(),
                p["member"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Unit templates are versioned documents, checked with pointers, cloned with their
/// lineage and previewed against the directory; units are staffed from them (nobody over
/// capacity: a role nobody with room can fill is left unfilled with a substitute and the
/// manager told, until a manager's logged override), their milestones raise
/// `task_unit.milestone_due` and `…_overdue` once each at simulated times, and the last
/// milestone done meets the goal; a `create_task_unit` node makes a unit once per call.
async fn units_are_assembled_from_templates(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, v) = import(&s, DIRECTORY).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // A template with problems is refused with each pointer.
    let mut bad = delivery_rescue();
    bad["urgency"] = json!(7);
    bad["milestones"][1]["after"] = json!("later");
    let (st, v) = s
        .post(
            "/api/v1/task-unit-templates",
            json!({ "id": "delivery-rescue", "template": bad }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/template/urgency", "{v}");
    assert_eq!(
        v["problems"][1]["pointer"], "/template/milestones/1/after",
        "{v}"
    );
    let (st, v) = s
        .post(
            "/api/v1/task-unit-templates",
            json!({ "id": "delivery-rescue", "template": delivery_rescue() }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["version"], 1);
    let (st, v) = s
        .post(
            "/api/v1/task-unit-templates",
            json!({ "id": "delivery-rescue", "template": delivery_rescue() }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "an id is taken: {v}");

    // Saving on a base version; a stale base is a conflict.
    let mut v2 = delivery_rescue();
    v2["description"] = json!("ERP 交付超期时组建");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/task-unit-templates/delivery-rescue?base_version=1&message=%E8%AF%B4%E6%98%8E",
            Some(v2.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    let (st, _) = s
        .call(
            Method::PUT,
            "/api/v1/task-unit-templates/delivery-rescue?base_version=1",
            Some(v2),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let versions = s
        .get("/api/v1/task-unit-templates/delivery-rescue/versions")
        .await;
    assert_eq!(versions["versions"][0]["message"], "说明", "{versions}");

    // A clone keeps its lineage; what it changed since is its diff against the source.
    let (st, v) = s
        .post(
            "/api/v1/task-unit-templates",
            json!({ "id": "member-upgrade", "clone_from": "delivery-rescue", "name": "会员体系升级" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["cloned_from"],
        json!({ "template": "delivery-rescue", "version": 2 })
    );
    let mut changed = s.get("/api/v1/task-unit-templates/member-upgrade").await["template"].clone();
    changed["urgency"] = json!(2);
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/task-unit-templates/member-upgrade?base_version=1",
            Some(changed),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let lineage = s
        .get("/api/v1/task-unit-templates/member-upgrade/lineage")
        .await;
    let paths: Vec<&str> = lineage["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/name", "/urgency"], "{lineage}");
    let list = s.get("/api/v1/task-unit-templates").await;
    assert_eq!(list["templates"].as_array().unwrap().len(), 2, "{list}");

    // The preview: who would be picked and why, with the overseas rule adding customs.
    let (st, preview) = s
        .post(
            "/api/v1/task-unit-templates/delivery-rescue/preview",
            json!({ "account": "华东精密", "severity": 3,
                    "event": { "name": "erp.delivery_overdue", "properties": { "overseas": true } } }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert_eq!(preview["name"], "华东精密-交付攻坚");
    assert_eq!(
        picked(&preview),
        [
            ("warehouse".to_owned(), "wh-east".to_owned()),
            ("purchasing".to_owned(), "buy-fast".to_owned()),
            ("service".to_owned(), "svc-senior".to_owned()),
            ("customs".to_owned(), "customs-1".to_owned()),
        ],
        "{preview}"
    );
    assert_eq!(preview["rules"][0]["held"], true);
    assert!(
        preview["picks"][1]["zh"]
            .as_str()
            .unwrap()
            .contains("紧急空运"),
        "{preview}"
    );
    assert_eq!(preview["milestones"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.get("/api/v1/task-units").await["units"],
        json!([]),
        "a preview writes nothing"
    );

    // The first unit takes the senior engineer, who has room for one.
    let (st, first) = s
        .post(
            "/api/v1/task-units",
            json!({ "template": "delivery-rescue", "account": "华东精密", "manager": "mgr-li",
                    "event": { "name": "erp.delivery_overdue", "properties": {} } }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let first_id = first["unit"]["id"].as_str().unwrap().to_owned();
    assert_eq!(first["unit"]["status"], "open");
    assert_eq!(first["members"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(first["milestones"][0]["id"], "alternative");
    let actions: Vec<&str> = first["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["created", "picked", "picked", "picked"],
        "{first}"
    );
    assert_eq!(events_named(&s, "task_unit.created").await, 1);

    // The second finds him at capacity: the role is unfilled, he is the substitute, and
    // the manager is told; nobody is put over capacity.
    let (st, second) = s
        .post(
            "/api/v1/task-units",
            json!({ "template": "delivery-rescue", "account": "华北重工", "manager": "mgr-li" }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{second}");
    let second_id = second["unit"]["id"].as_str().unwrap().to_owned();
    assert_eq!(second["unfilled"][0]["role"], "service", "{second}");
    assert_eq!(
        second["unfilled"][0]["substitute"]["member"], "svc-senior",
        "{second}"
    );
    assert_eq!(second["unfilled"][0]["notify"], "mgr-li", "{second}");
    assert_eq!(second["members"].as_array().unwrap().len(), 2, "{second}");
    // A manager's override puts him in anyway, and says so in the log.
    let (st, v) = s
        .post(
            &format!("/api/v1/task-units/{second_id}/actions"),
            json!({ "kind": "add_member", "member": "svc-senior", "role": "service", "reason": "客户停线，经理批准" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let last = v["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "override", "{v}");
    assert_eq!(last["detail"]["load_before"], 1, "{v}");
    let (st, v) = s
        .post(
            &format!("/api/v1/task-units/{second_id}/actions"),
            json!({ "kind": "add_member", "member": "nobody", "role": "service", "reason": "x" }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/member");

    // Simulated time: 19 h on, both units' first milestone is due (reminded once); 25 h
    // on, it is overdue (raised once).
    let units = s.state().units;
    let created = first["unit"]["created_at"].as_i64().unwrap();
    let hour = 3_600_000;
    assert_eq!(units.raise_deadlines(created + 19 * hour).await.unwrap(), 2);
    assert_eq!(units.raise_deadlines(created + 19 * hour).await.unwrap(), 0);
    assert_eq!(events_named(&s, "task_unit.milestone_due").await, 2);
    assert_eq!(units.raise_deadlines(created + 25 * hour).await.unwrap(), 2);
    assert_eq!(units.raise_deadlines(created + 26 * hour).await.unwrap(), 0);
    assert_eq!(events_named(&s, "task_unit.milestone_overdue").await, 2);
    let overdue = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        use trellis_server::db::entities::event;
        event::Entity::find()
            .filter(event::Column::Name.eq("task_unit.milestone_overdue"))
            .filter(event::Column::Id.contains(&first_id))
            .one(&s.state().db)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(overdue.properties["owners"], json!(["buy-fast"]));
    assert_eq!(overdue.properties["manager"], "mgr-li");

    // Members post and finish milestones; the last one meets the goal.
    let act = |id: &str, body: Value| {
        let path = format!("/api/v1/task-units/{id}/actions");
        let s = &s;
        async move { s.post(&path, body).await }
    };
    let (st, v) = act(
        &first_id,
        json!({ "kind": "update", "text": "替代型号已找到" }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = act(
        &first_id,
        json!({ "kind": "link", "title": "图纸", "url": "ftp://x" }),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, v) = act(
        &first_id,
        json!({ "kind": "milestone_done", "milestone": "nope" }),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = act(
        &first_id,
        json!({ "kind": "milestone_done", "milestone": "alternative" }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["unit"]["status"], "open");
    let (st, v) = act(
        &first_id,
        json!({ "kind": "milestone_done", "milestone": "signed" }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["unit"]["status"], "met", "{v}");
    let (st, v) = act(&first_id, json!({ "kind": "update", "text": "还有一事" })).await;
    assert_eq!(st, StatusCode::CONFLICT, "a closed unit takes no more: {v}");
    let (st, v) = act(
        &second_id,
        json!({ "kind": "cancel", "reason": "客户改期" }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["unit"]["status"], "cancelled");
    assert_eq!(events_named(&s, "task_unit.closed").await, 2);
    // Closed units' milestones raise nothing more.
    assert_eq!(units.raise_deadlines(created + 60 * hour).await.unwrap(), 0);
    let open = s.get("/api/v1/task-units?status=open").await;
    assert_eq!(open["units"], json!([]), "{open}");

    // The health dashboard: both units' milestones done were on time, the same three
    // people worked together twice, the pack's link was used twice; nobody carries an
    // open unit.
    let health = s.get("/api/v1/task-units/health?days=30").await;
    assert_eq!(health["units"], 2, "{health}");
    assert_eq!(
        health["by_template"][0]["key"], "delivery-rescue",
        "{health}"
    );
    assert_eq!(health["by_template"][0]["on_time_rate"], 1.0, "{health}");
    assert_eq!(health["by_template"][0]["invited"], 6, "{health}");
    assert_eq!(
        health["combinations"][0],
        json!({ "key": "buy-fast + svc-senior + wh-east", "count": 2 }),
        "{health}"
    );
    assert_eq!(health["knowledge"][0]["count"], 2, "{health}");
    assert_eq!(health["load"], json!([]), "{health}");
    let (st, v) = s
        .call(Method::GET, "/api/v1/task-units/health?days=0", None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // A flow's create_task_unit node: the unit is made once, its members come back.
    let flow = json!({
        "schema": 1, "name": "交付超期 → 作战单元",
        "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "event", "event": "erp.delivery_overdue"}},
            {"id": "unit", "type": "create_task_unit", "config": {
                "template": "delivery-rescue", "account": "trigger.event.properties.customer",
                "severity": "trigger.event.properties.days_overdue", "manager": "mgr-li"}},
            {"id": "done", "type": "respond", "config": {"body": "{'unit': steps.unit.output.unit}"}}
        ],
        "edges": [{"from": "t", "to": "unit"}, {"from": "unit", "to": "done"}]
    });
    s.create_flow(flow, true).await;
    let (st, v) = s
        .post(
            "/api/v1/events",
            json!({ "id": "erp-1", "name": "erp.delivery_overdue",
                    "properties": { "customer": "苏州精工", "days_overdue": 2, "overseas": true } }),
        )
        .await;
    assert!(st.is_success(), "{v}");
    let run = s.wait_run(v["run_ids"][0].as_str().unwrap(), 20).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let units_now = s.get("/api/v1/task-units?status=open").await;
    assert_eq!(
        units_now["units"].as_array().unwrap().len(),
        1,
        "{units_now}"
    );
    let made = &units_now["units"][0];
    assert_eq!(made["name"], "苏州精工-交付攻坚");
    assert_eq!(made["priority"], 5 * 10_000 + 2 * 1_000);
    let unit = s
        .get(&format!(
            "/api/v1/task-units/{}",
            made["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        picked(&unit).len(),
        4,
        "the overseas rule added customs: {unit}"
    );
    assert!(
        unit["created_by"].as_str().unwrap().starts_with("flow "),
        "{unit}"
    );
    s.finish().await;
}
both!(units_are_assembled_from_templates);

/// The third scenario, end to end (`templates/flows/delivery-overdue-task-unit.json` with
/// the unit template `templates/task-units/delivery-rescue.json`): the ERP (a mock K/3
/// Cloud) shows 苏州精工's delivery overdue; the poll raises `erp.delivery_overdue`, a unit
/// "苏州精工-交付攻坚" is assembled with the three best-matched people, who get a WeCom
/// group chat with the brief (a mock WeCom); when its 24-hour milestone is missed
/// (simulated time), their manager is told on WeCom. The poll goes on; nothing is made
/// twice.
async fn an_overdue_delivery_assembles_a_unit(backend: Backend) {
    use trellis_e2e::mock_erp::{Line, MockErp, System};
    use trellis_e2e::mock_wecom::MockWeCom;
    let s = TestServer::start(backend).await;
    let api = trellis_e2e::Api::new(&s.base, &s.token);
    let (st, v) = import(&s, DIRECTORY).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/task-unit-templates",
            json!({ "id": "delivery-rescue", "template": serde_json::from_str::<Value>(
                include_str!("../../templates/task-units/delivery-rescue.json")).unwrap() }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let wecom = MockWeCom::start().await;
    MockWeCom::connect(&api).await;
    for (method, path, body) in [
        (
            Method::PUT,
            "/api/v1/connectors/wecom/grants",
            json!({"hosts": ["127.0.0.1"], "secrets": ["corp_id", "secret", "agent_id"], "kv": true}),
        ),
        (
            Method::PUT,
            "/api/v1/connectors/wecom/secrets/agent_id",
            json!({"value": "1000002"}),
        ),
    ] {
        let (st, v) = s.call(method, path, Some(body)).await;
        assert!(st.is_success(), "{path}: {st} {v}");
    }
    let mut doc: Value = serde_json::from_str(include_str!(
        "../../templates/flows/delivery-overdue-task-unit.json"
    ))
    .unwrap();
    for node in doc["nodes"].as_array_mut().unwrap() {
        if node["connector"] == "wecom@0" {
            node["config"]["api_base"] = json!(wecom.base());
        }
    }
    let flow = s.create_flow(doc, true).await;

    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| {
        (today + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let line = |order: &str, date: String, modified: i64| Line {
        order: order.into(),
        line: 1,
        customer: "C-88".into(),
        customer_name: "苏州精工".into(),
        product: "X5-M".into(),
        qty: 20.0,
        shipped: 5.0,
        date,
        modified,
    };
    let erp = MockErp::start(
        System::Kingdee,
        vec![
            line("XSDD0001", day(-2), 60),
            line("XSDD0002", day(15), 120),
        ],
        2,
    )
    .await;
    erp.connect(&api, &day(-60), 2).await;

    // The unit is made and its members get their group chat and brief.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let runs = s.get(&format!("/api/v1/runs?flow={flow}")).await["runs"].clone();
        if let Some(r) = runs.as_array().and_then(|r| r.first())
            && r["status"] == "waiting"
        {
            break r["id"].as_str().unwrap().to_owned();
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "no run reached the milestone wait: {runs}; events {}; erp {}",
                s.get("/api/v1/event-catalog").await["events"],
                s.get("/api/v1/connectors/erp-kingdee").await
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let units = s.get("/api/v1/task-units?status=open").await;
    assert_eq!(units["units"].as_array().unwrap().len(), 1, "{units}");
    let unit = s
        .get(&format!(
            "/api/v1/task-units/{}",
            units["units"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(unit["unit"]["name"], "苏州精工-交付攻坚", "{unit}");
    assert_eq!(
        picked(&unit),
        [
            ("warehouse".to_owned(), "wh-east".to_owned()),
            ("purchasing".to_owned(), "buy-fast".to_owned()),
            ("service".to_owned(), "svc-senior".to_owned()),
        ],
        "{unit}"
    );
    {
        let w = wecom.state.lock().unwrap();
        let chat = w.chats.values().next().expect("a group chat");
        assert_eq!(chat["name"], "苏州精工-交付攻坚");
        assert_eq!(
            chat["userlist"],
            json!(["wh-east", "buy-fast", "svc-senior"])
        );
        let brief = w.chat_messages[0]["markdown"]["content"].as_str().unwrap();
        assert!(brief.contains("24 小时内确认替代方案"), "{brief}");
        assert!(brief.contains("紧急空运"), "the brief says why: {brief}");
    }

    // 25 hours on, the first milestone is missed: the manager hears of it on WeCom.
    let created = unit["unit"]["created_at"].as_i64().unwrap();
    assert_eq!(
        s.state()
            .units
            .raise_deadlines(created + 25 * 3_600_000)
            .await
            .unwrap(),
        1
    );
    let done = s.wait_run(&run, 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    {
        let w = wecom.state.lock().unwrap();
        let escalation = w.messages.last().expect("an app message");
        assert_eq!(escalation["touser"], "mgr-li", "{escalation}");
        assert!(
            escalation["textcard"]["description"]
                .as_str()
                .unwrap()
                .contains("buy-fast"),
            "{escalation}"
        );
    }
    // The poll goes on: the overdue line makes no second unit.
    let pages = erp.state.lock().unwrap().pages;
    while erp.state.lock().unwrap().pages < pages + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let all = s.get("/api/v1/task-units").await;
    assert_eq!(all["units"].as_array().unwrap().len(), 1, "{all}");
    s.finish().await;
}
both!(an_overdue_delivery_assembles_a_unit);

/// Units created together are staffed by priority: the more urgent one gets the senior
/// engineer both want, the other the next best, and both logs say why.
async fn units_created_together_are_staffed_by_priority(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, v) = import(&s, DIRECTORY).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/people/members/svc-mid",
            Some(
                json!({"id": "svc-mid", "name": "孙涛", "function": "service", "region": "华东",
                        "skills": {"故障诊断": 4}, "capacity": 1, "manager": "mgr-li"}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/task-unit-templates",
            json!({ "id": "delivery-rescue", "template": delivery_rescue() }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/task-units/batch",
            json!({ "units": [
                { "template": "delivery-rescue", "account": "小客户", "severity": 1 },
                { "template": "delivery-rescue", "account": "大客户", "severity": 4 }
            ] }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (low, high) = (&v["units"][0], &v["units"][1]);
    let service = |u: &Value| {
        u["picks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"] == "service")
            .cloned()
            .unwrap()
    };
    assert_eq!(service(high)["member"], "svc-senior", "{v}");
    let lost = service(low);
    assert_eq!(lost["member"], "svc-mid", "{v}");
    assert_eq!(lost["reasons"]["displaced"]["member"], "svc-senior", "{v}");
    assert_eq!(
        lost["reasons"]["displaced"]["unit"], high["unit"]["id"],
        "{v}"
    );
    let took: Vec<&Value> = high["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "priority")
        .collect();
    assert_eq!(took.len(), 1, "{high}");
    assert_eq!(took[0]["detail"]["over"], low["unit"]["id"], "{high}");
    assert!(
        took[0]["detail"]["zh"]
            .as_str()
            .unwrap()
            .contains("svc-mid"),
        "{high}"
    );
    // An empty batch is refused with its pointer.
    let (st, v) = s
        .post("/api/v1/task-units/batch", json!({ "units": [] }))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    s.finish().await;
}
both!(units_created_together_are_staffed_by_priority);

/// The directory imported from WeCom's department list (a mock WeCom): every employee of
/// the departments mapped to a function (a sub-department takes its parent's), people
/// already there keeping their skills, the unmapped listed as skipped.
async fn the_directory_is_imported_from_wecom(backend: Backend) {
    use trellis_e2e::mock_wecom::MockWeCom;
    let s = TestServer::start(backend).await;
    let api = trellis_e2e::Api::new(&s.base, &s.token);
    let wecom = MockWeCom::start().await;
    MockWeCom::connect(&api).await;
    let (st, v) = import(
        &s,
        "id,name,function,region,skills,permissions,capacity\nwh-north,旧名,销售,华北,实时库存:5,,2\n",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let (st, v) = s
        .post(
            "/api/v1/people/members/import-wecom",
            json!({ "functions": { "2": "仓储", "x": "采购" }, "api_base": wecom.base() }),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/functions/x", "{v}");

    let (st, v) = s
        .post(
            "/api/v1/people/members/import-wecom",
            json!({ "functions": { "2": "仓储", "3": "purchasing", "5": "售后服务" },
                    "capacity": 4, "region": "华东", "manager": "boss", "api_base": wecom.base() }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["saved"].as_u64(),
            v["created"].as_u64(),
            v["updated"].as_u64()
        ),
        (Some(4), Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(v["skipped"][0]["userid"], "boss", "{v}");
    let east = s.get("/api/v1/people/members/wh-east").await;
    assert_eq!(east["member"]["name"], "周敏", "{east}");
    assert_eq!(east["member"]["function"], "warehouse", "{east}");
    assert_eq!(east["member"]["capacity"], 4, "{east}");
    assert_eq!(east["member"]["manager"], "boss", "{east}");
    let north = s.get("/api/v1/people/members/wh-north").await;
    assert_eq!(north["member"]["name"], "孙强", "{north}");
    assert_eq!(north["member"]["function"], "warehouse", "{north}");
    assert_eq!(north["member"]["skills"], json!({"实时库存": 5}), "{north}");
    assert_eq!(north["member"]["capacity"], 2, "kept: {north}");
    s.finish().await;
}
both!(the_directory_is_imported_from_wecom);
