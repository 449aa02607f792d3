//! `trellis-bench`: webhook runs per second and latency for the reference lead-scoring
//! flow, against a real `trellis serve` process, with every run durably recorded.
//!
//! Usage: `cargo xtask bench [--seconds N] [--warmup N] [--clients N[,N…]] [--runs N]
//! [--postgres] [--pin]`.
//!
//! `--pin` measures as flow engines are compared: the server on CPU 0 only (`taskset`), this
//! load generator on CPU 1, and it reports the server's CPU time per run and its memory;
//! by default 16 and 64 clients, 5 s warm-up, 20 s measured, three runs each, with a table of
//! medians (`cargo xtask bench --pin`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is the report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use trellis_e2e::{Api, PgDb, Proc, TempDir};

/// The reference flow of the foundation issue (`templates/flows/reference-lead-scoring.json`):
/// webhook → score → tier → WeCom-style message on hot → respond.
pub fn reference_flow() -> Value {
    serde_json::from_str(include_str!(
        "../../../templates/flows/reference-lead-scoring.json"
    ))
    .expect("reference flow")
}

fn track_body(i: u64) -> Value {
    let industries = ["ev-parts", "battery", "retail", "saas"];
    let events = ["whitepaper_download", "page_view", "pricing_view"];
    json!({"type": "track", "userId": format!("u{i}"), "event": events[(i % 3) as usize],
        "properties": {"industry": industries[(i % 4) as usize], "visits_7d": i % 15, "dwell_s": (i * 7) % 200},
        "messageId": format!("m{i}"), "timestamp": "2026-11-27T10:00:00Z"})
}

struct Args {
    seconds: u64,
    warmup: u64,
    /// Server on CPU 0, load generator on CPU 1.
    pin: bool,
    /// One measurement per entry, each against a fresh server and database.
    clients: Vec<usize>,
    /// Measurements per client count; the summary gives their medians.
    runs: usize,
    postgres: bool,
    /// `trellis serve` processes sharing the one PostgreSQL database; clients spread over
    /// them.
    processes: usize,
    /// An existing, empty database to use instead of a fresh one.
    database_url: Option<String>,
}

fn parse_args() -> Args {
    let (mut seconds, mut warmup, mut clients, mut runs) = (None, None, None, None);
    let mut a = Args {
        seconds: 10,
        warmup: 2,
        pin: false,
        clients: vec![16],
        runs: 1,
        postgres: false,
        processes: 1,
        database_url: None,
    };
    let mut it = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> u64 {
        value
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} N"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => seconds = Some(number("--seconds", it.next())),
            "--warmup" => warmup = Some(number("--warmup", it.next())),
            "--runs" => runs = Some(number("--runs", it.next()) as usize),
            "--clients" => {
                let list = it.next().expect("--clients N[,N…]");
                clients = Some(
                    list.split(',')
                        .map(|n| n.trim().parse().expect("--clients N[,N…]"))
                        .collect::<Vec<usize>>(),
                );
            }
            "--pin" => a.pin = true,
            "--postgres" => a.postgres = true,
            "--processes" => a.processes = number("--processes", it.next()).max(1) as usize,
            "--database-url" => a.database_url = Some(it.next().expect("--database-url URL")),
            other => panic!(
                "unknown argument {other}; use --seconds N --warmup N --clients N[,N…] --runs N \
                 --postgres --processes N --pin"
            ),
        }
    }
    // `--pin` is the one-core comparison: 16 and 64 connections, 5 s warm-up, 20 s
    // measured, three runs each, unless told otherwise.
    if a.pin {
        (a.seconds, a.warmup, a.clients, a.runs) = (20, 5, vec![16, 64], 3);
    }
    a.seconds = seconds.unwrap_or(a.seconds);
    a.warmup = warmup.unwrap_or(a.warmup);
    a.clients = clients.unwrap_or(a.clients);
    a.runs = runs.unwrap_or(a.runs).max(1);
    assert!(
        a.processes == 1 || a.postgres || a.database_url.is_some(),
        "--processes N shares one PostgreSQL database: add --postgres"
    );
    assert!(
        !(a.pin && a.processes > 1),
        "--pin measures one process on one core; leave it out with --processes"
    );
    assert!(
        a.database_url.is_none() || a.clients.len() * a.runs == 1,
        "--database-url takes one measurement (one client count, --runs 1)"
    );
    a
}

/// What one measurement found.
struct Measurement {
    rps: f64,
    cpu_us_per_run: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_kb: u64,
    peak_kb: u64,
    errors: u64,
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut summary = Vec::new();
    for &clients in &args.clients {
        let mut found = Vec::new();
        for run in 1..=args.runs {
            if args.runs > 1 {
                println!("== {clients} clients, run {run} of {}", args.runs);
            }
            found.push(measure(&args, clients).await);
        }
        summary.push((clients, found));
    }
    if args.clients.len() * args.runs > 1 {
        print_summary(&args, &summary);
    }
    let errors: u64 = summary
        .iter()
        .flat_map(|(_, f)| f.iter().map(|m| m.errors))
        .sum();
    assert_eq!(errors, 0, "requests failed: see the first error above");
}

/// Medians over the runs of each client count, as a Markdown table.
fn print_summary(args: &Args, summary: &[(usize, Vec<Measurement>)]) {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    println!();
    println!(
        "medians of {} run(s), {} s measured after {} s warm-up{}:",
        args.runs,
        args.seconds,
        args.warmup,
        if args.pin {
            ", server pinned to CPU 0, load on CPU 1"
        } else {
            ""
        }
    );
    println!("| clients | runs/s | p50 | p99 | server CPU per run | RSS (peak) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (clients, found) in summary {
        let m = |f: fn(&Measurement) -> f64| median(found.iter().map(f).collect());
        println!(
            "| {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.0} µs | {:.0} MB ({:.0} MB) |",
            m(|x| x.rps),
            m(|x| x.p50_ms),
            m(|x| x.p99_ms),
            m(|x| x.cpu_us_per_run),
            m(|x| x.rss_kb as f64) / 1024.0,
            m(|x| x.peak_kb as f64) / 1024.0,
        );
    }
}

