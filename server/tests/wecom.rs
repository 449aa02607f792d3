//! The `wecom` connector's callbacks through the server, on SQLite and PostgreSQL: URL
//! verification, an encrypted `add_external_contact` becoming a lead, WeCom's retries
//! recorded once, and every way a callback can be wrong refused with a 4xx, recording
//! nothing. The callbacks are sealed by the tests' own WXBizMsgCrypt
//! (`trellis_e2e::wecom`), apart from the connector's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trellis_e2e::connector_wasm;
use trellis_e2e::mock_wecom::{self, MockWeCom};
use trellis_e2e::wecom::{Corp, Sealed};

fn corp() -> Corp {
    Corp {
        token: "Trellis2026Token".into(),
        encoding_aes_key: "kL9mN2pQ4rS6tU8vW0xY1zA3bC5dE7fG9hJ2kM4nP6q".into(),
        corp_id: "ww8a3b5c7d9e1f2a4b".into(),
    }
}

fn added(external: &str, follow: &str, state: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[ww8a3b5c7d9e1f2a4b]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>\
         <UserID><![CDATA[{follow}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>\
         <State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[WELCOME1]]></WelcomeCode></xml>",
        chrono::Utc::now().timestamp()
    )
}

async fn post(s: &TestServer, sealed: &Sealed, body: String) -> (StatusCode, String) {
    let resp = s
        .client
        .post(format!(
            "{}/hooks/connectors/wecom/callback?{}",
            s.base,
            sealed.query(false)
        ))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn events_recorded(s: &TestServer) -> usize {
    let leads = s.get("/api/v1/leads?per_page=200").await;
    let mut n = 0;
    for l in leads["leads"].as_array().unwrap() {
        let card = s
            .get(&format!("/api/v1/leads/{}", l["id"].as_str().unwrap()))
            .await;
        n += card["timeline"].as_array().map_or(0, Vec::len);
    }
    n
}

async fn callbacks_are_checked_and_become_leads(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, published) = s
        .publish_connector(std::fs::read(connector_wasm("wecom")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{published}");
    assert_eq!(published["reference"], "wecom@0");
    let c = corp();
    let url_check = c.seal("1616140317555161061", "263014780");
    let get = |sealed: Sealed| {
        let (client, base) = (s.client.clone(), s.base.clone());
        async move {
            let resp = client
                .get(format!(
                    "{base}/hooks/connectors/wecom/callback?{}",
                    sealed.query(true)
                ))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };

    // Not set up yet: refused, in words.
    let (st, body) = get(url_check.clone()).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("encoding_aes_key"), "{body}");
    let (st, g) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/wecom/grants",
            Some(json!({"secrets": ["token", "encoding_aes_key", "corp_id"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    for (name, value) in [
        ("token", &c.token),
        ("encoding_aes_key", &c.encoding_aes_key),
        ("corp_id", &c.corp_id),
    ] {
        let (st, v) = s
            .call(
                Method::PUT,
                &format!("/api/v1/connectors/wecom/secrets/{name}"),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    }

    // URL verification: the decrypted echostr, as is.
    let (st, body) = get(url_check).await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "1616140317555161061"));

    // A customer adds a sales rep: a lead with the external contact id, its channel.
    let xml = added("wmJ8sQ2rCustomer01", "zhangwei", "expo-2026-suzhou");
    let sealed = c.seal(&xml, "1372623149");
    let (st, body) = post(&s, &sealed, sealed.body(&c.corp_id)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // WeCom retries a callback it thinks was slow: recorded once.
    let again = c.seal(&xml, "1372623150");
    let (st, _) = post(&s, &again, again.body(&c.corp_id)).await;
    assert_eq!(st, StatusCode::OK);
    let found = s.get("/api/v1/leads?q=expo-2026-suzhou").await;
    assert_eq!(found["total"], 1, "{found}");
    let lead = found["leads"][0]["id"].as_str().unwrap().to_owned();
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    assert!(
        card["identities"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "external_contact_id", "value": "wmJ8sQ2rCustomer01"})),
        "{card}"
    );
    assert_eq!(
        card["attributes"]["wecom_follow_user"], "zhangwei",
        "{card}"
    );
    assert_eq!(
        card["owner"], "zhangwei",
        "the rep the customer added owns the lead"
    );
    let timeline: Vec<Value> = card["timeline"].as_array().unwrap().clone();
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(timeline[0]["name"], "wecom.external_contact_added");
    assert_eq!(timeline[0]["properties"]["follow_user"], "zhangwei");
    let before = events_recorded(&s).await;

    // Every way a callback can be wrong: a 4xx, and nothing recorded.
    let other = added("wmSomeoneElse", "lina", "ad");
    let now = chrono::Utc::now().timestamp();
    let forged = c.seal(&other, "1").forged();
    let replayed = c.seal_for(&other, &c.corp_id, now - 3600, "2");
    let elsewhere = c.seal_for(&other, "wwAnotherCorp000001", now, "3");
    let truncated = c.seal(&other, "4").truncated(&c, 32);
    for (what, sealed, want) in [
        ("a forged signature", forged, StatusCode::FORBIDDEN),
        ("a replayed timestamp", replayed, StatusCode::FORBIDDEN),
        (
            "another corp's receive id",
            elsewhere,
            StatusCode::FORBIDDEN,
        ),
        ("a truncated ciphertext", truncated, StatusCode::BAD_REQUEST),
    ] {
        let (st, body) = post(&s, &sealed, sealed.body(&c.corp_id)).await;
        assert_eq!(st, want, "{what}: {body}");
        assert!(body.contains("detail"), "{what}: {body}");
    }
    let ok = c.seal(&other, "5");
    let (st, body) = post(&s, &ok, "not xml <".into()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let resp = s
        .client
        .post(format!(
            "{}/hooks/connectors/wecom/callback?timestamp=1",
            s.base
        ))
        .body(ok.body(&c.corp_id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(events_recorded(&s).await, before, "nothing recorded");
    assert_eq!(s.get("/api/v1/leads").await["total"], 1);
    // The connectors page sees it: what was answered, what failed, and why the last did.
    let wecom = s.get("/api/v1/connectors/wecom").await;
    let health = &wecom["inbound_health"];
    assert_eq!(health["ok_total"], 3, "{health}");
    assert_eq!(health["failed_total"], 7, "{health}");
    assert_eq!(health["last_status"], 400, "{health}");
    assert!(
        health["last_failure"]
            .as_str()
            .is_some_and(|r| !r.is_empty() && !r.starts_with('{')),
        "the last failure in words: {health}"
    );
    assert!(
        health["last_ok_at"].is_string() && health["last_failed_at"].is_string(),
        "{health}"
    );

    let (st, _) = s.call(Method::GET, "/healthz", None).await;
    assert_eq!(st, StatusCode::OK, "the server is healthy");
    s.finish().await;
}
both!(callbacks_are_checked_and_become_leads);

/// Publishes the wecom connector and connects it to the mock: its loopback host, the
/// corp id and app secret granted and set, the key-value store granted.
async fn connected(s: &TestServer) {
    let (st, published) = s
        .publish_connector(std::fs::read(connector_wasm("wecom")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{published}");
    let (st, g) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/wecom/grants",
            Some(json!({"hosts": ["127.0.0.1"], "secrets": ["corp_id", "secret", "agent_id"], "kv": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    for (name, value) in [
        ("corp_id", mock_wecom::CORP_ID),
        ("secret", mock_wecom::SECRET),
        // The app the template's nodes send through (they name none of their own).
        ("agent_id", "1000002"),
    ] {
        let (st, v) = s
            .call(
                Method::PUT,
                &format!("/api/v1/connectors/wecom/secrets/{name}"),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    }
}

/// A contact policy without quiet hours (and caps that do not get in the way), so a test
/// that sends to customers passes at any hour.
async fn any_hour(s: &TestServer) {
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/contact-policy",
            Some(json!({"caps": [{"channel": "wecom_group_send", "max": 100, "per": "day"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

fn notify_flow(api_base: &str) -> Value {
    json!({
        "schema": 1,
        "name": "通知销售",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            {"id": "tell", "type": "connector", "connector": "wecom@0", "operation": "send_app_message",
             "config": {"agent_id": 1000002, "api_base": api_base},
             "input": {"touser": ["zhangwei"], "msgtype": "textcard", "title": "高意向线索",
                       "description": "{{ trigger.input.who }} 刚看了竞品对比页", "url": "https://crm.example.cn/leads/1"},
             "retry": {"max_attempts": 1},
             "position": [200, 0]}
        ],
        "edges": [{"from": "start", "to": "tell"}]
    })
}

async fn run(s: &TestServer, flow: &str, who: &str) -> Value {
    let (st, started) = s
        .post(
            &format!("/api/v1/flows/{flow}/runs"),
            json!({"input": {"who": who}}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{started}");
    s.wait_run(started["run_id"].as_str().unwrap(), 30).await
}

fn output(run: &Value) -> Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["node"] == "tell" || s["node_id"] == "tell")
        .map(|s| s["output"].clone())
        .unwrap_or_else(|| panic!("no step tell in {run}"))
}

async fn app_messages_reach_employees_with_one_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mock = MockWeCom::start().await;
    connected(&s).await;
    let flow = s.create_flow(notify_flow(&mock.base()), true).await;

    // 50 messages at once, with no token yet: one gettoken request.
    let mut started = Vec::new();
    for i in 0..50 {
        let who = if i == 0 {
            "王磊".to_owned()
        } else {
            format!("客户{i}")
        };
        let (st, r) = s
            .post(
                &format!("/api/v1/flows/{flow}/runs"),
                json!({"input": {"who": who}}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{r}");
        started.push(r["run_id"].as_str().unwrap().to_owned());
    }
    for id in &started {
        let r = s.wait_run(id, 60).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert!(
            output(&r)["msgid"].as_str().unwrap().starts_with("msg-"),
            "{r}"
        );
    }
    {
        let st = mock.state.lock().unwrap();
        assert_eq!(st.gettoken_calls, 1, "one refresh for 50 concurrent calls");
        assert_eq!(st.messages.len(), 50);
        let card = st
            .messages
            .iter()
            .find(|m| {
                m["textcard"]["description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("王磊"))
            })
            .expect("王磊's card");
        assert_eq!(card["touser"], "zhangwei");
        assert_eq!(card["agentid"], 1000002);
        assert_eq!(card["msgtype"], "textcard");
        assert_eq!(card["textcard"]["description"], "王磊 刚看了竞品对比页");
    }

    // WeCom ends the token early: the call refreshes it once and goes through.
    mock.expire_token();
    let r = run(&s, &flow, "赵强").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    {
        let st = mock.state.lock().unwrap();
        assert_eq!(st.gettoken_calls, 2, "one refresh");
        assert_eq!(st.messages.len(), 51);
    }

    // A rate limit is `rate_limited`, with WeCom's code in words.
    mock.state.lock().unwrap().rate_limited = 1;
    let r = run(&s, &flow, "李娜").await;
    let out = output(&r);
    assert_eq!(out["error"]["kind"], "rate_limited", "{r}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("45009"),
        "{r}"
    );
    assert_eq!(
        mock.state.lock().unwrap().messages.len(),
        51,
        "nothing sent"
    );
    s.finish().await;
}
both!(app_messages_reach_employees_with_one_token);

/// The customer-contact and group-chat operations in one flow against the mock, in WeCom's
/// shapes: an image uploaded (multipart), a customer's profile (followers over two pages,
/// tags → lead attributes), a group send with a link and that image and its result, a tag,
/// and an internal group chat with a first message.
async fn customer_and_group_chat_operations(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mock = MockWeCom::start().await;
    connected(&s).await;
    any_hour(&s).await;
    let base = mock.base();
    let node = |id: &str, op: &str, input: Value, x: i64| {
        json!({"id": id, "type": "connector", "connector": "wecom@0", "operation": op,
               "config": {"api_base": base}, "input": input, "retry": {"max_attempts": 1},
               "position": [x, 0]})
    };
    let doc = json!({
        "schema": 1, "name": "交付攻坚",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            node("upload", "upload_media", json!({"type": "image", "filename": "X5 方案封面.png",
                "content_base64": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}), 100),
            node("contact", "get_external_contact", json!({"external_userid": mock_wecom::CUSTOMER}), 200),
            node("send", "create_group_send", json!({
                "external_userid": [mock_wecom::CUSTOMER], "sender": "zhangwei",
                "text": "您好，{{ steps.contact.output.name }}，技术方案包已为您准备好。",
                "attachments": [{"msgtype": "link", "title": "X5 技术方案包", "url": "https://x.cn/pack/x5"},
                                {"msgtype": "image", "media_id": "{{ steps.upload.output.media_id }}"}]}), 400),
            node("result", "get_group_send_result", json!({"msgid": "{{ steps.send.output.msgid }}", "userid": "zhangwei"}), 600),
            node("tag", "mark_tags", json!({"userid": "zhangwei", "external_userid": mock_wecom::CUSTOMER, "add_tag": ["et-hot"]}), 800),
            node("chat", "create_group_chat", json!({"name": "苏州精工-交付攻坚", "owner": "zhangwei",
                "userlist": ["zhangwei", "lina", "wangfang"], "chatid": "szjg001"}), 1000),
            node("post", "send_group_chat", json!({"chatid": "{{ steps.chat.output.chatid }}", "msgtype": "text",
                "content": "目标：24 小时内确认替代方案，48 小时内客户签收。"}), 1200)
        ],
        "edges": [{"from": "start", "to": "upload"}, {"from": "upload", "to": "contact"},
                  {"from": "contact", "to": "send"},
                  {"from": "send", "to": "result"}, {"from": "result", "to": "tag"},
                  {"from": "tag", "to": "chat"}, {"from": "chat", "to": "post"}]
    });
    let flow = s.create_flow(doc, true).await;
    let (st, started) = s
        .post(&format!("/api/v1/flows/{flow}/runs"), json!({"input": {}}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{started}");
    let run = s.wait_run(started["run_id"].as_str().unwrap(), 30).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let out = |node: &str| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["node"] == node || s["node_id"] == node)
            .map(|s| s["output"].clone())
            .unwrap_or_else(|| panic!("no step {node} in {run}"))
    };
    let contact = out("contact");
    assert_eq!(contact["attributes"]["company"], "苏州精工", "{contact}");
    assert_eq!(
        contact["attributes"]["tags"],
        json!(["制造业", "高意向"]),
        "{contact}"
    );
    assert_eq!(
        contact["follow_users"].as_array().unwrap().len(),
        2,
        "both pages: {contact}"
    );
    assert_eq!(contact["kind"], "wecom");
    assert_eq!(out("send")["failed"], json!([]));
    let result = out("result");
    assert_eq!(result["sent"], 1, "{result}");
    assert_eq!(out("post")["sent"], true);
    {
        let st = mock.state.lock().unwrap();
        let send = &st.group_sends[0];
        assert_eq!(
            send["text"]["content"],
            "您好，王磊，技术方案包已为您准备好。"
        );
        assert_eq!(
            send["attachments"][0]["link"]["url"],
            "https://x.cn/pack/x5"
        );
        let (kind, filename, bytes) = &st.uploads[0];
        assert_eq!(
            (kind.as_str(), filename.as_str()),
            ("image", "X5 方案封面.png")
        );
        assert_eq!(&bytes[1..4], b"PNG", "the file's bytes, decoded");
        assert_eq!(
            send["attachments"][1]["image"]["media_id"],
            json!(out("upload")["media_id"]),
            "the group send carries the uploaded image"
        );
        assert_eq!(st.tag_marks[0]["add_tag"], json!(["et-hot"]));
        assert_eq!(st.chats["szjg001"]["name"], "苏州精工-交付攻坚");
        assert_eq!(
            st.chat_messages[0]["text"]["content"],
            "目标：24 小时内确认替代方案，48 小时内客户签收。"
        );
        assert_eq!(st.gettoken_calls, 1);
    }

    // A file that is not Base64, or too small for WeCom, is refused in words and nothing
    // is uploaded.
    for (content, words) in [("不是 base64", "Base64"), ("aGk=", "more than 5 bytes")] {
        let bad = json!({
            "schema": 1, "name": "上传失败",
            "nodes": [
                {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
                node("tell", "upload_media", json!({"type": "file", "filename": "a.pdf", "content_base64": content}), 200)
            ],
            "edges": [{"from": "start", "to": "tell"}]
        });
        let flow = s.create_flow(bad, true).await;
        let r = crate::run(&s, &flow, "").await;
        let out = output(&r);
        assert_eq!(out["error"]["kind"], "invalid_input", "{r}");
        assert!(
            out["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(words),
            "{r}"
        );
    }
    assert_eq!(
        mock.state.lock().unwrap().uploads.len(),
        1,
        "nothing more uploaded"
    );
    s.finish().await;
}
both!(customer_and_group_chat_operations);

/// Reconciliation: the poll reads the granted employees' customers page by page and
/// records only what differs: two customers become leads (owned by their reps, company
/// from WeCom), further passes record nothing, a tag changed through the API (which
/// sends no callback) is recorded once.
async fn reconciliation_records_only_differences(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mock = MockWeCom::start().await;
    connected(&s).await;
    mock.state.lock().unwrap().customer_tags = vec!["et-hot".into()];
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/wecom/poll",
            Some(json!({"interval_seconds": 1,
                        "config": {"api_base": mock.base(), "follow_users": ["zhangwei", "lina"]}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let synced = |card: &Value| {
        card["timeline"].as_array().map_or(0, |t| {
            t.iter()
                .filter(|e| e["name"] == "wecom.external_contact_synced")
                .count()
        })
    };
    let lead_of = |q: &str| {
        let q = q.to_owned();
        let s = &s;
        async move {
            let found = s.get(&format!("/api/v1/leads?q={q}")).await;
            match found["leads"][0]["id"].as_str() {
                Some(id) => Some(s.get(&format!("/api/v1/leads/{id}")).await),
                None => None,
            }
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.get("/api/v1/leads").await["total"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "two leads from the poll: {}",
            s.get("/api/v1/connectors").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let card = lead_of("%E8%8B%8F%E5%B7%9E%E7%B2%BE%E5%B7%A5")
        .await
        .expect("苏州精工's lead");
    assert_eq!(card["owner"], "zhangwei", "{card}");
    assert_eq!(card["attributes"]["company"], "苏州精工", "{card}");
    assert!(
        card["identities"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "external_contact_id", "value": mock_wecom::CUSTOMER})),
        "{card}"
    );
    // More passes: nothing new.
    let calls = mock.state.lock().unwrap().batch_calls;
    while mock.state.lock().unwrap().batch_calls < calls + 4 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let card = lead_of("%E8%8B%8F%E5%B7%9E%E7%B2%BE%E5%B7%A5")
        .await
        .unwrap();
    assert_eq!(
        synced(&card),
        1,
        "a state read again is recorded once: {card}"
    );
    // A tag changed through WeCom's API: recorded once.
    mock.state.lock().unwrap().customer_tags = vec!["et-hot".into(), "et-vip".into()];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let card = lead_of("%E8%8B%8F%E5%B7%9E%E7%B2%BE%E5%B7%A5")
            .await
            .unwrap();
        if synced(&card) == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change recorded: {card}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let calls = mock.state.lock().unwrap().batch_calls;
    while mock.state.lock().unwrap().batch_calls < calls + 4 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let other = lead_of("%E9%99%88%E9%9D%99").await.expect("陈静's lead");
    assert_eq!(synced(&other), 1, "unchanged: {other}");
    let card = lead_of("%E8%8B%8F%E5%B7%9E%E7%B2%BE%E5%B7%A5")
        .await
        .unwrap();
    assert_eq!(synced(&card), 2, "{card}");
    // Stop polling before the mock goes away.
    s.call(
        Method::PUT,
        "/api/v1/connectors/wecom/poll",
        Some(json!({"interval_seconds": 60, "enabled": false,
                    "config": {"api_base": mock.base(), "follow_users": ["zhangwei"]}})),
    )
    .await;
    s.finish().await;
}
both!(reconciliation_records_only_differences);

/// The wecom connector granted everything: API calls against the mock and callbacks
/// sealed with [`corp`].
async fn connected_with_callbacks(s: &TestServer) {
    connected(s).await;
    let c = corp();
    let (st, g) = s
        .call(
            Method::PUT,
            "/api/v1/connectors/wecom/grants",
            Some(json!({"hosts": ["127.0.0.1"], "kv": true,
                        "secrets": ["corp_id", "secret", "agent_id", "token", "encoding_aes_key"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    for (name, value) in [
        ("token", &c.token),
        ("encoding_aes_key", &c.encoding_aes_key),
    ] {
        let (st, v) = s
            .call(
                Method::PUT,
                &format!("/api/v1/connectors/wecom/secrets/{name}"),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    }
}

/// `HH:MM` in Shanghai (UTC+8, no summer time), `hours` from now.
fn shanghai_clock(hours: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::hours(8 + hours);
    t.format("%H:%M").to_string()
}

/// The contact policy before a group send to a customer: the first send of the day goes,
/// the second is blocked by the cap; quiet hours block or defer a send, as configured; the
/// customer deleting the rep on WeCom revokes consent. Every refusal is journaled with its
/// rule (the node takes its `blocked` port, which here records the refusal), nothing
/// reaches WeCom, and the lead card says what the lead may receive now.
async fn the_contact_policy_blocks_with_its_rule(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mock = MockWeCom::start().await;
    connected_with_callbacks(&s).await;
    let c = corp();
    let sealed = c.seal(
        &added(mock_wecom::CUSTOMER, "zhangwei", "expo-2026"),
        "4401",
    );
    let (st, body) = post(&s, &sealed, sealed.body(&c.corp_id)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let leads = s.get("/api/v1/leads?q=expo-2026").await;
    let lead = leads["leads"][0]["id"].as_str().unwrap().to_owned();
    let policy = |p: Value| {
        let s = &s;
        async move {
            let (st, v) = s.call(Method::PUT, "/api/v1/contact-policy", Some(p)).await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    };
    // A bad policy is refused by pointer and changes nothing.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/contact-policy",
            Some(json!({"caps": [{"channel": "wecom_group_send", "max": 0, "per": "day"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], "/caps/0/max", "{v}");
    policy(json!({"caps": [{"channel": "wecom_group_send", "max": 1, "per": "day"}]})).await;

    let doc = json!({
        "schema": 1, "name": "技术方案推送",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            {"id": "send", "type": "connector", "connector": "wecom@0", "operation": "create_group_send",
             "config": {"api_base": mock.base()},
             "input": {"external_userid": [mock_wecom::CUSTOMER], "sender": "zhangwei",
                       "text": "您好，X5 技术方案包已为您准备好。"},
             "retry": {"max_attempts": 1}, "position": [200, 0]},
            {"id": "told", "type": "set", "config": {"vars": {"why": "steps.send.output.policy.zh"}}, "position": [400, 0]}
        ],
        "edges": [{"from": "start", "to": "send"}, {"from": "send", "port": "blocked", "to": "told"}]
    });
    let flow = s.create_flow(doc, true).await;
    let start = || {
        let s = &s;
        let flow = flow.clone();
        async move {
            let (st, started) = s
                .post(&format!("/api/v1/flows/{flow}/runs"), json!({"input": {}}))
                .await;
            assert_eq!(st, StatusCode::ACCEPTED, "{started}");
            started["run_id"].as_str().unwrap().to_owned()
        }
    };
    let step = |run: &Value, node: &str| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("no step {node} in {run}"))
    };
    let sends = || mock.state.lock().unwrap().group_sends.len();

    // The first of the day goes.
    let first = s.wait_run(&start().await, 30).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(step(&first, "send")["status"], "completed", "{first}");
    assert_eq!(sends(), 1);

    // The second is over the cap: blocked, with its rule, and the blocked port taken.
    let capped = s.wait_run(&start().await, 30).await;
    assert_eq!(capped["status"], "succeeded", "{capped}");
    let send = step(&capped, "send");
    assert_eq!(send["status"], "blocked", "{capped}");
    assert_eq!(send["output"]["policy"]["refusal"]["rule"], "cap", "{send}");
    assert_eq!(send["output"]["policy"]["refusal"]["sent"], 1, "{send}");
    assert_eq!(send["output"]["policy"]["lead"], lead.as_str(), "{send}");
    assert!(
        step(&capped, "told")["output"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("频次上限")),
        "{capped}"
    );
    assert_eq!(sends(), 1, "a blocked call is not made");
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    let group = card["contact"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "wecom_group_send")
        .cloned()
        .unwrap_or_else(|| panic!("{card}"));
    assert_eq!(group["decision"]["decision"], "block", "{group}");
    assert_eq!(group["recent"].as_array().map(Vec::len), Some(1), "{group}");

    // Quiet hours now (in Shanghai), blocking.
    let quiet = |then: &str| json!({"caps": [], "quiet_hours": {"start": shanghai_clock(-1), "end": shanghai_clock(1), "then": then}});
    policy(quiet("block")).await;
    let hushed = s.wait_run(&start().await, 30).await;
    let send = step(&hushed, "send");
    assert_eq!(send["status"], "blocked", "{hushed}");
    assert_eq!(
        send["output"]["policy"]["refusal"]["rule"], "quiet_hours",
        "{send}"
    );

    // Quiet hours, waiting: the run parks until they end, the journal says why.
    policy(quiet("wait")).await;
    let waiting = start().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let parked = loop {
        let r = s.get(&format!("/api/v1/runs/{waiting}")).await;
        if r["status"] == "waiting" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "never parked: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let send = step(&parked, "send");
    assert_eq!(send["status"], "waiting", "{parked}");
    assert_eq!(
        send["output"]["policy"]["refusal"]["rule"], "quiet_hours",
        "{send}"
    );
    let until =
        chrono::DateTime::parse_from_rfc3339(send["output"]["until"].as_str().unwrap()).unwrap();
    assert!(until > chrono::Utc::now(), "{send}");
    assert_eq!(sends(), 1);

    // The customer deletes the rep on WeCom: consent on WeCom is revoked.
    policy(json!({"caps": []})).await;
    let deleted = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[del_follow_user]]></ChangeType>\
         <UserID><![CDATA[zhangwei]]></UserID><ExternalUserID><![CDATA[{}]]></ExternalUserID></xml>",
        c.corp_id,
        chrono::Utc::now().timestamp(),
        mock_wecom::CUSTOMER
    );
    let sealed = c.seal(&deleted, "4402");
    let (st, body) = post(&s, &sealed, sealed.body(&c.corp_id)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let refused = s.wait_run(&start().await, 30).await;
    let send = step(&refused, "send");
    assert_eq!(send["status"], "blocked", "{refused}");
    assert_eq!(
        send["output"]["policy"]["refusal"]["rule"], "consent",
        "{send}"
    );
    assert_eq!(sends(), 1);
    let card = s.get(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(card["contact"]["revoked"][0]["channel"], "wecom", "{card}");
    assert_eq!(card["contact"]["revoked"][0]["source"], "event", "{card}");

    // The customer is recognised on the website, and the WeCom lead is merged into the
    // visitor's: the revocation (and the count) go with it.
    for (id, name, props) in [
        (
            "web-1",
            "page_view",
            json!({"user_id": "u-web-1", "path": "/"}),
        ),
        (
            "web-2",
            "identify",
            json!({"user_id": "u-web-1", "external_contact_id": mock_wecom::CUSTOMER}),
        ),
    ] {
        let (st, v) = s
            .post(
                "/api/v1/events",
                json!({"id": id, "name": name, "properties": props}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let merged = s.get(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(merged["merged_from"], lead.as_str(), "{merged}");
    assert_eq!(
        merged["contact"]["revoked"][0]["channel"], "wecom",
        "{merged}"
    );
    let still = s.wait_run(&start().await, 30).await;
    let send = step(&still, "send");
    assert_eq!(
        send["output"]["policy"]["refusal"]["rule"], "consent",
        "{still}"
    );
    assert_eq!(sends(), 1);

    // An admin lifts it (the customer added the rep again): the next send goes.
    let id = card["contact"]["revoked"][0]["id"].as_str().unwrap();
    let (st, v) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/leads/{lead}/consent/revocations/{id}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let again = s.wait_run(&start().await, 30).await;
    assert_eq!(step(&again, "send")["status"], "completed", "{again}");
    assert_eq!(sends(), 2);
    s.finish().await;
}
both!(the_contact_policy_blocks_with_its_rule);

/// The first scenario, end to end (`templates/flows/competitor-comparison-solution-pack.json`):
/// a customer adds the rep on WeCom (a lead from the expo, warm), is recognised on the
/// website through Segment's own Python library (identify with the WeCom id from the link
/// they came by, then a page view of a comparison page), turns hot, and within seconds
/// gets the solution pack and the case video by group send (through the contact policy)
/// while the rep gets a WeCom message with what the customer did. A second comparison the
/// same day is stopped by the policy, and the rep is told so instead.
async fn competitor_comparison_brings_the_solution_pack(backend: Backend) {
    const WRITE_KEY: &str = "wk_scenario_1";
    let python = trellis_e2e::segment_python();
    let s = TestServer::start(backend).await;
    let mock = MockWeCom::start().await;
    connected_with_callbacks(&s).await;
    let (st, published) = s
        .publish_connector(std::fs::read(connector_wasm("site-tracking")).unwrap())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{published}");
    for (method, path, body) in [
        (
            Method::PUT,
            "/api/v1/connectors/site-tracking/grants",
            json!({"secrets": ["write_key"]}),
        ),
        (
            Method::PUT,
            "/api/v1/connectors/site-tracking/secrets/write_key",
            json!({"value": WRITE_KEY}),
        ),
        // Any hour (the test runs at night too), one group send a day.
        (
            Method::PUT,
            "/api/v1/contact-policy",
            json!({"caps": [{"channel": "wecom_group_send", "max": 1, "per": "day"}]}),
        ),
        (
            Method::PUT,
            "/api/v1/scoring/model",
            json!({"base_version": 0, "message": "scenario", "doc": {
                "schema": 1, "name": "展会线索",
                "features": [
                    {"id": "channel", "label": "渠道", "weight": 40.0,
                     "source": {"kind": "fit", "attribute": "channel"},
                     "transform": {"type": "categorical", "values": {"expo-2026": 1.0}, "other": 0.2}},
                    {"id": "compared", "label": "竞品对比页", "weight": 60.0,
                     "source": {"kind": "behaviour", "event": "page_view",
                                "filter": "event.properties.category == 'competitor_comparison'",
                                "aggregate": "count", "window_days": 7, "half_life_days": 3},
                     "transform": {"type": "cap", "cap": 1}}
                ],
                "tiers": {"warm": 30, "hot": 60}, "stages": {"mql": 30, "sql": 60}}}),
        ),
    ] {
        let (st, v) = s.call(method, path, Some(body)).await;
        assert!(st.is_success(), "{path}: {st} {v}");
    }
    let (st, v) = s
        .post("/api/v1/scoring/model/publish", json!({"version": 1}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    // The template, pointed at the mock (a private deployment's api_base).
    let mut doc: Value = serde_json::from_str(include_str!(
        "../../templates/flows/competitor-comparison-solution-pack.json"
    ))
    .unwrap();
    for node in doc["nodes"].as_array_mut().unwrap() {
        if node["connector"] == "wecom@0" {
            node["config"]["api_base"] = json!(mock.base());
        }
    }
    let flow = s.create_flow(doc, true).await;

    // The customer adds the rep at the expo: a warm lead owned by the rep.
    let c = corp();
    let sealed = c.seal(
        &added(mock_wecom::CUSTOMER, "zhangwei", "expo-2026"),
        "5501",
    );
    let (st, body) = post(&s, &sealed, sealed.body(&c.corp_id)).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // On the website, through Segment's Python library.
    let visit = |n: u32| {
        let (python, host) = (
            python.clone(),
            format!("{}/hooks/connectors/site-tracking", s.base),
        );
        async move {
            let script = format!(
                r#"
import sys
import segment.analytics as analytics
errors = []
analytics.write_key = sys.argv[1]
analytics.host = sys.argv[2]
analytics.max_retries = 0
analytics.on_error = lambda error, batch: errors.append(str(error))
analytics.identify(user_id="site-wl", traits={{"external_contact_id": "{customer}", "name": "王磊"}})
analytics.page(user_id="site-wl", name="X5 对比", properties={{"path": "/products/x5/compare-{n}", "url": "https://x.cn/products/x5/compare-{n}", "title": "X5 与竞品参数对比"}})
analytics.shutdown()
if errors:
    print("errors:", errors)
    sys.exit(1)
"#,
                customer = mock_wecom::CUSTOMER
            );
            let out = tokio::process::Command::new(&python)
                .args(["-c", &script, WRITE_KEY, &host])
                .output()
                .await
                .expect("python runs");
            assert!(
                out.status.success(),
                "analytics-python failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let runs_of = || async {
        s.get(&format!("/api/v1/runs?flow={flow}")).await["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let finished = |n: usize| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let runs = runs_of().await;
            let done: Vec<Value> = runs
                .iter()
                .filter(|r| matches!(r["status"].as_str(), Some("succeeded" | "failed")))
                .cloned()
                .collect();
            if done.len() >= n {
                return done;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} run(s) did not finish: {runs:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };

    visit(1).await;
    let done = finished(1).await;
    let run = s
        .get(&format!("/api/v1/runs/{}", done[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    {
        let st = mock.state.lock().unwrap();
        assert_eq!(st.group_sends.len(), 1, "{run}");
        let send = &st.group_sends[0];
        assert_eq!(send["external_userid"], json!([mock_wecom::CUSTOMER]));
        assert_eq!(send["sender"], "zhangwei");
        assert_eq!(send["attachments"][0]["link"]["title"], "技术方案包");
        assert_eq!(send["attachments"][1]["link"]["title"], "本地成功案例视频");
        assert_eq!(st.messages.len(), 1, "{run}");
        let told = &st.messages[0];
        assert_eq!(told["touser"], "zhangwei", "{told}");
        // Through the app given when WeCom was connected.
        assert_eq!(told["agentid"], 1000002, "{told}");
        let text = told["textcard"]["description"].as_str().unwrap_or_default();
        assert!(
            text.contains("对比"),
            "the rep reads what the customer did: {text}"
        );
        assert!(
            told["textcard"]["title"]
                .as_str()
                .is_some_and(|t| t.contains("王磊")),
            "{told}"
        );
    }

    // Another comparison the same day: the policy holds the push back, the rep is told.
    visit(2).await;
    let done = finished(2).await;
    let second = done
        .iter()
        .find(|r| r["id"] != run["id"])
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .unwrap();
    let second = s.get(&format!("/api/v1/runs/{second}")).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    {
        let st = mock.state.lock().unwrap();
        assert_eq!(st.group_sends.len(), 1, "one push a day: {second}");
        assert_eq!(st.messages.len(), 2, "{second}");
        let text = st.messages[1]["textcard"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains("频次上限"), "{text}");
    }
    s.finish().await;
}
both!(competitor_comparison_brings_the_solution_pack);
