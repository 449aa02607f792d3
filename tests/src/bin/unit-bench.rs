//! `unit-bench`: an overdue ERP delivery to a staffed task unit whose members are told on
//! WeCom, through a real `trellis serve` process (release) with the `erp-kingdee` and
//! `wecom` connectors, the scenario's flow (`templates/flows/delivery-overdue-task-unit.json`)
//! and unit template, and a people directory of `--people` members.
//!
//! Each round moves one order line's confirmed date into the past at the mock K/3 Cloud.
//! The connector's poll (every second) reads it; the time is measured from the moment the
//! mock answers the page holding the change (the poll sees it) to the moment the mock
//! WeCom receives the unit's brief in its new group chat (the members are notified): the
//! event raised, the flow started, the unit staffed against the directory and every open
//! unit, the group chat created and the brief posted. Reports p50, p95 and the maximum.
//!
//! Usage: `cargo xtask bench-units [--rounds N] [--people P] [--postgres]`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is the report

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_e2e::mock_erp::{Line, MockErp, System};
use trellis_e2e::mock_wecom::MockWeCom;
use trellis_e2e::{Api, PgDb, Proc, TempDir};

struct Args {
    rounds: usize,
    people: usize,
    postgres: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        rounds: 30,
        people: 2_000,
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
            "--rounds" => a.rounds = number("--rounds", it.next()).max(1),
            "--people" => a.people = number("--people", it.next()).max(3),
            "--postgres" => a.postgres = true,
            other => {
                panic!("unknown argument {other:?}; see the usage at the top of unit-bench.rs")
            }
        }
    }
    a
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A directory of `n` people over the functions the template asks for, with room to
/// spare (every round makes a unit that stays open).
fn directory(n: usize) -> String {
    let mut csv = String::from("id,name,function,region,skills,permissions,capacity,manager\n");
    for i in 0..n {
        let row = match i % 4 {
            0 => format!(
                "wh-{i},仓管{i},仓储,华东,实时库存:{},,100,mgr-li",
                3 + i % 3
            ),
            1 => format!("buy-{i},采购{i},采购,华东,寻源:3,紧急空运,100,mgr-li"),
            2 => format!(
                "svc-{i},工程师{i},售后服务,华东,故障诊断:{},,100,mgr-li",
                4 + i % 2
            ),
            _ => format!("fin-{i},财务{i},财务,华北,,,100,mgr-li"),
        };
        csv.push_str(&row);
        csv.push('\n');
    }
    csv
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let data = TempDir::new();
    let pg = if args.postgres {
        Some(PgDb::create().await)
    } else {
        None
    };
    let server = Proc::start(&data.0, pg.as_ref().map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");

    let r = api
        .client
        .post(format!("{}/api/v1/people/members/import", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "text/csv")
        .body(directory(args.people))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "import: {}",
        r.text().await.unwrap()
    );
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("templates/task-units/delivery-rescue.json")).unwrap(),
    )
    .unwrap();
    api.post(
        "/api/v1/task-unit-templates",
        &json!({ "id": "delivery-rescue", "template": template }),
    )
    .await;

    let wecom = MockWeCom::start().await;
    MockWeCom::connect(&api).await;
    api.put(
        "/api/v1/connectors/wecom/grants",
        &json!({"hosts": ["127.0.0.1"], "secrets": ["corp_id", "secret", "agent_id"], "kv": true}),
    )
    .await;
    api.put(
        "/api/v1/connectors/wecom/secrets/agent_id",
        &json!({"value": "1000002"}),
    )
    .await;
    let mut flow: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("templates/flows/delivery-overdue-task-unit.json"))
            .unwrap(),
    )
    .unwrap();
    for node in flow["nodes"].as_array_mut().unwrap() {
        if node["connector"] == "wecom@0" {
            node["config"]["api_base"] = json!(wecom.base());
        }
    }
    trellis_e2e::create_published(&api, &flow).await;

    // One future line per round; round i moves line i into the past.
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| {
        (today + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let lines: Vec<Line> = (0..args.rounds)
        .map(|i| Line {
            order: format!("XSDD{i:05}"),
            line: 1,
            customer: format!("C-{i}"),
            customer_name: format!("客户{i}"),
            product: "X5-M".into(),
            qty: 20.0,
            shipped: 5.0,
            date: day(30),
            modified: 60,
        })
        .collect();
    let erp = MockErp::start(System::Kingdee, lines, 2_000).await;
    erp.connect(&api, &day(-60), 2_000).await;
    // The first poll has read every line once.
    while erp.state.lock().unwrap().pages == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!(
        "unit-bench: {} rounds, {} people in the directory, {}",
        args.rounds,
        args.people,
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let mut millis = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        let briefs = wecom.state.lock().unwrap().chat_messages.len();
        let pages = erp.state.lock().unwrap().pages;
        erp.change(&format!("XSDD{i:05}"), 1, |l| l.date = day(-1));
        // The poll sees the change when the mock answers its next page.
        let seen = loop {
            if erp.state.lock().unwrap().pages > pages {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let deadline = seen + Duration::from_secs(30);
        loop {
            if wecom.state.lock().unwrap().chat_messages.len() > briefs {
                break;
            }
            assert!(Instant::now() < deadline, "round {i}: no brief after 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        millis.push(seen.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    println!(
        "overdue seen → unit staffed, group chat made, brief posted: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        percentile(&millis, 0.5),
        percentile(&millis, 0.95),
        millis.last().copied().unwrap_or(0.0)
    );
    let units = api.get("/api/v1/task-units?status=open").await;
    assert_eq!(
        units["units"].as_array().unwrap().len(),
        args.rounds,
        "one unit per overdue line"
    );
    drop(server);
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}
