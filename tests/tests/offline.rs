//! The analyst's command-line tools on the real evaluation data in `../shared/data` (next
//! to the repository): signal detection on labelled sales utterances, and suggested weights
//! plus backtest on the X Education lead history. Where `../shared` is absent (a checkout on
//! its own) each test says so on stderr and checks nothing else; the unit tests in
//! `trellis-model` and `trellis-analytics` cover the same code on small fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use trellis_e2e::{Api, Proc, TempDir, trellis_bin};

fn shared(file: &str) -> Option<PathBuf> {
    let root = std::env::var_os("TRELLIS_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = root.join(file);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (the evaluation data lives in ../shared/data next to the repository, or set TRELLIS_SHARED_DATA)",
            path.display()
        );
        None
    }
}

fn trellis(args: &[&str]) -> (String, String) {
    let out = Command::new(trellis_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("trellis runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "trellis {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn signals_eval_on_the_dev_set() {
    let Some(dev) = shared("signals/dev.jsonl") else {
        return;
    };
    let (out, _) = trellis(&["signals", "eval", dev.to_str().expect("path"), "--json"]);
    let e: Value = serde_json::from_str(&out).expect("evaluation JSON");
    let f1 = e["micro"]["f1"].as_f64().expect("micro F1");
    let polarity = e["polarity_accuracy"].as_f64().expect("polarity accuracy");
    assert!(f1 >= 0.9, "micro-F1 {f1}");
    assert!(polarity >= 0.9, "polarity accuracy {polarity}");
}

/// The README's reproduction: suggested weights from the lead history, held-out AUC ≥ 0.90,
/// and the backtest of the printed model over the whole file.
#[test]
fn suggest_and_backtest_on_the_lead_history() {
    let Some(csv) = shared("leads/Leads.csv") else {
        return;
    };
    let csv = csv.to_str().expect("path");
    let (model, report) = trellis(&[
        "scoring",
        "suggest",
        "--csv",
        csv,
        "--outcome",
        "Converted",
        "--exclude",
        "Tags",
        "--exclude",
        "Lead Quality",
        "--exclude",
        "Lead Profile",
        "--exclude",
        "Asymmetrique*",
        "--exclude",
        "Lead Number",
        "--id-column",
        "Prospect ID",
    ]);
    let held_out = report
        .split("held-out rows:")
        .nth(1)
        .expect("a held-out section");
    let auc: f64 = held_out
        .lines()
        .find_map(|l| l.strip_prefix("AUC "))
        .and_then(|a| a.trim().parse().ok())
        .expect("held-out AUC");
    assert!(auc >= 0.90, "held-out AUC {auc}\n{report}");
    let doc: Value = serde_json::from_str(&model).expect("model JSON on stdout");
    assert!(doc["features"].as_array().is_some_and(|f| !f.is_empty()));
    assert!(
        !model.contains("\"Tags\"") && !model.contains("Asymmetrique"),
        "excluded columns leaked into the model"
    );

    let dir = TempDir::new();
    let path = dir.0.join("model.json");
    std::fs::write(&path, &model).expect("write model");
    let (out, _) = trellis(&[
        "scoring",
        "backtest",
        "--model",
        path.to_str().expect("path"),
        "--csv",
        csv,
        "--outcome",
        "Converted",
        "--json",
    ]);
    let b: Value = serde_json::from_str(&out).expect("backtest JSON");
    assert_eq!(b["leads"], 6449);
    assert!(b["auc"].as_f64().expect("auc") > 0.9);
    assert!(b["lift_at_10"].as_f64().expect("lift") > 2.0);
    assert_eq!(b["calibration"].as_array().map(Vec::len), Some(10));
}

/// The same history through a running server: `trellis leads import`, then suggested
/// weights over the API (a draft version), its backtest, publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_suggest_and_backtest_through_the_server() {
    let Some(csv) = shared("leads/Leads.csv") else {
        return;
    };
    let dir = TempDir::new();
    let server = Proc::start(&dir.0.join("data"), None).await;
    let mapping = dir.0.join("mapping.json");
    std::fs::write(&mapping, r#"{"id": "Prospect ID"}"#).expect("mapping");
    let out = Command::new(trellis_bin())
        .args(["leads", "import", "--csv"])
        .arg(&csv)
        .arg("--mapping")
        .arg(&mapping)
        .args(["--server", &server.base, "--token", &server.token()])
        .output()
        .expect("trellis leads import runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed:\n{stderr}");
    assert!(
        stdout.contains("imported: 6449 created, 0 updated"),
        "{stdout}"
    );
    assert!(
        stderr.contains("imported 6449 of 6449 leads"),
        "progress: {stderr}"
    );

    let api = Api::new(&server.base, &server.token());
    let listed = api.get("/api/v1/leads?per_page=1").await;
    assert_eq!(listed["total"], 6449);
    let suggestion = api
        .post(
            "/api/v1/scoring/suggest",
            &json!({"outcome": "Converted",
                    "exclude": ["Tags", "Lead Quality", "Lead Profile", "Asymmetrique*", "Lead Number"]}),
        )
        .await;
    let auc = suggestion["holdout"]["auc"].as_f64().expect("held-out AUC");
    assert!(auc >= 0.90, "held-out AUC over the API {auc}");
    let version = suggestion["version"].as_i64().expect("version");
    let b = api
        .post(
            "/api/v1/scoring/backtest",
            &json!({"outcome": "Converted", "version": version}),
        )
        .await;
    assert_eq!(b["backtest"]["leads"], 6449);
    assert!(b["backtest"]["auc"].as_f64().expect("auc") > 0.9, "{b}");
    api.post(
        "/api/v1/scoring/model/publish",
        &json!({"version": version}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let m = api.get("/api/v1/scoring/model").await;
        if !m["rescore"]["finished_at"].is_null() {
            assert_eq!(m["rescore"]["done"], 6449, "{m}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rescore did not finish: {m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let hot = api.get("/api/v1/leads?tier=hot&per_page=1").await;
    assert!(hot["total"].as_u64().expect("total") > 0, "{hot}");
}
