//! Connector plugins end to end with the real `trellis` binary, on SQLite and PostgreSQL:
//! a connector scaffolded by `trellis connector new`, built and published by the CLI, runs
//! in a flow; side effects happen once across a kill -9; misbehaving plugins fail their
//! steps while the server keeps serving; secrets stay out of answers and logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_e2e::mock_api::MockApi;
use trellis_e2e::{
    Api, PgDb, Proc, TempDir, count, create_published, start_runs, trellis_bin, wait_all,
};

/// The target directory these tests were built in: the scaffolded crate builds there too,
/// so the SDK's dependencies are not compiled again.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn trellis(args: &[&str], dir: &Path) -> String {
    let out = Command::new(trellis_bin())
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run trellis");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "trellis {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn wait_run(api: &Api, run: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = api.get(&format!("/api/v1/runs/{run}")).await;
        if matches!(
            r["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} unfinished after {secs}s: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_once(api: &Api, flow: &str, input: Value) -> Value {
    let started = api
        .post(
            &format!("/api/v1/flows/{flow}/runs"),
            &json!({ "input": input }),
        )
        .await;
    wait_run(api, started["run_id"].as_str().unwrap(), 30).await
}

async fn scaffolded_connector_runs_in_a_flow(pg: Option<&PgDb>) {
    let name = if pg.is_some() {
        "acme-crm-pg"
    } else {
        "acme-crm-sqlite"
    };
    let work = TempDir::new();
    let _ = trellis(
        &["connector", "new", name, "--dir", work.0.to_str().unwrap()],
        &work.0,
    );
    let root = work.0.join(name);
    // The plugin author's edit: the host this connector talks to.
    let lib = root.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(
        source.contains(".host(\"api.example.com\")"),
        "template changed: {source}"
    );
    std::fs::write(
        &lib,
        source.replace(".host(\"api.example.com\")", ".host(\"127.0.0.1\")"),
    )
    .unwrap();
    let wasm = trellis(
        &["connector", "build", "--dir", root.to_str().unwrap()],
        &work.0,
    );
    let wasm = wasm.lines().last().unwrap().trim().to_owned();
    assert!(wasm.ends_with(".wasm"), "{wasm}");

    let data = TempDir::new();
    let server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let token = server.token();
    let out = Command::new(trellis_bin())
        .args(["connector", "publish", &wasm, "--server", &server.base])
        .env("TRELLIS_TOKEN", &token)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains(&format!("as {name}@0")), "{printed}");

    let api = Api::new(&server.base, &token);
    let types = api.get("/api/v1/node-types").await;
    let entry = types["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {types}"));
    assert_eq!(entry["operations"][0]["name"], "lookup");

    api.put(
        &format!("/api/v1/connectors/{name}/grants"),
        &json!({"hosts": ["127.0.0.1"]}),
    )
    .await;
    let mock = MockApi::start().await;
    let flow = create_published(
        &api,
        &json!({"schema": 1, "name": "查客户", "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
            {"id": "crm", "type": "connector", "connector": format!("{name}@0"), "operation": "lookup",
             "config": {"base_url": mock.url("/v1")}, "input": {"path": "accounts/{{ trigger.input.id }}"}},
            {"id": "reply", "type": "respond", "config": {"body": "steps.crm.output.body"}}],
            "edges": [{"from": "t", "to": "crm"}, {"from": "crm", "to": "reply"}]}),
    )
    .await;
    let run = run_once(&api, &flow, json!({"id": 42})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["response"]["body"]["path"], "/v1/accounts/42", "{run}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_connector_sqlite() {
    scaffolded_connector_runs_in_a_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_connector_postgres() {
    let pg = PgDb::create().await;
    scaffolded_connector_runs_in_a_flow(Some(&pg)).await;
    pg.drop_db().await;
}

fn side_effect_flow(url: &str) -> Value {
    json!({"schema": 1, "name": "写入 ERP", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "push", "type": "connector", "connector": "http-json@0", "operation": "request",
         "config": {"url": url}, "input": {"body": "{{ trigger.input }}"},
         "retry": {"max_attempts": 5, "backoff": "100ms"}},
        {"id": "reply", "type": "respond", "config": {"body": "steps.push.output.status"}}],
        "edges": [{"from": "t", "to": "push"}, {"from": "push", "to": "reply"}]})
}

