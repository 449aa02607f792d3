//! Durability with real processes: kill -9 with runs in flight, and several servers
//! sharing one PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use trellis_e2e::{
    Api, PgDb, Proc, TempDir, count, count_rows, create_published, start_runs, wait_all,
};

/// trigger → set → wait `wait` → set → respond.
fn waiting_flow(wait: &str) -> Value {
    json!({"schema": 1, "name": "durable", "nodes": [
        {"id": "t", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "before", "type": "set", "config": {"vars": {"n": "trigger.input.n"}}},
        {"id": "pause", "type": "wait", "config": {"duration": wait}},
        {"id": "after", "type": "set", "config": {"vars": {"m": "vars.n + 1"}}},
        {"id": "reply", "type": "respond", "config": {"body": "{'m': vars.m}"}}],
        "edges": [{"from": "t", "to": "before"}, {"from": "before", "to": "pause"}, {"from": "pause", "to": "after"}, {"from": "after", "to": "reply"}]})
}

/// Checks the journal in the database: every node activation completed exactly once.
async fn assert_exactly_once(url: &str, runs: usize, nodes_per_run: usize) {
    let db = Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let q = |sql: &str| Statement::from_string(backend, sql.to_owned());
    let dupes = db
        .query_all_raw(q("SELECT run_id, node_id, visit, COUNT(*) AS n FROM run_steps WHERE status = 'completed' GROUP BY run_id, node_id, visit HAVING COUNT(*) > 1"))
        .await
        .unwrap();
    assert!(
        dupes.is_empty(),
        "{} node activations were journaled as completed more than once",
        dupes.len()
    );
    let completed = count_rows(
        url,
        "SELECT COUNT(*) AS n FROM run_steps WHERE status = 'completed'",
    )
    .await;
    assert_eq!(
        completed as usize,
        runs * nodes_per_run,
        "every node of every run completed once"
    );
    let succeeded = count_rows(
        url,
        "SELECT COUNT(*) AS n FROM runs WHERE status = 'succeeded'",
    )
    .await;
    assert_eq!(succeeded as usize, runs);
}

/// 200 runs in flight (queued or parked in a 2 s wait); the server is killed with SIGKILL
/// and restarted: all 200 finish and no step is journaled as completed twice.
async fn crash_resumes_every_run(pg: Option<&PgDb>) {
    let dir = TempDir::new();
    let url = pg.map(|p| p.url.clone());
    let mut server = Proc::start(&dir.0, url.as_deref()).await;
    let api = Api::new(&server.base, &server.token());
    let flow = create_published(&api, &waiting_flow("2s")).await;
    let runs = start_runs(std::slice::from_ref(&api), &flow, 200).await;
    assert_eq!(runs.len(), 200);
    // Every run is committed (the API answered 202); kill at once, while they are queued
    // or parked in their 2 s wait. How many had finished is read after the kill.
    let (waiting, queued) = (
        count(&api, &flow, "waiting").await,
        count(&api, &flow, "queued").await,
    );
    server.kill9();
    let db_url = match &url {
        Some(u) => u.clone(),
        None => format!(
            "sqlite://{}?mode=ro",
            dir.0.join("trellis.sqlite").display()
        ),
    };
    let finished = count_rows(
        &db_url,
        "SELECT COUNT(*) AS n FROM runs WHERE status = 'succeeded'",
    )
    .await;
    assert!(
        finished < 200,
        "all runs finished before the crash; the test would prove nothing"
    );
    eprintln!("at the kill: {waiting} waiting, {queued} queued, {finished} finished");

    let server = Proc::start(&dir.0, url.as_deref()).await;
    let api = Api::new(&server.base, &api.token);
    wait_all(&api, &flow, "succeeded", 200, 60).await;
    let sample = api.get(&format!("/api/v1/runs/{}", runs[0])).await;
    assert_eq!(sample["status"], "succeeded", "{sample}");
    drop(server);
    assert_exactly_once(&db_url, 200, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_resumes_every_run_sqlite() {
    crash_resumes_every_run(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_resumes_every_run_postgres() {
    let pg = PgDb::create().await;
    crash_resumes_every_run(Some(&pg)).await;
    pg.drop_db().await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Two `trellis` processes on one PostgreSQL database run 1,000 queued runs: each runs
/// exactly once, and both processes take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_database() {
    let pg = PgDb::create().await;
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let a = Proc::start(&dir_a.0, Some(&pg.url)).await;
    let b = Proc::start(&dir_b.0, Some(&pg.url)).await;
    let token = a.token();
    assert!(
        !dir_b.0.join("admin-token").exists(),
        "the second process must not bootstrap again"
    );
    let apis = [Api::new(&a.base, &token), Api::new(&b.base, &token)];
    let flow = create_published(&apis[0], &waiting_flow("0s")).await;
    let runs = start_runs(&apis, &flow, 1000).await;
    assert_eq!(runs.len(), 1000);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = apis[1]
            .get(&format!(
                "/api/v1/runs?flow={flow}&status=succeeded&limit=500"
            ))
            .await;
        let page = v["runs"].as_array().unwrap().len();
        // More than one page: count in the database instead of paging through.
        if page == 500
            && count_rows(
                &pg.url,
                "SELECT COUNT(*) AS n FROM runs WHERE status = 'succeeded'",
            )
            .await
                == 1000
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "1000 runs did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, p) in [("a", &a), ("b", &b)] {
        let text = reqwest::get(format!("{}/metrics", p.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metric(&text, "trellis_segments_total") > 0.0,
            "process {name} advanced no run:\n{text}"
        );
    }
    drop((a, b));
    assert_exactly_once(&pg.url, 1000, 5).await;
    pg.drop_db().await;
}
