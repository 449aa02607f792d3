//! People and sign-in over HTTP, on SQLite and PostgreSQL: the first administrator made on
//! the first start signs in with a password (argon2id) and gets an HttpOnly, SameSite
//! session cookie; a request that changes something needs the CSRF header; an admin
//! invites a viewer, who sets a password from the one-time link; a viewer cannot change
//! anything or read a secret; an admin reset ends the old sessions; sign-out ends the
//! session; API tokens still work.

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A browser's view of one person: the session cookie and the CSRF value.
struct Person {
    cookie: String,
    csrf: String,
}

async fn request(
    s: &TestServer,
    who: Option<&Person>,
    csrf: bool,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = s.client.request(method, format!("{}{path}", s.base));
    if let Some(p) = who {
        req = req.header("cookie", format!("trellis_session={}", p.cookie));
        if csrf {
            req = req.header("x-trellis-csrf", &p.csrf);
        }
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        set_cookie,
    )
}

async fn sign_in(s: &TestServer, login: &str, password: &str) -> Person {
    let (st, v, cookie) = request(
        s,
        None,
        false,
        Method::POST,
        "/api/v1/session",
        Some(json!({"login": login, "password": password})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    person(&v, cookie)
}

fn person(answer: &Value, set_cookie: Option<String>) -> Person {
    let set_cookie = set_cookie.expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let value = set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("trellis_session="))
        .expect("cookie value")
        .to_owned();
    Person {
        cookie: value,
        csrf: answer["csrf"].as_str().expect("csrf").to_owned(),
    }
}

async fn people_and_sign_in(backend: Backend) {
    let s = TestServer::start(backend).await;
    let password = std::fs::read_to_string(s.data_dir().join("admin-password"))
        .expect("the first admin's password file")
        .trim()
        .to_owned();
    // Wrong passwords and unknown logins read the same.
    let (st, wrong, _) = request(
        &s,
        None,
        false,
        Method::POST,
        "/api/v1/session",
        Some(json!({"login": "admin@trellis.local", "password": "nope-nope"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{wrong}");
    let (st, unknown, _) = request(
        &s,
        None,
        false,
        Method::POST,
        "/api/v1/session",
        Some(json!({"login": "who@example.cn", "password": "nope-nope"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["detail"], unknown["detail"]);

    let admin = sign_in(&s, " Admin@Trellis.local ", &password).await;
    let (st, me, _) = request(
        &s,
        Some(&admin),
        false,
        Method::GET,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["role"], json!("admin"));
    assert_eq!(me["csrf"], json!(admin.csrf));
    // Reading needs only the cookie; changing needs the CSRF header too.
    let flow = json!({"schema": 1, "name": "Webhook 询价", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "webhook", "path": "quote", "secret": "s3cret-webhook-value"}}],
        "edges": []});
    let (st, v, _) = request(
        &s,
        Some(&admin),
        false,
        Method::POST,
        "/api/v1/flows",
        Some(flow.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap_or("").contains("CSRF"), "{v}");
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::POST,
        "/api/v1/flows",
        Some(flow),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let flow_id = v["id"].as_str().expect("id").to_owned();

    // An invitation: a one-time link the invited person sets a password with.
    let (st, invite, _) = request(
        &s,
        Some(&admin),
        true,
        Method::POST,
        "/api/v1/users/invites",
        Some(json!({"name": "李娜", "email": "Li.Na@Example.cn", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{invite}");
    let ticket = invite["ticket"].as_str().expect("ticket").to_owned();
    let (st, t, _) = request(
        &s,
        None,
        false,
        Method::GET,
        &format!("/api/v1/tickets/{ticket}"),
        None,
    )
    .await;
    assert_eq!(
        (st, t["kind"].clone()),
        (StatusCode::OK, json!("invite")),
        "{t}"
    );
    let (st, v, _) = request(
        &s,
        None,
        false,
        Method::POST,
        &format!("/api/v1/tickets/{ticket}"),
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["pointer"], json!("/password"));
    let (st, v, cookie) = request(
        &s,
        None,
        false,
        Method::POST,
        &format!("/api/v1/tickets/{ticket}"),
        Some(json!({"password": "li-na-passw0rd"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["role"], json!("viewer"));
    let viewer = person(&v, cookie);
    let (st, _, _) = request(
        &s,
        None,
        false,
        Method::POST,
        &format!("/api/v1/tickets/{ticket}"),
        Some(json!({"password": "li-na-passw0rd"})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "a ticket is used once");

    // A viewer reads, changes nothing, and no secret reaches them.
    let (st, doc, _) = request(
        &s,
        Some(&viewer),
        false,
        Method::GET,
        &format!("/api/v1/flows/{flow_id}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(!doc.to_string().contains("s3cret-webhook-value"), "{doc}");
    let simple = common::simple_flow("查看者不能建");
    for (method, path, body) in [
        (Method::GET, "/api/v1/tokens", None),
        (Method::GET, "/api/v1/users", None),
        (Method::GET, "/api/v1/people", None),
        (Method::POST, "/api/v1/flows", Some(simple)),
        (
            Method::POST,
            "/api/v1/users/invites",
            Some(json!({"name": "王芳", "email": "wf@example.cn", "role": "admin"})),
        ),
    ] {
        let (st, v, _) = request(&s, Some(&viewer), true, method.clone(), path, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {v}");
    }
    for path in [
        "/api/v1/flows",
        "/api/v1/audit",
        "/api/v1/settings/limits",
        "/api/v1/connectors",
    ] {
        let (_, v, _) = request(&s, Some(&viewer), false, Method::GET, path, None).await;
        let text = v.to_string();
        assert!(
            !text.contains("s3cret-webhook-value") && !text.contains(&s.token),
            "{path}: {text}"
        );
    }

    // Roles change; the last admin stays one.
    let (st, me_now, _) = request(
        &s,
        Some(&admin),
        false,
        Method::GET,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let admin_id = me_now["user"]["id"].as_str().expect("id").to_owned();
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, users_now, _) =
        request(&s, Some(&admin), false, Method::GET, "/api/v1/users", None).await;
    assert_eq!(st, StatusCode::OK);
    // The pickers' list: logins and names, nothing else.
    let (st, people, _) =
        request(&s, Some(&admin), false, Method::GET, "/api/v1/people", None).await;
    assert_eq!(st, StatusCode::OK, "{people}");
    let list = people["people"].as_array().expect("people");
    assert!(
        list.contains(&json!({"login": "li.na@example.cn", "name": "李娜"})),
        "{people}"
    );
    assert!(
        list.iter()
            .any(|p| p["login"] == json!("admin@trellis.local")),
        "{people}"
    );
    assert!(
        list.iter()
            .all(|p| p.as_object().is_some_and(|o| o.len() == 2)),
        "{people}"
    );
    let li_id = users_now["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == json!("li.na@example.cn"))
        .and_then(|u| u["id"].as_str())
        .expect("li na")
        .to_owned();
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{li_id}"),
        Some(json!({"role": "builder"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, me_li, _) = request(
        &s,
        Some(&viewer),
        false,
        Method::GET,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(
        me_li["role"],
        json!("builder"),
        "a role change takes effect at once"
    );
    let (st, v, _) = request(
        &s,
        Some(&viewer),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{li_id}"),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{li_id}"),
        Some(json!({"role": "viewer"})),
    )
    .await;

    // An admin's reset ends the old sessions; the new password works.
    let (st, users, _) = request(&s, Some(&admin), false, Method::GET, "/api/v1/users", None).await;
    assert_eq!(st, StatusCode::OK);
    let li = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == json!("li.na@example.cn"))
        .expect("li na")
        .clone();
    let (st, reset, _) = request(
        &s,
        Some(&admin),
        true,
        Method::POST,
        &format!("/api/v1/users/{}/reset", li["id"].as_str().expect("id")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{reset}");
    let (st, _, _) = request(
        &s,
        None,
        false,
        Method::POST,
        &format!(
            "/api/v1/tickets/{}",
            reset["ticket"].as_str().expect("ticket")
        ),
        Some(json!({"password": "new-li-na-passw0rd"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = request(&s, Some(&viewer), false, Method::GET, "/api/v1/flows", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the old session ended");
    let viewer = sign_in(&s, "li.na@example.cn", "new-li-na-passw0rd").await;

    // Sign-out ends the session and clears the cookie.
    let (st, _, cleared) = request(
        &s,
        Some(&viewer),
        true,
        Method::DELETE,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(cleared.unwrap_or_default().contains("Max-Age=0"));
    let (st, _, _) = request(
        &s,
        Some(&viewer),
        false,
        Method::GET,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // An admin disables an account: its sessions end, it cannot sign in, pickers leave it
    // out; enabled again, it signs in. Nobody disables their own account.
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        Some(json!({"disabled": true, "role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("own account")),
        "{v}"
    );
    let (_, me_still, _) = request(
        &s,
        Some(&admin),
        false,
        Method::GET,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(me_still["role"], json!("admin"), "nothing was half done");
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{li_id}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let viewer = sign_in(&s, "li.na@example.cn", "new-li-na-passw0rd").await;
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{li_id}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["disabled"], json!(true), "{v}");
    let (st, _, _) = request(&s, Some(&viewer), false, Method::GET, "/api/v1/flows", None).await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "a disabled account's session ends"
    );
    let (st, _, _) = request(
        &s,
        None,
        false,
        Method::POST,
        "/api/v1/session",
        Some(json!({"login": "li.na@example.cn", "password": "new-li-na-passw0rd"})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "a disabled account cannot sign in"
    );
    // Nor through a password reset.
    let (st, reset, _) = request(
        &s,
        Some(&admin),
        true,
        Method::POST,
        &format!("/api/v1/users/{li_id}/reset"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{reset}");
    let (st, v, _) = request(
        &s,
        None,
        false,
        Method::POST,
        &format!(
            "/api/v1/tickets/{}",
            reset["ticket"].as_str().expect("ticket")
        ),
        Some(json!({"password": "another-passw0rd"})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "a disabled account's reset opens nothing: {v}"
    );
    let (_, people, _) =
        request(&s, Some(&admin), false, Method::GET, "/api/v1/people", None).await;
    assert!(
        !people["people"]
            .as_array()
            .expect("people")
            .iter()
            .any(|p| p["login"] == json!("li.na@example.cn")),
        "{people}"
    );
    let (_, users_now, _) =
        request(&s, Some(&admin), false, Method::GET, "/api/v1/users", None).await;
    assert!(
        users_now["users"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["id"] == json!(li_id) && u["disabled"] == json!(true)),
        "{users_now}"
    );
    let (st, v, _) = request(
        &s,
        Some(&admin),
        true,
        Method::PATCH,
        &format!("/api/v1/users/{li_id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    sign_in(&s, "li.na@example.cn", "new-li-na-passw0rd").await;

    // Machines keep their tokens.
    assert!(s.get("/api/v1/flows").await["flows"].is_array());
    s.finish().await;
}
both!(people_and_sign_in);
