//! `intent-bench`: the intent engine against a real `trellis serve` process (release).
//!
//! 1. Imports N leads (default 100,000) and publishes a scoring model.
//! 2. Event → score latency: C clients post `page_view` events for random leads for S
//!    seconds; each answer comes after the event, the lead's new aggregates and score are
//!    committed.
//! 3. Publishes a weight change and times the background rescore of every lead.
//!
//! Usage: `cargo xtask bench-intent [--leads N] [--seconds S] [--clients C] [--postgres]`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is the report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_e2e::{Api, PgDb, Proc, TempDir};

fn model(industry: f64) -> Value {
    json!({
        "schema": 1, "name": "制造业线索评分",
        "features": [
            { "id": "industry", "label": "行业", "weight": industry,
              "source": { "kind": "fit", "attribute": "industry" },
              "transform": { "type": "categorical", "values": { "新能源汽车零部件": 1.0, "机械": 0.5 }, "other": 0.1 } },
            { "id": "employees", "label": "规模", "weight": 15,
              "source": { "kind": "fit", "attribute": "employees" },
              "transform": { "type": "bins", "bins": [ { "below": 50, "level": 0.1 }, { "below": 500, "level": 0.5 }, { "level": 1.0 } ] } },
            { "id": "pricing", "label": "价格页浏览", "weight": 55.0 - industry,
              "source": { "kind": "behaviour", "event": "page_view",
                          "filter": "event.properties.category == 'pricing'",
                          "aggregate": "count", "window_days": 7, "half_life_days": 3 },
              "transform": { "type": "cap", "cap": 5 } },
            { "id": "docs", "label": "技术文档下载", "weight": 30,
              "source": { "kind": "behaviour", "event": "download", "aggregate": "exists", "window_days": 30 },
              "transform": { "type": "cap", "cap": 1 } }
        ],
        "tiers": { "warm": 30, "hot": 60 }, "stages": { "mql": 30, "sql": 60 }
    })
}

struct Args {
    leads: u64,
    seconds: u64,
    clients: usize,
    postgres: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        leads: 100_000,
        seconds: 10,
        clients: 16,
        postgres: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // `cargo xtask bench-intent -- --leads N` passes the separator through.
            "--" => {}
            "--leads" => a.leads = it.next().and_then(|v| v.parse().ok()).expect("--leads N"),
            "--seconds" => a.seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            "--clients" => a.clients = it.next().and_then(|v| v.parse().ok()).expect("--clients C"),
            "--postgres" => a.postgres = true,
            other => {
                panic!("unknown argument {other}; use --leads N --seconds S --clients C --postgres")
            }
        }
    }
    a
}

async fn wait_rescore(api: &Api, version: i64) -> Duration {
    let start = Instant::now();
    loop {
        let m = api.get("/api/v1/scoring/model").await;
        if m["rescore"]["version"] == json!(version) && !m["rescore"]["finished_at"].is_null() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = TempDir::new();
    let pg = if args.postgres {
        Some(PgDb::create().await)
    } else {
        None
    };
    let server = Proc::start(&dir.0, pg.as_ref().map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    let industries = ["新能源汽车零部件", "机械", "零售", "软件"];

    let started = Instant::now();
    for chunk in (0..args.leads).collect::<Vec<_>>().chunks(5_000) {
        let leads: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"id": format!("L{i}"), "identities": {"user_id": format!("u{i}")},
                       "attributes": {"industry": industries[(i % 4) as usize], "employees": (i * 37) % 2000}})
            })
            .collect();
        api.post("/api/v1/leads/import", &json!({ "leads": leads }))
            .await;
    }
    println!(
        "imported {} leads in {:.1} s",
        args.leads,
        started.elapsed().as_secs_f64()
    );
    api.send(
        reqwest::Method::PUT,
        "/api/v1/scoring/model",
        Some(&json!({"doc": model(30.0), "base_version": 0})),
    )
    .await;
    api.post("/api/v1/scoring/model/publish", &json!({"version": 1}))
        .await;
    let first = wait_rescore(&api, 1).await;
    println!(
        "publish v1: rescored {} leads in {:.2} s",
        args.leads,
        first.as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()
        .unwrap();
    let url = format!("{}/api/v1/events", server.base);
    let token = server.token();
    let warmup = Duration::from_secs(2);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + warmup + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, url, token, counter, errors) = (
            client.clone(),
            url.clone(),
            token.clone(),
            counter.clone(),
            errors.clone(),
        );
        let leads = args.leads;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let user = (i.wrapping_mul(2_654_435_761)) % leads;
                let body = json!({"id": format!("ev{i}"), "name": "page_view",
                    "properties": {"user_id": format!("u{user}"), "category": if i % 2 == 0 { "pricing" } else { "blog" }}});
                let t = Instant::now();
                let ok = match client.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    Ok(r) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first error: {} {}", r.status(), r.text().await.unwrap_or_default());
                        }
                        continue;
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first error: {e}");
                        }
                        continue;
                    }
                };
                if ok && t >= start + warmup {
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "event → score: {} events in {} s ({:.0}/s), {} clients, errors {}",
        all.len(),
        args.seconds,
        all.len() as f64 / args.seconds as f64,
        args.clients,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(0.99)),
        ms(*all.last().unwrap())
    );

    api.send(
        reqwest::Method::PUT,
        "/api/v1/scoring/model",
        Some(&json!({"doc": model(33.0), "base_version": 1})),
    )
    .await;
    let t = Instant::now();
    api.post("/api/v1/scoring/model/publish", &json!({"version": 2}))
        .await;
    let done = wait_rescore(&api, 2).await.max(t.elapsed());
    let m = api.get("/api/v1/scoring/model").await;
    println!(
        "weight change (industry 30 → 33): rescored {} leads in {:.2} s",
        m["rescore"]["done"],
        done.as_secs_f64()
    );
    // The server's own account of each rescore (time reading, rating, writing).
    for line in server
        .log_text()
        .lines()
        .filter(|l| l.contains("rescore finished"))
    {
        println!("server: {line}");
    }
    drop(server);
    if let Some(p) = pg {
        p.drop_db().await;
    }
}