/// 100 runs each make one side-effecting call to a mock that counts idempotency keys; the
/// server is killed with SIGKILL while calls are in flight and restarted: every run
/// completes, and each run's key had its effect applied exactly once.
async fn side_effects_once_across_kill9(pg: Option<&PgDb>) {
    let data = TempDir::new();
    let mock = MockApi::start().await;
    let mut server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    api.publish_connector("http-json").await;
    api.put(
        "/api/v1/connectors/http-json/grants",
        &json!({"hosts": ["127.0.0.1"]}),
    )
    .await;
    let flow = create_published(&api, &side_effect_flow(&mock.url("/slow/orders"))).await;
    let runs = start_runs(std::slice::from_ref(&api), &flow, 100).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.seen.lock().unwrap().requests.len() < 20 {
        assert!(Instant::now() < deadline, "no calls reached the mock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let seen_at_kill = mock.seen.lock().unwrap().requests.len();
    assert!(
        seen_at_kill < 100,
        "the crash came too late to test anything ({seen_at_kill} calls done)"
    );

    let server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    wait_all(&api, &flow, "succeeded", 100, 60).await;
    assert_eq!(count(&api, &flow, "failed").await, 0);

    let seen = mock.seen.lock().unwrap();
    let mut expected: Vec<String> = runs.iter().map(|r| format!("{r}/push/0/1")).collect();
    expected.sort();
    let mut keys: Vec<String> = seen.effects.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, expected, "each run's call carried its own stable key");
    assert!(seen.effects.values().all(|&n| n == 1));
    let repeated = seen.requests.values().filter(|&&n| n > 1).count();
    eprintln!(
        "{seen_at_kill} calls before the kill; {repeated} calls were repeated with the same key after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_effects_once_across_kill9_sqlite() {
    side_effects_once_across_kill9(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_effects_once_across_kill9_postgres() {
    let pg = PgDb::create().await;
    side_effects_once_across_kill9(Some(&pg)).await;
    pg.drop_db().await;
}

/// Each misbehaving operation fails its step with its typed error within its limit, while
/// an ordinary run completes and /healthz answers throughout; the secret set for the
/// connector appears in no answer and no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misbehaving_plugins_fail_alone() {
    const SECRET: &str = "Sup3r-S3cret-Value";
    let data = TempDir::new();
    let server = Proc::start(&data.0, None).await;
    let api = Api::new(&server.base, &server.token());
    api.publish_connector("adversarial").await;
    api.put(
        "/api/v1/connectors/adversarial/grants",
        &json!({"hosts": ["127.0.0.1"], "secrets": ["declared"], "kv": true}),
    )
    .await;
    api.put(
        "/api/v1/connectors/adversarial/secrets/declared",
        &json!({"value": SECRET}),
    )
    .await;
    // Room (memory, fuel) for a 50 MiB output, so it meets the output limit; the loop then
    // meets the 2 s deadline (the sandbox tests cover running out of fuel). The fuel lasts
    // far longer than 2 s: at 50 billion units a fast, idle machine spun through it in
    // 1.98 s and the loop ended on fuel instead.
    api.put(
        "/api/v1/connectors/adversarial/limits",
        &json!({"memory_bytes": 256 << 20, "timeout_ms": 2000, "fuel": 500_000_000_000u64}),
    )
    .await;

    let flow_for = |op: &str| {
        json!({"schema": 1, "name": format!("adversarial {op}"), "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
            {"id": "call", "type": "connector", "connector": "adversarial@0", "operation": op, "config": {},
             "input": {"value": "{{ trigger.input }}"}}],
            "edges": [{"from": "t", "to": "call"}]})
    };
    let cases = [
        ("spin", "deadline"),
        ("memory_bomb", "memory_limit"),
        ("huge_output", "output_too_large"),
        ("undeclared_host", "capability_denied"),
        ("undeclared_secret", "capability_denied"),
        ("panic", "trap"),
        ("leak_secret", "internal"),
    ];
    let echo = create_published(&api, &flow_for("echo")).await;
    let health = {
        let base = server.base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut worst = Duration::ZERO;
            for _ in 0..100 {
                let t = Instant::now();
                let r = client.get(format!("{base}/healthz")).send().await.unwrap();
                assert_eq!(r.status(), 200);
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            worst
        })
    };
    let mut started = Vec::new();
    for (op, kind) in cases {
        let flow = create_published(&api, &flow_for(op)).await;
        let run = api
            .post(&format!("/api/v1/flows/{flow}/runs"), &json!({"input": {}}))
            .await;
        started.push((op, kind, run["run_id"].as_str().unwrap().to_owned()));
    }
    let ordinary = run_once(&api, &echo, json!({"n": 1})).await;
    assert_eq!(ordinary["status"], "succeeded", "{ordinary}");
    for (op, kind, run) in started {
        let t = Instant::now();
        let r = wait_run(&api, &run, 30).await;
        assert_eq!(r["status"], "failed", "{op}: {r}");
        let step = &r["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(step["output"]["error"]["kind"], kind, "{op}: {step}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{op} took {:?}",
            t.elapsed()
        );
        if op == "leak_secret" {
            let message = step["output"]["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("***") && !message.contains(SECRET),
                "{message}"
            );
        }
    }
    let worst = health.await.unwrap();
    assert!(
        worst < Duration::from_secs(2),
        "/healthz stalled for {worst:?}"
    );

    for path in [
        "/api/v1/connectors",
        "/api/v1/connectors/adversarial",
        "/api/v1/audit",
        "/api/v1/runs?limit=100",
    ] {
        let body = api.get(path).await.to_string();
        assert!(!body.contains(SECRET), "{path} leaks the secret");
    }
    let log = server.log_text();
    assert!(
        log.contains("the secret is ***"),
        "the plugin's log line is missing:\n{log}"
    );
    // What it wrote to stderr reaches the log too (through the SDK), masked the same way.
    assert!(
        log.contains("stderr also has ***"),
        "the plugin's stderr line is missing:\n{log}"
    );
    assert!(!log.contains(SECRET), "the log leaks the secret");
}

/// A flow that sends the mock's customer a WeCom group send (the `send` node), through the
/// contact policy.
fn group_send_flow(api_base: &str) -> Value {
    json!({
        "schema": 1, "name": "技术方案推送",
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            {"id": "send", "type": "connector", "connector": "wecom@0", "operation": "create_group_send",
             "config": {"api_base": api_base},
             "input": {"external_userid": [trellis_e2e::mock_wecom::CUSTOMER], "sender": "zhangwei",
                       "text": "您好，X5 技术方案包已为您准备好。"},
             "retry": {"max_attempts": 1}, "timeout": "3s", "position": [200, 0]}
        ],
        "edges": [{"from": "start", "to": "send"}]
    })
}

