//! The `site-tracking` connector through the server, on SQLite and PostgreSQL: Segment's
//! tracking calls at `/hooks/connectors/site-tracking/v1/…`, the write key, identities,
//! campaign and page, clock correction, resent batches, robots and bad entries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trellis_e2e::{connector_wasm, segment_python};

const KEY: &str = "wk_live_7Hq2";

/// A tracking call as a Segment client sends it: the write key as the Basic user.
async fn track(s: &TestServer, key: Option<&str>, path: &str, body: &Value) -> (StatusCode, Value) {
    let mut req = s.client.post(format!(
        "{}/hooks/connectors/site-tracking/v1/{path}",
        s.base
    ));
    if let Some(k) = key {
        req = req.basic_auth(k, Some(""));
    }
    let resp = req.json(body).send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn timeline(s: &TestServer, lead: &str) -> Vec<Value> {
    s.get(&format!("/api/v1/leads/{lead}")).await["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// One event per Segment call type, each once.
fn every_call_once(events: &[Value]) {
    let mut names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "alias",
            "download",
            "group",
            "identify",
            "page_view",
            "screen_view"
        ],
        "{events:?}"
    );
}

async fn publish(s: &TestServer) {
    let (st, published) = s
        .publish_connector(std::fs::read(connector_wasm("site-tracking")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{published}");
    assert_eq!(published["reference"], "site-tracking@0");
}

async fn set_write_key(s: &TestServer, keys: &str) {
    let (st, g) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/site-tracking/grants",
            Some(json!({"secrets": ["write_key"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    let (st, _) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/site-tracking/secrets/write_key",
            Some(json!({ "value": keys })),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

async fn segment_calls_become_events(backend: Backend) {
    let s = TestServer::start(backend).await;
    publish(&s).await;

    let page = json!({
        "anonymousId": "anon-1", "messageId": "m-page-1",
        "properties": {"path": "/compare/competitor", "title": "参数对比", "url": "https://x.cn/compare/competitor"},
        "context": {"campaign": {"source": "baidu", "medium": "cpc", "name": "q4-compare"},
                    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0"}
    });
    // No write key set up yet: 401, and nothing is recorded.
    let (st, p) = track(&s, Some(KEY), "page", &page).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{p}");
    set_write_key(&s, &format!("wk_old_1, {KEY}")).await;
    for key in [None, Some("wk_wrong")] {
        let (st, p) = track(&s, key, "page", &page).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("write key"), "{p}");
    }
    let leads = s.get("/api/v1/leads").await;
    assert_eq!(leads["total"], 0, "a refused call records nothing: {leads}");

    // A page view, then identify: the anonymous visitor becomes a named lead.
    let (st, a) = track(&s, Some(KEY), "page", &page).await;
    assert_eq!(
        (st, a["accepted"].clone()),
        (StatusCode::OK, json!(1)),
        "{a}"
    );
    // analytics.js sends the key in the body, to a one-letter path.
    let identify = json!({
        "writeKey": KEY, "type": "identify", "userId": "u-1001", "anonymousId": "anon-1",
        "messageId": "m-identify-1",
        "traits": {"name": "王磊", "company": "苏州精工", "email": "wang.lei@szjg.cn"}
    });
    let resp = s
        .client
        .post(format!("{}/hooks/connectors/site-tracking/v1/i", s.base))
        .header("content-type", "text/plain")
        .body(identify.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );

    // A batch from a client whose clock is an hour fast, with a robot and a bad entry.
    let now = chrono::Utc::now();
    let sent = now + chrono::Duration::hours(1);
    let happened = sent - chrono::Duration::seconds(30);
    let batch = json!({
        "sentAt": sent.to_rfc3339(),
        "batch": [
            {"type": "track", "event": "download", "userId": "u-1001", "messageId": "m-dl-1",
             "timestamp": happened.to_rfc3339(),
             "properties": {"file": "安全白皮书.pdf", "category": "whitepaper"}},
            {"type": "screen", "userId": "u-1001", "messageId": "m-screen-1", "name": "报价"},
            {"type": "group", "userId": "u-1001", "groupId": "g-szjg", "messageId": "m-group-1",
             "traits": {"name": "苏州精工", "industry": "制造"}},
            {"type": "track", "event": "download"},
            {"type": "page", "anonymousId": "crawler-1", "messageId": "m-bot-1",
             "context": {"userAgent": "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)"}},
            {"type": "alias", "userId": "u-1001", "previousId": "anon-2", "messageId": "m-alias-1"}
        ]
    });
    let (st, b) = track(&s, Some(KEY), "batch", &batch).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 4, "{b}");
    assert_eq!(b["bots"], 1, "{b}");
    let rejected = b["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{b}");
    assert_eq!(rejected[0]["index"], 3);
    assert_eq!(rejected[0]["pointer"], "/batch/3");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("userId or anonymousId"),
        "{b}"
    );
    // Resent (a client retrying after a timeout): recorded once.
    let (st, again) = track(&s, Some(KEY), "batch", &batch).await;
    assert_eq!(st, StatusCode::OK, "{again}");

    // A bad single call: 400 with the reason, nothing recorded.
    let (st, p) = track(&s, Some(KEY), "track", &json!({"userId": "u-1001"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("event name"), "{p}");
    let (st, p) = track(&s, Some(KEY), "batch", &json!({"batch": "no"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");

    // One lead, found by its name, with the user_id identity and every call once.
    let found = s.get("/api/v1/leads?q=%E7%8E%8B%E7%A3%8A").await;
    assert_eq!(found["total"], 1, "{found}");
    let lead = found["leads"][0]["id"].as_str().unwrap().to_owned();
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    let identities = card["identities"].as_array().unwrap();
    for (kind, value) in [
        ("user_id", "u-1001"),
        ("anonymous_id", "anon-1"),
        ("anonymous_id", "anon-2"),
        ("email", "wang.lei@szjg.cn"),
    ] {
        assert!(
            identities.contains(&json!({"kind": kind, "value": value})),
            "{kind} {value} in {card}"
        );
    }
    assert_eq!(card["attributes"]["company"], "苏州精工", "{card}");
    assert_eq!(
        card["attributes"]["name"], "王磊",
        "a group call's traits are the company's, not the person's: {card}"
    );
    let events = timeline(&s, &lead).await;
    every_call_once(&events);
    let by_name = |n: &str| events.iter().find(|e| e["name"] == n).unwrap().clone();
    let view = by_name("page_view");
    assert_eq!(view["id"], "site-tracking:m-page-1");
    assert_eq!(view["properties"]["path"], "/compare/competitor");
    assert_eq!(
        view["properties"]["utm"],
        json!({"source": "baidu", "medium": "cpc", "campaign": "q4-compare"})
    );
    let download = by_name("download");
    assert_eq!(download["properties"]["category"], "whitepaper");
    // Dated by the server's clock: 30 s before the batch arrived, not an hour ahead.
    let at = chrono::DateTime::parse_from_rfc3339(download["timestamp"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let off = (at - (now - chrono::Duration::seconds(30)))
        .num_seconds()
        .abs();
    assert!(off <= 5, "download dated {at}, {off} s off");
    assert!(
        download["properties"].get("timestamp").is_none(),
        "the time is the event's, not a property: {download}"
    );

    // The server is healthy after all of it.
    let (st, _) = s.call(Method::GET, "/healthz", None).await;
    assert_eq!(st, StatusCode::OK);
    s.finish().await;
}
both!(segment_calls_become_events);

/// Segment's own Python library, unmodified, its host pointed at Trellis: every call type,
/// batched and gzipped as the library sends them, becomes the events of one lead.
const PYTHON_CLIENT: &str = r#"
import sys
import segment.analytics as analytics

errors = []
analytics.write_key = sys.argv[1]
analytics.host = sys.argv[2]
analytics.gzip = True
analytics.max_retries = 0
analytics.on_error = lambda error, batch: errors.append(str(error))
analytics.identify(user_id="py-u1", anonymous_id="py-anon",
                   traits={"name": "陈静", "email": "chen.jing@wxzg.cn", "company": "无锡重工"})
analytics.page(user_id="py-u1", category="Docs", name="Pricing",
               properties={"path": "/pricing", "url": "https://wxzg.cn/pricing"})
analytics.screen(user_id="py-u1", name="Home")
analytics.track(user_id="py-u1", event="download", properties={"file": "安全白皮书.pdf"})
analytics.group(user_id="py-u1", group_id="g-wxzg", traits={"name": "无锡重工"})
analytics.alias(previous_id="py-anon-2", user_id="py-u1")
analytics.shutdown()
if errors:
    print("errors:", errors)
    sys.exit(1)
"#;

async fn segment_python_library_sends_every_call(backend: Backend) {
    let python = segment_python();
    let s = TestServer::start(backend).await;
    publish(&s).await;
    set_write_key(&s, KEY).await;
    let host = format!("{}/hooks/connectors/site-tracking", s.base);
    let out = tokio::process::Command::new(&python)
        .args(["-c", PYTHON_CLIENT, KEY, &host])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "analytics-python failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let found = s.get("/api/v1/leads?q=%E9%99%88%E9%9D%99").await;
    assert_eq!(found["total"], 1, "{found}");
    let lead = found["leads"][0]["id"].as_str().unwrap().to_owned();
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    let identities = card["identities"].as_array().unwrap();
    for (kind, value) in [
        ("user_id", "py-u1"),
        ("anonymous_id", "py-anon"),
        ("anonymous_id", "py-anon-2"),
    ] {
        assert!(
            identities.contains(&json!({"kind": kind, "value": value})),
            "{kind} {value} in {card}"
        );
    }
    let events = timeline(&s, &lead).await;
    every_call_once(&events);
    let page = events.iter().find(|e| e["name"] == "page_view").unwrap();
    assert_eq!(page["properties"]["path"], "/pricing", "{page}");
    assert_eq!(page["properties"]["page_name"], "Pricing", "{page}");
    assert_eq!(
        page["properties"]["library"]["name"], "analytics-python",
        "{page}"
    );
    s.finish().await;
}
both!(segment_python_library_sends_every_call);

/// URL categories: the built-in rules name a page at intake; a workspace's own rules are
/// checked by pointer, apply to events recorded after the save (not before), never
/// override a category the sender gave, and the recent pages say which rule caught each.
async fn url_categories_name_pages_at_intake(backend: Backend) {
    let s = TestServer::start(backend).await;
    let rules = s.get("/api/v1/url-categories").await;
    assert_eq!(rules["builtin"], true, "{rules}");
    assert!(
        rules["known"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["category"] == "competitor_comparison" && k["zh"] == "竞品对比"),
        "{rules}"
    );
    let event =
        |id: &str, props: Value| json!({"id": id, "name": "page_view", "properties": props});
    let (st, v) = s
        .post(
            "/api/v1/events",
            event(
                "e1",
                json!({"anonymous_id": "v1", "path": "/products/x5/compare", "title": "X5"}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    let (st, p) = s
        .call(
            Method::PUT,
            "/api/v1/url-categories",
            Some(json!({"rules": [
                {"id": "ok", "category": "product", "match": {"kind": "path_prefix", "prefix": "/products"}},
                {"id": "bad", "category": "Product Page", "match": {"kind": "regex", "pattern": "(x"}}
            ]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let pointers: Vec<&str> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/rules/1/category", "/rules/1/match/pattern"],
        "{p}"
    );

    let (st, saved) = s
        .call(
            Method::PUT,
            "/api/v1/url-categories",
            Some(json!({"rules": [
                {"id": "x5-compare", "category": "competitor_comparison", "match": {"kind": "glob", "pattern": "/products/*/compare"}},
                {"id": "products", "category": "product", "match": {"kind": "path_prefix", "prefix": "/products"}}
            ]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{saved}");
    for (id, props) in [
        (
            "e2",
            json!({"anonymous_id": "v1", "url": "https://x.cn/products/x5?utm_source=baidu"}),
        ),
        (
            "e3",
            json!({"anonymous_id": "v1", "path": "/products/x5", "category": "pricing"}),
        ),
        ("e4", json!({"anonymous_id": "v1", "path": "/about"})),
    ] {
        let (st, v) = s.post("/api/v1/events", event(id, props)).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let recent = s.get("/api/v1/url-categories/recent").await;
    let pages = recent["pages"].as_array().unwrap();
    let page = |id: &str| {
        pages
            .iter()
            .find(|p| p["event"] == id)
            .unwrap_or_else(|| panic!("{id} in {recent}"))
    };
    assert_eq!(
        (&page("e1")["category"], &page("e1")["rule"]),
        (&json!("competitor_comparison"), &json!("compare")),
        "the built-in rule, kept after the change"
    );
    assert_eq!(
        (&page("e2")["category"], &page("e2")["rule"]),
        (&json!("product"), &json!("products"))
    );
    assert_eq!(
        page("e3")["category"],
        "pricing",
        "the sender's own category stays"
    );
    assert!(page("e3")["rule"].is_null());
    assert!(page("e4")["category"].is_null(), "no rule, no category");
    s.finish().await;
}
both!(url_categories_name_pages_at_intake);
