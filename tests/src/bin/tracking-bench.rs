//! `tracking-bench`: site tracking into a real `trellis serve` process (release), with the
//! `site-tracking` and `wecom` connectors published and a scoring model in force.
//!
//! 1. Ingest: C clients post Segment `batch` calls of B page views each (distinct
//!    visitors, so every event finds or makes a lead, is scored and committed) for S
//!    seconds; the server answers after the batch is committed. Reports events/s.
//! 2. Tracking → WeCom: V concurrent visitors each send `track` calls one after another; a
//!    published flow triggered by that event sends the rep a WeCom app message (to a mock
//!    WeCom server in this process). Reports the time from sending the call to the mock
//!    receiving the message: p50, p95, p99 (after one untimed message per visitor).
//!
//! Usage: `cargo xtask bench-tracking [--seconds S] [--clients C] [--batch B] [--visitors V]
//! [--per-visitor N] [--postgres]`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is the report

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_e2e::mock_wecom::MockWeCom;
use trellis_e2e::{Api, PgDb, Proc, TempDir};

const WRITE_KEY: &str = "wk_bench";

struct Args {
    seconds: u64,
    clients: usize,
    batch: usize,
    visitors: usize,
    per_visitor: usize,
    postgres: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 10,
        clients: 4,
        batch: 100,
        visitors: 16,
        per_visitor: 50,
        postgres: false,
    };
    let mut it = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> usize {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} takes a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--" => {}
            "--seconds" => a.seconds = number("--seconds", it.next()) as u64,
            "--clients" => a.clients = number("--clients", it.next()).max(1),
            "--batch" => a.batch = number("--batch", it.next()).clamp(1, 1_000),
            "--visitors" => a.visitors = number("--visitors", it.next()).max(1),
            "--per-visitor" => a.per_visitor = number("--per-visitor", it.next()).max(1),
            "--postgres" => a.postgres = true,
            other => panic!(
                "unknown argument {other}; use --seconds S --clients C --batch B --visitors V --per-visitor N --postgres"
            ),
        }
    }
    a
}

/// Scoring that every page view touches: a category filter and a count.
fn model() -> Value {
    json!({
        "schema": 1, "name": "访问评分",
        "features": [
            {"id": "pricing", "label": "价格页", "weight": 60.0,
             "source": {"kind": "behaviour", "event": "page_view",
                        "filter": "event.properties.category == 'pricing'",
                        "aggregate": "count", "window_days": 7, "half_life_days": 3},
             "transform": {"type": "cap", "cap": 3}},
            {"id": "pages", "label": "浏览页数", "weight": 40.0,
             "source": {"kind": "behaviour", "event": "page_view", "aggregate": "count", "window_days": 7},
             "transform": {"type": "cap", "cap": 10}}
        ],
        "tiers": {"warm": 30, "hot": 60}, "stages": {"mql": 30, "sql": 60}
    })
}

