//! The ERP connectors against their mocks (issue 23): each reads every order line across
//! page boundaries while its session (Kingdee, SAP) or token (Yonyou) expires midway, and
//! raises each overdue exactly once — when a line's confirmed date is past, again when the
//! date moves, and not again after a kill -9 and restart.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_e2e::mock_erp::{Line, MockErp, System};
use trellis_e2e::{Api, PgDb, Proc, TempDir};

/// Nine lines on six orders, changed one after another; two are already overdue.
fn lines() -> Vec<Line> {
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| {
        (today + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut out = Vec::new();
    for (i, (order, line, date)) in [
        ("SO-1001", 1, day(-3)),
        ("SO-1001", 2, day(10)),
        ("SO-1002", 1, day(12)),
        ("SO-1003", 1, day(-1)),
        ("SO-1004", 1, day(20)),
        ("SO-1004", 2, day(21)),
        ("SO-1004", 3, day(22)),
        ("SO-1005", 1, day(30)),
        ("SO-1006", 1, day(40)),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(Line {
            order: order.into(),
            line,
            customer: "C-88".into(),
            customer_name: "苏州精工".into(),
            product: format!("X{i}"),
            qty: 10.0,
            shipped: 2.0,
            date,
            // Lines of one order change together.
            modified: 60 * (1 + i64::from(order.as_bytes()[6] - b'0')),
        });
    }
    out
}

/// How many events of each name the workspace recorded.
async fn count(api: &Api, name: &str) -> i64 {
    let catalog = api.get("/api/v1/event-catalog").await;
    catalog["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map_or(0, |e| e["count"].as_i64().unwrap())
}

/// Waits until `name` has been recorded `n` times (and says what arrived if not).
async fn wait_count(api: &Api, name: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let c = count(api, name).await;
        if c == n {
            return;
        }
        assert!(c < n, "{name}: {c} events, expected {n}");
        if Instant::now() > deadline {
            let catalog: Value = api.get("/api/v1/event-catalog").await;
            let poll = api.get("/api/v1/connectors").await;
            panic!("{name}: {c} of {n} events after 40 s; catalog {catalog}; connectors {poll}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the mock has answered `more` further pages (some polls went by).
async fn wait_pages(mock: &MockErp, more: u32) {
    let target = mock.state.lock().unwrap().pages + more;
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.state.lock().unwrap().pages < target {
        assert!(
            Instant::now() < deadline,
            "the poll stopped reading the ERP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_erp_is_read_completely_and_overdues_are_raised_once(system: System, pg: Option<&PgDb>) {
    let data = TempDir::new();
    let mock = MockErp::start(system, lines(), 2).await;
    // SAP also says when an outbound delivery's planned goods issue passed unmoved.
    let late = if system == System::Sap {
        let planned = (chrono::Utc::now().date_naive() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        mock.state.lock().unwrap().late_deliveries =
            vec![("80000017".into(), "SO-1005".into(), 1, planned)];
        1
    } else {
        0
    };
    // The session lasts two pages: the first read crosses its expiry.
    mock.expire_after(2);
    let start_from = (chrono::Utc::now().date_naive() - chrono::Duration::days(60))
        .format("%Y-%m-%d")
        .to_string();
    let mut server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    mock.connect(&api, &start_from, 2).await;

    wait_count(&api, "erp.order_changed", 9).await;
    wait_count(&api, "erp.delivery_overdue", 2 + late).await;
    {
        let s = mock.state.lock().unwrap();
        assert!(s.expired >= 1, "the session never expired: {s:?}");
        assert!(s.logins >= 2, "the connector did not log in again: {s:?}");
    }
    // Polls go on; nothing is raised twice.
    wait_pages(&mock, 3).await;
    assert_eq!(count(&api, "erp.delivery_overdue").await, 2 + late);

    // A line's date moves into the past: one more overdue.
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    mock.change("SO-1004", 2, |l| l.date = yesterday);
    wait_count(&api, "erp.delivery_overdue", 3 + late).await;
    // A line ships in full: its delivery completes.
    mock.change("SO-1001", 1, |l| l.shipped = l.qty);
    wait_count(&api, "erp.delivery_completed", 1).await;
    let changed = count(&api, "erp.order_changed").await;

    // Killed and restarted: the cursor holds what was raised; nothing comes twice.
    server.kill9();
    let server = Proc::start(&data.0, pg.map(|p| p.url.as_str())).await;
    let api = Api::new(&server.base, &server.token());
    wait_pages(&mock, 4).await;
    assert_eq!(count(&api, "erp.delivery_overdue").await, 3 + late);
    assert_eq!(count(&api, "erp.delivery_completed").await, 1);
    assert_eq!(count(&api, "erp.order_changed").await, changed);
    let overdue = api.get("/api/v1/event-catalog").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "erp.delivery_overdue")
        .cloned()
        .unwrap();
    let paths: Vec<&str> = overdue["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    for path in [
        "company",
        "order",
        "line",
        "qty_open",
        "days_overdue",
        "due_date",
    ] {
        assert!(
            paths.contains(&path),
            "overdue events carry {path}: {overdue}"
        );
    }
}

macro_rules! per_system {
    ($name:ident, $system:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                an_erp_is_read_completely_and_overdues_are_raised_once($system, None).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let pg = PgDb::create().await;
                an_erp_is_read_completely_and_overdues_are_raised_once($system, Some(&pg)).await;
                pg.drop_db().await;
            }
        }
    };
}

per_system!(kingdee, System::Kingdee);
per_system!(sap, System::Sap);
per_system!(yonyou, System::Yonyou);