/// The contact policy across a kill -9: a group send to a customer has reached WeCom when
/// the server is killed, before the answer. After the restart it is not sent again (the
/// node says it was interrupted and may have been delivered), and it still counts: the
/// next send to that customer today is blocked by the one-a-day cap, journaled with it.
async fn a_customer_is_not_contacted_twice_across_kill9(pg: Option<&PgDb>) {
    use trellis_e2e::mock_wecom::MockWeCom;
    let data = TempDir::new();
    let mock = MockWeCom::start().await;
    mock.state.lock().unwrap().stall_group_sends = true;
    let mut server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    MockWeCom::connect(&api).await;
    // One group send a day, and no quiet hours (the test runs at any hour).
    api.put(
        "/api/v1/contact-policy",
        &json!({"caps": [{"channel": "wecom_group_send", "max": 1, "per": "day"}]}),
    )
    .await;
    let flow = create_published(&api, &group_send_flow(&mock.base())).await;
    let started = api
        .post(&format!("/api/v1/flows/{flow}/runs"), &json!({"input": {}}))
        .await;
    let run = started["run_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.state.lock().unwrap().group_sends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the group send never reached WeCom"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    mock.state.lock().unwrap().stall_group_sends = false;

    let server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    let r = wait_run(&api, &run, 60).await;
    let send = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["node"] == "send")
        .unwrap_or_else(|| panic!("no send step: {r}"));
    assert_eq!(send["output"]["error"]["kind"], "interrupted", "{r}");
    assert_eq!(
        mock.state.lock().unwrap().group_sends.len(),
        1,
        "the customer got the group send once"
    );

    let again = run_once(&api, &flow, json!({})).await;
    assert_eq!(
        again["status"], "succeeded",
        "a refusal is not a failure: {again}"
    );
    let blocked = again["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["node"] == "send")
        .unwrap_or_else(|| panic!("no send step: {again}"));
    assert_eq!(blocked["status"], "blocked", "{again}");
    assert_eq!(
        blocked["output"]["policy"]["refusal"]["rule"], "cap",
        "{again}"
    );
    assert_eq!(blocked["output"]["policy"]["refusal"]["sent"], 1, "{again}");
    assert_eq!(
        mock.state.lock().unwrap().group_sends.len(),
        1,
        "the count survived the crash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_not_contacted_twice_across_kill9_sqlite() {
    a_customer_is_not_contacted_twice_across_kill9(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_not_contacted_twice_across_kill9_postgres() {
    let pg = PgDb::create().await;
    a_customer_is_not_contacted_twice_across_kill9(Some(&pg)).await;
    pg.drop_db().await;
}