/// A flow that tells the rep on WeCom about each `bench_ping` event.
fn ping_flow(api_base: &str) -> Value {
    json!({
        "schema": 1, "name": "实时提醒",
        "nodes": [
            {"id": "on", "type": "trigger", "config": {"kind": "event", "event": "bench_ping"}, "position": [0, 0]},
            {"id": "tell", "type": "connector", "connector": "wecom@0", "operation": "send_app_message",
             "config": {"agent_id": 1000002, "api_base": api_base},
             "input": {"touser": ["zhangwei"], "msgtype": "text", "content": "{{ trigger.event.properties.ping }}"},
             "retry": {"max_attempts": 1}, "position": [200, 0]}
        ],
        "edges": [{"from": "on", "to": "tell"}]
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    let data = TempDir::new();
    let pg = if a.postgres {
        Some(PgDb::create().await)
    } else {
        None
    };
    let server = Proc::start(&data.0, pg.as_ref().map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    let mock = MockWeCom::start().await;
    api.publish_connector("site-tracking").await;
    api.put(
        "/api/v1/connectors/site-tracking/grants",
        &json!({"secrets": ["write_key"]}),
    )
    .await;
    api.put(
        "/api/v1/connectors/site-tracking/secrets/write_key",
        &json!({"value": WRITE_KEY}),
    )
    .await;
    MockWeCom::connect(&api).await;
    api.put(
        "/api/v1/scoring/model",
        &json!({"doc": model(), "base_version": 0, "message": "bench"}),
    )
    .await;
    api.post("/api/v1/scoring/model/publish", &json!({"version": 1}))
        .await;
    let flow = api.post("/api/v1/flows", &ping_flow(&mock.base())).await;
    let flow = flow["id"].as_str().unwrap().to_owned();
    api.post(
        &format!("/api/v1/flows/{flow}/publish"),
        &json!({"version": 1}),
    )
    .await;
    let db = if a.postgres { "PostgreSQL" } else { "SQLite" };
    let batch_url = format!("{}/hooks/connectors/site-tracking/v1/batch", server.base);
    let track_url = format!("{}/hooks/connectors/site-tracking/v1/track", server.base);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // 1. Ingest.
    println!(
        "ingest: {} clients, Segment batches of {} page views, {} s, {db}",
        a.clients, a.batch, a.seconds
    );
    let recorded = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let (client, url, recorded, batches) = (
            client.clone(),
            batch_url.clone(),
            recorded.clone(),
            batches.clone(),
        );
        let size = a.batch;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let events: Vec<Value> = (0..size)
                    .map(|i| {
                        let visitor = format!("v-{c}-{n}-{}", i % 10);
                        let page = if i % 3 == 0 { "/pricing" } else { "/products/x5" };
                        json!({"type": "page", "messageId": format!("m-{c}-{n}-{i}"),
                               "anonymousId": visitor, "name": "X5",
                               "properties": {"path": page, "url": format!("https://x.cn{page}"), "title": "X5"},
                               "timestamp": chrono::Utc::now().to_rfc3339()})
                    })
                    .collect();
                let r = client
                    .post(&url)
                    .basic_auth(WRITE_KEY, Some(""))
                    .json(&json!({"batch": events}))
                    .send()
                    .await
                    .expect("batch");
                assert!(r.status().is_success(), "batch: {}", r.status());
                recorded.fetch_add(size as u64, Ordering::Relaxed);
                batches.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = recorded.load(Ordering::Relaxed);
    println!(
        "| events | batches | seconds | events/s |\n| --- | --- | --- | --- |\n| {events} | {} | {elapsed:.1} | **{:.0}** |",
        batches.load(Ordering::Relaxed),
        events as f64 / elapsed
    );

    // 2. Tracking → WeCom, after a warm-up: each visitor's first message (the first call
    // also fetches WeCom's access token) is not timed.
    let warm: Vec<_> = (0..a.visitors)
        .map(|v| {
            client
                .post(&track_url)
                .basic_auth(WRITE_KEY, Some(""))
                .json(&json!({"event": "bench_ping", "userId": format!("u-{v}"),
                              "messageId": format!("warm-{v}"), "properties": {"ping": format!("warm-{v}")}}))
                .send()
        })
        .collect();
    for r in futures::future::join_all(warm).await {
        assert!(r.expect("track").status().is_success(), "warm-up track");
    }
    let give_up = Instant::now() + Duration::from_secs(60);
    while mock.state.lock().unwrap().messages.len() < a.visitors {
        assert!(
            Instant::now() < give_up,
            "the warm-up messages did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let warmed = mock.state.lock().unwrap().messages.len();
    println!(
        "\ntracking → WeCom message: {} visitors × {} track calls each",
        a.visitors, a.per_visitor
    );
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watcher = {
        let (state, sent_at) = (mock.state.clone(), sent_at.clone());
        let total = a.visitors * a.per_visitor;
        tokio::spawn(async move {
            let mut seen = warmed;
            let mut latencies = Vec::with_capacity(total);
            let give_up = Instant::now() + Duration::from_secs(120);
            while latencies.len() < total && Instant::now() < give_up {
                let now = Instant::now();
                let fresh: Vec<String> = {
                    let s = state.lock().unwrap();
                    let fresh = s.messages[seen..]
                        .iter()
                        .map(|m| m["text"]["content"].as_str().unwrap_or_default().to_owned())
                        .collect();
                    seen = s.messages.len();
                    fresh
                };
                {
                    let sent = sent_at.lock().unwrap();
                    for ping in fresh {
                        if let Some(t) = sent.get(&ping) {
                            latencies.push(now.duration_since(*t).as_secs_f64() * 1000.0);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            latencies
        })
    };
    let mut tasks = Vec::new();
    for v in 0..a.visitors {
        let (client, url, sent_at) = (client.clone(), track_url.clone(), sent_at.clone());
        let per = a.per_visitor;
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                let ping = format!("ping-{v}-{n}");
                sent_at.lock().unwrap().insert(ping.clone(), Instant::now());
                let r = client
                    .post(&url)
                    .basic_auth(WRITE_KEY, Some(""))
                    .json(&json!({"event": "bench_ping", "userId": format!("u-{v}"),
                                  "messageId": ping, "properties": {"ping": ping}}))
                    .send()
                    .await
                    .expect("track");
                assert!(r.status().is_success(), "track: {}", r.status());
                // A visitor clicks about every 50 ms.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut latencies = watcher.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    let total = a.visitors * a.per_visitor;
    println!(
        "| messages | p50 ms | p95 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |\n| {}/{total} | {:.1} | {:.1} | **{:.1}** | {:.1} |",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    assert_eq!(
        latencies.len(),
        total,
        "every track call became a WeCom message"
    );
    drop(server);
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}