/// One measurement against a fresh server and database.
async fn measure(args: &Args, clients: usize) -> Measurement {
    let dir = TempDir::new();
    let pg = if args.postgres && args.database_url.is_none() {
        Some(PgDb::create().await)
    } else {
        None
    };
    let url = args
        .database_url
        .clone()
        .or_else(|| pg.as_ref().map(|p| p.url.clone()));
    let mut servers = Vec::new();
    for p in 0..args.processes {
        let data = dir.0.join(format!("p{p}"));
        servers.push(Proc::start_on(&data, url.as_deref(), args.pin.then_some("0")).await);
    }
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    if args.pin {
        pin_self_to("1");
    }
    let server = &servers[0];
    let api = Api::new(&server.base, &server.token());
    let created = api.post("/api/v1/flows", &reference_flow()).await;
    let id = created["id"].as_str().unwrap();
    api.post(
        &format!("/api/v1/flows/{id}/publish"),
        &json!({"version": 1}),
    )
    .await;
    let hook_urls: Vec<String> = servers
        .iter()
        .map(|s| format!("{}/hooks/lead", s.base))
        .collect();
    let hook_url = hook_urls[0].clone();

    // Check the answer once.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let r: Value = client
        .post(&hook_url)
        .json(&track_body(1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!("sample answer: {r}");

    let warmup = Duration::from_secs(args.warmup);
    let counter = Arc::new(AtomicU64::new(2));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + warmup + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, counter, errors) = (
            client.clone(),
            hook_urls[c % hook_urls.len()].clone(),
            counter.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut measured = 0u64;
            while Instant::now() < end {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let ok = match client.post(&url).json(&track_body(i)).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    Ok(r) => {
                        if errors.load(Ordering::Relaxed) == 0 {
                            eprintln!(
                                "first error: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            );
                        }
                        false
                    }
                    Err(e) => {
                        if errors.load(Ordering::Relaxed) == 0 {
                            eprintln!("first error: {e}");
                        }
                        false
                    }
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                if t >= start + warmup {
                    latencies.push(t.elapsed());
                    measured += 1;
                }
            }
            (latencies, measured)
        }));
    }
    // The server's CPU time over the measured window (after the warm-up).
    tokio::time::sleep_until((start + warmup).into()).await;
    let cpu_now = || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let cpu_before = cpu_now();
    let mut all = Vec::new();
    let mut measured = 0;
    for t in tasks {
        let (l, m) = t.await.unwrap();
        all.extend(l);
        measured += m;
    }
    let cpu = cpu_now() - cpu_before;
    let (rss_kb, peak_kb) = pids
        .iter()
        .map(|&p| memory(p))
        .fold((0, 0), |(r, k), (r2, k2)| (r + r2, k + k2));
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    let rps = measured as f64 / args.seconds as f64;
    let cpu_us_per_run = cpu * 1e6 / measured.max(1) as f64;
    let backend = if url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "backend: {backend}, processes: {}, clients: {clients}, measured: {}s after {}s warm-up",
        args.processes,
        args.seconds,
        warmup.as_secs()
    );
    println!(
        "requests: {measured}, errors: {}",
        errors.load(Ordering::Relaxed)
    );
    println!("throughput: {rps:.0} runs/s");
    println!(
        "server CPU: {cpu_us_per_run:.0} µs per run ({:.0}% of one core){}",
        cpu * 100.0 / args.seconds as f64,
        if args.pin {
            ", server pinned to CPU 0, load on CPU 1"
        } else {
            ""
        }
    );
    println!("server memory (all processes): RSS {rss_kb} kB, peak {peak_kb} kB");
    println!(
        "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*all.last().unwrap())
    );

    // Every run is in the database with its journal.
    let total_sent = counter.load(Ordering::Relaxed) - 2 + 1;
    let db_url = match &url {
        Some(u) => u.clone(),
        None => format!(
            "sqlite://{}?mode=ro",
            dir.0.join("p0").join("trellis.sqlite").display()
        ),
    };
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("trellis_commit") && l.contains("quantile=\"0.5\""))
    {
        println!("server metric: {line}");
    }
    if errors.load(Ordering::Relaxed) > 0 {
        let log = server.log_text();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!(
            "server log (last lines, newest first):\n{}",
            tail.join("\n")
        );
    }
    drop(servers);
    let db = Database::connect(&db_url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM runs WHERE status = 'succeeded'".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    let recorded: i64 = row.try_get("", "n").unwrap();
    let answered = total_sent - errors.load(Ordering::Relaxed);
    println!("runs recorded as succeeded: {recorded} (requests answered 2xx: {answered})");
    assert!(
        recorded as u64 >= answered,
        "a run answered 2xx is missing from the database"
    );
    if let Some(p) = pg {
        p.drop_db().await;
    }
    Measurement {
        rps,
        cpu_us_per_run,
        p50_ms: ms(pct(0.50)),
        p99_ms: ms(pct(0.99)),
        rss_kb,
        peak_kb,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Pins every thread of this process to the CPUs `list` (threads made later inherit it).
fn pin_self_to(list: &str) {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", list, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset (util-linux) is needed for --pin");
    assert!(status.success(), "taskset failed: {status}");
}

/// User plus system CPU time of process `pid` so far, in seconds (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory of process `pid` now and at its peak, in kB (`/proc/<pid>/status`).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
