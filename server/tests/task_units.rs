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
